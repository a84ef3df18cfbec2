//! Stream's `/api/v2/` family in the emulator: not emulated yet. Every operation of the
//! generated table answers 501 in Stream's v2 error shape naming it, so a test or a local
//! setup that reaches one learns which call needs a real Stream; other v2 paths answer 404.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::stream::v2::{self, V2RouteError};

/// Stream's v2 error body.
fn v2_error(status: StatusCode, code: u16, message: String) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "StatusCode": status.as_u16(),
        "duration": "0.10ms",
        "more_info": "",
        "details": [],
    });
    (status, axum::Json(body)).into_response()
}

/// Any request under `/api/v2/`.
pub async fn not_emulated(req: Request) -> Response {
    let (method, path) = (req.method().as_str(), req.uri().path());
    match v2::route(method, path) {
        Ok(m) => v2_error(
            StatusCode::NOT_IMPLEMENTED,
            23,
            format!(
                "{} ({method} {}) is not emulated: the emulator serves Stream's v1.0 feed API \
                 only; use Stream for /api/v2/ operations",
                m.route.name, m.route.path
            ),
        ),
        Err(V2RouteError::Invalid(i)) => v2_error(
            StatusCode::BAD_REQUEST,
            4,
            format!("{}: {}", i.field, i.reason),
        ),
        Err(_) => v2_error(
            StatusCode::NOT_FOUND,
            16,
            format!("no operation at {method} {path}"),
        ),
    }
}
