//! stream-wire: Stream's APIs as data, and the credentials that authenticate them, with no
//! HTTP server or client inside. The gateway and the emulator both build on it.
//!
//! - [`ids`]: `Slug`, `UserId`, `FeedId`, parsed once at the edge;
//! - [`scope`]: the JWT permission claims and when one scope covers another;
//! - [`endpoint`]: the endpoint table and the path router;
//! - [`query`] and [`body`]: what each endpoint accepts, checked before anything leaves;
//! - [`json`]: bodies parsed as JSON with each key given once;
//! - [`region`]: regions and their hosts;
//! - [`v2`]: Stream's `/api/v2/` family: the route table generated from its specs, the router;
//! - [`auth`]: the `Secret`, scoped JWTs (minted and cached) and HTTP Signatures;
//! - [`webhook`]: the signature Stream puts on its webhooks, and their headers;
//! - [`host`]: the name a `Host` header carries, for same-origin checks.

pub mod auth;
pub mod body;
pub mod endpoint;
pub mod host;
pub mod ids;
pub mod json;
pub mod query;
pub mod region;
pub mod scope;
pub mod v2;
pub mod webhook;

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

/// Parses an activity `time` in the forms the official clients send:
/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, an optional `Z` or `+00:00`
/// (stream-python sends `isoformat()`, stream-js `toISOString()`). Stream keeps times in UTC
/// without a zone, so no other offset is taken.
pub fn parse_time(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    // chrono's `%.f` would also take an empty or over-long fraction; the forms are exact.
    let digits_ok = |d: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
    };
    let b = whole.as_bytes();
    let shape = b.len() == 19
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit));
    if !shape || fraction.is_some_and(|f| !digits_ok(f, 1..=9)) {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn activity_times_parse_in_the_forms_clients_send() {
        let ok = [
            "2026-11-27T10:00:00",
            "2026-11-27T10:00:00.1",
            "2026-11-27T10:00:00.123456",
            "2026-11-27T10:00:00.123456789",
            "2026-11-27T10:00:00Z",
            "2026-11-27T10:00:00.123Z",
            "2026-11-27T10:00:00+00:00",
            "2026-11-27T10:00:00.123456+00:00",
        ];
        for t in ok {
            assert!(parse_time(t).is_some(), "{t}");
        }
        assert_eq!(
            parse_time("2026-11-27T10:00:00.000000"),
            parse_time("2026-11-27T10:00:00")
        );
        let refused = [
            "yesterday",
            "2026-11-27 10:00:00",
            "2026-11-27T10:00:00+02:00",
            "2026-11-27T10:00:00.",
            "2026-11-27T10:00:00.1234567890",
            "2026-11-27T10:00",
            "2026-11-27T10:00:00ZZ",
            "2026-13-27T10:00:00",
            "2026-11-27T10:00:00.12a",
            "+2026-11-27T10:00:00",
        ];
        for t in refused {
            assert!(parse_time(t).is_none(), "{t}");
        }
    }
}
