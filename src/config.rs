//! Configuration: defaults < TOML file < environment, with figment, validated once into
//! [`Config`] before anything binds.
//!
//! - File: `--config PATH`, else `$GATEWAY_CONFIG`, else `config/gateway.toml` when it exists.
//! - `GATEWAY_<SECTION>__<KEY>` sets any key (`GATEWAY_UPSTREAM__TIMEOUT_MS=2000`).
//! - Stream's own variables set `[stream]`: `STREAM_API_KEY`, `STREAM_API_SECRET`,
//!   `STREAM_APP_ID`, `STREAM_REGION`, `STREAM_BASE_URL`, `STREAM_API_SECRET_FILE`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

pub use crate::auth::Secret;
pub use crate::settings::ConfigError;
use crate::settings::{ms, positive, present, split_http_url};
use crate::stream::{region, Action, Resource};

/// The file read when neither `--config` nor `$GATEWAY_CONFIG` names one.
pub const DEFAULT_FILE: &str = "config/gateway.toml";

/// How batch calls (`add_to_many`, `follow_many`) authenticate upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchAuth {
    /// HTTP Signatures, as the REST docs say (the default).
    Signature,
    /// A `feed`/`follower` JWT with feed_id `*`, as current official clients do.
    Jwt,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

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
    pub callers: Option<crate::callers::CallersFile>,
    pub telemetry: TelemetryFile,
    /// `[webhooks]`: Stream's webhooks, verified and forwarded (schema in `webhooks::settings`).
    pub webhooks: crate::webhooks::WebhooksFile,
}

/// `[tokens]` as read: the policy of `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensFile {
    /// TTL when the request names none.
    pub default_ttl_s: u64,
    pub max_ttl_s: u64,
    /// `resource/action` pairs that may be minted.
    pub allow: Vec<String>,
    pub user_tokens: bool,
    /// Whether `*` may appear as feed, resource or action.
    pub wildcards: bool,
    /// A header, set by a trusted proxy, naming the caller's user id.
    pub identity_header: Option<String>,
    /// The app's feed group slugs; feed tokens are minted for these only (any, when empty).
    pub feed_groups: Vec<String>,
    /// Browser origins allowed to call `/tokens` (CORS).
    pub cors_origins: Vec<String>,
    /// Every feed group of the app, listed in `feed_groups` or not: a token whose `feed_id`
    /// also reads as another group's feed is refused.
    pub app_feed_groups: Vec<String>,
    /// `/tokens` requests in flight (bodies included) before 503, apart from the proxy's.
    pub max_in_flight: u64,
    /// `[tokens.oidc]`: the caller's identity from their own IdP token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<crate::oidc::OidcFile>,
}

/// Stream's default feed groups, `tokens.app_feed_groups` by default.
pub const STREAM_DEFAULT_FEED_GROUPS: [&str; 4] =
    ["user", "timeline", "timeline_aggregated", "notification"];

impl Default for TokensFile {
    fn default() -> Self {
        Self {
            default_ttl_s: 3600,
            max_ttl_s: 86_400,
            allow: vec!["feed/read".into(), "follower/read".into()],
            user_tokens: true,
            wildcards: false,
            identity_header: None,
            feed_groups: Vec::new(),
            cors_origins: Vec::new(),
            app_feed_groups: STREAM_DEFAULT_FEED_GROUPS.map(String::from).to_vec(),
            max_in_flight: 64,
            oidc: None,
        }
    }
}

/// `[server]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerFile {
    pub listen: String,
    pub max_body_bytes: u64,
    /// In-flight proxied requests before 503.
    pub max_concurrency: u64,
    /// Drain time on SIGTERM.
    pub shutdown_grace_ms: u64,
    /// On SIGTERM, keep serving with `/readyz` at 503 this long before closing the listener.
    pub drain_delay_ms: u64,
    /// A connection whose request head is not complete this long after it began is closed.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection idle this long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections; beyond it, new ones are closed at once.
    pub max_connections: u64,
    /// Runtime worker threads; none: one per CPU.
    pub workers: Option<u64>,
    /// Names a request's `Host` may carry on the internal listener, besides the listen
    /// address, `localhost`, the loopback addresses and the machine's hostname; `*`: any.
    pub allowed_hosts: Vec<String>,
    /// The listener that faces browsers and the internet (`/tokens` only); none: off.
    pub public_listen: Option<String>,
    /// Open connections on the public listener.
    pub public_max_connections: u64,
    /// Head timeout on the public listener.
    pub public_header_read_timeout_ms: u64,
    /// Idle timeout on the public listener.
    pub public_idle_timeout_ms: u64,
    /// The operators' listener (health, readiness, metrics); none: off.
    pub admin_listen: Option<String>,
    /// Open connections on the admin listener.
    pub admin_max_connections: u64,
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

/// `[upstream]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamFile {
    /// One attempt.
    pub timeout_ms: u64,
    /// TCP + TLS connect.
    pub connect_timeout_ms: u64,
    pub deadline_ms: u64,
    pub max_retries: u32,
    /// First backoff ceiling.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling.
    pub backoff_max_ms: u64,
    /// Retries as a share of requests over 10 s.
    pub retry_budget_percent: u32,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout_ms: u64,
    /// Largest answer read from Stream; a larger one is 502.
    pub max_response_bytes: u64,
    /// An HTTP proxy (`http://host:port`) for every upstream call; none when unset, whatever
    /// `HTTP_PROXY` or `HTTPS_PROXY` say.
    pub proxy: Option<String>,
}

/// `[log]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFile {
    pub format: LogFormat,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1_048_576,
            max_concurrency: 1024,
            shutdown_grace_ms: 10_000,
            drain_delay_ms: 0,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
            workers: None,
            allowed_hosts: Vec::new(),
            public_listen: None,
            public_max_connections: 1024,
            public_header_read_timeout_ms: 5000,
            public_idle_timeout_ms: 30_000,
            admin_listen: None,
            admin_max_connections: 8,
        }
    }
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

impl Default for UpstreamFile {
    fn default() -> Self {
        Self {
            timeout_ms: 3000,
            connect_timeout_ms: 1000,
            deadline_ms: 10_000,
            max_retries: 2,
            backoff_base_ms: 50,
            backoff_max_ms: 2000,
            retry_budget_percent: 20,
            pool_idle_timeout_ms: 55_000,
            max_response_bytes: 8 * 1024 * 1024,
            proxy: None,
        }
    }
}

impl Default for LogFile {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
        }
    }
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
    pub callers: Option<crate::callers::Settings>,
    pub telemetry: TelemetryConfig,
    /// `[webhooks]`, validated.
    pub webhooks: crate::webhooks::Settings,
}

/// `[tokens]`, validated.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// TTL when the request names none.
    pub default_ttl_s: u64,
    pub max_ttl_s: u64,
    /// The `(resource, action)` pairs that may be minted.
    pub allow: Vec<(Resource, Action)>,
    pub user_tokens: bool,
    /// Whether `*` may appear as feed, resource, action or user id.
    pub wildcards: bool,
    /// The header a trusted proxy sets to the caller's user id.
    pub identity_header: Option<http::HeaderName>,
    /// The app's feed group slugs (empty: any slug).
    pub feed_groups: Vec<String>,
    /// Browser origins allowed to call `/tokens`.
    pub cors_origins: Vec<http::HeaderValue>,
    /// Every feed group of the app (`feed_groups` included).
    pub app_feed_groups: Vec<String>,
    /// `/tokens` requests in flight before 503 (read at start-up).
    pub max_in_flight: usize,
    /// `[tokens.oidc]`, when set.
    pub oidc: Option<crate::oidc::OidcSettings>,
}

impl TokensConfig {
    fn validate(t: TokensFile) -> Result<Self, ConfigError> {
        if t.default_ttl_s == 0 {
            return Err(ConfigError::new(
                "tokens.default_ttl_s",
                "must be greater than 0",
            ));
        }
        if t.max_ttl_s < t.default_ttl_s {
            return Err(ConfigError::new(
                "tokens.max_ttl_s",
                "must be at least tokens.default_ttl_s",
            ));
        }
        let allow = t
            .allow
            .iter()
            .map(|a| parse_allowed_pair(a))
            .collect::<Result<_, _>>()?;
        let identity_header = parse_identity_header(t.identity_header.as_deref())?;
        for (key, groups) in [
            ("tokens.feed_groups", &t.feed_groups),
            ("tokens.app_feed_groups", &t.app_feed_groups),
        ] {
            for g in groups {
                crate::stream::Slug::parse(g)
                    .map_err(|e| ConfigError::new(key, format!("{g:?} is not a feed slug: {e}")))?;
            }
        }
        let oidc = t
            .oidc
            .map(crate::oidc::OidcSettings::validate)
            .transpose()?;
        if identity_header.is_some() && oidc.is_some() {
            return Err(ConfigError::new(
                "tokens.oidc",
                "cannot be set together with tokens.identity_header: one source of identity",
            ));
        }
        if (identity_header.is_some() || oidc.is_some()) && t.feed_groups.is_empty() {
            // A claim is slug and user id glued together (`user` + `42`): without the list of
            // slugs, the gateway cannot tell whether a claim also names another user's feed.
            return Err(ConfigError::new(
                "tokens.feed_groups",
                "must list the app's feed group slugs when tokens.identity_header or \
                 [tokens.oidc] is set",
            ));
        }
        let mut app_feed_groups = t.app_feed_groups;
        for g in &t.feed_groups {
            if !app_feed_groups.contains(g) {
                app_feed_groups.push(g.clone());
            }
        }
        let max_in_flight = positive("tokens.max_in_flight", t.max_in_flight)?;
        let cors_origins = t
            .cors_origins
            .iter()
            .map(|o| {
                parse_origin(o).map_err(|e| ConfigError::new("tokens.cors_origins", e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            default_ttl_s: t.default_ttl_s,
            max_ttl_s: t.max_ttl_s,
            allow,
            user_tokens: t.user_tokens,
            wildcards: t.wildcards,
            identity_header,
            feed_groups: t.feed_groups,
            cors_origins,
            app_feed_groups,
            max_in_flight,
            oidc,
        })
    }
}

/// One entry of `tokens.allow`: `resource/action`, each a claim value Stream knows.
fn parse_allowed_pair(a: &str) -> Result<(Resource, Action), ConfigError> {
    a.split_once('/')
        .and_then(|(r, x)| Some((Resource::parse(r)?, Action::parse(x)?)))
        .ok_or_else(|| {
            let names =
                |v: &mut dyn Iterator<Item = &'static str>| v.collect::<Vec<_>>().join(", ");
            ConfigError::new(
                "tokens.allow",
                format!(
                    "{a:?} is not resource/action with a resource in {} and an action in {}",
                    names(&mut Resource::ALL.iter().map(|r| r.as_str())),
                    names(&mut Action::ALL.iter().map(|x| x.as_str())),
                ),
            )
        })
}

/// `tokens.identity_header`: unset or blank is none; otherwise a header name (lower-cased).
fn parse_identity_header(h: Option<&str>) -> Result<Option<http::HeaderName>, ConfigError> {
    match h.map(str::trim) {
        None | Some("") => Ok(None),
        Some(h) => http::HeaderName::from_bytes(h.as_bytes())
            .map(Some)
            .map_err(|_| {
                ConfigError::new(
                    "tokens.identity_header",
                    format!("{h:?} is not a header name"),
                )
            }),
    }
}

/// Why an entry of `tokens.cors_origins` is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `*`: allowed nowhere, since any web site could then ask for tokens on a user's behalf.
    #[error("list the origins explicitly: * would let any web site ask for tokens")]
    Wildcard,
    /// Not `scheme://host[:port]` with http or https, nothing after, as browsers send it.
    #[error("{0:?} is not an origin such as https://app.example.com")]
    NotAnOrigin(String),
}

/// A browser origin (`https://app.example.com`, `http://localhost:3000`), as the value the
/// `Access-Control-Allow-Origin` header answers with.
pub fn parse_origin(o: &str) -> Result<http::HeaderValue, OriginError> {
    if o == "*" {
        return Err(OriginError::Wildcard);
    }
    let not_an_origin = || OriginError::NotAnOrigin(o.to_owned());
    split_http_url(o).map_err(|_| not_an_origin())?;
    if o.ends_with('/') {
        return Err(not_an_origin());
    }
    http::HeaderValue::from_str(o).map_err(|_| not_an_origin())
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// In-flight proxied requests before 503.
    pub max_concurrency: usize,
    /// Drain time on SIGTERM.
    pub shutdown_grace: Duration,
    /// Time between SIGTERM and closing the listener, with `/readyz` at 503.
    pub drain_delay: Duration,
    /// Longest time from the start of a request head (or of the connection) to its end.
    pub header_read_timeout: Duration,
    /// Longest time a keep-alive connection stays open with no request.
    pub idle_timeout: Duration,
    /// Open connections before new ones are closed at once.
    pub max_connections: usize,
    /// Runtime worker threads (one per CPU unless set).
    pub workers: usize,
    /// Extra names the internal listener answers to (`server.allowed_hosts`); `None`: any
    /// (`*` listed).
    pub allowed_hosts: Option<Vec<String>>,
    /// `server.public_listen` and its limits.
    pub public: Option<Listener>,
    /// `server.admin_listen` and its limits.
    pub admin: Option<Listener>,
}

/// A listener besides the internal one: its address and its own connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Head timeout of the admin listener: probes send their request at once.
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle timeout of the admin listener.
pub const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// `[upstream]`, validated.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// One attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The whole request.
    pub deadline: Duration,
    pub max_retries: u32,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_max: Duration,
    /// Retry budget, percent of requests.
    pub retry_budget_percent: u32,
    pub pool_idle_timeout: Duration,
    /// Largest answer read from Stream.
    pub max_response_bytes: usize,
    /// The HTTP proxy for upstream calls (`http://host:port`), if any.
    pub proxy: Option<String>,
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

/// The prefix a secret needs in emulator mode.
pub const EMULATOR_SECRET_PREFIX: &str = "emulator-";

/// A random hex string of `n` bytes, for the emulator's generated credentials.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
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
        let stream = StreamConfig::validate(raw.stream, source)?;
        let server = ServerConfig::validate(raw.server)?;
        let upstream = UpstreamConfig::validate(raw.upstream)?;
        let tokens = TokensConfig::validate(raw.tokens)?;
        let emulator = EmulatorSettings::validate(raw.emulator)?;
        let mut callers = raw
            .callers
            .map(crate::callers::Settings::validate)
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

impl StreamConfig {
    fn validate(
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
            app_id: present(s.app_id)
                .or_else(|| s.emulator.then(crate::emulator::realtime::generated_app_id)),
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
    // The emulator's request log (unauthenticated, on loopback) shows the tokens the
    // gateway signs; signed with a real secret, they would work against Stream.
    if emulator
        && api_secret
            .as_deref()
            .is_some_and(|v| !v.starts_with(EMULATOR_SECRET_PREFIX))
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

fn address(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{v:?} is not an address such as 127.0.0.1:8080"),
        )
    })
}

/// `server.allowed_hosts`: host names or IP addresses, without port; `*` alone turns the check off.
fn allowed_hosts(v: &[String]) -> Result<Option<Vec<String>>, ConfigError> {
    let key = "server.allowed_hosts";
    if v.iter().any(|h| h == "*") {
        return Ok(None);
    }
    v.iter()
        .map(|h| {
            crate::guard::host_name(h)
                .filter(|n| *n == h.to_ascii_lowercase().trim_end_matches('.'))
                .ok_or_else(|| {
                    ConfigError::new(
                        key,
                        format!(
                            "{h:?} is not a host name such as gateway.internal \
                             (no scheme, no port)"
                        ),
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

impl ServerConfig {
    fn validate(sv: ServerFile) -> Result<Self, ConfigError> {
        let listen = address("server.listen", &sv.listen)?;
        let public = match present(sv.public_listen) {
            None => None,
            Some(a) => Some(Listener {
                listen: address("server.public_listen", &a)?,
                max_connections: positive(
                    "server.public_max_connections",
                    sv.public_max_connections,
                )?,
                header_read_timeout: ms(
                    "server.public_header_read_timeout_ms",
                    sv.public_header_read_timeout_ms,
                )?,
                idle_timeout: ms("server.public_idle_timeout_ms", sv.public_idle_timeout_ms)?,
            }),
        };
        let admin = match present(sv.admin_listen) {
            None => None,
            Some(a) => Some(Listener {
                listen: address("server.admin_listen", &a)?,
                max_connections: positive(
                    "server.admin_max_connections",
                    sv.admin_max_connections,
                )?,
                header_read_timeout: ADMIN_HEADER_READ_TIMEOUT,
                idle_timeout: ADMIN_IDLE_TIMEOUT,
            }),
        };
        let ports = [
            Some(listen),
            public.map(|l| l.listen),
            admin.map(|l| l.listen),
        ];
        for (i, key) in ["server.public_listen", "server.admin_listen"]
            .iter()
            .enumerate()
        {
            let Some(a) = ports[i + 1] else { continue };
            if a.port() != 0 && ports[..=i].iter().flatten().any(|b| b.port() == a.port()) {
                return Err(ConfigError::new(
                    key,
                    "must use a port of its own: each listener serves other routes to other callers",
                ));
            }
        }
        Ok(Self {
            allowed_hosts: allowed_hosts(&sv.allowed_hosts)?,
            public,
            admin,
            listen,
            max_body_bytes: positive("server.max_body_bytes", sv.max_body_bytes)?,
            max_concurrency: positive("server.max_concurrency", sv.max_concurrency)?,
            shutdown_grace: Duration::from_millis(sv.shutdown_grace_ms),
            drain_delay: Duration::from_millis(sv.drain_delay_ms),
            header_read_timeout: ms("server.header_read_timeout_ms", sv.header_read_timeout_ms)?,
            idle_timeout: ms("server.idle_timeout_ms", sv.idle_timeout_ms)?,
            max_connections: positive("server.max_connections", sv.max_connections)?,
            workers: match sv.workers {
                Some(n) => positive("server.workers", n)?,
                None => std::thread::available_parallelism().map_or(1, usize::from),
            },
        })
    }
}

impl ServerConfig {
    /// Where `--healthcheck` connects: the listener that serves `/healthz` and `/readyz`, on
    /// loopback when it listens on every interface.
    pub fn probe_addr(&self) -> SocketAddr {
        // The admin listener keeps connections of its own: a probe there answers under a flood.
        let listen = self.admin.map_or(self.listen, |a| a.listen);
        let ip = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        SocketAddr::new(ip, listen.port())
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

impl UpstreamConfig {
    fn validate(u: UpstreamFile) -> Result<Self, ConfigError> {
        let upstream = Self {
            timeout: ms("upstream.timeout_ms", u.timeout_ms)?,
            connect_timeout: ms("upstream.connect_timeout_ms", u.connect_timeout_ms)?,
            deadline: ms("upstream.deadline_ms", u.deadline_ms)?,
            max_retries: u.max_retries,
            backoff_base: ms("upstream.backoff_base_ms", u.backoff_base_ms)?,
            backoff_max: ms("upstream.backoff_max_ms", u.backoff_max_ms)?,
            retry_budget_percent: u.retry_budget_percent,
            pool_idle_timeout: ms("upstream.pool_idle_timeout_ms", u.pool_idle_timeout_ms)?,
            max_response_bytes: positive("upstream.max_response_bytes", u.max_response_bytes)?,
            proxy: present(u.proxy).map(|p| validate_proxy(&p)).transpose()?,
        };
        if upstream.backoff_base > upstream.backoff_max {
            return Err(ConfigError::new(
                "upstream.backoff_base_ms",
                "must not exceed upstream.backoff_max_ms",
            ));
        }
        if upstream.retry_budget_percent > 100 {
            return Err(ConfigError::new(
                "upstream.retry_budget_percent",
                "must be between 0 and 100",
            ));
        }
        Ok(upstream)
    }
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
            + crate::auth::jwt::CACHE_BYTES as u64
            + connections * CONNECTION_MEMORY_BYTES
            + s.max_concurrency as u64 * per_request
            + webhooks
    }
}

/// With the emulator, a configured URL of Stream's is refused, naming its key: the emulator
/// replaces Stream, and a configured URL suggests talking to a real one was meant.
fn refuse_with_emulator(set: &[(&str, bool)]) -> Result<(), ConfigError> {
    match set.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(ConfigError::new(
            key,
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

/// `[emulator]` as read: settings of the embedded emulator only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorFile {
    /// `[emulator.feed_groups]`: `slug = "flat" | "aggregated" | "notification"`.
    pub feed_groups: std::collections::BTreeMap<String, crate::emulator::FeedKind>,
    /// Realtime (Faye) also served here, where stream-js's `LOCAL_FAYE` connects; `""`: on
    /// the emulator's port only.
    pub realtime_listen: String,
    /// Activities the emulator holds at most; adds beyond are refused.
    pub max_activities: usize,
    /// Requests kept for `GET /_emulator/requests`, oldest out first.
    pub max_request_log: usize,
    /// The largest document `POST /_emulator/import` (and `--emulator-seed`) reads.
    pub max_import_bytes: usize,
    /// Where the state is kept across restarts (`emulator.sqlite3` there); `""`: memory only.
    pub data_dir: String,
}

/// Where stream-js's `LOCAL_FAYE` looks for Faye (`http://localhost:9999/faye/`).
pub const DEFAULT_REALTIME_LISTEN: &str = "127.0.0.1:9999";

impl Default for EmulatorFile {
    fn default() -> Self {
        Self {
            feed_groups: Default::default(),
            realtime_listen: DEFAULT_REALTIME_LISTEN.into(),
            max_activities: crate::emulator::Bounds::default().max_activities,
            max_request_log: crate::emulator::Bounds::default().max_request_log,
            max_import_bytes: crate::emulator::Bounds::default().max_import_bytes,
            data_dir: String::new(),
        }
    }
}

/// `[emulator]`, validated.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// The kind of each feed group: the configured ones on top of Stream's default app
    /// (`aggregated` aggregated, `notification` notification, the rest flat).
    pub feed_groups: crate::emulator::FeedGroups,
    /// `emulator.realtime_listen`: `None` when empty.
    pub realtime_listen: Option<SocketAddr>,
    /// `emulator.max_activities`, `max_request_log`, `max_import_bytes`.
    pub bounds: crate::emulator::Bounds,
    /// `emulator.data_dir`: `None` when empty (memory only).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self {
            feed_groups: Default::default(),
            realtime_listen: DEFAULT_REALTIME_LISTEN.parse().ok(),
            bounds: Default::default(),
            data_dir: None,
        }
    }
}

impl EmulatorSettings {
    fn validate(e: EmulatorFile) -> Result<Self, ConfigError> {
        for slug in e.feed_groups.keys() {
            crate::stream::Slug::parse(slug).map_err(|err| {
                ConfigError::new(&format!("emulator.feed_groups.{slug}"), err.to_string())
            })?;
        }
        let listen = e.realtime_listen.trim();
        let realtime_listen = if listen.is_empty() {
            None
        } else {
            Some(listen.parse().map_err(|_| {
                ConfigError::new(
                    "emulator.realtime_listen",
                    format!(
                        "{listen:?} is not an address such as 127.0.0.1:9999 (or \"\" for none)"
                    ),
                )
            })?)
        };
        for (key, v) in [
            ("emulator.max_activities", e.max_activities),
            ("emulator.max_request_log", e.max_request_log),
            ("emulator.max_import_bytes", e.max_import_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::new(key, "must be at least 1".to_owned()));
            }
        }
        Ok(Self {
            feed_groups: crate::emulator::FeedGroups::new(e.feed_groups.into_iter().collect()),
            realtime_listen,
            bounds: crate::emulator::Bounds {
                max_activities: e.max_activities,
                max_request_log: e.max_request_log,
                max_import_bytes: e.max_import_bytes,
            },
            data_dir: Some(e.data_dir.trim())
                .filter(|d| !d.is_empty())
                .map(Into::into),
        })
    }
}

/// `http://host:port`: a plain HTTP proxy (HTTPS calls go through it with `CONNECT`).
fn validate_proxy(u: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError::new(
            "upstream.proxy",
            // Never the value: a proxy URL may carry a password.
            "is not an HTTP proxy URL such as http://proxy.internal:3128",
        )
    };
    let authority = u.strip_prefix("http://").ok_or_else(bad)?;
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ', '%']);
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(format!("http://{authority}"))
}

/// `[telemetry]` as read: trace export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryFile {
    /// The collector's OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); none: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// One export's timeout, connecting included.
    pub otlp_timeout_ms: u64,
    /// Longest wait for a batch to fill before it is sent.
    pub batch_delay_ms: u64,
    pub max_batch_spans: u64,
    /// Spans waiting for export; beyond it new ones are dropped and counted.
    pub max_queue_spans: u64,
}

impl Default for TelemetryFile {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "stream-gateway".into(),
            otlp_timeout_ms: 2000,
            batch_delay_ms: 1000,
            max_batch_spans: 512,
            max_queue_spans: 2048,
        }
    }
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Where spans are posted; none: export is off.
    pub otlp_endpoint: Option<http::Uri>,
    pub service_name: String,
    pub otlp_timeout: Duration,
    pub batch_delay: Duration,
    pub max_batch_spans: usize,
    pub max_queue_spans: usize,
}

impl TelemetryConfig {
    fn validate(t: TelemetryFile) -> Result<Self, ConfigError> {
        let cfg = Self {
            otlp_endpoint: present(t.otlp_endpoint)
                .map(|u| validate_otlp_endpoint(&u))
                .transpose()?,
            service_name: present(Some(t.service_name))
                .ok_or_else(|| ConfigError::new("telemetry.service_name", "must not be empty"))?,
            otlp_timeout: ms("telemetry.otlp_timeout_ms", t.otlp_timeout_ms)?,
            batch_delay: ms("telemetry.batch_delay_ms", t.batch_delay_ms)?,
            max_batch_spans: positive("telemetry.max_batch_spans", t.max_batch_spans)?,
            max_queue_spans: positive("telemetry.max_queue_spans", t.max_queue_spans)?,
        };
        if cfg.max_batch_spans > cfg.max_queue_spans {
            return Err(ConfigError::new(
                "telemetry.max_batch_spans",
                "must not exceed telemetry.max_queue_spans",
            ));
        }
        Ok(cfg)
    }
}

/// `telemetry.otlp_endpoint`: an http(s) URL with the path spans are posted to.
fn validate_otlp_endpoint(u: &str) -> Result<http::Uri, ConfigError> {
    // Never the value: a collector URL may carry credentials.
    let bad = |why: &str| ConfigError::new("telemetry.otlp_endpoint", why);
    let uri: http::Uri = u.parse().map_err(|_| bad("is not a valid URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must be an http or https URL"));
    }
    if uri
        .authority()
        .is_none_or(|a| a.host().is_empty() || a.as_str().contains('@'))
    {
        return Err(bad("must name a host, without user info"));
    }
    if matches!(uri.path(), "" | "/") {
        return Err(bad(
            "must be the full traces URL, such as http://collector:4318/v1/traces",
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
