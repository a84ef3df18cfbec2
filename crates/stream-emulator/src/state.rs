//! [`EmulatorState`]: the one handle every handler shares (behind an `Arc`): the verifier,
//! the one [`Store`], the injected faults and rate limit ([`Injected`]), the request log
//! ([`RequestLog`]), the analytics events and the realtime [`Hub`].
//!
//! The store is reached through [`StoreGuard`], which publishes the feed changes a handler
//! made to realtime subscribers when it lets the store go: the one hook for realtime.

use parking_lot::{Mutex, MutexGuard, RwLock};
use serde_json::Value;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use axum::http::Method;

use super::call::Call;
use super::faults::{Fault, Injected, RateRule, WindowState};
use super::persist::Persist;
use super::realtime::{Hub, Realm, RealtimeSettings};
use super::reply::EmuError;
use super::requests::{Received, RequestLog};
use super::store::groups::FeedGroups;
use super::store::import::{self, ImportError};
use super::store::Store;
use super::verify::{Needed, Verifier};
use super::EmulatorConfig;
use stream_wire::auth::Secret;

/// What the emulator holds at most (`emulator.max_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Activities stored; an add beyond is refused.
    pub max_activities: usize,
    /// Requests kept for `GET /_emulator/requests`, oldest out first.
    pub max_request_log: usize,
    /// The largest import document read.
    pub max_import_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_activities: 1_000_000,
            max_request_log: 10_000,
            max_import_bytes: 64 << 20,
        }
    }
}

/// Analytics events kept for `GET /_emulator/analytics`, the oldest dropped beyond.
pub const EVENTS_CAPACITY: usize = 10_000;

/// Appends analytics events, dropping the oldest beyond [`EVENTS_CAPACITY`].
fn keep_events(kept: &mut VecDeque<Value>, events: impl IntoIterator<Item = Value>) {
    for e in events {
        if kept.len() == EVENTS_CAPACITY {
            kept.pop_front();
        }
        kept.push_back(e);
    }
}

/// The emulator's state, shared by its handlers.
#[derive(Debug)]
pub struct EmulatorState {
    verifier: RwLock<Verifier>,
    store: Mutex<Store>,
    injected: Mutex<Injected>,
    log: Mutex<RequestLog>,
    /// Analytics events received, oldest first, each `{"kind", "event"}`.
    analytics: Mutex<VecDeque<serde_json::Value>>,
    realtime: Hub,
    bounds: RwLock<Bounds>,
    /// The store or the analytics events may have changed since the last write to
    /// `persist` (set before the change, under the store's lock).
    dirty: AtomicBool,
    /// `emulator.data_dir`'s file, when set.
    persist: OnceLock<Persist>,
    /// How `/_emulator/webhooks` connects to the app, when the embedder gives one.
    connector: OnceLock<super::outbound::Connector>,
}

/// The store, locked; on release the feed changes made under it go to realtime subscribers.
pub struct StoreGuard<'a> {
    store: MutexGuard<'a, Store>,
    hub: &'a Hub,
    dirty: &'a AtomicBool,
}

impl Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.dirty.store(true, Ordering::SeqCst);
        &mut self.store
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if !self.store.has_changes() {
            return;
        }
        // Published before the store is let go, so subscribers see changes in store order.
        let updates = self.store.drain_changes(|feed| self.hub.listens(feed));
        if !updates.is_empty() {
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
            self.hub.publish(updates, &at);
        }
    }
}

impl EmulatorState {
    /// Empty data with these feed group kinds, no faults, credentials from `cfg`, realtime
    /// with a made-up app id.
    pub fn new(cfg: EmulatorConfig, groups: FeedGroups) -> Self {
        Self::with_realtime(cfg, groups, &RealtimeSettings::default())
    }

    /// As [`EmulatorState::new`], with these realtime settings.
    pub fn with_realtime(cfg: EmulatorConfig, groups: FeedGroups, rt: &RealtimeSettings) -> Self {
        Self {
            verifier: RwLock::new(Verifier {
                api_key: cfg.api_key,
                secrets: vec![cfg.api_secret],
                strict_scopes: cfg.strict_scopes,
            }),
            store: Mutex::new(Store::new(groups)),
            injected: Mutex::new(Injected::default()),
            log: Mutex::new(RequestLog::default()),
            analytics: Mutex::new(VecDeque::new()),
            realtime: Hub::new(rt.app_id.clone(), rt.bounds.clone()),
            bounds: RwLock::new(Bounds::default()),
            dirty: AtomicBool::new(false),
            persist: OnceLock::new(),
            connector: OnceLock::new(),
        }
    }

    /// Keeps analytics events of `kind` (`engagement`, `impression`), dropping the oldest
    /// beyond [`EVENTS_CAPACITY`].
    pub fn track(&self, kind: &str, events: Vec<serde_json::Value>) {
        let mut kept = self.analytics.lock();
        self.dirty.store(true, Ordering::SeqCst);
        keep_events(
            &mut kept,
            events
                .into_iter()
                .map(|event| serde_json::json!({ "kind": kind, "event": event })),
        );
    }

    /// The analytics events received so far, oldest first.
    pub fn analytics_events(&self) -> Vec<serde_json::Value> {
        self.analytics.lock().iter().cloned().collect()
    }

    /// Locks the store (tests read it directly).
    pub fn store(&self) -> StoreGuard<'_> {
        StoreGuard {
            store: self.store.lock(),
            hub: &self.realtime,
            dirty: &self.dirty,
        }
    }

    /// Keeps the state in `dir/emulator.sqlite3` from now on (`emulator.data_dir`), first
    /// loading the state stored there, if any (then `true`). An unreadable file or a stored
    /// document the import refuses is an error naming the file.
    pub fn persist_to(&self, dir: &std::path::Path) -> Result<bool, String> {
        let (p, doc) = Persist::open(dir)?;
        let loaded = doc.is_some();
        if let Some(doc) = doc {
            self.import(&doc, false).map_err(|e| {
                format!(
                    "{}: the stored state cannot be loaded: {e}",
                    p.path().display()
                )
            })?;
        }
        self.dirty.store(false, Ordering::SeqCst);
        self.persist
            .set(p)
            .map_err(|_| "the emulator already keeps its state in a data directory".to_owned())?;
        Ok(loaded)
    }

    /// The state is kept in `emulator.data_dir`.
    pub fn persisting(&self) -> bool {
        self.persist.get().is_some()
    }

    /// Writes the state to `emulator.data_dir`'s file if it changed since the last write
    /// (blocking: the file is synced). Runs after every request, before the answer is sent.
    pub fn save_if_changed(&self) -> Result<(), String> {
        let Some(p) = self.persist.get() else {
            return Ok(());
        };
        let mut taken = false;
        let written = p.write_with(|| {
            taken = self.dirty.swap(false, Ordering::SeqCst);
            taken.then(|| self.export())
        });
        if written.is_err() && taken {
            // Written next time.
            self.dirty.store(true, Ordering::SeqCst);
        }
        written
    }

    /// The realtime clients and subscriptions.
    pub fn realtime(&self) -> &Hub {
        &self.realtime
    }

    /// Adds a fault.
    pub fn inject(&self, f: Fault) {
        self.injected.lock().inject(f);
    }

    /// The faults not yet used up.
    pub fn faults(&self) -> Vec<Fault> {
        self.injected.lock().faults()
    }

    /// Forgets every fault.
    pub fn clear_faults(&self) {
        self.injected.lock().clear_faults();
    }

    /// The requests received so far (the last `max_request_log`).
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().received()
    }

    /// Records a request, dropping the oldest beyond `max_request_log`; its sequence number
    /// (`seq`, counted from 1 since start or reset), for [`EmulatorState::answered`].
    pub fn record(&self, r: Received) -> u64 {
        let max = self.bounds.read().max_request_log;
        self.log.lock().record(r, max)
    }

    /// Notes the status a recorded request was answered with.
    pub fn answered(&self, seq: u64, status: u16) {
        self.log.lock().answered(seq, status);
    }

    /// The whole state as one JSON document (`GET /_emulator/export`, format in
    /// docs/emulator.md): the store's data and the analytics events.
    pub fn export(&self) -> Value {
        let mut v = self.store().export();
        v["analytics"] = Value::Array(self.analytics_events());
        v
    }

    /// Sets what the emulator holds at most (`[emulator]`'s `max_*`).
    pub fn set_bounds(&self, b: Bounds) {
        *self.bounds.write() = b;
    }

    /// What the emulator holds at most.
    pub fn bounds(&self) -> Bounds {
        *self.bounds.read()
    }

    /// Refuses adding `n` activities to `store` when that would take it beyond
    /// `max_activities` (400, code 4, `InputException`, naming the key).
    pub fn room_for(&self, store: &Store, n: usize) -> Result<(), EmuError> {
        let max = self.bounds.read().max_activities;
        if store.activity_count().saturating_add(n) > max {
            return Err(super::reply::stream_error(
                400,
                4,
                "InputException",
                &format!(
                    "emulator: emulator.max_activities ({max}) reached; reset the emulator \
                     (POST /_emulator/reset) or raise emulator.max_activities"
                ),
            ));
        }
        Ok(())
    }

    /// Loads an export document (`POST /_emulator/import`, `--emulator-seed`): in place of
    /// the data and analytics events (`replace`), or on top of them (`merge`: same ids
    /// replaced). A bad document changes nothing. Faults, the request log and the rate limit
    /// stay.
    pub fn import(&self, doc: &Value, merge: bool) -> Result<(), ImportError> {
        let groups = self.store().feed_groups().clone();
        let incoming = Store::from_export(doc, groups)?;
        let events = import::analytics(doc)?;
        {
            let mut store = self.store();
            let max = self.bounds.read().max_activities;
            let total = if merge {
                store.activity_count() + incoming.new_activities(&store)
            } else {
                incoming.activity_count()
            };
            if total > max {
                return Err(ImportError {
                    at: "activities".into(),
                    reason: format!(
                        "{total} activities would be held, over emulator.max_activities ({max})"
                    ),
                });
            }
            if merge {
                store.merge(incoming);
            } else {
                *store = incoming;
            }
        }
        let mut kept = self.analytics.lock();
        if !merge {
            kept.clear();
        }
        keep_events(&mut kept, events);
        Ok(())
    }

    /// Forgets data, faults and the request log; the feed group kinds stay.
    pub fn reset(&self) {
        {
            let mut store = self.store();
            let groups = store.feed_groups().clone();
            *store = Store::new(groups);
        }
        *self.injected.lock() = Injected::default();
        self.log.lock().clear();
        self.analytics.lock().clear();
        self.realtime.clear();
    }

    /// Sets (or with `None` removes) Stream's rate limit.
    pub fn set_rate_rule(&self, rule: Option<RateRule>) {
        self.injected.lock().set_rate_rule(rule);
    }

    /// Counts a request against the rate limit, if one is set and matches it, at `now`
    /// (unix seconds).
    pub fn count_call(&self, method: &Method, path: &str, now: u64) -> Option<WindowState> {
        self.injected.lock().count_call(method, path, now)
    }

    /// Takes one use of the first fault matching the request, if any.
    pub fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        self.injected.lock().take_fault(method, path)
    }

    /// Refuses the call unless its credentials are what `needed` asks for.
    pub fn authorize(&self, call: &Call, needed: Needed) -> Result<(), EmuError> {
        self.verifier
            .read()
            .check(&call.method, &call.uri, &call.headers, &needed)
    }

    /// The API key and the secrets taken, for the checks outside the v1.0 verifier (`/api/v2/`).
    pub fn credentials(&self) -> (String, Vec<Secret>) {
        let v = self.verifier.read();
        (v.api_key.clone(), v.secrets.clone())
    }

    /// The API key and the secret a webhook is signed with: the newest secret taken (the last
    /// of `PUT /_emulator/secrets`), as Stream signs with the most recent one.
    pub fn webhook_credentials(&self) -> (String, Secret) {
        let v = self.verifier.read();
        let secret = v.secrets.last().cloned().expect("at least one secret");
        (v.api_key.clone(), secret)
    }

    /// From now on, credentials made with one of `secrets` (and no other) are taken, as
    /// Stream does when an app's secret is rotated. A reset keeps them.
    pub fn accept_secrets(&self, secrets: Vec<Secret>) {
        self.verifier.write().secrets = secrets;
    }

    /// Connects `/_emulator/webhooks` to the app with `connector` (the gateway's, which
    /// resolves names without the C library); the first one given stays.
    pub fn set_webhook_connector(&self, connector: super::outbound::Connector) {
        let _ = self.connector.set(connector);
    }

    /// The connector given, or a plain one with the system resolver.
    pub fn webhook_connector(&self) -> super::outbound::Connector {
        self.connector
            .get()
            .cloned()
            .unwrap_or_else(super::outbound::plain_connector)
    }
}

impl Realm for EmulatorState {
    fn realtime(&self) -> &Hub {
        &self.realtime
    }

    fn authorize_subscription(&self, ext: Option<&Value>, feed: &str) -> Result<(), String> {
        self.verifier.read().check_subscription(ext, feed)
    }
}
