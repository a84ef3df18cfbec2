//! Bad input gets Stream's error body naming the field, and nothing reaches Stream.

use serde_json::json;

use crate::helpers::*;

async fn refused(app: &TestApp, r: Reply, status: u16, code: u64, field: Option<&str>) {
    assert_eq!(r.status, status, "{:?}", r.json);
    assert_eq!(r.json["code"].as_u64(), Some(code), "{:?}", r.json);
    assert_eq!(r.json["status_code"].as_u64(), Some(u64::from(status)));
    if let Some(f) = field {
        assert!(
            r.json["exception_fields"].get(f).is_some(),
            "expected field {f}: {:?}",
            r.json
        );
        assert!(
            r.json["detail"].as_str().unwrap().starts_with(f),
            "{:?}",
            r.json
        );
    }
    assert!(
        app.received().is_empty(),
        "nothing may reach Stream: {:?}",
        app.received()
    );
}

#[tokio::test]
async fn bad_slugs_user_ids_and_feed_ids_are_refused_naming_the_field() {
    let app = spawn_app().await;
    refused(
        &app,
        app.get("/feed/us-er/42/").await,
        400,
        4,
        Some("feed_slug"),
    )
    .await;
    refused(
        &app,
        app.get("/feed/user/4.2/").await,
        400,
        4,
        Some("user_id"),
    )
    .await;
    refused(
        &app,
        app.get(&format!("/feed/user/{}/", "a".repeat(256))).await,
        400,
        4,
        Some("user_id"),
    )
    .await;
    refused(
        &app,
        app.delete("/feed/user/42/follows/user-7/").await,
        400,
        4,
        Some("target"),
    )
    .await;
    refused(
        &app,
        app.post("/feed/user/42/follows/", &json!({"target": "user 7"}))
            .await,
        400,
        4,
        Some("target"),
    )
    .await;
    refused(
        &app,
        app.get("/feed/user/42/following/?filter=nope").await,
        400,
        4,
        Some("filter"),
    )
    .await;
}

#[tokio::test]
async fn pagination_and_documented_limits_are_checked() {
    let app = spawn_app().await;
    refused(
        &app,
        app.get("/feed/user/42/?limit=-1").await,
        400,
        4,
        Some("limit"),
    )
    .await;
    refused(
        &app,
        app.get("/feed/user/42/?id_lt=a&id_gt=b").await,
        400,
        4,
        Some("id_lt"),
    )
    .await;
    refused(
        &app,
        app.get("/feed/user/42/followers/?offset=401").await,
        400,
        4,
        Some("offset"),
    )
    .await;
    refused(
        &app,
        app.post(
            "/follow_many/?activity_copy_limit=1001",
            &json!([{"source": "a:1", "target": "b:2"}]),
        )
        .await,
        400,
        4,
        Some("activity_copy_limit"),
    )
    .await;
    let feeds: Vec<String> = (0..5001).map(|i| format!("user:{i}")).collect();
    refused(
        &app,
        app.post(
            "/feed/add_to_many/",
            &json!({"activity": activity(1), "feeds": feeds}),
        )
        .await,
        400,
        4,
        Some("feeds"),
    )
    .await;
    let follows: Vec<_> = (0..2501)
        .map(|i| json!({"source": "timeline:1", "target": format!("user:{i}")}))
        .collect();
    refused(
        &app,
        app.post("/follow_many/", &json!(follows)).await,
        400,
        4,
        Some("body"),
    )
    .await;
    let updates: Vec<_> = (0..101).map(keyed_activity).collect();
    refused(
        &app,
        app.post("/activities/", &json!({"activities": updates}))
            .await,
        400,
        4,
        Some("activities"),
    )
    .await;
    // The boundaries themselves pass.
    assert_eq!(
        app.get("/feed/user/42/followers/?offset=400").await.status,
        200
    );
}

#[tokio::test]
async fn malformed_json_and_missing_fields_are_refused() {
    let app = spawn_app().await;
    refused(
        &app,
        app.post_raw("/feed/user/42/", "{\"actor\":").await,
        400,
        4,
        Some("body"),
    )
    .await;
    refused(
        &app,
        app.post_raw("/feed/user/42/", "").await,
        400,
        4,
        Some("body"),
    )
    .await;
    refused(
        &app,
        app.post("/feed/user/42/", &json!({"actor": "a", "verb": "v"}))
            .await,
        400,
        4,
        Some("activity.object"),
    )
    .await;
    refused(
        &app,
        app.post(
            "/feed/user/42/",
            &json!({"activities": [activity(1), {"actor": 1}]}),
        )
        .await,
        400,
        4,
        Some("activities[1].verb"),
    )
    .await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let app = spawn_app().await;
    refused(&app, app.get("/personalization/").await, 404, 16, None).await;
    refused(&app, app.get("/reaction/a/b/c/d/").await, 404, 16, None).await;
    // A known path with another method: `reaction/` only takes POST.
    refused(&app, app.get("/reaction/").await, 405, 4, None).await;
    refused(&app, app.get("/feed/user/42/a/b/c/").await, 404, 16, None).await;
    let r = app
        .send(app.client.get(format!("http://{}/elsewhere", app.addr)))
        .await;
    assert_eq!(
        (r.status, r.json["exception"].as_str()),
        (404, Some("DoesNotExistException"))
    );
    let r = app
        .send(app.client.put(format!("{}/feed/user/42/", app.api)))
        .await;
    assert_eq!(r.headers["allow"], "GET, POST");
    refused(&app, r, 405, 4, None).await;
    refused(
        &app,
        app.send(app.client.patch(format!("{}/activities/", app.api)))
            .await,
        405,
        4,
        None,
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = spawn_with(|f| f.merge(("server.max_body_bytes", 1000))).await;
    let big = json!({"actor": "a", "verb": "v", "object": "x".repeat(2000)});
    refused(&app, app.post("/feed/user/42/", &big).await, 413, 4, None).await;
    // Without a Content-Length (chunked), the limit still holds.
    let body = big.to_string();
    let raw = format!(
        "POST /api/v1.0/feed/user/42/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let answer = raw_http(app.addr, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(app.received().is_empty());
    let small = json!({"actor": "a", "verb": "v", "object": "x"});
    assert_eq!(app.post("/feed/user/42/", &small).await.status, 201);
}

#[tokio::test]
async fn percent_encoded_tricks_are_refused() {
    let app = spawn_app().await;
    for p in [
        "/feed/user/..%2F..%2Fadmin/",
        "/feed/user/42%00/",
        "/feed/user/%C3%A9/",
        "/feed/user/%2e%2e/",
        "/feed/user%2F42/x/",
    ] {
        let r = app.get(p).await;
        assert!(r.status == 400 || r.status == 404, "{p}: {}", r.status);
        assert!(app.received().is_empty(), "{p}");
    }
    let r = app.delete("/feed/user/42/a%2Fb/").await;
    assert_eq!(r.status, 400);
    assert!(app.received().is_empty());
}

#[tokio::test]
async fn a_body_that_trickles_in_past_the_deadline_is_408_and_never_forwarded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(|f| f.merge(("upstream.deadline_ms", 300))).await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"POST /api/v1.0/feed/user/42/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60\r\n\r\n{\"actor\":")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("upstream.deadline_ms"), "{answer}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "the deadline, not the client's own timeout"
    );
    assert!(app.received().is_empty());
}

#[tokio::test]
async fn numbers_where_stream_takes_strings_pass_and_come_back_as_strings() {
    let app = spawn_app().await;
    let body = json!({"actor": 1, "verb": "tweet", "object": 3, "foreign_id": 7,
        "time": "2026-11-27T10:00:00.123Z", "target": 9});
    let r = app.post("/feed/user/42/", &body).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    // Forwarded as sent: byte for byte.
    let sent = app.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(sent[0].body.as_bytes()).unwrap(),
        body
    );
    let r = app.get("/feed/user/42/").await;
    let a = &r.json["results"][0];
    assert_eq!(
        (&a["actor"], &a["object"], &a["foreign_id"], &a["target"]),
        (&json!("1"), &json!("3"), &json!("7"), &json!("9"))
    );
}

#[tokio::test]
async fn a_key_given_twice_is_refused_naming_it_so_nothing_is_smuggled() {
    let app = spawn_app().await;
    let smuggled = r#"{"actor":"a","verb":"v","object":"o","to":["notification:1 tok"],"to":["notification:1"]}"#;
    refused(
        &app,
        app.post_raw("/feed/user/42/", smuggled).await,
        400,
        4,
        Some("to"),
    )
    .await;
    let target = r#"{"target":"*:*","target":"user:42"}"#;
    refused(
        &app,
        app.post_raw("/feed/user/1/follows/", target).await,
        400,
        4,
        Some("target"),
    )
    .await;
    let limit = r#"{"target":"user:42","activity_copy_limit":5000,"activity_copy_limit":1}"#;
    refused(
        &app,
        app.post_raw("/feed/user/1/follows/", limit).await,
        400,
        4,
        Some("activity_copy_limit"),
    )
    .await;
}

#[tokio::test]
async fn caller_tokens_inside_follow_many_and_partial_updates_never_leave() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/follow_many/",
            &json!([{"source": "timeline:1", "target": "user:2", "target_token": "their.jwt.token"}]),
        )
        .await;
    assert!(r.status < 300, "{:?}", r.json);
    let r = app
        .post(
            "/activity/",
            &json!({"id": "x", "set": {"to": ["notification:1 their.jwt.token"]}}),
        )
        .await;
    assert!(r.status < 500, "{:?}", r.json);
    let sent = app.received();
    assert_eq!(sent.len(), 2);
    for s in sent {
        assert!(!s.body.contains("their.jwt.token"), "{}", s.body);
    }
}
