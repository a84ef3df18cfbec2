//! The HTTP/1 server: an accept loop that holds at most `server.max_connections` open,
//! closes a connection whose request head is not complete `server.header_read_timeout_ms`
//! after it began (or after the connection opened), closes a keep-alive connection idle for
//! `server.idle_timeout_ms`, and drains on shutdown.
//!
//! axum's `serve` has no connection limit, and hyper's own header-read timeout also runs
//! while a keep-alive connection waits for its next request, so the two timeouts would be
//! one. Here each connection keeps its own clock: a head starts with the connection, or
//! with the first byte read while no request is being served.

pub(crate) mod settings;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// hyper's read buffer per connection, and so the largest request head (default ~400 KiB).
/// Heads need far less (8 KiB of target plus headers); this caps each connection's memory.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// Put in a response's extensions by a handler: the answer must be written out by then, or
/// the connection is closed (a client that does not read holds nothing past it).
#[derive(Debug, Clone, Copy)]
pub struct AnswerDeadline(pub Instant);

/// What bounds connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `server.max_connections`.
    pub max_connections: usize,
    /// `server.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `server.idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// Pass the peer's address to the direct service: `[callers]` needs it.
    pub peer_addr: bool,
}

/// The emulator's connection limits: a process on loopback that clients and the soak share.
pub const EMULATOR_LIMITS: Limits = Limits {
    max_connections: 1024,
    header_read_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(60),
    peer_addr: false,
};

/// This accept loop, with `limits`, as the way the emulator serves its listeners.
pub fn emulator_serve(limits: Limits) -> stream_emulator::Serve {
    Arc::new(move |listener, router| {
        Box::pin(serve(
            listener,
            router,
            limits,
            metrics::Counter::noop(),
            std::future::pending(),
        ))
    })
}

/// A service the accept loop calls itself for the paths it claims, with no router and no
/// layer stack on the way: the gateway's proxy, whose requests are most of the traffic.
pub trait Direct: Send + Sync + 'static {
    /// What the service learns from a path it claims (which of its routes), for [`Self::call`].
    type Claim: Send;
    /// The claim on requests for `path`; `None`: they are the router's.
    fn claim(&self, path: &str) -> Option<Self::Claim>;
    /// Answers `req`, claimed as `claim`, from `peer` when [`Limits::peer_addr`] says to pass
    /// it on.
    fn call(
        &self,
        claim: Self::Claim,
        req: http::Request<Body>,
        peer: Option<std::net::SocketAddr>,
    ) -> impl Future<Output = http::Response<Body>> + Send;
}

/// No direct service: everything goes to the router.
#[derive(Debug, Clone, Copy)]
pub struct RouterOnly;

impl Direct for RouterOnly {
    type Claim = Infallible;
    fn claim(&self, _: &str) -> Option<Infallible> {
        None
    }
    async fn call(
        &self,
        claim: Infallible,
        _: http::Request<Body>,
        _: Option<std::net::SocketAddr>,
    ) -> http::Response<Body> {
        match claim {}
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting, lets every
/// open connection finish its request in flight, and returns once all are closed.
/// `refused` counts connections closed at once over the limit.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refused: metrics::Counter,
    stop: impl Future<Output = ()>,
) {
    serve_with(
        listener,
        router,
        None::<Arc<RouterOnly>>,
        limits,
        refused,
        stop,
    )
    .await;
}

/// [`serve`], with the paths `direct` claims answered by it rather than by `router`.
pub async fn serve_with<D: Direct>(
    listener: TcpListener,
    router: Router,
    direct: Option<Arc<D>>,
    limits: Limits,
    refused: metrics::Counter,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection holds a receiver; `closed()` resolves when the last one is gone.
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close rather than
                    // spin on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.increment(1);
            tracing::debug!(
                max_connections = limits.max_connections,
                "connection refused"
            );
            drop(stream);
            continue;
        };
        // Small responses go out at once rather than waiting on Nagle and delayed ACKs.
        let _ = stream.set_nodelay(true);
        let services = (router.clone(), direct.clone());
        let conn = connection(stream, peer, services, limits, stop_rx.clone(), slot);
        let open = open_rx.clone();
        tokio::spawn(async move {
            conn.await;
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}

/// One connection, from accept to close.
async fn connection<D: Direct>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    (router, direct): (Router, Option<Arc<D>>),
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    });
    let service = {
        let clock = clock.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            // Busy from the complete head until the response is handed to hyper; hyper then
            // writes it, and a reader too slow to take it meets the idle timeout.
            let busy = Busy::start(&clock);
            let router = router.clone();
            let direct = direct.clone();
            let clock = clock.clone();
            async move {
                let req = req.map(Body::new);
                let claimed = direct.and_then(|d| Some((d.claim(req.uri().path())?, d)));
                let resp = match claimed {
                    Some((claim, d)) => d.call(claim, req, limits.peer_addr.then_some(peer)).await,
                    None => match router.oneshot(req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    },
                };
                drop(busy);
                Ok::<_, Infallible>(match resp.extensions().get::<AnswerDeadline>() {
                    Some(&AnswerDeadline(by)) => {
                        clock.answer_by(by);
                        resp.map(|body| {
                            Body::new(Writing {
                                body,
                                clock: clock.clone(),
                            })
                        })
                    }
                    None => resp,
                })
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_BUF_BYTES)
        // Off: the clock above does it, without cutting idle keep-alive connections.
        .header_read_timeout(None)
        .serve_connection(io, service)
        // The emulator's realtime answers a WebSocket upgrade (101); the gateway's routes never
        // do (nor a 2xx to CONNECT), so on its listeners an `Upgrade` stays ignored.
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = clock.deadline(limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if clock.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    // Dropping the connection closes the socket.
                    tracing::debug!(
                        reading_head = clock.reading_head(),
                        "connection closed: head not complete in time, or idle"
                    );
                    return;
                }
            }
            () = clock.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// No value: the connection is not reading a head (or not idle).
const NONE: u64 = u64::MAX;

/// One connection's phases, in milliseconds since it was accepted: when the head being read
/// began, or since when it has been idle; and how many requests are being served.
#[derive(Debug)]
struct Clock {
    born: Instant,
    head_since: AtomicU64,
    idle_since: AtomicU64,
    busy: AtomicUsize,
    /// When the answer being written must be out, if it has a deadline.
    answer_until: AtomicU64,
    changed: Notify,
}

impl Clock {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            // The first head starts with the connection: one that sends nothing is closed.
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(NONE),
            busy: AtomicUsize::new(0),
            answer_until: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    fn reading_head(&self) -> bool {
        self.head_since.load(Ordering::SeqCst) != NONE
    }

    /// Bytes arrived: when no request is being served and no head is under way, they start one.
    fn read(&self) {
        if self.busy.load(Ordering::SeqCst) == 0
            && self
                .head_since
                .compare_exchange(NONE, self.now(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.idle_since.store(NONE, Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    /// An answer with a deadline is being written.
    fn answer_by(&self, by: Instant) {
        let ms = by.saturating_duration_since(self.born).as_millis() as u64;
        self.answer_until.store(ms, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// The answer is written out (or dropped).
    fn answer_done(&self) {
        self.answer_until.store(NONE, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        let answer = self.answer_until.load(Ordering::SeqCst);
        let answer = (answer != NONE).then(|| self.at(answer));
        let head = self.head_since.load(Ordering::SeqCst);
        let other = if head != NONE {
            Some(self.at(head) + limits.header_read_timeout)
        } else {
            let idle = self.idle_since.load(Ordering::SeqCst);
            (idle != NONE && self.busy.load(Ordering::SeqCst) == 0)
                .then(|| self.at(idle) + limits.idle_timeout)
        };
        match (answer, other) {
            (Some(a), Some(o)) => Some(a.min(o)),
            (a, o) => a.or(o),
        }
    }
}

/// A request being served: the head is complete; when the last one ends, idle time begins.
struct Busy(Arc<Clock>);

impl Busy {
    fn start(clock: &Arc<Clock>) -> Self {
        clock.busy.fetch_add(1, Ordering::SeqCst);
        clock.head_since.store(NONE, Ordering::SeqCst);
        clock.idle_since.store(NONE, Ordering::SeqCst);
        clock.changed.notify_one();
        Self(clock.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let clock = &self.0;
        if clock.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            clock.idle_since.store(clock.now(), Ordering::SeqCst);
            clock.changed.notify_one();
        }
    }
}

/// An answer's body with a deadline: the clock stops watching it once it is written or dropped.
struct Writing {
    body: Body,
    clock: Arc<Clock>,
}

impl http_body::Body for Writing {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.clock.answer_done();
    }
}

/// The socket, telling the clock when bytes arrive.
struct Watched {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            peer_addr: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_runs_from_accept_then_idle_time_from_the_last_answer() {
        let clock = Arc::new(Clock::new());
        let t0 = clock.born;
        assert_eq!(clock.deadline(limits()), Some(t0 + Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = Busy::start(&clock);
        clock.read(); // body bytes: no new head
        assert_eq!(clock.deadline(limits()), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(busy);
        let idle = t0 + Duration::from_secs(6);
        assert_eq!(
            clock.deadline(limits()),
            Some(idle + Duration::from_secs(60))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        clock.read(); // the next head begins
        let head = t0 + Duration::from_secs(36);
        assert_eq!(
            clock.deadline(limits()),
            Some(head + Duration::from_secs(10))
        );
        clock.read(); // more of the same head: the clock keeps running
        assert_eq!(
            clock.deadline(limits()),
            Some(head + Duration::from_secs(10))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_with_a_deadline_closes_the_connection_by_then_unless_written() {
        let clock = Arc::new(Clock::new());
        let t0 = clock.born;
        drop(Busy::start(&clock));
        let idle = Some(t0 + Duration::from_secs(60));
        assert_eq!(clock.deadline(limits()), idle);
        clock.answer_by(t0 + Duration::from_secs(3));
        assert_eq!(clock.deadline(limits()), Some(t0 + Duration::from_secs(3)));
        let writing = Writing {
            body: Body::from("answer"),
            clock: clock.clone(),
        };
        assert!(!http_body::Body::is_end_stream(&writing));
        assert_eq!(http_body::Body::size_hint(&writing).exact(), Some(6));
        drop(writing);
        assert_eq!(clock.deadline(limits()), idle);
    }
}
