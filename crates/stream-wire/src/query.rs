//! Query parameters: the few that Stream refuses or that safety needs are checked,
//! credentials are dropped, the rest pass through as the caller sent them.
//!
//! As for bodies, each rule says its reason: **Stream refuses it** (REST docs) or **safety**.

use super::endpoint::{Endpoint, QueryRule};
use super::ids::FeedId;
use super::{InvalidInput, Slug};

/// Parameters that carry a caller's credentials; never forwarded (the gateway adds its own
/// `api_key`, exactly once). Compared after [`normalize`], so `api_key%00`, `API_KEY` or
/// `api_key[]` are dropped too.
const CREDENTIALS: &[&str] = &["api_key", "authorization", "stream-auth-type", "auth_type"];

/// Largest `offset` on followers and following (REST docs: "The offset, max 400").
pub const MAX_FOLLOW_OFFSET: u64 = 400;
/// Largest `activity_copy_limit` (REST docs: "max 1000").
pub const MAX_COPY_LIMIT: u64 = 1000;

/// A parameter name as a server might read it: lower-cased, `-` read as `_`, everything but
/// `[a-z0-9_]` removed.
fn normalize(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            // `api-key` and `stream_auth_type` name what `api_key` and `stream-auth-type` do.
            '-' => '_',
            c => c,
        })
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// Safety: whether a parameter is a caller credential, however it is spelled.
pub fn is_credential(name: &str) -> bool {
    let n = normalize(name);
    CREDENTIALS.iter().any(|c| normalize(c) == n)
}

/// The parameters a rule reads; each may be given once.
fn checked_names(rule: QueryRule) -> &'static [&'static str] {
    match rule {
        QueryRule::FeedPage => &["limit", "offset", "id_lt", "id_lte", "id_gt", "id_gte"],
        QueryRule::FollowPage => &["limit", "offset", "filter"],
        QueryRule::CopyLimit => &["activity_copy_limit"],
        QueryRule::FollowStats => &[
            "followers",
            "following",
            "followers_slugs",
            "following_slugs",
        ],
        QueryRule::None => &[],
    }
}

/// The decoded pairs, in order.
type Pairs = [(String, String)];

fn get<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Checks the raw query string for `endpoint` and returns the pairs to forward, credentials
/// removed, order kept.
pub fn check(
    endpoint: &Endpoint,
    raw: Option<&str>,
) -> Result<Vec<(String, String)>, InvalidInput> {
    let out = pairs(raw)?;
    // Safety: a repeated parameter could pass the check with one value and reach Stream with
    // the other.
    for name in checked_names(endpoint.query) {
        if out.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(InvalidInput::new(*name, "is given more than once"));
        }
    }
    match endpoint.query {
        QueryRule::FeedPage => feed_page(&out)?,
        QueryRule::FollowPage => follow_page(&out)?,
        QueryRule::CopyLimit => copy_limit(&out)?,
        QueryRule::FollowStats => follow_stats(&out)?,
        QueryRule::None => {}
    }
    Ok(out)
}

/// The query's pairs as they are forwarded, the caller's credentials dropped (the gateway adds
/// the app's `api_key`); a query that is not UTF-8 once decoded is refused: decoding replaces
/// invalid UTF-8 with U+FFFD, which would forward something the caller did not send.
pub fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, InvalidInput> {
    let raw = raw.unwrap_or("");
    if percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .is_err()
    {
        return Err(InvalidInput::new(
            "query",
            "is not valid UTF-8 once percent-decoded",
        ));
    }
    Ok(form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| !is_credential(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// Stream refuses a `limit` or `offset` that is not a non-negative integer (REST docs: int).
fn non_negative(name: &str, v: &str) -> Result<u64, InvalidInput> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidInput::new(name, "must be a non-negative integer"));
    }
    v.parse::<u64>()
        .map_err(|_| InvalidInput::new(name, "is too large"))
}

/// A feed read or a reaction page: `limit`, `offset`, one direction of `id_*`.
fn feed_page(q: &Pairs) -> Result<(), InvalidInput> {
    for name in ["limit", "offset"] {
        if let Some(v) = get(q, name) {
            non_negative(name, v)?;
        }
    }
    let below = get(q, "id_lt").is_some() || get(q, "id_lte").is_some();
    let above = get(q, "id_gt").is_some() || get(q, "id_gte").is_some();
    // Stream refuses both directions ("Passing both id_lt[e] and id_gt[e] is not supported"),
    // but for `id_lte` and `id_gte` naming the same activity, which is how stream-js reads
    // one activity (`getActivityDetail`).
    let pinned = get(q, "id_lt").is_none()
        && get(q, "id_gt").is_none()
        && get(q, "id_lte").is_some()
        && get(q, "id_lte") == get(q, "id_gte");
    if below && above && !pinned {
        return Err(InvalidInput::new(
            "id_lt",
            "cannot be combined with id_gt or id_gte (pass one direction)",
        ));
    }
    Ok(())
}

/// Followers and following: `limit`, `offset` at most [`MAX_FOLLOW_OFFSET`], `filter`.
fn follow_page(q: &Pairs) -> Result<(), InvalidInput> {
    if let Some(v) = get(q, "limit") {
        non_negative("limit", v)?;
    }
    if let Some(v) = get(q, "offset") {
        // Stream refuses more (REST docs, Followers and Following: "max 400").
        if non_negative("offset", v)? > MAX_FOLLOW_OFFSET {
            return Err(InvalidInput::new(
                "offset",
                &format!("must be at most {MAX_FOLLOW_OFFSET}"),
            ));
        }
    }
    if let Some(v) = get(q, "filter") {
        // Stream refuses: a comma list of feed ids (REST docs), each `\w+:\w+`.
        for f in v.split(',').filter(|f| !f.is_empty()) {
            FeedId::parse(f).map_err(|e| InvalidInput::new("filter", &e.to_string()))?;
        }
    }
    Ok(())
}

/// Stream refuses an `activity_copy_limit` over [`MAX_COPY_LIMIT`] (REST docs, Follow Many).
fn copy_limit(q: &Pairs) -> Result<(), InvalidInput> {
    if let Some(v) = get(q, "activity_copy_limit") {
        if non_negative("activity_copy_limit", v)? > MAX_COPY_LIMIT {
            return Err(InvalidInput::new(
                "activity_copy_limit",
                &format!("must be at most {MAX_COPY_LIMIT}"),
            ));
        }
    }
    Ok(())
}

/// Follow counts: Stream refuses feed ids and slugs that are not `\w+` (REST docs, Input
/// Validation).
fn follow_stats(q: &Pairs) -> Result<(), InvalidInput> {
    for name in ["followers", "following"] {
        if let Some(v) = get(q, name) {
            FeedId::parse(v).map_err(|e| InvalidInput::new(name, &e.to_string()))?;
        }
    }
    for name in ["followers_slugs", "following_slugs"] {
        if let Some(v) = get(q, name) {
            for slug in v.split(',') {
                Slug::parse(slug).map_err(|e| InvalidInput::new(name, &e.to_string()))?;
            }
        }
    }
    Ok(())
}

/// Why a caller's `api_key` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyRefusal {
    /// Another app's key (Stream: 401, code 2, `ApiKeyException`); the detail to give.
    Foreign(String),
    /// Given more than once (safety: which one would be read?).
    Repeated,
}

/// Stream refuses a request whose `api_key` is not the app's (`ApiKeyException`): a service
/// configured for another app (staging's key against production's gateway) must hear so, not
/// write into this app. The caller's `api_key` (exactly that name; look-alikes are dropped by
/// [`check`]) must be `own` or one of `accepted` (placeholders a team gave its services); none
/// at all is fine (the gateway adds the app's). Applied to the raw query of every family
/// before anything else reads it.
pub fn check_api_key(
    raw: Option<&str>,
    own: &str,
    accepted: &[String],
) -> Result<(), ApiKeyRefusal> {
    let keys: Vec<_> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "api_key")
        .map(|(_, v)| v)
        .collect();
    match keys.as_slice() {
        [] => Ok(()),
        [k] if k == own || accepted.iter().any(|a| a == k) => Ok(()),
        [k] => Err(ApiKeyRefusal::Foreign(foreign_key_detail(k))),
        _ => Err(ApiKeyRefusal::Repeated),
    }
}

/// The detail of an `ApiKeyException`: the key's first 4 characters only (enough to tell which
/// app's key it is, not enough to use it).
pub fn foreign_key_detail(key: &str) -> String {
    let head: String = key.chars().take(4).collect();
    format!("api_key {head}... is not this app's api key")
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
    use crate::endpoint::{Endpoint, EndpointId};

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

    /// Every rule: what passes (Stream decides) and what is refused, with its reason.
    #[test]
    fn every_query_rule_accepts_what_stream_accepts_and_refuses_with_its_reason() {
        use EndpointId as E;
        let ids = (0..150)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let many_ids = format!("ids={ids}");
        #[rustfmt::skip]
        let cases: Vec<(EndpointId, &str, Result<(), &str>, &str)> = vec![
            (E::Unfollow, "keep_history=yes", Ok(()), "any value: the docs say 'when provided'"),
            (E::FeedRemove, "foreign_id=2", Ok(()), "Stream decides"),
            (E::ReactionDelete, "soft=maybe", Ok(()), "Stream decides"),
            (E::UserAdd, "get_or_create=perhaps", Ok(()), "Stream decides"),
            (E::ActivitiesGet, &many_ids, Ok(()), "no documented count: the request target bounds it"),
            (E::ActivitiesGet, "foreign_ids=a,b&timestamps=x", Ok(()), "Stream decides"),
            (E::ActivitiesGet, "", Ok(()), "Stream decides"),
            (E::ReactionGetMany, &many_ids, Ok(()), "no documented count"),
            (E::OpenGraph, "", Ok(()), "Stream decides on the url"),
            (E::CollectionsSelect, "foreign_ids=bad", Ok(()), "Stream decides"),
            (E::CollectionsDeleteMany, "", Ok(()), "Stream decides"),
            (E::FeedRead, "offset=401&limit=1000&id_lt=", Ok(()), "no documented cap on a feed read"),
            (E::FeedRead, "limit=-1", Err("limit"), "Stream refuses: limit is an int"),
            (E::FeedRead, "offset=1.5", Err("offset"), "Stream refuses: offset is an int"),
            (E::FeedRead, "id_lt=a&id_gte=b", Err("id_lt"), "Stream refuses both directions"),
            (E::ReactionFilter, "id_gt=a&id_lte=b", Err("id_lt"), "Stream refuses both directions"),
            (E::FeedRead, "limit=1&limit=2", Err("limit"), "safety: one value checked, another forwarded"),
            (E::Followers, "offset=400", Ok(()), "the documented maximum"),
            (E::Followers, "offset=401", Err("offset"), "Stream refuses over 400"),
            (E::Following, "filter=user:1,user:2", Ok(()), "feed ids"),
            (E::Following, "filter=user1", Err("filter"), "Stream refuses: feed ids"),
            (E::FollowMany, "activity_copy_limit=1000", Ok(()), "the documented maximum"),
            (E::FollowMany, "activity_copy_limit=1001", Err("activity_copy_limit"), "Stream refuses over 1000"),
            (E::FollowStats, "followers=user:1&following_slugs=user,timeline", Ok(()), "feed ids and slugs"),
            (E::FollowStats, "", Ok(()), "Stream decides"),
            (E::FollowStats, "following=user-1", Err("following"), "Stream refuses: a feed id"),
            (E::FollowStats, "followers_slugs=a-b", Err("followers_slugs"), "Stream refuses: slugs are \\w+"),
        ];
        for (id, raw, want, why) in cases {
            let got = q(id, raw).map(|_| ()).map_err(|e| e.field);
            assert_eq!(got, want.map_err(str::to_owned), "{id:?} {raw}: {why}");
        }
    }

    #[test]
    fn only_the_apps_own_or_an_accepted_api_key_is_taken() {
        let accepted = vec!["placeholder".to_owned()];
        let run = |raw: &str| check_api_key(Some(raw), "appkey1234", &accepted);
        assert_eq!(run(""), Ok(()));
        assert_eq!(check_api_key(None, "appkey1234", &accepted), Ok(()));
        assert_eq!(run("limit=1&api_key=appkey1234"), Ok(()));
        assert_eq!(run("api_key=placeholder"), Ok(()));
        assert_eq!(
            run("API_KEY=other&apiKey=x"),
            Ok(()),
            "look-alikes are dropped"
        );
        assert_eq!(
            run("api_key=5crf3bhfzesnMISSING"),
            Err(ApiKeyRefusal::Foreign(
                "api_key 5crf... is not this app's api key".into()
            ))
        );
        assert_eq!(
            run("api_key=appkey1234&api_key=appkey1234"),
            Err(ApiKeyRefusal::Repeated)
        );
        assert_eq!(
            run("api_key=appkey1234&api_key=x"),
            Err(ApiKeyRefusal::Repeated)
        );
        assert_eq!(
            run("api_key="),
            Err(ApiKeyRefusal::Foreign(
                "api_key ... is not this app's api key".into()
            ))
        );
        assert!(!foreign_key_detail("abcdefgh").contains("abcde"));
    }

    #[test]
    fn every_spelling_of_a_credential_is_dropped() {
        let out = q(
            EndpointId::FeedRead,
            "api_key%00=a&api_key+=b&api_key[]=c&API_KEY=e&%61pi_key=f&auth_type=g&Stream-Auth-Type=h&api-key=i&stream_auth_type=j&limit=1",
        )
        .unwrap();
        assert_eq!(out, vec![("limit".into(), "1".into())]);
        // A name that merely contains the word is a parameter like any other.
        let out = q(EndpointId::FeedRead, "my_api_key=1&api_keys=2").unwrap();
        assert_eq!(out.len(), 2);
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
