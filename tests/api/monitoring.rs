//! The alert rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
//! (deploy/grafana/stream-gateway.json), checked: by `promtool` (the rules' syntax and their
//! unit tests, alerts.test.yml), and by a real Prometheus (Debian's `prometheus`) scraping a
//! gateway in front of the strict emulator under load with faults, which evaluates every
//! expression of both. An expression that stops returning data (a metric renamed or no longer
//! exported) fails here, unless it is listed below as not exported yet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stream_emulator::RateRule;
use stream_gateway::config::Config;
use stream_gateway::reload::Reloads;

use crate::helpers::*;
use crate::rotation::TempDir;

const RULES: &str = "deploy/prometheus/alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const DASHBOARD: &str = "deploy/grafana/stream-gateway.json";
const RUNBOOK: &str = "docs/operations.md";

/// Metrics other changes add, not exported by this code yet: a dashboard expression naming one
/// may be empty. It must be: once one returns data the test fails, so that it leaves this list
/// and a later rename is caught.
const NOT_YET_EXPORTED: &[(&str, &str)] = &[
    ("gateway_webhooks_total", "webhooks (src/webhooks)"),
    ("gateway_webhooks_refused_total", "webhooks (src/webhooks)"),
    ("gateway_oidc_fetch_total", "OIDC identity for /tokens"),
    ("gateway_oidc_keys", "OIDC identity for /tokens"),
    (
        "gateway_api_key_refused_total",
        "the foreign api_key refusal",
    ),
];

/// Alerts the load below does not make fire, and why; every other alert must fire.
const NOT_FIRED: &[(&str, &str)] = &[
    (
        "StreamGatewayWebhookVerificationFailing",
        "no webhooks in this code yet (and none in the load)",
    ),
    (
        "StreamGatewayOidcKeyFetchFailing",
        "no OIDC in this code yet (and no identity provider in the load)",
    ),
    (
        "StreamGatewayRestarted",
        "one process cannot restart inside a test",
    ),
];

/// Grafana's `$__rate_interval` and the variables, as Grafana would fill them in here
/// (Prometheus scrapes every second).
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn program(name: &str) -> String {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: scripts/install-system-packages installs it (Debian package `prometheus`)"
    );
    name.to_owned()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(program("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let check = promtool(&["check", "rules", RULES], &repo(""));
    assert!(check.contains("SUCCESS: 10 rules found"), "{check}");
    // Relative to the test file, as `rule_files` in it is.
    let dir = repo(RULE_TESTS);
    let test = promtool(&["test", "rules", "alerts.test.yml"], dir.parent().unwrap());
    assert!(test.contains("SUCCESS"), "{test}");
}

/// The dashboard's queries, with their panel's title, and the series its variables list
/// (`label_values(<series>, <label>)`).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if v["type"] == "query" {
            let q = v["query"].as_str().expect("a variable's query is a string");
            let (series, _label) = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')')?.rsplit_once(", "))
                .expect("label_values(<series>, <label>)");
            let name = v["name"].as_str().unwrap();
            out.push((format!("variable {name}"), series.to_owned()));
        }
    }
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("each target has an expr");
            out.push((p["title"].as_str().unwrap().to_owned(), expr.to_owned()));
        }
    }
    out
}

#[test]
fn the_dashboard_uses_a_prometheus_data_source_variable_and_no_plugins() {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(repo(DASHBOARD)).unwrap())
        .expect("the dashboard is JSON");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let mut uids = std::collections::HashSet::new();
    for p in d["panels"].as_array().unwrap() {
        let kind = p["type"].as_str().unwrap();
        assert!(
            ["row", "timeseries", "stat", "table"].contains(&kind),
            "panel {} is a {kind}: only Grafana's built-in panels",
            p["title"]
        );
        assert!(
            uids.insert(p["id"].as_u64().unwrap()),
            "panel ids are unique"
        );
        if kind != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{}",
                p["title"]
            );
        }
    }
    assert!(d.get("__requires").is_none(), "nothing to install first");
    assert!(dashboard_queries(&d).len() > 30);
}

/// Prometheus in a process of its own, stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second and loads the alert rules; `/-/ready` answers. A free
    /// port can be taken between asking for it and Prometheus binding it: then it tries again.
    async fn start(target: std::net::SocketAddr) -> Self {
        for _ in 0..2 {
            if let Ok(p) = Self::try_start(target).await {
                return p;
            }
        }
        Self::try_start(target)
            .await
            .unwrap_or_else(|log| panic!("Prometheus exited:\n{log}"))
    }

    /// Prometheus ready, or its log when it exited first.
    async fn try_start(target: std::net::SocketAddr) -> Result<Self, String> {
        let dir = TempDir::new();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - '{rules}'\n\
                 scrape_configs:\n  - job_name: stream-gateway\n    static_configs:\n      - targets: ['{target}']\n",
                rules = repo(RULES).display()
            ),
        )
        .unwrap();
        let log = dir.0.join("prometheus.log");
        let child = Command::new(program("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus starts");
        let mut p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if p.child.try_wait().unwrap().is_some() {
                return Err(p.log_text());
            }
            let ready = client.get(format!("{}/-/ready", p.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(p);
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready:\n{}",
                p.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`'s `data`; panics with Prometheus' error (a query that does not parse).
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .expect("Prometheus answers")
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).expect("JSON"))
            .expect("a body");
        assert_eq!(r["status"], "success", "{path} {query:?}: {r}");
        r["data"].clone()
    }

    /// How many series `expr` returns now.
    async fn series(&self, expr: &str) -> usize {
        let data = self.api("query", &[("query", expr)]).await;
        data["result"].as_array().map_or(0, Vec::len)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway as the load needs it: its secret from a file (to break it), `[callers]` with a
/// Redis that is not there (decisions fall back), a small concurrency limit (to shed), short
/// upstream timeouts (to time out), a retry budget of its floor only (to spend it), spans exported to a collector that is not there.
async fn monitored_app(secret_file: &Path) -> (Arc<TestApp>, Reloads) {
    let emu = strict_emulator().await;
    // Stream's window, reported on every feed call (never spent here).
    emu.state().set_rate_rule(Some(RateRule {
        method: None,
        path_prefix: "/api/v1.0/feed/".into(),
        limit: 1_000_000,
        reset_in_s: 3600,
    }));
    let f = figment_without_secret(&emu)
        .merge(("stream.api_secret_file", secret_file))
        .merge(("server.max_concurrency", 2))
        .merge(("upstream.timeout_ms", 200))
        .merge(("upstream.deadline_ms", 700))
        .merge(("upstream.retry_budget_percent", 0))
        .merge(("callers.identity_header", "X-Caller"))
        // More than server.max_concurrency: the shedding below is the global limit's.
        .merge(("callers.service.web.max_in_flight", 4))
        .merge(("callers.service.batch.rate", 0.5))
        .merge(("callers.service.batch.burst", 1))
        .merge(("callers.redis_url", "redis://127.0.0.1:1/"))
        .merge(("telemetry.otlp_endpoint", "http://127.0.0.1:1/v1/traces"));
    let app = start(Config::from_figment(&f).expect("valid"), emu).await;
    let again = f.clone();
    let reloads = Reloads::start(app.state.clone(), &f, Arc::new(move || again.clone()));
    (Arc::new(app), reloads)
}

async fn get_as(app: &TestApp, caller: &str, path: &str) -> u16 {
    app.get_as(caller, path).await.status
}

/// One round of traffic: good calls, a caller over its quota, Stream dropping connections
/// (502), too slow (504), out of window (429), the concurrency limit shedding (503), tokens
/// minted and refused, and a reload that fails.
async fn round(app: &Arc<TestApp>, reloads: &Reloads, n: u32) {
    app.emu().clear_faults();
    for i in 0..6 {
        get_as(app, "web", &format!("/feed/user/{i}/")).await;
    }
    let add = app.client.post(format!("{}/feed/user/1/", app.api));
    app.send(add.header("X-Caller", "web").body(activity(n).to_string()))
        .await;
    for _ in 0..3 {
        get_as(app, "batch", "/feed/user/1/").await;
    }
    // Dropped connections, retried until the retry budget is spent (a burst at first), then
    // answered 502 at once.
    let dropped = if n == 0 { 60 } else { 8 };
    app.fault("GET", "/api/v1.0/feed/user/dropped/", |f| {
        f.drop = true;
        f.times = dropped * 3;
    });
    for _ in 0..dropped {
        get_as(app, "web", "/feed/user/dropped/").await;
    }
    app.fault("GET", "/api/v1.0/feed/user/slow/", |f| {
        f.delay_ms = Some(1000);
        f.times = 5;
    });
    get_as(app, "web", "/feed/user/slow/").await;
    app.fault("GET", "/api/v1.0/user/limited/", |f| f.status = Some(429));
    get_as(app, "web", "/user/limited/").await;
    // Two slow calls hold both permits; the calls after them are shed.
    app.fault("GET", "/api/v1.0/feed/user/held/", |f| {
        f.delay_ms = Some(300);
        f.times = 2;
    });
    let held: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { get_as(&app, "web", "/feed/user/held/").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..2 {
        get_as(app, "web", "/feed/user/7/").await;
    }
    for h in held {
        h.await.unwrap();
    }
    for action in ["read", "read", "read", "write", "write", "write"] {
        let body = json!({"feed": "user:42", "resource": "feed", "action": action});
        app.tokens(body, &[]).await;
    }
    // A wrong secret for one call: Stream refuses the gateway's signature.
    app.emu()
        .accept_secrets(vec![stream_wire::auth::Secret::new(
            "a-secret-the-gateway-lacks",
        )]);
    get_as(app, "web", "/feed/user/3/").await;
    app.emu()
        .accept_secrets(vec![stream_wire::auth::Secret::new(SECRET)]);
    reloads.request();
}

/// The load, in a task of its own until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(app: &Arc<TestApp>, reloads: Reloads) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU32::new(0));
        let task = {
            let (app, stop, rounds) = (app.clone(), stop.clone(), rounds.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    round(&app, &reloads, rounds.fetch_add(1, Ordering::Relaxed)).await;
                }
            })
        };
        Self { stop, rounds, task }
    }

    /// Stops after the round under way; the rounds run.
    async fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.rounds.load(Ordering::Relaxed)
    }
}

/// The entry of [`NOT_YET_EXPORTED`] whose metric `expr` names, if any.
fn not_yet_exported(expr: &str) -> Option<&'static (&'static str, &'static str)> {
    NOT_YET_EXPORTED.iter().find(|(m, _)| expr.contains(m))
}

fn not_fired(alert: &str) -> bool {
    NOT_FIRED.iter().any(|(n, _)| *n == alert)
}

/// The alerts as Prometheus loaded them from alerts.yml: name and expression.
async fn loaded_alerts(prom: &Prometheus) -> Vec<(String, String)> {
    let groups = prom.api("rules", &[]).await["groups"].clone();
    let alerts: Vec<(String, String)> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["query"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(alerts.len(), 10, "alerts.yml's rules loaded: {groups}");
    for (name, _) in NOT_FIRED {
        assert!(
            alerts.iter().any(|(a, _)| a == name),
            "{name} is not a rule"
        );
    }
    alerts
}

/// Polls until every expression that must return data does, or a deadline generous for a
/// slow machine passes; what is still missing.
async fn wait_for_data(
    prom: &Prometheus,
    panels: &[(String, String)],
    alerts: &[(String, String)],
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = Vec::new();
        for (title, expr) in panels {
            let expr = as_grafana_sends(expr);
            if prom.series(&expr).await == 0 && not_yet_exported(&expr).is_none() {
                missing.push(format!("panel {title:?}: {expr}"));
            }
        }
        for (name, expr) in alerts {
            if prom.series(expr).await == 0 && !not_fired(name) {
                missing.push(format!("alert {name} does not fire: {expr}"));
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What is listed as not exported yet must still be empty: once it is exported, it leaves the
/// list, so that renaming it fails this test from then on.
async fn listed_ones_are_still_empty(
    prom: &Prometheus,
    panels: &[(String, String)],
    alerts: &[(String, String)],
) {
    for (title, expr) in panels {
        let expr = as_grafana_sends(expr);
        if let Some((metric, what)) = not_yet_exported(&expr) {
            assert_eq!(
                prom.series(&expr).await,
                0,
                "panel {title:?} has data now: {what} exported, take {metric} off NOT_YET_EXPORTED"
            );
        }
    }
    for (name, expr) in alerts {
        if not_fired(name) {
            assert_eq!(
                prom.series(expr).await,
                0,
                "{name} fires: take it off NOT_FIRED"
            );
        }
    }
}

/// The rules Prometheus evaluated by itself are healthy, each with a severity and a runbook
/// section in docs/operations.md.
async fn rules_are_healthy_with_runbooks(prom: &Prometheus) {
    let runbook = std::fs::read_to_string(repo(RUNBOOK)).unwrap();
    for r in prom.api("rules", &[]).await["groups"][0]["rules"]
        .as_array()
        .unwrap()
    {
        assert_eq!(r["health"], "ok", "{r}");
        assert!(r["labels"]["severity"].as_str().is_some(), "{r}");
        let link = r["annotations"]["runbook"].as_str().unwrap();
        let anchor = link.strip_prefix("docs/operations.md#").expect(link);
        let name = r["name"].as_str().unwrap();
        assert_eq!(anchor, name.to_ascii_lowercase(), "{name}'s runbook link");
        assert!(
            runbook.lines().any(|l| l == format!("### {name}")),
            "docs/operations.md has no section `### {name}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_every_dashboard_and_alert_expression_against_the_gateway() {
    let dir = TempDir::new();
    let secret = dir.0.join("api_secret");
    std::fs::write(&secret, SECRET).unwrap();
    let (app, reloads) = monitored_app(&secret).await;
    let prom = Prometheus::start(app.addr).await;
    let started = Instant::now();
    // From now on every reload fails: the secret in force stays.
    std::fs::write(&secret, "").unwrap();
    let load = Load::start(&app, reloads);
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo(DASHBOARD)).unwrap()).unwrap();
    let panels = dashboard_queries(&dashboard);
    let alerts = loaded_alerts(&prom).await;

    let missing = wait_for_data(&prom, &panels, &alerts).await;
    let rounds = load.stop().await;
    assert!(
        missing.is_empty(),
        "after {rounds} rounds of load, no data for:\n{}\nPrometheus' log:\n{}",
        missing.join("\n"),
        prom.log_text()
    );
    eprintln!(
        "every expression had data after {rounds} rounds of load, {:?} after Prometheus started",
        started.elapsed()
    );
    listed_ones_are_still_empty(&prom, &panels, &alerts).await;
    rules_are_healthy_with_runbooks(&prom).await;
}
