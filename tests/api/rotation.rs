//! Rotating the API secret while serving: the file rewritten in place, the `..data` symlink
//! swap of a Kubernetes secret volume, and a reload (what SIGHUP does) with a broken file; a
//! client loops requests through every change, against an emulator that takes the new secret.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use stream_gateway::config::Config;
use stream_gateway::reload::Reloads;
use stream_wire::auth::{jwt, Secret};

use crate::helpers::*;

const NEW: &str = "rotated-secret-8d2b47c1e0";

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let d = std::env::temp_dir().join(format!("gw-rotation-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway with its secret from `file`, watched, and reloads on request.
pub async fn rotating_app(file: &Path) -> (TestApp, Reloads) {
    let emu = strict_emulator().await;
    let f = figment_without_secret(&emu).merge(("stream.api_secret_file", file));
    let app = start(Config::from_figment(&f).expect("valid"), emu).await;
    let again = f.clone();
    let reloads = Reloads::start(app.state.clone(), &f, Arc::new(move || again.clone()));
    (app, reloads)
}

/// `gateway_config_reloads_total{result}`.
pub fn reloads(app: &TestApp, result: &str) -> u64 {
    let line = format!("gateway_config_reloads_total{{result=\"{result}\"}} ");
    app.state
        .metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .unwrap_or(0)
}

/// A client looping a JWT read and an HTTP-Signature batch call until stopped.
struct Looping {
    done: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

fn client_loop(app: &TestApp) -> Looping {
    let (client, api) = (app.client.clone(), app.api.clone());
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (d, f, s) = (done.clone(), failures.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let follow = json!([{"source": "timeline:1", "target": "user:1"}]).to_string();
        while !s.load(Ordering::SeqCst) {
            let read = client.get(format!("{api}/feed/user/1/")).send().await;
            let batch = client
                .post(format!("{api}/follow_many/"))
                .body(follow.clone())
                .send()
                .await;
            for r in [read, batch] {
                match r {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        let failed =
                            format!("{}: {}", r.status(), r.text().await.unwrap_or_default());
                        f.lock().unwrap().push(failed);
                    }
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
            }
            d.fetch_add(1, Ordering::SeqCst);
        }
    });
    Looping {
        done,
        failures,
        stop,
        task,
    }
}

async fn wait_for_rounds(l: &Looping, n: u64) {
    let target = l.done.load(Ordering::SeqCst) + n;
    let done = l.done.clone();
    wait_until("the client looped", move || {
        done.load(Ordering::SeqCst) >= target
    })
    .await;
}

/// Makes the change with the client looping; the emulator takes the old and the new secret
/// until the gateway has rotated, then the new one only. No request may fail.
async fn rotate_under_load(app: &TestApp, change: impl FnOnce()) {
    app.emu()
        .accept_secrets(vec![Secret::new(SECRET), Secret::new(NEW)]);
    let l = client_loop(app);
    wait_for_rounds(&l, 3).await;
    change();
    let state = app.state.clone();
    wait_until("the new secret is in force", move || {
        state.keys().load().secret().expose() == NEW
    })
    .await;
    // Two more rounds: the one in flight at the rotation, then one begun after it.
    wait_for_rounds(&l, 2).await;
    app.emu().accept_secrets(vec![Secret::new(NEW)]);
    let seen = app.received().len();
    wait_for_rounds(&l, 5).await;
    l.stop.store(true, Ordering::SeqCst);
    l.task.await.unwrap();
    assert_eq!(*l.failures.lock().unwrap(), Vec::<String>::new());
    assert_eq!(reloads(app, "ok"), 1);
    assert_eq!(reloads(app, "error"), 0);
    // After the change, upstream tokens are the new secret's.
    let after: Vec<_> = app.received().into_iter().skip(seen).collect();
    assert!(after.len() >= 10, "{}", after.len());
    for r in after
        .iter()
        .filter(|r| r.header("stream-auth-type").is_some())
    {
        let token = r.header("authorization").unwrap();
        assert!(jwt::verify(token, &Secret::new(NEW), 0).is_ok(), "{r:?}");
    }
    // So are the tokens /tokens mints.
    let t = app.tokens(json!({"user_id": "42"}), &[]).await;
    let token = t.json["token"].as_str().unwrap();
    assert!(jwt::verify(token, &Secret::new(NEW), 0).is_ok());
    assert!(jwt::verify(token, &Secret::new(SECRET), 0).is_err());
}

#[tokio::test]
async fn rewriting_the_secret_file_in_place_rotates_it_without_failing_a_request() {
    let dir = TempDir::new();
    let file = dir.0.join("api_secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let (app, _reloads) = rotating_app(&file).await;
    rotate_under_load(&app, || std::fs::write(&file, format!("{NEW}\n")).unwrap()).await;
}

/// The layout of a Kubernetes secret volume: `api_secret -> ..data/api_secret`, `..data -> ..<version>`.
fn kubernetes_volume(dir: &Path, secret: &str, version: &str) {
    let v = dir.join(version);
    std::fs::create_dir(&v).unwrap();
    std::fs::write(v.join("api_secret"), secret).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    // The swap is one rename over the old link, as the kubelet does it.
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("api_secret");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("..data/api_secret", &link).unwrap();
    }
}

#[tokio::test]
async fn swapping_the_data_symlink_as_kubernetes_does_rotates_the_secret() {
    let dir = TempDir::new();
    kubernetes_volume(&dir.0, SECRET, "..2026_11_28_10_00_00.1");
    let (app, _reloads) = rotating_app(&dir.0.join("api_secret")).await;
    rotate_under_load(&app, || {
        kubernetes_volume(&dir.0, NEW, "..2026_11_28_10_05_00.2");
        std::fs::remove_dir_all(dir.0.join("..2026_11_28_10_00_00.1")).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_reload_with_a_broken_secret_file_keeps_serving_with_the_old_secret() {
    let dir = TempDir::new();
    let file = dir.0.join("api_secret");
    std::fs::write(&file, SECRET).unwrap();
    let (app, reloads_) = rotating_app(&file).await;
    assert_eq!(app.get("/feed/user/1/").await.status, 200);

    std::fs::write(&file, "").unwrap();
    reloads_.request();
    wait_until("the reload failed", || reloads(&app, "error") >= 1).await;
    std::fs::remove_file(&file).unwrap();
    reloads_.request();
    wait_until("the second reload failed", || reloads(&app, "error") >= 2).await;

    // The emulator still takes only the old secret: every call still succeeds.
    for _ in 0..3 {
        assert_eq!(app.get("/feed/user/1/").await.status, 200);
        let r = app
            .post(
                "/follow_many/",
                &json!([{"source": "timeline:1", "target": "user:1"}]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
    }
    assert_eq!(app.state.keys().load().secret().expose(), SECRET);
    assert_eq!(reloads(&app, "ok"), 0);
    let r = app.received();
    upstream_scope(r.iter().rev().find(|r| r.method == "GET").unwrap());
}

#[tokio::test]
async fn the_emulator_takes_the_secrets_it_is_given_and_refuses_others() {
    let app = spawn_app().await;
    let admin = |body: serde_json::Value| {
        app.client
            .put(format!("{}/_emulator/secrets", app.emu.url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(admin(json!({"secrets": []})).await.unwrap().status(), 400);
    assert_eq!(admin(json!({"secrets": [""]})).await.unwrap().status(), 400);
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    // The gateway signs with SECRET; an emulator taking another secret only refuses it.
    assert_eq!(
        admin(json!({"secrets": [NEW]})).await.unwrap().status(),
        204
    );
    assert_eq!(app.get("/feed/user/1/").await.status, 403);
    let batch = json!([{"source": "timeline:1", "target": "user:1"}]);
    assert_eq!(app.post("/follow_many/", &batch).await.status, 401);
    let both = json!({"secrets": [NEW, SECRET]});
    assert_eq!(admin(both).await.unwrap().status(), 204);
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    assert_eq!(app.post("/follow_many/", &batch).await.status, 201);
}

#[tokio::test]
async fn a_reload_that_leaves_the_emulator_mode_cannot_put_a_real_secret_in_force() {
    let emulated = |emulator: bool, secret: &str| {
        figment::Figment::from(figment::providers::Serialized::defaults(
            stream_gateway::config::FileConfig::default(),
        ))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.api_key", KEY))
        .merge(("stream.emulator", emulator))
        .merge(("stream.api_secret", secret))
    };
    let started = emulated(true, "emulator-5e1f0c");
    let app = start(
        Config::from_figment(&started).unwrap(),
        strict_emulator().await,
    )
    .await;
    // The file now says: no emulator, a real secret. The process still runs the emulator.
    let edited = emulated(false, "real-secret-31415926");
    let reloads_ = Reloads::start(
        app.state.clone(),
        &started,
        Arc::new(move || edited.clone()),
    );
    reloads_.request();
    wait_until("the reload was refused", || reloads(&app, "error") >= 1).await;
    assert_eq!(app.state.keys().load().secret().expose(), "emulator-5e1f0c");
    assert_eq!(reloads(&app, "ok"), 0);
}

#[tokio::test]
async fn a_reload_puts_a_secret_file_in_force_only_once_a_second_read_agrees() {
    let dir = TempDir::new();
    let file = dir.0.join("api_secret");
    std::fs::write(&file, SECRET).unwrap();
    let (app, reloads_) = rotating_app(&file).await;
    // A writer that never settles: every read finds another secret.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (file, stop) = (file.clone(), stop.clone());
        std::thread::spawn(move || {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::fs::write(&file, format!("{NEW}-{n}")).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    reloads_.request();
    wait_until("the reload was refused", || reloads(&app, "error") >= 1).await;
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(app.state.keys().load().secret().expose(), SECRET);
    assert_eq!(reloads(&app, "ok"), 0);
    // Settled, a reload takes it.
    std::fs::write(&file, NEW).unwrap();
    reloads_.request();
    wait_until("the reload took the settled file", || {
        reloads(&app, "ok") >= 1
    })
    .await;
    assert_eq!(app.state.keys().load().secret().expose(), NEW);
}
