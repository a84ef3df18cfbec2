//! The binary itself: flags, configuration errors and exit codes, `--healthcheck`, the
//! emulator banner, SIGTERM, SIGHUP.
// std locks are banned in src/ (they poison); in a test a poisoned lock only fails the test.
#![allow(clippy::disallowed_types)]

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stream-gateway");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with a clean environment (no config file, no credentials) plus `env`.
fn gateway(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    // Coverage runs hand their profile path down to the binaries the tests start.
    if let Ok(p) = std::env::var("LLVM_PROFILE_FILE") {
        c.env("LLVM_PROFILE_FILE", p);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    gateway(args, env).output().expect("the binary runs")
}

/// Like [`run`], for a command that should exit at once: killed after 10 s if it serves instead.
fn run_expecting_exit(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut child = gateway(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Starts `--emulator` on `port` and waits until `--healthcheck` says it serves.
fn start_emulated(port: u16, extra: &[(&str, String)]) -> Child {
    let mut env = vec![("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))];
    env.extend(extra.iter().cloned());
    let child = gateway(&["--emulator"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let listen = [("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))];
    let t0 = Instant::now();
    while !run(&["--healthcheck"], &listen).status.success() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the gateway came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn sigterm(child: &mut Child) -> (bool, String) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), format!("{status}\n{err}"))
}

#[test]
fn help_and_version_exit_0() {
    let o = run(&["--help"], &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--healthcheck"));
    assert!(run(&["--version"], &[]).status.success());
}

#[test]
fn a_configuration_error_exits_2_naming_the_key_without_the_secret() {
    let o = run(&[], &[("STREAM_API_KEY", "k".into())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("stream.api_secret"), "{}", stderr(&o));
    let secret = "s3cr3t-value-never-printed";
    let o = run(
        &[],
        &[
            ("STREAM_API_KEY", "k".into()),
            ("STREAM_API_SECRET", secret.into()),
            ("STREAM_REGION", "atlantis".into()),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains(secret));
    let o = run(&["--config", "/nonexistent/gateway.toml"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn the_emulator_refuses_a_real_looking_secret_and_names_where_it_came_from() {
    let secret = "a-real-secret-never-printed";
    let o = run_expecting_exit(&["--emulator"], &[("STREAM_API_SECRET", secret.into())]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("STREAM_API_SECRET"), "{}", stderr(&o));
    assert!(stderr(&o).contains("emulator-"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(secret), "{}", stderr(&o));

    let file = std::env::temp_dir().join(format!("gw-real-secret-{}", free_port()));
    std::fs::write(&file, secret).unwrap();
    let o = run_expecting_exit(
        &["--emulator"],
        &[("STREAM_API_SECRET_FILE", file.display().to_string())],
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("STREAM_API_SECRET_FILE"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(secret), "{}", stderr(&o));
}

/// A one-answer-per-connection HTTP server on a thread: answers `body` to every request and
/// sends each request line it receives to the returned channel.
fn canned_http(body: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line.trim_end().to_owned());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, rx)
}

#[test]
fn proxy_variables_in_the_environment_are_ignored_by_the_upstream_and_the_otlp_clients() {
    let (upstream, upstream_saw) = canned_http(r#"{"from":"upstream"}"#);
    let (proxy, proxy_saw) = canned_http(r#"{"from":"proxy"}"#);
    let (collector, collector_saw) = canned_http("");
    let proxy_url = format!("http://127.0.0.1:{proxy}");
    let port = free_port();
    let listen = ("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"));
    let mut env = vec![
        listen.clone(),
        ("STREAM_API_KEY", "k".into()),
        ("STREAM_API_SECRET", "s3cr3t".into()),
        ("STREAM_BASE_URL", format!("http://127.0.0.1:{upstream}")),
        (
            "GATEWAY_TELEMETRY__OTLP_ENDPOINT",
            format!("http://127.0.0.1:{collector}/v1/traces"),
        ),
        ("GATEWAY_TELEMETRY__BATCH_DELAY_MS", "10".into()),
    ];
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((var, proxy_url.clone()));
    }
    let mut child = gateway(&[], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let t0 = Instant::now();
    while !run(&["--healthcheck"], std::slice::from_ref(&listen))
        .status
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the gateway came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"GET /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let export = collector_saw.recv_timeout(Duration::from_secs(10));
    let (ok, err) = sigterm(&mut child);
    assert_eq!(
        export.as_deref(),
        Ok("POST /v1/traces HTTP/1.1"),
        "the spans went to the collector"
    );
    assert!(ok, "{err}");
    assert!(answer.contains(r#"{"from":"upstream"}"#), "{answer}");
    assert!(
        proxy_saw.try_recv().is_err(),
        "nothing went through the proxy"
    );
    let line = upstream_saw
        .try_recv()
        .expect("the upstream got the request");
    assert!(line.starts_with("GET /api/v1.0/feed/user/1/?"), "{line}");
}

#[test]
fn a_port_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o = run(
        &["--emulator"],
        &[("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot listen"), "{}", stderr(&o));
}

#[test]
fn healthcheck_answers_for_a_running_gateway_and_fails_otherwise() {
    let port = free_port();
    let mut child = start_emulated(port, &[("GATEWAY_LOG__FORMAT", "text".into())]);
    let listen = [("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"))];
    assert!(run(&["--healthcheck", "/readyz"], &listen).status.success());
    let o = run(&["--healthcheck", "/nope"], &listen);
    assert_eq!(o.status.code(), Some(1), "a 404 is not healthy");
    let o = run(&["--healthcheck", "healthz"], &listen);
    assert_eq!(o.status.code(), Some(2), "a path must start with /");
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "exit 0 after SIGTERM: {err}");
    assert!(err.contains("EMULATOR MODE"), "{err}");
    assert!(err.contains("stopped"), "{err}");
    let o = run(&["--healthcheck"], &listen);
    assert_eq!(o.status.code(), Some(1), "nothing listens any more");
}

#[test]
fn a_public_listener_without_oidc_is_warned_about_at_start_up() {
    let port = free_port();
    let public = free_port();
    let mut child = start_emulated(
        port,
        &[(
            "GATEWAY_SERVER__PUBLIC_LISTEN",
            format!("127.0.0.1:{public}"),
        )],
    );
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    let warned = |err: &str| {
        err.lines()
            .any(|l| l.contains("WARN") && l.contains("without [tokens.oidc]"))
    };
    assert!(warned(&err), "{err}");
    let mut child = start_emulated(port, &[]);
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    assert!(!warned(&err), "no public listener, no warning: {err}");
}

#[test]
fn the_json_banner_names_the_emulator_and_the_listener() {
    let port = free_port();
    let mut child = start_emulated(port, &[("GATEWAY_LOG__FORMAT", "json".into())]);
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.iter().any(|v| v["emulator"].is_string()), "{err}");
    // The banner names the realtime URL and the app id its channels carry.
    assert!(
        lines.iter().any(
            |v| v["realtime"].as_str().is_some_and(|r| r.ends_with("/faye"))
                && v["app_id"]
                    .as_str()
                    .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        ),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["listen"] == format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn the_emulator_banner_names_the_api_key_clients_give_and_stream_api_key_sets_it() {
    let port = free_port();
    let mut child = start_emulated(
        port,
        &[
            ("GATEWAY_LOG__FORMAT", "json".into()),
            ("STREAM_API_KEY", "team-dev-key".into()),
        ],
    );
    let (status, body) = http(port, "GET", "/api/v1.0/feed/user/1/?api_key=other-key", "");
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("ApiKeyException") && body.contains("othe..."),
        "{body}"
    );
    let (status, body) = http(
        port,
        "GET",
        "/api/v1.0/feed/user/1/?api_key=team-dev-key",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    let banner = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["emulator"].is_string())
        .unwrap_or_else(|| panic!("a banner: {err}"));
    assert_eq!(banner["api_key"], "team-dev-key", "{err}");
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {out:?}"));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The gateway on `port` with JSON logs, once it serves; its stderr is collected as it comes.
fn start_logging(
    port: u16,
    args: &[&str],
) -> (
    Child,
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    let listen = ("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"));
    let env = [listen.clone(), ("GATEWAY_LOG__FORMAT", "json".into())];
    let mut child = gateway(args, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (mut stderr, sink) = (child.stderr.take().unwrap(), log.clone());
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    wait_for("the gateway serves", || {
        run(&["--healthcheck"], std::slice::from_ref(&listen))
            .status
            .success()
    });
    (child, log, reader)
}

/// The emulator's port, from the JSON banner.
fn emulator_port(log: &str) -> u16 {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["emulator"].as_str()?.rsplit(':').next()?.parse().ok())
        .expect("the banner names the emulator")
}

#[test]
fn sighup_reloads_the_secret_and_tokens_and_a_broken_file_keeps_them() {
    let (old, new) = ("emulator-old-5c1f0e", "emulator-new-9d7e2a");
    let toml = std::env::temp_dir().join(format!("gw-sighup-{}.toml", free_port()));
    let write = |text: &str| std::fs::write(&toml, text).unwrap();
    write(&format!("[stream]\napi_secret = \"{old}\"\n"));
    let port = free_port();
    let args = ["--emulator", "--config", toml.to_str().unwrap()];
    let (mut child, log, reader) = start_logging(port, &args);
    wait_for("the banner", || {
        log.lock().unwrap().contains("\"emulator\"")
    });
    let emu = emulator_port(&log.lock().unwrap());
    let read = || http(port, "GET", "/api/v1.0/feed/user/1/", "").0;
    let long_token = || {
        http(
            port,
            "POST",
            "/tokens",
            r#"{"user_id":"1","expires_in":90000}"#,
        )
        .0
    };
    let signal = |child: &Child, sig: &str| {
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    assert_eq!((read(), long_token()), (200, 400));

    // Stream takes the new secret only; the file names it, a longer TTL and a start-up key.
    let secrets = format!(r#"{{"secrets":["{new}"]}}"#);
    assert_eq!(http(emu, "PUT", "/_emulator/secrets", &secrets).0, 204);
    assert_eq!(read(), 403);
    write(&format!(
        "[stream]\napi_secret = \"{new}\"\n[tokens]\nmax_ttl_s = 100000\n\
         [upstream]\ntimeout_ms = 1234\n"
    ));
    signal(&child, "-HUP");
    wait_for("the new secret is in force", || read() == 200);
    assert_eq!(long_token(), 200);

    // A broken file: the reload fails, the secret and the policy in force stay.
    write("[stream\n");
    signal(&child, "-HUP");
    let errors = r#"gateway_config_reloads_total{result="error"} 1"#;
    wait_for("the reload failed", || {
        http(port, "GET", "/metrics", "").1.contains(errors)
    });
    assert_eq!((read(), long_token()), (200, 200));
    let metrics = http(port, "GET", "/metrics", "").1;
    assert!(
        metrics.contains(r#"gateway_config_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );

    signal(&child, "-TERM");
    let ok = child.wait().unwrap().success();
    reader.join().unwrap();
    let _ = std::fs::remove_file(&toml);
    let log = log.lock().unwrap().clone();
    assert!(ok, "{log}");
    let warned = log
        .lines()
        .find(|l| l.contains("upstream.timeout_ms"))
        .unwrap_or_else(|| panic!("a warning names the start-up key: {log}"));
    assert!(
        warned.contains("WARN") && !warned.contains("tokens."),
        "{warned}"
    );
    assert!(log.contains("configuration reload failed"), "{log}");
    assert!(
        !log.contains(old) && !log.contains(new),
        "a secret is in the log"
    );
}

#[test]
fn healthcheck_reads_the_same_configuration_file_as_the_server() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gw-healthcheck-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[log]\nformat = \"json\"\n"),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let mut child = gateway(
        &["--emulator", "--config", file_arg],
        &[("RUST_LOG", "stream_gateway=loud".into())],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starts");
    wait_for("the gateway serves", || {
        run(&["--healthcheck", "--config", file_arg], &[])
            .status
            .success()
    });
    let bad = run(
        &["--healthcheck"],
        &[("GATEWAY_SERVER__LISTEN", "nowhere".into())],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("server.listen"), "{}", stderr(&bad));
    let by_env = run(
        &["--healthcheck", "/readyz"],
        &[("GATEWAY_CONFIG", file_arg.to_owned())],
    );
    assert!(by_env.status.success(), "{}", stderr(&by_env));
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    // Start-up says which file it read, where logs go and at which level, and that RUST_LOG
    // was malformed.
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = lines
        .iter()
        .find(|v| v["config_file"].is_string())
        .unwrap_or_else(|| panic!("no line names the configuration file: {err}"));
    assert_eq!(started["config_file"], file_arg, "{err}");
    assert_eq!(started["log_filter"], "info", "{err}");
    assert_eq!(started["log_format"], "json", "{err}");
    assert!(
        started["message"].as_str().unwrap().contains("stderr"),
        "{err}"
    );
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"
            && v["rust_log"] == "stream_gateway=loud"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("RUST_LOG is malformed")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_base_url_pointing_at_the_gateway_itself_stops_start_up() {
    let port = free_port();
    let o = run_expecting_exit(
        &[],
        &[
            ("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}")),
            ("STREAM_API_KEY", "k".into()),
            ("STREAM_API_SECRET", "s3cr3t-value".into()),
            ("STREAM_BASE_URL", format!("http://localhost:{port}/api/")),
        ],
    );
    // The stream-js form (with /api/) is refused for its path; without it, for the loop.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("stream-js"), "{}", stderr(&o));
    let o = run_expecting_exit(
        &[],
        &[
            ("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}")),
            ("STREAM_API_KEY", "k".into()),
            ("STREAM_API_SECRET", "s3cr3t-value".into()),
            ("STREAM_BASE_URL", format!("http://localhost:{port}")),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("own address"), "{}", stderr(&o));
}

#[test]
fn healthcheck_asks_the_admin_listener_when_one_is_set() {
    let (port, admin) = (free_port(), free_port());
    let admin_env = ("GATEWAY_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"));
    let mut child = start_emulated(port, std::slice::from_ref(&admin_env));
    let listen = ("GATEWAY_SERVER__LISTEN", format!("127.0.0.1:{port}"));
    let both = [listen.clone(), admin_env];
    assert!(run(&["--healthcheck", "/readyz"], &both).status.success());
    // Proof it asks the admin port: one where nothing listens fails, whatever LISTEN says.
    let elsewhere = [
        listen,
        (
            "GATEWAY_SERVER__ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
    ];
    assert_eq!(run(&["--healthcheck"], &elsewhere).status.code(), Some(1));
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    assert!(
        err.contains("admin_listen") && err.contains(&format!("127.0.0.1:{admin}")),
        "the start-up line names the admin listener: {err}"
    );
}

/// `--emulator` on port 0: the one JSON line it prints on stdout, read as it comes.
fn start_on_port_0() -> (Child, serde_json::Value, Duration) {
    start_on_port_0_with(&[])
}

/// [`start_on_port_0`] with more environment.
fn start_on_port_0_with(extra: &[(&str, String)]) -> (Child, serde_json::Value, Duration) {
    start_on_port_0_args(&["--emulator"], extra)
}

/// [`start_on_port_0_with`] with these arguments.
fn start_on_port_0_args(
    args: &[&str],
    extra: &[(&str, String)],
) -> (Child, serde_json::Value, Duration) {
    use std::io::BufRead;
    let mut env = vec![("GATEWAY_SERVER__LISTEN", "127.0.0.1:0".to_owned())];
    env.extend(extra.iter().cloned());
    let t0 = Instant::now();
    let mut child = gateway(args, &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = t0.elapsed();
    // The documented line, key order included.
    assert!(
        line.starts_with(r#"{"event":"listening","gateway":"http://127.0.0.1:"#)
            && line.contains(r#"","emulator":"http://127.0.0.1:"#)
            && line.ends_with("\"}\n"),
        "{line:?}"
    );
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (child, v, took)
}

fn port_of(url: &serde_json::Value) -> u16 {
    let url = url.as_str().expect("a URL");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn eight_emulated_gateways_on_port_0_each_announce_their_ports_and_share_nothing() {
    let started: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(start_on_port_0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports = std::collections::HashSet::new();
    for (i, (_, line, took)) in started.iter().enumerate() {
        assert_eq!(line["event"], "listening", "{line}");
        assert_eq!(line.as_object().unwrap().len(), 3, "{line}");
        let (gw, emu) = (port_of(&line["gateway"]), port_of(&line["emulator"]));
        assert!(
            ports.insert(gw) && ports.insert(emu),
            "ports reused: {line}"
        );
        eprintln!("instance {i}: listening line after {took:?}");
        // Each writes its own activity through its gateway...
        let body =
            format!(r#"{{"actor":"1","verb":"post","object":"x","foreign_id":"only-in-{i}"}}"#);
        assert_eq!(http(gw, "POST", "/api/v1.0/feed/user/1/", &body).0, 201);
    }
    for (i, (_, line, _)) in started.iter().enumerate() {
        // ...and reads back its own, and no other's.
        let (status, feed) = http(
            port_of(&line["gateway"]),
            "GET",
            "/api/v1.0/feed/user/1/",
            "",
        );
        assert_eq!(status, 200, "{feed}");
        for j in 0..8 {
            let mine = format!("\"only-in-{j}\"");
            assert_eq!(
                feed.contains(&mine),
                i == j,
                "instance {i} sees {j}'s: {feed}"
            );
        }
    }
    let mut warned = 0;
    for (mut child, _, _) in started {
        let (ok, err) = sigterm(&mut child);
        assert!(ok, "{err}");
        // Only one can hold emulator.realtime_listen; the others say so once, and serve.
        let n = err.matches("realtime_listen cannot be bound").count();
        assert!(n <= 1, "{err}");
        warned += n;
    }
    assert!(warned >= 7, "{warned} warnings");
}

#[test]
fn emulator_seed_loads_the_example_fixture_and_a_bad_one_stops_start_up() {
    use std::io::BufRead;
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/config/emulator-seed.json");
    let env = [("GATEWAY_SERVER__LISTEN", "127.0.0.1:0".to_owned())];
    let mut child = gateway(&["--emulator", "--emulator-seed", fixture], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let gw = port_of(&v["gateway"]);
    let (status, timeline) = http(gw, "GET", "/api/v1.0/feed/timeline/bob/", "");
    assert_eq!(status, 200, "{timeline}");
    assert!(timeline.contains("Hello from the seed"), "{timeline}");
    assert_eq!(http(gw, "GET", "/api/v1.0/user/alice/", "").0, 200);
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");

    // emulator.max_import_bytes bounds a seed too.
    let small = [
        env[0].clone(),
        ("GATEWAY_EMULATOR__MAX_IMPORT_BYTES", "100".to_owned()),
    ];
    let o = run_expecting_exit(&["--emulator", "--emulator-seed", fixture], &small);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("emulator.max_import_bytes (100)"),
        "{}",
        stderr(&o)
    );

    let bad = std::env::temp_dir().join(format!("gw-seed-{}.json", free_port()));
    std::fs::write(&bad, r#"{"version": 7}"#).unwrap();
    let o = run_expecting_exit(
        &["--emulator", "--emulator-seed", bad.to_str().unwrap()],
        &env,
    );
    let _ = std::fs::remove_file(&bad);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("version: must be 1"),
        "{err}"
    );
}

#[test]
fn emulator_max_activities_from_the_configuration_bounds_the_emulator() {
    let (mut child, line, _) =
        start_on_port_0_with(&[("GATEWAY_EMULATOR__MAX_ACTIVITIES", "1".to_owned())]);
    let gw = port_of(&line["gateway"]);
    let post = |n: u32| {
        let body = format!(r#"{{"actor":"1","verb":"post","object":"o:{n}"}}"#);
        http(gw, "POST", "/api/v1.0/feed/user/1/", &body)
    };
    assert_eq!(post(1).0, 201);
    let (status, body) = post(2);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("emulator.max_activities (1)"), "{body}");
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
}

/// A fresh directory for `--emulator-data`.
fn data_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("gw-data-{name}-{}", free_port()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn emulator_data_keeps_acknowledged_writes_across_restarts_and_the_seed_fills_only_an_empty_dir() {
    let dir = data_dir("restart");
    let d = dir.to_str().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/config/emulator-seed.json");
    let args = [
        "--emulator",
        "--emulator-data",
        d,
        "--emulator-seed",
        fixture,
    ];
    let (mut child, line, _) = start_on_port_0_args(&args, &[]);
    let gw = port_of(&line["gateway"]);
    let body = r#"{"actor":"1","verb":"post","object":"x","foreign_id":"kept-1"}"#;
    assert_eq!(http(gw, "POST", "/api/v1.0/feed/user/1/", body).0, 201);
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");

    // Started again with the same dir (and the seed, not loaded again over the data).
    let (mut child, line, _) = start_on_port_0_args(&args, &[]);
    let gw = port_of(&line["gateway"]);
    let (status, feed) = http(gw, "GET", "/api/v1.0/feed/user/1/", "");
    assert_eq!(status, 200, "{feed}");
    assert!(feed.contains("kept-1"), "{feed}");
    let (_, timeline) = http(gw, "GET", "/api/v1.0/feed/timeline/bob/", "");
    assert!(timeline.contains("Hello from the seed"), "{timeline}");
    // A reset is kept too.
    let emu = port_of(&line["emulator"]);
    assert_eq!(http(emu, "POST", "/_emulator/reset", "").0 / 100, 2);
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");

    let (mut child, line, _) = start_on_port_0_args(
        &["--emulator"],
        &[("GATEWAY_EMULATOR__DATA_DIR", d.to_owned())],
    );
    let gw = port_of(&line["gateway"]);
    let (status, feed) = http(gw, "GET", "/api/v1.0/feed/user/1/", "");
    assert_eq!(status, 200, "{feed}");
    assert!(!feed.contains("kept-1"), "{feed}");
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`http`] that says `None` where the connection fails or is cut.
fn try_http(port: u16, method: &str, path: &str, body: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.get(9..12)?.parse().ok()
}

#[test]
fn a_sigkill_during_writes_loses_no_acknowledged_activity_and_the_state_loads() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = data_dir("kill");
    let d = dir.to_str().unwrap().to_owned();
    let (mut child, line, _) = start_on_port_0_args(&["--emulator", "--emulator-data", &d], &[]);
    let gw = port_of(&line["gateway"]);
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            // At most 90: one read of 100 shows them all.
            for i in 0..90 {
                let body = format!(
                    r#"{{"actor":"1","verb":"post","object":"x","foreign_id":"acked-{i}"}}"#
                );
                match try_http(gw, "POST", "/api/v1.0/feed/user/1/", &body) {
                    Some(201) => acked.store(i + 1, Ordering::SeqCst),
                    _ => return,
                }
            }
        })
    };
    wait_for("20 acknowledged writes", || {
        acked.load(Ordering::SeqCst) >= 20
    });
    child.kill().unwrap();
    child.wait().unwrap();
    writer.join().unwrap();
    let n = acked.load(Ordering::SeqCst);
    assert!(n < 90, "the kill came during the writes ({n})");

    let (mut child, line, _) = start_on_port_0_args(&["--emulator", "--emulator-data", &d], &[]);
    let gw = port_of(&line["gateway"]);
    let (status, feed) = http(gw, "GET", "/api/v1.0/feed/user/1/?limit=100", "");
    assert_eq!(status, 200, "{feed}");
    for i in 0..n {
        assert!(
            feed.contains(&format!("\"acked-{i}\"")),
            "acked-{i} lost: {feed}"
        );
    }
    let (ok, err) = sigterm(&mut child);
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupted_data_file_stops_start_up_naming_it() {
    let dir = data_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("emulator.sqlite3");
    std::fs::write(&file, vec![0x5a; 4096]).unwrap();
    let env = [("GATEWAY_SERVER__LISTEN", "127.0.0.1:0".to_owned())];
    let o = run_expecting_exit(
        &["--emulator", "--emulator-data", dir.to_str().unwrap()],
        &env,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(file.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    // A database whose document the import refuses.
    std::fs::create_dir_all(&dir).unwrap();
    let db = rusqlite::Connection::open(&file).unwrap();
    db.execute_batch(
        "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), doc BLOB NOT NULL);
         INSERT INTO state (id, doc) VALUES (1, CAST('{\"version\": 7}' AS BLOB));",
    )
    .unwrap();
    drop(db);
    let o = run_expecting_exit(
        &["--emulator", "--emulator-data", dir.to_str().unwrap()],
        &env,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(file.to_str().unwrap()) && err.contains("version: must be 1"),
        "{err}"
    );
}
