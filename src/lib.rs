//! stream-gateway: a least-privilege signing gateway in front of Stream's feed REST API v1.0,
//! and, opt-in, Stream's `/api/v2/` family (Feeds v3, Chat, Video, Moderation).
//!
//! The domain and credentials (Stream's paths, scopes, checks, JWTs, HTTP Signatures) are the
//! `stream-wire` crate, the emulator is `stream-emulator`; this crate is the gateway. Its
//! modules, one line each (`settings` modules beside their section: schema, defaults, checks):
//! - [`app`]: binds the listeners, builds the routers and the proxy's own service (`direct`),
//!   runs the emulator when configured, serves until shutdown;
//! - [`server`]: the accept loop of each listener: connection limit, head and idle timeouts,
//!   draining; a direct service (the proxy) for its paths, the router for the rest;
//! - `guard`: the internal listener's Host, Origin and Sec-Fetch-Site checks;
//! - `proxy`: one pipeline for `/api/v1.0/` and `/api/v2/`: match, admit, body, forward,
//!   answer, and the request's record;
//! - [`upstream`]: the way to Stream: the pooled client, the pure retry policy, the loop
//!   between them, the watch for a wrong secret; `[upstream]` and `[stream]` settings;
//! - [`tokens`]: `POST /tokens`, short-lived frontend tokens under a policy;
//! - [`oidc`]: frontends' own IdP tokens for `/tokens`: the IdP's keys (JWKS), fetched and
//!   cached, and verification with the algorithm the key pins;
//! - [`callers`]: which service calls, what it may call and how fast; Stream's window respected;
//! - `webhooks`: Stream's webhooks, verified and forwarded to the app's services;
//! - [`state`]: what every feature shares, built once from the configuration;
//! - [`config`]: figment layers (defaults < TOML < env), each section's settings assembled;
//!   which keys a reload changes (`config::RELOADS`);
//! - `settings`: what the sections' settings share: the error naming a key, plain checks;
//! - [`reload`]: the secret re-read when its file changes; on SIGHUP, what `config::RELOADS`
//!   names (the secret, `[tokens]`, `[callers]`);
//! - `error`: the one HTTP error type, rendered as Stream's error body;
//! - [`recorder`]: the app's own Prometheus recorder and the metric names;
//! - [`telemetry`]: the tracing subscriber and the access log's middleware;
//! - [`access_log`]: the access log's line, formatted by hand and written through a bounded buffer;
//! - [`trace`]: W3C trace context, the request and attempt spans, OTLP export;
//! - `net`: name resolution for the HTTP clients (hickory: no NSS in the static image);
//! - `process`: CPU, memory and file metrics of the process, from `/proc`.

pub mod access_log;
pub mod app;
pub mod callers;
pub mod config;
mod error;
mod guard;
mod net;
pub mod oidc;
mod process;
mod proxy;
pub mod recorder;
pub mod reload;
pub mod server;
mod settings;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod trace;
pub mod upstream;
mod webhooks;
