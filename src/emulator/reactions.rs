//! Reaction handlers: add (to an activity, or as a child of a reaction), get, update, delete
//! (hard or soft) and restore, lookups by ids, and filters by activity, parent or user.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, json_body, jwt, number, object, param, truthy, Call};
use super::reply::{conflict, created, input_error, not_found, ok, stream_error, EmuError, Reply};
use super::state::EmulatorState;
use super::store::{now_string, Store};
use crate::stream::{Action, Resource};

type St = State<Arc<EmulatorState>>;

/// Default page size of a reaction filter (stream-js's default).
const REACTION_LIMIT: usize = 10;

fn view(r: &Map<String, Value>) -> Value {
    Value::Object(r.clone())
}

/// `POST reaction/`
pub(super) async fn add(State(st): St, call: Call, body: Bytes) -> Reply {
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
    let t = now_string();
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
    Ok(created(view(&r)))
}

fn live<'a>(store: &'a Store, id: &str) -> Result<&'a Map<String, Value>, EmuError> {
    store
        .reactions
        .get(id)
        .filter(|r| r.get("deleted_at").is_none())
        .ok_or_else(|| not_found("reaction"))
}

/// `GET reaction/{id}/`
pub(super) async fn get(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let store = st.store();
    Ok(ok(view(live(&store, &id)?)))
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
    Ok(created(view(r)))
}

/// `DELETE reaction/{id}/` (`?soft=true` keeps it, marked deleted).
pub(super) async fn delete(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Delete))?;
    let mut store = st.store();
    live(&store, &id)?;
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
    Ok(created(view(r)))
}

fn filter_page(
    st: &EmulatorState,
    call: &Call,
    lookup: &str,
    value: &str,
    kind: Option<&str>,
) -> Reply {
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
    let results: Vec<Value> = results.into_iter().take(limit).map(view).collect();
    let mut out = json!({ "results": results, "next": "" });
    if lookup == "activity_id" && truthy(param(&call.uri, "with_activity_data")) {
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
        .filter_map(|id| store.reactions.get(id))
        .map(view)
        .collect();
    Ok(ok(json!({ "results": results })))
}
