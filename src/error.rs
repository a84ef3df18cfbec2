//! The one HTTP error type of the gateway. Every refusal and failure it makes itself is
//! rendered in Stream's error body, so official clients raise the matching exception:
//! `{"code": 4, "exception": "InputException", "detail": "...", "status_code": 400, ...}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use stream_wire::{InvalidInput, Method};

/// An outcome the gateway answers itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400, code 4: bad input; the detail names the field.
    #[error("{0}")]
    InvalidInput(InvalidInput),
    /// 404, code 16: no endpoint at this path.
    #[error("no endpoint at {0}")]
    NotFound(String),
    /// 405, code 4: the path exists with other methods.
    #[error("method not allowed; this path takes {}", allow_list(.0))]
    MethodNotAllowed(Vec<Method>),
    /// 413, code 4: body over `server.max_body_bytes`.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 414, code 4: path and query longer than the gateway takes.
    #[error("request target is longer than {0} bytes")]
    UriTooLong(usize),
    /// 408, code 4: the body did not arrive in time; the key that says how long (the proxy's
    /// `upstream.deadline_ms`, `/tokens`' `tokens.body_timeout_ms`).
    #[error("request body was not received within {0} ms ({1})")]
    RequestTimeout(u128, &'static str),
    /// 401, code 2: the caller's `api_key` is another app's; the detail names its first 4
    /// characters only.
    #[error("{0}")]
    ForeignApiKey(String),
    /// 401, code 17: the request lacks the identity a rule needs.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403, code 17: a policy refuses.
    #[error("{0}")]
    NotAllowed(String),
    /// 502, code 1: Stream could not be reached or closed the connection without answering.
    #[error("Stream could not be reached: {0}")]
    UpstreamUnavailable(String),
    /// 502, code 1: Stream answered with what the gateway will not pass back (a status outside
    /// 200-599, a body over `upstream.max_response_bytes`); the detail says which.
    #[error("{0}")]
    UpstreamUnusable(String),
    /// 504, code 1: attempts timed out until the retries or the deadline ran out.
    #[error("Stream did not answer in time: {0}")]
    UpstreamTimeout(String),
    /// 504, code 1: a webhook's target did not answer within `webhooks.timeout_ms`.
    #[error("the webhook target did not answer within {0} ms (webhooks.timeout_ms)")]
    WebhookTimeout(u128),
    /// 503, code 1: over `server.max_concurrency`, or draining.
    #[error("{0}")]
    Overloaded(String),
    /// A caller over its rate, or Stream's window spent: 429, with `Retry-After`.
    #[error("{}", .0.detail)]
    RateLimited(RateLimited),
}

/// A 429 the gateway answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// What is limited, and by which key.
    pub detail: String,
    /// `Retry-After`, whole seconds.
    pub retry_after_s: u64,
    /// Stream's window as it last reported it (limit, remaining, reset), sent back as its
    /// `X-Ratelimit-*` headers when the refusal is Stream's window's.
    pub window: Option<(u64, u64, u64)>,
}

fn allow_list(m: &[Method]) -> String {
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

impl ApiError {
    /// HTTP status, Stream error code and exception name.
    pub fn parts(&self) -> (StatusCode, u16, &'static str) {
        match self {
            ApiError::InvalidInput(_) => (StatusCode::BAD_REQUEST, 4, "InputException"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, 16, "DoesNotExistException"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, 4, "InputException"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 4, "InputException"),
            ApiError::RequestTimeout(..) => (StatusCode::REQUEST_TIMEOUT, 4, "InputException"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, 4, "InputException"),
            ApiError::ForeignApiKey(_) => (StatusCode::UNAUTHORIZED, 2, "ApiKeyException"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, 17, "NotAllowedException"),
            ApiError::NotAllowed(_) => (StatusCode::FORBIDDEN, 17, "NotAllowedException"),
            ApiError::UpstreamUnavailable(_) | ApiError::UpstreamUnusable(_) => {
                (StatusCode::BAD_GATEWAY, 1, "UpstreamUnavailable")
            }
            ApiError::UpstreamTimeout(_) | ApiError::WebhookTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, 1, "UpstreamTimeout")
            }
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, 1, "Overloaded"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, 9, "RateLimitReached"),
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::InvalidInput(e)
    }
}

impl ApiError {
    /// Stream's error body for this outcome.
    pub fn body(&self) -> serde_json::Value {
        let (status, code, exception) = self.parts();
        let mut body = json!({
            "code": code,
            "exception": exception,
            "detail": self.to_string(),
            "status_code": status.as_u16(),
            "duration": "0.00ms",
        });
        if let ApiError::InvalidInput(i) = self {
            body["exception_fields"] = json!({ i.field.as_str(): [i.reason.as_str()] });
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.parts().0;
        let mut resp = (status, axum::Json(self.body())).into_response();
        if let ApiError::RateLimited(r) = &self {
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(r.retry_after_s));
            if let Some((limit, remaining, reset)) = r.window {
                h.insert("x-ratelimit-limit", HeaderValue::from(limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
                h.insert("x-ratelimit-reset", HeaderValue::from(reset));
            }
        }
        if let ApiError::MethodNotAllowed(m) = &self {
            if let Ok(v) = HeaderValue::from_str(&allow_list(m)) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value, Response) {
        let resp = e.into_response();
        let status = resp.status();
        let (parts, b) = resp.into_parts();
        let bytes = axum::body::to_bytes(b, 1 << 16).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap(),
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn invalid_input_is_streams_input_exception_naming_the_field() {
        let (status, v, _) = body(InvalidInput::new("user_id", "must not be empty").into()).await;
        assert_eq!(status, 400);
        assert_eq!(v["code"], 4);
        assert_eq!(v["exception"], "InputException");
        assert_eq!(v["status_code"], 400);
        assert_eq!(v["detail"], "user_id: must not be empty");
        assert_eq!(v["exception_fields"]["user_id"][0], "must not be empty");
    }

    #[tokio::test]
    async fn each_error_has_its_contract_status_and_code() {
        let cases = [
            (
                ApiError::NotFound("/x".into()),
                404,
                16,
                "DoesNotExistException",
            ),
            (
                ApiError::MethodNotAllowed(vec![Method::Get]),
                405,
                4,
                "InputException",
            ),
            (ApiError::PayloadTooLarge(10), 413, 4, "InputException"),
            (
                ApiError::RequestTimeout(10, "upstream.deadline_ms"),
                408,
                4,
                "InputException",
            ),
            (ApiError::UriTooLong(10), 414, 4, "InputException"),
            (
                ApiError::Unauthenticated("x".into()),
                401,
                17,
                "NotAllowedException",
            ),
            (
                ApiError::NotAllowed("x".into()),
                403,
                17,
                "NotAllowedException",
            ),
            (
                ApiError::UpstreamUnavailable("x".into()),
                502,
                1,
                "UpstreamUnavailable",
            ),
            (
                ApiError::UpstreamUnusable("x".into()),
                502,
                1,
                "UpstreamUnavailable",
            ),
            (
                ApiError::UpstreamTimeout("x".into()),
                504,
                1,
                "UpstreamTimeout",
            ),
            (ApiError::Overloaded("x".into()), 503, 1, "Overloaded"),
        ];
        for (e, status, code, exc) in cases {
            let (s, v, _) = body(e).await;
            assert_eq!(
                (
                    s.as_u16(),
                    v["code"].as_u64().unwrap(),
                    v["exception"].as_str().unwrap()
                ),
                (status, code, exc)
            );
            assert_eq!(v["status_code"], status);
        }
    }

    #[tokio::test]
    async fn method_not_allowed_lists_the_allowed_methods() {
        let (_, v, resp) = body(ApiError::MethodNotAllowed(vec![Method::Get, Method::Post])).await;
        assert_eq!(resp.headers()[header::ALLOW], "GET, POST");
        assert!(v["detail"].as_str().unwrap().contains("GET, POST"));
    }

    #[tokio::test]
    async fn a_rate_limit_is_streams_429_with_retry_after_and_the_window_when_known() {
        let own = RateLimited {
            detail: "caller batch is over its rate".into(),
            retry_after_s: 2,
            window: None,
        };
        let (s, v, resp) = body(ApiError::RateLimited(own.clone())).await;
        assert_eq!(
            (s.as_u16(), &v["code"], &v["exception"]),
            (429, &9.into(), &"RateLimitReached".into())
        );
        assert_eq!(v["detail"], "caller batch is over its rate");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert!(resp.headers().get("x-ratelimit-remaining").is_none());
        let stream = RateLimited {
            window: Some((300, 0, 1_700_000_030)),
            ..own
        };
        let (_, _, resp) = body(ApiError::RateLimited(stream)).await;
        let h = resp.headers();
        assert_eq!(
            (&h["x-ratelimit-limit"], &h["x-ratelimit-remaining"]),
            (
                &"300".parse::<HeaderValue>().unwrap(),
                &"0".parse::<HeaderValue>().unwrap()
            )
        );
        assert_eq!(h["x-ratelimit-reset"], "1700000030");
    }
}
