//! Reaction handlers: add (to an activity, or as a child of a reaction, with activities in
//! `target_feeds`), get, update, delete (hard or soft) and restore, lookups by ids, and
//! filters by activity, parent or user with kinds and id paging.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, number, object, param, truthy, Call};
use super::reply::{conflict, created, input_error, not_found, ok, stream_error, EmuError, Reply};
use super::state::EmulatorState;
use super::store::objects::ReactionLookup;
use super::store::{now_string, IdBound, Store};
use stream_wire::{Action, FeedId, Resource};

type St = State<Arc<EmulatorState>>;

/// Default page size of a reaction filter (stream-js's default).
const REACTION_LIMIT: usize = 10;

fn view(store: &Store, id: &str) -> Result<Value, EmuError> {
    store.reaction_view(id).ok_or_else(|| not_found("reaction"))
}

/// `POST reaction/`
pub(super) async fn add(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| input_error("kind", "is required"))?;
    let activity = id_text(v.get("activity_id"));
    let parent = v
        .get("parent")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let targets: Vec<FeedId> = match v.get("target_feeds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|f| {
                f.as_str()
                    .and_then(|s| FeedId::parse(s).ok())
                    .ok_or_else(|| input_error("target_feeds", "must be a list of feed ids"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(input_error("target_feeds", "must be a list of feed ids")),
    };
    let mut store = st.store();
    // Stream refuses a child of a reaction it does not have as invalid input, not as 404.
    let parent_activity = match parent {
        None => None,
        Some(p) => Some(
            store
                .reactions
                .get(p)
                .and_then(|r| r.get("activity_id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| input_error("parent", "no reaction has this id"))?,
        ),
    };
    let activity_id = match (activity, parent_activity) {
        (Some(a), _) => a,
        (None, Some(a)) => a,
        (None, None) => return Err(input_error("activity_id", "is required")),
    };
    let id = match v.get("id").and_then(Value::as_str) {
        Some(id) if store.reactions.contains_key(id) => return Err(conflict("reaction")),
        Some(id) => id.to_owned(),
        None => store.object_id(),
    };
    let t = now_string();
    let r = json!({
        "id": id,
        "kind": kind,
        "activity_id": activity_id,
        "parent": parent.unwrap_or(""),
        "user_id": id_text(v.get("user_id")).map_or(Value::Null, Value::String),
        "data": object(v.get("data")),
        "target_feeds": v.get("target_feeds").cloned().unwrap_or(json!([])),
        "created_at": t,
        "updated_at": t,
    });
    store
        .reactions
        .insert(id.clone(), r.as_object().cloned().unwrap_or_default());
    // Each target feed gets an activity that names the reaction, with the extra data on top.
    let mut a = object(v.get("target_feeds_extra_data"));
    let user = id_text(v.get("user_id")).unwrap_or_default();
    for (k, val) in [
        ("actor", json!(format!("SU:{user}"))),
        ("verb", json!(kind)),
        ("object", json!(format!("SA:{activity_id}"))),
        ("foreign_id", json!(format!("SR:{id}"))),
        ("reaction", json!(format!("SR:{id}"))),
        ("time", json!(t)),
    ] {
        a.entry(k).or_insert(val);
    }
    for feed in &targets {
        store.add(feed, a.clone());
    }
    store.audit("reaction", &id, "create", &user);
    Ok(created(view(&store, &id)?))
}

fn live(store: &Store, id: &str) -> Result<(), EmuError> {
    store
        .reactions
        .get(id)
        .filter(|r| r.get("deleted_at").is_none())
        .map(|_| ())
        .ok_or_else(|| not_found("reaction"))
}

/// `GET reaction/{id}/`: a soft-deleted reaction too, with its `deleted_at`.
pub(super) async fn get(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let store = st.store();
    Ok(ok(view(&store, &id)?))
}

/// `PUT reaction/{id}/`
pub(super) async fn update(
    State(st): St,
    Path(id): Path<String>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    live(&store, &id)?;
    let r = store.reactions.get_mut(&id).expect("checked above");
    if let Some(Value::Object(d)) = v.get("data") {
        r.insert("data".into(), Value::Object(d.clone()));
    }
    if let Some(t @ Value::Array(_)) = v.get("target_feeds") {
        r.insert("target_feeds".into(), t.clone());
    }
    r.insert("updated_at".into(), json!(now_string()));
    let user = r
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    store.audit("reaction", &id, "update", &user);
    Ok(created(view(&store, &id)?))
}

/// `DELETE reaction/{id}/` (`?soft=true` keeps it, marked deleted).
pub(super) async fn delete(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Delete))?;
    let mut store = st.store();
    live(&store, &id)?;
    let user = store.reactions[&id]
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    store.audit("reaction", &id, "delete", &user);
    if truthy(param(&call.uri, "soft")) {
        let r = store.reactions.get_mut(&id).expect("checked above");
        r.insert("deleted_at".into(), json!(now_string()));
    } else {
        store.reactions.remove(&id);
    }
    Ok(ok(json!({})))
}

/// `PUT reaction/{id}/restore/`
pub(super) async fn restore(
    State(st): St,
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
    Ok(created(view(&store, &id)?))
}

fn filter_page(
    st: &EmulatorState,
    call: &Call,
    lookup: &str,
    value: &str,
    kind: Option<&str>,
) -> Reply {
    st.authorize(call, jwt(Resource::Reactions, Action::Read))?;
    let lookup = match lookup {
        "reaction_id" => ReactionLookup::Parent,
        "activity_id" => ReactionLookup::Activity,
        "user_id" => ReactionLookup::User,
        _ => return Err(not_found("lookup")),
    };
    let limit = number(&call.uri, "limit", REACTION_LIMIT)?;
    let bounds: Vec<(IdBound, String)> = [
        ("id_lt", IdBound::Lt),
        ("id_lte", IdBound::Lte),
        ("id_gt", IdBound::Gt),
        ("id_gte", IdBound::Gte),
    ]
    .into_iter()
    .filter_map(|(name, b)| param(&call.uri, name).map(|v| (b, v)))
    .collect();
    let store = st.store();
    let results = store.filter_reactions(lookup, value, kind, &bounds, limit);
    let mut out = json!({ "results": results, "next": "" });
    if lookup == ReactionLookup::Activity && truthy(param(&call.uri, "with_activity_data")) {
        out["activity"] = store.by_ids(&[value]).pop().unwrap_or(Value::Null);
    }
    Ok(ok(out))
}

/// `GET reaction/{lookup}/{value}/`: lookup is `activity_id`, `reaction_id` or `user_id`.
pub(super) async fn filter(
    State(st): St,
    Path((lookup, value)): Path<(String, String)>,
    call: Call,
) -> Reply {
    filter_page(&st, &call, &lookup, &value, None)
}

/// `GET reaction/{lookup}/{value}/{kind}/`
pub(super) async fn filter_by_kind(
    State(st): St,
    Path((lookup, value, kind)): Path<(String, String, String)>,
    call: Call,
) -> Reply {
    filter_page(&st, &call, &lookup, &value, Some(&kind))
}

/// `GET reaction/get_many/?ids=`
pub(super) async fn by_ids(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let store = st.store();
    let results: Vec<Value> = comma_list(&ids)
        .into_iter()
        .filter_map(|id| store.reaction_view(id))
        .collect();
    Ok(ok(json!({ "results": results })))
}
