//! Collection handlers: batch upsert, select and delete, and single entries by id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, object, param, params, Call};
use super::reply::{conflict, created, input_error, not_found, ok, EmuError, Reply};
use super::state::EmulatorState;
use stream_wire::{Action, Resource};

type St = State<Arc<EmulatorState>>;
/// The collection and the entry id in the route's path.
type Entry = Path<(String, String)>;

/// `POST collections/`: `{"data": {name: [entries]}}`, each entry with its `id`.
pub(super) async fn upsert(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let data = v
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| input_error("data", "is required"))?;
    let mut batch = Vec::new();
    for (name, entries) in data {
        let entries = entries
            .as_array()
            .ok_or_else(|| input_error("data", "must map names to lists"))?
            .iter()
            .map(|e| {
                let mut fields = object(Some(e));
                let id = id_text(fields.remove("id").as_ref())
                    .ok_or_else(|| input_error("id", "is required"))?;
                Ok((id, fields))
            })
            .collect::<Result<Vec<_>, EmuError>>()?;
        batch.push((name.clone(), entries));
    }
    let out = st.store().upsert_entries(batch);
    Ok(created(json!({ "data": out })))
}

/// `GET collections/?foreign_ids=name:id,...`
pub(super) async fn select(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Read))?;
    let ids =
        param(&call.uri, "foreign_ids").ok_or_else(|| input_error("foreign_ids", "is required"))?;
    let keys: Vec<(&str, &str)> = comma_list(&ids)
        .into_iter()
        .filter_map(|f| f.split_once(':'))
        .collect();
    let data = st.store().entries_view(&keys);
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
            store.delete_entry(&name, id);
        }
    }
    Ok(ok(json!({})))
}

/// `POST collections/{name}/`
pub(super) async fn add(State(st): St, Path(name): Path<String>, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let user = v.get("user_id").cloned().unwrap_or(Value::Null);
    let out = st
        .store()
        .add_entry(&name, id_text(v.get("id")), object(v.get("data")), user);
    Ok(created(out.ok_or_else(|| conflict("collection entry"))?))
}

/// `GET collections/{name}/{id}/`
pub(super) async fn get(State(st): St, Path((name, id)): Entry, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Read))?;
    let e = st.store().entry_view(&name, &id);
    Ok(ok(e.ok_or_else(|| not_found("collection entry"))?))
}

/// `PUT collections/{name}/{id}/`
pub(super) async fn update(
    State(st): St,
    Path((name, id)): Entry,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let out = st.store().update_entry(&name, &id, object(v.get("data")));
    Ok(created(out.ok_or_else(|| not_found("collection entry"))?))
}

/// `DELETE collections/{name}/{id}/`
pub(super) async fn delete(State(st): St, Path((name, id)): Entry, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Collections, Action::Delete))?;
    if !st.store().delete_entry(&name, &id) {
        return Err(not_found("collection entry"));
    }
    Ok(ok(json!({})))
}
