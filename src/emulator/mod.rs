//! An emulator of Stream's v1.0 feed API, served over HTTP on its own loopback port.
//!
//! The gateway reaches it exactly as it reaches Stream, so everything on the path (validate,
//! mint, sign, forward) runs with no account and no network. It verifies credentials as Stream
//! does ([`verify`]), keeps flat-feed semantics in memory ([`store`]), and has an admin API on
//! its own port, never on the gateway's, under `/_emulator/`:
//!
//! - `POST /_emulator/faults` `{"method"?, "path_prefix", "status"?, "delay_ms"?, "drop"?,
//!   "times", "retry_after"?}`: the next `times` matching requests get that status, delay or a
//!   dropped connection (a delay alone then serves the request normally);
//! - `DELETE /_emulator/faults`: clears faults; `POST /_emulator/reset`: clears everything;
//! - `GET /_emulator/requests`: the last requests received (method, target, headers, body).
//!
//! It never calls into `proxy/`: the domain types are shared, the routing is its own.

pub mod reply;
pub mod store;
pub mod surface;
pub mod verify;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crate::auth::Secret;
use crate::stream::{Action, FeedClaim, FeedId, Resource, Scope, Slug, UserId};
use reply::{input_error, stream_error, EmuError};
use store::{IdBound, Store, DEFAULT_COPY_LIMIT, DEFAULT_LIMIT};
use verify::{Needed, Verifier};

/// Requests kept for `GET /_emulator/requests`.
const LOG_CAPACITY: usize = 2000;

/// A fault to inject into matching requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// Only this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Paths starting with this.
    pub path_prefix: String,
    /// Answer with this status (and Stream's error body).
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long first.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Close the connection without an answer.
    #[serde(default)]
    pub drop: bool,
    /// `Retry-After` on the injected answer.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// How many matching requests it applies to.
    pub times: u32,
}

/// A request as the emulator received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body, as text.
    pub body: String,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The emulator's state, shared by its handlers.
#[derive(Debug)]
pub struct Emu {
    verifier: Verifier,
    store: Mutex<Store>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<VecDeque<Received>>,
}

impl Emu {
    /// Locks the store (tests read it directly).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("emulator store lock")
    }

    /// Adds a fault.
    pub fn inject(&self, f: Fault) {
        self.faults.lock().expect("faults lock").push(f);
    }

    /// The requests received so far (the last 2000).
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log lock").iter().cloned().collect()
    }

    /// Forgets data, faults and the request log.
    pub fn reset(&self) {
        *self.store() = Store::default();
        self.faults.lock().expect("faults lock").clear();
        self.log.lock().expect("log lock").clear();
    }

    fn take_fault(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("faults lock");
        let i = faults.iter().position(|f| {
            f.times > 0
                && path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
        })?;
        faults[i].times -= 1;
        let f = faults[i].clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(f)
    }
}

/// Settings of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The API key it takes.
    pub api_key: String,
    /// The secret it verifies with.
    pub api_secret: Secret,
    /// Refuse tokens wider than the route needs (for tests of least privilege).
    pub strict_scopes: bool,
}

/// A running emulator.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<Emu>,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Binds `addr` (port 0 picks one) and serves in the background.
    pub async fn spawn(cfg: EmulatorConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(Emu {
            verifier: Verifier {
                api_key: cfg.api_key,
                secret: cfg.api_secret,
                strict_scopes: cfg.strict_scopes,
            },
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(VecDeque::new()),
        });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for tests.
    pub fn state(&self) -> &Arc<Emu> {
        &self.state
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The emulator's router: Stream's routes behind the fault and log middleware, and the admin.
pub fn router(state: Arc<Emu>) -> Router {
    let api = Router::new()
        .route("/api/v1.0/feed/add_to_many/", post(add_to_many))
        .route("/api/v1.0/follow_many/", post(follow_many))
        .route(
            "/api/v1.0/feed/{slug}/{user}/",
            get(read_feed).post(add_activity),
        )
        .route("/api/v1.0/feed/{slug}/{user}/followers/", get(followers))
        .route(
            "/api/v1.0/feed/{slug}/{user}/follows/",
            get(following).post(follow),
        )
        .route(
            "/api/v1.0/feed/{slug}/{user}/following/",
            get(following).post(follow),
        )
        .route(
            "/api/v1.0/feed/{slug}/{user}/follows/{target}/",
            delete(unfollow),
        )
        .route(
            "/api/v1.0/feed/{slug}/{user}/following/{target}/",
            delete(unfollow),
        )
        .route(
            "/api/v1.0/feed/{slug}/{user}/{activity}/",
            delete(remove_activity),
        )
        .merge(surface::routes())
        .fallback(|| async { stream_error(404, 16, "DoesNotExistException", "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults_and_log,
        ));
    let admin = Router::new()
        .route(
            "/_emulator/faults",
            post(add_fault).delete(clear_faults).get(list_faults),
        )
        .route("/_emulator/requests", get(list_requests))
        .route("/_emulator/reset", post(reset));
    api.merge(admin).with_state(state)
}

async fn faults_and_log(State(st): State<Arc<Emu>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    {
        let mut log = st.log.lock().expect("log lock");
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(Received {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if let Some(f) = st.take_fault(&parts.method, parts.uri.path()) {
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.drop {
            // A body that fails at once: hyper closes the connection without a response.
            let stream = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("emulator: injected drop"))
            });
            return Response::new(Body::from_stream(stream));
        }
        if let Some(status) = f.status {
            let mut resp = stream_error(
                status,
                if status == 429 { 9 } else { 1 },
                "InjectedFault",
                "emulator: injected fault",
            )
            .into_response();
            if let Some(ra) = f.retry_after.as_deref().and_then(|v| v.parse().ok()) {
                resp.headers_mut().insert("retry-after", ra);
            }
            return resp;
        }
    }
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // Stream sends its rate-limit state on every response.
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60
        * 60
        + 60;
    let h = resp.headers_mut();
    h.insert(
        "x-ratelimit-limit",
        axum::http::HeaderValue::from_static("1000"),
    );
    h.insert(
        "x-ratelimit-remaining",
        axum::http::HeaderValue::from_static("999"),
    );
    h.insert("x-ratelimit-reset", axum::http::HeaderValue::from(reset));
    resp
}

/// What every handler needs to verify a call as Stream would.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Call {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl Emu {
    /// Refuses the call unless its credentials are what `needed` asks for.
    fn authorize(&self, call: &Call, needed: Needed) -> Result<(), EmuError> {
        self.verifier
            .check(&call.method, &call.uri, &call.headers, &needed)
    }
}

fn feed_of(slug: &str, user: &str) -> Result<FeedId, EmuError> {
    Ok(FeedId::new(
        Slug::parse(slug).map_err(|e| input_error("feed_slug", &e.to_string()))?,
        UserId::parse(user).map_err(|e| input_error("user_id", &e.to_string()))?,
    ))
}

fn scope(resource: Resource, action: Action, feed: Option<&FeedId>) -> Scope {
    Scope {
        resource,
        action,
        feed: feed.map_or(FeedClaim::All, |f| FeedClaim::One(f.claim())),
    }
}

fn params(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param(uri: &Uri, name: &str) -> Option<String> {
    params(uri)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn number(uri: &Uri, name: &str, default: usize) -> Result<usize, EmuError> {
    match param(uri, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| input_error(name, "must be a non-negative integer")),
    }
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, EmuError> {
    serde_json::from_slice(body).map_err(|e| input_error("body", &format!("invalid JSON: {e}")))
}

fn ok(mut v: Value) -> Response {
    v["duration"] = json!("0.10ms");
    (StatusCode::OK, Json(v)).into_response()
}

fn created(mut v: Value) -> Response {
    v["duration"] = json!("0.10ms");
    (StatusCode::CREATED, Json(v)).into_response()
}

type Reply = Result<Response, EmuError>;

async fn read_feed(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
) -> Reply {
    let feed = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Feed, Action::Read, Some(&feed))),
    )?;
    let limit = number(&call.uri, "limit", DEFAULT_LIMIT)?;
    let offset = number(&call.uri, "offset", 0)?;
    let mut bounds = Vec::new();
    for (name, b) in [
        ("id_lt", IdBound::Lt),
        ("id_lte", IdBound::Lte),
        ("id_gt", IdBound::Gt),
        ("id_gte", IdBound::Gte),
    ] {
        if let Some(v) = param(&call.uri, name) {
            let id = uuid::Uuid::parse_str(&v)
                .map_err(|_| input_error(name, "must be an activity id"))?;
            bounds.push((b, id));
        }
    }
    let results = st.store().read(&feed, limit, offset, &bounds);
    let next = match results.last() {
        Some(last) if results.len() == limit => format!(
            "/api/v1.0/feed/{}/?id_lt={}&limit={limit}",
            feed.path(),
            last["id"].as_str().unwrap_or_default()
        ),
        _ => String::new(),
    };
    Ok(ok(json!({ "results": results, "next": next })))
}

async fn add_activity(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
    body: Bytes,
) -> Reply {
    let feed = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Feed, Action::Write, Some(&feed))),
    )?;
    let v: Map<String, Value> = json_body(&body)?;
    if let Some(list) = v.get("activities") {
        let list: Vec<Map<String, Value>> = serde_json::from_value(list.clone())
            .map_err(|_| input_error("activities", "must be a list of objects"))?;
        let mut store = st.store();
        let added: Vec<Value> = list.into_iter().map(|a| store.add(&feed, a)).collect();
        return Ok(created(json!({ "activities": added })));
    }
    for key in ["actor", "verb", "object"] {
        let ok = match v.get(key) {
            Some(Value::String(_)) => true,
            Some(Value::Number(_)) => key != "verb",
            _ => false,
        };
        if !ok {
            return Err(input_error(key, "is required"));
        }
    }
    Ok(created(st.store().add(&feed, v)))
}

async fn remove_activity(
    State(st): State<Arc<Emu>>,
    Path((slug, user, activity)): Path<(String, String, String)>,
    call: Call,
) -> Reply {
    let feed = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Feed, Action::Delete, Some(&feed))),
    )?;
    let by_foreign = truthy(param(&call.uri, "foreign_id"));
    st.store().remove(&feed, &activity, by_foreign);
    Ok(ok(json!({ "removed": activity })))
}

fn follow_page(st: &Emu, slug: &str, user: &str, call: &Call, followers: bool) -> Reply {
    let feed = feed_of(slug, user)?;
    st.authorize(
        call,
        Needed::Jwt(scope(Resource::Follower, Action::Read, Some(&feed))),
    )?;
    let uri = &call.uri;
    let limit = number(uri, "limit", DEFAULT_LIMIT)?;
    let offset = number(uri, "offset", 0)?;
    if offset > 400 {
        return Err(input_error("offset", "must be at most 400"));
    }
    let filter: Vec<String> = param(uri, "filter")
        .map(|f| {
            f.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let results = st
        .store()
        .follow_list(&feed, followers, limit, offset, &filter);
    Ok(ok(json!({ "results": results })))
}

async fn followers(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
) -> Reply {
    follow_page(&st, &slug, &user, &call, true)
}

async fn following(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
) -> Reply {
    follow_page(&st, &slug, &user, &call, false)
}

fn copy_limit(v: Option<&Value>, default: usize) -> Result<usize, EmuError> {
    match v {
        None => Ok(default),
        Some(n) => match n.as_u64() {
            Some(n) if n <= 1000 => Ok(n as usize),
            _ => Err(input_error(
                "activity_copy_limit",
                "must be an integer from 0 to 1000",
            )),
        },
    }
}

async fn follow(
    State(st): State<Arc<Emu>>,
    Path((slug, user)): Path<(String, String)>,
    call: Call,
    body: Bytes,
) -> Reply {
    let source = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Follower, Action::Write, Some(&source))),
    )?;
    let v: Map<String, Value> = json_body(&body)?;
    let target = v
        .get("target")
        .and_then(Value::as_str)
        .and_then(|t| FeedId::parse(t).ok())
        .ok_or_else(|| input_error("target", "must be a feed id"))?;
    let limit = copy_limit(v.get("activity_copy_limit"), DEFAULT_COPY_LIMIT)?;
    st.store().follow(&source, &target, limit);
    Ok(created(json!({})))
}

async fn unfollow(
    State(st): State<Arc<Emu>>,
    Path((slug, user, target)): Path<(String, String, String)>,
    call: Call,
) -> Reply {
    let source = feed_of(&slug, &user)?;
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Follower, Action::Delete, Some(&source))),
    )?;
    let target = FeedId::parse(&target).map_err(|e| input_error("target", &e.to_string()))?;
    st.store()
        .unfollow(&source, &target, truthy(param(&call.uri, "keep_history")));
    Ok(ok(json!({})))
}

async fn update_activities(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(
        &call,
        Needed::Jwt(scope(Resource::Activities, Action::Write, None)),
    )?;
    #[derive(Deserialize)]
    struct Body {
        activities: Vec<Map<String, Value>>,
    }
    let b: Body = json_body(&body)?;
    if b.activities.len() > 100 {
        return Err(input_error("activities", "at most 100"));
    }
    let mut store = st.store();
    for mut a in b.activities {
        store::stringify_scalars(&mut a);
        if !(a.get("foreign_id").is_some_and(Value::is_string)
            && a.get("time").is_some_and(Value::is_string))
        {
            return Err(input_error(
                "activities",
                "each activity needs foreign_id and time",
            ));
        }
        store.update(a);
    }
    Ok(created(json!({})))
}

async fn add_to_many(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(
        &call,
        Needed::App(scope(Resource::Feed, Action::Write, None)),
    )?;
    #[derive(Deserialize)]
    struct Body {
        activity: Map<String, Value>,
        feeds: Vec<String>,
    }
    let b: Body = json_body(&body)?;
    if b.feeds.len() > 5000 {
        return Err(input_error("feeds", "at most 5000"));
    }
    let feeds = b
        .feeds
        .iter()
        .map(|f| FeedId::parse(f).map_err(|e| input_error("feeds", &e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    st.store().add_to_many(&feeds, b.activity);
    Ok(created(json!({})))
}

async fn follow_many(State(st): State<Arc<Emu>>, call: Call, body: Bytes) -> Reply {
    st.authorize(
        &call,
        Needed::App(scope(Resource::Follower, Action::Write, None)),
    )?;
    let list: Vec<Map<String, Value>> = json_body(&body)?;
    if list.len() > 2500 {
        return Err(input_error("body", "at most 2500 follows"));
    }
    let default = match param(&call.uri, "activity_copy_limit") {
        None => DEFAULT_COPY_LIMIT,
        Some(v) => copy_limit(
            Some(&json!(v.parse::<u64>().unwrap_or(u64::MAX))),
            DEFAULT_COPY_LIMIT,
        )?,
    };
    let mut store = st.store();
    for f in &list {
        let get = |k: &str| {
            f.get(k)
                .and_then(Value::as_str)
                .and_then(|s| FeedId::parse(s).ok())
                .ok_or_else(|| input_error(k, "must be a feed id"))
        };
        let limit = copy_limit(f.get("activity_copy_limit"), default)?;
        store.follow(&get("source")?, &get("target")?, limit);
    }
    Ok(created(json!({})))
}

async fn add_fault(State(st): State<Arc<Emu>>, Json(f): Json<Fault>) -> StatusCode {
    st.inject(f);
    StatusCode::CREATED
}

async fn clear_faults(State(st): State<Arc<Emu>>) -> StatusCode {
    st.faults.lock().expect("faults lock").clear();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(st): State<Arc<Emu>>) -> Json<Vec<Fault>> {
    Json(st.faults.lock().expect("faults lock").clone())
}

async fn list_requests(State(st): State<Arc<Emu>>) -> Json<Vec<Received>> {
    Json(st.received())
}

async fn reset(State(st): State<Arc<Emu>>) -> StatusCode {
    st.reset();
    StatusCode::NO_CONTENT
}
