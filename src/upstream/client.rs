//! The upstream client: hyper's own pooled client (keep-alive, rustls with Mozilla's roots,
//! hickory DNS, idle timeout below the 60 s of common load balancers), one attempt at a time.
//! The retry loop lives in [`super::RetryLoop`]; this file only sends and classifies.
//!
//! hyper directly rather than reqwest: reqwest wraps this same client, and on the proxy's hot
//! path its extra layers cost a third of the stack's throughput (docs/performance.md).
//!
//! Stream's answer is streamed back to the caller, not buffered: the head must come within the
//! attempt's timeout, then the body may not stall longer than `upstream.timeout_ms` between two
//! chunks nor take longer than `upstream.deadline_ms` in all (a stall cuts the caller's
//! response); `upstream.max_response_bytes` is checked against `Content-Length` before the head
//! goes out and counted while the body streams (past it, the caller's response is cut).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, DATE};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

use super::retry::{retry_wait, Outcome, Unusable};
use super::settings::UpstreamConfig;
use super::Transport;
use crate::net::Dns;
use crate::trace::{SpanId, TRACEPARENT, TRACESTATE};
use stream_wire::auth::{httpsig, Secret};
use stream_wire::endpoint::Host;

/// `X-Stream-Client`, as the official clients name themselves.
pub(crate) const CLIENT_NAME: &str = concat!("stream-gateway-", env!("CARGO_PKG_VERSION"));

/// Response headers passed back to the caller; everything else Stream sends is dropped.
pub(crate) const PASSED_BACK: [&str; 5] = [
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
    /// An HTTP Signature with this secret (the one in force when the request arrived, so a
    /// rotation does not change it between attempts), made per attempt with a fresh `Date`.
    Signature(Secret),
}

/// A request ready to send, as many times as the policy allows.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    /// Which of Stream's services it goes to.
    pub host: Host,
    /// The canonical path: `/api/v1.0/...` (or the other service's prefix).
    pub path: String,
    /// The query to send, `api_key` included, form-encoded (never empty).
    pub query: String,
    /// Already checked (and re-serialized if credentials were removed).
    pub body: Option<Bytes>,
    /// The body's type when it is not JSON: a v2 upload's `multipart/form-data; boundary=...`.
    pub content_type: Option<HeaderValue>,
    pub credential: Credential,
    /// The caller's request id, forwarded for support tickets.
    pub request_id: Option<HeaderValue>,
    /// The request's trace: each attempt sends a `traceparent` naming its own span, and the
    /// caller's `tracestate` when it was kept.
    pub trace: crate::trace::Context,
}

/// Stream's answer to one attempt: the head read, the body still streaming.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The [`PASSED_BACK`] headers present.
    pub headers: HeaderMap,
    pub body: Body,
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

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("upstream.proxy: {0}")]
    Proxy(String),
}

/// The pooled client and where it sends.
#[derive(Clone)]
pub(crate) struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<Connect>, Full<Bytes>>,
    /// Scheme and authority of each service, by [`Host::index`].
    bases: [(Scheme, Authority); 3],
    api_key: String,
    api_key_header: HeaderValue,
    max_response_bytes: usize,
    /// Longest pause between two chunks of an answer's body (`upstream.timeout_ms`).
    stall: Duration,
    /// Longest time an answer's body may take in all (`upstream.deadline_ms`).
    body_cap: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("authority", &self.bases[Host::Api.index()].1)
            .finish_non_exhaustive()
    }
}

static STREAM_AUTH_TYPE: HeaderName = HeaderName::from_static("stream-auth-type");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static X_STREAM_CLIENT: HeaderName = HeaderName::from_static("x-stream-client");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Upstream {
    /// A client for each service's base URL (scheme + host [+ port], validated with the
    /// configuration), in [`Host::ALL`] order.
    pub(crate) fn new(
        cfg: &UpstreamConfig,
        bases: [&str; 3],
        api_key: &str,
    ) -> Result<Self, ClientError> {
        let bases = bases.map(|base| {
            let base: Uri = base
                .parse()
                .expect("base URLs were validated as scheme://host[:port]");
            (
                base.scheme().cloned().unwrap_or(Scheme::HTTPS),
                base.authority().cloned().expect("a base URL has a host"),
            )
        });
        let http = crate::net::http_connector(cfg.connect_timeout);
        // Every request carries a token or a signature: it goes through a proxy only when the
        // configuration names one, never because of `HTTP_PROXY` in the environment.
        let proxy = match &cfg.proxy {
            Some(p) => Some(
                p.parse::<Uri>()
                    .map_err(|e| ClientError::Proxy(e.to_string()))?,
            ),
            None => None,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(Connect { http, proxy });
        // No redirects are followed (hyper's client has none): a redirect would resend a
        // signed request somewhere else, or lose its body.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            bases,
            api_key: api_key.to_owned(),
            api_key_header: HeaderValue::from_str(api_key)
                .expect("api_key was validated as printable ASCII"),
            max_response_bytes: cfg.max_response_bytes,
            stall: cfg.timeout,
            body_cap: cfg.deadline,
        })
    }

    /// The request for attempt `span`; a signature is made now, with a fresh `Date`.
    fn request(&self, req: &Prepared, span: SpanId) -> http::Request<Full<Bytes>> {
        let target = format!("{}?{}", req.path, req.query);
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            // No Host here: hyper's client sets it from the URI, without a default port.
            .header(&X_STREAM_CLIENT, HeaderValue::from_static(CLIENT_NAME));
        match &req.credential {
            Credential::Jwt(token) => {
                builder = builder
                    .header(AUTHORIZATION, token.clone())
                    .header(&STREAM_AUTH_TYPE, HeaderValue::from_static("jwt"));
            }
            Credential::Signature(secret) => {
                let date = httpsig::http_date(SystemTime::now());
                // The signed request target is the path with its query.
                let auth = httpsig::authorization(
                    &self.api_key,
                    secret,
                    req.method.as_str(),
                    &target,
                    &date,
                );
                let mut auth = HeaderValue::from_str(&auth).expect("signature header is ASCII");
                auth.set_sensitive(true);
                builder = builder
                    .header(AUTHORIZATION, auth)
                    .header(
                        DATE,
                        HeaderValue::from_str(&date).expect("HTTP date is ASCII"),
                    )
                    .header(&X_API_KEY, self.api_key_header.clone());
            }
        }
        if let Some(id) = &req.request_id {
            builder = builder.header(&X_REQUEST_ID, id.clone());
        }
        builder = builder.header(&TRACEPARENT, req.trace.traceparent(span));
        if let Some(state) = &req.trace.tracestate {
            builder = builder.header(&TRACESTATE, state.clone());
        }
        let body = match &req.body {
            Some(b) => {
                let json = HeaderValue::from_static("application/json");
                builder = builder.header(CONTENT_TYPE, req.content_type.clone().unwrap_or(json));
                Full::new(b.clone())
            }
            None => Full::default(),
        };
        let (scheme, authority) = &self.bases[req.host.index()];
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(
                PathAndQuery::from_maybe_shared(Bytes::from(target))
                    .expect("the path and query were encoded by the gateway"),
            )
            .build()
            .expect("scheme, authority and path are valid");
        builder
            .uri(uri)
            .body(body)
            .expect("every header was built valid")
    }
}

impl Transport for Upstream {
    /// Sends one attempt with `timeout` for the whole exchange: the head within it, the body
    /// streaming within what is left of it.
    async fn send(
        &self,
        req: &Prepared,
        span: SpanId,
        timeout: Duration,
    ) -> Result<Answer, Outcome> {
        let deadline = tokio::time::Instant::now() + timeout;
        let resp = tokio::time::timeout_at(deadline, self.client.request(self.request(req, span)))
            .await
            .map_err(|_| Outcome::Timeout)?
            .map_err(|e| classify(&e))?;
        let status = resp.status();
        // Returning early drops `resp` unread, which closes its connection rather than pooling
        // it: the rest of an unwanted answer is never read.
        if status.is_informational() || status.as_u16() > 599 {
            return Err(Outcome::Unusable(Unusable::Status(status.as_u16())));
        }
        let limit = self.max_response_bytes as u64;
        if hyper::body::Body::size_hint(resp.body()).lower() > limit {
            return Err(Outcome::Unusable(Unusable::TooLarge));
        }
        let mut headers = HeaderMap::new();
        for name in PASSED_BACK {
            if let Some(v) = resp.headers().get(name) {
                headers.insert(name, v.clone());
            }
        }
        // The body's own clock starts with the head: a head that came late in its attempt
        // must not leave its body no time (a 201 whose body is cut invites a resend).
        let now = tokio::time::Instant::now();
        let body = Body::new(Bounded {
            inner: resp.into_body(),
            left: limit,
            stall: self.stall,
            cap: now + self.body_cap,
            deadline: Box::pin(tokio::time::sleep_until(now + self.stall)),
        });
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// Connection failures before the request was written are [`Outcome::NotSent`]; anything
/// else broke after sending and is [`Outcome::Dropped`] (timeouts are the caller's).
fn classify(e: &hyper_util::client::legacy::Error) -> Outcome {
    // The cause (a name that does not resolve, a refused connection, a certificate rustls
    // refuses) is only in the error's chain: say it, for the operator who turns on debug.
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause.push_str(": ");
        cause.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() {
        tracing::debug!(error = %cause, "connection to Stream failed");
        Outcome::NotSent
    } else {
        tracing::debug!(error = %cause, "the exchange with Stream broke off");
        Outcome::Dropped
    }
}

/// Why a streamed answer was cut.
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("Stream's answer passed upstream.max_response_bytes")]
    TooLarge,
    #[error("Stream's answer stalled past upstream.timeout_ms")]
    Stalled,
    #[error("Stream's answer broke off: {0}")]
    Broken(hyper::Error),
}

/// Stream's body on its way to the caller: at most `left` more bytes, no pause longer than
/// `stall`, done by `cap`. An error ends the caller's response early (the head has gone out).
struct Bounded {
    inner: Incoming,
    left: u64,
    stall: Duration,
    cap: tokio::time::Instant,
    /// The next chunk's deadline: `stall` after the last one, never past `cap`.
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Bounded {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if n > this.left {
                    return Poll::Ready(Some(Err(Cut::TooLarge)));
                }
                this.left -= n;
                let next = (tokio::time::Instant::now() + this.stall).min(this.cap);
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Cut::Broken(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Cut::Stalled))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The transport: a TCP connection to Stream, or to `upstream.proxy` (with `CONNECT` for
/// https, absolute-form requests for plain http).
#[derive(Clone)]
struct Connect {
    http: HttpConnector<Dns>,
    proxy: Option<Uri>,
}

/// A connection, saying whether it goes to a proxy that takes absolute-form requests.
struct Conn {
    io: TokioIo<TcpStream>,
    to_proxy: bool,
}

type BoxError = crate::net::BoxError;

impl Service<Uri> for Connect {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let http = self.http.clone();
        let proxy = self.proxy.clone();
        Box::pin(async move {
            match proxy {
                None => Ok(Conn {
                    io: http.oneshot(dst).await?,
                    to_proxy: false,
                }),
                Some(p) if dst.scheme() == Some(&Scheme::HTTP) => Ok(Conn {
                    io: http.oneshot(p).await?,
                    to_proxy: true,
                }),
                Some(p) => Ok(Conn {
                    io: Tunnel::new(p, http).oneshot(dst).await?,
                    to_proxy: false,
                }),
            }
        })
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.to_proxy)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
