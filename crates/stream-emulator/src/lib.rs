//! stream-emulator: Stream's v1.0 feed API in memory, served over HTTP on its own port, verifying
//! credentials as Stream does (JWT scope, HTTP Signatures), built on the domain and credentials
//! of [`stream_wire`].
//!
//! A test embeds it with one call, [`Emulator::spawn`]; the gateway reaches it exactly as it
//! reaches Stream, so everything on the path (validate, mint, sign, forward) runs with no
//! account and no network. Map of the crate:
//!
//! - [`routes`]: the one table of every route it serves, Stream's and the admin's;
//! - [`state`]: [`EmulatorState`], the shared handle: verifier, [`store::Store`], faults, request log;
//! - [`intercept`]: the middleware in front of Stream's routes: the request log
//!   ([`requests`]), then the faults and rate limit set through the admin API ([`faults`]);
//! - [`verify`]: credentials checked as Stream checks them (JWT scope, HTTP Signatures);
//! - [`store`]: the data and Stream's feed semantics, with no HTTP inside;
//! - [`realtime`]: Faye (Bayeux) at `/faye`: subscriptions to feeds, and the store's changes
//!   pushed to them;
//! - [`call`] and [`reply`]: what every handler reads from a request and how it answers;
//! - one file of handlers per resource: [`feeds`], [`activities`], [`reactions`],
//!   [`collections`], [`users`], [`audit_logs`], [`analytics`] (and personalization's 501),
//!   and [`admin`] (fault injection and the request log, on the
//!   emulator's own port, never on the gateway's);
//! - [`console`]: the page at `/_emulator/` that shows the store and the request log, the
//!   export, and the refusal of other sites' pages on the admin routes;
//! - `v2`: Stream's `/api/v2/` operations answered 501, naming the operation;
//! - [`webhooks`]: `POST /_emulator/webhooks/send`, a webhook signed as Stream signs it, sent
//!   to the app; [`outbound`]: the connector it uses (the embedder's, or the system resolver);
//! - [`persist`]: `emulator.data_dir`, the state kept in one SQLite file across restarts;
//! - [`settings`]: the `[emulator]` configuration section, checked.
//!
//! It knows nothing of the gateway: the domain types are shared, the routing is its own. The
//! gateway serves it with its own accept loop ([`Emulator::spawn_served`]).

mod activities;
pub mod admin;
mod analytics;
mod audit_logs;
pub mod call;
mod collections;
pub mod console;
pub mod faults;
mod feeds;
pub mod intercept;
pub mod outbound;
pub mod persist;
mod reactions;
pub mod realtime;
pub mod reply;
pub mod requests;
pub mod routes;
pub mod settings;
pub mod state;
pub mod store;
mod users;
mod v2;
pub mod verify;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use faults::{Fault, RateRule, TokenError};
pub use realtime::{Bounds as RealtimeBounds, RealtimeSettings};
pub use requests::Received;
pub use routes::router;
pub use state::{Bounds, EmulatorState};
pub use store::groups::{FeedGroups, FeedKind};
use stream_wire::auth::Secret;

/// Settings of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The API key it takes.
    pub api_key: String,
    /// The secret it verifies with.
    pub api_secret: Secret,
    /// Refuse tokens wider than the route needs (for tests of least privilege).
    pub strict_scopes: bool,
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    realtime_addr: Option<SocketAddr>,
    state: Arc<EmulatorState>,
    /// The server, the realtime listener's and the sweep of idle realtime clients.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How a listener is served: the router on the listener until the task is aborted.
/// [`Emulator::spawn`] uses axum's own server; the gateway passes its accept loop (connection
/// limit, head and idle timeouts). It must let HTTP upgrades through (realtime's WebSockets).
pub type Serve = Arc<
    dyn Fn(TcpListener, axum::Router) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// axum's own server, with upgrades: what an embedding test needs.
pub fn axum_serve() -> Serve {
    Arc::new(|listener, app| {
        Box::pin(async move {
            // TCP_NODELAY, as the gateway's accept loop sets it: no Nagle stall on small answers.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "emulator: the server stopped");
            }
        })
    })
}

impl Emulator {
    /// Binds `addr` (port 0 picks one) and serves in the background, with the feed group
    /// kinds of Stream's default app.
    pub async fn spawn(cfg: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        Self::spawn_with_groups(cfg, FeedGroups::default(), addr).await
    }

    /// As [`Emulator::spawn`], with these feed group kinds (`[emulator.feed_groups]`).
    pub async fn spawn_with_groups(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        Self::spawn_with_realtime(cfg, groups, RealtimeSettings::default(), addr).await
    }

    /// As [`Emulator::spawn_with_realtime`], served by `serve` (the gateway's accept loop).
    pub async fn spawn_served(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        realtime: RealtimeSettings,
        addr: SocketAddr,
        serve: Serve,
    ) -> std::io::Result<Self> {
        Self::spawn_full(cfg, groups, realtime, addr, serve).await
    }

    /// As [`Emulator::spawn_with_groups`], with these realtime settings. When
    /// `realtime.listen` cannot be bound (another emulator has it), one warning is logged and
    /// realtime is served on the emulator's port only.
    pub async fn spawn_with_realtime(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        realtime: RealtimeSettings,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        Self::spawn_full(cfg, groups, realtime, addr, axum_serve()).await
    }

    async fn spawn_full(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        realtime: RealtimeSettings,
        addr: SocketAddr,
        serve: Serve,
    ) -> std::io::Result<Self> {
        let state = Arc::new(EmulatorState::with_realtime(cfg, groups, &realtime));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        // A WebSocket, once upgraded, has realtime's own idle bound.
        let mut tasks = vec![tokio::spawn(serve(listener, app))];
        let mut realtime_addr = None;
        if let Some(listen) = realtime.listen {
            match TcpListener::bind(listen).await {
                Ok(l) => {
                    realtime_addr = l.local_addr().ok();
                    let app = realtime::transport::routes(state.clone());
                    tasks.push(tokio::spawn(serve(l, app)));
                }
                Err(e) => tracing::warn!(
                    realtime_listen = %listen,
                    error = %e,
                    "emulator.realtime_listen cannot be bound; realtime is served on the \
                     emulator's port only ({addr}/faye)"
                ),
            }
        }
        let sweeper = state.clone();
        let every = (realtime.bounds.idle / 4).max(std::time::Duration::from_millis(100));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                sweeper.realtime().sweep(tokio::time::Instant::now());
            }
        }));
        Ok(Self {
            addr,
            realtime_addr,
            state,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `emulator.realtime_listen` is served, when it could be bound.
    pub fn realtime_addr(&self) -> Option<SocketAddr> {
        self.realtime_addr
    }

    /// The app id realtime channels carry.
    pub fn app_id(&self) -> &str {
        self.state.realtime().app_id()
    }

    /// The shared state, for tests.
    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
