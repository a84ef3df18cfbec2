//! Frontends' own sign-in: tokens from the app's OpenID Connect provider (`[tokens.oidc]`),
//! verified against the keys it publishes (JWKS), so `/tokens` knows whose they are.
//!
//! What is trusted and what is not: the configuration names the issuer, the audience, the
//! algorithms and where the keys are; the token names only its `kid`. The algorithm is pinned
//! by the key's type (an RSA key verifies only RS*/PS*, an EC key its curve's ES*, an OKP key
//! EdDSA), never by the token; keys are never taken from the token (`jwk`, `jku`, `x5u`, `x5c`
//! are ignored) and a `crit` header is refused.
//!
//! [`Provider`] holds the keys: fetched at start-up (retried with backoff until they come),
//! kept for the IdP's `Cache-Control: max-age` (clamped to 5 min..24 h), refetched when a token
//! names an unknown `kid` (at most once per `refetch_interval_s`, one fetch for any number of
//! waiting requests). A failed fetch keeps the last good keys. [`Oidc`] is the one in force,
//! replaced when a reload changes `[tokens.oidc]`.

pub mod bearer;
pub(crate) mod settings;

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::time::Instant;

pub use settings::{OidcFile, OidcSettings, OneOrMany};

use crate::error::ApiError;
use crate::net::Dns;
use crate::recorder::Metrics;
use stream_wire::UserId;

/// Longest a fetch of the discovery document or of the JWKS may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or JWKS taken (real ones are a few KB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Keys are kept at least this long, whatever `max-age` says...
pub const MIN_KEEP: Duration = Duration::from_secs(300);
/// ...at most this long...
pub const MAX_KEEP: Duration = Duration::from_secs(86_400);
/// ...and this long when the IdP sends no `max-age`.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(3600);
/// First wait after a failed fetch; doubled up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two fetches while the IdP fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a token is refused: a fixed reason (the metric label), the detail sent back (never the
/// token), and what the logs may say about the token (`iss`, `kid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One of a fixed set: `missing`, `malformed`, `unsigned`, `crit`, `algorithm`,
    /// `unknown_kid`, `bad_signature`, `expired`, `not_yet_valid`, `issuer`, `audience`,
    /// `no_exp`, `user_claim`, `user_id`, `keys_not_loaded`.
    pub reason: &'static str,
    /// The refusal's detail.
    pub detail: String,
    /// The token's `iss`, as it claims (unverified, shortened), for logs.
    pub iss: Option<String>,
    /// The token's `kid` (shortened), for logs.
    pub kid: Option<String>,
}

impl Refusal {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            iss: None,
            kid: None,
        }
    }

    /// The answer: 503 until keys exist, 403 for a user id the rules refuse, else 401.
    pub fn to_api_error(&self) -> ApiError {
        let detail = format!("IdP token refused: {}", self.detail);
        match self.reason {
            "keys_not_loaded" => ApiError::Overloaded(self.detail.clone()),
            "user_id" => ApiError::NotAllowed(detail),
            _ => ApiError::Unauthenticated(detail),
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The Stream user id (from `user_claim`).
    pub user_id: String,
    /// The token's `exp`: no Stream token minted for it outlives it.
    pub exp: u64,
    /// The token's `iss`, for logs.
    pub iss: String,
    /// The `kid` of the key that verified it, for logs.
    pub kid: Option<String>,
}

/// One verifying key of the JWKS and the algorithms it may verify.
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The keys of one fetch.
struct KeySet {
    keys: Vec<Key>,
}

/// The verifier in force: none without `[tokens.oidc]`.
pub struct Oidc {
    current: ArcSwapOption<Provider>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field(
                "current",
                &self.current.load().as_ref().map(|p| &p.settings),
            )
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The verifier for `settings`; its keys are fetched in the background from now on (when
    /// called inside a runtime).
    pub fn new(settings: Option<&OidcSettings>, metrics: Arc<Metrics>) -> Self {
        let oidc = Self {
            current: ArcSwapOption::empty(),
            metrics,
        };
        oidc.configure(settings);
        oidc
    }

    /// Puts `settings` in force when they differ from the running ones (a reload): a new
    /// provider, whose keys are fetched again.
    pub fn configure(&self, settings: Option<&OidcSettings>) {
        let running = self.current.load();
        if running.as_ref().map(|p| &p.settings) == settings {
            return;
        }
        // The new provider holds no keys until its first fetch.
        self.metrics.gauge("gateway_oidc_keys", &[]).set(0.0);
        let next = settings.map(|s| Provider::start(s.clone(), self.metrics.clone()));
        self.current.store(next);
    }

    /// The provider in force.
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.current.load_full()
    }
}

/// One configured IdP: its settings, its keys, and the fetching of them.
pub struct Provider {
    settings: OidcSettings,
    fetcher: Option<Fetcher>,
    keys: ArcSwapOption<KeySet>,
    /// The JWKS URL found by discovery, until a fetch from it fails.
    discovered: parking_lot::Mutex<Option<String>>,
    /// One fetch at a time; requests that need one wait for the running one.
    flight: tokio::sync::Mutex<()>,
    /// When the last fetch began.
    last_attempt: parking_lot::Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider for `settings`, with its keys fetched in the background (inside a runtime).
    pub fn start(settings: OidcSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let fetcher = match Fetcher::new() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client for the IdP's keys");
                None
            }
        };
        let p = Arc::new(Self {
            settings,
            fetcher,
            keys: ArcSwapOption::empty(),
            discovered: parking_lot::Mutex::new(None),
            flight: tokio::sync::Mutex::new(()),
            last_attempt: parking_lot::Mutex::new(None),
            metrics,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(maintain(Arc::downgrade(&p)));
        }
        p
    }

    /// The settings it verifies by.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// How many keys are held (0 until the first fetch succeeds).
    pub fn key_count(&self) -> usize {
        self.keys.load().as_ref().map_or(0, |k| k.keys.len())
    }

    /// Fetches the keys now (one fetch at a time), keeping the old ones on failure; returns
    /// how long to keep the new ones.
    pub async fn refresh(&self) -> Result<Duration, String> {
        let _flight = self.flight.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<Duration, String> {
        *self.last_attempt.lock() = Some(Instant::now());
        let got = self.fetch().await;
        let outcome = if got.is_ok() { "ok" } else { "error" };
        self.metrics
            .counter("gateway_oidc_fetch_total", &[("outcome", outcome)])
            .increment(1);
        match got {
            Ok((keys, keep)) => {
                let n = keys.len();
                self.keys.store(Some(Arc::new(KeySet { keys })));
                self.metrics.gauge("gateway_oidc_keys", &[]).set(n as f64);
                tracing::info!(
                    issuer = %self.settings.issuer,
                    keys = n,
                    keep_s = keep.as_secs(),
                    "IdP keys fetched"
                );
                Ok(keep)
            }
            Err(e) => {
                tracing::warn!(
                    issuer = %self.settings.issuer,
                    error = %e,
                    keys_kept = self.key_count(),
                    "IdP keys could not be fetched; keeping the last good ones"
                );
                Err(e)
            }
        }
    }

    /// The JWKS URL (configured, or discovered) and the keys in it.
    async fn fetch(&self) -> Result<(Vec<Key>, Duration), String> {
        let fetcher = self.fetcher.as_ref().ok_or("no HTTP client")?;
        let url = match &self.settings.jwks_url {
            Some(u) => u.clone(),
            None => {
                let known = self.discovered.lock().clone();
                match known {
                    Some(u) => u,
                    None => {
                        let u = self.discover(fetcher).await?;
                        *self.discovered.lock() = Some(u.clone());
                        u
                    }
                }
            }
        };
        let got = fetcher.get(&url).await.and_then(|(body, max_age)| {
            let keys = parse_jwks(&body, &self.settings.algorithms)?;
            Ok((keys, keep_for(max_age)))
        });
        if got.is_err() {
            // The discovery document may have moved the keys: read it again next time.
            *self.discovered.lock() = None;
        }
        got
    }

    async fn discover(&self, fetcher: &Fetcher) -> Result<String, String> {
        let url = self.settings.discovery_url();
        let (body, _) = fetcher.get(&url).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{url}: the discovery document is not JSON"))?;
        // OpenID Connect Discovery 4.3: the document's issuer is the configured one.
        if doc.get("issuer").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(format!(
                "{url}: the discovery document's issuer is not tokens.oidc.issuer"
            ));
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{url}: the discovery document has no jwks_uri"))?;
        settings::https_or_loopback(jwks).map_err(|e| format!("{url}: jwks_uri {e}"))?;
        Ok(jwks.to_owned())
    }

    /// After an unknown `kid`: fetch again, unless one ran within `refetch_interval_s` or
    /// another request's fetch changed the keys while this one waited.
    async fn refetch_for_unknown_kid(&self, seen: &Arc<KeySet>) {
        let _flight = self.flight.lock().await;
        let now_held = self.keys.load_full();
        if !now_held.as_ref().is_some_and(|k| Arc::ptr_eq(k, seen)) {
            return;
        }
        let recent = self
            .last_attempt
            .lock()
            .is_some_and(|t| t.elapsed() < self.settings.refetch_interval);
        if !recent {
            let _ = self.fetch_locked().await;
        }
    }

    /// Verifies an IdP token at `now` (unix seconds) and returns whose it is.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Identity, Refusal> {
        let (header, claims) = unverified_parts(token)?;
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .map(|k| shorten(k).to_owned());
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .map(|i| shorten(i).to_owned());
        self.verify_parts(token, &header, kid.as_deref(), now)
            .await
            .map_err(|mut r| {
                r.iss.clone_from(&iss);
                r.kid.clone_from(&kid);
                r
            })
    }

    async fn verify_parts(
        &self,
        token: &str,
        header: &Map<String, Value>,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Identity, Refusal> {
        let alg = header_algorithm(header, &self.settings.algorithms)?;
        let Some(mut held) = self.keys.load_full() else {
            return Err(Refusal::new(
                "keys_not_loaded",
                "the identity provider's keys are not loaded yet (tokens.oidc); retry later",
            ));
        };
        // A key without a `kid` may verify any token (the `kid` is a hint); a `kid` no key
        // has, when every key has one, may be a new key: refetch (rate-limited) and look again.
        let known = |set: &KeySet| {
            kid.is_none_or(|kid| {
                set.keys
                    .iter()
                    .any(|k| k.kid.is_none() || k.kid.as_deref() == Some(kid))
            })
        };
        if !known(&held) {
            self.refetch_for_unknown_kid(&held).await;
            if let Some(k) = self.keys.load_full() {
                held = k;
            }
            if !known(&held) {
                return Err(Refusal::new(
                    "unknown_kid",
                    "the token's kid is not among the identity provider's keys",
                ));
            }
        }
        let candidates: Vec<&Key> = held
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        let fitting: Vec<&Key> = candidates
            .iter()
            .copied()
            .filter(|k| k.algorithms.contains(&alg))
            .collect();
        if fitting.is_empty() {
            return Err(Refusal::new(
                "algorithm",
                format!("the token's alg {alg:?} does not match the type of the IdP's key"),
            ));
        }
        let validation = self.validation(alg);
        let mut last = Refusal::new("bad_signature", "the signature does not verify");
        for key in fitting {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.identity(&data.claims, key, now),
                Err(e) => {
                    last = refusal_of(e.kind());
                    if last.reason != "bad_signature" {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let s = &self.settings;
        let mut v = Validation::new(alg);
        v.leeway = s.leeway_s;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&s.issuer]);
        v.set_audience(&s.audience);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    fn identity(
        &self,
        claims: &Map<String, Value>,
        key: &Key,
        now: u64,
    ) -> Result<Identity, Refusal> {
        let s = &self.settings;
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_f64()
                .ok_or_else(|| Refusal::new("malformed", "the iat claim is not a number"))?;
            if iat > (now + s.leeway_s) as f64 {
                return Err(Refusal::new(
                    "not_yet_valid",
                    "the token is issued in the future (iat)",
                ));
            }
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| Refusal::new("no_exp", "the token has no exp"))?;
        let user = claims.get(&s.user_claim).ok_or_else(|| {
            Refusal::new(
                "user_claim",
                format!(
                    "the token has no {} claim (tokens.oidc.user_claim)",
                    s.user_claim
                ),
            )
        })?;
        let user = user
            .as_str()
            .filter(|u| UserId::parse(u).is_ok())
            .ok_or_else(|| {
                Refusal::new(
                    "user_id",
                    format!(
                        "the token's {} claim is not a Stream user id ([A-Za-z0-9_-])",
                        s.user_claim
                    ),
                )
            })?;
        Ok(Identity {
            user_id: user.to_owned(),
            exp: exp as u64,
            iss: s.issuer.clone(),
            kid: key.kid.clone(),
        })
    }
}

/// Keeps `weak`'s keys fresh: fetch, wait for `max-age` (or the backoff after a failure),
/// again; ends when the provider is replaced.
async fn maintain(weak: Weak<Provider>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Some(p) = weak.upgrade() else { return };
        let wait = match p.refresh().await {
            Ok(keep) => {
                backoff = FIRST_BACKOFF;
                keep
            }
            Err(_) => {
                let w = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                w
            }
        };
        drop(p);
        tokio::time::sleep(wait).await;
    }
}

/// How long to keep keys the IdP sent with `max_age`.
pub fn keep_for(max_age: Option<Duration>) -> Duration {
    max_age.map_or(DEFAULT_KEEP, |m| m.clamp(MIN_KEEP, MAX_KEEP))
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as 0 (then clamped).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for d in cache_control.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            found = v.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    found
}

/// A JSON object.
type Json = Map<String, Value>;

/// The token's header and claims, decoded but not verified (for the `kid`, the `alg`, and
/// what the logs may say).
fn unverified_parts(token: &str) -> Result<(Json, Json), Refusal> {
    let malformed = || {
        Refusal::new(
            "malformed",
            "the token is not a signed JWT (header.claims.signature)",
        )
    };
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let decode = |s: &str| -> Option<Map<String, Value>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    Ok((
        decode(h).ok_or_else(malformed)?,
        decode(c).ok_or_else(malformed)?,
    ))
}

/// The header's `alg`, when the settings take it; `crit` refused.
fn header_algorithm(
    header: &Map<String, Value>,
    allowed: &[Algorithm],
) -> Result<Algorithm, Refusal> {
    let Some(name) = header.get("alg").and_then(Value::as_str) else {
        return Err(Refusal::new("malformed", "the token's header has no alg"));
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(Refusal::new(
            "unsigned",
            "the token is not signed (alg none)",
        ));
    }
    if header
        .get("crit")
        .is_some_and(|c| c.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(Refusal::new(
            "crit",
            "the token's header has a crit extension the gateway does not understand",
        ));
    }
    let alg = name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a));
    alg.ok_or_else(|| {
        Refusal::new(
            "algorithm",
            format!(
                "the token's alg {} is not in tokens.oidc.algorithms",
                shorten(name)
            ),
        )
    })
}

fn refusal_of(kind: &jsonwebtoken::errors::ErrorKind) -> Refusal {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => Refusal::new("bad_signature", "the signature does not verify"),
        K::ExpiredSignature => Refusal::new("expired", "the token has expired (exp)"),
        K::ImmatureSignature => Refusal::new("not_yet_valid", "the token is not valid yet (nbf)"),
        K::InvalidIssuer => Refusal::new("issuer", "the token's iss is not tokens.oidc.issuer"),
        K::InvalidAudience => {
            Refusal::new("audience", "the token's aud is not in tokens.oidc.audience")
        }
        K::MissingRequiredClaim(c) if c == "exp" => Refusal::new("no_exp", "the token has no exp"),
        K::MissingRequiredClaim(c) if c == "iss" => Refusal::new("issuer", "the token has no iss"),
        K::MissingRequiredClaim(c) if c == "aud" => {
            Refusal::new("audience", "the token has no aud")
        }
        K::InvalidAlgorithm => Refusal::new(
            "algorithm",
            "the token's alg does not match the type of the IdP's key",
        ),
        K::InvalidClaimFormat(c) => Refusal::new(
            "malformed",
            format!("the token's {} claim has the wrong type", shorten(c)),
        ),
        _ => Refusal::new("malformed", "the token could not be decoded"),
    }
}

/// At most 64 characters of what a token says, for logs and details.
fn shorten(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The algorithms a JWK may verify: by its type and curve, within `allowed`, and within its
/// own `alg` when it names one. None for `oct` keys, encryption keys and unknown types.
fn algorithms_of(jwk: &Jwk, allowed: &[Algorithm]) -> Vec<Algorithm> {
    use Algorithm as A;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Vec::new();
    }
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            &[A::RS256, A::RS384, A::RS512, A::PS256, A::PS384, A::PS512]
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[A::ES256],
            EllipticCurve::P384 => &[A::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[A::EdDSA],
        _ => &[],
    };
    let named: Option<Algorithm> = jwk
        .common
        .key_algorithm
        .map(|a| format!("{a:?}").parse().unwrap_or(A::HS256));
    by_type
        .iter()
        .copied()
        .filter(|a| allowed.contains(a) && named.is_none_or(|n| n == *a))
        .collect()
}

/// The usable keys of a JWKS document; keys that cannot be used are skipped, and a set with
/// none is an error (so the last good keys stay).
fn parse_jwks(body: &[u8], allowed: &[Algorithm]) -> Result<Vec<Key>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|_| "the JWKS is not a JSON key set")?;
    let keys: Vec<Key> = set
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| {
            let algorithms = algorithms_of(&jwk, allowed);
            if algorithms.is_empty() {
                return None;
            }
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key: DecodingKey::from_jwk(&jwk).ok()?,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err("the JWKS holds no key usable with tokens.oidc.algorithms".into());
    }
    Ok(keys)
}

/// GETs small JSON documents from the IdP: a timeout, a size cap, no redirects, no proxy
/// from the environment.
#[derive(Clone)]
struct Fetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector<Dns>>, Empty<Bytes>>,
}

impl Fetcher {
    fn new() -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| e.to_string())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(crate::net::http_connector(FETCH_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }

    /// The body of `url` and its `max-age`.
    async fn get(&self, url: &str) -> Result<(Bytes, Option<Duration>), String> {
        let req = http::Request::get(url)
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|_| format!("{url} is not a URL"))?;
        let fetch = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("{url} answered {}", resp.status().as_u16()));
            }
            let too_large =
                || format!("{url}: the answer is larger than {MAX_DOCUMENT_BYTES} bytes");
            let declared = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
                return Err(too_large());
            }
            let max_age = resp
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|_| too_large())?
                .to_bytes();
            Ok((body, max_age))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("{url} did not answer within {} s", FETCH_TIMEOUT.as_secs()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_clamped_to_five_minutes_through_a_day() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(keep_for(None), DEFAULT_KEEP);
        assert_eq!(keep_for(Some(Duration::from_secs(10))), MIN_KEEP);
        assert_eq!(
            keep_for(Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
        assert_eq!(keep_for(Some(Duration::from_secs(999_999))), MAX_KEEP);
    }

    #[test]
    fn a_key_verifies_only_its_types_algorithms_within_the_configured_ones() {
        let jwk = |v: Value| serde_json::from_value::<Jwk>(v).unwrap();
        let rsa = jwk(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        let all = [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ];
        assert_eq!(
            algorithms_of(&rsa, &all),
            [Algorithm::RS256, Algorithm::PS256]
        );
        let rsa_named =
            jwk(serde_json::json!({"kty": "RSA", "alg": "PS256", "n": "AQAB", "e": "AQAB"}));
        assert_eq!(algorithms_of(&rsa_named, &all), [Algorithm::PS256]);
        let ec = jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}));
        assert_eq!(algorithms_of(&ec, &all), [Algorithm::ES256]);
        let ec384 = jwk(serde_json::json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}));
        assert!(algorithms_of(&ec384, &all).is_empty());
        let okp = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"}));
        assert_eq!(algorithms_of(&okp, &all), [Algorithm::EdDSA]);
        let oct = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(algorithms_of(&oct, &[Algorithm::HS256]).is_empty());
        let enc = jwk(serde_json::json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        assert!(algorithms_of(&enc, &all).is_empty());
        let odd =
            jwk(serde_json::json!({"kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}));
        assert!(algorithms_of(&odd, &all).is_empty());
    }

    #[test]
    fn a_jwks_with_no_usable_key_is_an_error() {
        assert!(parse_jwks(
            br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            &[Algorithm::RS256]
        )
        .is_err());
        assert!(parse_jwks(b"[]", &[Algorithm::RS256]).is_err());
    }

    #[test]
    fn the_header_decides_nothing_but_the_algorithm_it_asks_for() {
        let h = |v: Value| v.as_object().unwrap().clone();
        let ok = [Algorithm::RS256];
        let reason = |v: Value| header_algorithm(&h(v), &ok).unwrap_err().reason;
        assert_eq!(reason(serde_json::json!({"alg": "none"})), "unsigned");
        assert_eq!(reason(serde_json::json!({"alg": "HS256"})), "algorithm");
        assert_eq!(reason(serde_json::json!({"typ": "JWT"})), "malformed");
        assert_eq!(
            reason(serde_json::json!({"alg": "RS256", "crit": ["exp"]})),
            "crit"
        );
        assert_eq!(
            header_algorithm(
                &h(serde_json::json!({"alg": "RS256", "jku": "https://x"})),
                &ok
            ),
            Ok(Algorithm::RS256)
        );
    }

    #[test]
    fn every_verification_error_has_its_reason() {
        use jsonwebtoken::errors::ErrorKind as K;
        let reason = |k: K| refusal_of(&k).reason;
        assert_eq!(reason(K::InvalidSignature), "bad_signature");
        assert_eq!(reason(K::ExpiredSignature), "expired");
        assert_eq!(reason(K::ImmatureSignature), "not_yet_valid");
        assert_eq!(reason(K::InvalidIssuer), "issuer");
        assert_eq!(reason(K::InvalidAudience), "audience");
        assert_eq!(reason(K::MissingRequiredClaim("exp".into())), "no_exp");
        assert_eq!(reason(K::MissingRequiredClaim("iss".into())), "issuer");
        assert_eq!(reason(K::MissingRequiredClaim("aud".into())), "audience");
        assert_eq!(reason(K::MissingRequiredClaim("sub".into())), "malformed");
        assert_eq!(reason(K::InvalidAlgorithm), "algorithm");
        assert_eq!(reason(K::InvalidClaimFormat("exp".into())), "malformed");
        assert_eq!(reason(K::InvalidToken), "malformed");
    }

    #[test]
    fn a_token_that_is_not_three_json_segments_is_malformed() {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let ok = format!("{}.{}.sig", b(r#"{"alg":"RS256"}"#), b(r#"{"sub":"1"}"#));
        assert!(unverified_parts(&ok).is_ok());
        for bad in [
            "a.b".to_owned(),
            format!("{ok}.x"),
            format!("{}.{}.sig", b("[]"), b(r#"{"sub":"1"}"#)),
            format!("{}.%%.sig", b(r#"{"alg":"RS256"}"#)),
        ] {
            assert_eq!(
                unverified_parts(&bad).unwrap_err().reason,
                "malformed",
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn without_keys_a_token_is_refused_with_503_and_debug_shows_no_key() {
        let metrics = Arc::new(Metrics::new());
        let settings = OidcSettings::validate(OidcFile {
            issuer: Some("http://127.0.0.1:9/realms/app".into()),
            audience: Some(OneOrMany::One("web".into())),
            ..OidcFile::default()
        })
        .unwrap();
        let oidc = Oidc::new(Some(&settings), metrics);
        let p = oidc.provider().unwrap();
        assert_eq!(p.key_count(), 0);
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b(r#"{"alg":"RS256","kid":"k"}"#),
            b(r#"{"iss":"x"}"#)
        );
        let r = p.verify(&token, 0).await.unwrap_err();
        assert_eq!(
            (r.reason, r.kid.as_deref(), r.iss.as_deref()),
            ("keys_not_loaded", Some("k"), Some("x"))
        );
        assert_eq!(r.to_api_error().parts().0.as_u16(), 503);
        let shown = format!("{oidc:?} {p:?}");
        assert!(shown.contains("127.0.0.1:9"), "{shown}");
        oidc.configure(None);
        assert!(oidc.provider().is_none());
    }

    #[test]
    fn refusals_name_their_status() {
        let s = |r: &str| {
            Refusal::new(Box::leak(r.to_owned().into_boxed_str()), "x")
                .to_api_error()
                .parts()
                .0
                .as_u16()
        };
        assert_eq!(s("keys_not_loaded"), 503);
        assert_eq!(s("user_id"), 403);
        assert_eq!(s("expired"), 401);
        assert_eq!(shorten(&"x".repeat(100)).len(), 64);
    }
}
