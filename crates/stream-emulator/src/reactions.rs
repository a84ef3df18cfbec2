//! Reaction handlers: add (to an activity, or as a child of a reaction, with activities in
//! `target_feeds`), get, update, delete (hard or soft) and restore, lookups by ids, and
//! filters by activity, parent or user with kinds and id paging.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Map, Value};

use super::call::{comma_list, id_text, json_body, jwt, number, object, param, truthy, Call};
use super::reply::{conflict, created, input_error, not_found, ok, stream_error, Reply};
use super::state::EmulatorState;
use super::store::objects::ReactionLookup;
use super::store::reactions::{AddRefused, NewReaction};
use super::store::IdBound;
use stream_wire::{Action, FeedId, Resource};

type St = State<Arc<EmulatorState>>;
/// The id in the route's path.
type ById = Path<String>;

/// Default page size of a reaction filter (stream-js's default).
const REACTION_LIMIT: usize = 10;

/// `POST reaction/`
pub(super) async fn add(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| input_error("kind", "is required"))?;
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
    let new = NewReaction {
        id: v.get("id").and_then(Value::as_str).map(str::to_owned),
        kind: kind.to_owned(),
        activity_id: id_text(v.get("activity_id")),
        parent: v
            .get("parent")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        user_id: id_text(v.get("user_id")),
        data: object(v.get("data")),
        target_feeds_field: v.get("target_feeds").cloned(),
        target_feeds: targets,
        target_feeds_extra_data: object(v.get("target_feeds_extra_data")),
    };
    match st.store().add_reaction(new) {
        Ok(r) => Ok(created(r)),
        Err(AddRefused::NoParent) => Err(input_error("parent", "no reaction has this id")),
        Err(AddRefused::NoActivity) => Err(input_error("activity_id", "is required")),
        Err(AddRefused::Taken) => Err(conflict("reaction")),
    }
}

/// `GET reaction/{id}/`: a soft-deleted reaction too, with its `deleted_at`.
pub(super) async fn get(State(st): St, Path(id): ById, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Read))?;
    let r = st.store().reaction_view(&id);
    Ok(ok(r.ok_or_else(|| not_found("reaction"))?))
}

/// `PUT reaction/{id}/`
pub(super) async fn update(State(st): St, Path(id): ById, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Write))?;
    let v: Map<String, Value> = json_body(&body)?;
    let data = v.get("data").and_then(Value::as_object).cloned();
    let targets = v.get("target_feeds").filter(|t| t.is_array()).cloned();
    let r = st.store().update_reaction(&id, data, targets);
    Ok(created(r.ok_or_else(|| not_found("reaction"))?))
}

/// `DELETE reaction/{id}/` (`?soft=true` keeps it, marked deleted).
pub(super) async fn delete(State(st): St, Path(id): ById, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Reactions, Action::Delete))?;
    let soft = truthy(param(&call.uri, "soft"));
    if !st.store().delete_reaction(&id, soft) {
        return Err(not_found("reaction"));
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
    let r = st.store().restore_reaction(&id);
    Ok(created(
        r.ok_or_else(|| not_found("soft-deleted reaction"))?,
    ))
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
    let results = st.store().reactions_view(&comma_list(&ids));
    Ok(ok(json!({ "results": results })))
}
