//! The fault soak (`scripts/soak`, CI): the real binary in front of an emulator (another
//! `stream-gateway --emulator` process, so the gateway's memory is its own), sustained load from
//! 32 writers and readers while the emulator injects 429s, 503s, delays past the timeout and
//! dropped connections; then SIGTERM while requests are in flight. It reports what was sent,
//! answered and retried, and checks:
//! - every idempotent (keyed) write answered 201 is stored exactly once, none twice;
//! - no non-idempotent write is stored twice (each carries a unique object);
//! - no panic in the gateway's log; it exits 0 after SIGTERM, in-flight requests answered;
//! - resident memory after the load is within a bound of the warmed-up figure.
//!
//! Ignored by `cargo test`; `SOAK_SECONDS=60 cargo test --release --test soak -- --ignored
//! --nocapture` runs it (the default is 30 s).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const WRITERS: usize = 32;
/// Allowed growth of the gateway's resident memory from warm-up to the end of the load.
const RSS_SLACK_KIB: u64 = 16 * 1024;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    ok: AtomicU64,
    client_error: AtomicU64,
    upstream_error: AtomicU64,
    transport_error: AtomicU64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of several minutes; scripts/soak runs it"]
async fn fault_soak_then_sigterm() {
    let secs: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // Stream emulated in its own process (its memory holds every activity written), the
    // gateway under test in another, pointed at it, so the gateway's memory is its own.
    // SOAK_RELEASE_BIN: the release binary CI built once (scripts/soak passes it); the load
    // generator itself may be a debug build.
    let bin = std::env::var("SOAK_RELEASE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_stream-gateway").to_owned());
    let (key, secret) = ("soak-key", "emulator-soak-secret-0123456789abcdef");
    let (mut emu_host, emu, emu_log_path) = start_emulator(&bin, key, secret).await;
    let (child, port, log_path) = start_gateway(&bin, &emu, key, secret);
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_until_up(&http, &base).await;
    let (results, counts, rss_warm) = run_load(&http, &base, &emu, pid, secs).await;
    let rss_end = rss_kib(pid);
    let _ = http.delete(format!("{emu}/_emulator/faults")).send().await;

    let stored = read_back(&http, &base).await;
    let retried = retries(&http, &base).await;
    let (inflight_ok, exit) = sigterm_with_requests_in_flight(&http, &base, &emu, child).await;

    let log = std::fs::read_to_string(&log_path).unwrap();
    let panics = log.lines().filter(|l| l.contains("panicked")).count();
    let w = tally(&results, &stored);
    let c = &counts;
    println!(
        "soak: {secs} s, {WRITERS} clients: sent {}, answered 2xx {}, 5xx/429 {}, 4xx {}, \
         transport errors {}; retried {retried}; keyed writes acked {} (missing {}), \
         unkeyed writes acked {}; objects stored twice {}; \
         in flight at SIGTERM answered 2xx {inflight_ok}/16; exit {exit}; panics {panics}; \
         RSS warm {} KiB, end {} KiB",
        c.sent.load(Ordering::Relaxed),
        c.ok.load(Ordering::Relaxed),
        c.upstream_error.load(Ordering::Relaxed),
        c.client_error.load(Ordering::Relaxed),
        c.transport_error.load(Ordering::Relaxed),
        w.keyed_acked,
        w.keyed_missing,
        w.unkeyed_acked,
        w.duplicates,
        rss_warm,
        rss_end,
    );
    assert!(c.ok.load(Ordering::Relaxed) > 0, "the load got through");
    assert!(retried > 0.0, "the faults caused retries");
    assert_eq!(
        w.keyed_missing, 0,
        "every acknowledged keyed write is stored"
    );
    assert_eq!(w.duplicates, 0, "nothing is stored twice");
    assert_eq!(
        c.transport_error.load(Ordering::Relaxed),
        0,
        "every request got an answer"
    );
    assert_eq!(panics, 0, "no panic:\n{log}");
    assert_eq!(
        inflight_ok, 16,
        "requests in flight at SIGTERM are answered"
    );
    assert!(exit.success(), "exit 0 after SIGTERM: {exit}");
    assert!(rss_warm > 0, "warm-up RSS was read");
    assert!(
        rss_end <= rss_warm + RSS_SLACK_KIB,
        "RSS {rss_end} KiB after the load, {rss_warm} KiB warmed up"
    );
    let _ = emu_host.kill();
    let _ = emu_host.wait();
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_file(&emu_log_path);
}

/// The writers for `secs`, with faults injected throughout: each writer's objects acked (keyed,
/// unkeyed), the counts, and the gateway's resident memory once warmed up.
async fn run_load(
    http: &reqwest::Client,
    base: &str,
    emu: &str,
    pid: u32,
    secs: u64,
) -> (Vec<(Vec<String>, Vec<String>)>, Arc<Counts>, u64) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let injector = inject_faults(http.clone(), emu.to_owned(), stop.clone());
    let counts = Arc::new(Counts::default());
    let rss_warm = Arc::new(AtomicU64::new(0));
    let load = Load {
        http: http.clone(),
        base: base.to_owned(),
        counts: counts.clone(),
        rss_warm: rss_warm.clone(),
        pid,
        warmup: Instant::now() + Duration::from_secs(secs.min(10) / 2),
        end: Instant::now() + Duration::from_secs(secs),
    };
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write(load.clone(), w)))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("a writer task"));
    }
    stop.store(true, Ordering::SeqCst);
    injector.await.unwrap();
    (results, counts, rss_warm.load(Ordering::SeqCst))
}

/// `stream-gateway --emulator` in its own process: the child, the emulator's URL (from its
/// banner) and its log file.
async fn start_emulator(bin: &str, key: &str, secret: &str) -> (Child, String, PathBuf) {
    let emu_log_path =
        std::env::temp_dir().join(format!("stream-gateway-soak-emu-{}.log", free_port()));
    let emu_host = Command::new(bin)
        .arg("--emulator")
        .env(
            "GATEWAY_SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("STREAM_API_KEY", key)
        .env("STREAM_API_SECRET", secret)
        .env("RUST_LOG", "warn")
        .env_remove("GATEWAY_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&emu_log_path).unwrap())
        .spawn()
        .expect("the emulator host starts");
    let mut emu = None;
    for _ in 0..200 {
        emu = std::fs::read_to_string(&emu_log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["emulator"].as_str().map(str::to_owned));
        if emu.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let emu = emu.expect("the emulator host's banner names the emulator");
    (emu_host, emu, emu_log_path)
}

/// The gateway under test, pointed at the emulator with short timeouts and a full retry
/// budget: the child, its port and its log file.
fn start_gateway(bin: &str, emu: &str, key: &str, secret: &str) -> (Child, u16, PathBuf) {
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("stream-gateway-soak-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(bin)
        .env("STREAM_BASE_URL", emu)
        .env("STREAM_API_KEY", key)
        .env("STREAM_API_SECRET", secret)
        .env("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY_LOG__FORMAT", "json")
        .env("GATEWAY_UPSTREAM__TIMEOUT_MS", "250")
        .env("GATEWAY_UPSTREAM__DEADLINE_MS", "2500")
        .env("GATEWAY_UPSTREAM__BACKOFF_BASE_MS", "10")
        .env("GATEWAY_UPSTREAM__BACKOFF_MAX_MS", "100")
        .env("GATEWAY_UPSTREAM__RETRY_BUDGET_PERCENT", "100")
        .env("GATEWAY_SERVER__SHUTDOWN_GRACE_MS", "5000")
        .env("RUST_LOG", "info")
        .env_remove("GATEWAY_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the gateway starts");
    (child, port, log_path)
}

async fn wait_until_up(http: &reqwest::Client, base: &str) {
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the gateway came up");
}

/// Faults, one every 40 ms until `stop`.
fn inject_faults(
    http: reqwest::Client,
    emu: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let faults = [
            json!({"path_prefix": "/api/v1.0/feed/", "status": 503, "times": 3}),
            json!({"path_prefix": "/api/v1.0/feed/", "status": 429, "retry_after": "0", "times": 3}),
            json!({"path_prefix": "/api/v1.0/feed/", "delay_ms": 400, "times": 2}),
            json!({"path_prefix": "/api/v1.0/feed/", "drop": true, "times": 2}),
            json!({"method": "POST", "path_prefix": "/api/v1.0/feed/", "delay_ms": 400, "times": 2}),
        ];
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let _ = http
                .post(format!("{emu}/_emulator/faults"))
                .header("content-type", "application/json")
                .body(faults[i % faults.len()].to_string())
                .send()
                .await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

/// What every writer shares.
#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    base: String,
    counts: Arc<Counts>,
    rss_warm: Arc<AtomicU64>,
    pid: u32,
    warmup: Instant,
    end: Instant,
}

/// One writer until the end of the load: a read, a keyed write and an unkeyed write in
/// turn. Returns the objects of the keyed and of the unkeyed writes answered 2xx.
async fn write(load: Load, w: usize) -> (Vec<String>, Vec<String>) {
    let Load {
        http,
        base,
        counts,
        rss_warm,
        pid,
        warmup,
        end,
    } = load;
    let mut keyed_ok = Vec::new();
    let mut unkeyed_ok = Vec::new();
    let mut n: u64 = 0;
    while Instant::now() < end {
        if w == 0 && Instant::now() >= warmup && rss_warm.load(Ordering::SeqCst) == 0 {
            rss_warm.store(rss_kib(pid), Ordering::SeqCst);
        }
        n += 1;
        let (path, body, keyed) = nth_request(w, n);
        counts.sent.fetch_add(1, Ordering::Relaxed);
        let req = match &body {
            Some(b) => http.post(format!("{base}{path}")).body(b.to_string()),
            None => http.get(format!("{base}{path}")),
        };
        match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                match s {
                    200..=299 => {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                        if let Some(b) = &body {
                            let obj = b["object"].as_str().unwrap().to_owned();
                            if keyed {
                                keyed_ok.push(obj);
                            } else {
                                unkeyed_ok.push(obj);
                            }
                        }
                    }
                    400..=499 if s != 429 => {
                        counts.client_error.fetch_add(1, Ordering::Relaxed);
                        panic!("{path}: {s} for a valid request");
                    }
                    _ => {
                        counts.upstream_error.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => {
                counts.transport_error.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (keyed_ok, unkeyed_ok)
}

/// Writer `w`'s `n`th request: path, body, and whether the write is keyed (`foreign_id` and
/// `time`, so a retry cannot store it twice).
fn nth_request(w: usize, n: u64) -> (String, Option<Value>, bool) {
    match n % 3 {
        0 => (format!("/api/v1.0/feed/user/soak{w}/?limit=5"), None, false),
        1 => {
            let t = format!(
                "2026-11-27T{:02}:{:02}:{:02}.{:06}",
                (n / 3600) % 24,
                (n / 60) % 60,
                n % 60,
                n
            );
            let a = json!({"actor": "user:soak", "verb": "post",
                "object": format!("k:{w}:{n}"), "foreign_id": format!("k:{w}:{n}"), "time": t});
            (format!("/api/v1.0/feed/user/soak{w}/"), Some(a), true)
        }
        _ => {
            let a = json!({"actor": "user:soak", "verb": "post", "object": format!("u:{w}:{n}")});
            (format!("/api/v1.0/feed/user/soak{w}/"), Some(a), false)
        }
    }
}

/// Every writer's feed read back (no faults now): how often each object is stored.
async fn read_back(http: &reqwest::Client, base: &str) -> Vec<HashMap<String, usize>> {
    let mut stored = Vec::new();
    for w in 0..WRITERS {
        let mut seen = HashMap::new();
        let mut offset = 0;
        loop {
            let bytes = http
                .get(format!(
                    "{base}/api/v1.0/feed/user/soak{w}/?limit=100&offset={offset}"
                ))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let page: Value = serde_json::from_slice(&bytes).unwrap();
            let list = page["results"].as_array().cloned().unwrap_or_default();
            for a in &list {
                *seen
                    .entry(a["object"].as_str().unwrap_or_default().to_owned())
                    .or_insert(0) += 1;
            }
            if list.len() < 100 {
                break;
            }
            offset += 100;
        }
        stored.push(seen);
    }
    stored
}

/// `gateway_retries_total`, summed over its labels.
async fn retries(http: &reqwest::Client, base: &str) -> f64 {
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("gateway_retries_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// SIGTERM with 16 requests in flight (each delayed upstream): how many were answered 2xx,
/// and how the gateway exited.
async fn sigterm_with_requests_in_flight(
    http: &reqwest::Client,
    base: &str,
    emu: &str,
    mut child: Child,
) -> (usize, ExitStatus) {
    let inflight: Vec<_> = (0..16)
        .map(|i| {
            let (http, base) = (http.clone(), base.to_owned());
            tokio::spawn(async move {
                http.get(format!("{base}/api/v1.0/feed/user/soak{i}/?limit=1"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let _ = http
        .post(format!("{emu}/_emulator/faults"))
        .header("content-type", "application/json")
        .body(json!({"path_prefix": "/api/v1.0/feed/", "delay_ms": 150, "times": 16}).to_string())
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut inflight_ok = 0;
    for t in inflight {
        if let Ok(Ok(s)) = t.await {
            if (200..300).contains(&s) {
                inflight_ok += 1;
            }
        }
    }
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    (inflight_ok, exit)
}

/// The writes' outcomes against what was stored.
struct Tally {
    keyed_acked: usize,
    keyed_missing: usize,
    unkeyed_acked: usize,
    duplicates: usize,
}

fn tally(results: &[(Vec<String>, Vec<String>)], stored: &[HashMap<String, usize>]) -> Tally {
    let mut t = Tally {
        keyed_acked: 0,
        keyed_missing: 0,
        unkeyed_acked: 0,
        duplicates: 0,
    };
    for (w, (keyed_ok, unkeyed_ok)) in results.iter().enumerate() {
        for o in keyed_ok {
            t.keyed_acked += 1;
            if stored[w].get(o).copied().unwrap_or(0) == 0 {
                t.keyed_missing += 1;
            }
        }
        t.unkeyed_acked += unkeyed_ok.len();
        t.duplicates += stored[w].values().filter(|&&c| c > 1).count();
    }
    t
}
