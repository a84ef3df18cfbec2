//! `POST /tokens`: every minted token decoded with the secret; every refusal refuses.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use stream_wire::auth::{jwt, Secret};

use crate::helpers::*;

async fn tokens(app: &TestApp, body: Value, headers: &[(&str, &str)]) -> Reply {
    app.tokens(body, headers).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn payload(token: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_feed_token_has_exactly_the_asked_scope_and_exp() {
    let app = spawn_with(|f| {
        f.merge(("stream.app_id", "1234"))
            .merge(("stream.region", "eu-west"))
    })
    .await;
    let r = tokens(
        &app,
        json!({"feed": "user:42", "resource": "feed", "action": "read", "expires_in": 600}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let token = r.json["token"].as_str().unwrap();
    let claims = jwt::verify(token, &Secret::new(SECRET), now()).unwrap();
    assert_eq!(claims.scope().unwrap().to_string(), "feed/read/user42");
    let exp = claims.exp.unwrap();
    assert!((now() + 598..=now() + 600).contains(&exp), "{exp}");
    assert_eq!(r.json["expires_at"], exp);
    assert_eq!(
        payload(token),
        json!({"resource": "feed", "action": "read", "feed_id": "user42", "exp": exp})
    );
    assert_eq!(
        (
            r.json["api_key"].as_str(),
            r.json["app_id"].as_str(),
            r.json["region"].as_str()
        ),
        (Some(KEY), Some("1234"), Some("eu-west"))
    );
    assert!(jwt::verify(token, &Secret::new("another"), now()).is_err());
    assert!(!r.json.to_string().contains(SECRET));
    // Stream (here, the strict emulator) takes it for exactly that read.
    let emu = reqwest::Client::new();
    let read = |path: &str| {
        emu.get(format!("{}{path}?api_key={KEY}", app.emu.url()))
            .header("authorization", token)
            .header("stream-auth-type", "jwt")
            .send()
    };
    assert_eq!(read("/api/v1.0/feed/user/42/").await.unwrap().status(), 200);
    assert_eq!(read("/api/v1.0/feed/user/43/").await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_user_token_carries_user_id_and_exp_only() {
    let app = spawn_app().await;
    let r = tokens(&app, json!({"user_id": "42"}), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let exp = r.json["expires_at"].as_u64().unwrap();
    assert!(
        (now() + 3598..=now() + 3600).contains(&exp),
        "default_ttl_s applies"
    );
    assert_eq!(
        payload(r.json["token"].as_str().unwrap()),
        json!({"user_id": "42", "exp": exp})
    );
    assert!(r.json["app_id"].is_null());
}

async fn refused(r: Reply, status: u16, code: u64, says: &str) {
    assert_eq!(r.status, status, "{:?}", r.json);
    assert_eq!(r.json["code"].as_u64(), Some(code), "{:?}", r.json);
    assert_eq!(r.json["status_code"].as_u64(), Some(u64::from(status)));
    let exc = if code == 17 {
        "NotAllowedException"
    } else {
        "InputException"
    };
    assert_eq!(r.json["exception"], exc);
    assert!(
        r.json["detail"].as_str().unwrap().contains(says),
        "{:?} should say {says}",
        r.json
    );
    assert!(r.json.get("token").is_none());
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // a table: one request per policy rule
async fn every_policy_refusal_refuses_with_the_rule_that_refused() {
    let app = spawn_with(|f| f.merge(("tokens.max_ttl_s", 7200))).await;
    refused(
        tokens(
            &app,
            json!({"feed": "user:42", "resource": "feed", "action": "write"}),
            &[],
        )
        .await,
        403,
        17,
        "tokens.allow",
    )
    .await;
    refused(
        tokens(
            &app,
            json!({"feed": "*", "resource": "feed", "action": "read"}),
            &[],
        )
        .await,
        403,
        17,
        "wildcards",
    )
    .await;
    refused(
        tokens(
            &app,
            json!({"feed": "user:42", "resource": "*", "action": "read"}),
            &[],
        )
        .await,
        403,
        17,
        "wildcards",
    )
    .await;
    refused(
        tokens(
            &app,
            json!({"feed": "user:42", "resource": "feed", "action": "read", "expires_in": 7201}),
            &[],
        )
        .await,
        400,
        4,
        "expires_in",
    )
    .await;
    refused(
        tokens(
            &app,
            json!({"feed": "user42", "resource": "feed", "action": "read"}),
            &[],
        )
        .await,
        400,
        4,
        "feed",
    )
    .await;
    refused(
        tokens(&app, json!({"feed": "user:42"}), &[]).await,
        400,
        4,
        "resource",
    )
    .await;
    refused(
        tokens(&app, json!({"user_id": "42", "scope": "all"}), &[]).await,
        400,
        4,
        "body",
    )
    .await;
    refused(
        app.send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .body("{"),
        )
        .await,
        400,
        4,
        "body",
    )
    .await;
    assert!(app.received().is_empty(), "tokens never call Stream");
}

#[tokio::test]
async fn user_tokens_can_be_turned_off() {
    let app = spawn_with(|f| f.merge(("tokens.user_tokens", false))).await;
    refused(
        tokens(&app, json!({"user_id": "42"}), &[]).await,
        403,
        17,
        "user_tokens",
    )
    .await;
}

#[tokio::test]
async fn with_an_identity_header_tokens_are_bound_to_the_caller() {
    let app = spawn_with(|f| {
        f.merge(("tokens.identity_header", "X-User-Id"))
            .merge(("tokens.feed_groups", ["user", "timeline"]))
    })
    .await;
    let feed = json!({"feed": "user:42", "resource": "feed", "action": "read"});
    refused(
        tokens(&app, feed.clone(), &[]).await,
        401,
        17,
        "identity header",
    )
    .await;
    assert_eq!(
        tokens(&app, feed.clone(), &[("x-user-id", "42")])
            .await
            .status,
        200
    );
    refused(
        tokens(&app, feed, &[("x-user-id", "43")]).await,
        403,
        17,
        "identity",
    )
    .await;
    assert_eq!(
        tokens(
            &app,
            json!({"feed": "timeline:42", "resource": "follower", "action": "read"}),
            &[("X-User-Id", "42")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        tokens(&app, json!({"user_id": "42"}), &[("x-user-id", "42")])
            .await
            .status,
        200
    );
    refused(
        tokens(&app, json!({"user_id": "7"}), &[("x-user-id", "42")]).await,
        403,
        17,
        "identity",
    )
    .await;
    refused(
        tokens(&app, json!({"user_id": "42"}), &[]).await,
        401,
        17,
        "identity header",
    )
    .await;
}

#[tokio::test]
async fn an_identity_cannot_mint_a_claim_that_also_names_another_users_feed() {
    let app = spawn_with(|f| {
        f.merge(("tokens.identity_header", "X-User-Id"))
            .merge(("tokens.feed_groups", ["user", "timeline", "timeline1"]))
    })
    .await;
    let feed = |f: &str| json!({"feed": f, "resource": "feed", "action": "read"});
    // `user4:2` would be the claim `user42`: user:42's feed. user4 is no feed group here.
    refused(
        tokens(&app, feed("user4:2"), &[("x-user-id", "2")]).await,
        403,
        17,
        "tokens.feed_groups",
    )
    .await;
    // `timeline1:42` is a feed group, but its claim `timeline142` also reads timeline:142.
    refused(
        tokens(&app, feed("timeline1:42"), &[("x-user-id", "42")]).await,
        403,
        17,
        "timeline:142",
    )
    .await;
    // The claim `timeline1` is the group timeline1 with nothing after it, which is no user
    // id: it names only timeline:1.
    assert_eq!(
        tokens(&app, feed("timeline:1"), &[("x-user-id", "1")])
            .await
            .status,
        200
    );
    assert_eq!(
        tokens(&app, feed("user:2"), &[("x-user-id", "2")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_repeated_identity_header_is_400_naming_it() {
    let app = spawn_with(|f| {
        f.merge(("tokens.identity_header", "X-User-Id"))
            .merge(("tokens.feed_groups", ["user"]))
    })
    .await;
    let r = app
        .send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .header("x-user-id", "42")
                .header("x-user-id", "43")
                .body(json!({"feed": "user:42", "resource": "feed", "action": "read"}).to_string()),
        )
        .await;
    assert_eq!(
        (r.status, r.json["code"].as_u64()),
        (400, Some(4)),
        "{:?}",
        r.json
    );
    assert!(
        r.json["exception_fields"]["x-user-id"].is_array(),
        "{:?}",
        r.json
    );
}

#[tokio::test]
async fn cors_preflight_answers_only_the_configured_origins_and_only_for_tokens() {
    let app = spawn_with(|f| f.merge(("tokens.cors_origins", ["https://app.example.com"]))).await;
    let preflight = |path: &str, origin: &str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}{path}", app.addr),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("/tokens", "https://app.example.com")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let other = preflight("/tokens", "https://evil.example.com")
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let proxied = preflight("/api/v1.0/feed/user/42/", "https://app.example.com")
        .await
        .unwrap();
    assert!(proxied
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // The actual request from the allowed origin carries the header too.
    let r = app
        .send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .header("origin", "https://app.example.com")
                .body(json!({"user_id": "1"}).to_string()),
        )
        .await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
}

#[tokio::test]
async fn without_cors_origins_no_cors_headers_are_sent() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .header("origin", "https://app.example.com")
                .body(json!({"user_id": "1"}).to_string()),
        )
        .await;
    // The internal listener refuses any origin outside the CORS policy.
    assert_eq!(r.status, 403);
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_feed_id_that_also_reads_as_another_users_feed_of_an_unlisted_group_is_refused() {
    // The docs' example lists user and timeline only; Stream's default timeline_aggregated
    // group exists all the same: `timeline` + `_aggregated42` is user 42's aggregated timeline.
    let app = spawn_with(|f| {
        f.merge(("tokens.identity_header", "x-user"))
            .merge(("tokens.feed_groups", ["user", "timeline"]))
    })
    .await;
    let body = json!({"feed": "timeline:_aggregated42", "resource": "feed", "action": "read"});
    let r = tokens(&app, body, &[("x-user", "_aggregated42")]).await;
    assert_eq!(r.status, 403, "{:?}", r.json);
    assert!(r.json["detail"]
        .as_str()
        .unwrap()
        .contains("timeline_aggregated:42"));
    let body = json!({"feed": "timeline:42", "resource": "feed", "action": "read"});
    assert_eq!(tokens(&app, body, &[("x-user", "42")]).await.status, 200);
}

/// A connection that sends a request head and one byte of a 100-byte body, then waits.
async fn slow_body(app: &TestApp, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn slow_bodies_on_the_proxy_do_not_starve_tokens_nor_the_other_way_round() {
    let app = spawn_with(|f| {
        f.merge(("server.max_concurrency", 2))
            .merge(("tokens.max_in_flight", 2))
    })
    .await;
    let held: Vec<_> = [
        slow_body(&app, "/api/v1.0/feed/user/1/").await,
        slow_body(&app, "/api/v1.0/feed/user/2/").await,
    ]
    .into();
    let mut refused = false;
    for _ in 0..200 {
        if app.post("/feed/user/3/", &activity(1)).await.status == 503 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(refused, "the proxy's body permits are all held");
    let r = tokens(&app, json!({"user_id": "42"}), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    drop(held);

    let held: Vec<_> = [
        slow_body(&app, "/tokens").await,
        slow_body(&app, "/tokens").await,
    ]
    .into();
    let mut refusal = Value::Null;
    for _ in 0..200 {
        let r = tokens(&app, json!({"user_id": "42"}), &[]).await;
        if r.status == 503 {
            refusal = r.json;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        refusal["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tokens.max_in_flight")),
        "{refusal:?}"
    );
    assert_eq!(
        app.metric(r#"gateway_tokens_refused_total{reason="overloaded"}"#)
            .await,
        1.0
    );
    let r = app.post("/feed/user/3/", &activity(1)).await;
    assert_ne!(r.status, 503, "{:?}", r.json);
    drop(held);
}
