//! The endpoint table: method + path -> resource, action, feed scope, auth kind, idempotency,
//! body shape and query rules. Routing, token scoping, retry safety and docs/endpoints.md all read it.
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

/// Which of Stream's services a row belongs to: each has its own host and path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// The feeds API: `stream.base_url`, paths under `/api/v1.0/`.
    Api,
    /// The analytics API: `stream.analytics_base_url`, paths under `/analytics/v1.0/`.
    Analytics,
    /// The personalization API: `stream.personalization_base_url`, paths under
    /// `/personalization/v1.0/`.
    Personalization,
}

impl Host {
    /// Every host, in the order the table lists their rows.
    pub const ALL: [Host; 3] = [Host::Api, Host::Analytics, Host::Personalization];

    /// The prefix every path of this service has, as the official clients build it
    /// (`{service}/{version}/`).
    pub fn prefix(self) -> &'static str {
        match self {
            Host::Api => API_PREFIX,
            Host::Analytics => "/analytics/v1.0/",
            Host::Personalization => "/personalization/v1.0/",
        }
    }

    /// The position in [`Host::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Whether resending the call after it may have reached Stream can duplicate an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Safe to resend (reads, deletes, follows, updates by key).
    Always,
    /// Safe only when every activity carries `foreign_id` and `time` (Stream de-duplicates on
    /// that pair).
    WithForeignIdAndTime,
    /// Safe only when the body names every new object's `id`: a resend then meets the first
    /// one (a conflict) instead of creating a second.
    WithId,
    /// Never: each call records something new (analytics events) or its effect is Stream's
    /// own (personalization writes).
    Never,
}

/// The JSON body an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (GET, DELETE); whatever the caller sent is not forwarded.
    None,
    /// A JSON object or nothing (`reaction/{id}/restore/`).
    OptionalObject,
    /// One activity, or `{"activities": [...]}`.
    Activities,
    /// `{"target": "slug:id", "activity_copy_limit"?: n}`.
    Follow,
    /// `{"activities": [...]}`, each with `foreign_id` and `time`, at most 100.
    ActivitiesUpdate,
    /// `{"changes": [...]}` (at most 100) or one change: `id` or `foreign_id` + `time`,
    /// `set`, `unset`.
    PartialUpdate,
    /// `{"foreign_id", "time", "new_targets"?, "added_targets"?, "removed_targets"?}`, or a
    /// list of them.
    ToTargets,
    /// `{"activity": {...}, "feeds": [...]}`, at most 5000 feeds.
    AddToMany,
    /// `[{"source": ..., "target": ...}, ...]`, at most 2500.
    FollowMany,
    /// `[{"source": ..., "target": ..., "keep_history"?: bool}, ...]`, at most 2500.
    UnfollowMany,
    /// A new reaction: `kind`, `activity_id` or `parent`, `user_id`, `data`, `target_feeds`.
    Reaction,
    /// A reaction update: `data`, `target_feeds`.
    ReactionUpdate,
    /// `{"data": {"<collection>": [{"id": ...}, ...]}}`.
    CollectionsUpsert,
    /// A new collection entry: `id`?, `data`, `user_id`?.
    CollectionEntry,
    /// A collection entry update: `data`.
    CollectionEntryUpdate,
    /// A new user: `id`, `data`?.
    User,
    /// A user update: `data`.
    UserUpdate,
    /// `{"users": [{"id", "data"?}, ...], "override"?: bool}`.
    UsersBatch,
    /// Any JSON value: analytics events and personalization writes, whose shape Stream's
    /// services decide.
    Json,
}

/// The query parameters an endpoint checks (others pass through untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRule {
    /// `limit`, `offset` and the `id_*` range of a feed read or a reaction page.
    FeedPage,
    /// `limit`, `offset` (at most 400) and `filter` of followers and following.
    FollowPage,
    /// `activity_copy_limit` of `follow_many`.
    CopyLimit,
    /// `followers` and `following` feed ids, `followers_slugs`, `following_slugs`.
    FollowStats,
    /// Nothing to check: Stream decides.
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

/// Which row of the table a request matched; the row itself says its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointId {
    FeedRead,
    FeedReadEnriched,
    FeedAdd,
    FeedRemove,
    Followers,
    Following,
    Follow,
    Unfollow,
    ToTargets,
    ActivitiesUpdate,
    ActivitiesGet,
    ActivitiesGetEnriched,
    ActivitiesPartialUpdate,
    AddToMany,
    FollowMany,
    UnfollowMany,
    FollowStats,
    OpenGraph,
    AuditLogs,
    ReactionAdd,
    ReactionGet,
    ReactionUpdate,
    ReactionDelete,
    ReactionRestore,
    ReactionFilter,
    ReactionGetMany,
    CollectionsUpsert,
    CollectionsSelect,
    CollectionsDeleteMany,
    CollectionAdd,
    CollectionGet,
    CollectionUpdate,
    CollectionDelete,
    UserAdd,
    UserGet,
    UserUpdate,
    UserDelete,
    UsersAdd,
    UsersGet,
    UsersDelete,
    AnalyticsEngagement,
    AnalyticsImpression,
    PersonalizationGet,
    PersonalizationPost,
    PersonalizationDelete,
}

/// One row of the endpoint table.
#[derive(Debug)]
pub struct Endpoint {
    pub id: EndpointId,
    /// Stable name for logs and metrics (bounded cardinality).
    pub name: &'static str,
    /// The service: where the call goes and the prefix of its path.
    pub host: Host,
    pub method: Method,
    /// The path under the host's prefix ([`Host::prefix`]): literals, `a|b` aliases, `{name}` parameters named after
    /// the field an error names, `{name:a|b}` a fixed set, `[{name}/]` an optional last one.
    pub pattern: &'static str,
    /// The `resource` claim of the upstream token.
    pub resource: Resource,
    /// The `action` claim.
    pub action: Action,
    /// Which feed the `feed_id` claim names.
    pub feed_scope: FeedScope,
    pub auth: AuthKind,
    /// When a resend cannot duplicate an effect.
    pub idempotency: Idempotency,
    pub body: BodyKind,
    pub query: QueryRule,
}

macro_rules! row {
    ($id:ident, $name:literal, $m:ident, $pat:literal, $r:ident, $a:ident, $fs:ident, $auth:ident, $idem:ident, $body:ident, $q:ident) => {
        row!(Api, $id, $name, $m, $pat, $r, $a, $fs, $auth, $idem, $body, $q)
    };
    ($host:ident, $id:ident, $name:literal, $m:ident, $pat:literal, $r:ident, $a:ident, $fs:ident, $auth:ident, $idem:ident, $body:ident, $q:ident) => {
        Endpoint {
            id: EndpointId::$id,
            name: $name,
            host: Host::$host,
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
///
/// Where the official clients send `*` (stream-js for every call, stream-python for
/// reactions, collections, users, `og/` and `stats/follow/`), the row names the resource the
/// clients themselves name for it (stream-go2's `authenticator.go` list and stream-python's
/// resource strings) and the action that follows from the method, as stream-go2 derives it
/// for every call (GET read, POST/PUT write, DELETE delete). `og/` and `audit_logs/` are the
/// rows whose resource stays `*`: no client names a resource for them (stream-js's
/// `StreamAuditLogs` sends its `*`/`*`/`*` token), so only the action narrows.
///
/// The analytics and personalization rows go to their own hosts with the token the current
/// clients send there: `analytics` / `*` (stream-js `getAnalyticsToken`, stream-go2
/// `analyticsAuth`) and `personalization` / `*` (stream-python, stream-go2, stream-js), the
/// action `*` on every method; the token's claims add the `user_id` those services read.
#[rustfmt::skip]
pub static ENDPOINTS: [Endpoint; 45] = [
    row!(FeedRead,                "feed.read",                Get,    "feed/{slug}/{user_id}/",                               Feed,        Read,   PathFeed, Jwt,         Always,               None,                  FeedPage),
    row!(FeedReadEnriched,        "feed.read_enriched",       Get,    "enrich/feed/{slug}/{user_id}/",                        Feed,        Read,   PathFeed, Jwt,         Always,               None,                  FeedPage),
    row!(FeedAdd,                 "feed.add",                 Post,   "feed/{slug}/{user_id}/",                               Feed,        Write,  PathFeed, Jwt,         WithForeignIdAndTime, Activities,            None),
    row!(FeedRemove,              "feed.remove",              Delete, "feed/{slug}/{user_id}/{activity_id}/",                 Feed,        Delete, PathFeed, Jwt,         Always,               None,                  None),
    row!(Followers,               "feed.followers",           Get,    "feed/{slug}/{user_id}/followers/",                     Follower,    Read,   PathFeed, Jwt,         Always,               None,                  FollowPage),
    row!(Following,               "feed.following",           Get,    "feed/{slug}/{user_id}/follows|following/",             Follower,    Read,   PathFeed, Jwt,         Always,               None,                  FollowPage),
    row!(Follow,                  "feed.follow",              Post,   "feed/{slug}/{user_id}/follows|following/",             Follower,    Write,  PathFeed, Jwt,         Always,               Follow,                None),
    row!(Unfollow,                "feed.unfollow",            Delete, "feed/{slug}/{user_id}/follows|following/{target}/",    Follower,    Delete, PathFeed, Jwt,         Always,               None,                  None),
    row!(ToTargets,               "feed.to_targets",          Post,   "feed_targets/{slug}/{user_id}/activity_to_targets/",   FeedTargets, Write,  PathFeed, Jwt,         Always,               ToTargets,             None),
    row!(ActivitiesUpdate,        "activities.update",        Post,   "activities/",                                          Activities,  Write,  All,      Jwt,         Always,               ActivitiesUpdate,      None),
    row!(ActivitiesGet,           "activities.get",           Get,    "activities/",                                          Activities,  Read,   All,      Jwt,         Always,               None,                  None),
    row!(ActivitiesGetEnriched,   "activities.get_enriched",  Get,    "enrich/activities/",                                   Activities,  Read,   All,      Jwt,         Always,               None,                  None),
    row!(ActivitiesPartialUpdate, "activities.partial_update",Post,   "activity/",                                            Activities,  Write,  All,      Jwt,         Always,               PartialUpdate,         None),
    row!(AddToMany,               "batch.add_to_many",        Post,   "feed/add_to_many/",                                    Feed,        Write,  All,      Application, WithForeignIdAndTime, AddToMany,             None),
    row!(FollowMany,              "batch.follow_many",        Post,   "follow_many/",                                         Follower,    Write,  All,      Application, Always,               FollowMany,            CopyLimit),
    row!(UnfollowMany,            "batch.unfollow_many",      Post,   "unfollow_many/",                                       Follower,    Write,  All,      Application, Always,               UnfollowMany,          None),
    row!(FollowStats,             "stats.follow",             Get,    "stats/follow/",                                        Follower,    Read,   All,      Jwt,         Always,               None,                  FollowStats),
    row!(OpenGraph,               "og",                       Get,    "og/",                                                  All,         Read,   All,      Jwt,         Always,               None,                  None),
    row!(AuditLogs,               "audit_logs.filter",        Get,    "audit_logs/",                                          All,         Read,   All,      Jwt,         Always,               None,                  None),
    row!(ReactionAdd,             "reactions.add",            Post,   "reaction/",                                            Reactions,   Write,  All,      Jwt,         WithId,               Reaction,              None),
    row!(ReactionGet,             "reactions.get",            Get,    "reaction/{reaction_id}/",                              Reactions,   Read,   All,      Jwt,         Always,               None,                  None),
    row!(ReactionUpdate,          "reactions.update",         Put,    "reaction/{reaction_id}/",                              Reactions,   Write,  All,      Jwt,         Always,               ReactionUpdate,        None),
    row!(ReactionDelete,          "reactions.delete",         Delete, "reaction/{reaction_id}/",                              Reactions,   Delete, All,      Jwt,         Always,               None,                  None),
    row!(ReactionRestore,         "reactions.restore",        Put,    "reaction/{reaction_id}/restore/",                      Reactions,   Write,  All,      Jwt,         Always,               OptionalObject,        None),
    row!(ReactionFilter,          "reactions.filter",         Get,    "reaction/{lookup:reaction_id|activity_id|user_id}/{value}/[{kind}/]", Reactions,   Read,   All,      Jwt,         Always,               None,                  FeedPage),
    row!(ReactionGetMany,         "reactions.get_many",       Get,    "reaction/get_many/",                                   Reactions,   Read,   All,      Jwt,         Always,               None,                  None),
    row!(CollectionsUpsert,       "collections.upsert",       Post,   "collections/",                                         Collections, Write,  All,      Jwt,         WithId,               CollectionsUpsert,     None),
    row!(CollectionsSelect,       "collections.select",       Get,    "collections/",                                         Collections, Read,   All,      Jwt,         Always,               None,                  None),
    row!(CollectionsDeleteMany,   "collections.delete_many",  Delete, "collections/",                                         Collections, Delete, All,      Jwt,         Always,               None,                  None),
    row!(CollectionAdd,           "collections.add",          Post,   "collections/{collection_name}/",                       Collections, Write,  All,      Jwt,         WithId,               CollectionEntry,       None),
    row!(CollectionGet,           "collections.get",          Get,    "collections/{collection_name}/{id}/",                  Collections, Read,   All,      Jwt,         Always,               None,                  None),
    row!(CollectionUpdate,        "collections.update",       Put,    "collections/{collection_name}/{id}/",                  Collections, Write,  All,      Jwt,         Always,               CollectionEntryUpdate, None),
    row!(CollectionDelete,        "collections.delete",       Delete, "collections/{collection_name}/{id}/",                  Collections, Delete, All,      Jwt,         Always,               None,                  None),
    row!(UserAdd,                 "users.add",                Post,   "user/",                                                Users,       Write,  All,      Jwt,         Always,               User,                  None),
    row!(UserGet,                 "users.get",                Get,    "user/{user_id}/",                                      Users,       Read,   All,      Jwt,         Always,               None,                  None),
    row!(UserUpdate,              "users.update",             Put,    "user/{user_id}/",                                      Users,       Write,  All,      Jwt,         Always,               UserUpdate,            None),
    row!(UserDelete,              "users.delete",             Delete, "user/{user_id}/",                                      Users,       Delete, All,      Jwt,         Always,               None,                  None),
    row!(UsersAdd,                "users.add_many",           Post,   "users/",                                               Users,       Write,  All,      Jwt,         Always,               UsersBatch,            None),
    row!(UsersGet,                "users.get_many",           Get,    "users/",                                               Users,       Read,   All,      Jwt,         Always,               None,                  None),
    row!(UsersDelete,             "users.delete_many",        Delete, "users/",                                               Users,       Delete, All,      Jwt,         Always,               None,                  None),
    row!(Analytics, AnalyticsEngagement, "analytics.engagement", Post, "engagement/",                                  Analytics,   All,    All,      Jwt,         Never,                Json,                  None),
    row!(Analytics, AnalyticsImpression, "analytics.impression", Post, "impression/",                                  Analytics,   All,    All,      Jwt,         Never,                Json,                  None),
    row!(Personalization, PersonalizationGet, "personalization.get", Get, "{resource}/",                               Personalization, All, All,    Jwt,         Always,               None,                  None),
    row!(Personalization, PersonalizationPost, "personalization.post", Post, "{resource}/",                            Personalization, All, All,    Jwt,         Never,                Json,                  None),
    row!(Personalization, PersonalizationDelete, "personalization.delete", Delete, "{resource}/",                      Personalization, All, All,    Jwt,         Always,               None,                  None),
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
    /// The path to forward, canonical: the host's prefix, then the segments, ending in `/`,
    /// re-encoded.
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

/// One segment of a row's `pattern`.
#[derive(Debug)]
enum Seg {
    /// A literal, with its aliases: `follows|following`.
    Literal(Vec<&'static str>),
    /// `{name}`: any segment, checked by name once the row is chosen.
    Param(&'static str),
    /// `{name:a|b}`: one of the listed values.
    OneOf(&'static str, Vec<&'static str>),
    /// `[{name}/]`: an optional last segment.
    Optional(&'static str),
}

impl Seg {
    fn parse(s: &'static str) -> Self {
        if let Some(inner) = s.strip_prefix("[{").and_then(|s| s.strip_suffix('}')) {
            return Seg::Optional(inner);
        }
        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) => match inner.split_once(':') {
                Some((name, values)) => Seg::OneOf(name, values.split('|').collect()),
                None => Seg::Param(inner),
            },
            None => Seg::Literal(s.split('|').collect()),
        }
    }

    /// Whether `seg` fits; `Some(specific)` says whether it fit a fixed value.
    fn fits(&self, seg: &str) -> Option<bool> {
        match self {
            Seg::Literal(alts) | Seg::OneOf(_, alts) => alts.contains(&seg).then_some(true),
            Seg::Param(_) | Seg::Optional(_) => Some(false),
        }
    }
}

/// A row's pattern, split into segments once.
#[derive(Debug)]
struct Pattern {
    segs: Vec<Seg>,
}

impl Pattern {
    fn parse(pattern: &'static str) -> Self {
        // `[{kind}/]` splits into `[{kind}` and `]`.
        let segs = pattern
            .split('/')
            .filter(|s| !s.is_empty() && *s != "]")
            .map(Seg::parse)
            .collect();
        Self { segs }
    }

    /// How many fixed values the path met, or `None` when it does not fit.
    fn score(&self, path: &[&str]) -> Option<usize> {
        let optional = matches!(self.segs.last(), Some(Seg::Optional(_)));
        let required = self.segs.len() - usize::from(optional);
        if path.len() < required || path.len() > self.segs.len() {
            return None;
        }
        let mut fixed = 0;
        for (seg, p) in self.segs.iter().zip(path) {
            fixed += usize::from(seg.fits(p)?);
        }
        Some(fixed)
    }

    /// The named parameters in `path`, in order.
    fn params<'p>(&self, path: &[&'p str]) -> Vec<(&'static str, &'p str)> {
        self.segs
            .iter()
            .zip(path)
            .filter_map(|(seg, p)| match seg {
                Seg::Param(n) | Seg::OneOf(n, _) | Seg::Optional(n) => Some((*n, *p)),
                Seg::Literal(_) => None,
            })
            .collect()
    }
}

/// The table's patterns, parsed once, in table order.
static PATTERNS: std::sync::LazyLock<Vec<Pattern>> = std::sync::LazyLock::new(|| {
    ENDPOINTS
        .iter()
        .map(|e| Pattern::parse(e.pattern))
        .collect()
});

/// The rows of `host` whose pattern fits `segs` best (most fixed values met), in table order.
fn best_rows(host: Host, segs: &[&str]) -> Vec<usize> {
    let scored: Vec<(usize, usize)> = PATTERNS
        .iter()
        .enumerate()
        .filter(|&(i, _)| ENDPOINTS[i].host == host)
        .filter_map(|(i, p)| p.score(segs).map(|s| (i, s)))
        .collect();
    let best = scored.iter().map(|&(_, s)| s).max();
    scored
        .into_iter()
        .filter(|&(_, s)| Some(s) == best)
        .map(|(i, _)| i)
        .collect()
}

/// An object id in a path (activity, foreign, reaction, collection, entry, user, reaction
/// kind): any decoded segment that [`decode_segment`] let through, but an empty one. Safety:
/// `user//` would reach another endpoint once a server collapses the slashes. Stream decides
/// on the rest; the request-target limit bounds the length.
fn object_id(name: &str, s: &str) -> Result<(), RouteError> {
    if s.is_empty() {
        return Err(RouteError::Invalid(InvalidInput::new(
            name,
            &IdError::Empty.to_string(),
        )));
    }
    Ok(())
}

/// The typed parts of a matched path.
#[derive(Default)]
struct Parts {
    feed: Option<FeedId>,
    target: Option<FeedId>,
    activity: Option<String>,
}

/// Checks each named parameter: `slug` + `user_id` make the path's feed (safety: it decides
/// the token's `feed_id`), `target` the unfollowed feed, the rest are object ids; a reaction
/// filter's `value` is named after its lookup.
fn extract(params: &[(&'static str, &str)]) -> Result<Parts, RouteError> {
    let get = |n: &str| params.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let mut parts = Parts::default();
    if let Some(slug) = get("slug") {
        let user = get("user_id").unwrap_or_default();
        parts.feed = Some(FeedId::new(
            Slug::parse(slug).map_err(field("feed_slug"))?,
            UserId::parse(user).map_err(field("user_id"))?,
        ));
    }
    for &(name, v) in params {
        match name {
            "slug" => {}
            "user_id" if parts.feed.is_some() => {}
            "target" => parts.target = Some(FeedId::parse(v).map_err(field("target"))?),
            "lookup" => {}
            "value" => object_id(get("lookup").expect("a filter names its lookup"), v)?,
            "activity_id" => {
                object_id(name, v)?;
                parts.activity = Some(v.to_owned());
            }
            _ => object_id(name, v)?,
        }
    }
    Ok(parts)
}

/// Splits a request path under one of the hosts' prefixes into its host and decoded segments.
fn segments(path: &str) -> Result<(Host, Vec<String>), RouteError> {
    let (host, rest) = Host::ALL
        .into_iter()
        .find_map(|h| {
            let prefix = h.prefix();
            path.strip_prefix(prefix)
                .or_else(|| (path == &prefix[..prefix.len() - 1]).then_some(""))
                .map(|rest| (h, rest))
        })
        .ok_or(RouteError::NotFound)?;
    // A missing final slash is accepted and added: Stream redirects such paths and a redirect
    // can lose the body (stream-python collapses them for the same reason).
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok((host, Vec::new()));
    }
    let segs = rest
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()
        .map_err(RouteError::Invalid)?;
    Ok((host, segs))
}

/// Matches `path` (the request path, percent-encoded, including its service's prefix such as
/// `/api/v1.0/`) for `method` against the table's patterns.
///
/// The order of checks is: shape (404), method (405), then each part (400), so a caller hears
/// first about what is most wrong. Where several shapes fit, the one with the most fixed
/// segments wins (`reaction/get_many/` over `reaction/{reaction_id}/`).
pub fn route(method: Method, path: &str) -> Result<Route, RouteError> {
    let (host, owned) = segments(path)?;
    let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let rows = best_rows(host, &segs);
    if rows.is_empty() {
        return Err(RouteError::NotFound);
    }
    let i = rows
        .iter()
        .copied()
        .find(|&i| ENDPOINTS[i].method == method)
        .ok_or_else(|| RouteError::MethodNotAllowed {
            allow: rows.iter().map(|&i| ENDPOINTS[i].method).collect(),
        })?;
    let parts = extract(&PATTERNS[i].params(&segs))?;
    let mut canonical = String::from(host.prefix());
    for seg in &segs {
        canonical.extend(percent_encoding::utf8_percent_encode(seg, SEGMENT));
        canonical.push('/');
    }
    Ok(Route {
        endpoint: &ENDPOINTS[i],
        feed: parts.feed,
        target: parts.target,
        activity: parts.activity,
        path: canonical,
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

    /// One request per row, with the row it must reach and the scope it must get.
    const EVERY_ROW: &[(Method, &str, &str, &str)] = &[
        (
            Method::Get,
            "/api/v1.0/feed/a/1/",
            "feed.read",
            "feed/read/a1",
        ),
        (
            Method::Get,
            "/api/v1.0/enrich/feed/a/1/",
            "feed.read_enriched",
            "feed/read/a1",
        ),
        (
            Method::Post,
            "/api/v1.0/feed/a/1/",
            "feed.add",
            "feed/write/a1",
        ),
        (
            Method::Delete,
            "/api/v1.0/feed/a/1/x/",
            "feed.remove",
            "feed/delete/a1",
        ),
        (
            Method::Get,
            "/api/v1.0/feed/a/1/followers/",
            "feed.followers",
            "follower/read/a1",
        ),
        (
            Method::Get,
            "/api/v1.0/feed/a/1/follows/",
            "feed.following",
            "follower/read/a1",
        ),
        (
            Method::Post,
            "/api/v1.0/feed/a/1/follows/",
            "feed.follow",
            "follower/write/a1",
        ),
        (
            Method::Delete,
            "/api/v1.0/feed/a/1/follows/b:2/",
            "feed.unfollow",
            "follower/delete/a1",
        ),
        (
            Method::Post,
            "/api/v1.0/feed_targets/a/1/activity_to_targets/",
            "feed.to_targets",
            "feed_targets/write/a1",
        ),
        (
            Method::Post,
            "/api/v1.0/activities/",
            "activities.update",
            "activities/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/activities/",
            "activities.get",
            "activities/read/*",
        ),
        (
            Method::Get,
            "/api/v1.0/enrich/activities/",
            "activities.get_enriched",
            "activities/read/*",
        ),
        (
            Method::Post,
            "/api/v1.0/activity/",
            "activities.partial_update",
            "activities/write/*",
        ),
        (
            Method::Post,
            "/api/v1.0/feed/add_to_many/",
            "batch.add_to_many",
            "feed/write/*",
        ),
        (
            Method::Post,
            "/api/v1.0/follow_many/",
            "batch.follow_many",
            "follower/write/*",
        ),
        (
            Method::Post,
            "/api/v1.0/unfollow_many/",
            "batch.unfollow_many",
            "follower/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/stats/follow/",
            "stats.follow",
            "follower/read/*",
        ),
        (Method::Get, "/api/v1.0/og/", "og", "*/read/*"),
        (
            Method::Get,
            "/api/v1.0/audit_logs/",
            "audit_logs.filter",
            "*/read/*",
        ),
        (
            Method::Post,
            "/api/v1.0/reaction/",
            "reactions.add",
            "reactions/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/reaction/r1/",
            "reactions.get",
            "reactions/read/*",
        ),
        (
            Method::Put,
            "/api/v1.0/reaction/r1/",
            "reactions.update",
            "reactions/write/*",
        ),
        (
            Method::Delete,
            "/api/v1.0/reaction/r1/",
            "reactions.delete",
            "reactions/delete/*",
        ),
        (
            Method::Put,
            "/api/v1.0/reaction/r1/restore/",
            "reactions.restore",
            "reactions/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/reaction/activity_id/a1/",
            "reactions.filter",
            "reactions/read/*",
        ),
        (
            Method::Get,
            "/api/v1.0/reaction/get_many/",
            "reactions.get_many",
            "reactions/read/*",
        ),
        (
            Method::Post,
            "/api/v1.0/collections/",
            "collections.upsert",
            "collections/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/collections/",
            "collections.select",
            "collections/read/*",
        ),
        (
            Method::Delete,
            "/api/v1.0/collections/",
            "collections.delete_many",
            "collections/delete/*",
        ),
        (
            Method::Post,
            "/api/v1.0/collections/food/",
            "collections.add",
            "collections/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/collections/food/1/",
            "collections.get",
            "collections/read/*",
        ),
        (
            Method::Put,
            "/api/v1.0/collections/food/1/",
            "collections.update",
            "collections/write/*",
        ),
        (
            Method::Delete,
            "/api/v1.0/collections/food/1/",
            "collections.delete",
            "collections/delete/*",
        ),
        (
            Method::Post,
            "/api/v1.0/user/",
            "users.add",
            "users/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/user/u1/",
            "users.get",
            "users/read/*",
        ),
        (
            Method::Put,
            "/api/v1.0/user/u1/",
            "users.update",
            "users/write/*",
        ),
        (
            Method::Delete,
            "/api/v1.0/user/u1/",
            "users.delete",
            "users/delete/*",
        ),
        (
            Method::Post,
            "/api/v1.0/users/",
            "users.add_many",
            "users/write/*",
        ),
        (
            Method::Get,
            "/api/v1.0/users/",
            "users.get_many",
            "users/read/*",
        ),
        (
            Method::Delete,
            "/api/v1.0/users/",
            "users.delete_many",
            "users/delete/*",
        ),
        (
            Method::Post,
            "/analytics/v1.0/engagement/",
            "analytics.engagement",
            "analytics/*/*",
        ),
        (
            Method::Post,
            "/analytics/v1.0/impression/",
            "analytics.impression",
            "analytics/*/*",
        ),
        (
            Method::Get,
            "/personalization/v1.0/follow_recommendations/",
            "personalization.get",
            "personalization/*/*",
        ),
        (
            Method::Post,
            "/personalization/v1.0/follow_recommendations/",
            "personalization.post",
            "personalization/*/*",
        ),
        (
            Method::Delete,
            "/personalization/v1.0/meta/",
            "personalization.delete",
            "personalization/*/*",
        ),
    ];

    #[test]
    fn every_row_of_the_table_is_reachable_with_its_scope() {
        let mut reached = Vec::new();
        for (m, p, name, scope) in EVERY_ROW {
            let r = ok(*m, p);
            assert_eq!(r.endpoint.name, *name, "{m:?} {p}");
            assert_eq!(r.scope().to_string(), *scope, "{m:?} {p}");
            assert_eq!(r.path, *p, "canonical path of {p}");
            reached.push(r.endpoint.id);
        }
        for e in &ENDPOINTS {
            assert!(reached.contains(&e.id), "{} unreachable", e.name);
        }
        let names: std::collections::HashSet<_> = ENDPOINTS.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), ENDPOINTS.len(), "row names are unique");
    }

    #[test]
    fn the_action_follows_the_method_on_every_feeds_api_row_and_is_any_on_the_others() {
        for e in &ENDPOINTS {
            if e.host != Host::Api {
                assert_eq!(e.action, Action::All, "{}", e.name);
                continue;
            }
            let expected = match e.method {
                Method::Get => Action::Read,
                Method::Delete => Action::Delete,
                _ => Action::Write,
            };
            assert_eq!(e.action, expected, "{}", e.name);
        }
    }

    #[test]
    fn reaction_paths_that_share_a_shape_route_by_method_and_lookup() {
        let r = ok(Method::Get, "/api/v1.0/reaction/user_id/restore/");
        assert_eq!(r.endpoint.name, "reactions.filter");
        let r = ok(Method::Put, "/api/v1.0/reaction/user_id/restore/");
        assert_eq!(r.endpoint.name, "reactions.restore");
        let r = ok(Method::Get, "/api/v1.0/reaction/reaction_id/r1/like/");
        assert_eq!(r.endpoint.name, "reactions.filter");
        assert_eq!(
            route(Method::Get, "/api/v1.0/reaction/r1/restore/").unwrap_err(),
            RouteError::MethodNotAllowed {
                allow: vec![Method::Put]
            }
        );
        assert_eq!(
            route(Method::Get, "/api/v1.0/reaction/nope/a/b/").unwrap_err(),
            RouteError::NotFound
        );
        // Object ids are Stream's to judge (the request target bounds their length) ...
        let long = "u".repeat(256);
        for (m, p) in [
            (
                Method::Get,
                "/api/v1.0/reaction/activity_id/a/li%20ke/".to_owned(),
            ),
            (Method::Post, "/api/v1.0/collections/fo%20od/".to_owned()),
            (Method::Get, format!("/api/v1.0/user/{long}/")),
        ] {
            ok(m, &p);
        }
        // ... but an empty one would reach another endpoint once slashes collapse.
        for (m, p, f) in [
            (Method::Get, "/api/v1.0/user//", "user_id"),
            (Method::Get, "/api/v1.0/reaction//", "reaction_id"),
            (Method::Get, "/api/v1.0/collections/x//", "id"),
            (Method::Post, "/api/v1.0/collections//", "collection_name"),
            (Method::Delete, "/api/v1.0/feed/user/42//", "activity_id"),
            (Method::Get, "/api/v1.0/reaction/user_id//", "user_id"),
        ] {
            assert_eq!(invalid_field(m, p), f, "{p}");
        }
        // Ids are decoded, checked, and re-encoded the one way.
        assert_eq!(
            ok(Method::Get, "/api/v1.0/user/a%20b/").path,
            "/api/v1.0/user/a%20b/"
        );
        assert_eq!(
            ok(Method::Get, "/api/v1.0/collections/food/a%3Ab/").path,
            "/api/v1.0/collections/food/a:b/"
        );
    }

    #[test]
    fn only_batch_rows_use_application_auth_and_only_og_and_audit_logs_have_no_resource() {
        for e in &ENDPOINTS {
            let batch = matches!(
                e.id,
                EndpointId::AddToMany | EndpointId::FollowMany | EndpointId::UnfollowMany
            );
            assert_eq!(e.auth == AuthKind::Application, batch, "{}", e.name);
            assert_eq!(
                e.resource == Resource::All,
                matches!(e.id, EndpointId::OpenGraph | EndpointId::AuditLogs),
                "{}",
                e.name
            );
            if e.host == Host::Api {
                assert_ne!(e.action, Action::All, "{}", e.name);
            }
            let in_path = e.pattern.contains("{slug}/{user_id}");
            assert_eq!(e.feed_scope == FeedScope::PathFeed, in_path, "{}", e.name);
        }
    }

    #[test]
    fn each_service_routes_only_its_own_paths_under_its_own_prefix() {
        for (m, p) in [
            (Method::Post, "/api/v1.0/engagement/"),
            (Method::Get, "/analytics/v1.0/feed/user/1/"),
            (Method::Post, "/analytics/v1.0/"),
            (Method::Get, "/personalization/v1.0/"),
            (Method::Get, "/personalization/v1.0/a/b/"),
            (Method::Post, "/analytics/v2.0/engagement/"),
        ] {
            assert_eq!(route(m, p).unwrap_err(), RouteError::NotFound, "{p}");
        }
        assert_eq!(
            route(Method::Get, "/analytics/v1.0/engagement/").unwrap_err(),
            RouteError::MethodNotAllowed {
                allow: vec![Method::Post]
            }
        );
        let r = ok(Method::Post, "/analytics/v1.0/impression");
        assert_eq!(r.path, "/analytics/v1.0/impression/");
        assert_eq!(r.endpoint.host, Host::Analytics);
        let r = ok(Method::Get, "/personalization/v1.0/recommended");
        assert_eq!(r.path, "/personalization/v1.0/recommended/");
        assert_eq!(r.endpoint.host, Host::Personalization);
        assert_eq!(
            invalid_field(Method::Get, "/personalization/v1.0/..%2Fapi/"),
            "path"
        );
        for h in Host::ALL {
            assert_eq!(Host::ALL[h.index()], h);
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
