//! Hostile shapes at the edge: each answered with a clear 4xx or closed, never forwarded,
//! never a crash.

use crate::helpers::*;

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

fn is_4xx_or_closed(answer: &str) -> bool {
    answer.is_empty() || status_line(answer).starts_with("HTTP/1.1 4")
}

#[tokio::test]
async fn conflicting_content_length_and_transfer_encoding_are_refused() {
    let app = spawn_app().await;
    // A smuggling shape: which length wins decides whether a second request hides in the body.
    let smuggle = "POST /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1.0/feed/user/2/ HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer = raw_http(app.addr, smuggle.as_bytes()).await;
    assert!(is_4xx_or_closed(&answer), "{answer}");
    assert!(
        app.received()
            .iter()
            .all(|r| !r.target.contains("/user/2/")),
        "nothing smuggled through"
    );
    let two_lengths = "POST /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}";
    let answer = raw_http(app.addr, two_lengths.as_bytes()).await;
    assert!(is_4xx_or_closed(&answer), "{answer}");
    assert!(app.received().is_empty());
}

#[tokio::test]
async fn a_header_flood_is_refused_and_the_gateway_keeps_serving() {
    let app = spawn_app().await;
    let mut req = String::from("GET /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..500 {
        req.push_str(&format!("X-Flood-{i}: {}\r\n", "a".repeat(1000)));
    }
    req.push_str("\r\n");
    let answer = raw_http(app.addr, req.as_bytes()).await;
    assert!(is_4xx_or_closed(&answer), "{}", status_line(&answer));
    assert!(app.received().is_empty());
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
}

#[tokio::test]
async fn a_huge_query_string_is_414_and_not_forwarded() {
    let app = spawn_app().await;
    let r = app
        .get(&format!("/feed/user/1/?ranking={}", "a".repeat(9000)))
        .await;
    assert_eq!(
        (r.status, r.json["code"].as_u64()),
        (414, Some(4)),
        "{:?}",
        r.json
    );
    assert!(app.received().is_empty());
    // Just under the limit is fine.
    assert_eq!(
        app.get(&format!("/feed/user/1/?ranking={}", "a".repeat(8000)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn invalid_utf8_in_path_or_query_is_400_and_not_forwarded() {
    let app = spawn_app().await;
    assert_eq!(app.get("/feed/user/%FF/").await.status, 400);
    let r = app.get("/feed/user/1/?ranking=%FF%FE").await;
    assert_eq!(
        (r.status, r.json["exception"].as_str()),
        (400, Some("InputException"))
    );
    let raw =
        b"GET /api/v1.0/feed/user/\xff/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert!(is_4xx_or_closed(&raw_http(app.addr, raw).await));
    assert!(app.received().is_empty());
}

#[tokio::test]
async fn a_repeated_api_key_is_refused_and_look_alikes_become_exactly_one_of_ours() {
    let app = spawn_app().await;
    let r = app.get("/feed/user/1/?api_key=a&api_key=b&limit=1").await;
    assert_eq!(r.status, 400);
    assert!(app.received().is_empty());
    let r = app
        .get("/feed/user/1/?API_KEY=c&api-key=d&apiKey=e&limit=1")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(api_keys(&app.received()[0]), vec![KEY.to_owned()]);
}
