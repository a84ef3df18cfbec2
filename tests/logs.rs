//! No secret, JWT or signature in any log line, while requests succeed and fail and while
//! the secret rotates; and every request's line carries its trace id.
//!
//! A test binary of its own: a thread-local subscriber (`set_default`) only sees every event
//! when no other test in the process logs without one (tracing caches callsite interest
//! process-wide), so the capture runs here alone.
// std locks are banned in src/ (they poison); in a test a poisoned lock only fails the test.
#![allow(clippy::disallowed_types)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "api/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing::Level;

use helpers::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Every event at every level, as text lines, captured on this thread until the guard drops.
    fn text() -> (Self, tracing::subscriber::DefaultGuard) {
        let cap = Self::default();
        let c2 = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || c2.clone())
            .finish();
        (cap, tracing::subscriber::set_default(sub))
    }

    /// The same as JSON lines.
    fn json() -> (Self, tracing::subscriber::DefaultGuard) {
        let cap = Self::default();
        let c2 = cap.clone();
        let sub = tracing_subscriber::fmt()
            .json()
            .with_max_level(Level::TRACE)
            .with_writer(move || c2.clone())
            .finish();
        (cap, tracing::subscriber::set_default(sub))
    }

    /// What was written so far.
    fn text_so_far(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn exercise(app: &TestApp) {
    let r = app
        .send(
            app.client
                .get(format!("{}/feed/user/1/", app.api))
                .header("x-request-id", "trace-me-1234")
                .header("x-caller", "web")
                .header("traceparent", CALLER_TRACEPARENT),
        )
        .await;
    assert_eq!(r.status, 200);
    app.fault("GET", "/api/v1.0/feed/user/2/", |f| {
        f.status = Some(503);
        f.times = 3;
    });
    assert_eq!(app.get("/feed/user/2/").await.status, 503);
    assert_eq!(app.get("/feed/us-er/1/").await.status, 400);
    let r = app
        .post(
            "/follow_many/",
            &json!([{"source": "timeline:1", "target": "user:1"}]),
        )
        .await;
    assert_eq!(r.status, 201);
    let t = app.tokens(json!({"user_id": "42"}), &[]).await;
    assert!(t.json["token"].as_str().unwrap().starts_with("eyJ"));
    assert_eq!(
        app.send(
            app.client
                .post(format!("http://{}/tokens", app.addr))
                .body("{}")
        )
        .await
        .status,
        400
    );
    app.fault("POST", "/api/v1.0/feed/user/3/", |f| f.drop = true);
    assert_eq!(app.post("/feed/user/3/", &activity(1)).await.status, 502);
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Every request line (`request_id` on it) has a `trace_id` of 32 lowercase hex digits, and
/// the request that came with a `traceparent` has the caller's.
fn assert_traced(lines: &[(String, Option<String>)]) {
    assert!(lines.len() >= 7, "a line per request: {lines:?}");
    for (request_id, trace_id) in lines {
        let t = trace_id.as_deref().unwrap_or_default();
        assert!(
            t.len() == 32
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "request {request_id} has no trace id: {trace_id:?}"
        );
    }
    let caller = lines.iter().find(|(r, _)| r == "trace-me-1234").unwrap();
    assert_eq!(caller.1.as_deref(), Some(CALLER_TRACE));
}

/// `key=value` of a text line.
fn text_field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(line[at..].split(' ').next()?.to_owned())
}

fn assert_clean(app: &TestApp, text: &str) {
    assert!(
        text.contains("request"),
        "the capture saw the request lines:\n{text}"
    );
    assert!(!text.contains(SECRET), "the secret is in the logs");
    assert!(!text.contains("eyJ"), "a JWT is in the logs");
    assert!(!text.contains("signature=\""), "a signature is in the logs");
    for r in app.received() {
        if let Some(a) = r.header("authorization") {
            assert!(!text.contains(a), "an upstream credential is in the logs");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_secret_and_credentials_appear_in_no_log_line_text_or_json() {
    let (cap, guard) = Capture::text();
    let app = spawn_app().await;
    exercise(&app).await;
    drop(guard);
    let text = cap.text_so_far();
    assert_clean(&app, &text);
    assert!(
        !text.contains(" caller="),
        "without [callers] no caller field:\n{text}"
    );
    let lines: Vec<_> = text
        .lines()
        .filter_map(|l| Some((text_field(l, "request_id")?, text_field(l, "trace_id"))))
        .collect();
    assert_traced(&lines);

    let (cap, _guard) = Capture::json();
    // With [callers], proxied requests' lines name the caller.
    let app = spawn_with(|f| {
        f.merge(("callers.identity_header", "X-Caller"))
            .merge(("callers.service.web.rate", 1000.0))
    })
    .await;
    exercise(&app).await;
    let text = cap.text_so_far();
    assert_clean(&app, &text);
    let mut lines = Vec::new();
    let mut callers = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        let field = |k: &str| v["fields"][k].as_str().map(str::to_owned);
        if let Some(request_id) = field("request_id") {
            callers.push((request_id.clone(), field("caller")));
            lines.push((request_id, field("trace_id")));
        }
    }
    assert_traced(&lines);
    let web = callers.iter().find(|(r, _)| r == "trace-me-1234").unwrap();
    assert_eq!(web.1.as_deref(), Some("web"), "the caller is on the line");
}

#[tokio::test(flavor = "current_thread")]
async fn rotating_the_secret_logs_neither_the_old_nor_the_new_one() {
    use stream_gateway::auth::Secret;
    use stream_gateway::config::Config;
    use stream_gateway::reload::Reloads;
    const NEW: &str = "rotated-secret-for-the-log-test-31f7";
    let (cap, _guard) = Capture::text();
    let dir = std::env::temp_dir().join(format!("gw-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("api_secret");
    std::fs::write(&file, SECRET).unwrap();
    let emu = strict_emulator().await;
    emu.state()
        .accept_secrets(vec![Secret::new(SECRET), Secret::new(NEW)]);
    let f = figment_without_secret(&emu).merge(("stream.api_secret_file", &file));
    let app = start(Config::from_figment(&f).unwrap(), emu).await;
    let again = f.clone();
    let reloads = Reloads::start(app.state.clone(), &f, Arc::new(move || again.clone()));
    let count = |result: &str| {
        let line = format!("gateway_config_reloads_total{{result=\"{result}\"}} 1");
        app.state.metrics().render().contains(&line)
    };

    std::fs::write(&file, NEW).unwrap();
    wait_until("the secret rotated", || count("ok")).await;
    exercise(&app).await;
    std::fs::remove_file(&file).unwrap();
    wait_until("the file watch failed", || count("error")).await;
    reloads.request();
    wait_until("the reload failed", || {
        app.state
            .metrics()
            .render()
            .contains("gateway_config_reloads_total{result=\"error\"} 2")
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    let text = cap.text_so_far();
    assert_clean(&app, &text);
    assert!(!text.contains(NEW), "the new secret is in the logs");
    assert!(text.contains("API secret rotated"), "{text}");
    assert_eq!(
        text.matches("cannot reload the API secret").count(),
        1,
        "{text}"
    );
    assert!(text.contains("configuration reload failed"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_redis_outage_is_logged_once_and_its_end_once_without_the_password() {
    const PASSWORD: &str = "redis-password-for-the-log-test-9c2e";
    let (cap, _guard) = Capture::text();
    let mut redis = redis_server::RedisServer::start_with(&["--requirepass", PASSWORD]).await;
    let url = redis.url();
    let app = spawn_with(|f| {
        f.merge(("callers.redis_url", &url))
            .merge(("callers.service.web.rate", 1000.0))
    })
    .await;
    let up = |want: bool| {
        let state = app.state.clone();
        move || state.callers().redis_up() == want
    };
    wait_until("Redis reached", up(true)).await;
    redis.kill();
    for _ in 0..10 {
        assert_eq!(app.get("/feed/user/1/").await.status, 200);
    }
    redis.restart().await;
    wait_until("Redis reached again", up(true)).await;
    assert_eq!(app.get("/feed/user/1/").await.status, 200);

    let text = cap.text_so_far();
    assert_eq!(text.matches("Redis is out of reach").count(), 1, "{text}");
    assert_eq!(text.matches("Redis reached").count(), 2, "{text}");
    assert_eq!(text.matches("after_outage=true").count(), 1, "{text}");
    assert!(
        !text.contains(PASSWORD),
        "the Redis password is in the logs"
    );
    assert_clean(&app, &text);
}

#[tokio::test(flavor = "current_thread")]
async fn the_access_log_escapes_characters_that_break_text_lines_in_the_path() {
    let (cap, guard) = Capture::text();
    let app = spawn_app().await;
    // NEL, CSI and LINE SEPARATOR, as UTF-8, in the request target.
    let mut req = b"GET /api/v1.0/feed/user/".to_vec();
    req.extend_from_slice("a\u{85}b\u{9b}2Jc\u{2028}d".as_bytes());
    req.extend_from_slice(b"/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_http(app.addr, &req).await;
    drop(guard);
    let text = cap.text_so_far();
    let line = text
        .lines()
        .find(|l| l.contains("path=/api/v1.0/feed/user/a"))
        .unwrap_or_else(|| panic!("the request's line:\n{text}"));
    assert!(line.contains(r"a\u{85}b\u{9b}2Jc\u{2028}d"), "{line}");
    for c in ['\u{85}', '\u{9b}', '\u{2028}'] {
        assert!(!text.contains(c), "{c:?} reached the log");
    }
}
