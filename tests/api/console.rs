//! The emulator's console (`/_emulator/`), seen in a real browser: headless Chromium loads the
//! page and the tests read the DOM it rendered. Also its JSON (`export`, `log`) and the
//! refusal of other sites' pages on the admin routes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The page as headless Chromium renders it after `budget_ms` of (virtual) time.
async fn rendered(url: String, budget_ms: u64) -> String {
    tokio::task::spawn_blocking(move || chromium(&url, budget_ms))
        .await
        .unwrap()
}

fn chromium(url: &str, budget_ms: u64) -> String {
    let profile = temp_dir();
    let started = Instant::now();
    let mut child = Command::new("chromium")
        .args([
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
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): the console's browser tests need it; run \
                 scripts/check, which installs the packages of scripts/system-packages"
            )
        });
    // Read stdout while waiting, so a large DOM cannot block the browser on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dom = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(dom.contains("<html"), "chromium printed no DOM: {dom:?}");
    dom
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
async fn the_console_shows_what_went_through_the_gateway_with_its_scope_and_empties_on_reset() {
    let app = spawn_app().await;
    let flat = json!({"actor": "user:42", "verb": "post", "object": "note:console-1"});
    assert_eq!(app.post("/feed/user/42/", &flat).await.status, 201);
    for n in 1..=2 {
        let like = json!({"actor": format!("user:{n}"), "verb": "like", "object": "note:7"});
        assert_eq!(app.post("/feed/aggregated/7/", &like).await.status, 201);
    }
    let page = format!("{}/_emulator/", app.emu.url());

    let dom = rendered(page.clone(), 1000).await;
    // The activity, in its feed, and the request that wrote it with the scope it carried.
    assert!(dom.contains(r#"data-feed="user:42""#), "{dom}");
    assert!(dom.contains("user:42 post note:console-1"), "{dom}");
    assert!(dom.contains("POST /api/v1.0/feed/user/42/"), "{dom}");
    assert!(dom.contains("feed/write/user42"), "{dom}");
    // The aggregated feed shows its group of two.
    let day = chrono::Utc::now().format("%Y-%m-%d");
    assert!(dom.contains(r#"data-feed="aggregated:7""#), "{dom}");
    assert!(
        dom.contains(&format!(r#"data-group="like_{day}""#)),
        "{dom}"
    );
    assert!(dom.contains("2 activities, 2 actors"), "{dom}");

    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/_emulator/reset", app.emu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let dom = rendered(page, 1000).await;
    assert!(dom.contains("No activity in any feed."), "{dom}");
    assert!(dom.contains("No request yet."), "{dom}");
    assert!(!dom.contains("data-feed="), "{dom}");
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
