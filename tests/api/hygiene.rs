//! The caller's credentials never go upstream: not in headers, not in the query, not in bodies.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn caller_credentials_in_headers_and_query_are_replaced() {
    let app = spawn_app().await;
    let req = app
        .client
        .get(format!(
            "{}/feed/user/42/?api_key={KEY}&limit=3&API_KEY=again&authorization=x",
            app.api
        ))
        .header(
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJyZXNvdXJjZSI6IioifQ.forged",
        )
        .header("stream-auth-type", "simple")
        .header("x-api-key", "theirs")
        .header("date", "Mon, 01 Jan 2001 00:00:00 GMT")
        .header("cookie", "session=1")
        .header("proxy-authorization", "Basic eA==")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("te", "trailers");
    let r = app.send(req).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let got = &app.received()[0];
    assert_eq!(api_keys(got), vec![KEY.to_owned()]);
    assert!(got.target.contains("limit=3"));
    assert!(!got.target.contains("authorization"));
    assert_eq!(upstream_scope(got).to_string(), "feed/read/user42");
    for h in [
        "x-api-key",
        "date",
        "cookie",
        "proxy-authorization",
        "x-hop",
        "te",
    ] {
        assert_eq!(got.header(h), None, "{h} must not be forwarded");
    }
    assert_eq!(got.header("stream-auth-type"), Some("jwt"));
}

#[tokio::test]
async fn tokens_inside_bodies_are_removed() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/feed/timeline/1/follows/",
            &json!({"target": "user:2", "target_token": "their.forged.token"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let body: Value = serde_json::from_str(&app.received()[0].body).unwrap();
    assert_eq!(body, json!({"target": "user:2"}));

    let mut a = activity(1);
    a["to"] = json!(["notification:1 their.forged.token", "user:3"]);
    let r = app.post("/feed/user/2/", &a).await;
    assert_eq!(r.status, 201);
    let body: Value = serde_json::from_str(&app.received()[1].body).unwrap();
    assert_eq!(body["to"], json!(["notification:1", "user:3"]));
    assert_eq!(app.emu().store().len("notification:1"), 1);
}

#[tokio::test]
async fn bodies_without_credentials_are_forwarded_byte_for_byte() {
    let app = spawn_app().await;
    let raw = "{\"actor\": \"user:1\",   \"verb\":\"post\", \"object\":\"post:1\", \"custom\": {\"x\": [1, 2.50]}}";
    assert_eq!(app.post_raw("/feed/user/2/", raw).await.status, 201);
    assert_eq!(app.received()[0].body, raw);
    assert_eq!(
        app.received()[0].header("content-type"),
        Some("application/json")
    );
}

#[tokio::test]
async fn get_and_delete_bodies_are_not_forwarded() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .delete(format!("{}/feed/user/2/x/", app.api))
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.received()[0].body, "");
}

#[tokio::test]
async fn the_request_id_is_kept_forwarded_and_returned() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/2/", app.api))
                .header("x-request-id", "req-123"),
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "req-123");
    assert_eq!(app.received()[0].header("x-request-id"), Some("req-123"));
    let r = app.get("/feed/user/2/").await;
    assert!(!r.headers["x-request-id"].is_empty());
}

#[tokio::test]
async fn a_body_sent_with_a_get_or_delete_keeps_the_connection_usable() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let app = spawn_app().await;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut conn = BufReader::new(stream);
    // stream-python sends `{}` with every DELETE, on a kept-alive connection.
    for (i, method) in ["DELETE", "GET", "DELETE", "GET"].iter().enumerate() {
        let path = if *method == "DELETE" {
            format!("/api/v1.0/feed/user/1/a{i}/")
        } else {
            "/api/v1.0/feed/user/1/".to_owned()
        };
        // The head first, the body a moment later, as a client's separate writes arrive.
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n");
        conn.get_mut().write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        conn.get_mut().write_all(b"{}").await.unwrap();
        let mut status = String::new();
        conn.read_line(&mut status).await.unwrap();
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "request {i}: {status:?}"
        );
        let mut len = 0;
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            assert!(
                !lower.starts_with("connection: close"),
                "request {i}: {line}"
            );
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body).await.unwrap();
    }
}

#[tokio::test]
async fn upstream_calls_go_through_the_configured_proxy() {
    let proxy = raw_upstream(RawAnswer::Bytes(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"from\":\"proxy\"}\n"
            .to_vec(),
    ))
    .await;
    let url = proxy.url.clone();
    let app = spawn_with(move |f| f.merge(("upstream.proxy", url))).await;
    let r = app.get("/feed/user/1/").await;
    assert_eq!((r.status, r.json["from"].as_str()), (200, Some("proxy")));
    let heads = proxy.heads.lock().unwrap().clone();
    let first = heads[0].lines().next().unwrap();
    let target = format!("GET {}/api/v1.0/feed/user/1/?", app.emu.url());
    assert!(first.starts_with(&target), "{first}");
    assert!(app.received().is_empty(), "nothing went around the proxy");
}

#[tokio::test]
async fn a_request_id_outside_the_pattern_is_replaced_by_a_new_one() {
    let app = spawn_app().await;
    let valid = |v: &str| {
        (1..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    };
    let bad: [&[u8]; 5] = [
        b"req 1 status=200 forged=yes",
        &[b'a'; 129],
        "r\u{e9}q".as_bytes(),
        b"req/1",
        b"",
    ];
    for (n, id) in bad.iter().enumerate() {
        let v = reqwest::header::HeaderValue::from_bytes(id).unwrap();
        let r = app
            .send(
                app.client
                    .get(format!("{}/feed/user/1/", app.api))
                    .header("x-request-id", v),
            )
            .await;
        assert_eq!(r.status, 200);
        let given = r.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(valid(&given) && given.as_bytes() != *id, "{given:?}");
        assert_eq!(
            app.received()[n].header("x-request-id"),
            Some(given.as_str())
        );
    }
    // Two ids: neither is trusted over the other.
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/1/", app.api))
                .header("x-request-id", "first")
                .header("x-request-id", "second"),
        )
        .await;
    let given = r.headers["x-request-id"].to_str().unwrap();
    assert!(
        valid(given) && given != "first" && given != "second",
        "{given}"
    );
    // The longest valid id is kept as it is.
    let long = format!("{}{}", "Ab0._:-".repeat(18), "x".repeat(2));
    assert_eq!(long.len(), 128);
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/1/", app.api))
                .header("x-request-id", &long),
        )
        .await;
    assert_eq!(r.headers["x-request-id"].to_str().unwrap(), long);
}
