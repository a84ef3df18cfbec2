//! Configuration: defaults < TOML file < environment, with figment, validated once into
//! [`Config`] before anything binds.
//!
//! - File: `--config PATH`, else `$GATEWAY_CONFIG`, else `config/gateway.toml` when it exists.
//! - `GATEWAY_<SECTION>__<KEY>` sets any key (`GATEWAY_UPSTREAM__TIMEOUT_MS=2000`).
//! - Stream's own variables set `[stream]`: `STREAM_API_KEY`, `STREAM_API_SECRET`,
//!   `STREAM_APP_ID`, `STREAM_REGION`, `STREAM_BASE_URL`, `STREAM_API_SECRET_FILE`.
//!
//! Each section's schema, defaults and validation live beside the code that reads it
//! (`server::settings`, `upstream::settings` and `upstream::stream_settings`,
//! `tokens::settings`, `callers::settings`, `webhooks::settings`, `trace::settings`,
//! `telemetry::settings`, `emulator::settings`). Here: loading, the assembly into [`Config`],
//! the checks that span sections, and which keys a reload changes ([`RELOADS`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

pub use crate::server::settings::{
    Listener, ServerConfig, ServerFile, ADMIN_HEADER_READ_TIMEOUT, ADMIN_IDLE_TIMEOUT,
};
pub use crate::settings::ConfigError;
pub use crate::telemetry::settings::{LogFile, LogFormat};
pub use crate::tokens::settings::{
    parse_origin, OriginError, TokensConfig, TokensFile, STREAM_DEFAULT_FEED_GROUPS,
};
pub use crate::trace::settings::{TelemetryConfig, TelemetryFile};
pub use crate::upstream::settings::{UpstreamConfig, UpstreamFile};
pub use crate::upstream::stream_settings::{
    random_hex, reread_secret_file, secret_from_file, BatchAuth, StreamConfig, StreamFile,
    DEFAULT_V2_BASE_URL, EMULATOR_SECRET_PREFIX, MAX_SECRET_FILE_BYTES, SECRET_FILE_TIMEOUT,
};
pub use stream_emulator::settings::{EmulatorFile, EmulatorSettings, DEFAULT_REALTIME_LISTEN};
pub use stream_wire::auth::Secret;

/// The file read when neither `--config` nor `$GATEWAY_CONFIG` names one.
pub const DEFAULT_FILE: &str = "config/gateway.toml";

/// The configuration as read: every key, with its default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerFile,
    pub stream: StreamFile,
    pub upstream: UpstreamFile,
    pub log: LogFile,
    pub tokens: TokensFile,
    pub emulator: EmulatorFile,
    /// `[callers]`: absent, no caller policy at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callers: Option<crate::callers::settings::CallersFile>,
    pub telemetry: TelemetryFile,
    /// `[webhooks]`: Stream's webhooks, verified and forwarded (schema in `webhooks::settings`).
    pub webhooks: crate::webhooks::WebhooksFile,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub stream: StreamConfig,
    pub upstream: UpstreamConfig,
    /// `[log] format`.
    pub log_format: LogFormat,
    pub tokens: TokensConfig,
    pub emulator: EmulatorSettings,
    /// `[callers]`, when the section is there.
    pub callers: Option<crate::callers::settings::Settings>,
    pub telemetry: TelemetryConfig,
    /// `[webhooks]`, validated.
    pub webhooks: crate::webhooks::Settings,
}

/// Whether a reload (SIGHUP) puts a key in force: the one place that says so. A dotted key
/// takes its longest entry (`tokens.max_in_flight` before `tokens`); a key under none is read at
/// start-up only, and a reload that changes it names it in a warning and keeps its value.
pub const RELOADS: &[(&str, bool)] = &[
    // The secret, which rotations change.
    ("stream.api_secret", true),
    ("stream.api_secret_file", true),
    // The token policy ([tokens.oidc] included: a new provider, whose keys are fetched again),
    // but not the size of /tokens' pool, made at start-up.
    ("tokens", true),
    ("tokens.max_in_flight", false),
    // The callers' policy (new buckets start full), but not the store the replicas share.
    ("callers", true),
    ("callers.redis_url", false),
    ("callers.redis_timeout_ms", false),
];

/// Whether a reload puts the dotted `key` in force, as [`RELOADS`] says.
pub fn reloads(key: &str) -> bool {
    RELOADS
        .iter()
        .filter(|(k, _)| {
            key.strip_prefix(k)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
        .max_by_key(|(k, _)| k.len())
        .is_some_and(|(_, reloads)| *reloads)
}

/// The file the configuration is read from: `file` (`--config`), else `$GATEWAY_CONFIG`, else
/// [`DEFAULT_FILE`] when it exists; none: defaults and the environment only.
pub fn file_in_use(file: Option<&Path>) -> Option<PathBuf> {
    let env_file = std::env::var_os("GATEWAY_CONFIG").map(PathBuf::from);
    file.map(Path::to_path_buf).or(env_file).or_else(|| {
        let p = PathBuf::from(DEFAULT_FILE);
        p.exists().then_some(p)
    })
}

/// The figment for a file path: defaults < TOML < `GATEWAY_*` < `STREAM_*`.
pub fn figment(file: Option<&Path>) -> Figment {
    let file = file_in_use(file);
    let mut f = Figment::from(Serialized::defaults(FileConfig::default()));
    if let Some(file) = file {
        f = f.merge(Toml::file_exact(file));
    }
    with_env(f)
}

/// Variables whose values are credentials or ids: taken as the exact string, never parsed
/// (figment would read `STREAM_APP_ID=1234` as a number and a secret `0123` as 123).
/// Later entries win.
const VERBATIM: &[(&str, &str)] = &[
    ("GATEWAY_STREAM__API_KEY", "stream.api_key"),
    ("GATEWAY_STREAM__API_SECRET", "stream.api_secret"),
    ("GATEWAY_STREAM__API_SECRET_FILE", "stream.api_secret_file"),
    ("GATEWAY_STREAM__APP_ID", "stream.app_id"),
    ("STREAM_API_KEY", "stream.api_key"),
    ("STREAM_API_SECRET", "stream.api_secret"),
    ("STREAM_API_SECRET_FILE", "stream.api_secret_file"),
    ("STREAM_APP_ID", "stream.app_id"),
    ("STREAM_REGION", "stream.region"),
    ("STREAM_BASE_URL", "stream.base_url"),
];

/// Adds the environment layers to `f`: `GATEWAY_<SECTION>__<KEY>`, then Stream's variables.
pub fn with_env(f: Figment) -> Figment {
    let verbatim = |k: &figment::value::UncasedStr| {
        let k = k.as_str().to_ascii_lowercase();
        k == "config"
            || VERBATIM
                .iter()
                .any(|(env, _)| env.to_ascii_lowercase() == format!("gateway_{k}"))
    };
    let mut f = f.merge(
        Env::prefixed("GATEWAY_")
            .filter(move |k| !verbatim(k))
            .split("__"),
    );
    for (env, key) in VERBATIM {
        if let Ok(value) = std::env::var(env) {
            f = f.merge(EnvValue { env, key, value });
        }
    }
    f
}

/// One variable of [`VERBATIM`] as a provider whose metadata names the variable, so an
/// error can say where a value came from.
struct EnvValue {
    env: &'static str,
    key: &'static str,
    value: String,
}

impl Provider for EnvValue {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.env))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(self.key, &self.value).data()
    }
}

/// Where `key` was set, for an error message: a variable's name or a file's path.
fn source_of(f: &Figment, key: &str) -> Option<String> {
    let m = f.find_metadata(key)?;
    Some(match &m.source {
        Some(Source::File(path)) => format!("{} {}", m.name, path.display()),
        _ => m.name.to_string(),
    })
}

/// A figment error as one [`ConfigError`]: the key, where it was set (a file's line, a
/// variable's name) and what is wrong, on one line, never quoting the source or a value (a
/// TOML excerpt or a value may be a secret: `api_secret = 31415...`, a Redis password).
pub fn extract_error(e: &figment::Error) -> ConfigError {
    use figment::error::Kind;
    let file = e.metadata.as_ref().and_then(|m| match &m.source {
        Some(Source::File(path)) => Some(path.clone()),
        _ => None,
    });
    let text = file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let mut key = e.path.join(".");
    let mut line = text.as_deref().and_then(|t| line_of(t, &key));
    let problem = match &e.kind {
        Kind::Message(m) => match toml_syntax_error(m) {
            Some((at, reason)) => {
                line = Some(at);
                if let Some(k) = text.as_deref().and_then(|t| key_at(t, at)) {
                    key = k;
                }
                format!("not valid TOML: {reason}")
            }
            None => "is not valid here".to_owned(),
        },
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {expected}, found {}", kind_of(actual))
        }
        Kind::InvalidLength(n, expected) => format!("expected {expected}, found {n} items"),
        Kind::UnknownVariant(_, expected) => format!("must be one of: {}", expected.join(", ")),
        Kind::UnknownField(field, _) => format!("unknown key {field:?}"),
        Kind::MissingField(field) => format!("missing key {field:?}"),
        Kind::DuplicateField(field) => format!("key {field:?} given twice"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "number out of range".to_owned(),
        Kind::Unsupported(actual) | Kind::UnsupportedKey(actual, _) => {
            format!("{} is not supported here", kind_of(actual))
        }
    };
    let key = if key.is_empty() { "config".into() } else { key };
    let at = match (&file, line, &e.metadata) {
        (Some(path), Some(n), _) => format!(" ({} line {n})", path.display()),
        (Some(path), None, _) => format!(" ({})", path.display()),
        (None, _, Some(m)) if m.name.starts_with("environment variable ") => {
            format!(" ({})", m.name)
        }
        (None, _, Some(m)) if m.name.contains("GATEWAY_") => format!(
            " (environment variable GATEWAY_{})",
            e.path.join("__").to_ascii_uppercase()
        ),
        _ => String::new(),
    };
    ConfigError::new(&key, format!("{problem}{at}"))
}

/// What kind of value was found, never the value.
fn kind_of(a: &figment::error::Actual) -> &'static str {
    use figment::error::Actual as A;
    match a {
        A::Bool(_) => "a boolean",
        A::Unsigned(_) | A::Signed(_) => "an integer",
        A::Float(_) => "a number",
        A::Char(_) | A::Str(_) | A::Bytes(_) | A::Other(_) => "a string",
        A::Seq => "a list",
        A::Map => "a table",
        _ => "another kind of value",
    }
}

/// A TOML syntax error's line and reason, from toml's message (whose excerpt of the source,
/// the lines with `|`, is dropped); a reason that quotes anything is not repeated.
fn toml_syntax_error(m: &str) -> Option<(usize, String)> {
    let first = m.lines().next()?;
    let at = first.strip_prefix("TOML parse error at line ")?;
    let line: usize = at.split(',').next()?.trim().parse().ok()?;
    let reason: Vec<&str> = m
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|'))
        .collect();
    let reason = reason.join("; ");
    let reason = if reason.is_empty() || reason.contains(['"', '\'']) {
        "syntax error".to_owned()
    } else {
        reason
    };
    Some((line, reason))
}

/// The dotted key set on line `n` (1-based) of a TOML text: its table and the name before `=`.
fn key_at(text: &str, n: usize) -> Option<String> {
    let mut table = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if i + 1 == n {
            let name = l.split_once('=')?.0.trim();
            let bare = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            return bare.then(|| {
                if table.is_empty() {
                    name.to_owned()
                } else {
                    format!("{table}.{name}")
                }
            });
        }
        if let Some(t) = l.strip_prefix('[').and_then(|t| t.split(']').next()) {
            table = t.trim_matches(['[', ' ']).to_owned();
        }
    }
    None
}

/// The line (1-based) of a TOML text that sets the dotted `key`, if one plainly does.
fn line_of(text: &str, key: &str) -> Option<usize> {
    (1..=text.lines().count()).find(|&n| key_at(text, n).as_deref() == Some(key))
}

impl Config {
    /// Loads and validates from `file` and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(&figment(file))
    }

    /// Extracts and validates a figment (tests build their own, never touching the process
    /// environment).
    pub fn from_figment(f: &Figment) -> Result<Self, ConfigError> {
        let raw: FileConfig = f.extract().map_err(|e| extract_error(&e))?;
        Self::validate_from(raw, &|key| source_of(f, key))
    }

    /// Validates a [`FileConfig`]; the first problem found is returned, naming its key.
    pub fn validate(raw: FileConfig) -> Result<Self, ConfigError> {
        Self::validate_from(raw, &|_: &str| None)
    }

    /// [`Config::validate`], with `source` telling where a key was set (for messages).
    fn validate_from(
        raw: FileConfig,
        source: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // Section by section, in this order: the first problem found is the one reported.
        let mut stream = StreamConfig::validate(raw.stream, source)?;
        if stream.emulator && stream.app_id.is_none() {
            stream.app_id = Some(stream_emulator::realtime::generated_app_id());
        }
        let server = ServerConfig::validate(raw.server)?;
        let upstream = UpstreamConfig::validate(raw.upstream)?;
        let tokens = TokensConfig::validate(raw.tokens)?;
        let emulator = EmulatorSettings::validate(raw.emulator)
            .map_err(|e| ConfigError::new(&e.key, e.problem))?;
        let mut callers = raw
            .callers
            .map(crate::callers::settings::Settings::validate)
            .transpose()?;
        if let Some(c) = &mut callers {
            c.default_max_in_flight = (server.max_concurrency / 4).max(1);
        }
        let telemetry = TelemetryConfig::validate(raw.telemetry)?;
        let webhooks = crate::webhooks::Settings::validate(raw.webhooks)?;
        for (key, url) in [
            ("stream.base_url", &stream.base_url),
            ("stream.analytics_base_url", &stream.analytics_base_url),
            (
                "stream.personalization_base_url",
                &stream.personalization_base_url,
            ),
            ("stream.v2_base_url", &stream.v2_base_url),
        ] {
            refuse_self_loop(key, url, server.listen)?;
        }
        Ok(Config {
            server,
            stream,
            upstream,
            log_format: raw.log.format,
            tokens,
            emulator,
            callers,
            telemetry,
            webhooks,
        })
    }
}

/// The address `--healthcheck` probes, from the same configuration the server reads: only
/// `[server]` is read and checked, so a probe does not need the secret.
pub fn probe_addr(f: &Figment) -> Result<SocketAddr, ConfigError> {
    let server: ServerFile = f.extract_inner("server").map_err(|e| {
        let key = std::iter::once("server".to_owned())
            .chain(e.path.iter().skip_while(|p| *p == "server").cloned())
            .collect::<Vec<_>>()
            .join(".");
        ConfigError::new(&key, e.kind.to_string())
    })?;
    Ok(ServerConfig::validate(server)?.probe_addr())
}

/// Resident memory of a gateway serving nothing, rounded up (the soak's 23 MiB under load).
pub const BASE_MEMORY_BYTES: u64 = 24 << 20;

/// Memory an open connection may hold: hyper's read buffer (`server::MAX_BUF_BYTES`) and
/// about 16 KiB of socket and task state.
pub const CONNECTION_MEMORY_BYTES: u64 = 80 << 10;

impl Config {
    /// The most memory these limits let callers and Stream make the gateway hold, for sizing
    /// a container: the base, the upstream token cache, every connection's buffers (on every
    /// listener), and per request in flight a body
    /// being received, a body being forwarded and Stream's answer.
    pub fn memory_bound_bytes(&self) -> u64 {
        let s = &self.server;
        let per_request = 2 * s.max_body_bytes as u64 + self.upstream.max_response_bytes as u64;
        // With webhook routes: as many webhooks in flight, each a body and an answer, and the
        // answers remembered.
        let w = &self.webhooks;
        let webhooks = if w.routes.is_empty() {
            0
        } else {
            s.max_concurrency as u64 * 2 * w.max_body_bytes as u64
                + w.dedupe_max_entries as u64 * crate::webhooks::dedupe::MAX_KEPT_BODY_BYTES as u64
        };
        let connections = s.max_connections as u64
            + [s.public, s.admin]
                .iter()
                .flatten()
                .map(|l| l.max_connections as u64)
                .sum::<u64>();
        BASE_MEMORY_BYTES
            + stream_wire::auth::jwt::CACHE_BYTES as u64
            + connections * CONNECTION_MEMORY_BYTES
            + s.max_concurrency as u64 * per_request
            + webhooks
    }
}

/// Refuses a `stream.base_url` that is the gateway's own listen address: every call would be
/// forwarded to the gateway itself, again and again, until it is overloaded. That happens when
/// the value meant for a client (`STREAM_BASE_URL=http://127.0.0.1:8080`, the gateway's
/// address) reaches the gateway through a shared environment.
fn refuse_self_loop(key: &str, base_url: &str, listen: SocketAddr) -> Result<(), ConfigError> {
    let Ok(uri) = base_url.parse::<http::Uri>() else {
        return Ok(()); // validated before; nothing to compare
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    if port != listen.port() {
        return Ok(());
    }
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let local_name = host == "localhost" || host.ends_with(".localhost");
    let ip = host.parse::<std::net::IpAddr>().ok();
    let local_ip = ip.is_some_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let listen_local = listen.ip().is_loopback() || listen.ip().is_unspecified();
    if ip == Some(listen.ip()) || ((local_name || local_ip) && listen_local) {
        return Err(ConfigError::new(
            key,
            format!(
                "{base_url:?} is this gateway's own address (server.listen {listen}): every call \
                 would be forwarded back to it. STREAM_BASE_URL is read by the gateway too; give \
                 your client's override another name (docs/deployment.md)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
