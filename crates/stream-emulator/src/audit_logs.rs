//! `GET audit_logs/`: the changes the emulator recorded, filtered by entity type and id or by
//! user id, newest first, paged with `limit` and the `next` / `prev` cursors it answered.

use std::sync::Arc;

use axum::extract::State;
use serde_json::json;

use super::call::{jwt, number, param, Call};
use super::reply::{ok, Reply};
use super::state::EmulatorState;
use super::store::audit::AuditFilter;
use stream_wire::{Action, Resource};

/// Entries per page when the request names no `limit`.
const DEFAULT_LIMIT: usize = 25;

/// `GET audit_logs/?entity_type=&entity_id=&user_id=&limit=&next=&prev=`
pub(super) async fn filter(State(st): State<Arc<EmulatorState>>, call: Call) -> Reply {
    // stream-js sends a `*` token; the gateway narrows the action to read.
    st.authorize(&call, jwt(Resource::All, Action::Read))?;
    let uri = &call.uri;
    let f = AuditFilter {
        entity_type: param(uri, "entity_type"),
        entity_id: param(uri, "entity_id"),
        user_id: param(uri, "user_id"),
        limit: number(uri, "limit", DEFAULT_LIMIT)?,
        next: param(uri, "next").filter(|s| !s.is_empty()),
        prev: param(uri, "prev").filter(|s| !s.is_empty()),
    };
    let page = st.store().audit_page(&f);
    Ok(ok(json!({
        "audit_logs": page.entries,
        "next": page.next.unwrap_or_default(),
        "prev": page.prev.unwrap_or_default(),
    })))
}
