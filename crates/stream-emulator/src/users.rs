//! User handlers: add (with `get_or_create`), get, update, delete, and the batch routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, object, param, truthy, Call};
use super::reply::{conflict, created, input_error, not_found, ok, Reply};
use super::state::EmulatorState;
use super::store::now_string;
use super::store::objects::user_json;
use stream_wire::{Action, Resource};

type St = State<Arc<EmulatorState>>;

/// `POST user/` (`?get_or_create=true` returns an existing one).
pub(super) async fn add(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let id = id_text(v.get("id")).ok_or_else(|| input_error("id", "is required"))?;
    let id = id.as_str();
    let mut store = st.store();
    if let Some(u) = store.users.get(id) {
        if truthy(param(&call.uri, "get_or_create")) {
            return Ok(ok(user_json(id, u)));
        }
        return Err(conflict("user"));
    }
    let t = now_string();
    let u = json!({ "data": object(v.get("data")), "created_at": t, "updated_at": t });
    let u = u.as_object().cloned().unwrap_or_default();
    let out = user_json(id, &u);
    store.users.insert(id.to_owned(), u);
    store.audit("user", id, "create", id);
    Ok(created(out))
}

/// `GET user/{id}/`
pub(super) async fn get(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let store = st.store();
    let u = store.users.get(&id).ok_or_else(|| not_found("user"))?;
    let mut out = user_json(&id, u);
    if truthy(param(&call.uri, "with_follow_counts")) {
        let (followers, following) = store.user_follow_counts(&id);
        out["followers_count"] = json!(followers);
        out["following_count"] = json!(following);
    }
    Ok(ok(out))
}

/// `PUT user/{id}/`
pub(super) async fn update(
    State(st): St,
    Path(id): Path<String>,
    call: Call,
    body: Bytes,
) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let mut store = st.store();
    let u = store.users.get_mut(&id).ok_or_else(|| not_found("user"))?;
    u.insert("data".into(), Value::Object(object(v.get("data"))));
    u.insert("updated_at".into(), json!(now_string()));
    let out = user_json(&id, u);
    store.audit("user", &id, "update", &id);
    Ok(created(out))
}

/// `DELETE user/{id}/`
pub(super) async fn delete(State(st): St, Path(id): Path<String>, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    let mut store = st.store();
    store.users.remove(&id).ok_or_else(|| not_found("user"))?;
    store.audit("user", &id, "delete", &id);
    Ok(ok(json!({})))
}

/// `POST users/`: `{"users": [...], "override": bool}`.
pub(super) async fn add_many(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let users: Vec<Map<String, Value>> =
        serde_json::from_value(v.get("users").cloned().unwrap_or(Value::Null))
            .map_err(|_| input_error("users", "must be a list of objects"))?;
    let replace = v.get("override").and_then(Value::as_bool).unwrap_or(false);
    let mut store = st.store();
    let mut out = Vec::new();
    for u in &users {
        let id = id_text(u.get("id")).ok_or_else(|| input_error("id", "is required"))?;
        let id = id.as_str();
        if !replace {
            if let Some(existing) = store.users.get(id) {
                out.push(user_json(id, existing));
                continue;
            }
        }
        let t = now_string();
        let rec = json!({ "data": object(u.get("data")), "created_at": t, "updated_at": t });
        let rec = rec.as_object().cloned().unwrap_or_default();
        out.push(user_json(id, &rec));
        store.users.insert(id.to_owned(), rec);
    }
    Ok(created(json!({ "created_users": out })))
}

/// `GET users/?ids=`
pub(super) async fn get_many(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let store = st.store();
    let users: Vec<Value> = comma_list(&ids)
        .into_iter()
        .filter_map(|id| store.users.get(id).map(|u| user_json(id, u)))
        .collect();
    Ok(ok(json!({ "users": users })))
}

/// `DELETE users/?ids=`
pub(super) async fn delete_many(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let mut store = st.store();
    let deleted: Vec<&str> = comma_list(&ids)
        .into_iter()
        .filter(|id| store.users.remove(*id).is_some())
        .collect();
    Ok(ok(json!({ "deleted_user_ids": deleted })))
}
