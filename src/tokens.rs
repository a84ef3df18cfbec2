//! `POST /tokens`: short-lived tokens for frontends, minted under the `[tokens]` policy.
//!
//! Two kinds: feed tokens (`{"feed": "user:42", "resource": "feed", "action": "read"}` ->
//! claims `resource`, `action`, `feed_id`, `exp`) and user tokens (`{"user_id": "42"}` ->
//! claims `user_id`, `exp`), what Stream's client-side SDKs use for a user session. Never `iat`.
//!
//! [`decide`] is the whole policy, pure: the request, the caller's identity (vouched for by a
//! trusted proxy's header, or by the caller's own IdP token under `[tokens.oidc]`), and the
//! configuration in; a grant or the rule that refused out.
//!
//! `/tokens` has its own pool of `tokens.max_in_flight` permits, bodies included, so slow
//! bodies on the proxy cannot starve it, nor slow bodies here the proxy. Every refusal is
//! counted in `gateway_tokens_refused_total{reason}` and logged with its reason (and, for an
//! IdP token, its `iss` and `kid`; never the token).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::SemaphorePermit;

use crate::error::ApiError;
use crate::oidc::bearer;
use crate::state::{AppState, BodyRules, Verdict};
use settings::TokensConfig;
use stream_wire::auth::jwt::{encode, Claims};
use stream_wire::{Action, FeedId, InvalidInput, Resource, UserId};

pub(crate) mod settings;

/// A token request as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `slug:user_id`, or `*` where wildcards are allowed (feed tokens).
    pub feed: Option<String>,
    /// The `resource` claim (feed tokens).
    pub resource: Option<String>,
    /// The `action` claim (feed tokens).
    pub action: Option<String>,
    /// The user (user tokens).
    pub user_id: Option<String>,
    /// Seconds until `exp`.
    pub expires_in: Option<u64>,
}

/// What the policy grants: the claims (without `exp`) and the lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Claims to sign.
    pub claims: Claims,
    /// Seconds until `exp`.
    pub ttl_s: u64,
    /// `feed` or `user`, for logs and metrics.
    pub kind: &'static str,
}

fn input(field: &str, reason: &str) -> ApiError {
    ApiError::InvalidInput(InvalidInput::new(field, reason))
}

fn denied(rule: &str) -> ApiError {
    ApiError::NotAllowed(format!("token refused by policy: {rule}"))
}

/// Applies the policy. `identity` is the value of `tokens.identity_header`, when configured:
/// `None` there means the header was missing.
pub fn decide(
    req: &TokenRequest,
    identity: Option<Option<&str>>,
    cfg: &TokensConfig,
) -> Result<Grant, ApiError> {
    // Shape first (400), then identity (401), then policy (403).
    let (wanted, ttl_s) = parse_request(req, cfg)?;
    let who = check_identity(identity)?;
    let (claims, kind) = apply_policy(wanted, who, cfg)?;
    Ok(Grant {
        claims,
        ttl_s,
        kind,
    })
}

/// What a well-formed request asks for, before the policy has looked at it.
enum Wanted<'a> {
    /// A feed token; `feed` is `None` for `*`.
    Feed {
        feed: Option<FeedId>,
        resource: Resource,
        action: Action,
    },
    /// A user token for this user id, or for `*`.
    User(&'a str),
}

impl Wanted<'_> {
    fn has_wildcard(&self) -> bool {
        match self {
            Wanted::Feed {
                feed,
                resource,
                action,
            } => feed.is_none() || *resource == Resource::All || *action == Action::All,
            Wanted::User(u) => *u == "*",
        }
    }
}

/// The request's shape (400s): what it asks for, and the lifetime.
fn parse_request<'a>(
    req: &'a TokenRequest,
    cfg: &TokensConfig,
) -> Result<(Wanted<'a>, u64), ApiError> {
    let ttl_s = parse_ttl(req.expires_in, cfg)?;
    let wanted = match (&req.feed, &req.user_id) {
        (Some(_), Some(_)) => {
            return Err(input(
                "body",
                "give either feed (a feed token) or user_id (a user token), not both",
            ))
        }
        (None, None) => {
            return Err(input(
                "body",
                "give feed, resource and action for a feed token, or user_id for a user token",
            ))
        }
        (Some(feed), None) => parse_feed_request(feed, req)?,
        (None, Some(user)) => parse_user_request(user, req)?,
    };
    Ok((wanted, ttl_s))
}

fn parse_ttl(expires_in: Option<u64>, cfg: &TokensConfig) -> Result<u64, ApiError> {
    match expires_in {
        None => Ok(cfg.default_ttl_s),
        Some(0) => Err(input("expires_in", "must be greater than 0")),
        Some(n) if n > cfg.max_ttl_s => Err(input(
            "expires_in",
            &format!("must be at most {} (tokens.max_ttl_s)", cfg.max_ttl_s),
        )),
        Some(n) => Ok(n),
    }
}

fn parse_feed_request<'a>(feed: &str, req: &TokenRequest) -> Result<Wanted<'a>, ApiError> {
    let resource = req
        .resource
        .as_deref()
        .ok_or_else(|| input("resource", "is required for a feed token"))?;
    let action = req
        .action
        .as_deref()
        .ok_or_else(|| input("action", "is required for a feed token"))?;
    let resource = Resource::parse(resource).ok_or_else(|| {
        let names = Resource::ALL.map(Resource::as_str);
        input("resource", &format!("must be one of {}", names.join(", ")))
    })?;
    let action = Action::parse(action).ok_or_else(|| {
        let names = Action::ALL.map(Action::as_str);
        input("action", &format!("must be one of {}", names.join(", ")))
    })?;
    let feed = if feed == "*" {
        None
    } else {
        Some(FeedId::parse(feed).map_err(|e| input("feed", &e.to_string()))?)
    };
    Ok(Wanted::Feed {
        feed,
        resource,
        action,
    })
}

fn parse_user_request<'a>(user: &'a str, req: &TokenRequest) -> Result<Wanted<'a>, ApiError> {
    if req.resource.is_some() || req.action.is_some() {
        return Err(input(
            "body",
            "resource and action belong to feed tokens; a user token takes only user_id",
        ));
    }
    if user != "*" {
        UserId::parse(user).map_err(|e| input("user_id", &e.to_string()))?;
    }
    Ok(Wanted::User(user))
}

/// The caller's user id when `tokens.identity_header` is configured (401 when the header
/// is missing); `None` when it is not.
fn check_identity(identity: Option<Option<&str>>) -> Result<Option<&str>, ApiError> {
    match identity {
        None => Ok(None),
        Some(None) => Err(ApiError::Unauthenticated(
            "token refused: the identity header is missing (tokens.identity_header)".into(),
        )),
        Some(Some(who)) => Ok(Some(who)),
    }
}

/// The policy (403s): the claims to sign and the grant's kind.
fn apply_policy(
    wanted: Wanted<'_>,
    who: Option<&str>,
    cfg: &TokensConfig,
) -> Result<(Claims, &'static str), ApiError> {
    if wanted.has_wildcard() && !cfg.wildcards {
        return Err(denied("* is not allowed (tokens.wildcards = false)"));
    }
    match wanted {
        Wanted::Feed {
            feed,
            resource,
            action,
        } => {
            check_allowed(resource, action, cfg)?;
            if let Some(f) = &feed {
                check_feed_group(f, cfg)?;
            }
            if let Some(who) = who {
                check_feed_owner(feed.as_ref(), who, cfg)?;
            }
            let claims = Claims {
                resource: Some(resource.as_str().to_owned()),
                action: Some(action.as_str().to_owned()),
                feed_id: Some(feed.map_or_else(|| "*".to_owned(), |f| f.claim())),
                user_id: None,
                exp: None,
            };
            Ok((claims, "feed"))
        }
        Wanted::User(user) => {
            if !cfg.user_tokens {
                return Err(denied("user tokens are off (tokens.user_tokens = false)"));
            }
            if who.is_some_and(|who| who != user) {
                return Err(denied("user_id is not the caller's identity"));
            }
            let claims = Claims {
                user_id: Some(user.to_owned()),
                ..Claims::default()
            };
            Ok((claims, "user"))
        }
    }
}

fn check_allowed(resource: Resource, action: Action, cfg: &TokensConfig) -> Result<(), ApiError> {
    if cfg.allow.contains(&(resource, action)) {
        return Ok(());
    }
    let allowed: Vec<String> = cfg
        .allow
        .iter()
        .map(|(r, a)| format!("{}/{}", r.as_str(), a.as_str()))
        .collect();
    Err(denied(&format!(
        "{}/{} is not in tokens.allow ({})",
        resource.as_str(),
        action.as_str(),
        allowed.join(", ")
    )))
}

fn check_feed_group(feed: &FeedId, cfg: &TokensConfig) -> Result<(), ApiError> {
    let slug = feed.slug().as_str();
    if !cfg.feed_groups.is_empty() && !cfg.feed_groups.iter().any(|g| g == slug) {
        return Err(denied(&format!(
            "{slug} is not a feed group in tokens.feed_groups"
        )));
    }
    Ok(())
}

/// A caller with an identity gets tokens for their own feeds only, and for none whose claim
/// also reads as another user's feed.
fn check_feed_owner(feed: Option<&FeedId>, who: &str, cfg: &TokensConfig) -> Result<(), ApiError> {
    let Some(f) = feed else {
        return Err(denied("a * feed cannot be bound to the caller's identity"));
    };
    if f.user().as_str() != who {
        return Err(denied(&format!(
            "feed {f} belongs to user {}, not to the caller's identity",
            f.user().as_str()
        )));
    }
    if let Some(other) = other_reading(f, who, &cfg.app_feed_groups) {
        return Err(denied(&format!(
            "the token's feed_id {} would also read {other}, which is not the caller's",
            f.claim()
        )));
    }
    Ok(())
}

/// A feed, other than the caller's, that `feed`'s claim also names: Stream's `feed_id` claim
/// is slug and user id glued together, so `user` + `42` and `user4` + `2` are one claim.
/// Found when a slug of `groups` (every group of the app, `tokens.app_feed_groups`) is a
/// prefix of the claim and the rest is a valid user id that is not `who`.
fn other_reading(feed: &FeedId, who: &str, groups: &[String]) -> Option<String> {
    let claim = feed.claim();
    groups.iter().find_map(|g| {
        let rest = claim.strip_prefix(g.as_str())?;
        (rest != who && UserId::parse(rest).is_ok()).then(|| format!("{g}:{rest}"))
    })
}

/// A refusal of `/tokens`: the answer, the metric's reason, and what the log may say about
/// an IdP token.
struct Refused {
    error: ApiError,
    reason: &'static str,
    iss: Option<String>,
    kid: Option<String>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        let reason = match &error {
            ApiError::InvalidInput(_) => "invalid_request",
            ApiError::NotAllowed(_) => "policy",
            ApiError::Unauthenticated(_) => "identity_missing",
            ApiError::PayloadTooLarge(_) => "body_too_large",
            ApiError::RequestTimeout(..) => "body_timeout",
            ApiError::Overloaded(_) => "overloaded",
            _ => "other",
        };
        Self {
            error,
            reason,
            iss: None,
            kid: None,
        }
    }
}

impl From<crate::oidc::Refusal> for Refused {
    fn from(r: crate::oidc::Refusal) -> Self {
        Self {
            error: r.to_api_error(),
            reason: r.reason,
            iss: r.iss,
            kid: r.kid,
        }
    }
}

/// The `POST /tokens` handler. The caller is admitted (a permit of `/tokens`' own pool, then
/// its identity) before its body is read, bounded in size like a proxied one and in time by
/// `tokens.body_timeout_ms`.
pub async fn mint(State(gw): State<Arc<AppState>>, req: Request) -> Response {
    match mint_pooled(&gw, req).await {
        Ok(r) => r,
        Err(r) => {
            gw.metrics
                .counter("gateway_tokens_refused_total", &[("reason", r.reason)])
                .increment(1);
            tracing::info!(
                status = r.error.parts().0.as_u16(),
                reason = r.reason,
                detail = %r.error,
                iss = r.iss.as_deref(),
                kid = r.kid.as_deref(),
                "token refused"
            );
            r.error.into_response()
        }
    }
}

async fn mint_pooled(gw: &AppState, req: Request) -> Result<Response, Refused> {
    let (parts, body) = req.into_parts();
    let policy = gw.token_policy();
    let rules = BodyRules::Tokens {
        timeout: policy.body_timeout,
    };
    let admit = admit(gw, &parts.headers, &policy);
    let (admitted, body) = gw.receive(rules, &parts.headers, body, admit).await;
    Ok(mint_inner(gw, &policy, admitted.caller, &body?)?)
}

/// `/tokens`' admission: a permit of its own pool (`tokens.max_in_flight`), held until the
/// answer, then who the caller is (the identity header, or a verified IdP token): both before
/// the body is read.
struct Admitted<'a> {
    _permit: Option<SemaphorePermit<'a>>,
    caller: Option<Caller>,
    refused: Option<Refused>,
}

impl Verdict for Admitted<'_> {
    type Refusal = Refused;
    fn refusal(&mut self) -> Option<Refused> {
        self.refused.take()
    }
}

async fn admit<'a>(gw: &'a AppState, headers: &HeaderMap, cfg: &TokensConfig) -> Admitted<'a> {
    let Ok(permit) = gw.tokens_limiter.try_acquire() else {
        gw.metrics
            .counter("gateway_overloaded_total", &[])
            .increment(1);
        let e = ApiError::Overloaded(format!(
            "more than {} /tokens requests in flight (tokens.max_in_flight); retry later",
            gw.config.tokens.max_in_flight
        ));
        return Admitted {
            _permit: None,
            caller: None,
            refused: Some(e.into()),
        };
    };
    let (caller, refused) = match caller(gw, headers, cfg).await {
        Ok(c) => (c, None),
        Err(r) => (None, Some(r)),
    };
    Admitted {
        _permit: Some(permit),
        caller,
        refused,
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Who the caller is, when `/tokens` knows it.
struct Caller {
    /// The user id (the identity header's value, or a verified IdP token's user claim);
    /// `None` when the identity header is missing.
    user_id: Option<String>,
    /// The IdP token's `exp`: no minted token outlives it.
    idp_exp: Option<u64>,
}

/// The caller from the identity header or a verified IdP token; `None` without either rule.
async fn caller(
    gw: &AppState,
    headers: &HeaderMap,
    cfg: &TokensConfig,
) -> Result<Option<Caller>, Refused> {
    if cfg.oidc.is_some() {
        let Some(provider) = gw.oidc.provider() else {
            return Err(ApiError::Overloaded(
                "the identity provider is not configured yet; retry later".into(),
            )
            .into());
        };
        let token = bearer::parse_header(headers.get_all(axum::http::header::AUTHORIZATION))
            .map_err(|e| Refused {
                error: ApiError::Unauthenticated(format!("IdP token refused: {}", e.detail())),
                reason: match e {
                    bearer::BearerError::Missing => "missing",
                    _ => "malformed",
                },
                iss: None,
                kid: None,
            })?;
        let who = provider.verify(token, now_s()).await?;
        tracing::debug!(iss = %who.iss, kid = who.kid.as_deref(), user_id = %who.user_id, "IdP token verified");
        return Ok(Some(Caller {
            user_id: Some(who.user_id),
            idp_exp: Some(who.exp),
        }));
    }
    let Some(h) = &cfg.identity_header else {
        return Ok(None);
    };
    let mut values = headers.get_all(h).iter();
    let first = values.next();
    // Proxies disagree on which of two copies counts; decide on neither.
    if values.next().is_some() {
        return Err(input(h.as_str(), "must be given once").into());
    }
    Ok(Some(Caller {
        user_id: first
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        idp_exp: None,
    }))
}

/// The answer to an admitted caller's token request.
fn mint_inner(
    gw: &AppState,
    cfg: &TokensConfig,
    who: Option<Caller>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let req: TokenRequest = serde_json::from_slice(body)
        .map_err(|e| input("body", &format!("is not a token request: {e}")))?;
    let idp_exp = who.as_ref().and_then(|c| c.idp_exp);
    let grant = decide(&req, who.as_ref().map(|c| c.user_id.as_deref()), cfg)?;
    // A Stream token never outlives the sign-in it came from.
    let expires_at = (now_s() + grant.ttl_s).min(idp_exp.unwrap_or(u64::MAX));
    let claims = Claims {
        exp: Some(expires_at),
        ..grant.claims.clone()
    };
    let token = encode(&claims, gw.keys.load().secret());
    let scope = match &claims.user_id {
        Some(u) => format!("user_id={u}"),
        None => format!(
            "{}/{}/{}",
            claims.resource.as_deref().unwrap_or_default(),
            claims.action.as_deref().unwrap_or_default(),
            claims.feed_id.as_deref().unwrap_or_default()
        ),
    };
    tracing::info!(kind = grant.kind, scope = %scope, ttl_s = grant.ttl_s, "token minted");
    gw.metrics
        .counter(
            "gateway_tokens_minted_total",
            &[
                ("kind", grant.kind),
                ("resource", claims.resource.as_deref().unwrap_or("-")),
                ("action", claims.action.as_deref().unwrap_or("-")),
            ],
        )
        .increment(1);
    let s = &gw.config.stream;
    Ok(Json(json!({
        "token": token,
        "expires_at": expires_at,
        "api_key": s.api_key,
        "app_id": s.app_id,
        "region": s.region,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TokensConfig {
        TokensConfig {
            default_ttl_s: 3600,
            max_ttl_s: 86_400,
            allow: vec![
                (Resource::Feed, Action::Read),
                (Resource::Follower, Action::Read),
            ],
            user_tokens: true,
            wildcards: false,
            identity_header: None,
            feed_groups: vec![],
            cors_origins: vec![],
            app_feed_groups: settings::STREAM_DEFAULT_FEED_GROUPS
                .map(String::from)
                .to_vec(),
            max_in_flight: 64,
            body_timeout: std::time::Duration::from_secs(10),
            oidc: None,
        }
    }
    fn feed(f: &str, r: &str, a: &str) -> TokenRequest {
        TokenRequest {
            feed: Some(f.into()),
            resource: Some(r.into()),
            action: Some(a.into()),
            ..Default::default()
        }
    }
    fn user(u: &str) -> TokenRequest {
        TokenRequest {
            user_id: Some(u.into()),
            ..Default::default()
        }
    }
    fn status(r: Result<Grant, ApiError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => e.parts().0.as_u16(),
        }
    }

    #[test]
    fn a_feed_token_gets_the_feed_id_claim_without_colon() {
        let g = decide(&feed("user:42", "feed", "read"), None, &cfg()).unwrap();
        assert_eq!(g.claims.feed_id.as_deref(), Some("user42"));
        assert_eq!(g.claims.resource.as_deref(), Some("feed"));
        assert_eq!(g.claims.action.as_deref(), Some("read"));
        assert_eq!((g.ttl_s, g.kind), (3600, "feed"));
        assert_eq!(g.claims.exp, None, "exp is added at minting time");
    }

    #[test]
    fn a_user_token_carries_only_user_id() {
        let g = decide(&user("42"), None, &cfg()).unwrap();
        assert_eq!(
            g.claims,
            Claims {
                user_id: Some("42".into()),
                ..Claims::default()
            }
        );
    }

    #[test]
    fn ttl_defaults_and_is_bounded_by_max_ttl_on_both_sides() {
        let mut r = feed("user:42", "feed", "read");
        r.expires_in = Some(86_400);
        assert_eq!(decide(&r, None, &cfg()).unwrap().ttl_s, 86_400);
        r.expires_in = Some(86_401);
        assert_eq!(status(decide(&r, None, &cfg())), 400);
        r.expires_in = Some(0);
        assert_eq!(status(decide(&r, None, &cfg())), 400);
        r.expires_in = Some(1);
        assert_eq!(decide(&r, None, &cfg()).unwrap().ttl_s, 1);
    }

    #[test]
    fn only_allowed_resource_action_pairs_are_minted() {
        assert_eq!(
            status(decide(&feed("user:42", "follower", "read"), None, &cfg())),
            200
        );
        assert_eq!(
            status(decide(&feed("user:42", "feed", "write"), None, &cfg())),
            403
        );
        assert_eq!(
            status(decide(&feed("user:42", "follower", "delete"), None, &cfg())),
            403
        );
        let mut c = cfg();
        c.allow.push((Resource::Feed, Action::Write));
        assert_eq!(
            status(decide(&feed("user:42", "feed", "write"), None, &c)),
            200
        );
    }

    #[test]
    fn wildcards_are_403_unless_allowed_and_listed() {
        for r in [
            feed("*", "feed", "read"),
            feed("user:42", "*", "read"),
            feed("user:42", "feed", "*"),
            user("*"),
        ] {
            let e = decide(&r, None, &cfg()).unwrap_err();
            assert_eq!(e.parts().0.as_u16(), 403, "{r:?}");
            assert!(e.to_string().contains("wildcards"), "{e}");
        }
        let mut c = cfg();
        c.wildcards = true;
        assert_eq!(
            decide(&feed("*", "feed", "read"), None, &c)
                .unwrap()
                .claims
                .feed_id
                .as_deref(),
            Some("*")
        );
        // `*` as an action still has to be in the allow list.
        assert_eq!(status(decide(&feed("user:42", "feed", "*"), None, &c)), 403);
        c.allow.push((Resource::Feed, Action::All));
        assert_eq!(status(decide(&feed("user:42", "feed", "*"), None, &c)), 200);
    }

    #[test]
    fn user_tokens_can_be_turned_off() {
        let mut c = cfg();
        c.user_tokens = false;
        assert_eq!(status(decide(&user("42"), None, &c)), 403);
    }

    #[test]
    fn identity_binds_feed_and_user_tokens_to_the_caller() {
        let c = cfg();
        assert_eq!(
            status(decide(&feed("user:42", "feed", "read"), Some(None), &c)),
            401
        );
        assert_eq!(
            status(decide(
                &feed("user:42", "feed", "read"),
                Some(Some("42")),
                &c
            )),
            200
        );
        assert_eq!(
            status(decide(
                &feed("timeline:42", "feed", "read"),
                Some(Some("42")),
                &c
            )),
            200
        );
        assert_eq!(
            status(decide(
                &feed("user:43", "feed", "read"),
                Some(Some("42")),
                &c
            )),
            403
        );
        assert_eq!(status(decide(&user("42"), Some(Some("42")), &c)), 200);
        assert_eq!(status(decide(&user("43"), Some(Some("42")), &c)), 403);
        assert_eq!(status(decide(&user("42"), Some(None), &c)), 401);
        let mut w = cfg();
        w.wildcards = true;
        assert_eq!(
            status(decide(&feed("*", "feed", "read"), Some(Some("42")), &w)),
            403
        );
    }

    #[test]
    fn feed_tokens_are_minted_only_for_the_configured_feed_groups() {
        let mut c = cfg();
        c.feed_groups = vec!["user".into(), "timeline".into()];
        assert_eq!(
            status(decide(&feed("user:42", "feed", "read"), None, &c)),
            200
        );
        let e = decide(&feed("user4:2", "feed", "read"), None, &c).unwrap_err();
        assert_eq!(e.parts().0.as_u16(), 403);
        assert!(e.to_string().contains("tokens.feed_groups"), "{e}");
    }

    #[test]
    fn a_feed_id_that_also_reads_as_an_unlisted_groups_feed_is_refused() {
        // The docs' example: frontends get user and timeline feeds; the app also has Stream's
        // default timeline_aggregated group. `timeline` + `_aggregated42` is `timeline_aggregated`
        // + `42`: user 42's aggregated timeline.
        let mut c = cfg();
        c.feed_groups = vec!["user".into(), "timeline".into()];
        let e = decide(
            &feed("timeline:_aggregated42", "feed", "read"),
            Some(Some("_aggregated42")),
            &c,
        )
        .unwrap_err();
        assert_eq!(e.parts().0.as_u16(), 403);
        assert!(e.to_string().contains("timeline_aggregated:42"), "{e}");
        // Ids that continue no other group's name stay fine.
        assert_eq!(
            status(decide(
                &feed("timeline:42", "feed", "read"),
                Some(Some("42")),
                &c
            )),
            200
        );
        // A group the app has, listed nowhere by default, is taken from app_feed_groups.
        c.app_feed_groups.push("users".into());
        assert_eq!(
            status(decide(
                &feed("user:s7", "feed", "read"),
                Some(Some("s7")),
                &c
            )),
            403
        );
        c.app_feed_groups.retain(|g| g != "users");
        assert_eq!(
            status(decide(
                &feed("user:s7", "feed", "read"),
                Some(Some("s7")),
                &c
            )),
            200
        );
    }

    #[test]
    fn a_claim_that_also_names_another_users_feed_is_refused() {
        let mut c = cfg();
        c.feed_groups = vec!["user".into(), "user4".into(), "timeline".into()];
        c.app_feed_groups.extend(c.feed_groups.clone());
        let who = |w: &'static str| Some(Some(w));
        // user4:2 -> "user42", which is also user:42.
        assert_eq!(
            status(decide(&feed("user4:2", "feed", "read"), who("2"), &c)),
            403
        );
        // user:42 -> "user42", which is also user4:2.
        assert_eq!(
            status(decide(&feed("user:42", "feed", "read"), who("42"), &c)),
            403
        );
        // user:2 -> "user2": no other reading.
        assert_eq!(
            status(decide(&feed("user:2", "feed", "read"), who("2"), &c)),
            200
        );
        // timeline:42 -> "timeline42": no other group is a prefix.
        assert_eq!(
            status(decide(&feed("timeline:42", "feed", "read"), who("42"), &c)),
            200
        );
    }

    #[test]
    fn an_unknown_resource_or_action_lists_the_known_ones() {
        let reason = |r: TokenRequest| match decide(&r, None, &cfg()) {
            Err(ApiError::InvalidInput(i)) => i.reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(feed("user:42", "url", "read")),
            "must be one of feed, follower, activities, feed_targets, reactions, collections, \
             users, personalization, analytics, *"
        );
        assert_eq!(
            reason(feed("user:42", "feed", "READ")),
            "must be one of read, write, delete, *"
        );
    }

    #[test]
    fn a_resource_without_a_route_may_still_be_minted_when_allowed() {
        let mut c = cfg();
        c.allow.push((Resource::Analytics, Action::Write));
        let g = decide(&feed("user:42", "analytics", "write"), None, &c).unwrap();
        assert_eq!(g.claims.resource.as_deref(), Some("analytics"));
        assert_eq!(
            status(decide(
                &feed("user:42", "personalization", "read"),
                None,
                &c
            )),
            403
        );
    }

    #[test]
    fn malformed_requests_are_400_naming_the_field() {
        let field = |r: TokenRequest| match decide(&r, None, &cfg()) {
            Err(ApiError::InvalidInput(i)) => i.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(TokenRequest::default()), "body");
        assert_eq!(
            field(TokenRequest {
                user_id: Some("1".into()),
                ..feed("user:1", "feed", "read")
            }),
            "body"
        );
        assert_eq!(field(feed("user42", "feed", "read")), "feed");
        assert_eq!(field(feed("user:4 2", "feed", "read")), "feed");
        assert_eq!(field(feed("user:42", "url", "read")), "resource");
        assert_eq!(field(feed("user:42", "feed", "READ")), "action");
        assert_eq!(
            field(TokenRequest {
                resource: None,
                ..feed("user:42", "feed", "read")
            }),
            "resource"
        );
        assert_eq!(field(user("a b")), "user_id");
        assert_eq!(
            field(TokenRequest {
                action: Some("read".into()),
                ..user("42")
            }),
            "body"
        );
    }
}
