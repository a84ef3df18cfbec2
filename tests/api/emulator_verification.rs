//! The emulator refuses what Stream refuses; otherwise the gateway's tests would prove nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use stream_wire::auth::jwt::{encode, Claims};
use stream_wire::auth::{httpsig, Secret};

use crate::helpers::*;

fn token(resource: &str, action: &str, feed: &str, secret: &str, exp: Option<u64>) -> String {
    let c = Claims {
        resource: Some(resource.into()),
        action: Some(action.into()),
        feed_id: Some(feed.into()),
        user_id: None,
        exp,
    };
    encode(&c, &Secret::new(secret))
}

async fn direct(
    emu_url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let c = reqwest::Client::new();
    let mut r = c.request(method.parse().unwrap(), format!("{emu_url}{target}"));
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    if let Some(b) = body {
        r = r.body(b.to_owned());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or_default(),
    )
}

fn jwt_headers(t: String) -> Vec<(&'static str, String)> {
    vec![("authorization", t), ("stream-auth-type", "jwt".into())]
}

const READ: &str = "/api/v1.0/feed/user/42/?api_key=test-api-key";

#[tokio::test]
async fn a_correct_narrow_token_is_accepted() {
    let emu = strict_emulator().await;
    let (s, _) = direct(
        &emu.url(),
        "GET",
        READ,
        &jwt_headers(token("feed", "read", "user42", SECRET, None)),
        None,
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused_with_code_17() {
    let emu = strict_emulator().await;
    let (s, v) = direct(
        &emu.url(),
        "GET",
        READ,
        &jwt_headers(token("feed", "read", "user42", "wrong", None)),
        None,
    )
    .await;
    assert_eq!((s, v["code"].as_u64()), (403, Some(17)));
    assert_eq!(v["exception"], "NotAllowedException");
    assert_eq!(v["detail"], "signature is invalid");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let emu = strict_emulator().await;
    let past = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10;
    let (s, v) = direct(
        &emu.url(),
        "GET",
        READ,
        &jwt_headers(token("feed", "read", "user42", SECRET, Some(past))),
        None,
    )
    .await;
    assert_eq!((s, v["detail"].as_str()), (403, Some("token has expired")));
}

#[tokio::test]
async fn a_too_narrow_or_misdirected_scope_is_refused() {
    let emu = strict_emulator().await;
    for t in [
        token("feed", "read", "user43", SECRET, None),
        token("feed", "write", "user42", SECRET, None),
        token("follower", "read", "user42", SECRET, None),
    ] {
        let (s, v) = direct(&emu.url(), "GET", READ, &jwt_headers(t), None).await;
        assert_eq!((s, v["code"].as_u64()), (403, Some(17)));
    }
}

#[tokio::test]
async fn a_too_wide_scope_is_refused_by_the_strict_emulator_only() {
    let emu = strict_emulator().await;
    for t in [
        token("*", "read", "user42", SECRET, None),
        token("feed", "*", "user42", SECRET, None),
        token("feed", "read", "*", SECRET, None),
    ] {
        let (s, v) = direct(&emu.url(), "GET", READ, &jwt_headers(t.clone()), None).await;
        assert_eq!(s, 403, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("wider"), "{v}");
    }
    let lenient = stream_emulator::Emulator::spawn(
        stream_emulator::EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: false,
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (s, _) = direct(
        &lenient.url(),
        "GET",
        READ,
        &jwt_headers(token("*", "*", "*", SECRET, None)),
        None,
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn api_key_must_be_present_once_and_right() {
    let emu = strict_emulator().await;
    let h = jwt_headers(token("feed", "read", "user42", SECRET, None));
    let (s, v) = direct(&emu.url(), "GET", "/api/v1.0/feed/user/42/", &h, None).await;
    assert_eq!((s, v["code"].as_u64()), (401, Some(2)));
    let (s, v) = direct(
        &emu.url(),
        "GET",
        "/api/v1.0/feed/user/42/?api_key=otherkey",
        &h,
        None,
    )
    .await;
    assert_eq!((s, v["code"].as_u64()), (401, Some(2)));
    assert_eq!(v["exception"], "ApiKeyException");
    assert_eq!(v["detail"], "api_key othe... is not this app's api key");
    let (s, _) = direct(
        &emu.url(),
        "GET",
        &format!("{READ}&api_key=test-api-key"),
        &h,
        None,
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_missing_auth_header_or_auth_type_is_refused() {
    let emu = strict_emulator().await;
    let (s, v) = direct(&emu.url(), "GET", READ, &[], None).await;
    assert_eq!(
        (s, v["detail"].as_str()),
        (403, Some("Missing auth header."))
    );
    let t = token("feed", "read", "user42", SECRET, None);
    let (s, _) = direct(&emu.url(), "GET", READ, &[("authorization", t)], None).await;
    assert_eq!(s, 403);
}

fn signed(method: &str, target: &str, date: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "authorization",
            httpsig::authorization(KEY, &Secret::new(secret), method, target, date),
        ),
        ("date", date.to_owned()),
        ("x-api-key", KEY.to_owned()),
    ]
}

#[tokio::test]
async fn http_signatures_are_verified_over_target_and_date() {
    let emu = strict_emulator().await;
    let target = "/api/v1.0/follow_many/?activity_copy_limit=5&api_key=test-api-key";
    let body = json!([{"source": "timeline:1", "target": "user:1"}]).to_string();
    let now = httpsig::http_date(SystemTime::now());
    let (s, v) = direct(
        &emu.url(),
        "POST",
        target,
        &signed("POST", target, &now, SECRET),
        Some(&body),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Wrong secret, a signature for another target, a stale date, no X-Api-Key: code 3.
    let (s, v) = direct(
        &emu.url(),
        "POST",
        target,
        &signed("POST", target, &now, "wrong"),
        Some(&body),
    )
    .await;
    assert_eq!((s, v["code"].as_u64()), (401, Some(3)));
    let other = "/api/v1.0/follow_many/?activity_copy_limit=500&api_key=test-api-key";
    let (s, _) = direct(
        &emu.url(),
        "POST",
        target,
        &signed("POST", other, &now, SECRET),
        Some(&body),
    )
    .await;
    assert_eq!(s, 401);
    let stale = httpsig::http_date(SystemTime::now() - Duration::from_secs(301));
    let (s, v) = direct(
        &emu.url(),
        "POST",
        target,
        &signed("POST", target, &stale, SECRET),
        Some(&body),
    )
    .await;
    assert_eq!(s, 401);
    assert!(v["detail"].as_str().unwrap().contains("5 minutes"));
    let mut no_key = signed("POST", target, &now, SECRET);
    no_key.pop();
    let (s, _) = direct(&emu.url(), "POST", target, &no_key, Some(&body)).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_signature_is_refused_on_a_feed_route() {
    let emu = strict_emulator().await;
    let now = httpsig::http_date(SystemTime::now());
    let (s, _) = direct(
        &emu.url(),
        "GET",
        READ,
        &signed("GET", READ, &now, SECRET),
        None,
    )
    .await;
    assert_eq!(s, 403);
}
