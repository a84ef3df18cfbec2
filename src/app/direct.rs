//! The proxy's own service on the internal listener: the accept loop hands it every request
//! under the proxy's paths (see [`proxy::Api::of`]), with no router and no layer stack on the
//! way. What the router's layers do for other requests happens here once, in order: the
//! caller's credentials marked sensitive, the request id screened or made, the access-log
//! entry begun (which takes up the caller's trace), the internal listener's `Host` and
//! `Origin` checks, the proxy itself (with the trace and the caller's address passed in, not
//! looked up), the request id on the answer, the log line and the metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{Entry, AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::MakeRequestId;

use crate::guard;
use crate::proxy::{self, Api};
use crate::server::Direct;
use crate::state::AppState;
use crate::telemetry::{self, Access, FastRequestId};

/// The header a request id travels in, both ways.
const X_REQUEST_ID: &str = "x-request-id";

/// The proxy, served straight from the accept loop.
#[derive(Debug, Clone)]
pub struct ProxyService {
    gw: Arc<AppState>,
}

impl ProxyService {
    /// The service for `gw`'s proxy.
    pub fn new(gw: Arc<AppState>) -> Self {
        Self { gw }
    }
}

impl Direct for ProxyService {
    type Claim = Api;

    fn claim(&self, path: &str) -> Option<Api> {
        Api::of(path)
    }

    async fn call(&self, api: Api, req: http::Request<Body>, peer: Option<SocketAddr>) -> Response {
        let gw = &*self.gw;
        // Keep the caller's credentials out of anything that logs requests.
        let mut req = req;
        if let Entry::Occupied(mut values) = req.headers_mut().entry(AUTHORIZATION) {
            for v in values.iter_mut() {
                v.set_sensitive(true);
            }
        }
        // A request id for every request: the caller's if it is one well-formed id, or a new
        // one; returned in the answer and on the log line.
        let mut req = telemetry::screen_request_id(req);
        if !req.headers().contains_key(X_REQUEST_ID) {
            if let Some(id) = FastRequestId.make_request_id(&req) {
                req.headers_mut()
                    .insert(X_REQUEST_ID, id.header_value().clone());
            }
        }
        let request_id = req.headers().get(X_REQUEST_ID).cloned();
        let access = Access::begin(&req, &gw.metrics, &gw.tracer);
        // The `/tokens` CORS origins in force (a page of one may still not use the proxy).
        let policy = gw.token_policy.load();
        let checked = guard::check(
            &gw.hosts,
            &policy.cors_origins,
            req.uri().path(),
            req.headers(),
        );
        let mut resp = match checked {
            Ok(()) => {
                let trace = access.context().clone();
                proxy::answer(gw, api, req, trace, peer).await
            }
            Err(refused) => refused.into_response(),
        };
        if let Some(id) = request_id {
            resp.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        }
        access.end(&resp, &gw.metrics, &gw.tracer);
        resp
    }
}
