//! The memory of answered webhooks: a webhook id answered 2xx within `webhooks.dedupe_window_s`
//! is answered again from here (status, content type and body) without forwarding, and a
//! duplicate that arrives while the first is in flight waits for the first one's answer.
//!
//! Per replica and bounded: at most `webhooks.dedupe_max_entries` answers are kept, the oldest
//! dropped first, each at most [`MAX_KEPT_BODY_BYTES`] (a larger answer is not kept, so its
//! retry is forwarded again); entries in flight are bounded by the webhooks in flight. The key is
//! the route, the webhook id and the signature (so the body), so a captured id sent with
//! another body is not answered with this one's answer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

/// The largest answer body kept: an event's answer is a few bytes, a synchronous hook's a
/// message; this keeps the memory at most `dedupe_max_entries` x 64 KiB.
pub(crate) const MAX_KEPT_BODY_BYTES: usize = 64 << 10;

/// The target's answer, as it is passed back to Stream and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// What identifies one webhook: route, id and signature.
pub(crate) type Key = (Arc<str>, String, [u8; 32]);

type Shared = Option<Arc<Stored>>;

enum Entry {
    /// Being forwarded; the answer is sent on this channel when it comes.
    Pending(watch::Receiver<Shared>),
    /// Answered 2xx at this instant.
    Done(Arc<Stored>, Instant),
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// Answered keys by the time they were answered, oldest first.
    order: VecDeque<(Key, Instant)>,
}

/// See the module's documentation.
pub(crate) struct Dedupe {
    window: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe")
            .field("window", &self.window)
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

/// What to do with a webhook.
pub(crate) enum Claim {
    /// Answered already: answer this.
    Replay(Arc<Stored>),
    /// The first in flight: forward it, then [`Leader::finish`].
    Lead(Leader),
    /// Another is in flight: wait for its answer with [`Follower::wait`].
    Follow(Follower),
}

/// The request that forwards a webhook. Dropped without [`Leader::finish`] (cancelled), it
/// frees the key, so a waiting duplicate forwards instead.
pub(crate) struct Leader {
    dedupe: Arc<Dedupe>,
    key: Option<Key>,
    tx: watch::Sender<Shared>,
}

/// A duplicate waiting for the leader's answer.
pub(crate) struct Follower(watch::Receiver<Shared>);

impl Dedupe {
    /// A memory of `max_entries` answers for `window` (either 0: nothing is remembered, but
    /// concurrent duplicates still wait for the first).
    pub(crate) fn new(window: Duration, max_entries: usize) -> Self {
        Self {
            window,
            max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Answers kept now (in flight not counted).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().order.len()
    }

    /// Whether no answer is kept.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims `key`: a kept answer, the lead, or a place behind the one in flight.
    pub(crate) fn claim(self: &Arc<Self>, key: Key) -> Claim {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        self.expire(&mut inner, now);
        match inner.map.get(&key) {
            Some(Entry::Done(stored, _)) => return Claim::Replay(stored.clone()),
            Some(Entry::Pending(rx)) => return Claim::Follow(Follower(rx.clone())),
            None => {}
        }
        let (tx, rx) = watch::channel(None);
        inner.map.insert(key.clone(), Entry::Pending(rx));
        Claim::Lead(Leader {
            dedupe: self.clone(),
            key: Some(key),
            tx,
        })
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((_, at)) = inner.order.front() {
            if now.duration_since(*at) < self.window && inner.order.len() <= self.max_entries {
                break;
            }
            let (key, at) = inner.order.pop_front().expect("front exists");
            // Only the entry this queue slot stands for (a key answered again has a newer one).
            if matches!(inner.map.get(&key), Some(Entry::Done(_, t)) if *t == at) {
                inner.map.remove(&key);
            }
        }
    }

    fn settle(&self, key: Key, answer: &Arc<Stored>) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let keep = answer.status.is_success()
            && answer.body.len() <= MAX_KEPT_BODY_BYTES
            && self.max_entries > 0
            && !self.window.is_zero();
        if keep {
            inner.order.push_back((key.clone(), now));
            inner.map.insert(key, Entry::Done(answer.clone(), now));
            self.expire(&mut inner, now);
        } else {
            inner.map.remove(&key);
        }
    }
}

impl Leader {
    /// Keeps `answer` when it is 2xx, and hands it to every duplicate waiting.
    pub(crate) fn finish(mut self, answer: Stored) -> Arc<Stored> {
        let answer = Arc::new(answer);
        if let Some(key) = self.key.take() {
            self.dedupe.settle(key, &answer);
        }
        self.tx.send_replace(Some(answer.clone()));
        answer
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut inner = self.dedupe.inner.lock();
            if matches!(inner.map.get(&key), Some(Entry::Pending(_))) {
                inner.map.remove(&key);
            }
        }
    }
}

impl Follower {
    /// The leader's answer, or none when it was cancelled before answering.
    pub(crate) async fn wait(mut self) -> Option<Arc<Stored>> {
        let got = self.0.wait_for(Option::is_some).await.ok()?;
        got.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Key {
        (Arc::from("chat"), id.to_owned(), [7; 32])
    }

    fn answer(status: u16, body: &'static str) -> Stored {
        Stored {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn lead(d: &Arc<Dedupe>, id: &str) -> Leader {
        match d.claim(key(id)) {
            Claim::Lead(l) => l,
            _ => panic!("expected the lead for {id}"),
        }
    }

    fn replayed(d: &Arc<Dedupe>, id: &str) -> Option<Arc<Stored>> {
        match d.claim(key(id)) {
            Claim::Replay(s) => Some(s),
            Claim::Lead(_) => None,
            Claim::Follow(_) => panic!("nothing is in flight"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_2xx_answer_is_replayed_within_the_window_only() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 10));
        lead(&d, "a").finish(answer(200, "ok"));
        assert_eq!(replayed(&d, "a").unwrap().body, "ok");
        tokio::time::advance(Duration::from_secs(599)).await;
        assert!(replayed(&d, "a").is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(replayed(&d, "a").is_none(), "window over");
        assert_eq!(d.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_answer_is_not_kept_so_the_retry_is_forwarded() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 10));
        lead(&d, "a").finish(answer(500, "no"));
        assert!(replayed(&d, "a").is_none());
        let other = (Arc::from("feeds"), "a".to_owned(), [7; 32]);
        lead(&d, "b").finish(answer(204, ""));
        assert!(matches!(d.claim(other), Claim::Lead(_)), "another route");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_over_64_kib_is_not_kept() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 10));
        let big = Stored {
            status: StatusCode::OK,
            content_type: None,
            body: Bytes::from(vec![b'x'; MAX_KEPT_BODY_BYTES + 1]),
        };
        lead(&d, "a").finish(big);
        assert!(replayed(&d, "a").is_none());
        let fits = Stored {
            status: StatusCode::OK,
            content_type: None,
            body: Bytes::from(vec![b'x'; MAX_KEPT_BODY_BYTES]),
        };
        lead(&d, "b").finish(fits);
        assert!(replayed(&d, "b").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_answer_goes_first_past_the_bound() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 2));
        for id in ["a", "b", "c"] {
            lead(&d, id).finish(answer(200, "ok"));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(d.len(), 2);
        assert!(replayed(&d, "b").is_some() && replayed(&d, "c").is_some());
        assert!(replayed(&d, "a").is_none(), "the oldest went");
        let off = Arc::new(Dedupe::new(Duration::from_secs(600), 0));
        lead(&off, "a").finish(answer(200, "ok"));
        assert!(off.is_empty() && replayed(&off, "a").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_in_flight_waits_for_the_first_answer() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 10));
        let leader = lead(&d, "a");
        let Claim::Follow(f) = d.claim(key("a")) else {
            panic!("in flight")
        };
        let waiting = tokio::spawn(f.wait());
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        leader.finish(answer(201, "made"));
        assert_eq!(waiting.await.unwrap().unwrap().body, "made");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_frees_the_key_and_its_waiters() {
        let d = Arc::new(Dedupe::new(Duration::from_secs(600), 10));
        let leader = lead(&d, "a");
        let Claim::Follow(f) = d.claim(key("a")) else {
            panic!("in flight")
        };
        drop(leader);
        assert_eq!(f.wait().await, None);
        assert!(matches!(d.claim(key("a")), Claim::Lead(_)));
    }
}
