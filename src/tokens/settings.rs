//! `[tokens]` as read ([`TokensFile`]) and validated ([`TokensConfig`]): the policy of
//! `POST /tokens`. A problem names its key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{ms, positive, split_http_url, ConfigError};
use stream_wire::{Action, Resource};

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
    /// How long a `/tokens` request body may take to arrive before 408.
    pub body_timeout_ms: u64,
    /// `[tokens.oidc]`: the caller's identity from their own IdP token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<crate::oidc::settings::OidcFile>,
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
            body_timeout_ms: 10_000,
            oidc: None,
        }
    }
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
    /// How long a `/tokens` request body may take to arrive before 408.
    pub body_timeout: Duration,
    /// `[tokens.oidc]`, when set.
    pub oidc: Option<crate::oidc::settings::OidcSettings>,
}

impl TokensConfig {
    pub fn validate(t: TokensFile) -> Result<Self, ConfigError> {
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
                stream_wire::Slug::parse(g)
                    .map_err(|e| ConfigError::new(key, format!("{g:?} is not a feed slug: {e}")))?;
            }
        }
        let oidc = t
            .oidc
            .map(crate::oidc::settings::OidcSettings::validate)
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
        let body_timeout = ms("tokens.body_timeout_ms", t.body_timeout_ms)?;
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
            body_timeout,
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
