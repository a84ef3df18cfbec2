//! Stream's realtime API (Faye, which speaks Bayeux) in the emulator: what stream-js's
//! `feed.subscribe` talks to.
//!
//! - [`Hub`]: the clients, their subscriptions and their bounded queues; [`Hub::publish`]
//!   never waits, so a slow subscriber cannot stall the store or the others;
//! - [`bayeux`]: the protocol's meta channels (`/meta/handshake`, `/meta/connect`,
//!   `/meta/subscribe`, `/meta/unsubscribe`, `/meta/disconnect`) over either transport;
//! - [`transport`]: `/faye` over WebSocket and HTTP long-polling, on the emulator's port and
//!   on its own listener (`emulator.realtime_listen`).
//!
//! A feed's channel is `/site-<app_id>-feed-<slug><user_id>`, as stream-js names it; what is
//! published there is Stream's realtime message (`new`, `deleted`, `deleted_foreign_ids`,
//! `feed`, `app_id`, `published_at`), made from the store's membership changes
//! ([`super::store::changes`]).

pub mod bayeux;
pub mod transport;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::changes::FeedUpdate;

/// What realtime needs of the emulator: its hub, and the check of a subscription's
/// credentials (the emulator's verifier).
pub trait Realm: Send + Sync + 'static {
    /// The clients, their subscriptions and queues.
    fn realtime(&self) -> &Hub;
    /// Checks the `ext` of a Faye subscription to the feed `feed` (`<slug><user_id>`); the
    /// refusal's reason otherwise.
    fn authorize_subscription(&self, ext: Option<&Value>, feed: &str) -> Result<(), String>;
}

/// Limits of the realtime service.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Clients handshaken at once; past it a handshake is refused.
    pub max_clients: usize,
    /// Channels one client may subscribe to.
    pub max_subscriptions: usize,
    /// Largest request body (long-polling) or WebSocket message, in bytes.
    pub max_message_bytes: usize,
    /// Messages queued for one client; past it the client is dropped (it must handshake
    /// again, and the Faye client does so by itself) rather than holding memory or others.
    pub max_queued: usize,
    /// How long a `/meta/connect` is held open when nothing is queued (the `timeout` advice).
    pub connect_hold: Duration,
    /// A client not heard from for this long (and with no connect held) is forgotten; a
    /// WebSocket silent for this long is closed.
    pub idle: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_subscriptions: 100,
            max_message_bytes: 64 * 1024,
            max_queued: 1_000,
            // Stream's own Faye advises `"timeout": 30000` (seen in GetStream/stream-js#198).
            connect_hold: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

/// Connects one client may have waiting at once (a Faye client has one; two overlap briefly
/// when it reconnects).
pub const MAX_HELD: usize = 4;

/// Settings of the emulator's realtime service.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// The app id channels carry (`stream.app_id`, or one made up).
    pub app_id: String,
    /// A listener of its own besides the emulator's port (`emulator.realtime_listen`), where
    /// stream-js's `LOCAL_FAYE` connects; `None`: the emulator's port only.
    pub listen: Option<std::net::SocketAddr>,
    /// The limits.
    pub bounds: Bounds,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            app_id: generated_app_id(),
            listen: None,
            bounds: Bounds::default(),
        }
    }
}

/// A numeric app id, as Stream's are, for an emulator given none.
pub fn generated_app_id() -> String {
    fastrand::u32(100_000..1_000_000).to_string()
}

#[derive(Debug)]
struct Client {
    queue: VecDeque<Value>,
    channels: HashSet<String>,
    wake: Arc<Notify>,
    last_seen: Instant,
    /// Connects held open for it now.
    held: usize,
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<String, Client>,
    /// Channel -> subscribed client ids.
    channels: HashMap<String, HashSet<String>>,
}

/// Why the hub refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// The client id is not (or no longer) known.
    UnknownClient,
    /// Too many clients, or subscriptions for this client.
    Full(&'static str),
}

/// The realtime clients and subscriptions of one emulator.
#[derive(Debug)]
pub struct Hub {
    app_id: String,
    bounds: Bounds,
    inner: Mutex<Inner>,
}

impl Hub {
    /// An empty hub for `app_id`.
    pub fn new(app_id: String, bounds: Bounds) -> Self {
        Self {
            app_id,
            bounds,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The app id channels carry.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The limits.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// The channel of `feed` (`slug:user`): `/site-<app_id>-feed-<slug><user>`.
    pub fn channel_of(&self, feed: &str) -> String {
        format!("/site-{}-feed-{}", self.app_id, feed.replacen(':', "", 1))
    }

    /// The `<slug><user>` part of one of this app's feed channels, if `channel` is one.
    pub fn feed_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        let rest = channel
            .strip_prefix("/site-")?
            .strip_prefix(self.app_id.as_str())?
            .strip_prefix("-feed-")?;
        let ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then_some(rest)
    }

    /// A new client; its id.
    pub fn handshake(&self, now: Instant) -> Result<String, HubError> {
        let mut inner = self.inner.lock();
        if inner.clients.len() >= self.bounds.max_clients {
            return Err(HubError::Full("too many clients"));
        }
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        inner.clients.insert(
            id.clone(),
            Client {
                queue: VecDeque::new(),
                channels: HashSet::new(),
                wake: Arc::new(Notify::new()),
                last_seen: now,
                held: 0,
            },
        );
        Ok(id)
    }

    /// Notes that `client` was heard from; false if it is unknown.
    pub fn touch(&self, client: &str, now: Instant) -> bool {
        match self.inner.lock().clients.get_mut(client) {
            Some(c) => {
                c.last_seen = now;
                true
            }
            None => false,
        }
    }

    /// Subscribes `client` to `channel` (already authorized).
    pub fn subscribe(&self, client: &str, channel: &str) -> Result<(), HubError> {
        let mut inner = self.inner.lock();
        let c = inner
            .clients
            .get_mut(client)
            .ok_or(HubError::UnknownClient)?;
        if !c.channels.contains(channel) && c.channels.len() >= self.bounds.max_subscriptions {
            return Err(HubError::Full("too many subscriptions for this client"));
        }
        c.channels.insert(channel.to_owned());
        inner
            .channels
            .entry(channel.to_owned())
            .or_default()
            .insert(client.to_owned());
        Ok(())
    }

    /// Unsubscribes `client` from `channel`.
    pub fn unsubscribe(&self, client: &str, channel: &str) -> Result<(), HubError> {
        let mut inner = self.inner.lock();
        let c = inner
            .clients
            .get_mut(client)
            .ok_or(HubError::UnknownClient)?;
        c.channels.remove(channel);
        Self::leave(&mut inner, client, channel);
        Ok(())
    }

    fn leave(inner: &mut Inner, client: &str, channel: &str) {
        if let Some(set) = inner.channels.get_mut(channel) {
            set.remove(client);
            if set.is_empty() {
                inner.channels.remove(channel);
            }
        }
    }

    /// Forgets `client` and its subscriptions, waking a connect held for it.
    pub fn remove(&self, client: &str) -> bool {
        let mut inner = self.inner.lock();
        Self::remove_locked(&mut inner, client)
    }

    fn remove_locked(inner: &mut Inner, client: &str) -> bool {
        let Some(c) = inner.clients.remove(client) else {
            return false;
        };
        for ch in &c.channels {
            Self::leave(inner, client, ch);
        }
        c.wake.notify_one();
        true
    }

    /// Marks a connect of `client` held: the waker of its held connects, and whether this one
    /// may wait (not when [`MAX_HELD`] already do: a client sending connects in a loop gets
    /// them answered at once instead of tasks piling up).
    pub fn hold(&self, client: &str) -> Option<(Arc<Notify>, bool)> {
        let mut inner = self.inner.lock();
        let c = inner.clients.get_mut(client)?;
        c.held += 1;
        Some((c.wake.clone(), c.held <= MAX_HELD))
    }

    /// A held connect of `client` ended at `now`.
    pub fn release(&self, client: &str, now: Instant) {
        if let Some(c) = self.inner.lock().clients.get_mut(client) {
            c.held = c.held.saturating_sub(1);
            c.last_seen = now;
        }
    }

    /// Takes what is queued for `client`; `None` when it is unknown (or was dropped).
    pub fn take(&self, client: &str) -> Option<Vec<Value>> {
        let mut inner = self.inner.lock();
        let c = inner.clients.get_mut(client)?;
        Some(c.queue.drain(..).collect())
    }

    /// True when someone subscribes to the channel of `feed` (`slug:user`).
    pub fn listens(&self, feed: &str) -> bool {
        let ch = self.channel_of(feed);
        self.inner.lock().channels.contains_key(&ch)
    }

    /// Queues Stream's realtime message for each update on its feed's channel, without waiting:
    /// a client whose queue is full is dropped.
    pub fn publish(&self, updates: Vec<FeedUpdate>, published_at: &str) {
        let mut inner = self.inner.lock();
        for u in updates {
            let channel = self.channel_of(&u.feed);
            let Some(subscribers) = inner.channels.get(&channel) else {
                continue;
            };
            let message = json!({
                "channel": channel,
                "data": {
                    "deleted": u.deleted,
                    "deleted_foreign_ids": u.deleted_foreign_ids,
                    "new": u.new,
                    "feed": u.feed,
                    "app_id": self.app_id,
                    "published_at": published_at,
                },
            });
            let mut overflowed = Vec::new();
            for id in subscribers.clone() {
                let Some(c) = inner.clients.get_mut(&id) else {
                    continue;
                };
                if c.queue.len() >= self.bounds.max_queued {
                    overflowed.push(id);
                    continue;
                }
                c.queue.push_back(message.clone());
                c.wake.notify_one();
            }
            for id in overflowed {
                tracing::warn!(
                    client = %id,
                    max_queued = self.bounds.max_queued,
                    "realtime: a subscriber did not read its messages; dropped (it must handshake again)"
                );
                Self::remove_locked(&mut inner, &id);
            }
        }
    }

    /// Forgets clients not heard from within `idle` that have no connect held; how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut inner = self.inner.lock();
        let idle = self.bounds.idle;
        let stale: Vec<String> = inner
            .clients
            .iter()
            .filter(|(_, c)| c.held == 0 && now.duration_since(c.last_seen) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            Self::remove_locked(&mut inner, id);
        }
        stale.len()
    }

    /// Clients known now.
    pub fn client_count(&self) -> usize {
        self.inner.lock().clients.len()
    }

    /// Forgets every client (the emulator's reset).
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        for c in inner.clients.values() {
            c.wake.notify_one();
        }
        inner.clients.clear();
        inner.channels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max_queued: usize) -> Hub {
        Hub::new(
            "42".into(),
            Bounds {
                max_queued,
                max_subscriptions: 2,
                max_clients: 2,
                ..Bounds::default()
            },
        )
    }

    fn update(feed: &str) -> FeedUpdate {
        FeedUpdate {
            feed: feed.into(),
            new: vec![json!({"id": "a"})],
            deleted: vec![],
            deleted_foreign_ids: vec![],
        }
    }

    #[test]
    fn channels_are_named_as_stream_js_names_them() {
        let h = hub(1);
        assert_eq!(h.channel_of("user:1"), "/site-42-feed-user1");
        assert_eq!(h.feed_of_channel("/site-42-feed-user1"), Some("user1"));
        assert_eq!(h.feed_of_channel("/site-43-feed-user1"), None);
        assert_eq!(h.feed_of_channel("/site-42-feed-"), None);
        assert_eq!(h.feed_of_channel("/site-42-feed-a/b"), None);
        assert_eq!(h.feed_of_channel("/meta/connect"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_its_client_and_not_the_others() {
        let h = hub(2);
        let now = Instant::now();
        let (slow, fast) = (h.handshake(now).unwrap(), h.handshake(now).unwrap());
        h.subscribe(&slow, "/site-42-feed-user1").unwrap();
        h.subscribe(&fast, "/site-42-feed-user1").unwrap();
        for _ in 0..3 {
            h.publish(vec![update("user:1")], "t");
            assert_eq!(h.take(&fast).unwrap().len(), 1);
        }
        assert_eq!(h.take(&slow), None, "dropped on the third message");
        assert!(h.listens("user:1"));
        assert!(!h.listens("user:2"));
    }

    #[tokio::test(start_paused = true)]
    async fn clients_and_subscriptions_are_bounded() {
        let h = hub(2);
        let now = Instant::now();
        let a = h.handshake(now).unwrap();
        h.handshake(now).unwrap();
        assert_eq!(h.handshake(now), Err(HubError::Full("too many clients")));
        h.subscribe(&a, "/x1").unwrap();
        h.subscribe(&a, "/x2").unwrap();
        h.subscribe(&a, "/x2").unwrap();
        assert!(matches!(h.subscribe(&a, "/x3"), Err(HubError::Full(_))));
        h.unsubscribe(&a, "/x2").unwrap();
        h.subscribe(&a, "/x3").unwrap();
        assert_eq!(h.subscribe("nobody", "/x1"), Err(HubError::UnknownClient));
        assert_eq!(h.unsubscribe("nobody", "/x1"), Err(HubError::UnknownClient));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_clients_are_swept_unless_a_connect_is_held_and_few_connects_wait() {
        let h = hub(2);
        let t0 = Instant::now();
        let (idle, held) = (h.handshake(t0).unwrap(), h.handshake(t0).unwrap());
        h.subscribe(&idle, "/x").unwrap();
        for n in 1..=MAX_HELD + 1 {
            assert_eq!(
                h.hold(&held).unwrap().1,
                n <= MAX_HELD,
                "connect {n} may wait"
            );
        }
        for _ in 1..=MAX_HELD {
            h.release(&held, t0);
        }
        let later = t0 + Duration::from_secs(61);
        assert_eq!(h.sweep(later), 1);
        assert!(!h.touch(&idle, later));
        assert!(!h.listens("x"));
        h.release(&held, later);
        assert_eq!(h.sweep(later + Duration::from_secs(59)), 0);
        assert_eq!(h.sweep(later + Duration::from_secs(60)), 1);
        assert_eq!(h.client_count(), 0);
    }
}
