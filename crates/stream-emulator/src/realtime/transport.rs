//! `/faye` (and `/faye/`, the URL stream-js's `LOCAL_FAYE` uses) over both of Faye's
//! transports: HTTP long-polling (a POST of JSON, or of a form's `message` field, or a GET
//! with `?message=`; CORS for browsers) and WebSocket (a GET asking to upgrade; each text
//! message a batch, replies and deliveries sent as they are ready).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::bayeux;
use super::Realm;

/// The realtime routes of `realm`, served on the emulator's port and on
/// `emulator.realtime_listen`.
pub fn routes(realm: Arc<dyn Realm>) -> Router {
    Router::new()
        .route("/faye", any(faye))
        .route("/faye/", any(faye))
        .with_state(realm)
}

async fn faye(State(st): State<Arc<dyn Realm>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let wants_socket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let max = st.realtime().bounds().max_message_bytes;
    let mut resp = match parts.method {
        Method::OPTIONS => preflight(&parts.headers),
        Method::GET if wants_socket => {
            match WebSocketUpgrade::from_request_parts(&mut parts, &st).await {
                Ok(ws) => ws
                    .max_message_size(max)
                    .max_frame_size(max)
                    .on_upgrade(move |socket| serve_socket(st, socket)),
                Err(rejection) => rejection.into_response(),
            }
        }
        Method::GET => {
            let message = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .find(|(k, _)| k == "message")
                .map(|(_, v)| v.into_owned());
            match message {
                Some(m) if m.len() <= max => long_poll(&*st, m.as_bytes()).await,
                Some(_) => too_large(),
                None => bad_request("a GET needs ?message= (or an upgrade to WebSocket)"),
            }
        }
        Method::POST => match axum::body::to_bytes(body, max).await {
            Err(_) => too_large(),
            Ok(bytes) => {
                let form = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
                if form {
                    match form_urlencoded::parse(&bytes).find(|(k, _)| k == "message") {
                        Some((_, m)) => long_poll(&*st, m.as_bytes()).await,
                        None => bad_request("a form needs a message field"),
                    }
                } else {
                    long_poll(&*st, &bytes).await
                }
            }
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    if let Some(o) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// A CORS preflight: the browser's Faye client posts JSON across origins.
fn preflight(headers: &HeaderMap) -> Response {
    let asked = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            ),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, asked),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
        ],
    )
        .into_response()
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "a realtime message is larger than the emulator takes",
    )
        .into_response()
}

fn bad_request(why: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

fn json_response(v: Vec<Value>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(Value::Array(v).to_string()),
    )
        .into_response()
}

/// One long-polling request: the replies, a held connect's after it was answered.
async fn long_poll(st: &dyn Realm, body: &[u8]) -> Response {
    let batch = match bayeux::parse_batch(body) {
        Ok(b) => b,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let (mut replies, held) = bayeux::process(st, batch, Instant::now());
    for h in held {
        replies.extend(bayeux::finish_connect(st, h).await);
    }
    json_response(replies)
}

/// One WebSocket: batches in, replies out at once, held connects answered by tasks of their
/// own (aborted with the socket). Silent for `idle`, or not taking a write for as long, it is
/// closed.
async fn serve_socket(st: Arc<dyn Realm>, mut socket: WebSocket) {
    let idle = st.realtime().bounds().idle;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Value>>(16);
    let mut connects = JoinSet::new();
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    loop {
        while connects.try_join_next().is_some() {}
        let out = tokio::select! {
            m = socket.recv() => {
                silence.as_mut().reset(Instant::now() + idle);
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // Closed, an error (a frame over the size bound among them), or binary.
                    _ => break,
                };
                let batch = match bayeux::parse_batch(text.as_bytes()) {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let (replies, held) = bayeux::process(&*st, batch, Instant::now());
                for h in held {
                    let (st, tx) = (st.clone(), tx.clone());
                    connects.spawn(async move {
                        let _ = tx.send(bayeux::finish_connect(&*st, h).await).await;
                    });
                }
                replies
            }
            Some(out) = rx.recv() => out,
            () = &mut silence => break,
        };
        if out.is_empty() {
            continue;
        }
        let frame = Message::Text(Value::Array(out).to_string().into());
        match tokio::time::timeout(idle, socket.send(frame)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let _ = tokio::time::timeout(idle, socket.send(Message::Close(None))).await;
}
