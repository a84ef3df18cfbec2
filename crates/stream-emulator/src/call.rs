//! What a handler reads from a request: the parts the verifier needs ([`Call`]), typed feed
//! ids, query parameters and JSON bodies, each refused with Stream's error naming the field.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Map, Value};

use super::reply::{input_error, EmuError};
use super::store::enrich::{Enrichment, DEFAULT_RECENT_LIMIT};
use super::verify::Needed;
use stream_wire::{Action, FeedClaim, FeedId, Resource, Scope, Slug, UserId};

/// What every handler needs to verify a call as Stream would.
pub struct Call {
    /// The request's method (part of a signature).
    pub method: Method,
    /// Path and query (`api_key`, the signed request target, the parameters).
    pub uri: Uri,
    /// The credentials' headers.
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Call {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

/// The feed named by a route's `{slug}/{user}`.
pub fn feed_of(slug: &str, user: &str) -> Result<FeedId, EmuError> {
    Ok(FeedId::new(
        Slug::parse(slug).map_err(|e| input_error("feed_slug", &e.to_string()))?,
        UserId::parse(user).map_err(|e| input_error("user_id", &e.to_string()))?,
    ))
}

/// A scope on one feed, or on every feed when `feed` is `None`.
pub fn scope(resource: Resource, action: Action, feed: Option<&FeedId>) -> Scope {
    Scope {
        resource,
        action,
        feed: feed.map_or(FeedClaim::All, |f| FeedClaim::One(f.claim())),
    }
}

/// A JWT scope on every feed: what the routes that name no feed need.
pub fn jwt(resource: Resource, action: Action) -> Needed {
    Needed::Jwt(scope(resource, action, None))
}

/// Application authentication (an HTTP Signature) for every feed: the batch routes.
pub fn app(resource: Resource, action: Action) -> Needed {
    Needed::App(scope(resource, action, None))
}

/// Every query parameter, in order, repeated names kept.
pub fn params(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The first value of a query parameter.
pub fn param(uri: &Uri, name: &str) -> Option<String> {
    params(uri)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A non-negative integer parameter, `default` when absent.
pub fn number(uri: &Uri, name: &str, default: usize) -> Result<usize, EmuError> {
    match param(uri, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| input_error(name, "must be a non-negative integer")),
    }
}

/// `1` or `true`, in any case, as Stream reads boolean parameters.
pub fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

/// The body as `T`, or 400 naming the body.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, EmuError> {
    serde_json::from_slice(body).map_err(|e| input_error("body", &format!("invalid JSON: {e}")))
}

/// The non-empty items of a comma-separated list.
pub fn comma_list(v: &str) -> Vec<&str> {
    v.split(',').filter(|s| !s.is_empty()).collect()
}

/// The object at `v`, or an empty one.
pub fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Whether the request came in under `enrich/` (an enriched read).
pub fn is_enriched(uri: &Uri) -> bool {
    uri.path().starts_with("/api/v1.0/enrich/")
}

/// What an enriched read asks for; each flag in both spellings the official clients use
/// (camelCase as stream-js and stream-python send it, snake_case as the REST docs write it).
pub fn enrichment(uri: &Uri) -> Result<Enrichment, EmuError> {
    let flag = |a: &str, b: &str| truthy(param(uri, a)) || truthy(param(uri, b));
    let kinds = param(uri, "reaction_kinds_filter")
        .or_else(|| param(uri, "reactionKindsFilter"))
        .map(|k| {
            comma_list(&k)
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        });
    Ok(Enrichment {
        own: flag("withOwnReactions", "with_own_reactions"),
        recent: flag("withRecentReactions", "with_recent_reactions"),
        counts: flag("withReactionCounts", "with_reaction_counts"),
        kinds,
        recent_limit: number(uri, "recent_reactions_limit", DEFAULT_RECENT_LIMIT)?,
        // stream-js names the user `withUserId`; the REST docs and stream-python `user_id`.
        user_id: param(uri, "withUserId").or_else(|| param(uri, "user_id")),
    })
}

/// A string field that clients may also send as a number: Stream stores ids as strings, so
/// `3` reads back as `"3"`.
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
