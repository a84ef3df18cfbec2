//! Scoped JWTs: HS256 with the API secret, claims `resource`, `action`, `feed_id` and `exp`,
//! never `iat` (Stream refuses an `iat` ahead of its own clock).
//!
//! [`TokenCache`] keeps one token per scope, so the request path costs one map lookup: a token
//! has no `iat`, so the same scope and `exp` give the same token anyway.

use http::HeaderValue;
use parking_lot::RwLock;
use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Secret;
use crate::{Action, FeedClaim, Resource, Scope};

/// The claims of a token Stream takes. Field order is the wire order of the official clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `resource` (scope tokens).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    /// `action` (scope tokens).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    /// `feed_id` (scope tokens): `sluguser_id` or `*`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub feed_id: Option<String>,
    /// `user_id` (user tokens).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    /// `exp`, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exp: Option<u64>,
}

impl Claims {
    /// The claims of a scope token. Stream's analytics and personalization services read a
    /// `user_id` claim, and the current clients send `*` there: analytics tokens carry it
    /// instead of `feed_id` (stream-js `getAnalyticsToken`, stream-go2 `analyticsAuth`),
    /// personalization tokens beside it (stream-python, stream-go2, stream-js).
    pub fn for_scope(scope: &Scope, exp: Option<u64>) -> Self {
        let service_user = matches!(
            scope.resource,
            Resource::Analytics | Resource::Personalization
        );
        Self {
            resource: Some(scope.resource.as_str().to_owned()),
            action: Some(scope.action.as_str().to_owned()),
            feed_id: (scope.resource != Resource::Analytics)
                .then(|| scope.feed.as_str().to_owned()),
            user_id: service_user.then(|| "*".to_owned()),
            exp,
        }
    }

    /// The scope these claims grant, when they are a scope token this gateway understands.
    pub fn scope(&self) -> Option<Scope> {
        Some(Scope {
            resource: Resource::parse(self.resource.as_deref()?)?,
            action: Action::parse(self.action.as_deref()?)?,
            feed: FeedClaim::parse(self.feed_id.as_deref()?),
        })
    }
}

/// Signs `claims` with HS256 and the secret. The configuration never holds an empty secret
/// (refused at start-up, kept out on reload), the one key jsonwebtoken refuses.
pub fn encode(claims: &Claims, secret: &Secret) -> String {
    let key = EncodingKey::from_secret(secret.expose().as_bytes())
        .expect("the API secret is never empty");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .expect("HS256 over plain claims cannot fail")
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not three base64 segments, or not JSON.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not match the secret.
    #[error("signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// Not HS256.
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
}

/// Verifies an HS256 token with the secret and returns its claims; `exp`, when present, must be
/// after `now` (unix seconds). Tokens without `exp` are valid, as Stream takes them.
pub fn verify(token: &str, secret: &Secret, now: u64) -> Result<Claims, VerifyError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false; // checked below against the caller's clock
    v.leeway = 0;
    // An empty secret signs nothing Stream takes.
    let key = DecodingKey::from_secret(secret.expose().as_bytes())
        .map_err(|_| VerifyError::BadSignature)?;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => VerifyError::BadSignature,
            K::InvalidAlgorithm => VerifyError::WrongAlgorithm,
            _ => VerifyError::Malformed,
        }
    })?;
    match data.claims.exp {
        Some(exp) if exp <= now => Err(VerifyError::Expired),
        _ => Ok(data.claims),
    }
}

/// Most scopes held at once; past it the cache is emptied (feed ids are unbounded, memory is
/// not, and re-minting is cheap).
pub const CACHE_CAPACITY: usize = 65_536;
/// Most bytes the cached tokens may take, as [`entry_bytes`] counts them; past it the cache is
/// emptied. Long feed ids make tokens of over 1 KB: the entry count alone let the cache grow
/// to ~85 MB. Counted in `Config::memory_bound_bytes`.
pub const CACHE_BYTES: usize = 8 << 20;
/// What an entry costs beyond its token and feed id: the map's slot, the `Scope`, the
/// allocations' headers (measured: 65,536 entries of 1.3 KB tokens took ~85 MB of RSS).
const ENTRY_OVERHEAD_BYTES: usize = 160;

/// The bytes one cached token is counted for.
pub fn entry_bytes(scope: &Scope, token: &HeaderValue) -> usize {
    token.len() + scope.feed.as_str().len() + ENTRY_OVERHEAD_BYTES
}

/// A cached token, ready as a sensitive `Authorization` value, and its `exp`.
type Cached = (HeaderValue, Option<u64>);

/// One token per scope, reused until a quarter of its lifetime is left.
#[derive(Debug)]
pub struct TokenCache {
    secret: Secret,
    ttl_s: u64,
    map: RwLock<Entries>,
    /// The `/api/v2/` server token, minted once per secret.
    server: std::sync::OnceLock<HeaderValue>,
}

/// The cached tokens and the bytes they are counted for.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Scope, Cached>,
    bytes: usize,
}

impl TokenCache {
    /// A cache minting with `secret`; `ttl_s` 0 mints tokens without `exp`.
    pub fn new(secret: Secret, ttl_s: u64) -> Self {
        Self {
            secret,
            ttl_s,
            map: RwLock::new(Entries::default()),
            server: std::sync::OnceLock::new(),
        }
    }

    /// The server token of Stream's `/api/v2/` family, claims exactly `{"server": true}` (as
    /// stream-node and getstream-go mint it: no `iat`, no `exp`), as a sensitive header value.
    /// Its claims never change, so it is minted once for the secret in force.
    pub fn server_token(&self) -> HeaderValue {
        self.server
            .get_or_init(|| {
                let token = jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &serde_json::json!({ "server": true }),
                    &EncodingKey::from_secret(self.secret.expose().as_bytes())
                        .expect("the API secret is never empty"),
                )
                .expect("HS256 over plain claims cannot fail");
                let mut v = HeaderValue::from_str(&token).expect("a JWT is base64url and dots");
                v.set_sensitive(true);
                v
            })
            .clone()
    }

    fn fresh(&self, exp: Option<u64>, now: u64) -> bool {
        match exp {
            None => true,
            Some(exp) => exp.saturating_sub(now) > (self.ttl_s / 4).max(1),
        }
    }

    /// The token for `scope` at `now` (unix seconds), as a sensitive header value (kept out of
    /// logs): the cached one while fresh, else a new one. The lock does not poison: a panic
    /// elsewhere cannot make every later request fail here.
    pub fn get(&self, scope: &Scope, now: u64) -> HeaderValue {
        if let Some((t, exp)) = self.map.read().map.get(scope) {
            if self.fresh(*exp, now) {
                return t.clone();
            }
        }
        let exp = (self.ttl_s > 0).then(|| now + self.ttl_s);
        let mut token =
            HeaderValue::from_str(&encode(&Claims::for_scope(scope, exp), &self.secret))
                .expect("a JWT is base64url and dots");
        token.set_sensitive(true);
        let cost = entry_bytes(scope, &token);
        let mut cache = self.map.write();
        if cache.map.len() >= CACHE_CAPACITY || cache.bytes + cost > CACHE_BYTES {
            *cache = Entries::default();
        }
        if let Some((old, _)) = cache.map.insert(scope.clone(), (token.clone(), exp)) {
            cache.bytes -= entry_bytes(scope, &old);
        }
        cache.bytes += cost;
        token
    }

    /// The secret it mints with.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// How many scopes are cached.
    pub fn len(&self) -> usize {
        self.map.read().map.len()
    }

    /// The bytes the cached tokens are counted for (at most [`CACHE_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.map.read().bytes
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/auth-vectors.json"
        );
        let text = std::fs::read_to_string(p).expect("tests/vectors/auth-vectors.json");
        serde_json::from_str(&text).unwrap()
    }

    fn scope(r: Resource, a: Action, f: &str) -> Scope {
        Scope {
            resource: r,
            action: a,
            feed: FeedClaim::parse(f),
        }
    }

    #[test]
    fn the_server_token_is_exactly_server_true_signed_and_minted_once() {
        use base64::Engine as _;
        let cache = TokenCache::new(Secret::new("s3cr3t"), 3600);
        let t = cache.server_token();
        assert!(t.is_sensitive());
        let text = t.to_str().unwrap();
        let payload = text.split('.').nth(1).unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        assert_eq!(payload, br#"{"server":true}"#, "no iat, no exp");
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        jsonwebtoken::decode::<Value>(text, &DecodingKey::from_secret(b"s3cr3t").unwrap(), &v)
            .unwrap();
        assert!(jsonwebtoken::decode::<Value>(
            text,
            &DecodingKey::from_secret(b"other").unwrap(),
            &v
        )
        .is_err());
        assert_eq!(cache.server_token(), t);
        // A rotation brings a new cache, so a server token under the new secret.
        let keys = crate::auth::Keys::new(Secret::new("s3cr3t"), 3600);
        assert_eq!(keys.load().server_token(), t);
        keys.rotate(Secret::new("n3w"));
        let rotated = keys.load().server_token();
        jsonwebtoken::decode::<Value>(
            rotated.to_str().unwrap(),
            &DecodingKey::from_secret(b"n3w").unwrap(),
            &v,
        )
        .unwrap();
    }

    #[test]
    fn vector_tokens_verify_to_exactly_their_claims() {
        let v = vectors();
        let secret = Secret::new(v["api_secret"].as_str().unwrap());
        for case in v["jwts"].as_array().unwrap() {
            let claims = verify(case["token"].as_str().unwrap(), &secret, 0).unwrap();
            let want: Claims = serde_json::from_value(case["claims"].clone()).unwrap();
            assert_eq!(claims, want);
        }
    }

    #[test]
    fn a_vector_token_signed_with_another_secret_is_refused() {
        let v = vectors();
        let secret = Secret::new(v["api_secret"].as_str().unwrap());
        let t = v["jwt_signed_with_another_secret"].as_str().unwrap();
        assert_eq!(verify(t, &secret, 0), Err(VerifyError::BadSignature));
    }

    #[test]
    fn minted_vector_claims_verify_with_the_secret_and_not_another() {
        let v = vectors();
        let secret = Secret::new(v["api_secret"].as_str().unwrap());
        for case in v["jwts"].as_array().unwrap() {
            let want: Claims = serde_json::from_value(case["claims"].clone()).unwrap();
            let t = encode(&want, &secret);
            assert_eq!(verify(&t, &secret, 0).unwrap(), want);
            assert_eq!(
                verify(&t, &Secret::new("other"), 0),
                Err(VerifyError::BadSignature)
            );
            // The payload segment is the vector's, byte for byte: same claims, same order.
            let ours = t.split('.').nth(1).unwrap();
            let theirs = case["token"].as_str().unwrap().split('.').nth(1).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn analytics_and_personalization_tokens_carry_the_user_id_the_clients_send() {
        let analytics = Claims::for_scope(&scope(Resource::Analytics, Action::All, "*"), None);
        assert_eq!(
            serde_json::to_value(&analytics).unwrap(),
            serde_json::json!({"resource": "analytics", "action": "*", "user_id": "*"})
        );
        let perso = Claims::for_scope(&scope(Resource::Personalization, Action::All, "*"), None);
        assert_eq!(
            serde_json::to_value(&perso).unwrap(),
            serde_json::json!({"resource": "personalization", "action": "*", "feed_id": "*", "user_id": "*"})
        );
        let feed = Claims::for_scope(&scope(Resource::Feed, Action::Read, "user42"), None);
        assert_eq!(feed.user_id, None);
    }

    #[test]
    fn minted_tokens_never_carry_iat() {
        let t = encode(
            &Claims::for_scope(&scope(Resource::Feed, Action::Read, "user42"), Some(5)),
            &Secret::new("s"),
        );
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap();
        let v: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resource":"feed","action":"read","feed_id":"user42","exp":5})
        );
    }

    #[test]
    fn expired_tokens_are_refused_at_and_after_exp() {
        let s = Secret::new("s");
        let t = encode(
            &Claims {
                exp: Some(100),
                ..Claims::default()
            },
            &s,
        );
        assert!(verify(&t, &s, 99).is_ok());
        assert_eq!(verify(&t, &s, 100), Err(VerifyError::Expired));
        assert_eq!(verify("a.b", &s, 0), Err(VerifyError::Malformed));
    }

    #[test]
    fn the_cache_reuses_a_token_until_a_quarter_of_its_life_is_left() {
        let cache = TokenCache::new(Secret::new("s"), 400);
        let sc = scope(Resource::Feed, Action::Read, "user42");
        let first = cache.get(&sc, 1000);
        assert_eq!(cache.get(&sc, 1299), first);
        let renewed = cache.get(&sc, 1301);
        assert_ne!(renewed, first);
        assert!(renewed.is_sensitive(), "kept out of logs");
        let claims = verify(renewed.to_str().unwrap(), &Secret::new("s"), 1301).unwrap();
        assert_eq!(claims.exp, Some(1701));
        assert_eq!(claims.scope(), Some(sc));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_keeps_one_token_per_scope() {
        let cache = TokenCache::new(Secret::new("s"), 0);
        let a = cache.get(&scope(Resource::Feed, Action::Read, "user1"), 0);
        let b = cache.get(&scope(Resource::Feed, Action::Read, "user2"), 0);
        let c = cache.get(&scope(Resource::Feed, Action::Write, "user1"), 0);
        assert!(a != b && a != c && b != c);
        let a = a.to_str().unwrap();
        assert_eq!(verify(a, &Secret::new("s"), u64::MAX).unwrap().exp, None);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn tokens_for_long_feed_ids_stay_within_the_cache_bytes() {
        let cache = TokenCache::new(Secret::new("s"), 3600);
        let long = "x".repeat(120);
        let mut most = 0;
        for i in 0..20_000 {
            let s = scope(Resource::Feed, Action::Read, &format!("user{long}{i}"));
            let token = cache.get(&s, 1_000);
            assert!(token.len() > 250);
            most = most.max(cache.bytes());
            assert!(cache.bytes() <= CACHE_BYTES);
        }
        // The bound is reached and the cache starts over, rather than growing by count alone.
        assert!(most > CACHE_BYTES - 2048, "{most}");
        assert!(cache.len() < 20_000);
        // A re-minted token replaces its entry's bytes rather than adding to them.
        let s = scope(Resource::Feed, Action::Read, "user1");
        cache.get(&s, 1_000);
        let before = cache.bytes();
        cache.get(&s, 1_000 + 3600);
        assert_eq!(cache.bytes(), before);
    }
}
