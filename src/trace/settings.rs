//! `[telemetry]` as read ([`TelemetryFile`]) and validated ([`TelemetryConfig`]): where and how
//! spans are exported. A problem names its key, never the collector's URL.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{ms, positive, present, ConfigError};

/// `[telemetry]` as read: trace export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryFile {
    /// The collector's OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); none: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// One export's timeout, connecting included.
    pub otlp_timeout_ms: u64,
    /// Longest wait for a batch to fill before it is sent.
    pub batch_delay_ms: u64,
    pub max_batch_spans: u64,
    /// Spans waiting for export; beyond it new ones are dropped and counted.
    pub max_queue_spans: u64,
}

impl Default for TelemetryFile {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "stream-gateway".into(),
            otlp_timeout_ms: 2000,
            batch_delay_ms: 1000,
            max_batch_spans: 512,
            max_queue_spans: 2048,
        }
    }
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Where spans are posted; none: export is off.
    pub otlp_endpoint: Option<http::Uri>,
    pub service_name: String,
    pub otlp_timeout: Duration,
    pub batch_delay: Duration,
    pub max_batch_spans: usize,
    pub max_queue_spans: usize,
}

impl TelemetryConfig {
    pub fn validate(t: TelemetryFile) -> Result<Self, ConfigError> {
        let cfg = Self {
            otlp_endpoint: present(t.otlp_endpoint)
                .map(|u| validate_otlp_endpoint(&u))
                .transpose()?,
            service_name: present(Some(t.service_name))
                .ok_or_else(|| ConfigError::new("telemetry.service_name", "must not be empty"))?,
            otlp_timeout: ms("telemetry.otlp_timeout_ms", t.otlp_timeout_ms)?,
            batch_delay: ms("telemetry.batch_delay_ms", t.batch_delay_ms)?,
            max_batch_spans: positive("telemetry.max_batch_spans", t.max_batch_spans)?,
            max_queue_spans: positive("telemetry.max_queue_spans", t.max_queue_spans)?,
        };
        if cfg.max_batch_spans > cfg.max_queue_spans {
            return Err(ConfigError::new(
                "telemetry.max_batch_spans",
                "must not exceed telemetry.max_queue_spans",
            ));
        }
        Ok(cfg)
    }
}

/// `telemetry.otlp_endpoint`: an http(s) URL with the path spans are posted to.
fn validate_otlp_endpoint(u: &str) -> Result<http::Uri, ConfigError> {
    // Never the value: a collector URL may carry credentials.
    let bad = |why: &str| ConfigError::new("telemetry.otlp_endpoint", why);
    let uri: http::Uri = u.parse().map_err(|_| bad("is not a valid URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must be an http or https URL"));
    }
    if uri
        .authority()
        .is_none_or(|a| a.host().is_empty() || a.as_str().contains('@'))
    {
        return Err(bad("must name a host, without user info"));
    }
    if matches!(uri.path(), "" | "/") {
        return Err(bad(
            "must be the full traces URL, such as http://collector:4318/v1/traces",
        ));
    }
    Ok(uri)
}
