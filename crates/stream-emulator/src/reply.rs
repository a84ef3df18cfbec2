//! How the emulator answers: Stream's success bodies (with `duration`) and its error body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A refusal in Stream's shape.
#[derive(Debug)]
pub struct EmuError(pub Box<Response>);

impl IntoResponse for EmuError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What every handler returns.
pub type Reply = Result<Response, EmuError>;

/// `{"code", "detail", "duration", "exception", "status_code"}` with `status`.
pub fn stream_error(status: u16, code: u16, exception: &str, detail: &str) -> EmuError {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    EmuError(Box::new(
        (
            s,
            axum::Json(json!({
                "code": code,
                "detail": detail,
                "duration": "0.10ms",
                "exception": exception,
                "status_code": status,
            })),
        )
            .into_response(),
    ))
}

/// 400 `InputException` naming a field.
pub fn input_error(field: &str, reason: &str) -> EmuError {
    stream_error(400, 4, "InputException", &format!("{field}: {reason}"))
}

/// 404 `DoesNotExistException` naming what is missing.
pub fn not_found(what: &str) -> EmuError {
    stream_error(
        404,
        16,
        "DoesNotExistException",
        &format!("{what} does not exist"),
    )
}

/// 409 `ConflictException`: an id already taken.
pub fn conflict(what: &str) -> EmuError {
    stream_error(
        409,
        22,
        "ConflictException",
        &format!("{what} already exists"),
    )
}

/// 200 with `v` and Stream's `duration`.
pub fn ok(mut v: Value) -> Response {
    v["duration"] = json!("0.10ms");
    (StatusCode::OK, Json(v)).into_response()
}

/// 201 with `v` and Stream's `duration`.
pub fn created(mut v: Value) -> Response {
    v["duration"] = json!("0.10ms");
    (StatusCode::CREATED, Json(v)).into_response()
}
