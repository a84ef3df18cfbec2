//! The application: binds its listeners (port 0 works), builds a router per audience, serves
//! until shutdown.
//! [`App::build`] + [`App::port`] are the one seam the integration tests use.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::util::MapRequestLayer;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::config::Config;
use crate::error::ApiError;
use crate::guard;
use crate::server::Limits;
use crate::state::AppState;
use crate::telemetry;
use crate::tokens;
use stream_emulator::{Emulator, EmulatorConfig, RealtimeSettings};

mod direct;

pub use direct::ProxyService;

/// Builds a listener's router.
type RouterFn = fn(Arc<AppState>) -> Router;

/// What a listener serves: its router, and the proxy's service when it serves the proxy.
type Routes = (Router, Option<Arc<ProxyService>>);

/// A built, bound, not yet serving gateway.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    /// `server.public_listen`, bound.
    public: Option<TcpListener>,
    /// `server.admin_listen`, bound.
    admin: Option<TcpListener>,
    state: Arc<AppState>,
    emulator: Option<Emulator>,
    upstream: String,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or the emulator failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(#[from] crate::upstream::client::ClientError),
}

impl App {
    /// Binds the listener (and starts the emulator when configured) and builds the router.
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let emulator = if config.stream.emulator {
            let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
            let realtime = RealtimeSettings {
                app_id: config.stream.app_id.clone().unwrap_or_default(),
                listen: config.emulator.realtime_listen,
                ..RealtimeSettings::default()
            };
            let emu = Emulator::spawn_served(
                EmulatorConfig {
                    api_key: config.stream.api_key.clone(),
                    api_secret: config.stream.api_secret.clone(),
                    // The gateway mints the narrowest token for each call; a wider one is a bug.
                    strict_scopes: true,
                },
                config.emulator.feed_groups.clone(),
                realtime,
                addr,
                // The gateway's accept loop: bounded connections, head and idle timeouts.
                crate::server::emulator_serve(crate::server::EMULATOR_LIMITS),
            )
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
            emu.state().set_bounds(config.emulator.bounds);
            // Names resolved as the gateway resolves them (hickory: the static image has no NSS).
            emu.state()
                .set_webhook_connector(tower::util::BoxCloneSyncService::new(
                    tower::ServiceExt::map_err(
                        crate::net::http_connector(stream_emulator::outbound::SEND_TIMEOUT),
                        Into::into,
                    ),
                ));
            config.stream.base_url = emu.url();
            // The emulator serves (or names as not emulated) the other services too.
            config.stream.analytics_base_url = emu.url();
            config.stream.personalization_base_url = emu.url();
            config.stream.v2_base_url = emu.url();
            Some(emu)
        } else {
            None
        };
        let listener = bind(config.server.listen).await?;
        let public = match config.server.public {
            Some(l) => Some(bind(l.listen).await?),
            None => None,
        };
        let admin = match config.server.admin {
            Some(l) => Some(bind(l.listen).await?),
            None => None,
        };
        let upstream = config.stream.base_url.clone();
        let state = Arc::new(AppState::new(config)?);
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            public,
            admin,
            state,
            emulator,
            upstream,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The public listener's address (`server.public_listen`), when there is one.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The admin listener's address (`server.admin_listen`), when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where requests go: Stream's regional URL, the configured base URL, or the emulator.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The embedded emulator, when serving with one.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    /// The shared state (metrics, configuration), for tests and embedding.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Each bound listener with its name (a metric label), router and limits.
    fn listeners(
        internal: TcpListener,
        router: Router,
        public: Option<TcpListener>,
        admin: Option<TcpListener>,
        gw: &Arc<AppState>,
    ) -> Vec<(&'static str, TcpListener, Routes, Limits)> {
        let server = &gw.config.server;
        let peer_addr = gw.config.callers.is_some();
        let proxy = Some(Arc::new(ProxyService::new(gw.clone())));
        let mut listeners = vec![(
            "internal",
            internal,
            (router, proxy),
            Limits {
                max_connections: server.max_connections,
                header_read_timeout: server.header_read_timeout,
                idle_timeout: server.idle_timeout,
                peer_addr,
            },
        )];
        let others: [(_, _, _, RouterFn); 2] = [
            ("public", public, server.public, public_router),
            ("admin", admin, server.admin, admin_router),
        ];
        for (name, listener, conf, router) in others {
            if let (Some(listener), Some(l)) = (listener, conf) {
                let limits = Limits {
                    max_connections: l.max_connections,
                    header_read_timeout: l.header_read_timeout,
                    idle_timeout: l.idle_timeout,
                    peer_addr,
                };
                listeners.push((name, listener, (router(gw.clone()), None), limits));
            }
        }
        listeners
    }

    /// Serves until `shutdown` resolves; then `/readyz` answers 503, the listener closes after
    /// `server.drain_delay_ms`, and in-flight requests get up to `server.shutdown_grace_ms`;
    /// last, spans waiting for export are sent (at most `telemetry.otlp_timeout_ms`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
        let gw = self.state.clone();
        // Every listener stops accepting at the same moment.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let listeners = Self::listeners(self.listener, self.router, self.public, self.admin, &gw);
        let mut serving = tokio::task::JoinSet::new();
        for (name, listener, (router, proxy), limits) in listeners {
            let refused = gw
                .metrics
                .counter("gateway_connections_refused_total", &[("listener", name)]);
            serving.spawn(crate::server::serve_with(
                listener,
                router,
                proxy,
                limits,
                refused,
                stopped(),
            ));
        }
        let serve = async move {
            let all_closed = async move { while serving.join_next().await.is_some() {} };
            tokio::join!(all_closed, async move {
                shutdown.await;
                gw.draining.store(true, Ordering::SeqCst);
                let delay = gw.config.server.drain_delay;
                if !delay.is_zero() {
                    tracing::info!(
                        drain_delay_ms = delay.as_millis() as u64,
                        "draining: /readyz answers 503, still serving"
                    );
                    tokio::time::sleep(delay).await;
                }
                tracing::info!(
                    "shutting down: no new connections, letting in-flight requests finish"
                );
                let _ = stop_tx.send(true);
                let _ = began_tx.send(());
            });
        };
        let grace = self.state.config.server.shutdown_grace;
        // Histogram samples are drained into buckets every few seconds, scraped or not.
        let upkeep = {
            let gw = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    gw.metrics.upkeep();
                }
            })
        };
        let expire = async move {
            if began_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = serve => {}
            () = expire => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections");
            }
        }
        upkeep.abort();
        // Spans still waiting for their batch go out now (bounded by the export timeout).
        self.state.tracer.flush().await;
        // And the access log's last lines.
        crate::access_log::flush();
        drop(self.emulator);
        Ok(())
    }
}

/// `POST /tokens`, with CORS (preflight included) for the configured origins only. The origins
/// are those of the policy in force, read per request, so a reload changes them.
fn tokens_route(gw: &Arc<AppState>) -> MethodRouter<Arc<AppState>> {
    let policy = gw.clone();
    post(tokens::mint).layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                policy.token_policy().cors_origins.contains(origin)
            }))
            .allow_methods([axum::http::Method::POST])
            // Authorization: the browser's own IdP token ([tokens.oidc]).
            .allow_headers([axum::http::header::CONTENT_TYPE, AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}

/// The internal listener's router (`server.listen`): health, readiness, metrics, `/tokens`, the
/// webhook routes, Stream's 404 elsewhere; a request from a web page, or for a host that is
/// not this gateway, is refused first ([`guard::check`]). The proxy's paths (`/api/v1.0/`,
/// Stream's analytics and personalization prefixes, `/api/v2/`) never reach it: the accept
/// loop hands them to [`ProxyService`], which does what these layers do itself.
pub fn router(gw: Arc<AppState>) -> Router {
    let routes = operator_routes(Router::new())
        .route("/tokens", tokens_route(&gw))
        .fallback(not_found)
        .with_state(gw.clone())
        // Stream's webhooks, verified (`[webhooks.routes]`): also on the public listener.
        .merge(crate::webhooks::router(gw.webhooks().clone()))
        .layer(axum::middleware::from_fn_with_state(
            gw.clone(),
            internal_guard,
        ));
    common_layers(routes, &gw)
}

/// The public listener's router (`server.public_listen`): what browsers and the internet may
/// reach, `/tokens` with its CORS policy and the webhook routes, and 404 for everything else (the proxy, health and
/// metrics are never served here). No Host check: it sits behind the app's ingress.
pub fn public_router(gw: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/tokens", tokens_route(&gw))
        .fallback(not_found)
        .with_state(gw.clone())
        // Stream's webhooks, verified (`[webhooks.routes]`): this is the listener Stream reaches.
        .merge(crate::webhooks::router(gw.webhooks().clone()));
    common_layers(routes, &gw)
}

/// The admin listener's router (`server.admin_listen`): health, readiness and metrics only.
pub fn admin_router(gw: Arc<AppState>) -> Router {
    let routes = operator_routes(Router::new())
        .fallback(not_found)
        .with_state(gw.clone());
    common_layers(routes, &gw)
}

fn operator_routes(r: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    r.route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// [`guard::check`] on every request of the internal listener.
async fn internal_guard(
    State(gw): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let policy = gw.token_policy();
    match guard::check(
        &gw.hosts,
        &policy.cors_origins,
        req.uri().path(),
        req.headers(),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The layers every listener's router has, outermost first.
fn common_layers(routes: Router, gw: &Arc<AppState>) -> Router {
    routes.layer(
        ServiceBuilder::new()
            // Keep the caller's credentials out of anything that logs requests.
            .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
            // A request id for every request: the caller's `x-request-id` if it is one
            // well-formed id, or a new one...
            .layer(MapRequestLayer::new(telemetry::screen_request_id::<Body>))
            .layer(SetRequestIdLayer::x_request_id(telemetry::FastRequestId))
            // ...returned in the response...
            .layer(PropagateRequestIdLayer::x_request_id())
            // ...and on the one log line (and the metrics) of every request, which also
            // takes up the caller's trace (or starts one) and records the request's span.
            .layer(axum::middleware::from_fn_with_state(
                (gw.metrics.clone(), gw.tracer.clone()),
                telemetry::access_log,
            )),
    )
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

async fn readyz(State(gw): State<Arc<AppState>>) -> impl IntoResponse {
    if gw.draining.load(Ordering::SeqCst) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}

async fn metrics(State(gw): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        gw.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
