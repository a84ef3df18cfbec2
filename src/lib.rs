//! stream-gateway: a least-privilege signing gateway in front of Stream's feed REST API v1.0,
//! and, opt-in, Stream's `/api/v2/` family (Feeds v3, Chat, Video, Moderation).
//!
//! Map of the crate:
//! - [`stream`]: the domain: ids, scopes, the endpoint table, query and body checks, the v2
//!   route table generated from Stream's specs;
//! - [`auth`]: JWT minting and caching, HTTP Signatures, the `Secret` type;
//! - [`config`]: figment layers (defaults < TOML < env), validated once;
//! - [`error`]: the one HTTP error type, rendered as Stream's error body;
//! - [`guard`]: the internal listener's Host, Origin and Sec-Fetch-Site checks;
//! - [`proxy`]: the `/api/v1.0/` and `/api/v2/` handlers, forwarding and the retry policy;
//! - [`tokens`]: `POST /tokens`, short-lived frontend tokens under a policy;
//! - [`oidc`]: frontends' own IdP tokens for `/tokens`: the IdP's keys (JWKS), their fetching
//!   and caching, and verification with the algorithm pinned by the key;
//! - [`callers`]: which service calls, what it may call and how fast; Stream's window respected;
//! - [`emulator`]: Stream's API in memory, served on its own port, verifying as Stream does;
//! - [`app`]: binds, builds the router and serves until shutdown;
//! - [`server`]: the accept loop of each listener: connection limit, head and idle timeouts, draining;
//! - [`reload`]: the secret re-read when its file changes, the secret and `[tokens]` on SIGHUP;
//! - [`telemetry`]: the tracing subscriber and the access-log middleware;
//! - [`access_log`]: the access log's line, formatted by hand and written through a bounded buffer;
//! - [`trace`]: W3C trace context, the request and attempt spans, OTLP export;
//! - [`webhooks`]: Stream's webhooks, verified and forwarded to the app's services;
//! - [`net`]: name resolution for the HTTP clients;
//! - [`process`]: CPU, memory and file metrics of the process, from `/proc`.

pub mod access_log;
pub mod app;
pub mod auth;
pub mod callers;
pub mod config;
pub mod emulator;
pub mod error;
pub mod guard;
pub mod net;
pub mod oidc;
pub mod process;
pub mod proxy;
pub mod recorder;
pub mod reload;
pub mod server;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod tokens;
pub mod trace;
pub mod upstream;
pub mod webhooks;
