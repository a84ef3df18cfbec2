//! Collection handlers: batch upsert, select and delete, and single entries by id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, object, param, params, Call};
use super::reply::{conflict, created, input_error, not_found, ok, Reply};
use super::state::EmulatorState;
use super::store::now_string;
use super::store::objects::entry_json;
use stream_wire::{Action, Resource};

type St = State<Arc<EmulatorState>>;

/// `POST collections/`: `{"data": {name: [entries]}}`, each entry with its `id`.
pub(super) async fn upsert(State(st): St, call: Call, body: Bytes) -> Reply {
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
            let id = id_text(fields.remove("id").as_ref())
                .ok_or_else(|| input_error("id", "is required"))?;
            let t = now_string();
            let key = (name.clone(), id.clone());
            let created_at = store
                .collections
                .get(&key)
                .and_then(|e| e.get("created_at").cloned())
                .unwrap_or_else(|| json!(t));
            let entry = json!({ "data": fields, "created_at": created_at, "updated_at": t });
            let entry = entry.as_object().cloned().unwrap_or_default();
            saved.push(entry_json(name, &id, &entry));
            store.collections.insert(key, entry);
        }
        out.insert(name.clone(), Value::Array(saved));
    }
    Ok(created(json!({ "data": out })))
}

/// `GET collections/?foreign_ids=name:id,...`
pub(super) async fn select(State(st): St, call: Call) -> Reply {
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
                .map(|e| entry_json(n, id, e))
        })
        .collect();
    Ok(ok(json!({ "response": { "data": data } })))
}

/// `DELETE collections/?collection_name=&ids=`
pub(super) async fn delete_many(State(st): St, call: Call) -> Reply {
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

/// `POST collections/{name}/`
pub(super) async fn add(State(st): St, Path(name): Path<String>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    let id = match id_text(v.get("id")) {
        Some(id) => id,
        None => store.object_id(),
    };
    let key = (name.clone(), id.clone());
    if store.collections.contains_key(&key) {
        return Err(conflict("collection entry"));
    }
    let t = now_string();
    let entry = json!({
        "data": object(v.get("data")),
        "user_id": v.get("user_id").cloned().unwrap_or(Value::Null),
        "created_at": t,
        "updated_at": t,
    });
    let entry = entry.as_object().cloned().unwrap_or_default();
    let out = entry_json(&name, &id, &entry);
    store.collections.insert(key, entry);
    let user = v.get("user_id").and_then(Value::as_str).unwrap_or("");
    store.audit("collection_entry", &format!("{name}:{id}"), "create", user);
    Ok(created(out))
}

/// `GET collections/{name}/{id}/`
pub(super) async fn get(
    State(st): St,
    Path((name, id)): Path<(String, String)>,
    call: Call,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Read))?;
    let store = st.store();
    let e = store
        .collections
        .get(&(name.clone(), id.clone()))
        .ok_or_else(|| not_found("collection entry"))?;
    Ok(ok(entry_json(&name, &id, e)))
}

/// `PUT collections/{name}/{id}/`
pub(super) async fn update(
    State(st): St,
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
    e.insert("updated_at".into(), json!(now_string()));
    let out = entry_json(&name, &id, e);
    let user = e
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    store.audit("collection_entry", &format!("{name}:{id}"), "update", &user);
    Ok(created(out))
}

/// `DELETE collections/{name}/{id}/`
pub(super) async fn delete(
    State(st): St,
    Path((name, id)): Path<(String, String)>,
    call: Call,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Delete))?;
    let mut store = st.store();
    let gone = store
        .collections
        .remove(&(name.clone(), id.clone()))
        .ok_or_else(|| not_found("collection entry"))?;
    let user = gone.get("user_id").and_then(Value::as_str).unwrap_or("");
    store.audit("collection_entry", &format!("{name}:{id}"), "delete", user);
    Ok(ok(json!({})))
}
