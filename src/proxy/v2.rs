//! `/api/v2/...`: Stream's Feeds v3, Chat, Video and Moderation server-side operations, when
//! `stream.v2` is on. A request is matched to an operation of the generated table
//! ([`stream_wire::v2`]) or refused; its caller is admitted by the operation's name; its body
//! is checked for JSON and size only; it goes to `stream.v2_base_url` with the server token
//! (`Authorization: <JWT>`, `Stream-Auth-Type: jwt`) and the app's `api_key` in place of
//! whatever credentials the caller sent, through the same client, retry loop, deadline and
//! concurrency limit as v1.0. Refusals are in Stream's v2 error shape
//! (`{"code", "message", "StatusCode", "duration", "more_info", "details"}`).

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::callers::Named;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::client::Credential;
use stream_wire::v2::{self, V2Match, V2Method, V2RouteError};
use stream_wire::{json as strict_json, query, InvalidInput};

use super::Outgoing;

/// The name logs and metrics give a v2 request that matched no operation.
pub(crate) const UNMATCHED: &str = "v2.unknown";

/// A refusal in Stream's v2 error shape.
#[derive(Debug)]
pub(crate) struct V2Error {
    status: StatusCode,
    code: u16,
    message: String,
    field: Option<InvalidInput>,
    /// `Allow`, `Retry-After`, `X-Ratelimit-*` when the refusal has them.
    headers: HeaderMap,
}

impl V2Error {
    fn new(status: StatusCode, code: u16, message: String) -> Self {
        Self {
            status,
            code,
            message,
            field: None,
            headers: HeaderMap::new(),
        }
    }

    /// `stream.v2` is off.
    fn not_enabled(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            16,
            format!(
                "{path}: Stream's /api/v2/ family (Feeds v3, Chat, Video, Moderation) is not \
                 enabled on this gateway (stream.v2 = false)"
            ),
        )
    }
}

impl From<ApiError> for V2Error {
    fn from(e: ApiError) -> Self {
        let (status, code, _) = e.parts();
        let message = e.to_string();
        let field = match &e {
            ApiError::InvalidInput(i) => Some(i.clone()),
            _ => None,
        };
        // The v1.0 rendering knows the headers (`Retry-After`, the window); keep them.
        let mut headers = e.into_response().headers().clone();
        headers.remove(header::CONTENT_TYPE);
        headers.remove(header::CONTENT_LENGTH);
        Self {
            status,
            code,
            message,
            field,
            headers,
        }
    }
}

impl From<InvalidInput> for V2Error {
    fn from(e: InvalidInput) -> Self {
        ApiError::InvalidInput(e).into()
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "message": self.message,
            "StatusCode": self.status.as_u16(),
            "duration": "0.00ms",
            "more_info": "",
            "details": [],
        });
        if let Some(i) = &self.field {
            body["exception_fields"] = json!({ i.field.as_str(): i.reason.as_str() });
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().extend(self.headers);
        resp
    }
}

/// Stream's `/api/v2/` family: the generated operation table.
pub(super) struct V2;

impl super::Family for V2 {
    type Error = V2Error;
    type Matched = V2Match;
    const UNMATCHED: &'static str = UNMATCHED;

    fn route(st: &AppState, parts: &Parts) -> Result<Self::Matched, V2Error> {
        if st.v2_upstream.is_none() {
            return Err(V2Error::not_enabled(parts.uri.path()));
        }
        // A foreign api_key is refused on this family as on v1.0, before anything else reads it.
        super::check_target(st, parts)?;
        let matched = v2::route(parts.method.as_str(), parts.uri.path())
            .map_err(|e| route_refusal(e, parts))?;
        Ok(matched)
    }

    fn named(m: &Self::Matched) -> Named {
        Named::v2(m.index)
    }

    fn query(_: &V2Match, parts: &Parts) -> Result<Vec<(String, String)>, V2Error> {
        Ok(v2::query_pairs(parts.uri.query())?)
    }

    fn outgoing<'a>(
        st: &'a AppState,
        matched: Self::Matched,
        pairs: Vec<(String, String)>,
        parts: &Parts,
        raw: Bytes,
    ) -> Result<Outgoing<'a>, V2Error> {
        let Some(upstream) = st.v2_upstream.as_ref() else {
            return Err(V2Error::not_enabled(parts.uri.path()));
        };
        let op = matched.route;
        let content_type = upload_type(op.name, &parts.headers);
        let body = if content_type.is_some() {
            (!raw.is_empty()).then_some(raw)
        } else {
            checked_body(op.method, raw)?
        };
        Ok(Outgoing {
            upstream,
            host: stream_wire::endpoint::Host::Api,
            query: query::forward_string(&pairs, &st.config.stream.api_key),
            path: matched.path,
            body,
            content_type,
            credential: Credential::Jwt(st.keys.load().server_token()),
            idempotent: op.method.idempotent(),
        })
    }
}

/// Why a path matched no operation, in Stream's v2 shape.
fn route_refusal(e: V2RouteError, parts: &Parts) -> V2Error {
    match e {
        V2RouteError::NotFound => V2Error::new(
            StatusCode::NOT_FOUND,
            16,
            format!(
                "no operation at {} {}: the gateway forwards the operations of Stream's \
                 server-side spec {} only",
                parts.method,
                parts.uri.path(),
                v2::SPEC_VERSION
            ),
        ),
        V2RouteError::MethodNotAllowed(allow) => {
            let list: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
            let list = list.join(", ");
            let mut e = V2Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                4,
                format!("method not allowed; this path takes {list}"),
            );
            if let Ok(v) = HeaderValue::from_str(&list) {
                e.headers.insert(header::ALLOW, v);
            }
            e
        }
        V2RouteError::Invalid(i) => i.into(),
    }
}

/// The operations whose request body is `multipart/form-data` in Stream's spec (the
/// uploads, as the SDKs send them); every other operation's body is JSON.
pub(crate) const MULTIPART_OPERATIONS: [&str; 4] = [
    "chat.UploadChannelFile",
    "chat.UploadChannelImage",
    "common.UploadFile",
    "common.UploadImage",
];

/// An upload's `Content-Type`, to forward with its body as sent (bounded by size like any
/// body, its parts Stream's to judge): for an upload operation sent as `multipart/form-data`
/// with a boundary. `None` otherwise, and the body is checked as JSON.
fn upload_type(op: &str, headers: &HeaderMap) -> Option<HeaderValue> {
    if !MULTIPART_OPERATIONS.contains(&op) {
        return None;
    }
    let ct = headers.get(header::CONTENT_TYPE)?;
    let text = ct.to_str().ok()?.to_ascii_lowercase();
    (text.starts_with("multipart/form-data") && text.contains("boundary=")).then(|| ct.clone())
}

/// The body to forward: none for a GET or DELETE (no operation of the spec takes one) or an
/// empty one; otherwise JSON, each key once (so what is forwarded reads one way). What it
/// says is Stream's to judge.
fn checked_body(method: V2Method, raw: Bytes) -> Result<Option<Bytes>, InvalidInput> {
    match method {
        V2Method::Get | V2Method::Delete => Ok(None),
        _ if raw.iter().all(u8::is_ascii_whitespace) => Ok(None),
        _ => {
            strict_json::parse_strict(&raw)?;
            Ok(Some(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: V2Error) -> (StatusCode, HeaderMap, serde_json::Value) {
        let resp = e.into_response();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn refusals_have_stream_v2_error_shape_and_keep_their_headers() {
        let (status, _, b) = body_of(V2Error::not_enabled("/api/v2/users")).await;
        assert_eq!(status, 404);
        assert_eq!(b["StatusCode"], 404);
        assert_eq!(b["code"], 16);
        assert!(b["message"].as_str().unwrap().contains("stream.v2"));
        for k in ["duration", "more_info", "details"] {
            assert!(b.get(k).is_some(), "{k}");
        }
        let (status, _, b) = body_of(InvalidInput::new("id", "is empty").into()).await;
        assert_eq!(
            (status.as_u16(), &b["exception_fields"]["id"]),
            (400, &json!("is empty"))
        );
        let limited = ApiError::RateLimited(crate::error::RateLimited {
            detail: "spent".into(),
            retry_after_s: 3,
            window: Some((10, 0, 99)),
        });
        let (status, headers, b) = body_of(limited.into()).await;
        assert_eq!(
            (status.as_u16(), b["StatusCode"].as_u64()),
            (429, Some(429))
        );
        assert_eq!(headers["retry-after"], "3");
        assert_eq!(headers["x-ratelimit-reset"], "99");
        assert_eq!(headers["content-type"], "application/json");
    }
}
