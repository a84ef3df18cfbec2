//! `[stream]` as read ([`StreamFile`]) and validated ([`StreamConfig`]): the app's credentials
//! (the API secret's rules, from a file or inline, written once here and used by reloads too)
//! and the hosts of Stream's services. A problem names its key, never a secret's value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{present, split_http_url, ConfigError};
use stream_wire::auth::Secret;
use stream_wire::region;

/// How batch calls (`add_to_many`, `follow_many`) authenticate upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchAuth {
    /// HTTP Signatures, as the REST docs say (the default).
    Signature,
    /// A `feed`/`follower` JWT with feed_id `*`, as current official clients do.
    Jwt,
}

/// `[stream]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamFile {
    pub api_key: Option<String>,
    /// Prefer `api_secret_file`.
    pub api_secret: Option<String>,
    /// A file holding the API secret.
    pub api_secret_file: Option<PathBuf>,
    /// App id, returned to frontends.
    pub app_id: Option<String>,
    pub region: String,
    /// Replaces the region's URL.
    pub base_url: Option<String>,
    /// Replaces Stream's analytics host (default: `base_url` when set).
    pub analytics_base_url: Option<String>,
    /// Replaces the region's personalization host (default: `base_url` when set).
    pub personalization_base_url: Option<String>,
    /// Placeholder api keys a team gave its services, taken like the app's own.
    pub accepted_api_keys: Vec<String>,
    /// How batch calls authenticate upstream.
    pub batch_auth: BatchAuth,
    /// `exp` of upstream tokens, seconds (0: none).
    pub token_ttl_s: u64,
    /// How long after a rotation the previous secret still verifies webhooks, seconds.
    pub previous_secret_grace_s: u64,
    /// Serve with the embedded emulator as upstream.
    pub emulator: bool,
    /// Forward Stream's `/api/v2/` family (Feeds v3, Chat, Video, Moderation).
    pub v2: bool,
    /// Where `/api/v2/` calls go.
    pub v2_base_url: Option<String>,
}

impl Default for StreamFile {
    fn default() -> Self {
        Self {
            api_key: None,
            api_secret: None,
            api_secret_file: None,
            app_id: None,
            region: "us-east".into(),
            base_url: None,
            analytics_base_url: None,
            personalization_base_url: None,
            accepted_api_keys: Vec::new(),
            batch_auth: BatchAuth::Signature,
            token_ttl_s: 3600,
            previous_secret_grace_s: 300,
            emulator: false,
            v2: false,
            v2_base_url: None,
        }
    }
}

/// `[stream]`, validated.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub api_key: String,
    pub api_secret: Secret,
    /// Returned to frontends with their tokens; realtime channels carry it. The emulator
    /// makes one up when none is given.
    pub app_id: Option<String>,
    pub region: String,
    /// Scheme + host [+ port], no trailing slash. With `emulator`, replaced at start.
    pub base_url: String,
    /// Where analytics calls go, as `base_url`. With `emulator`, replaced at start.
    pub analytics_base_url: String,
    /// Where personalization calls go, as `base_url`. With `emulator`, replaced at start.
    pub personalization_base_url: String,
    /// Api keys a caller may send besides `api_key` (placeholders); any other is refused.
    pub accepted_api_keys: Vec<String>,
    /// Batch call authentication.
    pub batch_auth: BatchAuth,
    /// `exp` of upstream tokens (0: none).
    pub token_ttl_s: u64,
    /// How long after a rotation the previous secret still verifies webhooks (and nothing else).
    pub previous_secret_grace: Duration,
    /// Serve with the embedded emulator.
    pub emulator: bool,
    /// Whether `/api/v2/` calls are forwarded (off: they answer 404).
    pub v2: bool,
    /// Where `/api/v2/` calls go: scheme + host [+ port]. With `emulator`, replaced at start.
    pub v2_base_url: String,
}

/// The prefix a secret needs in emulator mode.
pub const EMULATOR_SECRET_PREFIX: &str = "emulator-";

/// Whether the emulator may sign with `secret`: only with one made for it, since its request
/// log (unauthenticated, on loopback) shows the tokens the gateway signs, and tokens signed
/// with a real secret work against Stream.
pub(crate) fn made_for_the_emulator(secret: &str) -> bool {
    secret.starts_with(EMULATOR_SECRET_PREFIX)
}

/// The secret in `stream.api_secret_file` as a reload reads it, by the rules of start-up: the
/// file as [`secret_from_file`] takes it, not blank, and with the emulator one made for it; or
/// why not (never the content).
pub fn reread_secret_file(path: &Path, emulator: bool) -> Result<Secret, String> {
    let s = secret_from_file(path)?;
    if s.trim().is_empty() {
        return Err("the file is empty".into());
    }
    if emulator && !made_for_the_emulator(&s) {
        return Err(format!(
            "with the emulator the secret must start with `{EMULATOR_SECRET_PREFIX}`"
        ));
    }
    Ok(Secret::new(s))
}

/// A random hex string of `n` bytes, for the emulator's generated credentials.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

impl StreamConfig {
    pub fn validate(
        s: StreamFile,
        source: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let base_url = present(s.base_url);
        let analytics_base_url = present(s.analytics_base_url);
        let personalization_base_url = present(s.personalization_base_url);
        let v2_base_url = present(s.v2_base_url);
        if s.emulator {
            refuse_with_emulator(&[
                ("stream.base_url", base_url.is_some()),
                ("stream.analytics_base_url", analytics_base_url.is_some()),
                (
                    "stream.personalization_base_url",
                    personalization_base_url.is_some(),
                ),
                ("stream.v2_base_url", v2_base_url.is_some()),
            ])?;
        }
        let api_key = api_key(present(s.api_key), s.emulator)?;
        let from_file = match &s.api_secret_file {
            None => None,
            Some(path) => Some(read_secret_file(path, s.api_secret.as_deref())?),
        };
        let api_secret = api_secret(from_file, s.api_secret, s.emulator, source)?;
        let region_url = region_url(&s.region)?;
        let base_url = base_url
            .map(|u| validate_base_url("stream.base_url", &u))
            .transpose()?;
        // The other services follow a configured `base_url` (a proxy or a local Stream serves
        // them all), else their own hosts.
        let service_url = |key: &str, given: Option<String>, default: String| match given {
            Some(u) => validate_base_url(key, &u),
            None => Ok(base_url.clone().unwrap_or(default)),
        };
        let analytics_base_url = service_url(
            "stream.analytics_base_url",
            analytics_base_url,
            region::ANALYTICS_URL.to_owned(),
        )?;
        let personalization_base_url = service_url(
            "stream.personalization_base_url",
            personalization_base_url,
            region::personalization_url(&s.region).unwrap_or_default(),
        )?;
        let v2_base_url = service_url(
            "stream.v2_base_url",
            v2_base_url,
            DEFAULT_V2_BASE_URL.to_owned(),
        )?;
        let accepted_api_keys = s
            .accepted_api_keys
            .into_iter()
            .map(|k| api_key_value("stream.accepted_api_keys", k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            api_key,
            api_secret,
            app_id: present(s.app_id),
            region: s.region,
            base_url: base_url.unwrap_or(region_url),
            analytics_base_url,
            personalization_base_url,
            accepted_api_keys,
            batch_auth: s.batch_auth,
            token_ttl_s: s.token_ttl_s,
            previous_secret_grace: match s.previous_secret_grace_s {
                g @ 0..=86_400 => Duration::from_secs(g),
                _ => {
                    return Err(ConfigError::new(
                        "stream.previous_secret_grace_s",
                        "must be 0 to 86400 (seconds)",
                    ))
                }
            },
            emulator: s.emulator,
            v2: s.v2,
            v2_base_url,
        })
    }
}

/// `stream.api_key`; the emulator makes one up when none is given.
fn api_key(given: Option<String>, emulator: bool) -> Result<String, ConfigError> {
    let api_key = match given {
        Some(k) => k,
        None if emulator => format!("emu{}", random_hex(8)),
        None => {
            return Err(ConfigError::new(
                "stream.api_key",
                "missing (set STREAM_API_KEY or stream.api_key)",
            ))
        }
    };
    api_key_value("stream.api_key", api_key)
}

/// An api key as `key` takes it: printable ASCII without spaces.
fn api_key_value(key: &str, api_key: String) -> Result<String, ConfigError> {
    if api_key.is_empty() || !api_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            key,
            "must be printable ASCII without spaces",
        ));
    }
    Ok(api_key)
}

/// The secret in `stream.api_secret_file`, without its line ending; `inline` (the
/// `stream.api_secret` key) must then be unset.
fn read_secret_file(path: &Path, inline: Option<&str>) -> Result<String, ConfigError> {
    if inline.is_some_and(|v| !v.trim().is_empty()) {
        return Err(ConfigError::new(
            "stream.api_secret_file",
            "set either stream.api_secret or stream.api_secret_file, not both",
        ));
    }
    secret_from_file(path).map_err(|e| ConfigError::new("stream.api_secret_file", e))
}

/// The largest secret file read: Stream's secrets are 64 characters.
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// How long reading the secret file may take (a file on a hung network mount).
pub const SECRET_FILE_TIMEOUT: Duration = Duration::from_secs(2);

/// The text of a secret file without its line ending, or what is wrong (never the content).
/// Only a regular file (after symlinks) of at most [`MAX_SECRET_FILE_BYTES`], read within
/// [`SECRET_FILE_TIMEOUT`]: a FIFO would block the reader for good, `/dev/zero` or a huge file
/// would fill memory.
pub fn secret_from_file(path: &Path) -> Result<String, String> {
    let shown = path.display().to_string();
    // `metadata` follows symlinks and does not open: a FIFO does not block it.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {}", e.kind()))?;
    check_secret_file(&shown, &meta)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("secret-file".into())
        .spawn(move || {
            let _ = tx.send(read_capped(&owned));
        })
        .map_err(|e| format!("cannot read {shown}: {}", e.kind()))?;
    let text = rx
        .recv_timeout(SECRET_FILE_TIMEOUT)
        .map_err(|_| format!("reading {shown} took more than {SECRET_FILE_TIMEOUT:?}"))?
        .map_err(|why| format!("{shown} {why}"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn check_secret_file(shown: &str, meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_SECRET_FILE_BYTES} bytes: not a secret"
        ));
    }
    Ok(())
}

/// The file's text, checked again once open (it may have been swapped), never more than the cap.
fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {}", e.kind()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {}", e.kind()))?;
    check_secret_file("it", &meta).map_err(|why| why.trim_start_matches("it ").to_owned())?;
    let mut buf = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot be read: {}", e.kind()))?;
    if buf.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "is larger than {MAX_SECRET_FILE_BYTES} bytes: not a secret"
        ));
    }
    String::from_utf8(buf).map_err(|_| "is not UTF-8 text".to_owned())
}

/// The API secret, from the file when one was read, else from `stream.api_secret`; the
/// emulator makes one up when none is given.
fn api_secret(
    from_file: Option<String>,
    inline: Option<String>,
    emulator: bool,
    source: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let secret_key = if from_file.is_some() {
        "stream.api_secret_file"
    } else {
        "stream.api_secret"
    };
    let api_secret = present(from_file.or(inline));
    if emulator
        && api_secret
            .as_deref()
            .is_some_and(|v| !made_for_the_emulator(v))
    {
        let from = source(secret_key).unwrap_or_else(|| "the configuration".into());
        return Err(ConfigError::new(
            secret_key,
            format!(
                "with the emulator the secret must start with `{EMULATOR_SECRET_PREFIX}` \
                 (this one, from {from}, does not): the emulator shows the tokens it \
                 receives, and tokens signed with a real secret work against Stream"
            ),
        ));
    }
    match api_secret {
        Some(v) => Ok(Secret::new(v)),
        None if emulator => Ok(Secret::new(format!(
            "{EMULATOR_SECRET_PREFIX}{}",
            random_hex(24)
        ))),
        None => Err(ConfigError::new(
            "stream.api_secret",
            "missing (set STREAM_API_SECRET, STREAM_API_SECRET_FILE or stream.api_secret)",
        )),
    }
}

/// With the emulator, a configured URL of Stream's is refused, naming its key: the emulator
/// replaces Stream, and a configured URL suggests talking to a real one was meant.
fn refuse_with_emulator(set: &[(&str, bool)]) -> Result<(), ConfigError> {
    match set.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(ConfigError::new(
            *key,
            "cannot be set together with stream.emulator: the emulator replaces Stream, \
             and a configured base URL suggests you meant to talk to a real one",
        )),
        None => Ok(()),
    }
}

/// The region's API URL, or an error listing the regions known.
fn region_url(region: &str) -> Result<String, ConfigError> {
    region::base_url(region).ok_or_else(|| {
        ConfigError::new(
            "stream.region",
            format!(
                "unknown region {region:?}; known regions: {}",
                region::KNOWN_REGIONS.join(", ")
            ),
        )
    })
}

/// Where `/api/v2/` calls go unless configured: the host of Stream's spec (`servers`), which
/// getstream-go and the Python SDK use for every product.
pub const DEFAULT_V2_BASE_URL: &str = "https://chat.stream-io-api.com";

/// `stream.base_url` (or another service's, named by `key`), without its trailing `/`.
fn validate_base_url(key: &str, u: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::new(key, format!("{u:?} {why}"));
    let (scheme, authority) = split_http_url(u).map_err(|why| {
        let mut e = bad(why);
        if u.contains("/api") {
            // stream-js reads STREAM_BASE_URL too, as its API's URL with the path.
            e.problem.push_str(
                " (this looks like a client's URL: stream-js reads STREAM_BASE_URL too, \
                 see docs/production.md)",
            );
        }
        e
    })?;
    let url = format!("{scheme}://{authority}");
    // What the upstream client will parse must parse here, with a port it can use.
    let parsed: http::Uri = url.parse().map_err(|_| bad("is not a valid URL"))?;
    // `http` reads an unparsable port as none; a `:` after the host (past any `]` of an IPv6
    // address) must be followed by a port from 1 to 65535.
    let port_ok = parsed.authority().is_some_and(|a| {
        let s = a.as_str();
        let after_host = s.rfind(']').map_or(0, |i| i + 1);
        match s[after_host..].rfind(':') {
            None => true,
            Some(_) => a.port_u16().is_some_and(|p| p != 0),
        }
    });
    if !port_ok {
        return Err(bad("has a bad port"));
    }
    Ok(url)
}
