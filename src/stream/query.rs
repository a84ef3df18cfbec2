//! Query parameters: the ones an endpoint documents are checked, credentials are dropped, the
//! rest pass through as the caller sent them.

use super::endpoint::{Endpoint, QueryRule};
use super::ids::FeedId;
use super::InvalidInput;

/// Parameters that carry a caller's credentials; never forwarded (the gateway adds its own
/// `api_key`, exactly once).
const CREDENTIALS: &[&str] = &["api_key", "authorization", "stream-auth-type", "auth_type"];

/// Largest `offset` on followers and following (REST docs: "The offset, max 400").
pub const MAX_FOLLOW_OFFSET: u64 = 400;
/// Largest `activity_copy_limit` (REST docs: "max 1000").
pub const MAX_COPY_LIMIT: u64 = 1000;

fn non_negative(name: &str, v: &str) -> Result<u64, InvalidInput> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::new(name, "must be a non-negative integer"));
    }
    v.parse::<u64>()
        .map_err(|_| InvalidInput::new(name, "is too large"))
}

fn flag(name: &str, v: &str) -> Result<(), InvalidInput> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "0" | "true" | "false" => Ok(()),
        _ => Err(InvalidInput::new(name, "must be 1, 0, true or false")),
    }
}

/// Checks the raw query string for `endpoint` and returns the pairs to forward, credentials
/// removed, order kept.
pub fn check(
    endpoint: &Endpoint,
    raw: Option<&str>,
) -> Result<Vec<(String, String)>, InvalidInput> {
    // Decoding replaces invalid UTF-8 with U+FFFD, which would forward something the caller
    // did not send: refuse it instead.
    if percent_encoding::percent_decode_str(raw.unwrap_or(""))
        .decode_utf8()
        .is_err()
    {
        return Err(InvalidInput::new(
            "query",
            "is not valid UTF-8 once percent-decoded",
        ));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if CREDENTIALS.iter().any(|c| k.eq_ignore_ascii_case(c)) {
            continue;
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    let checked: &[&str] = match endpoint.query {
        QueryRule::FeedPage => &["limit", "offset", "id_lt", "id_lte", "id_gt", "id_gte"],
        QueryRule::FollowPage => &["limit", "offset", "filter"],
        QueryRule::ForeignIdFlag => &["foreign_id"],
        QueryRule::KeepHistory => &["keep_history"],
        QueryRule::CopyLimit => &["activity_copy_limit"],
        QueryRule::None => &[],
    };
    for name in checked {
        if out.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(InvalidInput::new(*name, "is given more than once"));
        }
    }
    let get = |name: &str| out.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match endpoint.query {
        QueryRule::FeedPage => {
            for name in ["limit", "offset"] {
                if let Some(v) = get(name) {
                    non_negative(name, v)?;
                }
            }
            let below = get("id_lt").is_some() || get("id_lte").is_some();
            let above = get("id_gt").is_some() || get("id_gte").is_some();
            if below && above {
                return Err(InvalidInput::new(
                    "id_lt",
                    "cannot be combined with id_gt or id_gte (pass one direction)",
                ));
            }
            for name in ["id_lt", "id_lte", "id_gt", "id_gte"] {
                if get(name) == Some("") {
                    return Err(InvalidInput::new(name, "must not be empty"));
                }
            }
        }
        QueryRule::FollowPage => {
            if let Some(v) = get("limit") {
                non_negative("limit", v)?;
            }
            if let Some(v) = get("offset") {
                if non_negative("offset", v)? > MAX_FOLLOW_OFFSET {
                    return Err(InvalidInput::new("offset", "must be at most 400"));
                }
            }
            if let Some(v) = get("filter") {
                for f in v.split(',').filter(|f| !f.is_empty()) {
                    FeedId::parse(f).map_err(|e| InvalidInput::new("filter", &e.to_string()))?;
                }
            }
        }
        QueryRule::ForeignIdFlag => {
            if let Some(v) = get("foreign_id") {
                flag("foreign_id", v)?;
            }
        }
        QueryRule::KeepHistory => {
            if let Some(v) = get("keep_history") {
                flag("keep_history", v)?;
            }
        }
        QueryRule::CopyLimit => {
            if let Some(v) = get("activity_copy_limit") {
                if non_negative("activity_copy_limit", v)? > MAX_COPY_LIMIT {
                    return Err(InvalidInput::new(
                        "activity_copy_limit",
                        "must be at most 1000",
                    ));
                }
            }
        }
        QueryRule::None => {}
    }
    Ok(out)
}

/// The query string to send upstream: the caller's pairs, then the gateway's `api_key` last
/// (as stream-php does), form-encoded.
pub fn forward_string(pairs: &[(String, String)], api_key: &str) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.append_pair("api_key", api_key);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::endpoint::{Endpoint, EndpointId};

    fn q(id: EndpointId, raw: &str) -> Result<Vec<(String, String)>, InvalidInput> {
        check(Endpoint::get(id), Some(raw))
    }

    #[test]
    fn credentials_in_the_query_are_dropped_and_the_rest_kept_in_order() {
        let out = q(
            EndpointId::FeedRead,
            "api_key=theirs&limit=5&API_KEY=again&ranking=popular&authorization=x&location=eu",
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                ("limit".into(), "5".into()),
                ("ranking".into(), "popular".into()),
                ("location".into(), "eu".into())
            ]
        );
        assert_eq!(
            forward_string(&out, "k"),
            "limit=5&ranking=popular&location=eu&api_key=k"
        );
    }

    #[test]
    fn limit_and_offset_must_be_non_negative_integers() {
        assert!(q(EndpointId::FeedRead, "limit=0&offset=10").is_ok());
        for bad in ["limit=-1", "limit=abc", "offset=1.5", "limit=", "offset=+3"] {
            let e = q(EndpointId::FeedRead, bad).unwrap_err();
            assert!(bad.starts_with(&e.field), "{bad}: {e}");
        }
    }

    #[test]
    fn follow_offset_is_at_most_400() {
        assert!(q(EndpointId::Followers, "offset=400").is_ok());
        assert_eq!(
            q(EndpointId::Followers, "offset=401").unwrap_err().field,
            "offset"
        );
        assert_eq!(
            q(EndpointId::Following, "offset=401").unwrap_err().field,
            "offset"
        );
        // A feed read has no documented offset cap.
        assert!(q(EndpointId::FeedRead, "offset=401").is_ok());
    }

    #[test]
    fn id_ranges_in_both_directions_are_refused() {
        assert!(q(EndpointId::FeedRead, "id_lt=a&id_lte=b").is_ok());
        assert!(q(EndpointId::FeedRead, "id_gt=a").is_ok());
        assert_eq!(
            q(EndpointId::FeedRead, "id_lt=a&id_gte=b")
                .unwrap_err()
                .field,
            "id_lt"
        );
        assert_eq!(
            q(EndpointId::FeedRead, "id_lte=a&id_gt=b")
                .unwrap_err()
                .field,
            "id_lt"
        );
    }

    #[test]
    fn filter_must_list_feed_ids() {
        assert!(q(EndpointId::Following, "filter=").is_ok());
        assert!(q(EndpointId::Following, "filter=user:1,user:2").is_ok());
        assert_eq!(
            q(EndpointId::Following, "filter=user1").unwrap_err().field,
            "filter"
        );
    }

    #[test]
    fn copy_limit_is_0_to_1000() {
        assert!(q(EndpointId::FollowMany, "activity_copy_limit=0").is_ok());
        assert!(q(EndpointId::FollowMany, "activity_copy_limit=1000").is_ok());
        assert!(q(EndpointId::FollowMany, "activity_copy_limit=1001").is_err());
        assert!(q(EndpointId::FollowMany, "activity_copy_limit=-1").is_err());
    }

    #[test]
    fn flags_take_the_spellings_official_clients_send() {
        for v in ["1", "True", "true", "0", "false"] {
            assert!(q(EndpointId::Unfollow, &format!("keep_history={v}")).is_ok());
        }
        assert!(q(EndpointId::Unfollow, "keep_history=yes").is_err());
        assert!(q(EndpointId::FeedRemove, "foreign_id=1").is_ok());
        assert!(q(EndpointId::FeedRemove, "foreign_id=2").is_err());
    }

    #[test]
    fn a_query_that_is_not_utf8_once_decoded_is_refused() {
        assert_eq!(
            q(EndpointId::FeedRead, "ranking=%FF").unwrap_err().field,
            "query"
        );
        assert_eq!(q(EndpointId::FeedRead, "%C3=1").unwrap_err().field, "query");
        assert!(q(EndpointId::FeedRead, "ranking=caf%C3%A9").is_ok());
    }

    #[test]
    fn a_checked_parameter_given_twice_is_refused() {
        assert_eq!(
            q(EndpointId::FeedRead, "limit=1&limit=2")
                .unwrap_err()
                .field,
            "limit"
        );
        // api_key twice is simply dropped: the gateway sends its own, once.
        assert!(q(EndpointId::FeedRead, "api_key=a&api_key=b")
            .unwrap()
            .is_empty());
    }
}
