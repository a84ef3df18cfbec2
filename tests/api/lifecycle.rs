//! Health, graceful shutdown, and the binary's start-up errors and signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let r = app
        .send(app.client.get(format!("http://{}/healthz", app.addr)))
        .await;
    assert_eq!((r.status, r.json["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn in_flight_requests_finish_after_shutdown_begins() {
    let mut app = spawn_app().await;
    app.fault("GET", "/api/v1.0/feed/user/1/", |f| f.delay_ms = Some(300));
    let (client, url) = (app.client.clone(), format!("{}/feed/user/1/", app.api));
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    app.wait_received(1).await;
    app.stop()
        .await
        .expect("serves until stopped, then exits cleanly");
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    assert!(
        reqwest::get(format!("http://{}/healthz", app.addr))
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stream-gateway"));
    // An empty working directory, so no config/gateway.toml is picked up.
    let dir = std::env::temp_dir().join("stream-gateway-test-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    c.env_clear().current_dir(dir).stdin(Stdio::null());
    c
}

#[test]
fn bad_configuration_stops_the_process_with_one_line_naming_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "stream.api_key"),
        (&[("STREAM_API_KEY", "k")], "stream.api_secret"),
        (
            &[
                ("STREAM_API_KEY", "k"),
                ("STREAM_API_SECRET", SECRET),
                ("STREAM_REGION", "mars"),
            ],
            "stream.region",
        ),
        (
            &[
                ("STREAM_API_KEY", "k"),
                ("STREAM_API_SECRET", SECRET),
                ("STREAM_BASE_URL", "localhost:9"),
            ],
            "stream.base_url",
        ),
        (
            &[
                ("STREAM_API_KEY", "k"),
                ("STREAM_API_SECRET", SECRET),
                ("GATEWAY_UPSTREAM__TIMEOUT_MS", "0"),
            ],
            "upstream.timeout_ms",
        ),
        (
            &[
                ("STREAM_API_KEY", "k"),
                ("STREAM_API_SECRET", SECRET),
                ("GATEWAY_SERVER__LISTEN", "nowhere"),
            ],
            "server.listen",
        ),
    ];
    for (env, key) in cases {
        let out = binary().envs(env.iter().copied()).output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert_eq!(err.lines().count(), 1, "{key}: {err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains(SECRET), "{key}: the secret leaked: {err}");
    }
}

#[test]
fn the_emulator_refuses_to_start_with_a_base_url() {
    let out = binary()
        .arg("--emulator")
        .env("STREAM_BASE_URL", "https://example.invalid")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stream.base_url"));
}

#[test]
fn sigterm_drains_and_exits_0() {
    let mut child = binary()
        .arg("--emulator")
        .env("GATEWAY_SERVER__LISTEN", "127.0.0.1:0")
        .env("GATEWAY_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut banner = false;
    let listen = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("EMULATOR MODE"))
        {
            banner = true;
        }
        if let Some(l) = v["listen"].as_str() {
            break l.to_owned();
        }
    };
    assert!(banner, "the emulator banner says it plainly");
    let mut s = std::net::TcpStream::connect(&listen).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let ready = binary()
        .args(["--healthcheck", "/readyz"])
        .env("GATEWAY_SERVER__LISTEN", &listen)
        .output()
        .unwrap();
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let missing = binary()
        .args(["--healthcheck", "/nope"])
        .env("GATEWAY_SERVER__LISTEN", &listen)
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a path that is not 200 fails"
    );
    let hc = binary()
        .arg("--healthcheck")
        .env("GATEWAY_SERVER__LISTEN", &listen)
        .output()
        .unwrap();
    assert!(
        hc.status.success(),
        "{}",
        String::from_utf8_lossy(&hc.stderr)
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let hc = binary()
        .arg("--healthcheck")
        .env("GATEWAY_SERVER__LISTEN", &listen)
        .output()
        .unwrap();
    assert_eq!(
        hc.status.code(),
        Some(1),
        "a stopped gateway fails its health check"
    );
}
