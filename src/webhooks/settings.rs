//! `[webhooks]` as read ([`WebhooksFile`]) and validated ([`Settings`]): which gateway paths
//! take Stream's webhooks, where each is forwarded, and the limits of verifying and forwarding.
//! A problem names its key (`webhooks.routes.chat.forward_to`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{check_name, ConfigError};

/// `webhooks.timeout_ms` by default: Stream gives a push webhook 3 s, the target gets less.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 2500;
/// `webhooks.max_body_bytes` by default: 4 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 4 << 20;
/// `webhooks.dedupe_window_s` by default.
pub(crate) const DEFAULT_DEDUPE_WINDOW_S: u64 = 600;
/// `webhooks.dedupe_max_entries` by default.
pub(crate) const DEFAULT_DEDUPE_MAX_ENTRIES: u64 = 10_000;

/// Paths the gateway serves itself, which a webhook route may neither be nor sit under.
pub(crate) const RESERVED_PATHS: &[&str] = &[
    "/api",
    "/analytics",
    "/personalization",
    "/tokens",
    "/healthz",
    "/readyz",
    "/metrics",
    "/_emulator",
];

/// `[webhooks]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksFile {
    /// `[webhooks.routes.<name>]`.
    pub routes: BTreeMap<String, RouteFile>,
    /// Longest wait for the target's whole answer (ms).
    pub timeout_ms: u64,
    /// Largest webhook body taken, and largest answer read from the target.
    pub max_body_bytes: u64,
    /// How long a webhook id answered 2xx is answered again from memory (s).
    pub dedupe_window_s: u64,
    /// Most answers remembered; past it the oldest goes first.
    pub dedupe_max_entries: u64,
}

impl Default for WebhooksFile {
    fn default() -> Self {
        Self {
            routes: BTreeMap::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dedupe_window_s: DEFAULT_DEDUPE_WINDOW_S,
            dedupe_max_entries: DEFAULT_DEDUPE_MAX_ENTRIES,
        }
    }
}

/// `[webhooks.routes.<name>]` as read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteFile {
    /// The path on the gateway Stream is given (`/webhooks/chat`).
    pub path: Option<String>,
    /// The internal URL verified webhooks go to (`http://chat-events:8080/hooks`).
    pub forward_to: Option<String>,
}

/// `[webhooks]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The routes, by name.
    pub routes: Vec<Route>,
    /// `webhooks.timeout_ms`.
    pub timeout: Duration,
    /// `webhooks.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `webhooks.dedupe_window_s`.
    pub dedupe_window: Duration,
    /// `webhooks.dedupe_max_entries`.
    pub dedupe_max_entries: usize,
}

/// One webhook route, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lower-case letters, digits, `_` and `-` (the `route` label of the metrics).
    pub name: String,
    /// Starts with `/`; none of the gateway's own paths.
    pub path: String,
    /// An http(s) URL.
    pub forward_to: http::Uri,
}

impl Default for Settings {
    fn default() -> Self {
        Self::validate(WebhooksFile::default()).expect("the defaults are valid")
    }
}

impl Settings {
    /// Validates `[webhooks]`; the first problem names its key.
    pub fn validate(f: WebhooksFile) -> Result<Self, ConfigError> {
        let timeout = match f.timeout_ms {
            ms @ 1..=60_000 => Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::new(
                    "webhooks.timeout_ms",
                    "must be 1 to 60000 (milliseconds); Stream waits 3 s for a push webhook",
                ))
            }
        };
        if f.max_body_bytes == 0 || f.max_body_bytes > 64 << 20 {
            return Err(ConfigError::new(
                "webhooks.max_body_bytes",
                "must be 1 to 67108864 (64 MiB)",
            ));
        }
        if f.dedupe_window_s > 86_400 {
            return Err(ConfigError::new(
                "webhooks.dedupe_window_s",
                "must be 0 (no memory) to 86400 (a day)",
            ));
        }
        if f.dedupe_max_entries > 10_000_000 {
            return Err(ConfigError::new(
                "webhooks.dedupe_max_entries",
                "must be 0 (no memory) to 10000000",
            ));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(f.routes.len());
        for (name, r) in f.routes {
            let route = Route::validate(name, r)?;
            if let Some(other) = routes.iter().find(|o| o.path == route.path) {
                return Err(ConfigError::new(
                    format!("webhooks.routes.{}.path", route.name),
                    format!(
                        "{:?} is already the path of webhooks.routes.{}",
                        route.path, other.name
                    ),
                ));
            }
            routes.push(route);
        }
        Ok(Self {
            routes,
            timeout,
            max_body_bytes: f.max_body_bytes as usize,
            dedupe_window: Duration::from_secs(f.dedupe_window_s),
            dedupe_max_entries: f.dedupe_max_entries as usize,
        })
    }
}

impl Route {
    fn validate(name: String, r: RouteFile) -> Result<Self, ConfigError> {
        let key = |k: &str| format!("webhooks.routes.{name}.{k}");
        check_name(format!("webhooks.routes.{name}"), &name, "a route's name")?;
        let path = r
            .path
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    key("path"),
                    "missing (the path Stream is given, such as /webhooks/chat)",
                )
            })?;
        check_path(&path).map_err(|p| ConfigError::new(key("path"), p))?;
        let forward_to = r
            .forward_to
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    key("forward_to"),
                    "missing (the internal URL, such as http://chat-events:8080/hooks)",
                )
            })?;
        let forward_to =
            check_target(&forward_to).map_err(|p| ConfigError::new(key("forward_to"), p))?;
        Ok(Self {
            name,
            path,
            forward_to,
        })
    }
}

/// A route's path: `/` and then segments of URL-safe characters, none of the gateway's own.
fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p == "/" {
        return Err(format!(
            "{p:?} must start with / and name a path, such as /webhooks/chat"
        ));
    }
    let safe = |b: u8| b.is_ascii_alphanumeric() || b"/-._~".contains(&b);
    if !p.bytes().all(safe) || p.contains("//") || p.ends_with('/') {
        return Err(format!(
            "{p:?} must be segments of letters, digits, `-`, `.`, `_` or `~` separated by single \
             `/`, with no trailing `/`"
        ));
    }
    let lower = p.to_ascii_lowercase();
    if let Some(r) = RESERVED_PATHS.iter().find(|r| {
        lower == **r || lower.starts_with(&format!("{r}/")) || lower.starts_with(&format!("{r}."))
    }) {
        return Err(format!("{p:?} collides with the gateway's own {r}"));
    }
    Ok(())
}

/// A route's target: an absolute http or https URL with a host and no user info.
fn check_target(u: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = u
        .parse()
        .map_err(|_| format!("{u:?} is not a URL such as http://chat-events:8080/hooks"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{u:?} must be an http or https URL"));
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && !a.as_str().contains('@') => {}
        _ => return Err(format!("{u:?} must name a host, without user info")),
    }
    if u.contains('#') {
        return Err(format!("{u:?} must not have a fragment"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_route(path: &str, forward_to: &str) -> Result<Settings, ConfigError> {
        let mut f = WebhooksFile::default();
        f.routes.insert(
            "chat".into(),
            RouteFile {
                path: Some(path.into()),
                forward_to: Some(forward_to.into()),
            },
        );
        Settings::validate(f)
    }

    #[test]
    fn the_defaults_are_the_contract_and_serve_no_route() {
        let s = Settings::default();
        assert!(s.routes.is_empty());
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(s.dedupe_window, Duration::from_secs(600));
        assert_eq!(s.dedupe_max_entries, 10_000);
    }

    #[test]
    fn a_route_takes_a_path_and_an_http_or_https_target() {
        let s = with_route("/webhooks/chat", "http://chat-events:8080/hooks?x=1").unwrap();
        assert_eq!(s.routes[0].name, "chat");
        assert_eq!(s.routes[0].path, "/webhooks/chat");
        assert_eq!(
            s.routes[0].forward_to.to_string(),
            "http://chat-events:8080/hooks?x=1"
        );
        assert!(with_route("/hooks", "https://events.internal").is_ok());
    }

    #[test]
    fn a_path_that_is_not_a_path_or_is_the_gateways_own_is_named() {
        for bad in [
            "webhooks/chat",
            "/",
            "/webhooks/{id}",
            "/webhooks/*rest",
            "/webhooks//chat",
            "/webhooks/chat/",
            "/web hooks",
            "/api",
            "/api/v1.0/feed",
            "/API/hooks",
            "/tokens",
            "/healthz",
            "/readyz",
            "/metrics",
            "/_emulator/webhooks/send",
            "/api.json",
        ] {
            let e = with_route(bad, "http://t:1/h").unwrap_err();
            assert_eq!(e.key, "webhooks.routes.chat.path", "{bad}");
        }
        // Sharing a prefix with a reserved path is not colliding with it.
        assert!(with_route("/apis/hooks", "http://t:1/h").is_ok());
        assert!(with_route("/tokensink", "http://t:1/h").is_ok());
    }

    #[test]
    fn a_target_that_is_not_an_http_url_is_named() {
        for bad in [
            "chat-events:8080/hooks",
            "ftp://chat-events/hooks",
            "http://",
            "http://user:pw@chat-events/hooks",
            "http://chat-events/hooks#frag",
            "not a url",
            "/hooks",
        ] {
            let e = with_route("/webhooks/chat", bad).unwrap_err();
            assert_eq!(e.key, "webhooks.routes.chat.forward_to", "{bad}");
        }
    }

    #[test]
    fn a_missing_key_a_bad_name_or_a_shared_path_is_named() {
        let mut f = WebhooksFile::default();
        f.routes.insert("chat".into(), RouteFile::default());
        assert_eq!(
            Settings::validate(f.clone()).unwrap_err().key,
            "webhooks.routes.chat.path"
        );
        f.routes.get_mut("chat").unwrap().path = Some("/webhooks/chat".into());
        assert_eq!(
            Settings::validate(f.clone()).unwrap_err().key,
            "webhooks.routes.chat.forward_to"
        );
        f.routes.get_mut("chat").unwrap().forward_to = Some("http://c:1/h".into());
        f.routes.insert(
            "feeds".into(),
            RouteFile {
                path: Some("/webhooks/chat".into()),
                forward_to: Some("http://f:1/h".into()),
            },
        );
        let e = Settings::validate(f.clone()).unwrap_err();
        assert_eq!(e.key, "webhooks.routes.feeds.path");
        assert!(e.problem.contains("webhooks.routes.chat"), "{e:?}");
        f.routes.get_mut("feeds").unwrap().path = Some("/webhooks/feeds".into());
        assert_eq!(Settings::validate(f.clone()).unwrap().routes.len(), 2);
        f.routes.insert("Bad".into(), RouteFile::default());
        assert_eq!(
            Settings::validate(f).unwrap_err().key,
            "webhooks.routes.Bad"
        );
    }

    #[test]
    fn limits_out_of_range_are_named() {
        type Set = fn(&mut WebhooksFile);
        let cases: [(&str, Set); 6] = [
            ("webhooks.timeout_ms", |f| f.timeout_ms = 0),
            ("webhooks.timeout_ms", |f| f.timeout_ms = 60_001),
            ("webhooks.max_body_bytes", |f| f.max_body_bytes = 0),
            ("webhooks.max_body_bytes", |f| {
                f.max_body_bytes = (64 << 20) + 1
            }),
            ("webhooks.dedupe_window_s", |f| f.dedupe_window_s = 86_401),
            ("webhooks.dedupe_max_entries", |f| {
                f.dedupe_max_entries = 10_000_001
            }),
        ];
        for (key, set) in cases {
            let mut f = WebhooksFile::default();
            set(&mut f);
            assert_eq!(Settings::validate(f).unwrap_err().key, key);
        }
        let zero = Settings::validate(WebhooksFile {
            dedupe_window_s: 0,
            dedupe_max_entries: 0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(zero.dedupe_max_entries, 0);
    }
}
