//! The domain: Stream's v1.0 feed API as data, with no HTTP server or client inside.
//!
//! - [`ids`]: `Slug`, `UserId`, `FeedId`, parsed once at the edge;
//! - [`scope`]: the JWT permission claims and when one scope covers another;
//! - [`endpoint`]: the endpoint table and the path router;
//! - [`query`] and [`body`]: what each endpoint accepts, checked before anything leaves;
//! - [`region`]: regions and their hosts.

pub mod body;
pub mod endpoint;
pub mod ids;
pub mod query;
pub mod region;
pub mod scope;

pub use endpoint::{route, Endpoint, EndpointId, Method, Route, RouteError, ENDPOINTS};
pub use ids::{FeedId, Slug, UserId};
pub use scope::{Action, FeedClaim, Resource, Scope};

/// Bad input, refused before anything reaches Stream: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    /// The field, as the caller named it (`user_id`, `limit`, `activities[3].actor`, ...).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl InvalidInput {
    /// Bad input in `field`.
    pub fn new(field: impl Into<String>, reason: &str) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_owned(),
        }
    }
}

/// Parses an activity `time` as Stream takes it: ISO 8601, UTC, with or without fractional
/// seconds, without a zone (a trailing `Z` or `+00:00` is tolerated).
pub fn parse_time(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn activity_times_parse_with_and_without_fractions() {
        assert!(parse_time("2026-11-27T10:00:00").is_some());
        assert!(parse_time("2026-11-27T10:00:00.123456").is_some());
        assert!(parse_time("2026-11-27T10:00:00Z").is_some());
        assert_eq!(
            parse_time("2026-11-27T10:00:00.000000"),
            parse_time("2026-11-27T10:00:00")
        );
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-11-27 10:00:00").is_none());
        assert!(parse_time("2026-11-27T10:00:00+02:00").is_none());
    }
}
