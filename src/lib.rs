//! stream-gateway: a least-privilege signing gateway in front of Stream's feed REST API v1.0.
//!
//! Map of the crate:
//! - [`stream`]: the domain: ids, scopes, the endpoint table, query and body checks;
//! - [`auth`]: JWT minting and caching, HTTP Signatures, the `Secret` type;
//! - [`config`]: figment layers (defaults < TOML < env), validated once;
//! - [`error`]: the one HTTP error type, rendered as Stream's error body;
//! - [`proxy`]: the `/api/v1.0/` handler, forwarding and the retry policy;
//! - [`tokens`]: `POST /tokens`, short-lived frontend tokens under a policy;
//! - [`emulator`]: Stream's API in memory, served on its own port, verifying as Stream does;
//! - [`app`]: binds, builds the router and serves until shutdown;
//! - [`server`]: the accept loop: connection limit, head and idle timeouts, draining;
//! - [`telemetry`]: the tracing subscriber and the access log;
//! - [`trace`]: W3C trace context, the request and attempt spans, OTLP export;
//! - [`net`]: name resolution for the HTTP clients.

pub mod app;
pub mod auth;
pub mod config;
pub mod emulator;
pub mod error;
pub mod net;
pub mod proxy;
pub mod recorder;
pub mod server;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod tokens;
pub mod trace;
pub mod upstream;
