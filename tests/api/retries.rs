//! Timeouts, retries and the deadline end to end, against injected faults. The retry loop's
//! own behaviour (waits, limits, the deadline) is tested on paused time in `src/upstream/`;
//! these check that the pieces meet: the endpoint table's retry safety, the emulator's faults,
//! and the answers callers get.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

fn posts(app: &TestApp) -> usize {
    app.received().iter().filter(|r| r.method == "POST").count()
}

#[tokio::test]
async fn a_post_without_foreign_id_and_time_is_sent_once_after_a_503() {
    let app = spawn_app().await;
    app.fault("POST", "/api/v1.0/feed/user/1/", |f| f.status = Some(503));
    let r = app.post("/feed/user/1/", &activity(1)).await;
    assert_eq!(r.status, 503, "Stream's 503 is returned as it is");
    assert_eq!(posts(&app), 1);
}

#[tokio::test]
async fn a_post_with_foreign_id_and_time_is_retried_and_stored_once() {
    let app = spawn_app().await;
    // The first attempt is applied by Stream but answers after the gateway gave up on it.
    app.fault("POST", "/api/v1.0/feed/user/1/", |f| f.delay_ms = Some(700));
    let r = app.post("/feed/user/1/", &keyed_activity(1)).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(posts(&app), 2);
    let store = app.emu().store();
    assert_eq!(store.len("user:1"), 1);
    assert_eq!(store.activity_count(), 1);
}

#[tokio::test]
async fn a_non_idempotent_post_that_timed_out_is_not_resent() {
    let app = spawn_app().await;
    app.fault("POST", "/api/v1.0/feed/user/1/", |f| f.delay_ms = Some(700));
    let r = app.post("/feed/user/1/", &activity(1)).await;
    assert_eq!(
        (r.status, r.json["exception"].as_str()),
        (504, Some("UpstreamTimeout"))
    );
    assert_eq!(r.json["code"], 1);
    assert_eq!(posts(&app), 1);
}

#[tokio::test]
async fn reads_are_retried_after_503s_and_dropped_connections() {
    let app = spawn_app().await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| f.status = Some(503));
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| f.drop = true);
    let r = app.get("/feed/user/1/").await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(app.received().len(), 3);
}

#[tokio::test]
async fn a_429_with_retry_after_past_the_deadline_is_returned_at_once() {
    let app = spawn_app().await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| {
        f.status = Some(429);
        f.retry_after = Some("60".into());
    });
    let started = Instant::now();
    let r = app.get("/feed/user/1/").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "60");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not after waiting the 60 s"
    );
    assert_eq!(app.received().len(), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_after_retrying_even_a_non_idempotent_post() {
    // A port nothing listens on: connections fail before anything is sent.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app =
        spawn_with(|f| f.merge(("stream.base_url", format!("http://127.0.0.1:{port}")))).await;
    let started = Instant::now();
    let r = app
        .post(
            "/feed/user/1/",
            &json!({"actor": "a", "verb": "v", "object": "o"}),
        )
        .await;
    assert_eq!(
        (r.status, r.json["exception"].as_str()),
        (502, Some("UpstreamUnavailable"))
    );
    assert_eq!(r.json["code"], 1);
    assert!(
        r.json["detail"].as_str().unwrap().contains("3 attempt"),
        "{:?}",
        r.json
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_deadline_counts_from_the_start_of_the_request_body_included() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(|f| {
        f.merge(("upstream.deadline_ms", 1500))
            .merge(("upstream.timeout_ms", 1400))
            .merge(("upstream.max_retries", 0))
    })
    .await;
    app.fault("POST", "/api/v1.0/feed/user/1/", |f| {
        f.delay_ms = Some(5000)
    });
    let body = keyed_activity(1).to_string();
    let (head, tail) = body.split_at(10);
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let req = format!(
        "POST /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = s.read(&mut answer).await.unwrap();
    let took = started.elapsed();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 504"));
    // A fresh deadline after the body would end near 2.4 s (1.0 s body + 1.4 s attempt).
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2200),
        "{took:?}"
    );
}

/// A GET whose answer is still streaming when this returns: its head only.
async fn streamed(app: &TestApp, path: &str) -> reqwest::Result<reqwest::Response> {
    app.client.get(format!("{}{path}", app.api)).send().await
}

/// A gateway whose upstream is `upstream`, with answers limited to 1000 bytes.
async fn behind(upstream: &RawUpstream) -> TestApp {
    let url = upstream.url.clone();
    spawn_with(move |f| {
        f.merge(("stream.base_url", url))
            .merge(("upstream.max_response_bytes", 1000))
    })
    .await
}

fn assert_unusable(r: &Reply, detail: &str) {
    assert_eq!(r.status, 502, "{:?}", r.json);
    assert_eq!(r.json["exception"], "UpstreamUnavailable", "{:?}", r.json);
    assert_eq!(r.json["code"], 1);
    let d = r.json["detail"].as_str().unwrap_or_default();
    assert!(d.contains(detail), "{d}");
}

#[tokio::test]
async fn an_answer_declared_over_max_response_bytes_is_502_not_retried_and_dropped() {
    // A huge answer: its head and the first bytes; the rest would take long to come.
    let mut answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500000000\r\n\r\n"
            .to_vec();
    answer.extend(std::iter::repeat_n(b' ', 1000));
    let upstream = raw_upstream(RawAnswer::Bytes(answer)).await;
    let app = behind(&upstream).await;
    let r = app.get("/feed/user/1/").await;
    assert_unusable(&r, "upstream.max_response_bytes");
    assert_eq!(upstream.heads.lock().unwrap().len(), 1, "not retried");
    let closed = upstream.closed.clone();
    wait_until("the upstream connection is closed", || {
        closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn an_endless_chunked_answer_is_cut_at_max_response_bytes() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let upstream = raw_upstream(RawAnswer::EndlessChunks(head.into())).await;
    let app = behind(&upstream).await;
    // The answer streams, so the limit passes after the gateway answered: the caller's
    // response is cut (before or after its head went out), never completed short.
    let sent = streamed(&app, "/feed/user/1/").await;
    if let Ok(resp) = sent {
        assert!(resp.bytes().await.is_err(), "the caller's response is cut");
    }
    assert_eq!(upstream.heads.lock().unwrap().len(), 1, "not retried");
    let closed = upstream.closed.clone();
    wait_until("the upstream connection is closed", || {
        closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn informational_and_out_of_range_statuses_are_502_and_not_retried() {
    for head in [
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        "HTTP/1.1 600 Beyond\r\ncontent-length: 2\r\n\r\n{}",
        "HTTP/1.1 999 Beyond\r\ncontent-length: 2\r\n\r\n{}",
    ] {
        let upstream = raw_upstream(RawAnswer::Bytes(head.as_bytes().to_vec())).await;
        let app = behind(&upstream).await;
        let r = app.get("/feed/user/1/").await;
        assert_unusable(&r, &head[9..12]);
        assert_eq!(
            upstream.heads.lock().unwrap().len(),
            1,
            "{head}: not retried"
        );
    }
}

#[tokio::test]
async fn an_answer_that_stalls_past_the_attempt_timeout_is_cut_not_left_hanging() {
    // The head and the first bytes of a 100-byte body, then nothing.
    let answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"results\":"
            .to_vec();
    let upstream = raw_upstream(RawAnswer::Bytes(answer)).await;
    let app = behind(&upstream).await;
    let started = std::time::Instant::now();
    let resp = streamed(&app, "/feed/user/1/").await.unwrap();
    assert_eq!(resp.status(), 200, "the head went out at once");
    assert!(resp.bytes().await.is_err(), "the stalled body is cut");
    // upstream.timeout_ms (400 ms in the tests) covers the body: far less than a hang.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(upstream.heads.lock().unwrap().len(), 1, "not retried");
}

#[tokio::test]
async fn a_request_is_in_flight_until_its_answer_has_streamed_out() {
    // A head and the first bytes, then a stall: the first request's answer is still streaming.
    let answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"results\":"
            .to_vec();
    let upstream = raw_upstream(RawAnswer::Bytes(answer)).await;
    let url = upstream.url.clone();
    let app = spawn_with(move |f| {
        f.merge(("stream.base_url", url))
            .merge(("server.max_concurrency", 1))
    })
    .await;
    let first = streamed(&app, "/feed/user/1/").await.unwrap();
    assert_eq!(first.status(), 200, "its head is out, its body is not");
    let second = app.get("/feed/user/2/").await;
    assert_eq!(
        (second.status, second.json["exception"].as_str()),
        (503, Some("Overloaded")),
        "the streaming answer still holds the one permit"
    );
    // Once the first answer ends (cut at the stall), its permit is free again.
    assert!(first.bytes().await.is_err());
    let third = streamed(&app, "/feed/user/3/").await.unwrap();
    assert_eq!(third.status(), 200, "proxied again (its answer stalls too)");
}

#[tokio::test]
async fn a_refusal_too_long_to_read_whole_is_502_and_not_counted_as_a_wrong_secret() {
    // A 403 is read whole to see whether Stream says the signature is wrong: one that does not
    // end within the bound is not passed on as if it were complete.
    let head =
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let upstream = raw_upstream(RawAnswer::EndlessChunks(head.into())).await;
    let app = behind(&upstream).await;
    let r = app.get("/feed/user/1/").await;
    assert_unusable(&r, "403 answer could not be read whole");
    assert_eq!(
        app.metric("gateway_upstream_auth_failures_total").await,
        0.0
    );
}

#[tokio::test]
async fn a_client_that_never_reads_a_large_answer_holds_its_permit_only_until_the_deadline() {
    use tokio::io::AsyncWriteExt;
    let mut bytes =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7340032\r\n\r\n"
            .to_vec();
    bytes.resize(bytes.len() + 7 * 1024 * 1024, b' ');
    let upstream = raw_upstream(RawAnswer::Bytes(bytes)).await;
    let url = upstream.url.clone();
    let app = spawn_with(move |f| {
        f.merge(("stream.base_url", url))
            .merge(("server.max_concurrency", 2))
            .merge(("upstream.deadline_ms", 1000))
            .merge(("upstream.timeout_ms", 1000))
    })
    .await;
    // Two clients ask for the answer and never read it: both permits are taken.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.get("/feed/user/1/").await.status,
        503,
        "both permits held"
    );
    // Past the deadline (not the 60 s idle timeout) they are given back.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = app
        .client
        .get(format!("{}/feed/user/1/", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(slow);
}
