//! The application: binds (port 0 works), builds the router, serves until shutdown.
//! [`App::build`] + [`App::port`] are the one seam the integration tests use.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::response::IntoResponse;
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::config::Config;
use crate::emulator::{Emulator, EmulatorConfig};
use crate::error::ApiError;
use crate::proxy::{self, Gateway};
use crate::tokens;

/// A built, bound, not yet serving gateway.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: Router,
    grace: Duration,
    emulator: Option<Emulator>,
    upstream: String,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding or the emulator failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(#[from] reqwest::Error),
}

impl App {
    /// Binds the listener (and starts the emulator when configured) and builds the router.
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let emulator = if config.stream.emulator {
            let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
            let emu = Emulator::spawn(
                EmulatorConfig {
                    api_key: config.stream.api_key.clone(),
                    api_secret: config.stream.api_secret.clone(),
                    strict_scopes: false,
                },
                addr,
            )
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
            config.stream.base_url = emu.url();
            Some(emu)
        } else {
            None
        };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let grace = config.server.shutdown_grace;
        let upstream = config.stream.base_url.clone();
        let router = router(Arc::new(Gateway::new(config)?));
        Ok(Self {
            listener,
            router,
            grace,
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

    /// Where requests go: Stream's regional URL, the configured base URL, or the emulator.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The embedded emulator, when serving with one.
    pub fn emulator(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish for up to `server.shutdown_grace_ms`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (began_tx, began_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            let _ = began_tx.send(());
        });
        let grace = self.grace;
        let expire = async move {
            if began_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = serve => r,
            () = expire => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections");
                Ok(())
            }
        };
        drop(self.emulator);
        result
    }
}

/// `POST /tokens`, with CORS (preflight included) for the configured origins only.
fn tokens_route(gw: &Gateway) -> MethodRouter<Arc<Gateway>> {
    let route = post(tokens::mint);
    let origins = &gw.config.tokens.cors_origins;
    if origins.is_empty() {
        return route;
    }
    route.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([axum::http::Method::POST])
            .allow_headers([axum::http::header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// The router: health, `/tokens`, the proxy under `/api/v1.0/`, Stream's 404 elsewhere.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/tokens", tokens_route(&gw))
        .route("/api/v1.0", any(proxy::handle))
        .route("/api/v1.0/", any(proxy::handle))
        .route("/api/v1.0/{*rest}", any(proxy::handle))
        .fallback(not_found)
        .with_state(gw)
        // Outermost first.
        .layer(
            ServiceBuilder::new()
                // Keep the caller's credentials out of anything that logs requests.
                .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
                // A request id for every request: the caller's `x-request-id`, or a new one...
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                // ...returned in the response.
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
