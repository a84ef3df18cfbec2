//! The emulator's console (`/_emulator/`), seen in a real browser: headless Chromium shows the
//! page and the test reads its DOM over the DevTools protocol while writing through the
//! gateway. Also its JSON (`export`, `log`) and the
//! refusal of other sites' pages on the admin routes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Chromium's flags for a test: headless, as root (no sandbox), nothing fetched from the
/// internet, a new profile.
fn chromium_command(profile: &std::path::Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn missing_chromium(e: std::io::Error) -> ! {
    panic!(
        "cannot run chromium ({e}): the console's browser tests need it; run scripts/check, \
         which installs the packages of scripts/system-packages"
    )
}

type DevTools =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium showing one page, driven over the DevTools protocol; killed on drop.
struct Browser {
    child: std::process::Child,
    profile: PathBuf,
    devtools: DevTools,
    next_id: u64,
}

impl Browser {
    async fn open(url: &str) -> Self {
        let profile = temp_dir();
        let mut child = chromium_command(&profile)
            .arg("--remote-debugging-port=0")
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| missing_chromium(e));
        // Chromium prints where DevTools listens on stderr; the rest of stderr is drained so
        // that it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].to_owned());
                }
            }
        });
        let browser_ws =
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("chromium says where DevTools listens within 30 s");
        let port = browser_ws
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .unwrap()
            .to_owned();
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (devtools, _) =
            tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap())
                .await
                .unwrap();
        Self {
            child,
            profile,
            devtools,
            next_id: 0,
        }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": "Runtime.evaluate",
                          "params": {"expression": expression, "returnByValue": true}});
        self.devtools
            .send(Message::text(call.to_string()))
            .await
            .unwrap();
        loop {
            let frame = self.devtools.next().await.unwrap().unwrap();
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                return v["result"]["result"]["value"].clone();
            }
        }
    }

    /// How long until `condition` (a JavaScript expression) holds in the page; panics with
    /// `what` after `within`.
    async fn until(&mut self, condition: &str, within: Duration, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(condition).await == json!(true) {
                return started.elapsed();
            }
            if started.elapsed() > within {
                let text = self.eval("document.body.innerText").await;
                panic!("{what}: not within {within:?}; the page shows {text}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn the_console_updates_live_with_each_write_and_its_scope_and_its_reset_button_empties_it() {
    let app = spawn_app().await;
    let mut page = Browser::open(&format!("{}/_emulator/", app.emu.url())).await;
    let empty = r##"document.querySelector("#feeds .empty") !== null
                   && document.querySelector("[data-feed]") === null"##;
    page.until(empty, Duration::from_secs(20), "the console loads, empty")
        .await;

    let flat = json!({"actor": "user:42", "verb": "post", "object": "note:live"});
    assert_eq!(app.post("/feed/user/42/", &flat).await.status, 201);
    let took = page
        .until(
            r##"document.querySelector('[data-feed="user:42"]')?.innerText.includes("note:live")
               && document.querySelector("#requests").innerText.includes("feed/write/user42")"##,
            Duration::from_secs(5),
            "the activity and its request's scope appear",
        )
        .await;
    eprintln!("the console showed the write {took:?} after it was answered");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    for n in 1..=2 {
        let like = json!({"actor": format!("user:{n}"), "verb": "like", "object": "note:7"});
        assert_eq!(app.post("/feed/aggregated/7/", &like).await.status, 201);
    }
    let day = chrono::Utc::now().format("%Y-%m-%d");
    page.until(
        &format!(
            r#"document.querySelector('[data-feed="aggregated:7"] [data-group="like_{day}"]')
                 ?.innerText.includes("2 activities, 2 actors") === true"#
        ),
        Duration::from_secs(5),
        "the aggregated feed shows its group",
    )
    .await;

    // The page's own buttons: the browser's POSTs (with their Origin) are not refused.
    page.eval(
        r#"const f = document.getElementById("fault");
           f.path_prefix.value = "/api/v1.0/feed/user/9/"; f.status.value = "502";
           f.requestSubmit(); true"#,
    )
    .await;
    page.until(
        r##"document.querySelector("#faults").innerText.includes("/api/v1.0/feed/user/9/ → 502 × 1")"##,
        Duration::from_secs(5),
        "the injected fault shows",
    )
    .await;
    assert_eq!(app.emu().faults()[0].status, Some(502));

    page.eval(r#"window.confirm = () => true; window.alert = () => {}; document.getElementById("reset").click(); true"#)
        .await;
    page.until(
        &format!(r##"{empty} && document.querySelector("#requests .empty") !== null"##),
        Duration::from_secs(5),
        "the reset empties the view",
    )
    .await;
    assert_eq!(app.emu().store().activity_count(), 0);
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "console-chromium-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_export_holds_the_whole_state_and_the_log_the_credentials_without_signatures() {
    let app = spawn_app().await;
    let flat = json!({"actor": "user:42", "verb": "post", "object": "note:1"});
    assert_eq!(app.post("/feed/user/42/", &flat).await.status, 201);
    assert_eq!(
        app.post("/feed/timeline/1/follows/", &json!({"target": "user:42"}))
            .await
            .status,
        201
    );
    // Analytics go to their own host (see services.rs); kept as the handler keeps them.
    app.emu().track(
        "engagement",
        vec![json!({"content": "note:1", "label": "click"})],
    );
    let c = reqwest::Client::new();
    let emu = app.emu.url();
    let export: Value = c
        .get(format!("{emu}/_emulator/export"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(export["version"], 1);
    assert_eq!(export["activities"][0]["object"], "note:1");
    let feeds: Vec<&str> = export["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(feeds, ["timeline:1", "user:42"]);
    assert_eq!(export["follows"][0]["target_id"], "user:42");
    assert_eq!(export["analytics"][0]["kind"], "engagement");

    let log = c
        .get(format!("{emu}/_emulator/log"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&log).unwrap();
    let first = &parsed["requests"][0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["status"], 201);
    assert_eq!(first["credential"]["kind"], "jwt");
    assert_eq!(first["credential"]["claims"]["resource"], "feed");
    assert_eq!(first["credential"]["claims"]["action"], "write");
    assert_eq!(first["credential"]["claims"]["feed_id"], "user42");
    // No token's signature, nor the secret, anywhere in it.
    for r in app.received() {
        let Some(auth) = r.header("authorization") else {
            continue;
        };
        let signature = auth.rsplit(['.', '"']).find(|s| s.len() > 20).unwrap();
        assert!(!log.contains(signature), "{signature} in {log}");
    }
    assert!(!log.contains(SECRET));
    assert!(!export.to_string().contains(SECRET));
}

#[tokio::test]
async fn other_sites_pages_cannot_change_the_emulator_and_the_gateway_has_no_console() {
    let app = spawn_app().await;
    assert_eq!(
        app.post("/feed/user/1/", &keyed_activity(1)).await.status,
        201
    );
    let emu = app.emu.url();
    let own = emu.clone();
    let c = reqwest::Client::new();
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        for (method, path) in [
            (reqwest::Method::POST, "/_emulator/reset"),
            (reqwest::Method::POST, "/_emulator/faults"),
            (reqwest::Method::DELETE, "/_emulator/faults"),
            (reqwest::Method::PUT, "/_emulator/secrets"),
            (reqwest::Method::POST, "/_emulator/ratelimit"),
            (reqwest::Method::POST, "/_emulator/webhooks/send"),
        ] {
            let r = c
                .request(method.clone(), format!("{emu}{path}"))
                .header(name, value)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{method} {path} with {name}: {value}");
            let body: Value = r.text().await.unwrap().parse().unwrap();
            assert_eq!(body["exception"], "NotAllowedException");
            assert_eq!(body["code"], 17);
        }
    }
    assert_eq!(app.emu().store().activity_count(), 1, "nothing was reset");
    // A page that rebinds its own name to the emulator's address reads nothing either.
    for path in [
        "/_emulator/",
        "/_emulator/log",
        "/_emulator/requests",
        "/_emulator/export",
    ] {
        let r = c
            .get(format!("{emu}{path}"))
            .header("host", "rebound.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // The console's own page may reset; reads pass from anywhere (a browser keeps another
    // site's page from reading the answer).
    let r = c
        .get(format!("{emu}/_emulator/export"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = c
        .post(format!("{emu}/_emulator/reset"))
        .header("origin", own)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.emu().store().activity_count(), 0);
    // The page may not be framed, and runs only its own script.
    let r = c.get(format!("{emu}/_emulator/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // The gateway's port serves none of it.
    for path in ["/_emulator/", "/_emulator/export", "/_emulator/log"] {
        let r = app
            .send(app.client.get(format!("http://{}{path}", app.addr)))
            .await;
        assert_eq!(r.status, 404, "{path}");
    }
}
