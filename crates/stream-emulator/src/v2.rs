//! Stream's `/api/v2/` family in the emulator: not emulated yet. A call is verified as Stream
//! verifies a server-side one (the `api_key` once and right, `Stream-Auth-Type: jwt`, a JWT
//! signed with the secret; strict here: claims exactly `{"server": true}`, what the gateway
//! sends), then every operation of the generated table answers 501 in Stream's v2 error shape
//! naming it, so a test or a local setup that reaches one learns which call needs a real
//! Stream; other v2 paths answer 404.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::EmulatorState;
use stream_wire::auth::Secret;
use stream_wire::v2::{self, V2RouteError};

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

/// How Stream's v2 family begins the refusal of a token signed with another secret.
const BAD_SIGNATURE: &str = "JWTAuth error: signature is not valid.";

/// Why a request is not a server-side call signed with one of `secrets`, if it is not.
fn refusal(req: &Request, key: &str, secrets: &[Secret]) -> Option<String> {
    let query = req.uri().query().unwrap_or("");
    let keys: Vec<_> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "api_key")
        .collect();
    if keys.len() != 1 || keys[0].1 != key {
        return Some("api_key is missing or not valid".into());
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    if header("stream-auth-type") != Some("jwt") {
        return Some("Stream-Auth-Type must be jwt".into());
    }
    let Some(token) = header("authorization") else {
        return Some("Missing auth header.".into());
    };
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let claims = secrets.iter().find_map(|s| {
        let key = jsonwebtoken::DecodingKey::from_secret(s.expose().as_bytes()).ok()?;
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).ok()
    });
    match claims {
        // Stream's words (its Chat API, seen in its SDKs' issues), code 43.
        None => Some(format!(
            "{BAD_SIGNATURE} Make sure the token is created using the secret for API key \"{key}\""
        )),
        Some(c) if c.claims != json!({ "server": true }) => Some(format!(
            "strict emulator: a server-side call's claims are exactly {{\"server\": true}}, not {}",
            c.claims
        )),
        Some(_) => None,
    }
}

/// Any request under `/api/v2/`.
pub(crate) async fn not_emulated(State(st): State<Arc<EmulatorState>>, req: Request) -> Response {
    let (key, secrets) = st.credentials();
    if let Some(why) = refusal(&req, &key, &secrets) {
        let code = if why.starts_with(BAD_SIGNATURE) {
            43
        } else {
            5
        };
        return v2_error(StatusCode::UNAUTHORIZED, code, why);
    }
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
