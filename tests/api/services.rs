//! Stream's analytics and personalization services through the gateway: each call goes to its
//! own host, under its own prefix, with the token the official clients send there; and the
//! emulator's analytics, checked as strictly as its feeds.

use serde_json::{json, Value};
use stream_gateway::config::Config;
use stream_wire::auth::jwt::{self, encode, Claims};
use stream_wire::auth::Secret;

use crate::helpers::*;
use stream_emulator::Received;

/// A gateway whose feeds API is one strict emulator and whose analytics and personalization
/// hosts are another, so each call shows where it went.
async fn two_hosts() -> (TestApp, stream_emulator::Emulator) {
    let services = strict_emulator().await;
    let api = strict_emulator().await;
    let f = base_figment(&api)
        .merge(("stream.analytics_base_url", services.url()))
        .merge(("stream.personalization_base_url", services.url()));
    let app = start(Config::from_figment(&f).unwrap(), api).await;
    (app, services)
}

fn claims(r: &Received) -> Claims {
    assert_eq!(r.header("stream-auth-type"), Some("jwt"), "{r:?}");
    jwt::verify(r.header("authorization").unwrap(), &Secret::new(SECRET), 0).unwrap()
}

async fn call(app: &TestApp, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = app.client.request(m, format!("http://{}{path}", app.addr));
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    app.send(r).await
}

#[tokio::test]
async fn analytics_calls_go_to_the_analytics_host_with_the_analytics_token_and_are_kept() {
    let (app, services) = two_hosts().await;
    let engagement =
        json!({"content_list": [{"content": "1", "label": "click", "user_data": "tommaso"}]});
    let r = call(
        &app,
        "POST",
        "/analytics/v1.0/engagement/",
        Some(&engagement),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let impressions = json!([{"content_list": ["1", "2"], "user_data": {"id": "u1"}}]);
    let r = call(
        &app,
        "POST",
        &format!("/analytics/v1.0/impression?api_key={KEY}"),
        Some(&impressions),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);

    assert!(
        app.received().is_empty(),
        "nothing reached the feeds API's host"
    );
    let got = services.state().received();
    assert_eq!(got.len(), 2);
    assert!(
        got[0].target.starts_with("/analytics/v1.0/engagement/?"),
        "{}",
        got[0].target
    );
    assert!(
        got[1].target.starts_with("/analytics/v1.0/impression/?"),
        "{}",
        got[1].target
    );
    for r in &got {
        assert_eq!(api_keys(r), vec![KEY.to_owned()]);
        let c = claims(r);
        assert_eq!(
            (
                c.resource.as_deref(),
                c.action.as_deref(),
                c.feed_id,
                c.user_id.as_deref()
            ),
            (Some("analytics"), Some("*"), None, Some("*"))
        );
    }
    let events = services.state().analytics_events();
    assert_eq!(
        events,
        vec![
            json!({"kind": "engagement", "event": engagement["content_list"][0]}),
            json!({"kind": "impression", "event": impressions[0]}),
        ]
    );
}

#[tokio::test]
async fn personalization_calls_go_to_the_personalization_host_with_its_token() {
    let (app, services) = two_hosts().await;
    for (method, body) in [
        ("GET", None),
        ("POST", Some(json!({"accepted": [1]}))),
        ("DELETE", None),
    ] {
        let r = call(
            &app,
            method,
            "/personalization/v1.0/follow_recommendations/?user_id=u1",
            body.as_ref(),
        )
        .await;
        // Past the strict emulator's credential check, which names what it does not emulate.
        assert_eq!(r.status, 501, "{method}: {:?}", r.json);
        assert_eq!(r.json["exception"], "NotImplementedException");
        assert!(r.json["detail"]
            .as_str()
            .unwrap()
            .contains("personalization"));
    }
    assert!(
        app.received().is_empty(),
        "nothing reached the feeds API's host"
    );
    let got = services.state().received();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert!(
            r.target
                .starts_with("/personalization/v1.0/follow_recommendations/?user_id=u1&api_key="),
            "{}",
            r.target
        );
        let c = claims(r);
        assert_eq!(
            (
                c.resource.as_deref(),
                c.action.as_deref(),
                c.feed_id.as_deref(),
                c.user_id.as_deref()
            ),
            (Some("personalization"), Some("*"), Some("*"), Some("*"))
        );
    }
    assert_eq!(got[1].body, r#"{"accepted":[1]}"#);
}

#[tokio::test]
async fn service_calls_are_endpoints_with_their_names_checks_and_metrics() {
    let (app, services) = two_hosts().await;
    // JSON only: Stream's service decides the shape.
    let r = app
        .send(
            app.client
                .post(format!("http://{}/analytics/v1.0/engagement/", app.addr))
                .body("{not json"),
        )
        .await;
    assert_eq!((r.status, r.json["code"].as_u64()), (400, Some(4)));
    let r = call(&app, "GET", "/analytics/v1.0/engagement/", None).await;
    assert_eq!(r.status, 405);
    let r = call(&app, "POST", "/analytics/v1.0/redirect/", Some(&json!({}))).await;
    assert_eq!(r.status, 404);
    assert!(services.state().received().is_empty(), "nothing was sent");
    let r = call(
        &app,
        "POST",
        "/analytics/v1.0/impression/",
        Some(&json!({"content_list": []})),
    )
    .await;
    assert_eq!(r.status, 201);
    let text = app.metrics_text().await;
    assert!(text.contains("endpoint=\"analytics.impression\""), "{text}");
}

#[tokio::test]
async fn an_analytics_call_is_not_resent_after_it_may_have_reached_stream() {
    let (app, services) = two_hosts().await;
    services.state().inject(stream_emulator::Fault {
        method: Some("POST".into()),
        path_prefix: "/analytics/".into(),
        status: Some(503),
        delay_ms: None,
        drop: false,
        retry_after: None,
        times: 1,
        ..Default::default()
    });
    let r = call(
        &app,
        "POST",
        "/analytics/v1.0/impression/",
        Some(&json!({"content_list": ["1"]})),
    )
    .await;
    assert_eq!(r.status, 503, "one attempt, Stream's answer back");
    assert_eq!(services.state().received().len(), 1);
    assert!(services.state().analytics_events().is_empty());
}

fn service_token(resource: &str, action: &str, feed: Option<&str>, user: Option<&str>) -> String {
    let c = Claims {
        resource: Some(resource.into()),
        action: Some(action.into()),
        feed_id: feed.map(Into::into),
        user_id: user.map(Into::into),
        exp: None,
    };
    encode(&c, &Secret::new(SECRET))
}

async fn direct(url: &str, target: &str, token: &str, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}{target}"))
        .header("authorization", token)
        .header("stream-auth-type", "jwt")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn the_emulator_checks_analytics_credentials_as_stream_does_and_strictly() {
    let strict = strict_emulator().await;
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
    let body = r#"{"content_list": [{"content": "1", "label": "click"}]}"#;
    let target = format!("/analytics/v1.0/engagement/?api_key={KEY}");
    let exact = service_token("analytics", "*", None, Some("*"));
    // stream-python's own token for these calls.
    let python = service_token("*", "*", Some("*"), None);
    let feed = service_token("feed", "*", Some("*"), None);
    let read = service_token("analytics", "read", None, Some("*"));
    for (url, token, want) in [
        (strict.url(), &exact, 201),
        (strict.url(), &python, 403),
        (lenient.url(), &python, 201),
        (strict.url(), &feed, 403),
        (lenient.url(), &feed, 403),
        (lenient.url(), &read, 403),
    ] {
        let (s, v) = direct(&url, &target, token, body).await;
        assert_eq!(s, want, "{v}");
    }
    let forged = encode(
        &Claims {
            resource: Some("analytics".into()),
            action: Some("*".into()),
            user_id: Some("*".into()),
            ..Claims::default()
        },
        &Secret::new("another-secret"),
    );
    let (s, _) = direct(&strict.url(), &target, &forged, body).await;
    assert_eq!(s, 403);
    // An unknown api key, as Stream answers it: 401, code 2, naming only its first 4 characters.
    let (s, v) = direct(
        &strict.url(),
        "/analytics/v1.0/engagement/?api_key=5crf3bhfzesnMISSING",
        &exact,
        body,
    )
    .await;
    assert_eq!((s, v["code"].as_u64()), (401, Some(2)));
    assert_eq!(v["exception"], "ApiKeyException");
    assert!(v["detail"].as_str().unwrap().contains("5crf..."));
    assert!(!v["detail"].as_str().unwrap().contains("3bhf"));
    // Shapes the clients never send are Stream's input errors.
    for (path, bad) in [
        ("engagement", r#"{"events": []}"#),
        ("engagement", r#"{"content_list": [1]}"#),
        ("impression", r#"[{"user_data": "u"}]"#),
        ("impression", r#""x""#),
        ("impression", "{"),
    ] {
        let t = format!("/analytics/v1.0/{path}/?api_key={KEY}");
        let (s, v) = direct(&strict.url(), &t, &exact, bad).await;
        assert_eq!((s, v["code"].as_u64()), (400, Some(4)), "{bad}: {v}");
    }
    assert_eq!(strict.state().analytics_events().len(), 1);
}

#[tokio::test]
async fn the_admin_api_lists_analytics_events_and_a_reset_clears_them() {
    let emu = strict_emulator().await;
    let exact = service_token("analytics", "*", None, Some("*"));
    let target = format!("/analytics/v1.0/impression/?api_key={KEY}");
    let (s, _) = direct(
        &emu.url(),
        &target,
        &exact,
        r#"{"content_list": ["a"], "feed_id": "user:1"}"#,
    )
    .await;
    assert_eq!(s, 201);
    let c = reqwest::Client::new();
    let bytes = c
        .get(format!("{}/_emulator/analytics", emu.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        listed,
        json!({"events": [{"kind": "impression", "event": {"content_list": ["a"], "feed_id": "user:1"}}]})
    );
    let s = c
        .post(format!("{}/_emulator/reset", emu.url()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 204);
    assert!(emu.state().analytics_events().is_empty());
}

#[tokio::test]
async fn in_emulator_mode_every_service_goes_to_the_emulator() {
    let f = figment::Figment::from(figment::providers::Serialized::defaults(
        stream_gateway::config::FileConfig::default(),
    ))
    .merge(("server.listen", "127.0.0.1:0"))
    .merge(("stream.emulator", true));
    let app = stream_gateway::app::App::build(Config::from_figment(&f).unwrap())
        .await
        .unwrap();
    let emu = app.emulator().unwrap().url();
    let s = &app.state().config().stream;
    assert_eq!(
        (
            s.base_url.as_str(),
            s.analytics_base_url.as_str(),
            s.personalization_base_url.as_str()
        ),
        (emu.as_str(), emu.as_str(), emu.as_str())
    );
}
