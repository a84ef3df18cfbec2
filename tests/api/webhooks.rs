//! Stream's webhooks through the gateway: verified (signature, key, size), forwarded byte for
//! byte to a fake service, its answer passed back, retries answered once, rotation's grace,
//! timeouts; and the emulator's signed send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use figment::Figment;
use serde_json::{json, Value};
use stream_wire::auth::Secret;
use stream_wire::webhook::sign;

use crate::helpers::*;

/// One request the fake service received.
#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
}

/// How the fake service answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: &'static str,
    delay: Duration,
}

impl Default for Answer {
    fn default() -> Self {
        Self {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body: r#"{"message":{"text":"rewritten by the hook"}}"#,
            delay: Duration::ZERO,
        }
    }
}

/// A service behind the gateway that records what it receives.
struct Target {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    count: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
}

impl Target {
    async fn spawn() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new(Answer::default()));
        let (h, c, a) = (hits.clone(), count.clone(), answer.clone());
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (h, c, a) = (h.clone(), c.clone(), a.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    h.lock().unwrap().push(Hit { headers, body });
                    let answer = a.lock().unwrap().clone();
                    tokio::time::sleep(answer.delay).await;
                    (
                        StatusCode::from_u16(answer.status).unwrap(),
                        [("content-type", answer.content_type)],
                        answer.body,
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            hits,
            count,
            answer,
        }
    }

    fn hits(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn last(&self) -> Hit {
        self.hits.lock().unwrap().last().cloned().expect("a hit")
    }

    fn answer_with(&self, f: impl FnOnce(&mut Answer)) {
        f(&mut self.answer.lock().unwrap());
    }
}

/// A gateway with a `chat` route to `target`.
async fn gateway(target: &Target, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let url = target.url.clone();
    spawn_with(move |f| {
        tweak(
            f.merge(("webhooks.routes.chat.path", "/webhooks/chat"))
                .merge(("webhooks.routes.chat.forward_to", url)),
        )
    })
    .await
}

const EVENT: &str = "{\"type\":\"message.new\",  \"message\":{\"text\":\"h\u{e9}llo \u{2603}\"}}\n";

/// A webhook as Stream sends it: signed with `secret`, the app's key, an id and an attempt.
fn webhook(app: &TestApp, secret: &str, body: &str, id: &str) -> reqwest::RequestBuilder {
    app.client
        .post(format!("http://{}/webhooks/chat", app.addr))
        .header("content-type", "application/json")
        .header("x-signature", sign(&Secret::new(secret), body.as_bytes()))
        .header("x-api-key", KEY)
        .header("x-webhook-id", id)
        .header("x-webhook-attempt", "1")
        .body(body.to_owned())
}

async fn raw(resp: reqwest::RequestBuilder) -> (u16, HeaderMap, Bytes) {
    let r = resp.send().await.expect("gateway answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap())
}

#[tokio::test]
async fn a_valid_webhook_is_forwarded_byte_for_byte_and_the_hooks_answer_comes_back() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let (status, headers, body) = raw(webhook(&app, SECRET, EVENT, "wh-1")
        .header("x-stream-verified", "1")
        .header("cookie", "session=abc")
        .header("traceparent", traceparent))
    .await;

    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(body, r#"{"message":{"text":"rewritten by the hook"}}"#);
    assert_eq!(target.hits(), 1);
    let hit = target.last();
    assert_eq!(hit.body, EVENT.as_bytes(), "the body byte for byte");
    let h = &hit.headers;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-webhook-id"], "wh-1");
    assert_eq!(h["x-webhook-attempt"], "1");
    assert_eq!(h["x-api-key"], KEY);
    let verified: Vec<_> = h.get_all("x-stream-verified").iter().collect();
    assert_eq!(verified, ["1"], "exactly the gateway's own");
    assert!(
        h.get("x-signature").is_none(),
        "the signature stays at the gateway"
    );
    assert!(h.get("cookie").is_none());
    let sent = h["traceparent"].to_str().unwrap();
    assert!(
        sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
            && !sent.contains("00f067aa0ba902b7"),
        "the caller's trace continues through the gateway's span: {sent}"
    );
    assert_eq!(
        app.metric(r#"gateway_webhooks_total{route="chat",outcome="forwarded"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"gateway_requests_total{endpoint="webhook",status="200"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn every_refusal_is_401_naming_its_reason_and_nothing_is_forwarded() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    let url = format!("http://{}/webhooks/chat", app.addr);
    let good = sign(&Secret::new(SECRET), EVENT.as_bytes());
    let wrong = sign(&Secret::new("not-the-secret"), EVENT.as_bytes());
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "bad_signature",
            webhook(&app, "not-the-secret", EVENT, "wh-1"),
        ),
        (
            "bad_signature",
            // Forged: a wrong signature with the header the target trusts.
            webhook(&app, "not-the-secret", EVENT, "wh-2").header("x-stream-verified", "1"),
        ),
        (
            "api_key",
            app.client
                .post(&url)
                .header("x-signature", &good)
                .header("x-api-key", "another-apps-key")
                .body(EVENT),
        ),
        (
            "api_key",
            app.client
                .post(&url)
                .header("x-signature", &good)
                .body(EVENT),
        ),
        (
            "no_signature",
            app.client.post(&url).header("x-api-key", KEY).body(EVENT),
        ),
        (
            "malformed_signature",
            app.client
                .post(&url)
                .header("x-api-key", KEY)
                .header("x-signature", format!("sha256={good}"))
                .body(EVENT),
        ),
        (
            "bad_signature",
            // Signed, but the body was changed on the way.
            app.client
                .post(&url)
                .header("x-api-key", KEY)
                .header("x-signature", &good)
                .body(EVENT.replace("llo", "lo")),
        ),
    ];
    let mut counts = std::collections::HashMap::new();
    for (reason, req) in cases {
        let reply = app.send(req).await;
        assert_eq!(reply.status, 401, "{reason}: {:?}", reply.json);
        assert_eq!(reply.json["code"], 17, "Stream's shape");
        let detail = reply.json["detail"].as_str().unwrap();
        assert!(detail.starts_with("webhook refused: "), "{detail}");
        assert!(
            !detail.contains(&good) && !detail.contains(&wrong),
            "{detail}"
        );
        assert!(!reply.json.to_string().contains(SECRET));
        *counts.entry(reason).or_insert(0.0) += 1.0;
    }
    assert_eq!(target.hits(), 0, "nothing forwarded");
    for (reason, n) in counts {
        let series = format!(r#"gateway_webhooks_refused_total{{route="chat",reason="{reason}"}}"#);
        assert_eq!(app.metric(&series).await, n, "{series}");
    }
    assert_eq!(
        app.metric(r#"gateway_webhooks_total{route="chat",outcome="refused"}"#)
            .await,
        7.0
    );
}

#[tokio::test]
async fn an_oversize_body_is_refused_without_being_read_past_the_cap() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f.merge(("webhooks.max_body_bytes", 1024))).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let reply = app.send(webhook(&app, SECRET, &big, "wh-big")).await;
    assert_eq!(reply.status, 413, "{:?}", reply.json);
    // Chunked, so no Content-Length warns: refused once the count passes the cap, while the
    // sender still has megabytes to go.
    let sig = sign(&Secret::new(SECRET), b"{}");
    let head = format!(
        "POST /webhooks/chat HTTP/1.1\r\nhost: localhost\r\nx-api-key: {KEY}\r\nx-signature: {sig}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let mut bytes = head.into_bytes();
    for _ in 0..4 {
        bytes.extend_from_slice(format!("400\r\n{}\r\n", "y".repeat(0x400)).as_bytes());
    }
    let answer = raw_http(app.addr, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(target.hits(), 0);
    assert_eq!(
        app.metric(r#"gateway_webhooks_refused_total{route="chat",reason="too_large"}"#)
            .await,
        2.0
    );
    // At the cap exactly, it passes.
    let fits = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 - 10));
    assert_eq!(fits.len(), 1024);
    assert_eq!(
        app.send(webhook(&app, SECRET, &fits, "wh-fits"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_body_that_stalls_is_refused_after_the_timeout_and_not_forwarded() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f.merge(("webhooks.timeout_ms", 200))).await;
    let sig = sign(&Secret::new(SECRET), b"{}");
    let head = format!(
        "POST /webhooks/chat HTTP/1.1\r\nhost: localhost\r\nx-api-key: {KEY}\r\nx-signature: {sig}\r\n\
         content-length: 100\r\n\r\n{{\"a\":"
    );
    let started = std::time::Instant::now();
    let answer = raw_http(app.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("webhooks.timeout_ms"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(target.hits(), 0);
    assert_eq!(
        app.metric(r#"gateway_webhooks_refused_total{route="chat",reason="body"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_gzip_body_is_refused_as_compressed() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    // Gzip's magic bytes, signed as they are (Stream signs the uncompressed bytes).
    let gz: &[u8] = b"\x1f\x8b\x08\x00not really gzip";
    let req = app
        .client
        .post(format!("http://{}/webhooks/chat", app.addr))
        .header("x-signature", sign(&Secret::new(SECRET), gz))
        .header("x-api-key", KEY)
        .body(gz.to_vec());
    let reply = app.send(req).await;
    assert_eq!(reply.status, 401);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .contains("compression"));
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn a_retry_is_answered_from_memory_so_the_service_sees_the_event_once() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    let first = raw(webhook(&app, SECRET, EVENT, "wh-retry")).await;
    target.answer_with(|a| a.body = "{\"different\":true}");
    let retry =
        raw(webhook(&app, SECRET, EVENT, "wh-retry").header("x-webhook-attempt", "2")).await;
    assert_eq!(target.hits(), 1, "the retry was not forwarded");
    assert_eq!((retry.0, &retry.2), (first.0, &first.2), "the same answer");
    assert_eq!(retry.1["content-type"], "application/json; charset=utf-8");
    assert_eq!(
        app.metric(r#"gateway_webhooks_total{route="chat",outcome="replayed"}"#)
            .await,
        1.0
    );
    // Another event is forwarded; so is a retry of one the service failed.
    target.answer_with(|a| a.status = 500);
    assert_eq!(raw(webhook(&app, SECRET, EVENT, "wh-other")).await.0, 500);
    target.answer_with(|a| a.status = 200);
    assert_eq!(raw(webhook(&app, SECRET, EVENT, "wh-other")).await.0, 200);
    assert_eq!(target.hits(), 3);
}

#[tokio::test]
async fn a_duplicate_arriving_while_the_first_is_in_flight_waits_for_its_answer() {
    let target = Target::spawn().await;
    target.answer_with(|a| a.delay = Duration::from_millis(300));
    let app = gateway(&target, |f| f).await;
    let (a, b) = tokio::join!(raw(webhook(&app, SECRET, EVENT, "wh-dup")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        raw(webhook(&app, SECRET, EVENT, "wh-dup")).await
    });
    assert_eq!(target.hits(), 1, "forwarded once");
    assert_eq!((a.0, &a.2), (200, &b.2));
    assert_eq!(b.0, 200);
}

#[tokio::test]
async fn the_old_secret_verifies_webhooks_during_its_grace_only() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    assert!(app.state.keys().rotate(Secret::new("rotated-secret-2")));
    assert_eq!(raw(webhook(&app, SECRET, EVENT, "wh-old")).await.0, 200);
    assert_eq!(
        raw(webhook(&app, "rotated-secret-2", EVENT, "wh-new"))
            .await
            .0,
        200
    );
    assert_eq!(target.hits(), 2);

    // No grace: the old secret is refused as soon as the new one is in force.
    let strict = gateway(&target, |f| f.merge(("stream.previous_secret_grace_s", 0))).await;
    assert!(strict.state.keys().rotate(Secret::new("rotated-secret-2")));
    std::thread::sleep(Duration::from_millis(5));
    let reply = strict
        .send(webhook(&strict, SECRET, EVENT, "wh-old-2"))
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(target.hits(), 2);
}

#[tokio::test]
async fn a_slow_target_is_a_504_in_streams_shape_within_the_timeout() {
    let target = Target::spawn().await;
    target.answer_with(|a| a.delay = Duration::from_secs(5));
    let app = gateway(&target, |f| f.merge(("webhooks.timeout_ms", 200))).await;
    let started = std::time::Instant::now();
    let reply = app.send(webhook(&app, SECRET, EVENT, "wh-slow")).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json["exception"], "UpstreamTimeout");
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .contains("webhooks.timeout_ms"));
    assert_eq!(
        app.metric(r#"gateway_webhooks_total{route="chat",outcome="target_timeout"}"#)
            .await,
        1.0
    );
    // Not kept: Stream's retry is forwarded again.
    target.answer_with(|a| a.delay = Duration::ZERO);
    assert_eq!(
        app.send(webhook(&app, SECRET, EVENT, "wh-slow"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_unreachable_target_or_an_oversize_answer_is_a_502() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_with(move |f| {
        f.merge(("webhooks.routes.chat.path", "/webhooks/chat"))
            .merge(("webhooks.routes.chat.forward_to", dead))
    })
    .await;
    let reply = app.send(webhook(&app, SECRET, EVENT, "wh-dead")).await;
    assert_eq!(reply.status, 502, "{:?}", reply.json);
    assert_eq!(
        app.metric(r#"gateway_webhooks_total{route="chat",outcome="target_error"}"#)
            .await,
        1.0
    );

    let target = Target::spawn().await;
    let app = gateway(&target, |f| f.merge(("webhooks.max_body_bytes", 200))).await;
    target.answer_with(|a| a.body = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789");
    let reply = app.send(webhook(&app, SECRET, "{}", "wh-huge")).await;
    assert_eq!(reply.status, 502);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .contains("webhooks.max_body_bytes"));
}

#[tokio::test]
async fn past_max_concurrency_webhooks_in_flight_one_is_answered_503_at_once() {
    let target = Target::spawn().await;
    target.answer_with(|a| a.delay = Duration::from_millis(300));
    let app = gateway(&target, |f| f.merge(("server.max_concurrency", 1))).await;
    let (first, second) = tokio::join!(raw(webhook(&app, SECRET, EVENT, "wh-a")), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        raw(webhook(&app, SECRET, EVENT, "wh-b")).await
    });
    assert_eq!((first.0, second.0), (200, 503));
    assert_eq!(target.hits(), 1);
    assert_eq!(
        app.metric(r#"gateway_webhooks_refused_total{route="chat",reason="overloaded"}"#)
            .await,
        1.0
    );
    // The permit is back: the next one is forwarded.
    assert_eq!(raw(webhook(&app, SECRET, EVENT, "wh-b")).await.0, 200);
}

#[tokio::test]
async fn a_route_takes_only_post_and_other_paths_stay_streams_404() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    let get = app
        .send(app.client.get(format!("http://{}/webhooks/chat", app.addr)))
        .await;
    assert_eq!(get.status, 405);
    assert_eq!(get.json["code"], 4, "Stream's error shape: {:?}", get.json);
    assert_eq!(get.json["exception"], "InputException");
    let other = app
        .send(
            app.client
                .post(format!("http://{}/webhooks/feeds", app.addr)),
        )
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(target.hits(), 0);
}

#[tokio::test]
async fn the_emulator_signs_an_event_as_stream_does_and_returns_the_answer() {
    let target = Target::spawn().await;
    let app = gateway(&target, |f| f).await;
    let send = |body: Value| {
        app.client
            .post(format!("{}/_emulator/webhooks/send", app.emu.url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let url = format!("http://{}/webhooks/chat", app.addr);
    let event = json!({"type": "message.new", "message": {"text": "hi"}});
    let r = send(json!({"url": url, "event": event, "webhook_id": "emu-1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["content_type"], "application/json; charset=utf-8");
    assert_eq!(
        answer["body"],
        r#"{"message":{"text":"rewritten by the hook"}}"#
    );
    let hit = target.last();
    assert_eq!(hit.body, event.to_string().as_bytes());
    assert_eq!(hit.headers["x-webhook-id"], "emu-1");
    // A wrong secret is refused by the gateway, and the emulator says so.
    let r = send(json!({"url": url, "body": "{}", "secret": "wrong"}))
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["status"], 401);
    assert_eq!(target.hits(), 1);
    let bad = send(json!({"url": "ftp://x", "body": "{}"})).await.unwrap();
    assert_eq!(bad.status(), 400);
    let both = send(json!({"url": url})).await.unwrap();
    assert_eq!(both.status(), 400);
}
