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
/// Most ids (or foreign id + timestamp pairs) in one lookup (Stream's activities docs).
pub const MAX_LOOKUP_IDS: usize = 100;

/// A comma-separated list of non-empty entries, at most `max`.
fn id_list<'a>(name: &str, v: &'a str, max: usize) -> Result<Vec<&'a str>, InvalidInput> {
    let list: Vec<&str> = v.split(',').collect();
    if list.iter().any(|e| e.is_empty()) {
        return Err(InvalidInput::new(
            name,
            "must be a comma-separated list of non-empty ids",
        ));
    }
    if list.len() > max {
        return Err(InvalidInput::new(
            name,
            &format!("must hold at most {max} ids"),
        ));
    }
    Ok(list)
}

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
        QueryRule::ActivityLookup => &["ids", "foreign_ids", "timestamps"],
        QueryRule::FollowStats => &[
            "followers",
            "following",
            "followers_slugs",
            "following_slugs",
        ],
        QueryRule::OgUrl => &["url"],
        QueryRule::SoftDelete => &["soft"],
        QueryRule::Ids => &["ids"],
        QueryRule::CollectionLookup => &["foreign_ids"],
        // `ids` may repeat: stream-python sends a list as `ids=1&ids=2`.
        QueryRule::CollectionDeleteMany => &["collection_name"],
        QueryRule::GetOrCreate => &["get_or_create"],
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
            // One exception: `id_lte` and `id_gte` naming the same activity, which is how
            // stream-js reads one activity (`getActivityDetail`).
            let pinned = get("id_lt").is_none()
                && get("id_gt").is_none()
                && get("id_lte").is_some()
                && get("id_lte") == get("id_gte");
            if below && above && !pinned {
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
        QueryRule::ActivityLookup => match (get("ids"), get("foreign_ids"), get("timestamps")) {
            (Some(ids), None, None) => {
                id_list("ids", ids, MAX_LOOKUP_IDS)?;
            }
            (None, Some(f), Some(t)) => {
                let f = id_list("foreign_ids", f, MAX_LOOKUP_IDS)?;
                let t = id_list("timestamps", t, MAX_LOOKUP_IDS)?;
                if f.len() != t.len() {
                    return Err(InvalidInput::new(
                        "timestamps",
                        "must hold as many entries as foreign_ids",
                    ));
                }
                if t.iter().any(|t| super::parse_time(t).is_none()) {
                    return Err(InvalidInput::new(
                        "timestamps",
                        "must be ISO 8601 UTC times such as 2026-11-27T10:00:00.000000",
                    ));
                }
            }
            (Some(_), _, _) => {
                return Err(InvalidInput::new(
                    "ids",
                    "cannot be combined with foreign_ids and timestamps",
                ))
            }
            (None, Some(_), None) => {
                return Err(InvalidInput::new(
                    "timestamps",
                    "is required with foreign_ids",
                ))
            }
            (None, None, Some(_)) => {
                return Err(InvalidInput::new(
                    "foreign_ids",
                    "is required with timestamps",
                ))
            }
            (None, None, None) => {
                return Err(InvalidInput::new(
                    "ids",
                    "is required (or foreign_ids with timestamps)",
                ))
            }
        },
        QueryRule::FollowStats => {
            let (followers, following) = (get("followers"), get("following"));
            if followers.is_none() && following.is_none() {
                return Err(InvalidInput::new(
                    "followers",
                    "is required (a feed id), or following",
                ));
            }
            for (name, v) in [("followers", followers), ("following", following)] {
                if let Some(v) = v {
                    FeedId::parse(v).map_err(|e| InvalidInput::new(name, &e.to_string()))?;
                }
            }
            for name in ["followers_slugs", "following_slugs"] {
                if let Some(v) = get(name) {
                    for slug in v.split(',') {
                        super::Slug::parse(slug)
                            .map_err(|e| InvalidInput::new(name, &e.to_string()))?;
                    }
                }
            }
        }
        QueryRule::OgUrl => {
            let url = get("url").ok_or_else(|| InvalidInput::new("url", "is required"))?;
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| InvalidInput::new("url", "must be an absolute http(s) URL"))?;
            if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) {
                return Err(InvalidInput::new("url", "must name a host"));
            }
        }
        QueryRule::SoftDelete => {
            if let Some(v) = get("soft") {
                flag("soft", v)?;
            }
        }
        QueryRule::Ids => {
            let ids = get("ids").ok_or_else(|| InvalidInput::new("ids", "is required"))?;
            id_list("ids", ids, MAX_LOOKUP_IDS)?;
        }
        QueryRule::CollectionLookup => {
            let v = get("foreign_ids")
                .ok_or_else(|| InvalidInput::new("foreign_ids", "is required"))?;
            for entry in id_list("foreign_ids", v, MAX_LOOKUP_IDS)? {
                match entry.split_once(':') {
                    Some((name, id)) if !id.is_empty() => {
                        super::ids::check_name(name)
                            .map_err(|e| InvalidInput::new("foreign_ids", &e.to_string()))?;
                    }
                    _ => {
                        return Err(InvalidInput::new(
                            "foreign_ids",
                            "entries must be collection:id",
                        ))
                    }
                }
            }
        }
        QueryRule::CollectionDeleteMany => {
            let name = get("collection_name")
                .ok_or_else(|| InvalidInput::new("collection_name", "is required"))?;
            super::ids::check_name(name)
                .map_err(|e| InvalidInput::new("collection_name", &e.to_string()))?;
            let ids: Vec<&str> = out
                .iter()
                .filter(|(k, _)| k == "ids")
                .map(|(_, v)| v.as_str())
                .collect();
            if ids.is_empty() {
                return Err(InvalidInput::new("ids", "is required"));
            }
            for v in ids {
                id_list("ids", v, MAX_LOOKUP_IDS)?;
            }
        }
        QueryRule::GetOrCreate => {
            if let Some(v) = get("get_or_create") {
                flag("get_or_create", v)?;
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
        assert_eq!(
            q(EndpointId::FeedRead, "id_lte=a&id_gte=b")
                .unwrap_err()
                .field,
            "id_lt"
        );
        // stream-js reads one activity with both bounds on its id.
        assert!(q(EndpointId::FeedRead, "id_lte=a&id_gte=a&limit=1").is_ok());
        assert!(q(EndpointId::FeedRead, "id_lt=a&id_lte=a&id_gte=a").is_err());
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
