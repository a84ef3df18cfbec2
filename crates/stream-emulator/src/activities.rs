//! Activity handlers: lookups by id or by `foreign_id` + `time` (plain and enriched),
//! updates of whole activities, partial updates, and open graph (no scraping: no network).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{comma_list, enrichment, is_enriched, json_body, jwt, param, Call};
use super::reply::{created, input_error, not_found, ok, Reply};
use super::state::EmulatorState;
use super::store;
use stream_wire::{parse_time, Action, Resource};

type St = State<Arc<EmulatorState>>;

/// `GET activities/?ids=` or `?foreign_ids=&timestamps=` (and `enrich/activities/`).
pub(super) async fn get_activities(State(st): St, call: Call) -> Reply {
    st.authorize(&call, jwt(Resource::Activities, Action::Read))?;
    let store = st.store();
    let mut results = if let Some(ids) = param(&call.uri, "ids") {
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
    if is_enriched(&call.uri) {
        let how = enrichment(&call.uri)?;
        for a in &mut results {
            store.enrich(a, &how);
        }
    }
    Ok(ok(json!({ "results": results })))
}

/// `POST activities/`: whole activities replaced by `foreign_id` + `time`.
pub(super) async fn update_activities(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, jwt(Resource::Activities, Action::Write))?;
    #[derive(Deserialize)]
    struct Body {
        activities: Vec<Map<String, Value>>,
    }
    let b: Body = json_body(&body)?;
    if b.activities.len() > 100 {
        return Err(input_error("activities", "at most 100"));
    }
    let mut store = st.store();
    st.room_for(&store, b.activities.len())?;
    for mut a in b.activities {
        store::stringify_scalars(&mut a);
        if !(a.get("foreign_id").is_some_and(Value::is_string)
            && a.get("time").is_some_and(Value::is_string))
        {
            return Err(input_error(
                "activities",
                "each activity needs foreign_id and time",
            ));
        }
        store.update(a);
    }
    Ok(created(json!({})))
}

/// `POST activity/`: one partial update, or `{"changes": [...]}`.
pub(super) async fn partial_update(State(st): St, call: Call, body: Bytes) -> Reply {
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

/// `GET og/?url=`
pub(super) async fn og(State(st): St, call: Call) -> Reply {
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
