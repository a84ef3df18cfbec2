//! `spawn_app()`: a gateway on port 0 in front of a strict emulator on port 0, and a client.

use std::net::SocketAddr;
use std::sync::Arc;

use figment::providers::Serialized;
use figment::Figment;
use serde_json::Value;
use stream_emulator::{Emulator, EmulatorConfig, EmulatorState, Fault, Received};
use stream_gateway::app::App;
use stream_gateway::config::{Config, FileConfig};
use stream_gateway::state::AppState;
use stream_wire::auth::{jwt, Secret};
use stream_wire::Scope;

pub const KEY: &str = "test-api-key";
pub const SECRET: &str = "test-secret-5f0c1e9a7b3d";

pub struct TestApp {
    pub addr: SocketAddr,
    /// `server.public_listen`, when configured.
    pub public: Option<SocketAddr>,
    /// `server.admin_listen`, when configured.
    pub admin: Option<SocketAddr>,
    pub api: String,
    pub emu: Emulator,
    pub client: reqwest::Client,
    /// The gateway's shared state (metrics, the secret in force).
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

/// The figment every test starts from: the strict emulator as upstream, short timeouts.
pub fn base_figment(emu: &Emulator) -> Figment {
    figment_without_secret(emu).merge(("stream.api_secret", SECRET))
}

/// [`base_figment`] before the secret is set, for tests that take it from a file.
pub fn figment_without_secret(emu: &Emulator) -> Figment {
    Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.api_key", KEY))
        .merge(("stream.base_url", emu.url()))
        .merge(("upstream.timeout_ms", 400))
        .merge(("upstream.deadline_ms", 3000))
        .merge(("upstream.backoff_base_ms", 5))
        .merge(("upstream.backoff_max_ms", 20))
}

pub async fn strict_emulator() -> Emulator {
    Emulator::spawn(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: true,
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("emulator binds")
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|f| f).await
}

pub async fn spawn_with(tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let emu = strict_emulator().await;
    let config = Config::from_figment(&tweak(base_figment(&emu))).expect("test config is valid");
    start(config, emu).await
}

pub async fn start(config: Config, emu: Emulator) -> TestApp {
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let (public, admin) = (app.public_addr(), app.admin_addr());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        public,
        admin,
        api: format!("http://{addr}/api/v1.0"),
        emu,
        client: reqwest::Client::new(),
        state,
        stop: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn emu(&self) -> &Arc<EmulatorState> {
        self.emu.state()
    }

    pub fn received(&self) -> Vec<Received> {
        self.emu().received()
    }

    pub fn fault(&self, method: &str, path_prefix: &str, f: impl FnOnce(&mut Fault)) {
        let mut fault = Fault {
            method: Some(method.into()),
            path_prefix: path_prefix.into(),
            status: None,
            delay_ms: None,
            drop: false,
            retry_after: None,
            times: 1,
            ..Fault::default()
        };
        f(&mut fault);
        self.emu().inject(fault);
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.api)))
            .await
    }

    /// A GET naming its caller in `X-Caller` (`[callers]` with that identity header).
    pub async fn get_as(&self, caller: &str, path: &str) -> Reply {
        self.send(
            self.client
                .get(format!("{}{path}", self.api))
                .header("X-Caller", caller),
        )
        .await
    }

    /// `/metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One series' value: its name and labels as `/metrics` writes them (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.api))
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.api)).body(body))
            .await
    }

    /// `POST /tokens` with `body` and extra headers.
    pub async fn tokens(&self, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut r = self
            .client
            .post(format!("http://{}/tokens", self.addr))
            .body(body.to_string());
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        self.send(r).await
    }

    /// Any method, with a JSON body when given.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut r = self.client.request(m, format!("{}{path}", self.api));
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        self.send(r).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.client.delete(format!("{}{path}", self.api)))
            .await
    }

    /// Waits (up to 10 s) until the emulator has received `n` requests.
    pub async fn wait_received(&self, n: usize) {
        for _ in 0..1000 {
            if self.received().len() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the emulator did not receive {n} requests");
    }

    /// Signals shutdown without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }
}

/// The scope of the JWT the upstream received in `r`; panics when it is not a valid token
/// signed with the real secret.
pub fn upstream_scope(r: &Received) -> Scope {
    assert_eq!(r.header("stream-auth-type"), Some("jwt"), "{r:?}");
    let token = r.header("authorization").expect("authorization header");
    let claims = jwt::verify(token, &Secret::new(SECRET), 0).expect("signed with the real secret");
    claims.scope().expect("a scope token")
}

/// The values of `api_key` in a received request's query.
pub fn api_keys(r: &Received) -> Vec<String> {
    let q = r.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned())
        .collect()
}

pub fn activity(n: u32) -> Value {
    serde_json::json!({"actor": "user:1", "verb": "post", "object": format!("post:{n}")})
}

pub fn keyed_activity(n: u32) -> Value {
    serde_json::json!({
        "actor": "user:1", "verb": "post", "object": format!("post:{n}"),
        "foreign_id": format!("post:{n}"),
        "time": format!("2026-11-27T10:{:02}:{:02}.{:06}", (n / 60) % 60, n % 60, n),
    })
}

/// Writes `bytes` to the gateway over a fresh TCP connection and returns what it answers
/// until it closes (or 5 s pass).
pub async fn raw_http(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// What a [`raw_upstream`] writes back on each connection.
#[derive(Clone)]
pub enum RawAnswer {
    /// These bytes, then it waits for the gateway to close the connection.
    Bytes(Vec<u8>),
    /// This head, then 16 KiB chunks of a chunked body until the connection breaks.
    EndlessChunks(String),
}

/// A hostile or minimal HTTP server over plain TCP, for what the emulator cannot answer.
pub struct RawUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The request heads received, in order.
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
    /// Connections the gateway closed (read EOF or a failed write).
    pub closed: Arc<std::sync::atomic::AtomicUsize>,
}

pub async fn raw_upstream(answer: RawAnswer) -> RawUpstream {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let closed = Arc::new(AtomicUsize::new(0));
    let (h, c) = (heads.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (heads, closed, answer) = (h.clone(), c.clone(), answer.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                heads
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                match answer {
                    RawAnswer::Bytes(b) => {
                        let _ = s.write_all(&b).await;
                        let mut sink = [0u8; 1024];
                        while s.read(&mut sink).await.unwrap_or(0) > 0 {}
                    }
                    RawAnswer::EndlessChunks(head) => {
                        let _ = s.write_all(head.as_bytes()).await;
                        let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                        while s.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    RawUpstream { url, heads, closed }
}

/// Waits (up to 10 s) until `f` holds.
pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}
