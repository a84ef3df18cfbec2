//! `/tokens` with `[tokens.oidc]`: a real identity provider on a loopback port (discovery
//! document and JWKS, RSA, P-256 and Ed25519 keys from tests/api/idp_keys) signs tokens; the
//! gateway verifies them and mints Stream tokens for their user only.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use stream_gateway::config::Config;
use stream_wire::auth::{jwt, Secret};

use crate::helpers::*;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/idp_keys");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}.pem")).unwrap()
}

/// The public JWK of a test key, with its `kid`.
fn jwk(name: &str, kid: &str) -> Value {
    let all: Value =
        serde_json::from_slice(&std::fs::read(format!("{KEYS}/public.json")).unwrap()).unwrap();
    let mut k = all[name].clone();
    k["kid"] = json!(kid);
    k
}

/// The identity provider: what it serves, and how often it was asked.
struct IdpState {
    issuer: String,
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    down: AtomicBool,
    /// Served instead of the real discovery document when set.
    discovery_doc: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    discoveries: AtomicUsize,
}

struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IdpState {
            issuer: format!("{base}/realms/app"),
            jwks: Mutex::new(json!({"keys": [
                jwk("rsa1", "rsa1"), jwk("ec1", "ec1"), jwk("ed1", "ed1"),
                // Never used to verify: a symmetric key, and an encryption key.
                {"kty": "oct", "kid": "oct1", "k": "c2VjcmV0"},
            ]})),
            cache_control: Mutex::new(None),
            down: AtomicBool::new(false),
            discovery_doc: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            discoveries: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route(
                "/realms/app/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/realms/app/certs", get(certs))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Idp { state }
    }

    fn issuer(&self) -> &str {
        &self.state.issuer
    }

    fn jwks_url(&self) -> String {
        format!("{}/certs", self.state.issuer)
    }

    fn publish(&self, keys: Value) {
        *self.state.jwks.lock().unwrap() = keys;
    }

    fn down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    fn fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// A token for `sub`, signed with `key` (`rsa1`, `rsa2`, `ec1`, `ed1`) under `kid`,
    /// valid for 10 minutes, with `extra` claims merged over the usual ones.
    fn token(&self, key: &str, kid: Option<&str>, extra: Value) -> String {
        let mut claims = json!({
            "iss": self.issuer(),
            "aud": "web",
            "sub": "42",
            "exp": now() + 600,
            "iat": now(),
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        sign(key, kid, &claims, |_| {})
    }
}

fn sign(key: &str, kid: Option<&str>, claims: &Value, tweak: impl FnOnce(&mut Header)) -> String {
    let (alg, k) = match key {
        "ec1" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&pem(key)).unwrap(),
        ),
        "ed1" => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&pem(key)).unwrap(),
        ),
        _ => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem(key)).unwrap(),
        ),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    tweak(&mut h);
    jsonwebtoken::encode(&h, claims, &k).unwrap()
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Response {
    s.discoveries.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some(doc) = s.discovery_doc.lock().unwrap().clone() {
        return doc.into_response();
    }
    axum::Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}/certs", s.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
    .into_response()
}

async fn certs(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = s.jwks.lock().unwrap().to_string();
    let mut r = ([("content-type", "application/json")], body).into_response();
    if let Some(cc) = s.cache_control.lock().unwrap().clone() {
        r.headers_mut().insert("cache-control", cc.parse().unwrap());
    }
    r
}

/// A gateway taking `idp`'s tokens for audience `web`, frontends getting user and timeline
/// feeds; `tweak` adds to it.
async fn gateway(idp: &Idp, tweak: impl FnOnce(figment::Figment) -> figment::Figment) -> TestApp {
    let issuer = idp.issuer().to_owned();
    spawn_with(move |f| {
        tweak(
            f.merge(("tokens.oidc.issuer", issuer))
                .merge(("tokens.oidc.audience", "web"))
                .merge(("tokens.feed_groups", ["user", "timeline"])),
        )
    })
    .await
}

async fn keys_loaded(app: &TestApp) {
    for _ in 0..500 {
        if app.metric("gateway_oidc_keys").await > 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the IdP's keys were not loaded");
}

async fn mint(app: &TestApp, token: &str, body: Value) -> Reply {
    let bearer = format!("Bearer {token}");
    app.tokens(body, &[("authorization", bearer.as_str())])
        .await
}

fn user42() -> Value {
    json!({"user_id": "42"})
}

#[tokio::test]
async fn an_rsa_ec_or_ed25519_signed_idp_token_gets_a_stream_token_for_its_user_only() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f).await;
    keys_loaded(&app).await;
    assert_eq!(app.metric("gateway_oidc_keys").await, 3.0, "oct is ignored");
    for key in ["rsa1", "ec1", "ed1"] {
        let t = idp.token(key, Some(key), json!({}));
        let r = mint(&app, &t, user42()).await;
        assert_eq!(r.status, 200, "{key}: {:?}", r.json);
        let claims = jwt::verify(
            r.json["token"].as_str().unwrap(),
            &Secret::new(SECRET),
            now(),
        )
        .unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("42"));
        let r = mint(
            &app,
            &t,
            json!({"feed": "timeline:42", "resource": "feed", "action": "read"}),
        )
        .await;
        assert_eq!(r.status, 200, "{key}: {:?}", r.json);
    }
    // Without a kid, the keys of the token's algorithm are tried.
    let r = mint(&app, &idp.token("ec1", None, json!({})), user42()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // An IdP that publishes keys without kid: any kid may be verified by them.
    let mut kidless = jwk("ed1", "");
    kidless.as_object_mut().unwrap().remove("kid");
    idp.publish(json!({"keys": [kidless]}));
    let url = idp.jwks_url();
    let app2 = gateway(&idp, move |f| f.merge(("tokens.oidc.jwks_url", url))).await;
    keys_loaded(&app2).await;
    let r = mint(&app2, &idp.token("ed1", Some("any"), json!({})), user42()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let r = mint(&app2, &idp.token("ec1", Some("any"), json!({})), user42()).await;
    assert_eq!(r.status, 401, "{:?}", r.json);
    // Another user's ids: 403.
    let t = idp.token("rsa1", Some("rsa1"), json!({}));
    let r = mint(&app, &t, json!({"user_id": "43"})).await;
    assert_eq!((r.status, r.json["code"].as_u64()), (403, Some(17)));
    let r = mint(
        &app,
        &t,
        json!({"feed": "user:43", "resource": "feed", "action": "read"}),
    )
    .await;
    assert_eq!((r.status, r.json["code"].as_u64()), (403, Some(17)));
    assert_eq!(
        app.metric(r#"gateway_tokens_refused_total{reason="policy"}"#)
            .await,
        2.0
    );
    // /readyz never depended on the keys.
    let ready = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_minted_token_never_outlives_the_idp_token() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f).await;
    keys_loaded(&app).await;
    let idp_exp = now() + 120;
    let t = idp.token("rsa1", Some("rsa1"), json!({"exp": idp_exp}));
    let r = mint(&app, &t, user42()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(r.json["expires_at"].as_u64(), Some(idp_exp));
    let claims = jwt::verify(
        r.json["token"].as_str().unwrap(),
        &Secret::new(SECRET),
        now(),
    )
    .unwrap();
    assert_eq!(claims.exp, Some(idp_exp));
    // A shorter policy TTL wins over a longer sign-in.
    let t = idp.token("rsa1", Some("rsa1"), json!({"exp": now() + 7200}));
    let r = mint(&app, &t, json!({"user_id": "42", "expires_in": 60})).await;
    let exp = r.json["expires_at"].as_u64().unwrap();
    assert!((now() + 58..=now() + 60).contains(&exp), "{exp}");
}

fn unsigned(claims: &Value, header: &Value) -> String {
    let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b(header), b(claims))
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // a table: one forged or broken token per row
async fn every_bad_token_is_refused_with_its_reason_and_never_echoed() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f).await;
    keys_loaded(&app).await;
    let claims = json!({"iss": idp.issuer(), "aud": "web", "sub": "42", "exp": now() + 600});
    // The public key as an HMAC secret: the classic algorithm-confusion forgery.
    let public_pem = std::fs::read(format!("{KEYS}/public.json")).unwrap();
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some("rsa1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims,
        &EncodingKey::from_secret(&public_pem).unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "none",
            unsigned(&claims, &json!({"alg": "none", "kid": "rsa1"})),
            "unsigned",
        ),
        ("garbage", "abc.def".into(), "malformed"),
        ("not json", "eyJhbGc.eyJzdWI.c2ln".into(), "malformed"),
        ("hs256 with the public key", hs256, "algorithm"),
        // An EC signature under the RSA key's kid: the key's type decides the algorithm.
        (
            "ec under an rsa kid",
            sign("ec1", Some("rsa1"), &claims, |_| {}),
            "algorithm",
        ),
        (
            "other rsa key",
            sign("rsa2", Some("rsa1"), &claims, |_| {}),
            "bad_signature",
        ),
        (
            // The attacker's own key in the header is ignored.
            "jwk header",
            sign("rsa2", None, &claims, |h| {
                h.jwk = serde_json::from_value(jwk("rsa2", "x")).ok();
                h.jku = Some("http://127.0.0.1:1/evil".into());
            }),
            "bad_signature",
        ),
        (
            "crit",
            sign("rsa1", Some("rsa1"), &claims, |h| {
                h.crit = Some(vec!["b64".into()])
            }),
            "crit",
        ),
        (
            "unknown kid",
            idp.token("rsa1", Some("nope"), json!({})),
            "unknown_kid",
        ),
        (
            "expired",
            idp.token("rsa1", Some("rsa1"), json!({"exp": now() - 100})),
            "expired",
        ),
        (
            "nbf ahead",
            idp.token("rsa1", Some("rsa1"), json!({"nbf": now() + 600})),
            "not_yet_valid",
        ),
        (
            "iat ahead",
            idp.token("rsa1", Some("rsa1"), json!({"iat": now() + 600})),
            "not_yet_valid",
        ),
        (
            "wrong iss",
            idp.token("rsa1", Some("rsa1"), json!({"iss": "https://evil"})),
            "issuer",
        ),
        (
            "no iss",
            idp.token("rsa1", Some("rsa1"), json!({"iss": null})),
            "issuer",
        ),
        (
            "wrong aud",
            idp.token("rsa1", Some("rsa1"), json!({"aud": ["api"]})),
            "audience",
        ),
        (
            "no exp",
            idp.token("rsa1", Some("rsa1"), json!({"exp": null})),
            "no_exp",
        ),
        (
            "no sub",
            idp.token("rsa1", Some("rsa1"), json!({"sub": null})),
            "user_claim",
        ),
    ];
    for (what, token, reason) in &cases {
        let series = format!("gateway_tokens_refused_total{{reason=\"{reason}\"}}");
        let before = app.metric(&series).await;
        let r = mint(&app, token, user42()).await;
        assert_eq!(r.status, 401, "{what}: {:?}", r.json);
        assert_eq!(r.json["code"], 17, "{what}");
        assert_eq!(r.json["exception"], "NotAllowedException", "{what}");
        let detail = r.json["detail"].as_str().unwrap();
        assert!(!detail.contains(token.as_str()), "{what}: {detail}");
        assert_eq!(app.metric(&series).await, before + 1.0, "{what}: {series}");
    }
    // Within the leeway (30 s), a just-expired token still counts.
    let r = mint(
        &app,
        &idp.token("rsa1", Some("rsa1"), json!({"exp": now() - 5})),
        user42(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // A user claim outside Stream's user-id rule: 403.
    let t = idp.token("rsa1", Some("rsa1"), json!({"sub": "auth0|42"}));
    let r = mint(&app, &t, user42()).await;
    assert_eq!(r.status, 403, "{:?}", r.json);
    // The header: missing, another scheme, two of them.
    let r = app.tokens(user42(), &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.json["detail"].as_str().unwrap().contains("missing"));
    let r = app
        .tokens(user42(), &[("authorization", "Basic dXNlcjpwdw==")])
        .await;
    assert_eq!(r.status, 401);
    let good = format!("Bearer {}", idp.token("rsa1", Some("rsa1"), json!({})));
    let r = app
        .send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .header("authorization", good.as_str())
                .header("authorization", good.as_str())
                .body(user42().to_string()),
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.json);
    assert!(
        app.metric(r#"gateway_tokens_refused_total{reason="missing"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_custom_user_claim_and_an_audience_list_are_honoured() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| {
        f.merge(("tokens.oidc.audience", ["api", "web"]))
            .merge(("tokens.oidc.user_claim", "stream_user_id"))
            .merge(("tokens.oidc.algorithms", ["ES256"]))
    })
    .await;
    keys_loaded(&app).await;
    assert_eq!(
        app.metric("gateway_oidc_keys").await,
        1.0,
        "only the P-256 key"
    );
    let t = idp.token(
        "ec1",
        Some("ec1"),
        json!({"stream_user_id": "u-7", "aud": ["x", "web"]}),
    );
    let r = mint(&app, &t, json!({"user_id": "u-7"})).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    // RS256 is not configured any more.
    let r = mint(
        &app,
        &idp.token("rsa1", Some("rsa1"), json!({"stream_user_id": "u-7"})),
        json!({"user_id": "u-7"}),
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f.merge(("tokens.oidc.refetch_interval_s", 1))).await;
    keys_loaded(&app).await;
    assert_eq!(
        mint(&app, &idp.token("rsa1", Some("rsa1"), json!({})), user42())
            .await
            .status,
        200
    );
    // The IdP rolls its key: rsa2 published, rsa1 withdrawn.
    idp.publish(json!({"keys": [jwk("rsa2", "rsa2")]}));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = mint(&app, &idp.token("rsa2", Some("rsa2"), json!({})), user42()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(app.metric("gateway_oidc_keys").await, 1.0);
    let r = mint(&app, &idp.token("rsa1", Some("rsa1"), json!({})), user42()).await;
    assert_eq!(r.status, 401, "{:?}", r.json);
}

#[tokio::test]
async fn thirty_unknown_kids_cost_at_most_one_fetch() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f.merge(("tokens.oidc.refetch_interval_s", 2))).await;
    keys_loaded(&app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = idp.fetches();
    let tokens: Vec<String> = (0..30)
        .map(|i| idp.token("rsa1", Some(&format!("kid-{i}")), json!({})))
        .collect();
    let mut all = tokio::task::JoinSet::new();
    for t in tokens.clone() {
        let (client, url) = (app.client.clone(), format!("http://{}/tokens", app.addr));
        all.spawn(async move {
            let r = client
                .post(url)
                .header("authorization", format!("Bearer {t}"))
                .body(user42().to_string())
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
    }
    assert_eq!(all.join_all().await, vec![401; 30]);
    // ...and sequentially, still within the interval.
    for t in &tokens[..10] {
        assert_eq!(mint(&app, t, user42()).await.status, 401);
    }
    let spent = idp.fetches() - before;
    assert_eq!(
        spent, 1,
        "30 concurrent and 10 later unknown kids cost {spent} fetches"
    );
}

#[tokio::test]
async fn an_idp_that_goes_down_leaves_the_cached_keys_in_use() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f.merge(("tokens.oidc.refetch_interval_s", 1))).await;
    keys_loaded(&app).await;
    idp.down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // An unknown kid makes it refetch; the fetch fails; the known keys still verify.
    let r = mint(&app, &idp.token("ec1", Some("new"), json!({})), user42()).await;
    assert_eq!(r.status, 401);
    assert!(
        app.metric(r#"gateway_oidc_fetch_total{outcome="error"}"#)
            .await
            >= 1.0
    );
    assert_eq!(app.metric("gateway_oidc_keys").await, 3.0);
    let r = mint(&app, &idp.token("ed1", Some("ed1"), json!({})), user42()).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
}

#[tokio::test]
async fn an_idp_down_at_start_up_means_503_on_tokens_until_its_keys_come() {
    let idp = Idp::start().await;
    idp.down(true);
    let app = gateway(&idp, |f| f).await;
    let t = idp.token("rsa1", Some("rsa1"), json!({}));
    let r = mint(&app, &t, user42()).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("not loaded yet"),
        "{:?}",
        r.json
    );
    assert_eq!(
        app.metric(r#"gateway_tokens_refused_total{reason="keys_not_loaded"}"#)
            .await,
        1.0
    );
    let ready = app
        .client
        .get(format!("http://{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "the proxy path does not need the keys");
    idp.down(false);
    keys_loaded(&app).await;
    assert_eq!(mint(&app, &t, user42()).await.status, 200);
    assert!(
        app.metric(r#"gateway_oidc_fetch_total{outcome="ok"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuer_unless_jwks_url_is_given() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| f).await;
    keys_loaded(&app).await;
    assert_eq!(idp.state.discoveries.load(Ordering::SeqCst), 1);
    let idp2 = Idp::start().await;
    let url = idp2.jwks_url();
    let app2 = gateway(&idp2, move |f| f.merge(("tokens.oidc.jwks_url", url))).await;
    keys_loaded(&app2).await;
    assert_eq!(idp2.state.discoveries.load(Ordering::SeqCst), 0);
    assert_eq!(
        mint(&app2, &idp2.token("ed1", Some("ed1"), json!({})), user42())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_jwks_above_the_size_cap_is_not_taken() {
    let idp = Idp::start().await;
    idp.publish(json!({"keys": [jwk("rsa1", "rsa1")], "padding": "x".repeat(300 * 1024)}));
    let app = gateway(&idp, |f| f).await;
    for _ in 0..300 {
        if app
            .metric(r#"gateway_oidc_fetch_total{outcome="error"}"#)
            .await
            >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        app.metric(r#"gateway_oidc_fetch_total{outcome="error"}"#)
            .await
            >= 1.0
    );
    assert_eq!(app.metric("gateway_oidc_keys").await, 0.0);
    let r = mint(&app, &idp.token("rsa1", Some("rsa1"), json!({})), user42()).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn the_preflight_allows_authorization() {
    let idp = Idp::start().await;
    let app = gateway(&idp, |f| {
        f.merge(("tokens.cors_origins", ["https://app.example.com"]))
    })
    .await;
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/tokens", app.addr),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
}

fn config_error(f: figment::Figment) -> String {
    let e = Config::from_figment(&f).unwrap_err();
    format!("{}: {}", e.key, e.problem)
}

#[tokio::test]
async fn start_up_refuses_a_second_identity_source_hmac_and_clear_text_key_urls() {
    let emu = strict_emulator().await;
    let oidc = || {
        base_figment(&emu)
            .merge(("tokens.oidc.issuer", "https://idp.example.com"))
            .merge(("tokens.oidc.audience", "web"))
            .merge(("tokens.feed_groups", ["user"]))
    };
    assert!(Config::from_figment(&oidc()).is_ok());
    assert!(
        config_error(oidc().merge(("tokens.identity_header", "x-user")))
            .starts_with("tokens.oidc: ")
    );
    assert!(
        config_error(oidc().merge(("tokens.oidc.algorithms", ["RS256", "HS256"])))
            .starts_with("tokens.oidc.algorithms: ")
    );
    assert!(
        config_error(oidc().merge(("tokens.oidc.jwks_url", "http://idp.example.com/certs")))
            .starts_with("tokens.oidc.jwks_url: ")
    );
    assert!(config_error(oidc().merge(("tokens.oidc.leeway_s", 301)))
        .starts_with("tokens.oidc.leeway_s: "));
    assert!(config_error(oidc().merge(("tokens.oidc.bogus", 1))).contains("bogus"));
    assert!(
        config_error(oidc().merge(("tokens.feed_groups", Vec::<String>::new())))
            .starts_with("tokens.feed_groups: ")
    );
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure returns figment's error
fn every_oidc_key_is_read_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "GATEWAY_TOKENS__OIDC__ISSUER",
            "https://idp.example.com/realms/app",
        );
        jail.set_env("GATEWAY_TOKENS__OIDC__AUDIENCE", "[web, api]");
        jail.set_env(
            "GATEWAY_TOKENS__OIDC__JWKS_URL",
            "https://idp.example.com/certs",
        );
        jail.set_env("GATEWAY_TOKENS__OIDC__USER_CLAIM", "uid");
        jail.set_env("GATEWAY_TOKENS__OIDC__ALGORITHMS", "[ES256]");
        jail.set_env("GATEWAY_TOKENS__OIDC__LEEWAY_S", "10");
        jail.set_env("GATEWAY_TOKENS__OIDC__REFETCH_INTERVAL_S", "5");
        jail.set_env("GATEWAY_TOKENS__FEED_GROUPS", "[user]");
        jail.set_env("STREAM_API_KEY", KEY);
        jail.set_env("STREAM_API_SECRET", SECRET);
        let f = stream_gateway::config::with_env(figment::Figment::from(
            figment::providers::Serialized::defaults(stream_gateway::config::FileConfig::default()),
        ));
        let c = Config::from_figment(&f).map_err(|e| format!("{}: {}", e.key, e.problem))?;
        let o = c.tokens.oidc.expect("[tokens.oidc] from the environment");
        assert_eq!(o.issuer, "https://idp.example.com/realms/app");
        assert_eq!(o.audience, ["web", "api"]);
        assert_eq!(o.jwks_url.as_deref(), Some("https://idp.example.com/certs"));
        assert_eq!(o.user_claim, "uid");
        assert_eq!(o.algorithms, [Algorithm::ES256]);
        assert_eq!((o.leeway_s, o.refetch_interval.as_secs()), (10, 5));
        Ok(())
    });
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_or_clear_text_keys_is_not_followed() {
    for doc in [
        json!({"issuer": "https://evil.example.com", "jwks_uri": "http://127.0.0.1:1/certs"}),
        json!({"issuer": "ISSUER"}),
        json!({"issuer": "ISSUER", "jwks_uri": "http://idp.example.com/certs"}),
        json!("not a document"),
    ] {
        let idp = Idp::start().await;
        let doc = doc.to_string().replace("ISSUER", idp.issuer());
        *idp.state.discovery_doc.lock().unwrap() = Some(doc.clone());
        let app = gateway(&idp, |f| f).await;
        let mut failed = false;
        for _ in 0..300 {
            if app
                .metric(r#"gateway_oidc_fetch_total{outcome="error"}"#)
                .await
                >= 1.0
            {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(failed, "{doc}");
        assert_eq!(idp.fetches(), 0, "{doc}: the JWKS was fetched");
        assert_eq!(app.metric("gateway_oidc_keys").await, 0.0);
    }
}

#[tokio::test]
async fn a_short_max_age_is_raised_to_five_minutes() {
    let idp = Idp::start().await;
    *idp.state.cache_control.lock().unwrap() = Some("public, max-age=1".into());
    let app = gateway(&idp, |f| f).await;
    keys_loaded(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(idp.fetches(), 1, "kept past max-age=1");
}
