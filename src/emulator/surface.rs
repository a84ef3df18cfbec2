//! The rest of the v1.0 surface the official clients use: activity lookups and partial
//! updates, `to` target updates, `unfollow_many`, follow counts, open graph, reactions,
//! collections and users. Each handler names the scope it needs, as Stream would check it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::reply::{input_error, stream_error};
use super::{
    created, feed_of, json_body, number, ok, param, params, scope, truthy, Call, Emu, Needed, Reply,
};
use crate::stream::{parse_time, Action, FeedId, Resource};

/// Default page size of a reaction filter (stream-js's default).
const REACTION_LIMIT: usize = 10;

/// The routes of this file, merged into the emulator's router.
pub fn routes() -> Router<Arc<Emu>> {
    Router::new()
        .route(
            "/api/v1.0/enrich/feed/{slug}/{user}/",
            get(super::read_feed),
        )
        .route(
            "/api/v1.0/feed_targets/{slug}/{user}/activity_to_targets/",
            post(to_targets),
        )
        .route(
            "/api/v1.0/activities/",
            get(get_activities).post(super::update_activities),
        )
        .route("/api/v1.0/enrich/activities/", get(get_activities))
        .route("/api/v1.0/activity/", post(partial_update))
        .route("/api/v1.0/unfollow_many/", post(unfollow_many))
        .route("/api/v1.0/stats/follow/", get(follow_stats))
        .route("/api/v1.0/og/", get(og))
        .route("/api/v1.0/reaction/", post(add_reaction))
        .route("/api/v1.0/reaction/get_many/", get(reactions_by_ids))
        .route(
            "/api/v1.0/reaction/{id}/",
            get(get_reaction)
                .put(update_reaction)
                .delete(delete_reaction),
        )
        .route(
            "/api/v1.0/reaction/{a}/{b}/",
            get(filter_reactions).put(restore_reaction),
        )
        .route(
            "/api/v1.0/reaction/{a}/{b}/{kind}/",
            get(filter_reactions_by_kind),
        )
        .route(
            "/api/v1.0/collections/",
            get(select_collections)
                .post(upsert_collections)
                .delete(delete_many_collections),
        )
        .route("/api/v1.0/collections/{name}/", post(add_entry))
        .route(
            "/api/v1.0/collections/{name}/{id}/",
            get(get_entry).put(update_entry).delete(delete_entry),
        )
        .route("/api/v1.0/user/", post(add_user))
        .route(
            "/api/v1.0/users/",
            get(get_users).post(add_users).delete(delete_users),
        )
        .route(
            "/api/v1.0/user/{id}/",
            get(get_user).put(update_user).delete(delete_user),
        )
}

fn now() -> String {
    super::store::fmt_time(&chrono::Utc::now().naive_utc())
}

fn not_found(what: &str) -> super::reply::EmuError {
    stream_error(
        404,
        16,
        "DoesNotExistException",
        &format!("{what} does not exist"),
    )
}

fn conflict(what: &str) -> super::reply::EmuError {
    stream_error(
        409,
        22,
        "ConflictException",
        &format!("{what} already exists"),
    )
}

fn comma_list(v: &str) -> Vec<&str> {
    v.split(',').filter(|s| !s.is_empty()).collect()
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

fn jwt(resource: Resource, action: Action) -> Needed {
    Needed::Jwt(scope(resource, action, None))
}

async fn get_activities(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Activities, Action::Read))?;
    let store = st.store();
    let results = if let Some(ids) = param(&call.uri, "ids") {
        store.by_ids(&comma_list(&ids))
    } else {
        let f = param(&call.uri, "foreign_ids").unwrap_or_default();
        let t = param(&call.uri, "timestamps").unwrap_or_default();
        let (f, t) = (comma_list(&f), comma_list(&t));
        if f.is_empty() || f.len() != t.len() {
            return Err(input_error(
                "foreign_ids",
                "ids, or foreign_ids and timestamps of equal length, are required",
            ));
        }
        let keys = f
            .iter()
            .zip(&t)
            .map(|(f, t)| {
                parse_time(t)
                    .map(|t| ((*f).to_owned(), t))
                    .ok_or_else(|| input_error("timestamps", "must be ISO 8601 times"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        store.by_foreign_ids(&keys)
    };
    Ok(ok(json!({ "results": results })))
}

async fn partial_update(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Activities, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let changes: Vec<Map<String, Value>> = match v.get("changes") {
        Some(c) => serde_json::from_value(c.clone())
            .map_err(|_| input_error("changes", "must be a list of objects"))?,
        None => vec![v],
    };
    let mut store = st.store();
    let mut updated = Vec::new();
    for c in &changes {
        updated.push(
            store
                .partial_update(c)
                .ok_or_else(|| not_found("activity"))?,
        );
    }
    Ok(created(json!({ "activities": updated })))
}

fn feed_ids(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, super::reply::EmuError> {
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

async fn to_targets(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
    body: Bytes,
) -> Reply {
    let feed = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::FeedTargets, Action::Write, Some(&feed))),
    )?;
    let v: Value = json_body(&body)?;
    let list = match &v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
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
    Ok(created(json!({ "activities": out })))
}

async fn unfollow_many(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(
        &call,
        Needed::App(scope(Resource::Follower, Action::Write, None)),
    )?;
    let list: Vec<Map<String, Value>> = json_body(&body)?;
    let mut store = st.store();
    for u in &list {
        let get = |k: &str| {
            u.get(k)
                .and_then(Value::as_str)
                .and_then(|s| FeedId::parse(s).ok())
                .ok_or_else(|| input_error(k, "must be a feed id"))
        };
        let keep = u
            .get("keep_history")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        store.unfollow(&get("source")?, &get("target")?, keep);
    }
    Ok(created(json!({})))
}

async fn follow_stats(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Follower, Action::Read))?;
    let feed = |name: &str| -> Result<Option<String>, super::reply::EmuError> {
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

async fn og(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::All, Action::Read))?;
    let url = param(&call.uri, "url").ok_or_else(|| input_error("url", "is required"))?;
    // No scraping: the emulator has no network. The shape is Stream's.
    Ok(ok(json!({
        "url": url,
        "title": "",
        "description": "",
        "images": [],
        "videos": [],
        "audios": [],
    })))
}

fn reaction_view(r: &Map<String, Value>) -> Value {
    Value::Object(r.clone())
}

async fn add_reaction(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| input_error("kind", "is required"))?;
    let activity = v.get("activity_id").and_then(Value::as_str);
    let parent = v.get("parent").and_then(Value::as_str);
    let mut store = st.store();
    let activity_id = match (activity, parent) {
        (Some(a), _) => a.to_owned(),
        (None, Some(p)) => store
            .reactions
            .get(p)
            .and_then(|r| r.get("activity_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| not_found("parent reaction"))?,
        (None, None) => return Err(input_error("activity_id", "is required")),
    };
    let id = match v.get("id").and_then(Value::as_str) {
        Some(id) if store.reactions.contains_key(id) => return Err(conflict("reaction")),
        Some(id) => id.to_owned(),
        None => store.object_id(),
    };
    let t = now();
    let r = json!({
        "id": id,
        "kind": kind,
        "activity_id": activity_id,
        "parent": parent.unwrap_or(""),
        "user_id": v.get("user_id").cloned().unwrap_or(Value::Null),
        "data": object(v.get("data")),
        "target_feeds": v.get("target_feeds").cloned().unwrap_or(json!([])),
        "created_at": t,
        "updated_at": t,
        "children_counts": {},
        "latest_children": {},
    });
    let r = r.as_object().cloned().unwrap_or_default();
    store.reactions.insert(id, r.clone());
    Ok(created(reaction_view(&r)))
}

fn live_reaction<'a>(
    store: &'a super::store::Store,
    id: &str,
) -> Result<&'a Map<String, Value>, super::reply::EmuError> {
    store
        .reactions
        .get(id)
        .filter(|r| r.get("deleted_at").is_none())
        .ok_or_else(|| not_found("reaction"))
}

async fn get_reaction(State(st): State<Arc<Emu>>, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let store = st.store();
    Ok(ok(reaction_view(live_reaction(&store, &id)?)))
}

async fn update_reaction(
    State(st): State<Arc<Emu>>,
    Path(id): Path<String>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    live_reaction(&store, &id)?;
    let r = store.reactions.get_mut(&id).expect("checked above");
    if let Some(Value::Object(d)) = v.get("data") {
        r.insert("data".into(), Value::Object(d.clone()));
    }
    if let Some(t @ Value::Array(_)) = v.get("target_feeds") {
        r.insert("target_feeds".into(), t.clone());
    }
    r.insert("updated_at".into(), json!(now()));
    Ok(created(reaction_view(r)))
}

async fn delete_reaction(State(st): State<Arc<Emu>>, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Delete))?;
    let mut store = st.store();
    live_reaction(&store, &id)?;
    if truthy(param(&call.uri, "soft")) {
        let r = store.reactions.get_mut(&id).expect("checked above");
        r.insert("deleted_at".into(), json!(now()));
    } else {
        store.reactions.remove(&id);
    }
    Ok(ok(json!({})))
}

/// `PUT reaction/{id}/restore/` and `GET reaction/{lookup}/{value}/` share a path shape.
async fn restore_reaction(
    State(st): State<Arc<Emu>>,
    Path((id, tail)): Path<(String, String)>,
    call: Call,
) -> Reply {
    if tail != "restore" {
        return Err(stream_error(
            405,
            4,
            "MethodNotAllowed",
            "method not allowed",
        ));
    }
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let mut store = st.store();
    let r = store
        .reactions
        .get_mut(&id)
        .filter(|r| r.get("deleted_at").is_some())
        .ok_or_else(|| not_found("soft-deleted reaction"))?;
    r.remove("deleted_at");
    Ok(created(reaction_view(r)))
}

fn filter(st: &Emu, call: &Call, lookup: &str, value: &str, kind: Option<&str>) -> Reply {
    st.authorize(call, jwt(Resource::Reactions, Action::Read))?;
    let field = match lookup {
        "reaction_id" => "parent",
        "activity_id" => "activity_id",
        "user_id" => "user_id",
        _ => return Err(not_found("lookup")),
    };
    let limit = number(&call.uri, "limit", REACTION_LIMIT)?;
    let store = st.store();
    let mut results: Vec<&Map<String, Value>> = store
        .reactions
        .values()
        .filter(|r| r.get("deleted_at").is_none())
        .filter(|r| r.get(field).and_then(Value::as_str) == Some(value))
        .filter(|r| kind.is_none_or(|k| r.get("kind").and_then(Value::as_str) == Some(k)))
        .collect();
    // Newest first; ids break ties.
    results.sort_by(|a, b| {
        let key = |r: &Map<String, Value>| {
            (
                r.get("created_at")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                r.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    let results: Vec<Value> = results.into_iter().take(limit).map(reaction_view).collect();
    let mut out = json!({ "results": results, "next": "" });
    if lookup == "activity_id" && truthy(param(&call.uri, "with_activity_data")) {
        out["activity"] = store.by_ids(&[value]).pop().unwrap_or(Value::Null);
    }
    Ok(ok(out))
}

async fn filter_reactions(
    State(st): State<Arc<Emu>>,
    Path((lookup, value)): Path<(String, String)>,
    call: Call,
) -> Reply {
    filter(&st, &call, &lookup, &value, None)
}

async fn filter_reactions_by_kind(
    State(st): State<Arc<Emu>>,
    Path((lookup, value, kind)): Path<(String, String, String)>,
    call: Call,
) -> Reply {
    filter(&st, &call, &lookup, &value, Some(&kind))
}

async fn reactions_by_ids(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let store = st.store();
    let results: Vec<Value> = comma_list(&ids)
        .into_iter()
        .filter_map(|id| store.reactions.get(id))
        .map(reaction_view)
        .collect();
    Ok(ok(json!({ "results": results })))
}

fn entry_view(name: &str, id: &str, e: &Map<String, Value>) -> Value {
    let mut v = Value::Object(e.clone());
    v["id"] = json!(id);
    v["collection"] = json!(name);
    v["foreign_id"] = json!(format!("{name}:{id}"));
    v
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn upsert_collections(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let data = v
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| input_error("data", "is required"))?;
    let mut store = st.store();
    let mut out = Map::new();
    for (name, entries) in data {
        let entries = entries
            .as_array()
            .ok_or_else(|| input_error("data", "must map names to lists"))?;
        let mut saved = Vec::new();
        for e in entries {
            let mut fields = object(Some(e));
            let id = fields
                .remove("id")
                .as_ref()
                .and_then(id_string)
                .ok_or_else(|| input_error("id", "is required"))?;
            let t = now();
            let key = (name.clone(), id.clone());
            let created_at = store
                .collections
                .get(&key)
                .and_then(|e| e.get("created_at").cloned())
                .unwrap_or_else(|| json!(t));
            let entry = json!({ "data": fields, "created_at": created_at, "updated_at": t });
            let entry = entry.as_object().cloned().unwrap_or_default();
            saved.push(entry_view(name, &id, &entry));
            store.collections.insert(key, entry);
        }
        out.insert(name.clone(), Value::Array(saved));
    }
    Ok(created(json!({ "data": out })))
}

async fn select_collections(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Read))?;
    let ids =
        param(&call.uri, "foreign_ids").ok_or_else(|| input_error("foreign_ids", "is required"))?;
    let store = st.store();
    let data: Vec<Value> = comma_list(&ids)
        .into_iter()
        .filter_map(|f| f.split_once(':'))
        .filter_map(|(n, id)| {
            store
                .collections
                .get(&(n.to_owned(), id.to_owned()))
                .map(|e| entry_view(n, id, e))
        })
        .collect();
    Ok(ok(json!({ "response": { "data": data } })))
}

async fn delete_many_collections(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Delete))?;
    let name = param(&call.uri, "collection_name")
        .ok_or_else(|| input_error("collection_name", "is required"))?;
    let mut store = st.store();
    for (_, v) in params(&call.uri).into_iter().filter(|(k, _)| k == "ids") {
        for id in comma_list(&v) {
            store.collections.remove(&(name.clone(), id.to_owned()));
        }
    }
    Ok(ok(json!({})))
}

async fn add_entry(
    State(st): State<Arc<Emu>>,
    Path(name): Path<String>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    let id = match v.get("id").and_then(id_string) {
        Some(id) => id,
        None => store.object_id(),
    };
    let key = (name.clone(), id.clone());
    if store.collections.contains_key(&key) {
        return Err(conflict("collection entry"));
    }
    let t = now();
    let entry = json!({
        "data": object(v.get("data")),
        "user_id": v.get("user_id").cloned().unwrap_or(Value::Null),
        "created_at": t,
        "updated_at": t,
    });
    let entry = entry.as_object().cloned().unwrap_or_default();
    let view = entry_view(&name, &id, &entry);
    store.collections.insert(key, entry);
    Ok(created(view))
}

async fn get_entry(
    State(st): State<Arc<Emu>>,
    Path((name, id)): Path<(String, String)>,
    call: Call,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Read))?;
    let store = st.store();
    let e = store
        .collections
        .get(&(name.clone(), id.clone()))
        .ok_or_else(|| not_found("collection entry"))?;
    Ok(ok(entry_view(&name, &id, e)))
}

async fn update_entry(
    State(st): State<Arc<Emu>>,
    Path((name, id)): Path<(String, String)>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    let e = store
        .collections
        .get_mut(&(name.clone(), id.clone()))
        .ok_or_else(|| not_found("collection entry"))?;
    e.insert("data".into(), Value::Object(object(v.get("data"))));
    e.insert("updated_at".into(), json!(now()));
    Ok(created(entry_view(&name, &id, e)))
}

async fn delete_entry(
    State(st): State<Arc<Emu>>,
    Path((name, id)): Path<(String, String)>,
    call: Call,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Delete))?;
    st.store()
        .collections
        .remove(&(name, id))
        .ok_or_else(|| not_found("collection entry"))?;
    Ok(ok(json!({})))
}

fn user_view(id: &str, u: &Map<String, Value>) -> Value {
    let mut v = Value::Object(u.clone());
    v["id"] = json!(id);
    v
}

async fn add_user(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| input_error("id", "is required"))?;
    let mut store = st.store();
    if let Some(u) = store.users.get(id) {
        if truthy(param(&call.uri, "get_or_create")) {
            return Ok(ok(user_view(id, u)));
        }
        return Err(conflict("user"));
    }
    let t = now();
    let u = json!({ "data": object(v.get("data")), "created_at": t, "updated_at": t });
    let u = u.as_object().cloned().unwrap_or_default();
    let view = user_view(id, &u);
    store.users.insert(id.to_owned(), u);
    Ok(created(view))
}

async fn get_user(State(st): State<Arc<Emu>>, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let store = st.store();
    let u = store.users.get(&id).ok_or_else(|| not_found("user"))?;
    Ok(ok(user_view(&id, u)))
}

async fn update_user(
    State(st): State<Arc<Emu>>,
    Path(id): Path<String>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    let u = store.users.get_mut(&id).ok_or_else(|| not_found("user"))?;
    u.insert("data".into(), Value::Object(object(v.get("data"))));
    u.insert("updated_at".into(), json!(now()));
    Ok(created(user_view(&id, u)))
}

async fn delete_user(State(st): State<Arc<Emu>>, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    st.store()
        .users
        .remove(&id)
        .ok_or_else(|| not_found("user"))?;
    Ok(ok(json!({})))
}

async fn add_users(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let users: Vec<Map<String, Value>> =
        serde_json::from_value(v.get("users").cloned().unwrap_or(Value::Null))
            .map_err(|_| input_error("users", "must be a list of objects"))?;
    let replace = v.get("override").and_then(Value::as_bool).unwrap_or(false);
    let mut store = st.store();
    let mut out = Vec::new();
    for u in &users {
        let id = u
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| input_error("id", "is required"))?;
        if !replace {
            if let Some(existing) = store.users.get(id) {
                out.push(user_view(id, existing));
                continue;
            }
        }
        let t = now();
        let rec = json!({ "data": object(u.get("data")), "created_at": t, "updated_at": t });
        let rec = rec.as_object().cloned().unwrap_or_default();
        out.push(user_view(id, &rec));
        store.users.insert(id.to_owned(), rec);
    }
    Ok(created(json!({ "created_users": out })))
}

async fn get_users(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let store = st.store();
    let users: Vec<Value> = comma_list(&ids)
        .into_iter()
        .filter_map(|id| store.users.get(id).map(|u| user_view(id, u)))
        .collect();
    Ok(ok(json!({ "users": users })))
}

async fn delete_users(State(st): State<Arc<Emu>>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let mut store = st.store();
    let deleted: Vec<&str> = comma_list(&ids)
        .into_iter()
        .filter(|id| store.users.remove(*id).is_some())
        .collect();
    Ok(ok(json!({ "deleted_user_ids": deleted })))
}
