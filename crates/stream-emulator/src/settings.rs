//! `[emulator]` as read ([`EmulatorFile`]) and validated ([`EmulatorSettings`]): the embedded
//! emulator's feed groups, realtime listener, bounds and data directory. A problem names its
//! key ([`SettingsError`]; the gateway's configuration reports it as its own).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use stream_wire::Slug;

use crate::{Bounds, FeedGroups, FeedKind};

/// Why `[emulator]` is refused: the dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The dotted key (`emulator.max_activities`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl SettingsError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

/// `[emulator]` as read: settings of the embedded emulator only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorFile {
    /// `[emulator.feed_groups]`: `slug = "flat" | "aggregated" | "notification"`.
    pub feed_groups: std::collections::BTreeMap<String, FeedKind>,
    /// Realtime (Faye) also served here, where stream-js's `LOCAL_FAYE` connects; `""`: on
    /// the emulator's port only.
    pub realtime_listen: String,
    /// Activities the emulator holds at most; adds beyond are refused.
    pub max_activities: usize,
    /// Requests kept for `GET /_emulator/requests`, oldest out first.
    pub max_request_log: usize,
    /// The largest document `POST /_emulator/import` (and `--emulator-seed`) reads.
    pub max_import_bytes: usize,
    /// Where the state is kept across restarts (`emulator.sqlite3` there); `""`: memory only.
    pub data_dir: String,
}

/// Where stream-js's `LOCAL_FAYE` looks for Faye (`http://localhost:9999/faye/`).
pub const DEFAULT_REALTIME_LISTEN: &str = "127.0.0.1:9999";

impl Default for EmulatorFile {
    fn default() -> Self {
        Self {
            feed_groups: Default::default(),
            realtime_listen: DEFAULT_REALTIME_LISTEN.into(),
            max_activities: Bounds::default().max_activities,
            max_request_log: Bounds::default().max_request_log,
            max_import_bytes: Bounds::default().max_import_bytes,
            data_dir: String::new(),
        }
    }
}

/// `[emulator]`, validated.
#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// The kind of each feed group: the configured ones on top of Stream's default app
    /// (`aggregated` aggregated, `notification` notification, the rest flat).
    pub feed_groups: FeedGroups,
    /// `emulator.realtime_listen`: `None` when empty.
    pub realtime_listen: Option<SocketAddr>,
    /// `emulator.max_activities`, `max_request_log`, `max_import_bytes`.
    pub bounds: Bounds,
    /// `emulator.data_dir`: `None` when empty (memory only).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        Self {
            feed_groups: Default::default(),
            realtime_listen: DEFAULT_REALTIME_LISTEN.parse().ok(),
            bounds: Default::default(),
            data_dir: None,
        }
    }
}

impl EmulatorSettings {
    pub fn validate(e: EmulatorFile) -> Result<Self, SettingsError> {
        for slug in e.feed_groups.keys() {
            Slug::parse(slug).map_err(|err| {
                SettingsError::new(&format!("emulator.feed_groups.{slug}"), err.to_string())
            })?;
        }
        let listen = e.realtime_listen.trim();
        let realtime_listen = if listen.is_empty() {
            None
        } else {
            Some(listen.parse().map_err(|_| {
                SettingsError::new(
                    "emulator.realtime_listen",
                    format!(
                        "{listen:?} is not an address such as 127.0.0.1:9999 (or \"\" for none)"
                    ),
                )
            })?)
        };
        for (key, v) in [
            ("emulator.max_activities", e.max_activities),
            ("emulator.max_request_log", e.max_request_log),
            ("emulator.max_import_bytes", e.max_import_bytes),
        ] {
            if v == 0 {
                return Err(SettingsError::new(key, "must be at least 1".to_owned()));
            }
        }
        Ok(Self {
            feed_groups: FeedGroups::new(e.feed_groups.into_iter().collect()),
            realtime_listen,
            bounds: Bounds {
                max_activities: e.max_activities,
                max_request_log: e.max_request_log,
                max_import_bytes: e.max_import_bytes,
            },
            data_dir: Some(e.data_dir.trim())
                .filter(|d| !d.is_empty())
                .map(Into::into),
        })
    }
}
