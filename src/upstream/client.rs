//! The upstream client: one pooled reqwest client (keep-alive, rustls, idle timeout below
//! the 60 s of common load balancers), one attempt at a time. The retry loop lives in
//! [`super::RetryLoop`]; this file only sends and classifies.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, DATE};

use super::retry::{retry_wait, Outcome, Unusable};
use super::Transport;
use crate::auth::{httpsig, Secret};
use crate::config::UpstreamConfig;

/// `X-Stream-Client`, as the official clients name themselves.
pub const CLIENT_NAME: &str = concat!("stream-gateway-", env!("CARGO_PKG_VERSION"));

/// Response headers passed back to the caller; everything else Stream sends is dropped.
pub const PASSED_BACK: [&str; 5] = [
    "content-type",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
];

/// How one request authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A scoped JWT (`Authorization: <token>`, `Stream-Auth-Type: jwt`).
    Jwt(HeaderValue),
    /// An HTTP Signature, made per attempt with a fresh `Date`.
    Signature,
}

/// A request ready to send, as many times as the policy allows.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: reqwest::Method,
    /// The canonical path: `/api/v1.0/...`.
    pub path: String,
    /// The query to send, `api_key` included, form-encoded (never empty).
    pub query: String,
    /// Already checked (and re-serialized if credentials were removed).
    pub body: Option<Bytes>,
    pub credential: Credential,
    /// The caller's request id, forwarded for support tickets.
    pub request_id: Option<HeaderValue>,
}

/// Stream's answer to one attempt.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    /// The [`PASSED_BACK`] headers present.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// What the retry policy makes of this answer at `now`: its status, and for a 429 when it
    /// says to come back (`Retry-After`, else `X-Ratelimit-Reset`).
    pub fn outcome(&self, now: SystemTime) -> Outcome {
        let status = self.status.as_u16();
        let header = |n: &str| self.headers.get(n).and_then(|v| v.to_str().ok());
        let wait = (status == 429)
            .then(|| retry_wait(header("retry-after"), header("x-ratelimit-reset"), now))
            .flatten();
        Outcome::Status { status, wait }
    }
}

/// The pooled client and where it sends.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// Parsed once; each request only sets its path and query (a full parse per request,
    /// host and IDNA included, was 6% of the profile).
    base: reqwest::Url,
    api_key: String,
    api_key_header: HeaderValue,
    secret: Secret,
    max_response_bytes: usize,
}

static STREAM_AUTH_TYPE: HeaderName = HeaderName::from_static("stream-auth-type");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static X_STREAM_CLIENT: HeaderName = HeaderName::from_static("x-stream-client");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Upstream {
    /// A client for `base` (scheme + host [+ port]).
    pub fn new(
        cfg: &UpstreamConfig,
        base: &str,
        api_key: &str,
        secret: Secret,
    ) -> reqwest::Result<Self> {
        let builder = reqwest::Client::builder();
        // Every request carries a token or a signature: it goes through a proxy only when the
        // configuration names one, never because of `HTTP_PROXY` in the environment.
        let builder = match &cfg.proxy {
            Some(url) => builder.proxy(reqwest::Proxy::all(url)?),
            None => builder.no_proxy(),
        };
        let client = builder
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .tcp_nodelay(true)
            // A redirect would resend a signed request somewhere else, or lose its body.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            base: reqwest::Url::parse(base)
                .expect("base_url was validated as scheme://host[:port]"),
            api_key: api_key.to_owned(),
            api_key_header: HeaderValue::from_str(api_key)
                .expect("api_key was validated as printable ASCII"),
            secret,
            max_response_bytes: cfg.max_response_bytes,
        })
    }
}

impl Transport for Upstream {
    /// Sends one attempt with `timeout` for the whole exchange, body included.
    async fn send(&self, req: &Prepared, timeout: Duration) -> Result<Answer, Outcome> {
        let mut url = self.base.clone();
        url.set_path(&req.path);
        url.set_query(Some(&req.query));
        let mut b = self
            .client
            .request(req.method.clone(), url)
            .timeout(timeout)
            .header(&X_STREAM_CLIENT, HeaderValue::from_static(CLIENT_NAME));
        match &req.credential {
            Credential::Jwt(token) => {
                b = b
                    .header(AUTHORIZATION, token.clone())
                    .header(&STREAM_AUTH_TYPE, HeaderValue::from_static("jwt"));
            }
            Credential::Signature => {
                let date = httpsig::http_date(SystemTime::now());
                // The signed request target is the path with its query.
                let target = format!("{}?{}", req.path, req.query);
                let auth = httpsig::authorization(
                    &self.api_key,
                    &self.secret,
                    req.method.as_str(),
                    &target,
                    &date,
                );
                let mut auth = HeaderValue::from_str(&auth).expect("signature header is ASCII");
                auth.set_sensitive(true);
                b = b
                    .header(AUTHORIZATION, auth)
                    .header(
                        DATE,
                        HeaderValue::from_str(&date).expect("HTTP date is ASCII"),
                    )
                    .header(&X_API_KEY, self.api_key_header.clone());
            }
        }
        if let Some(id) = &req.request_id {
            b = b.header(&X_REQUEST_ID, id.clone());
        }
        if let Some(body) = &req.body {
            b = b
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        let mut resp = b.send().await.map_err(classify)?;
        let status = resp.status();
        // Returning early drops `resp` unread, which closes its connection rather than pooling
        // it: the rest of an unwanted answer is never read.
        if status.is_informational() || status.as_u16() > 599 {
            return Err(Outcome::Unusable(Unusable::Status(status.as_u16())));
        }
        let limit = self.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Outcome::Unusable(Unusable::TooLarge));
        }
        let mut headers = HeaderMap::new();
        for name in PASSED_BACK {
            if let Some(v) = resp.headers().get(name) {
                headers.insert(name, v.clone());
            }
        }
        // Count while reading: a chunked or lying answer has no trustworthy length. The common
        // one-chunk body is kept as it came, without a copy.
        let mut first: Option<Bytes> = None;
        let mut more = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            let had = first.as_ref().map_or(0, Bytes::len) + more.len();
            if had + chunk.len() > limit {
                return Err(Outcome::Unusable(Unusable::TooLarge));
            }
            match &first {
                None => first = Some(chunk),
                Some(f) => {
                    if more.is_empty() {
                        more.extend_from_slice(f);
                    }
                    more.extend_from_slice(&chunk);
                }
            }
        }
        let body = if more.is_empty() {
            first.unwrap_or_default()
        } else {
            more.freeze()
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Connection failures before the request was written are [`Outcome::NotSent`]; timeouts are
/// [`Outcome::Timeout`]; anything else broke after sending and is [`Outcome::Dropped`].
fn classify(e: reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::NotSent
    } else if e.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Dropped
    }
}
