//! An emulator of Stream's v1.0 feed API, served over HTTP on its own loopback port.
//!
//! The gateway reaches it exactly as it reaches Stream, so everything on the path (validate,
//! mint, sign, forward) runs with no account and no network. Map of the module:
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
//!   export, and the refusal of other sites' pages on the admin routes.
//!
//! It never calls into `proxy/`: the domain types are shared, the routing is its own.

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
pub mod persist;
mod reactions;
pub mod realtime;
pub mod reply;
pub mod requests;
pub mod routes;
pub mod state;
pub mod store;
#[cfg(test)]
mod structure_tests;
mod users;
mod v2;
pub mod verify;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::server::Limits;

use crate::auth::Secret;
pub use faults::{Fault, RateRule, TokenError};
pub use realtime::{Bounds as RealtimeBounds, RealtimeSettings};
pub use requests::Received;
pub use routes::router;
pub use state::{Bounds, EmulatorState};
pub use store::groups::{FeedGroups, FeedKind};

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

/// The emulator's connection limits: a process on loopback that clients and the soak share.
pub const LIMITS: Limits = Limits {
    max_connections: 1024,
    header_read_timeout: std::time::Duration::from_secs(10),
    idle_timeout: std::time::Duration::from_secs(60),
    peer_addr: false,
};

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

    /// As [`Emulator::spawn_with_groups`], with these connection limits.
    pub async fn spawn_limited(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        addr: SocketAddr,
        limits: Limits,
    ) -> std::io::Result<Self> {
        Self::spawn_full(cfg, groups, RealtimeSettings::default(), addr, limits).await
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
        Self::spawn_full(cfg, groups, realtime, addr, LIMITS).await
    }

    async fn spawn_full(
        cfg: EmulatorConfig,
        groups: FeedGroups,
        realtime: RealtimeSettings,
        addr: SocketAddr,
        limits: Limits,
    ) -> std::io::Result<Self> {
        let state = Arc::new(EmulatorState::with_realtime(cfg, groups, &realtime));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        // The gateway's own accept loop: bounded connections, head and idle timeouts (a
        // WebSocket, once upgraded, has realtime's own idle bound).
        let mut tasks = vec![tokio::spawn(crate::server::serve(
            listener,
            app,
            limits,
            metrics::Counter::noop(),
            std::future::pending(),
        ))];
        let mut realtime_addr = None;
        if let Some(listen) = realtime.listen {
            match TcpListener::bind(listen).await {
                Ok(l) => {
                    realtime_addr = l.local_addr().ok();
                    let app = realtime::transport::routes().with_state(state.clone());
                    tasks.push(tokio::spawn(crate::server::serve(
                        l,
                        app,
                        limits,
                        metrics::Counter::noop(),
                        std::future::pending(),
                    )));
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
