//! Feed handlers: read, add and remove activities; follow, unfollow and their lists and
//! counts; the batch routes (`add_to_many`, `follow_many`, `unfollow_many`); `to` targets.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{
    app, comma_list, enrichment, feed_of, is_enriched, json_body, jwt, number, object, param,
    scope, truthy, Call,
};
use super::reply::{created, input_error, not_found, ok, EmuError, Reply};
use super::state::EmulatorState;
use super::store::groups::{FeedKind, Marks};
use super::store::{IdBound, Store, DEFAULT_COPY_LIMIT, DEFAULT_LIMIT};
use super::verify::Needed;
use stream_wire::{parse_time, Action, FeedId, Resource};

type St = State<Arc<EmulatorState>>;

/// A call on the feed of its route's `{slug}/{user}`, with the route's other parameters.
pub(super) struct OnFeed {
    call: Call,
    params: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for OnFeed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(call) = Call::from_request_parts(parts, state).await;
        Ok(Self { call, params })
    }
}

impl OnFeed {
    /// The route's parameter `name` (empty when it has none).
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v)
    }

    /// The feed and the call, once its credentials cover `action` on `resource` for that feed
    /// (a bad slug or user id is refused first).
    fn authorize(
        &self,
        st: &EmulatorState,
        resource: Resource,
        action: Action,
    ) -> Result<(FeedId, &Call), EmuError> {
        let feed = feed_of(self.param("slug"), self.param("user"))?;
        st.authorize(
            &self.call,
            Needed::Jwt(scope(resource, action, Some(&feed))),
        )?;
        Ok((feed, &self.call))
    }
}

/// `GET feed/{slug}/{user}/` (and `enrich/feed/...`).
pub(super) async fn read_feed(State(st): St, on: OnFeed) -> Reply {
    let (feed, call) = on.authorize(&st, Resource::Feed, Action::Read)?;
    let limit = number(&call.uri, "limit", DEFAULT_LIMIT)?;
    let offset = number(&call.uri, "offset", 0)?;
    let mut bounds = Vec::new();
    for (name, b) in [
        ("id_lt", IdBound::Lt),
        ("id_lte", IdBound::Lte),
        ("id_gt", IdBound::Gt),
        ("id_gte", IdBound::Gte),
    ] {
        if let Some(v) = param(&call.uri, name) {
            let id = uuid::Uuid::parse_str(&v)
                .map_err(|_| input_error(name, "must be an activity id"))?;
            bounds.push((b, id));
        }
    }
    let mut store = st.store();
    let name = feed.to_string();
    let kind = store.kind(&name);
    if kind != FeedKind::Flat {
        return Ok(ok(read_groups(
            &mut store, &name, kind, limit, offset, call,
        )?));
    }
    let mut results = store.read(&feed, limit, offset, &bounds);
    if is_enriched(&call.uri) {
        let how = enrichment(&call.uri)?;
        for a in &mut results {
            store.enrich(a, &how);
        }
    }
    drop(store);
    let next = match results.last() {
        Some(last) if results.len() == limit => format!(
            "/api/v1.0/feed/{}/?id_lt={}&limit={limit}",
            feed.path(),
            last["id"].as_str().unwrap_or_default()
        ),
        _ => String::new(),
    };
    Ok(ok(json!({ "results": results, "next": next })))
}

/// `mark_seen` / `mark_read`: `true` (or stream-js's `all`), `current` (the groups this read
/// answers), or a comma-separated list of group ids.
fn marks(call: &Call, name: &str, page: &[Value]) -> Option<Marks> {
    let v = param(&call.uri, name)?;
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "all" => Some(Marks::All),
        "false" | "0" | "" => None,
        "current" => Some(Marks::Ids(
            page.iter()
                .filter_map(|g| g["id"].as_str().map(str::to_owned))
                .collect(),
        )),
        _ => Some(Marks::Ids(
            comma_list(&v).into_iter().map(str::to_owned).collect(),
        )),
    }
}

/// A read of an aggregated or notification feed: groups, paged by offset. A notification
/// read answers the state before its own `mark_seen` / `mark_read`, which apply after it.
fn read_groups(
    store: &mut Store,
    feed: &str,
    kind: FeedKind,
    limit: usize,
    offset: usize,
    call: &Call,
) -> Result<Value, EmuError> {
    let mut groups = store.read_groups(feed, limit, offset);
    if is_enriched(&call.uri) {
        let how = enrichment(&call.uri)?;
        for g in &mut groups {
            if let Some(list) = g["activities"].as_array_mut() {
                for a in list {
                    store.enrich(a, &how);
                }
            }
        }
    }
    let next = if groups.len() == limit {
        format!(
            "/api/v1.0/feed/{}/?offset={}&limit={limit}",
            feed.replace(':', "/"),
            offset + limit
        )
    } else {
        String::new()
    };
    let mut out = json!({ "results": groups, "next": next });
    if kind == FeedKind::Notification {
        let counts = store.unseen(feed);
        out["unseen"] = json!(counts.unseen);
        out["unread"] = json!(counts.unread);
        let page = out["results"].as_array().cloned().unwrap_or_default();
        if let Some(m) = marks(call, "mark_seen", &page) {
            store.mark(feed, &m, false);
        }
        if let Some(m) = marks(call, "mark_read", &page) {
            store.mark(feed, &m, true);
        }
    }
    Ok(out)
}

/// `POST feed/{slug}/{user}/`: one activity, or `{"activities": [...]}`.
pub(super) async fn add_activity(State(st): St, on: OnFeed, body: Bytes) -> Reply {
    let (feed, _) = on.authorize(&st, Resource::Feed, Action::Write)?;
    let v: Map<String, Value> = json_body(&body)?;
    if let Some(list) = v.get("activities") {
        let list: Vec<Map<String, Value>> = serde_json::from_value(list.clone())
            .map_err(|_| input_error("activities", "must be a list of objects"))?;
        list.iter().try_for_each(base_fields)?;
        let mut store = st.store();
        st.room_for(&store, list.len())?;
        let added: Vec<Value> = list.into_iter().map(|a| store.add(&feed, a)).collect();
        return Ok(created(json!({ "activities": added })));
    }
    base_fields(&v)?;
    let mut store = st.store();
    st.room_for(&store, 1)?;
    Ok(created(store.add(&feed, v)))
}

/// Stream refuses an activity without `actor`, `verb` and `object` (a string, or a number
/// for actor and object), and one whose `object` is empty (stream-js's own tests: adding
/// `"object": ""` rejects).
fn base_fields(v: &Map<String, Value>) -> Result<(), super::reply::EmuError> {
    for key in ["actor", "verb", "object"] {
        let ok = match v.get(key) {
            Some(Value::String(_)) => true,
            Some(Value::Number(_)) => key != "verb",
            _ => false,
        };
        if !ok {
            return Err(input_error(key, "is required"));
        }
    }
    if v.get("object").and_then(Value::as_str) == Some("") {
        return Err(input_error("object", "must not be empty"));
    }
    Ok(())
}

/// `DELETE feed/{slug}/{user}/{activity id or foreign id}/`
pub(super) async fn remove_activity(State(st): St, on: OnFeed) -> Reply {
    let (feed, call) = on.authorize(&st, Resource::Feed, Action::Delete)?;
    let activity = on.param("activity");
    let by_foreign = truthy(param(&call.uri, "foreign_id"));
    st.store().remove(&feed, activity, by_foreign);
    Ok(ok(json!({ "removed": activity })))
}

fn follow_page(st: &EmulatorState, on: &OnFeed, followers: bool) -> Reply {
    let (feed, call) = on.authorize(st, Resource::Follower, Action::Read)?;
    let uri = &call.uri;
    let limit = number(uri, "limit", DEFAULT_LIMIT)?;
    let offset = number(uri, "offset", 0)?;
    if offset > 400 {
        return Err(input_error("offset", "must be at most 400"));
    }
    let filter: Vec<String> = param(uri, "filter")
        .map(|f| {
            f.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let results = st
        .store()
        .follow_list(&feed, followers, limit, offset, &filter);
    Ok(ok(json!({ "results": results })))
}

/// `GET feed/{slug}/{user}/followers/`
pub(super) async fn followers(State(st): St, on: OnFeed) -> Reply {
    follow_page(&st, &on, true)
}

/// `GET feed/{slug}/{user}/follows/`
pub(super) async fn following(State(st): St, on: OnFeed) -> Reply {
    follow_page(&st, &on, false)
}

fn copy_limit(v: Option<&Value>, default: usize) -> Result<usize, EmuError> {
    match v {
        None => Ok(default),
        Some(n) => match n.as_u64() {
            Some(n) if n <= 1000 => Ok(n as usize),
            _ => Err(input_error(
                "activity_copy_limit",
                "must be an integer from 0 to 1000",
            )),
        },
    }
}

/// `POST feed/{slug}/{user}/follows/`
pub(super) async fn follow(State(st): St, on: OnFeed, body: Bytes) -> Reply {
    let (source, _) = on.authorize(&st, Resource::Follower, Action::Write)?;
    let v: Map<String, Value> = json_body(&body)?;
    let target = feed_field(&v, "target")?;
    let limit = copy_limit(v.get("activity_copy_limit"), DEFAULT_COPY_LIMIT)?;
    st.store().follow(&source, &target, limit);
    Ok(created(json!({})))
}

/// `DELETE feed/{slug}/{user}/follows/{target}/`
pub(super) async fn unfollow(State(st): St, on: OnFeed) -> Reply {
    let (source, call) = on.authorize(&st, Resource::Follower, Action::Delete)?;
    let target =
        FeedId::parse(on.param("target")).map_err(|e| input_error("target", &e.to_string()))?;
    st.store()
        .unfollow(&source, &target, truthy(param(&call.uri, "keep_history")));
    Ok(ok(json!({})))
}

/// The feed id in the field `k` of a body object.
fn feed_field(m: &Map<String, Value>, k: &str) -> Result<FeedId, EmuError> {
    m.get(k)
        .and_then(Value::as_str)
        .and_then(|s| FeedId::parse(s).ok())
        .ok_or_else(|| input_error(k, "must be a feed id"))
}

/// `POST feed/add_to_many/`: application auth.
pub(super) async fn add_to_many(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, app(Resource::Feed, Action::Write))?;
    #[derive(Deserialize)]
    struct Body {
        activity: Map<String, Value>,
        feeds: Vec<String>,
    }
    let b: Body = json_body(&body)?;
    if b.feeds.len() > 5000 {
        return Err(input_error("feeds", "at most 5000"));
    }
    let feeds = b
        .feeds
        .iter()
        .map(|f| FeedId::parse(f).map_err(|e| input_error("feeds", &e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = st.store();
    st.room_for(&store, 1)?;
    store.add_to_many(&feeds, b.activity);
    Ok(created(json!({})))
}

/// `POST follow_many/`: application auth.
pub(super) async fn follow_many(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, app(Resource::Follower, Action::Write))?;
    let list: Vec<Map<String, Value>> = json_body(&body)?;
    if list.len() > 2500 {
        return Err(input_error("body", "at most 2500 follows"));
    }
    let default = match param(&call.uri, "activity_copy_limit") {
        None => DEFAULT_COPY_LIMIT,
        Some(v) => copy_limit(
            Some(&json!(v.parse::<u64>().unwrap_or(u64::MAX))),
            DEFAULT_COPY_LIMIT,
        )?,
    };
    let mut store = st.store();
    for f in &list {
        let limit = copy_limit(f.get("activity_copy_limit"), default)?;
        store.follow(&feed_field(f, "source")?, &feed_field(f, "target")?, limit);
    }
    Ok(created(json!({})))
}

/// `POST unfollow_many/`: application auth.
pub(super) async fn unfollow_many(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, app(Resource::Follower, Action::Write))?;
    let list: Vec<Map<String, Value>> = json_body(&body)?;
    let mut store = st.store();
    for u in &list {
        let keep = u
            .get("keep_history")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        store.unfollow(&feed_field(u, "source")?, &feed_field(u, "target")?, keep);
    }
    Ok(created(json!({})))
}

/// `GET stats/follow/?followers=&following=`
pub(super) async fn follow_stats(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Follower, Action::Read))?;
    let feed = |name: &str| -> Result<Option<String>, EmuError> {
        param(&call.uri, name)
            .map(|f| {
                FeedId::parse(&f)
                    .map(|f| f.to_string())
                    .map_err(|e| input_error(name, &e.to_string()))
            })
            .transpose()
    };
    let slugs = |name: &str| -> Vec<String> {
        param(&call.uri, name)
            .map(|s| comma_list(&s).into_iter().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (followers, following) = (feed("followers")?, feed("following")?);
    let counts = st.store().follow_counts(
        followers.as_deref(),
        following.as_deref(),
        &slugs("followers_slugs"),
        &slugs("following_slugs"),
    );
    Ok(ok(json!({ "results": counts })))
}

fn feed_ids(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, EmuError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|f| {
                f.as_str()
                    .and_then(|s| FeedId::parse(s).ok())
                    .map(|f| f.to_string())
                    .ok_or_else(|| input_error(field, "must be a list of feed ids"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(input_error(field, "must be a list of feed ids")),
    }
}

/// `POST feed_targets/{slug}/{user}/activity_to_targets/`
pub(super) async fn to_targets(State(st): St, on: OnFeed, body: Bytes) -> Reply {
    let (feed, _) = on.authorize(&st, Resource::FeedTargets, Action::Write)?;
    let v: Value = json_body(&body)?;
    let (list, one) = match &v {
        Value::Array(a) => (a.clone(), false),
        other => (vec![other.clone()], true),
    };
    let mut store = st.store();
    let mut out = Vec::new();
    for u in &list {
        let u = object(Some(u));
        let foreign_id = u
            .get("foreign_id")
            .and_then(Value::as_str)
            .ok_or_else(|| input_error("foreign_id", "is required"))?;
        let time = u
            .get("time")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .ok_or_else(|| input_error("time", "is required"))?;
        let new = feed_ids(u.get("new_targets"), "new_targets")?;
        let added = feed_ids(u.get("added_targets"), "added_targets")?.unwrap_or_default();
        let removed = feed_ids(u.get("removed_targets"), "removed_targets")?.unwrap_or_default();
        let a = store
            .update_to_targets(&feed, foreign_id, time, new, added, removed)
            .ok_or_else(|| not_found("activity"))?;
        out.push(a);
    }
    // One update (what every official client sends) answers `{"activity": ...}`, as Stream.
    if one {
        return Ok(created(json!({ "activity": out.pop() })));
    }
    Ok(created(json!({ "activities": out })))
}
