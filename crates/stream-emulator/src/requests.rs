//! The request log: the last requests Stream's routes received (`emulator.max_request_log`),
//! each numbered, with the status it was answered with.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// A request as the emulator received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body, as text.
    pub body: String,
    /// Its number in the log, from 1 (since start or the last reset).
    #[serde(default)]
    pub seq: u64,
    /// When it was received (RFC 3339, UTC, milliseconds).
    #[serde(default)]
    pub at: String,
    /// The status it was answered with; `null` while being served, or when dropped.
    #[serde(default)]
    pub status: Option<u16>,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The requests received, oldest first, numbered from 1 since the start or the last reset.
#[derive(Debug, Default)]
pub struct RequestLog {
    kept: VecDeque<Received>,
}

impl RequestLog {
    /// The requests kept, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.kept.iter().cloned().collect()
    }

    /// Keeps a request, dropping the oldest beyond `max`; its sequence number.
    pub fn record(&mut self, mut r: Received, max: usize) -> u64 {
        r.seq = self.kept.back().map_or(1, |last| last.seq + 1);
        while self.kept.len() >= max {
            self.kept.pop_front();
        }
        let seq = r.seq;
        self.kept.push_back(r);
        seq
    }

    /// Notes the status the request `seq` was answered with (if it is still kept).
    pub fn answered(&mut self, seq: u64, status: u16) {
        if let Some(r) = self.kept.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = Some(status);
        }
    }

    /// Forgets every request; numbering starts again from 1.
    pub fn clear(&mut self) {
        self.kept.clear();
    }
}
