//! No secret, JWT or signature in any log line, while requests succeed and fail and while
//! the secret rotates; and every request's line carries its trace id.
//!
//! A test binary of its own: a thread-local subscriber (`set_default`) only sees every event
//! when no other test in the process logs without one (tracing caches callsite interest
//! process-wide), so the capture runs here alone.
// std locks are banned in src/ (they poison); in a test a poisoned lock only fails the test.
#![allow(clippy::disallowed_types)]

#[path = "api/helpers.rs"]
#[allow(dead_code, unreachable_pub)]
mod helpers;
#[path = "api/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

use std::sync::{Arc, Mutex};

use serde_json::json;
use stream_gateway::config::LogFormat;
use tracing::Level;

use helpers::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

/// The capture's `tracing` subscriber and access-log writer, both for this thread.
type Guards = (
    tracing::subscriber::DefaultGuard,
    stream_gateway::access_log::DefaultGuard,
);

impl Capture {
    /// Every event at every level, as text lines, captured on this thread until the guard drops;
    /// the access log's lines too (written by the gateway's own formatter, not tracing's).
    fn text() -> (Self, Guards) {
        let cap = Self::default();
        let c2 = cap.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || c2.clone())
            .finish();
        let lines = stream_gateway::access_log::set_default(LogFormat::Text, cap.clone());
        (cap, (tracing::subscriber::set_default(sub), lines))
    }

    /// The same as JSON lines, in the gateway's shape (`log.format = "json"`: fields flattened).
    fn json() -> (Self, Guards) {
        let cap = Self::default();
        let c2 = cap.clone();
        let sub = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(Level::TRACE)
            .with_writer(move || c2.clone())
            .finish();
        let lines = stream_gateway::access_log::set_default(LogFormat::Json, cap.clone());
        (cap, (tracing::subscriber::set_default(sub), lines))
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
        let field = |k: &str| v[k].as_str().map(str::to_owned);
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
    use stream_gateway::config::Config;
    use stream_gateway::reload::Reloads;
    use stream_wire::auth::Secret;
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
async fn an_idp_token_refusal_logs_its_reason_iss_and_kid_never_the_token() {
    use base64::Engine;
    let (cap, _guard) = Capture::text();
    // Keys at a closed loopback port: they never load, so /tokens refuses with 503.
    let app = spawn_with(|f| {
        f.merge(("tokens.oidc.issuer", "http://127.0.0.1:9/realms/app"))
            .merge(("tokens.oidc.audience", "web"))
            .merge(("tokens.oidc.jwks_url", "http://127.0.0.1:9/certs"))
            .merge(("tokens.feed_groups", ["user"]))
    })
    .await;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "kid": "key-7"})),
        b64(json!({"iss": "https://idp.example.com", "sub": "42", "exp": 4_000_000_000u64}))
    );
    for auth in [format!("Bearer {token}"), format!("Bearer {token}.x")] {
        let r = app
            .tokens(
                json!({"user_id": "42"}),
                &[("authorization", auth.as_str())],
            )
            .await;
        assert!(r.status == 503 || r.status == 401, "{:?}", r.json);
    }
    let text = cap.text_so_far();
    assert_clean(&app, &text);
    let refused = text
        .lines()
        .find(|l| l.contains("token refused") && l.contains("keys_not_loaded"))
        .unwrap_or_else(|| panic!("no refusal line:\n{text}"));
    assert!(
        refused.contains("kid=\"key-7\"") || refused.contains("kid=key-7"),
        "{refused}"
    );
    assert!(refused.contains("idp.example.com"), "{refused}");
    assert!(
        text.contains("reason=\"malformed\"") || text.contains("reason=malformed"),
        "{text}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_secret_is_logged_at_error_once_per_episode_and_counted_each_time() {
    let (cap, _guard) = Capture::json();
    let app = spawn_app().await;
    let secrets = |list: serde_json::Value| {
        app.client
            .put(format!("{}/_emulator/secrets", app.emu.url()))
            .header("content-type", "application/json")
            .body(json!({ "secrets": list }).to_string())
            .send()
    };
    let errors = || {
        cap.text_so_far()
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("API secret is wrong"))
            .count()
    };
    // Stream (the emulator) takes another secret: the gateway's JWTs and HTTP Signatures fail.
    let other = "another-secret-the-gateway-does-not-have";
    assert_eq!(secrets(json!([other])).await.unwrap().status(), 204);
    assert_eq!(app.get("/feed/user/1/").await.status, 403);
    assert_eq!(app.get("/feed/user/2/").await.status, 403);
    let batch = json!([{"source": "timeline:1", "target": "user:1"}]);
    let r = app.post("/follow_many/", &batch).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json["exception"], "SignatureException",
        "Stream's answer, unchanged"
    );
    assert_eq!(errors(), 1, "once per episode:\n{}", cap.text_so_far());
    assert_eq!(
        app.metric("gateway_upstream_auth_failures_total").await,
        3.0
    );
    // A refusal that is not about the signature is not counted.
    app.fault("GET", "/api/v1.0/feed/user/9/", |f| f.status = Some(403));
    assert_eq!(secrets(json!([SECRET])).await.unwrap().status(), 204);
    let _ = app.get("/feed/user/9/").await;
    assert_eq!(
        app.metric("gateway_upstream_auth_failures_total").await,
        3.0
    );
    // A success ends the episode; the next failure starts a new one, logged again.
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    assert!(cap
        .text_so_far()
        .contains("accepts the gateway's signature again"));
    assert_eq!(secrets(json!([other])).await.unwrap().status(), 204);
    assert_eq!(app.get("/feed/user/1/").await.status, 403);
    assert_eq!(errors(), 2);
    assert!(!cap.text_so_far().contains(SECRET));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_connection_to_stream_says_why_at_debug() {
    let (cap, _guard) = Capture::text();
    // A port nothing listens on: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app =
        spawn_with(move |f| f.merge(("stream.base_url", format!("http://127.0.0.1:{port}")))).await;
    assert_eq!(app.get("/feed/user/1/").await.status, 502);
    let text = cap.text_so_far();
    let line = text
        .lines()
        .find(|l| l.contains("connection to Stream failed"))
        .unwrap_or_else(|| panic!("no line says why:\n{text}"));
    assert!(
        line.contains("DEBUG") && line.to_lowercase().contains("refused"),
        "{line}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_taken_realtime_port_is_one_warning_and_realtime_stays_on_the_emulators_port() {
    use stream_emulator::{Emulator, EmulatorConfig, FeedGroups, RealtimeSettings};
    use stream_wire::auth::Secret;
    let (cap, _guard) = Capture::text();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let emu = Emulator::spawn_with_realtime(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: true,
        },
        FeedGroups::default(),
        RealtimeSettings {
            listen: Some(taken.local_addr().unwrap()),
            ..RealtimeSettings::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("the emulator starts anyway");
    assert_eq!(emu.realtime_addr(), None);
    let text = cap.text_so_far();
    assert_eq!(
        text.matches("emulator.realtime_listen cannot be bound")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains(" WARN "), "{text}");
    // Realtime answers on the emulator's own port.
    let r = reqwest::Client::new()
        .post(format!("{}/faye", emu.url()))
        .body(r#"{"channel":"/meta/handshake","version":"1.0"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn a_webhook_logs_its_id_route_and_outcome_never_its_body_or_signature() {
    use stream_wire::auth::Secret;
    use stream_wire::webhook::sign;
    let target = raw_upstream(RawAnswer::Bytes(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
    ))
    .await;
    let (cap, _guard) = Capture::text();
    let url = format!("{}/hooks", target.url);
    let app = spawn_with(move |f| {
        f.merge(("webhooks.routes.chat.path", "/webhooks/chat"))
            .merge(("webhooks.routes.chat.forward_to", url))
    })
    .await;
    let body = r#"{"type":"message.new","message":{"text":"private-words-7731"}}"#;
    let good = sign(&Secret::new(SECRET), body.as_bytes());
    let bad = sign(&Secret::new("wrong"), body.as_bytes());
    for (sig, id, status) in [(&good, "wh-log-1", 200), (&bad, "wh-log-2", 401)] {
        let r = app
            .send(
                app.client
                    .post(format!("http://{}/webhooks/chat", app.addr))
                    .header("x-api-key", KEY)
                    .header("x-signature", sig.as_str())
                    .header("x-webhook-id", id)
                    .body(body),
            )
            .await;
        assert_eq!(r.status, status);
    }
    let text = cap.text_so_far();
    let line = |id: &str| {
        text.lines()
            .find(|l| l.contains(&format!("webhook_id={id}")))
            .unwrap_or_else(|| panic!("a line for {id}:\n{text}"))
            .to_owned()
    };
    let ok = line("wh-log-1");
    assert!(
        ok.contains(r#"route="chat""#) && ok.contains(r#"outcome="forwarded""#),
        "{ok}"
    );
    assert!(ok.contains(r#"secret="current""#), "{ok}");
    // The access log's line for the same request carries the same request id.
    let request_id = text_field(&ok, "request_id").unwrap();
    assert!(text
        .lines()
        .any(|l| l.contains("endpoint=\"webhook\"") && l.contains(&request_id)));
    let refused = line("wh-log-2");
    assert!(
        refused.contains(r#"outcome="refused""#) && refused.contains(r#"reason="bad_signature""#),
        "{refused}"
    );
    for leaked in ["private-words-7731", good.as_str(), bad.as_str(), SECRET] {
        assert!(!text.contains(leaked), "{leaked} is in the logs:\n{text}");
    }
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

/// The timestamp of a text line (its first word) or a JSON line, and the line without it.
fn split_time(format: LogFormat, line: &str) -> (String, String) {
    match format {
        LogFormat::Text => {
            let (ts, rest) = line.split_once(' ').unwrap();
            (ts.to_owned(), rest.to_owned())
        }
        LogFormat::Json => {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["timestamp"].as_str().unwrap().to_owned();
            (ts.clone(), line.replacen(&ts, "", 1))
        }
    }
}

#[test]
fn the_access_line_is_byte_for_byte_the_line_tracing_wrote_text_and_json() {
    use stream_gateway::access_log::{self, Line};
    use stream_gateway::trace::TraceId;
    let trace_id = TraceId(*b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36");
    let lines = [
        Line {
            request_id: "req-1.2_3:4",
            trace_id,
            method: &http::Method::POST,
            path: "/api/v1.0/feed/user/a\u{85}\"b\\c\u{2028}é/",
            endpoint: "feed.add_activity",
            caller: Some("web \"tier\" \u{e9}"),
            status: 201,
            attempts: 2,
            duration: std::time::Duration::from_micros(1_234_567),
            probe: false,
        },
        Line {
            request_id: "0123456789abcdef0123456789abcdef",
            trace_id,
            method: &http::Method::GET,
            path: "/healthz",
            endpoint: "healthz",
            caller: None,
            status: 200,
            attempts: 0,
            duration: std::time::Duration::from_nanos(37),
            probe: true,
        },
        Line {
            request_id: "r",
            trace_id,
            method: &http::Method::from_bytes(b"PURGE").unwrap(),
            path: "/",
            endpoint: "unknown",
            caller: None,
            status: 404,
            attempts: 0,
            duration: std::time::Duration::ZERO,
            probe: false,
        },
    ];
    for format in [LogFormat::Text, LogFormat::Json] {
        for line in &lines {
            // Through tracing (no access-log writer on this thread), then ours, then tracing.
            let (by_tracing, guards) = match format {
                LogFormat::Text => Capture::text(),
                LogFormat::Json => Capture::json(),
            };
            drop(guards.1);
            access_log::write(line);
            let ours = Capture::default();
            let ours_guard = access_log::set_default(format, ours.clone());
            access_log::write(line);
            drop(ours_guard);
            access_log::write(line);
            drop(guards.0);

            let tracing_text = by_tracing.text_so_far();
            let theirs: Vec<&str> = tracing_text.lines().collect();
            assert_eq!(theirs.len(), 2, "{tracing_text}");
            let ours = ours.text_so_far();
            assert_eq!(ours.matches('\n').count(), 1, "one line: {ours}");
            let (t0, before) = split_time(format, theirs[0]);
            let (t1, mine) = split_time(format, ours.trim_end_matches('\n'));
            let (t2, _) = split_time(format, theirs[1]);
            assert_eq!(mine, before, "{format:?}");
            assert_eq!(t1.len(), t0.len(), "{t0} {t1}");
            assert!(t0 <= t1 && t1 <= t2, "{t0} <= {t1} <= {t2}");
        }
    }
}

/// `GET path` on `port` over a connection of its own: the status.
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    (status, answer)
}

#[test]
fn the_binary_writes_every_access_line_through_its_buffer_and_flushes_it_on_sigterm() {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_stream-gateway"))
        .arg("--emulator")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(std::env::var("LLVM_PROFILE_FILE").map(|p| ("LLVM_PROFILE_FILE", p)))
        .env("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "serving");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for i in 0..200 {
        assert_eq!(get(port, &format!("/nowhere-{i}")).0, 404);
    }
    let (status, metrics) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("\ngateway_log_lines_dropped_total 0\n"),
        "{metrics}"
    );
    // The last lines may still be in the buffer: SIGTERM's shutdown writes them.
    assert_eq!(get(port, "/nowhere-last").0, 404);
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let paths: Vec<String> = err
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
        .filter(|v| v["message"] == "request")
        .inspect(|v| {
            assert_eq!(v["level"], "INFO");
            assert_eq!(v["target"], "stream_gateway::telemetry");
            assert_eq!(v["status"], 404);
        })
        .map(|v| v["path"].as_str().unwrap().to_owned())
        .collect();
    let mut want: Vec<String> = (0..200).map(|i| format!("/nowhere-{i}")).collect();
    want.push("/nowhere-last".into());
    assert_eq!(
        paths, want,
        "every line, in order, once; not /metrics (debug)"
    );
    let stopped = err.lines().position(|l| l.contains("\"stopped\"")).unwrap();
    let last = err
        .lines()
        .position(|l| l.contains("/nowhere-last"))
        .unwrap();
    assert!(last < stopped, "written before the process says it stopped");
}
