//! `[log]` as read ([`LogFile`]): the access log's format (the level comes from `RUST_LOG`).

use serde::{Deserialize, Serialize};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogFile {
    pub format: LogFormat,
}

impl Default for LogFile {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
        }
    }
}
