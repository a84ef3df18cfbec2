//! `[upstream]` as read ([`UpstreamFile`]) and validated ([`UpstreamConfig`]): the timeouts,
//! retries, budget and limits of the calls to Stream. A problem names its key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{ms, positive, present, ConfigError};

/// `[upstream]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamFile {
    /// One attempt.
    pub timeout_ms: u64,
    /// TCP + TLS connect.
    pub connect_timeout_ms: u64,
    pub deadline_ms: u64,
    pub max_retries: u32,
    /// First backoff ceiling.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling.
    pub backoff_max_ms: u64,
    /// Retries as a share of requests over 10 s.
    pub retry_budget_percent: u32,
    /// Idle pooled connections are closed after this.
    pub pool_idle_timeout_ms: u64,
    /// Largest answer read from Stream; a larger one is 502.
    pub max_response_bytes: u64,
    /// An HTTP proxy (`http://host:port`) for every upstream call; none when unset, whatever
    /// `HTTP_PROXY` or `HTTPS_PROXY` say.
    pub proxy: Option<String>,
}

impl Default for UpstreamFile {
    fn default() -> Self {
        Self {
            timeout_ms: 3000,
            connect_timeout_ms: 1000,
            deadline_ms: 10_000,
            max_retries: 2,
            backoff_base_ms: 50,
            backoff_max_ms: 2000,
            retry_budget_percent: 20,
            pool_idle_timeout_ms: 55_000,
            max_response_bytes: 8 * 1024 * 1024,
            proxy: None,
        }
    }
}

/// `[upstream]`, validated.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// One attempt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The whole request.
    pub deadline: Duration,
    pub max_retries: u32,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_max: Duration,
    /// Retry budget, percent of requests.
    pub retry_budget_percent: u32,
    pub pool_idle_timeout: Duration,
    /// Largest answer read from Stream.
    pub max_response_bytes: usize,
    /// The HTTP proxy for upstream calls (`http://host:port`), if any.
    pub proxy: Option<String>,
}

impl UpstreamConfig {
    pub fn validate(u: UpstreamFile) -> Result<Self, ConfigError> {
        let upstream = Self {
            timeout: ms("upstream.timeout_ms", u.timeout_ms)?,
            connect_timeout: ms("upstream.connect_timeout_ms", u.connect_timeout_ms)?,
            deadline: ms("upstream.deadline_ms", u.deadline_ms)?,
            max_retries: u.max_retries,
            backoff_base: ms("upstream.backoff_base_ms", u.backoff_base_ms)?,
            backoff_max: ms("upstream.backoff_max_ms", u.backoff_max_ms)?,
            retry_budget_percent: u.retry_budget_percent,
            pool_idle_timeout: ms("upstream.pool_idle_timeout_ms", u.pool_idle_timeout_ms)?,
            max_response_bytes: positive("upstream.max_response_bytes", u.max_response_bytes)?,
            proxy: present(u.proxy).map(|p| validate_proxy(&p)).transpose()?,
        };
        if upstream.backoff_base > upstream.backoff_max {
            return Err(ConfigError::new(
                "upstream.backoff_base_ms",
                "must not exceed upstream.backoff_max_ms",
            ));
        }
        if upstream.retry_budget_percent > 100 {
            return Err(ConfigError::new(
                "upstream.retry_budget_percent",
                "must be between 0 and 100",
            ));
        }
        Ok(upstream)
    }
}

/// `http://host:port`: a plain HTTP proxy (HTTPS calls go through it with `CONNECT`).
fn validate_proxy(u: &str) -> Result<String, ConfigError> {
    let bad = || {
        ConfigError::new(
            "upstream.proxy",
            // Never the value: a proxy URL may carry a password.
            "is not an HTTP proxy URL such as http://proxy.internal:3128",
        )
    };
    let authority = u.strip_prefix("http://").ok_or_else(bad)?;
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ', '%']);
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(format!("http://{authority}"))
}
