//! Every endpoint of the REST docs through the gateway, each with its narrowest credential.

use serde_json::json;
use stream_wire::auth::{httpsig, Secret};

use crate::helpers::*;

#[tokio::test]
async fn every_jwt_endpoint_reaches_stream_with_exactly_its_narrowest_scope() {
    let app = spawn_app().await;
    let a = app.post("/feed/user/42/", &keyed_activity(1)).await;
    assert_eq!(a.status, 201, "{:?}", a.json);
    let id = a.json["id"].as_str().unwrap().to_owned();
    let cases: Vec<(&str, &str, Option<serde_json::Value>, &str)> = vec![
        ("GET", "/feed/user/42/?limit=5", None, "feed/read/user42"),
        (
            "POST",
            "/feed/user/42/",
            Some(keyed_activity(2)),
            "feed/write/user42",
        ),
        (
            "POST",
            "/feed/user/42/",
            Some(json!({"activities": [keyed_activity(3), activity(4)]})),
            "feed/write/user42",
        ),
        (
            "GET",
            "/feed/user/42/followers/?limit=10&offset=0",
            None,
            "follower/read/user42",
        ),
        (
            "POST",
            "/feed/timeline/7/follows/",
            Some(json!({"target": "user:42"})),
            "follower/write/timeline7",
        ),
        (
            "GET",
            "/feed/timeline/7/follows/",
            None,
            "follower/read/timeline7",
        ),
        (
            "GET",
            "/feed/timeline/7/following/?filter=user:42",
            None,
            "follower/read/timeline7",
        ),
        (
            "POST",
            "/feed/timeline/8/following/",
            Some(json!({"target": "user:42", "activity_copy_limit": 10})),
            "follower/write/timeline8",
        ),
        (
            "DELETE",
            "/feed/timeline/8/following/user:42/",
            None,
            "follower/delete/timeline8",
        ),
        (
            "DELETE",
            "/feed/timeline/7/follows/user:42/?keep_history=1",
            None,
            "follower/delete/timeline7",
        ),
        (
            "POST",
            "/activities/",
            Some(json!({"activities": [keyed_activity(1)]})),
            "activities/write/*",
        ),
        (
            "DELETE",
            &format!("/feed/user/42/{id}/"),
            None,
            "feed/delete/user42",
        ),
        (
            "DELETE",
            "/feed/user/42/post:2/?foreign_id=1",
            None,
            "feed/delete/user42",
        ),
    ]
    .into_iter()
    .map(|(m, p, b, s)| (m, Box::leak(p.to_owned().into_boxed_str()) as &str, b, s))
    .collect();
    for (method, path, body, scope) in cases {
        let url = format!("{}{path}", app.api);
        let mut req = app.client.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = app.send(req).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {:?}",
            r.status,
            r.json
        );
        let got = app.received().pop().unwrap();
        assert_eq!(upstream_scope(&got).to_string(), scope, "{method} {path}");
        assert_eq!(api_keys(&got), vec![KEY.to_owned()], "{method} {path}");
        assert!(got
            .header("x-stream-client")
            .unwrap()
            .starts_with("stream-gateway-"));
        assert_eq!(
            got.target.split('?').next().unwrap(),
            format!("/api/v1.0{}", path.split('?').next().unwrap())
        );
    }
}

#[tokio::test]
async fn batch_calls_are_signed_with_http_signatures_by_default() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/feed/add_to_many/",
            &json!({"activity": keyed_activity(1), "feeds": ["user:1", "user:2"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let r = app
        .post(
            "/follow_many/?activity_copy_limit=10",
            &json!([{"source": "timeline:1", "target": "user:1"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    for got in app.received() {
        let auth =
            httpsig::parse(got.header("authorization").unwrap()).expect("a Signature header");
        assert_eq!(auth.key_id, KEY);
        assert_eq!(auth.headers, vec!["(request-target)", "date"]);
        assert_eq!(got.header("x-api-key"), Some(KEY));
        assert_eq!(got.header("stream-auth-type"), None);
        let message =
            httpsig::signing_string(&got.method, &got.target, got.header("date").unwrap());
        assert!(httpsig::verify(
            &Secret::new(SECRET),
            &message,
            &auth.signature
        ));
        assert_eq!(api_keys(&got), vec![KEY.to_owned()]);
    }
    let follow_many = &app.received()[1];
    assert!(follow_many
        .target
        .starts_with("/api/v1.0/follow_many/?activity_copy_limit=10&api_key="));
    let store = app.emu().store();
    assert_eq!(
        (
            store.len("user:1"),
            store.len("user:2"),
            store.len("timeline:1")
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn batch_calls_use_all_feed_jwts_when_batch_auth_is_jwt() {
    let app = spawn_with(|f| f.merge(("stream.batch_auth", "jwt"))).await;
    let r = app
        .post(
            "/feed/add_to_many/",
            &json!({"activity": activity(1), "feeds": ["user:1"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(
        upstream_scope(&app.received()[0]).to_string(),
        "feed/write/*"
    );
    let r = app
        .post(
            "/follow_many/",
            &json!([{"source": "timeline:1", "target": "user:1"}]),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(
        upstream_scope(&app.received()[1]).to_string(),
        "follower/write/*"
    );
}

#[tokio::test]
async fn streams_status_body_and_rate_limit_headers_come_back_unchanged() {
    let app = spawn_app().await;
    let r = app.get("/feed/user/42/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["results"], json!([]));
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-ratelimit-limit"], "1000");
    assert_eq!(r.headers["x-ratelimit-remaining"], "999");
    assert!(r.headers.contains_key("x-ratelimit-reset"));
    // An error from Stream is passed back as Stream sent it.
    let r = app
        .post("/feed/user/42/", &json!({"activities": "nope"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["exception"], "InputException");
}

#[tokio::test]
async fn a_path_without_its_final_slash_is_forwarded_with_it() {
    let app = spawn_app().await;
    let r = app.get("/feed/user/42").await;
    assert_eq!(r.status, 200);
    assert!(app.received()[0]
        .target
        .starts_with("/api/v1.0/feed/user/42/?"));
}

#[tokio::test]
async fn tokens_carry_exp_per_token_ttl_and_never_iat() {
    let app = spawn_with(|f| f.merge(("stream.token_ttl_s", 120))).await;
    app.get("/feed/user/42/").await;
    let token = app.received()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now + 100 && exp <= now + 121, "{claims}");
    assert!(claims.get("iat").is_none());
    // The second call reuses the cached token.
    app.get("/feed/user/42/").await;
    assert_eq!(app.received()[1].header("authorization").unwrap(), token);
}
