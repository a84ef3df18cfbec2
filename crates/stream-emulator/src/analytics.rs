//! Stream's analytics API (`/analytics/v1.0/engagement/` and `impression/`): the events are
//! checked for the shape the official clients send and kept, so a team can assert its
//! tracking through `GET /_emulator/analytics`. Personalization is not emulated: 501, named.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{json, Value};

use super::call::{json_body, Call};
use super::reply::{created, input_error, stream_error, Reply};
use super::state::EmulatorState;
use super::verify::Needed;
use stream_wire::Resource;

type St = State<Arc<EmulatorState>>;

/// `POST engagement/`: `{"content_list": [{...}, ...]}` (stream-python `track_engagements`,
/// stream-go2 `TrackEngagement`).
pub(super) async fn engagement(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, Needed::Service(Resource::Analytics))?;
    let v: Value = json_body(&body)?;
    let events = v
        .get("content_list")
        .and_then(Value::as_array)
        .ok_or_else(|| input_error("content_list", "is required: a list of engagements"))?;
    let events = objects("content_list", events)?;
    st.track("engagement", events);
    Ok(created(json!({})))
}

/// `POST impression/`: one impression (`{"content_list": [...], ...}`, stream-go2) or a list
/// of them (stream-python `track_impressions`).
pub(super) async fn impression(State(st): St, call: Call, body: Bytes) -> Reply {
    st.authorize(&call, Needed::Service(Resource::Analytics))?;
    let v: Value = json_body(&body)?;
    let events = match v {
        Value::Array(list) => objects("body", &list)?,
        Value::Object(_) => vec![v],
        _ => {
            return Err(input_error(
                "body",
                "must be an impression or a list of them",
            ))
        }
    };
    for e in &events {
        if !e.get("content_list").is_some_and(Value::is_array) {
            return Err(input_error(
                "content_list",
                "is required: the list of content shown",
            ));
        }
    }
    st.track("impression", events);
    Ok(created(json!({})))
}

/// Every item of `list` when each is an object.
fn objects(field: &str, list: &[Value]) -> Result<Vec<Value>, super::reply::EmuError> {
    if list.iter().all(Value::is_object) {
        Ok(list.to_vec())
    } else {
        Err(input_error(field, "must list JSON objects"))
    }
}

/// Any personalization call: the credentials are checked as Stream would, then 501 naming
/// what is not emulated.
pub(super) async fn personalization(
    State(st): St,
    call: Call,
    Path(resource): Path<String>,
) -> Reply {
    st.authorize(&call, Needed::Service(Resource::Personalization))?;
    Err(stream_error(
        501,
        1,
        "NotImplementedException",
        &format!(
            "personalization ({resource}/) is not emulated: it needs Stream's personalization \
             service for this app"
        ),
    ))
}
