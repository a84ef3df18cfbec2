//! `/api/v2/` through the gateway, against a strict fake of Stream's v2 host: it refuses any
//! request whose `Authorization` is not a JWT signed with the real secret with claims exactly
//! `{"server": true}`, whose `Stream-Auth-Type` is not `jwt`, whose query does not carry the
//! app's `api_key` exactly once, or that carries anything of the caller's credentials.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use figment::providers::Serialized;
use figment::Figment;
use serde_json::{json, Value};
use stream_gateway::app::App;
use stream_gateway::config::{Config, FileConfig};

use crate::helpers::*;

/// What the caller sends as its own credentials; none of it may reach Stream.
const CALLER_TOKEN: &str = "caller-own-token-0b7e";
const CALLER_KEY: &str = "caller-own-key-91c2";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    body: Bytes,
    content_type: Option<String>,
    /// Why the fake refused it, if it did.
    refused: Option<String>,
}

#[derive(Default)]
struct FakeState {
    seen: Mutex<Vec<Seen>>,
    /// Statuses to answer next, before the default (201 for writes, 200 for reads).
    script: Mutex<VecDeque<u16>>,
}

struct FakeV2 {
    url: String,
    state: Arc<FakeState>,
}

impl FakeV2 {
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn answer_next(&self, status: u16) {
        self.state.script.lock().unwrap().push_back(status);
    }
}

fn b64json(part: &str) -> Option<Value> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Stream's check of a server-side call, as strict as its docs: the verdict, or why not.
fn verify_server_call(headers: &axum::http::HeaderMap, target: &str) -> Result<(), String> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let keys: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k.eq_ignore_ascii_case("api_key"))
        .map(|(_, v)| v.into_owned())
        .collect();
    if keys != [KEY] {
        return Err(format!("api_key {keys:?}"));
    }
    let one = |name: &str| -> Result<String, String> {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => Ok(v.to_str().map_err(|_| name.to_owned())?.to_owned()),
            _ => Err(format!("{name}: not exactly one")),
        }
    };
    if one("stream-auth-type")? != "jwt" {
        return Err("stream-auth-type is not jwt".into());
    }
    let token = one("authorization")?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &v,
    )
    .map_err(|e| format!("token: {e}"))?;
    let claims = b64json(token.split('.').nth(1).unwrap_or("")).ok_or("token payload")?;
    if claims != json!({"server": true}) {
        return Err(format!("claims {claims}"));
    }
    let everything = format!("{headers:?} {target}");
    if everything.contains(CALLER_TOKEN) {
        return Err("the caller's credentials arrived".into());
    }
    Ok(())
}

async fn fake_handler(State(st): State<Arc<FakeState>>, req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let target = parts.uri.path_and_query().unwrap().as_str().to_owned();
    let refused = verify_server_call(&parts.headers, &target).err();
    st.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        body,
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        refused: refused.clone(),
    });
    if let Some(why) = refused {
        let b = json!({"code": 5, "message": why, "StatusCode": 401, "duration": "0.01ms",
                       "more_info": "", "details": []});
        return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(b)).into_response();
    }
    let default = if parts.method == "GET" { 200 } else { 201 };
    let status = st.script.lock().unwrap().pop_front().unwrap_or(default);
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    let b = json!({"duration": "1.00ms", "target": target});
    (
        status,
        [
            ("x-ratelimit-limit", "1000"),
            ("x-ratelimit-remaining", "999"),
            ("x-ratelimit-reset", "4102444800"),
        ],
        axum::Json(b),
    )
        .into_response()
}

async fn fake_v2() -> FakeV2 {
    let state = Arc::new(FakeState::default());
    let app = axum::Router::new()
        .fallback(fake_handler)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeV2 { url, state }
}

async fn gateway(v2: bool, fake: &FakeV2, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let url = fake.url.clone();
    spawn_with(move |f| {
        tweak(
            f.merge(("stream.v2", v2))
                .merge(("stream.v2_base_url", url)),
        )
    })
    .await
}

impl TestApp {
    fn v2_url(&self, path: &str) -> String {
        format!("http://{}/api/v2/{path}", self.addr)
    }

    /// A v2 call with the caller's own credentials on it, as an SDK would send them: the app's
    /// api key (it is public) and a token signed with whatever secret the service was given.
    async fn v2(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.v2_as(None, method, path, body).await
    }

    async fn v2_as(
        &self,
        caller: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut r = self
            .client
            .request(m, format!("{}{sep}api_key={KEY}", self.v2_url(path)))
            .header("authorization", CALLER_TOKEN)
            .header("stream-auth-type", "jwt");
        if let Some(c) = caller {
            r = r.header("x-caller", c);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        self.send(r).await
    }
}

/// A refusal in Stream's v2 error shape, with this status and a message that says `says`.
fn v2_refusal(r: &Reply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{:?}", r.json);
    assert_eq!(
        r.json["StatusCode"].as_u64(),
        Some(u64::from(status)),
        "{:?}",
        r.json
    );
    assert!(r.json["code"].is_u64(), "{:?}", r.json);
    assert!(
        r.json["details"].is_array() && r.json["more_info"].is_string(),
        "{:?}",
        r.json
    );
    let msg = r.json["message"].as_str().unwrap_or_default();
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
}

#[tokio::test]
async fn an_upload_goes_as_multipart_with_its_boundary_and_any_other_operation_stays_json() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| f).await;
    let ct = "multipart/form-data; boundary=XyZ42";
    let body = "--XyZ42\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
                Content-Type: text/plain\r\n\r\nhello\r\n--XyZ42--\r\n";
    let send = |path: &str| {
        app.client
            .post(format!("{}?api_key={KEY}", app.v2_url(path)))
            .header("content-type", ct)
            .body(body)
    };
    for path in ["uploads/file", "chat/channels/messaging/general/image"] {
        let r = app.send(send(path)).await;
        assert_eq!(r.status, 201, "{path}: {:?}", r.json);
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.refused, None);
        assert_eq!(s.content_type.as_deref(), Some(ct), "the boundary travels");
        assert_eq!(&s.body[..], body.as_bytes(), "the parts as sent");
    }
    // Not an upload: the body must be JSON, whatever type it claims; nothing is sent.
    let r = app.send(send("users")).await;
    assert_eq!(r.status, 400, "{:?}", r.json);
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_on_v2_is_logged_once_and_counted() {
    // The emulator answers v2 calls signed with another secret as Stream does (401, code 43).
    let app = spawn_with(|f| f.merge(("stream.v2", true))).await;
    let emu = app.emu.url();
    let r = app
        .client
        .put(format!("{emu}/_emulator/secrets"))
        .header("content-type", "application/json")
        .body(json!({"secrets": ["another-secret-the-gateway-lacks"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for _ in 0..2 {
        let r = app.v2("GET", "video/call/default/c1", None).await;
        assert_eq!(r.status, 401, "{:?}", r.json);
        assert_eq!(
            r.json["code"], 43,
            "Stream's answer, unchanged: {:?}",
            r.json
        );
    }
    assert_eq!(
        app.metric("gateway_upstream_auth_failures_total").await,
        2.0
    );
}

#[tokio::test]
async fn a_foreign_api_key_is_refused_on_v2_too_and_nothing_is_sent() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| f).await;
    let r = app
        .send(
            app.client
                .post(format!("{}?api_key={CALLER_KEY}", app.v2_url("users")))
                .header("content-type", "application/json")
                .body(json!({"users": {}}).to_string()),
        )
        .await;
    v2_refusal(&r, 401, "is not this app's api key");
    assert_eq!(r.json["code"], 2);
    let msg = r.json["message"].as_str().unwrap();
    assert!(
        !msg.contains("own-key"),
        "only the key's first characters: {msg}"
    );
    assert!(fake.seen().is_empty(), "nothing reached Stream");
    assert_eq!(app.metric("gateway_api_key_refused_total").await, 1.0);
}

#[tokio::test]
async fn v2_is_off_unless_enabled_and_then_nothing_is_sent() {
    let fake = fake_v2().await;
    let app = gateway(false, &fake, |f| f).await;
    let r = app.v2("POST", "users", Some(json!({"users": {}}))).await;
    v2_refusal(&r, 404, "stream.v2");
    assert!(fake.seen().is_empty());
}

/// A call of each product's: method, path under `/api/v2/`, body, the operation's name.
fn product_calls() -> Vec<(&'static str, &'static str, Option<Value>, &'static str)> {
    vec![
        (
            "POST",
            "users",
            Some(json!({"users": {"u1": {"id": "u1"}}})),
            "common.UpdateUsers",
        ),
        ("GET", "users?payload=%7B%7D", None, "common.QueryUsers"),
        (
            "PATCH",
            "users",
            Some(json!({"users": []})),
            "common.UpdateUsersPartial",
        ),
        (
            "POST",
            "chat/channels/messaging/general/query",
            Some(json!({"data": {}})),
            "chat.GetOrCreateChannel",
        ),
        (
            "POST",
            "chat/channels/messaging/general/message",
            Some(json!({"message": {"text": "hi"}})),
            "chat.SendMessage",
        ),
        (
            "POST",
            "feeds/activities",
            Some(json!({"type": "post", "feeds": ["user:u1"]})),
            "feeds.AddActivity",
        ),
        (
            "POST",
            "feeds/feed_groups/user/feeds/u1",
            Some(json!({})),
            "feeds.GetOrCreateFeed",
        ),
        ("GET", "video/call/default/c1", None, "video.GetCall"),
        (
            "POST",
            "moderation/flag",
            Some(json!({"entity_type": "stream:user", "entity_id": "u2"})),
            "moderation.flag",
        ),
        (
            "DELETE",
            "chat/channels/messaging/general?hard_delete=true",
            None,
            "chat.DeleteChannel",
        ),
    ]
}

#[tokio::test]
async fn v2_calls_of_every_product_arrive_with_the_server_token_and_not_the_callers_credentials() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| f).await;
    let calls = product_calls();
    for (method, path, body, _) in &calls {
        let r = app.v2(method, path, body.clone()).await;
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {:?}",
            r.status,
            r.json
        );
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), calls.len());
    for (s, (method, path, body, _)) in seen.iter().zip(&calls) {
        assert_eq!(s.refused, None, "{method} {path}");
        assert_eq!(&s.method, method);
        let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
        let (got_path, got_query) = s.target.split_once('?').unwrap();
        assert_eq!(got_path, format!("/api/v2/{want_path}"));
        let expected = if want_query.is_empty() {
            format!("api_key={KEY}")
        } else {
            format!("{want_query}&api_key={KEY}")
        };
        assert_eq!(
            got_query, expected,
            "the caller's query kept, its api_key replaced"
        );
        match body {
            Some(b) => assert_eq!(serde_json::from_slice::<Value>(&s.body).unwrap(), *b),
            None => assert!(s.body.is_empty()),
        }
    }
    // Each operation is its own endpoint in the metrics.
    let text = app.metrics_text().await;
    for (_, _, _, name) in &calls {
        assert!(
            text.contains(&format!("gateway_requests_total{{endpoint=\"{name}\"")),
            "{name} not in the metrics"
        );
    }
}

#[tokio::test]
async fn unknown_paths_bad_parameters_and_bad_bodies_are_refused_and_nothing_is_sent() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| f).await;
    v2_refusal(&app.v2("GET", "nope", None).await, 404, "no operation");
    v2_refusal(
        &app.v2("POST", "users/u1/secret_admin", None).await,
        404,
        "no operation",
    );
    let r = app.v2("GET", "video/call/default/a%2Fb", None).await;
    v2_refusal(&r, 400, "id");
    assert!(r.json["exception_fields"]["id"].is_string(), "{:?}", r.json);
    // An HTTP client would resolve dot segments itself: sent as they are.
    for target in [
        "video/call/default/%2e%2e",
        "video/call/%2E%2E/c1",
        "video/call/default/..",
    ] {
        let raw = format!(
            "GET /api/v2/{target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        );
        let answer = raw_http(app.addr, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
        assert!(answer.contains("dot segment"), "{target}: {answer}");
    }
    v2_refusal(
        &app.v2("GET", "video/call/default/a%00", None).await,
        400,
        "control",
    );
    let r = app.v2("PUT", "feeds/follows", Some(json!({}))).await;
    v2_refusal(&r, 405, "POST, PATCH");
    assert_eq!(r.headers["allow"], "POST, PATCH");
    let r = app
        .send(
            app.client
                .post(app.v2_url("feeds/activities"))
                .body("{\"type\": \"post\", \"type\": \"x\"}"),
        )
        .await;
    v2_refusal(&r, 400, "more than once");
    let r = app
        .send(
            app.client
                .post(app.v2_url("feeds/activities"))
                .body("{not json"),
        )
        .await;
    v2_refusal(&r, 400, "JSON");
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(2 << 20));
    let r = app
        .send(app.client.post(app.v2_url("feeds/activities")).body(big))
        .await;
    v2_refusal(&r, 413, "larger than");
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());
    assert_eq!(
        app.metric("gateway_requests_total{endpoint=\"v2.unknown\",status=\"404\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_caller_is_held_to_its_allow_list_by_operation_family_and_reads() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| {
        f.merge(("callers.identity_header", "X-Caller"))
            .merge((
                "callers.service.web.allow",
                ["chat.read", "chat.SendMessage"],
            ))
            .merge(("callers.service.feeder.allow", ["feeds.*"]))
    })
    .await;
    let msg = Some(json!({"message": {"text": "hi"}}));
    let send = "chat/channels/messaging/general/message";
    let read = "chat/channels/messaging/general/messages?ids=m1";
    assert_eq!(
        app.v2_as(Some("web"), "POST", send, msg.clone())
            .await
            .status,
        201
    );
    assert_eq!(app.v2_as(Some("web"), "GET", read, None).await.status, 200);
    let r = app
        .v2_as(
            Some("web"),
            "POST",
            "chat/channels/messaging/general",
            Some(json!({})),
        )
        .await;
    v2_refusal(&r, 403, "chat.UpdateChannel");
    let r = app
        .v2_as(Some("web"), "POST", "feeds/activities", Some(json!({})))
        .await;
    v2_refusal(&r, 403, "feeds.AddActivity");
    assert_eq!(
        app.v2_as(Some("feeder"), "POST", "feeds/follows", Some(json!({})))
            .await
            .status,
        201
    );
    v2_refusal(
        &app.v2_as(Some("feeder"), "POST", send, msg).await,
        403,
        "chat.SendMessage",
    );
    assert_eq!(fake.seen().len(), 3, "only the allowed calls arrive");
    assert_eq!(
        app.metric(
            "gateway_caller_requests_total{caller=\"web\",endpoint=\"feeds.AddActivity\",outcome=\"forbidden\"}"
        )
        .await,
        1.0
    );
    // Stream's window is kept per operation.
    assert_eq!(
        app.metric("gateway_upstream_ratelimit_remaining{endpoint=\"chat.SendMessage\"}")
            .await,
        999.0
    );
}

#[tokio::test]
async fn a_post_that_may_have_arrived_is_not_resent_and_a_get_is() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| f).await;
    fake.answer_next(503);
    let r = app
        .v2(
            "POST",
            "chat/channels/messaging/general/message",
            Some(json!({"message": {}})),
        )
        .await;
    assert_eq!(r.status, 503, "Stream's answer passed back: {:?}", r.json);
    assert_eq!(fake.seen().len(), 1, "the POST was sent once");
    fake.answer_next(503);
    let r = app.v2("PATCH", "users", Some(json!({"users": []}))).await;
    assert_eq!((r.status, fake.seen().len()), (503, 2), "PATCH neither");
    fake.answer_next(503);
    let r = app.v2("GET", "video/call/default/c1", None).await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(fake.seen().len(), 4, "the GET was resent once");
}

#[tokio::test]
async fn the_emulator_verifies_a_v2_call_as_a_server_side_call_first() {
    let emu = strict_emulator().await;
    let c = reqwest::Client::new();
    let server = stream_wire::auth::jwt::TokenCache::new(stream_wire::auth::Secret::new(SECRET), 0)
        .server_token();
    let signed = |r: reqwest::RequestBuilder| {
        r.query(&[("api_key", KEY)])
            .header("stream-auth-type", "jwt")
            .header("authorization", server.clone())
    };
    let url = |p: &str| format!("{}/api/v2/{p}", emu.url());
    // It verifies as Stream does first: the key, the auth type, the signature; strictly, the
    // server token's claims.
    let user = stream_wire::auth::jwt::encode(
        &stream_wire::auth::jwt::Claims {
            user_id: Some("u1".into()),
            ..Default::default()
        },
        &stream_wire::auth::Secret::new(SECRET),
    );
    let wrong = stream_wire::auth::jwt::TokenCache::new(
        stream_wire::auth::Secret::new("another-secret"),
        0,
    )
    .server_token();
    for (req, says) in [
        (
            c.get(url("app"))
                .query(&[("api_key", KEY)])
                .header("stream-auth-type", "jwt"),
            "auth header",
        ),
        (
            signed(c.get(url("app"))).query(&[("api_key", KEY)]),
            "api_key",
        ),
        (
            c.get(url("app"))
                .query(&[("api_key", KEY)])
                .header("authorization", server.clone()),
            "Stream-Auth-Type",
        ),
        (
            c.get(url("app"))
                .query(&[("api_key", KEY)])
                .header("stream-auth-type", "jwt")
                .header("authorization", wrong),
            "signature",
        ),
        (
            c.get(url("app"))
                .query(&[("api_key", KEY)])
                .header("stream-auth-type", "jwt")
                .header("authorization", user),
            "claims",
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{says}");
        let b: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(b["message"].as_str().unwrap().contains(says), "{says}: {b}");
    }
}

#[tokio::test]
async fn the_emulator_answers_v2_operations_with_501_naming_them() {
    let emu = strict_emulator().await;
    let c = reqwest::Client::new();
    let server = stream_wire::auth::jwt::TokenCache::new(stream_wire::auth::Secret::new(SECRET), 0)
        .server_token();
    let signed = |r: reqwest::RequestBuilder| {
        r.query(&[("api_key", KEY)])
            .header("stream-auth-type", "jwt")
            .header("authorization", server.clone())
    };
    let url = |p: &str| format!("{}/api/v2/{p}", emu.url());
    let r = signed(c.post(url("chat/channels/messaging/general/message")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let b: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(b["StatusCode"], 501);
    assert!(
        b["message"].as_str().unwrap().contains("chat.SendMessage"),
        "{b}"
    );
    assert!(
        b["message"].as_str().unwrap().contains("not emulated"),
        "{b}"
    );
    let r = signed(c.get(url("nope"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = signed(c.get(url("video/call/default/a%2Fb")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // In emulator mode the gateway's v2 calls go to the embedded emulator.
    let f = Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.emulator", true))
        .merge(("stream.v2", true));
    let app = App::build(Config::from_figment(&f).unwrap()).await.unwrap();
    assert_eq!(
        app.state().config().stream.v2_base_url,
        app.emulator().unwrap().url()
    );
    let url = format!("http://{}/api/v2/feeds/activities", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let r = c.post(url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 501);
    let b: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        b["message"].as_str().unwrap().contains("feeds.AddActivity"),
        "{b}"
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Stream's check of a v2 user token: signed with the secret, `user_id`, and only built-in
/// JWT claims besides (the spec: "must include only the user_id claim and can include any
/// built-in JWT claim such as iat, exp"); the claims when it passes.
fn verify_user_token(token: &str) -> Result<Value, String> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = true;
    v.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &v,
    )
    .map_err(|e| e.to_string())?;
    let claims = data.claims;
    let obj = claims.as_object().ok_or("claims")?;
    for k in obj.keys() {
        if !["user_id", "exp", "iat", "nbf", "jti"].contains(&k.as_str()) {
            return Err(format!("claim {k}"));
        }
    }
    if !obj.get("user_id").is_some_and(Value::is_string) {
        return Err("user_id".into());
    }
    Ok(claims)
}

#[tokio::test]
async fn a_frontend_user_token_is_what_v2_clients_take_with_exp_and_nothing_more() {
    let fake = fake_v2().await;
    let app = gateway(true, &fake, |f| {
        f.merge(("tokens.identity_header", "X-User-Id"))
            .merge(("tokens.feed_groups", ["user"]))
    })
    .await;
    let r = app
        .tokens(
            json!({"user_id": "u1", "expires_in": 600}),
            &[("x-user-id", "u1")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let claims = verify_user_token(r.json["token"].as_str().unwrap()).unwrap();
    let exp = claims["exp"].as_u64().expect("exp");
    assert!((now() + 598..=now() + 600).contains(&exp), "{exp}");
    assert!(claims.get("iat").is_none(), "no iat: {claims}");
    assert_eq!(claims, json!({"user_id": "u1", "exp": exp}));
    // The frontend names no other claim, and no other identity.
    for body in [
        json!({"user_id": "u1", "server": true}),
        json!({"user_id": "u1", "role": "admin"}),
        json!({"user_id": "u1", "channel_cids": ["messaging:x"]}),
    ] {
        let r = app.tokens(body.clone(), &[("x-user-id", "u1")]).await;
        assert_eq!(r.status, 400, "{body}: {:?}", r.json);
    }
    let r = app
        .tokens(json!({"user_id": "u2"}), &[("x-user-id", "u1")])
        .await;
    assert_eq!(r.status, 403, "{:?}", r.json);
    // A server token is not a user token: the verifier tells them apart.
    assert!(verify_user_token("a.b.c").is_err());
    assert!(fake.seen().is_empty());
}

#[tokio::test]
async fn a_post_is_retried_only_where_nothing_was_sent_and_failures_keep_the_v2_shape() {
    // Nothing listens there: every attempt fails before anything is sent.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = spawn_with(move |f| {
        f.merge(("stream.v2", true))
            .merge(("stream.v2_base_url", closed))
    })
    .await;
    let r = app
        .v2(
            "POST",
            "chat/channels/messaging/general/message",
            Some(json!({"message": {"text": "hi"}})),
        )
        .await;
    v2_refusal(&r, 502, "could not be reached");
    assert_eq!(
        app.metric("gateway_upstream_attempts_total{endpoint=\"chat.SendMessage\"}")
            .await,
        3.0,
        "the first attempt and both retries: none was sent"
    );
    let long = format!("users?filter={}", "a".repeat(9000));
    v2_refusal(&app.v2("GET", &long, None).await, 414, "longer than");
}
