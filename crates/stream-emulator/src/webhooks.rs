//! `POST /_emulator/webhooks/send`: the emulator calls an app back as Stream does, so a team
//! can test its webhook handler end to end through the gateway.
//!
//! `{"url": "http://127.0.0.1:8080/webhooks/chat", "event": {...}}` (or `"body": "<raw
//! text>"` instead of `event`), with `"webhook_id"` (default: a new UUID), `"attempt"`
//! (default 1) and `"secret"` (default: the newest secret the emulator takes) optional. The
//! body is signed as Stream signs it (`X-Signature`: hex HMAC-SHA256 of the raw body under the
//! secret) and sent with `X-Api-Key`, `X-Webhook-Id`, `X-Webhook-Attempt` and `Content-Type:
//! application/json`; the answer is `{"status", "content_type", "body"}` (the body as text).
//! Plain `http://` only: the emulator calls a local gateway.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderValue;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::outbound::SEND_TIMEOUT;
use super::reply::stream_error;
use super::state::EmulatorState;
use stream_wire::auth::Secret;

/// The largest answer read back.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The body of `POST /_emulator/webhooks/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// Where to send: a gateway's webhook route.
    pub url: String,
    /// The event, serialized compactly as the body.
    #[serde(default)]
    pub event: Option<Value>,
    /// The body as given, instead of `event`.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub webhook_id: Option<String>,
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Sign with this secret instead (a rotation's old one, or a wrong one).
    #[serde(default)]
    pub secret: Option<String>,
}

fn bad(detail: &str) -> Response {
    stream_error(400, 4, "InputException", detail).into_response()
}

/// `POST /_emulator/webhooks/send`
pub async fn send(State(st): State<Arc<EmulatorState>>, Json(s): Json<Send>) -> Response {
    let uri: http::Uri = match s.url.parse() {
        Ok(u) if matches!((&u as &http::Uri).scheme_str(), Some("http")) => u,
        _ => return bad("url must be an http:// URL such as http://127.0.0.1:8080/webhooks/chat"),
    };
    let body = match (s.event, s.body) {
        (Some(event), None) => event.to_string(),
        (None, Some(body)) => body,
        _ => return bad("give exactly one of event (JSON) and body (text)"),
    };
    let (api_key, newest) = st.webhook_credentials();
    let secret = s.secret.map(Secret::new).unwrap_or(newest);
    let id = s
        .webhook_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (Ok(id), Ok(key)) = (HeaderValue::from_str(&id), HeaderValue::from_str(&api_key)) else {
        return bad("webhook_id must be a header value");
    };
    let signature = stream_wire::webhook::sign(&secret, body.as_bytes());
    let req = http::Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header("x-signature", signature)
        .header("x-api-key", key)
        .header("x-webhook-id", id)
        .header("x-webhook-attempt", s.attempt.unwrap_or(1))
        .body(Full::new(Bytes::from(body)))
        .expect("valid parts");
    let client = Client::builder(TokioExecutor::new()).build(st.webhook_connector());
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((parts, bytes))
    };
    match tokio::time::timeout(SEND_TIMEOUT, exchange).await {
        Ok(Ok((parts, bytes))) => Json(json!({
            "status": parts.status.as_u16(),
            "content_type": parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            "body": String::from_utf8_lossy(&bytes),
        }))
        .into_response(),
        Ok(Err(e)) => stream_error(
            502,
            1,
            "UpstreamUnavailable",
            &format!("sending failed: {e}"),
        )
        .into_response(),
        Err(_) => stream_error(504, 1, "UpstreamTimeout", "no answer within 10 s").into_response(),
    }
}
