//! The endpoint table: method + path -> resource, action, feed scope, auth kind, idempotency,
//! body shape and query rules. Routing, token scoping, retry safety and the README all read it.
//!
//! [`route`] turns a raw request path (still percent-encoded) into a [`Route`]: the table row,
//! the typed feed ids from the path, and the canonical path to forward.

use super::ids::{FeedId, IdError, Slug, UserId};
use super::scope::{Action, FeedClaim, Resource, Scope};
use super::InvalidInput;

/// The HTTP methods the table speaks of; the domain keeps its own so it needs no HTTP crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// Any other verb: no row takes it, so a known path answers 405.
    Other,
}

impl Method {
    /// Parses an HTTP method name.
    pub fn parse(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Other => "OTHER",
        }
    }
}

/// How a call authenticates upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Feed authentication: a scoped JWT.
    Jwt,
    /// Application authentication: an HTTP Signature (or a `*`-feed JWT with `batch_auth = "jwt"`).
    Application,
}

/// Whether resending the call after it may have reached Stream can duplicate an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to resend (reads, deletes, follows, updates by key).
    Always,
    /// Safe only when every activity carries `foreign_id` and `time` (Stream de-duplicates on
    /// that pair).
    WithForeignIdAndTime,
}

/// The JSON body an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (GET, DELETE); whatever the caller sent is not forwarded.
    None,
    /// One activity, or `{"activities": [...]}`.
    Activities,
    /// `{"target": "slug:id", "activity_copy_limit"?: n}`.
    Follow,
    /// `{"activities": [...]}`, each with `foreign_id` and `time`, at most 100.
    ActivitiesUpdate,
    /// `{"activity": {...}, "feeds": [...]}`, at most 5000 feeds.
    AddToMany,
    /// `[{"source": ..., "target": ...}, ...]`, at most 2500.
    FollowMany,
}

/// The query parameters an endpoint checks (others pass through untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRule {
    /// `limit`, `offset` and the `id_*` range of a feed read.
    FeedPage,
    /// `limit`, `offset` (at most 400) and `filter` of followers and following.
    FollowPage,
    /// `foreign_id` flag of a delete.
    ForeignIdFlag,
    /// `keep_history` flag of an unfollow.
    KeepHistory,
    /// `activity_copy_limit` of `follow_many`.
    CopyLimit,
    /// Nothing to check.
    None,
}

/// Which feed the token's `feed_id` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedScope {
    /// The feed in the path.
    PathFeed,
    /// `*`: the call touches feeds named in the body, or none.
    All,
}

/// Which row of the table a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointId {
    /// `GET feed/{slug}/{user_id}/`
    FeedRead,
    /// `POST feed/{slug}/{user_id}/`
    FeedAdd,
    /// `DELETE feed/{slug}/{user_id}/{activity_id or foreign_id}/`
    FeedRemove,
    /// `GET feed/{slug}/{user_id}/followers/`
    Followers,
    /// `GET feed/{slug}/{user_id}/follows/` (or `following/`)
    Following,
    /// `POST feed/{slug}/{user_id}/follows/` (or `following/`)
    Follow,
    /// `DELETE feed/{slug}/{user_id}/follows/{slug}:{user_id}/` (or `following/`)
    Unfollow,
    /// `POST activities/`
    ActivitiesUpdate,
    /// `POST feed/add_to_many/`
    AddToMany,
    /// `POST follow_many/`
    FollowMany,
}

/// One row of the endpoint table.
#[derive(Debug)]
pub struct Endpoint {
    /// Which row.
    pub id: EndpointId,
    /// Stable name for logs and metrics (bounded cardinality).
    pub name: &'static str,
    /// The method.
    pub method: Method,
    /// The path under `/api/v1.0/`, for docs and errors.
    pub pattern: &'static str,
    /// `resource` claim.
    pub resource: Resource,
    /// `action` claim.
    pub action: Action,
    /// `feed_id` claim.
    pub feed_scope: FeedScope,
    /// Upstream authentication.
    pub auth: AuthKind,
    /// Retry safety.
    pub idempotency: Idempotency,
    /// Body shape.
    pub body: BodyKind,
    /// Query checks.
    pub query: QueryRule,
}

macro_rules! row {
    ($id:ident, $name:literal, $m:ident, $pat:literal, $r:ident, $a:ident, $fs:ident, $auth:ident, $idem:ident, $body:ident, $q:ident) => {
        Endpoint {
            id: EndpointId::$id,
            name: $name,
            method: Method::$m,
            pattern: $pat,
            resource: Resource::$r,
            action: Action::$a,
            feed_scope: FeedScope::$fs,
            auth: AuthKind::$auth,
            idempotency: Idempotency::$idem,
            body: BodyKind::$body,
            query: QueryRule::$q,
        }
    };
}

/// The table. Every token the gateway mints comes from a row here: the narrowest scope that
/// covers the call, never `*` where the feed or the action is known.
#[rustfmt::skip]
pub static ENDPOINTS: [Endpoint; 10] = [
    row!(FeedRead,         "feed.read",        Get,    "feed/{slug}/{user_id}/",                          Feed,       Read,   PathFeed, Jwt,         Always,               None,             FeedPage),
    row!(FeedAdd,          "feed.add",         Post,   "feed/{slug}/{user_id}/",                          Feed,       Write,  PathFeed, Jwt,         WithForeignIdAndTime, Activities,       None),
    row!(FeedRemove,       "feed.remove",      Delete, "feed/{slug}/{user_id}/{activity_id}/",            Feed,       Delete, PathFeed, Jwt,         Always,               None,             ForeignIdFlag),
    row!(Followers,        "feed.followers",   Get,    "feed/{slug}/{user_id}/followers/",                Follower,   Read,   PathFeed, Jwt,         Always,               None,             FollowPage),
    row!(Following,        "feed.following",   Get,    "feed/{slug}/{user_id}/follows/",                  Follower,   Read,   PathFeed, Jwt,         Always,               None,             FollowPage),
    row!(Follow,           "feed.follow",      Post,   "feed/{slug}/{user_id}/follows/",                  Follower,   Write,  PathFeed, Jwt,         Always,               Follow,           None),
    row!(Unfollow,         "feed.unfollow",    Delete, "feed/{slug}/{user_id}/follows/{target}/",         Follower,   Delete, PathFeed, Jwt,         Always,               None,             KeepHistory),
    row!(ActivitiesUpdate, "activities.update",Post,   "activities/",                                     Activities, Write,  All,      Jwt,         Always,               ActivitiesUpdate, None),
    row!(AddToMany,        "batch.add_to_many",Post,   "feed/add_to_many/",                               Feed,       Write,  All,      Application, WithForeignIdAndTime, AddToMany,        None),
    row!(FollowMany,       "batch.follow_many",Post,   "follow_many/",                                    Follower,   Write,  All,      Application, Always,               FollowMany,       CopyLimit),
];

impl Endpoint {
    /// The row for an id.
    pub fn get(id: EndpointId) -> &'static Endpoint {
        ENDPOINTS
            .iter()
            .find(|e| e.id == id)
            .expect("every EndpointId has a row")
    }
}

/// A request path matched against the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// The table row.
    pub endpoint: &'static Endpoint,
    /// The feed in the path, if any.
    pub feed: Option<FeedId>,
    /// The unfollowed feed, for an unfollow.
    pub target: Option<FeedId>,
    /// The activity id or foreign id, for a delete (decoded).
    pub activity: Option<String>,
    /// The path to forward, canonical: `/api/v1.0/...` ending in `/`, re-encoded.
    pub path: String,
}

impl Route {
    /// The narrowest scope that covers this call.
    pub fn scope(&self) -> Scope {
        let feed = match (self.endpoint.feed_scope, &self.feed) {
            (FeedScope::PathFeed, Some(f)) => FeedClaim::One(f.claim()),
            _ => FeedClaim::All,
        };
        Scope {
            resource: self.endpoint.resource,
            action: self.endpoint.action,
            feed,
        }
    }
}

/// Why a path did not route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No row has this path shape.
    NotFound,
    /// A row has this path, with other methods.
    MethodNotAllowed {
        /// The methods the path takes.
        allow: Vec<Method>,
    },
    /// The path has the shape of a row but a bad part.
    Invalid(InvalidInput),
}

/// The prefix every proxied path has.
pub const API_PREFIX: &str = "/api/v1.0/";

/// Characters re-encoded in a forwarded activity id / foreign id path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// Decodes one path segment and refuses the tricks that change its meaning downstream:
/// an encoded `/` or `\`, a NUL or any control character, non-ASCII, `.` and `..`.
fn decode_segment(raw: &str) -> Result<String, InvalidInput> {
    let bad = |reason: &str| InvalidInput::new("path", reason);
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    let s = String::from_utf8(bytes).map_err(|_| bad("segment is not valid UTF-8"))?;
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || matches!(c, '/' | '\\'))
    {
        return Err(bad(&format!(
            "segment contains a forbidden character {c:?}"
        )));
    }
    if s == "." || s == ".." {
        return Err(bad("dot segments are not allowed"));
    }
    Ok(s)
}

fn field(name: &'static str) -> impl Fn(IdError) -> RouteError {
    move |e| RouteError::Invalid(InvalidInput::new(name, &e.to_string()))
}

/// Matches `path` (the request path, percent-encoded, including `/api/v1.0/`) for `method`.
///
/// The order of checks is: shape (404), method (405), then each part (400), so a caller hears
/// first about what is most wrong.
pub fn route(method: Method, path: &str) -> Result<Route, RouteError> {
    let rest = path
        .strip_prefix(API_PREFIX)
        .or_else(|| (path == "/api/v1.0").then_some(""))
        .ok_or(RouteError::NotFound)?;
    // A missing final slash is accepted and added: Stream redirects such paths and a redirect
    // can lose the body (stream-python collapses them for the same reason).
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let raw: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    let segs = raw
        .iter()
        .map(|s| decode_segment(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RouteError::Invalid)?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();

    use EndpointId as E;
    let candidates: &[EndpointId] = match s.as_slice() {
        ["feed", "add_to_many"] => &[E::AddToMany],
        ["follow_many"] => &[E::FollowMany],
        ["activities"] => &[E::ActivitiesUpdate],
        ["feed", _, _] => &[E::FeedRead, E::FeedAdd],
        ["feed", _, _, "followers"] => &[E::Followers],
        ["feed", _, _, "follows" | "following"] => &[E::Following, E::Follow],
        ["feed", _, _, "follows" | "following", _] => &[E::Unfollow],
        ["feed", _, _, _] => &[E::FeedRemove],
        _ => return Err(RouteError::NotFound),
    };
    let endpoint = candidates
        .iter()
        .map(|&id| Endpoint::get(id))
        .find(|e| e.method == method)
        .ok_or_else(|| RouteError::MethodNotAllowed {
            allow: candidates
                .iter()
                .map(|&id| Endpoint::get(id).method)
                .collect(),
        })?;

    let mut feed = None;
    let mut target = None;
    let mut activity = None;
    let path = match s.as_slice() {
        ["feed", slug, user, tail @ ..] if endpoint.feed_scope == FeedScope::PathFeed => {
            let f = FeedId::new(
                Slug::parse(slug).map_err(field("feed_slug"))?,
                UserId::parse(user).map_err(field("user_id"))?,
            );
            let mut p = format!("{API_PREFIX}feed/{}/", f.path());
            match (endpoint.id, tail) {
                (E::Unfollow, [list, t]) => {
                    let t = FeedId::parse(t).map_err(field("target"))?;
                    p.push_str(&format!("{list}/{t}/"));
                    target = Some(t);
                }
                (E::FeedRemove, [a]) => {
                    if a.len() > super::ids::MAX_ID_BYTES {
                        return Err(field("activity_id")(IdError::TooLong));
                    }
                    let enc = percent_encoding::utf8_percent_encode(a, SEGMENT);
                    p.push_str(&format!("{enc}/"));
                    activity = Some((*a).to_owned());
                }
                (_, [list]) => p.push_str(&format!("{list}/")),
                _ => {}
            }
            feed = Some(f);
            p
        }
        _ => format!("{API_PREFIX}{}/", s.join("/")),
    };
    Ok(Route {
        endpoint,
        feed,
        target,
        activity,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(m: Method, p: &str) -> Route {
        route(m, p).unwrap_or_else(|e| panic!("{m:?} {p}: {e:?}"))
    }

    fn invalid_field(m: Method, p: &str) -> String {
        match route(m, p) {
            Err(RouteError::Invalid(i)) => i.field,
            other => panic!("{m:?} {p}: expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn every_row_routes_and_gets_its_narrowest_scope() {
        use Method::*;
        let cases = [
            (
                Get,
                "/api/v1.0/feed/user/42/",
                "feed.read",
                "feed/read/user42",
            ),
            (
                Post,
                "/api/v1.0/feed/user/42/",
                "feed.add",
                "feed/write/user42",
            ),
            (
                Delete,
                "/api/v1.0/feed/user/42/abc-123/",
                "feed.remove",
                "feed/delete/user42",
            ),
            (
                Get,
                "/api/v1.0/feed/user/42/followers/",
                "feed.followers",
                "follower/read/user42",
            ),
            (
                Get,
                "/api/v1.0/feed/timeline/42/follows/",
                "feed.following",
                "follower/read/timeline42",
            ),
            (
                Get,
                "/api/v1.0/feed/timeline/42/following/",
                "feed.following",
                "follower/read/timeline42",
            ),
            (
                Post,
                "/api/v1.0/feed/timeline/42/follows/",
                "feed.follow",
                "follower/write/timeline42",
            ),
            (
                Post,
                "/api/v1.0/feed/timeline/42/following/",
                "feed.follow",
                "follower/write/timeline42",
            ),
            (
                Delete,
                "/api/v1.0/feed/timeline/42/follows/user:7/",
                "feed.unfollow",
                "follower/delete/timeline42",
            ),
            (
                Delete,
                "/api/v1.0/feed/timeline/42/following/user:7/",
                "feed.unfollow",
                "follower/delete/timeline42",
            ),
            (
                Post,
                "/api/v1.0/activities/",
                "activities.update",
                "activities/write/*",
            ),
            (
                Post,
                "/api/v1.0/feed/add_to_many/",
                "batch.add_to_many",
                "feed/write/*",
            ),
            (
                Post,
                "/api/v1.0/follow_many/",
                "batch.follow_many",
                "follower/write/*",
            ),
        ];
        for (m, p, name, scope) in cases {
            let r = ok(m, p);
            assert_eq!(r.endpoint.name, name, "{p}");
            assert_eq!(r.scope().to_string(), scope, "{p}");
            assert_eq!(r.path, p, "canonical path of {p}");
        }
    }

    #[test]
    fn every_row_of_the_table_is_reachable() {
        use Method::*;
        let reached: Vec<EndpointId> = [
            (Get, "/api/v1.0/feed/a/1/"),
            (Post, "/api/v1.0/feed/a/1/"),
            (Delete, "/api/v1.0/feed/a/1/x/"),
            (Get, "/api/v1.0/feed/a/1/followers/"),
            (Get, "/api/v1.0/feed/a/1/follows/"),
            (Post, "/api/v1.0/feed/a/1/follows/"),
            (Delete, "/api/v1.0/feed/a/1/follows/b:2/"),
            (Post, "/api/v1.0/activities/"),
            (Post, "/api/v1.0/feed/add_to_many/"),
            (Post, "/api/v1.0/follow_many/"),
        ]
        .iter()
        .map(|(m, p)| ok(*m, p).endpoint.id)
        .collect();
        for e in &ENDPOINTS {
            assert!(reached.contains(&e.id), "{} unreachable", e.name);
        }
    }

    #[test]
    fn only_batch_rows_use_application_auth_and_only_they_scope_all_feeds_besides_updates() {
        for e in &ENDPOINTS {
            let batch = matches!(e.id, EndpointId::AddToMany | EndpointId::FollowMany);
            assert_eq!(e.auth == AuthKind::Application, batch, "{}", e.name);
            assert_ne!(e.resource, Resource::All, "{}", e.name);
            assert_ne!(e.action, Action::All, "{}", e.name);
            let feedless = batch || e.id == EndpointId::ActivitiesUpdate;
            assert_eq!(e.feed_scope == FeedScope::All, feedless, "{}", e.name);
        }
    }

    #[test]
    fn a_missing_trailing_slash_is_added() {
        assert_eq!(
            ok(Method::Get, "/api/v1.0/feed/user/42").path,
            "/api/v1.0/feed/user/42/"
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for p in [
            "/api/v1.0/",
            "/api/v1.0/nope/",
            "/api/v1.0/feed/",
            "/api/v1.0/feed/user/",
            "/api/v1.0/feed/user/42/x/y/z/",
            "/api/v2.0/feed/user/42/",
            "/feed/user/42/",
        ] {
            assert_eq!(
                route(Method::Get, p).unwrap_err(),
                RouteError::NotFound,
                "{p}"
            );
        }
    }

    #[test]
    fn a_known_path_with_another_method_is_not_allowed() {
        let e = route(Method::Put, "/api/v1.0/feed/user/42/").unwrap_err();
        assert_eq!(
            e,
            RouteError::MethodNotAllowed {
                allow: vec![Method::Get, Method::Post]
            }
        );
        assert!(matches!(
            route(Method::parse("PATCH"), "/api/v1.0/activities/"),
            Err(RouteError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(Method::Get, "/api/v1.0/follow_many/"),
            Err(RouteError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(Method::Delete, "/api/v1.0/feed/user/42/followers/"),
            Err(RouteError::MethodNotAllowed { .. })
        ));
    }

    #[test]
    fn bad_slugs_and_user_ids_name_their_field() {
        assert_eq!(
            invalid_field(Method::Get, "/api/v1.0/feed/us-er/42/"),
            "feed_slug"
        );
        assert_eq!(
            invalid_field(Method::Get, "/api/v1.0/feed/user/4%202/"),
            "user_id"
        );
        assert_eq!(
            invalid_field(Method::Get, "/api/v1.0/feed//42/"),
            "feed_slug"
        );
        assert_eq!(
            invalid_field(Method::Delete, "/api/v1.0/feed/user/42/follows/user42/"),
            "target"
        );
        let long = "a".repeat(256);
        assert_eq!(
            invalid_field(Method::Get, &format!("/api/v1.0/feed/user/{long}/")),
            "user_id"
        );
        assert!(route(
            Method::Get,
            &format!("/api/v1.0/feed/user/{}/", "a".repeat(255))
        )
        .is_ok());
    }

    #[test]
    fn percent_encoded_tricks_are_refused() {
        for p in [
            "/api/v1.0/feed/user/..%2F..%2Fadmin/",
            "/api/v1.0/feed/user/42%00/",
            "/api/v1.0/feed/user/%C3%A9/",
            "/api/v1.0/feed/user/42/..%2Ffollowers/",
            "/api/v1.0/feed/user/42/%2e%2e/",
            "/api/v1.0/feed/user/42/a%5Cb/",
            "/api/v1.0/feed/user/%FF/",
        ] {
            let m = if p.ends_with("42/%2e%2e/") || p.contains("a%5Cb") {
                Method::Delete
            } else {
                Method::Get
            };
            assert!(
                matches!(route(m, p), Err(RouteError::Invalid(_))),
                "{p}: {:?}",
                route(m, p)
            );
        }
    }

    #[test]
    fn a_foreign_id_in_a_delete_path_is_decoded_and_re_encoded() {
        let r = ok(Method::Delete, "/api/v1.0/feed/user/42/pin%3A1/");
        assert_eq!(r.activity.as_deref(), Some("pin:1"));
        assert_eq!(r.path, "/api/v1.0/feed/user/42/pin:1/");
        let r = ok(Method::Delete, "/api/v1.0/feed/user/42/a%20b/");
        assert_eq!(r.path, "/api/v1.0/feed/user/42/a%20b/");
    }
}
