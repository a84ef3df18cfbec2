//! User handlers: add (with `get_or_create`), get, update, delete, and the batch routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, object, param, truthy, Call};
use super::reply::{conflict, created, input_error, not_found, ok, EmuError, Reply};
use super::state::EmulatorState;
use stream_wire::{Action, Resource};

type St = State<Arc<EmulatorState>>;
/// The id in the route's path.
type ById = Path<String>;

/// `POST user/` (`?get_or_create=true` returns an existing one).
pub(super) async fn add(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let id = id_text(v.get("id")).ok_or_else(|| input_error("id", "is required"))?;
    let mut store = st.store();
    if let Some(u) = store.add_user(&id, object(v.get("data"))) {
        return Ok(created(u));
    }
    match store.user_view(&id) {
        Some(u) if truthy(param(&call.uri, "get_or_create")) => Ok(ok(u)),
        _ => Err(conflict("user")),
    }
}

/// `GET user/{id}/`
pub(super) async fn get(State(st): St, Path(id): ById, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let store = st.store();
    let mut out = store.user_view(&id).ok_or_else(|| not_found("user"))?;
    if truthy(param(&call.uri, "with_follow_counts")) {
        let (followers, following) = store.user_follow_counts(&id);
        out["followers_count"] = json!(followers);
        out["following_count"] = json!(following);
    }
    Ok(ok(out))
}

/// `PUT user/{id}/`
pub(super) async fn update(State(st): St, Path(id): ById, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let out = st.store().update_user(&id, object(v.get("data")));
    Ok(created(out.ok_or_else(|| not_found("user"))?))
}

/// `DELETE user/{id}/`
pub(super) async fn delete(State(st): St, Path(id): ById, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    if !st.store().delete_user(&id) {
        return Err(not_found("user"));
    }
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
    let users = users
        .iter()
        .map(|u| {
            let id = id_text(u.get("id")).ok_or_else(|| input_error("id", "is required"))?;
            Ok((id, object(u.get("data"))))
        })
        .collect::<Result<Vec<_>, EmuError>>()?;
    let out = st.store().add_users(users, replace);
    Ok(created(json!({ "created_users": out })))
}

/// `GET users/?ids=`
pub(super) async fn get_many(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Read))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let users = st.store().users_view(&comma_list(&ids));
    Ok(ok(json!({ "users": users })))
}

/// `DELETE users/?ids=`
pub(super) async fn delete_many(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Users, Action::Delete))?;
    let ids = param(&call.uri, "ids").ok_or_else(|| input_error("ids", "is required"))?;
    let deleted = st.store().delete_users(&comma_list(&ids));
    Ok(ok(json!({ "deleted_user_ids": deleted })))
}
