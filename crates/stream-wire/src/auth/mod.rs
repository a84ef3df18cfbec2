//! Credentials for Stream: scoped JWTs ([`jwt`]) and HTTP Signatures ([`httpsig`]).
//!
//! Everything here is a pure function of its inputs and the clock it is handed, so tests run on
//! fixed times and on the known answers in `crates/stream-wire/tests/vectors/auth-vectors.json` (a copy of the shared vectors).
//! [`Keys`] holds the secret in force, which can rotate while the gateway serves.

pub mod httpsig;
pub mod jwt;

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use jwt::TokenCache;

/// The API secret. It has no `Display` and no `Serialize`, its `Debug` is redacted, and the
/// only way to the bytes is [`Secret::expose`], so it cannot end up in a log line by accident.
/// Cloning shares the bytes (a request takes the secret in force with it).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Arc::from(s.into()))
    }

    /// The secret itself, for signing. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The secret in force and the upstream tokens minted with it, replaced as one when the secret
/// rotates: the new secret starts with an empty cache, and a request that loaded the old pair
/// finishes with it (a token it mints late lands in the old cache, dropped with the old pair,
/// never in the new one).
#[derive(Debug)]
pub struct Keys {
    current: ArcSwap<TokenCache>,
    ttl_s: u64,
    /// The secret last replaced, and when: Stream may still sign webhooks with it for a while
    /// after a rotation. Never used to mint or sign anything.
    previous: parking_lot::Mutex<Option<(Secret, tokio::time::Instant)>>,
}

impl Keys {
    /// `secret` in force; upstream tokens carry `exp` `ttl_s` ahead (0: none).
    pub fn new(secret: Secret, ttl_s: u64) -> Self {
        Self {
            current: ArcSwap::from_pointee(TokenCache::new(secret, ttl_s)),
            ttl_s,
            previous: parking_lot::Mutex::new(None),
        }
    }

    /// The secret in force and its token cache: one atomic load, for the request path. Take
    /// what the request needs from it and drop it; do not hold it across an `await`.
    pub fn load(&self) -> Guard<Arc<TokenCache>> {
        self.current.load()
    }

    /// Puts `secret` in force with an empty token cache, keeping the one it replaces as the
    /// previous secret (see [`Keys::previous_within`]); false (and nothing changes) when it is
    /// the one in force already.
    pub fn rotate(&self, secret: Secret) -> bool {
        if *self.load().secret() == secret {
            return false;
        }
        let old = self
            .current
            .swap(Arc::new(TokenCache::new(secret, self.ttl_s)));
        *self.previous.lock() = Some((old.secret().clone(), tokio::time::Instant::now()));
        true
    }

    /// The secret replaced by the last rotation, if that was at most `grace` ago: for
    /// verifying webhooks Stream signed before it saw the rotation, and for nothing else.
    pub fn previous_within(&self, grace: std::time::Duration) -> Option<Secret> {
        let previous = self.previous.lock();
        let (secret, at) = previous.as_ref()?;
        (at.elapsed() <= grace).then(|| secret.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::{Keys, Secret};
    use crate::{Action, FeedClaim, Resource, Scope};

    #[test]
    fn rotating_empties_the_cache_and_a_loaded_pair_keeps_its_secret() {
        let keys = Keys::new(Secret::new("old"), 600);
        let scope = Scope {
            resource: Resource::Feed,
            action: Action::Read,
            feed: FeedClaim::parse("user42"),
        };
        let old_token = keys.load().get(&scope, 1000);
        let in_flight = arc_swap::Guard::into_inner(keys.load());
        assert!(
            !keys.rotate(Secret::new("old")),
            "the same secret is no change"
        );
        assert_eq!(keys.load().get(&scope, 1000), old_token, "still cached");

        assert!(keys.rotate(Secret::new("new")));
        assert!(
            keys.load().is_empty(),
            "the new secret starts with no token"
        );
        let new_token = keys.load().get(&scope, 1000);
        assert_ne!(new_token, old_token);
        assert!(super::jwt::verify(new_token.to_str().unwrap(), &Secret::new("new"), 0).is_ok());
        // A request that loaded the old pair finishes with it, and what it mints stays there.
        assert_eq!(in_flight.secret().expose(), "old");
        let late = in_flight.get(&scope, 2000);
        assert!(super::jwt::verify(late.to_str().unwrap(), &Secret::new("old"), 0).is_ok());
        assert_eq!(keys.load().len(), 1);
        assert_eq!(keys.load().get(&scope, 1000), new_token);
    }

    #[tokio::test(start_paused = true)]
    async fn the_previous_secret_is_kept_for_its_grace_only() {
        use std::time::Duration;
        let keys = Keys::new(Secret::new("old"), 600);
        let grace = Duration::from_secs(300);
        assert_eq!(keys.previous_within(grace), None, "no rotation yet");
        assert!(keys.rotate(Secret::new("new")));
        assert_eq!(keys.previous_within(grace), Some(Secret::new("old")));
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(keys.previous_within(grace), Some(Secret::new("old")));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(keys.previous_within(grace), None, "grace over");
        assert!(keys.rotate(Secret::new("newer")));
        assert_eq!(keys.previous_within(grace), Some(Secret::new("new")));
        assert_eq!(keys.load().secret().expose(), "newer");
    }

    #[test]
    fn a_secret_is_redacted_in_debug_output() {
        let s = Secret::new("hunter2-very-secret");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
