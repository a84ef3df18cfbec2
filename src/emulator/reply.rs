//! Stream's error body, as the emulator answers it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refusal in Stream's shape.
#[derive(Debug)]
pub struct EmuError(pub Box<Response>);

impl IntoResponse for EmuError {
    fn into_response(self) -> Response {
        *self.0
    }
}

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
