//! Connections that never finish a request head, idle keep-alive connections, and the
//! connection limit.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// How long until the gateway closes `s` (reads are drained); panics after 10 s.
async fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the gateway kept the connection open");
    since.elapsed()
}

/// Reads one `/healthz` answer (its body is the last thing it sends).
async fn read_healthz(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"{\"status\":\"ok\"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_connection_that_completes_no_head_in_time_is_closed() {
    let app = spawn_with(|f| f.merge(("server.header_read_timeout_ms", 300))).await;
    let timeout = Duration::from_millis(300);

    // Nothing at all.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    assert!(closed_after(&mut s, t0).await >= timeout);

    // Half a head.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(closed_after(&mut s, t0).await >= timeout);

    // One header every 50 ms, for ever.
    let t0 = Instant::now();
    let s = TcpStream::connect(app.addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let trickle = tokio::spawn(async move {
        w.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
        for i in 0.. {
            w.write_all(format!("X-{i}: 1\r\n").as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the gateway kept the trickling connection open"
    );
    assert!(t0.elapsed() >= timeout);
    trickle.abort();

    // A whole head in time is served.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(read_healthz(&mut s).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_not_before() {
    // The head timeout is shorter than the idle one: it must not cut idle connections.
    let app = spawn_with(|f| {
        f.merge(("server.header_read_timeout_ms", 200))
            .merge(("server.idle_timeout_ms", 1500))
    })
    .await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    s.write_all(get).await.unwrap();
    assert!(read_healthz(&mut s).await.starts_with("HTTP/1.1 200"));
    // Idle for longer than the head timeout: still open, and still serving.
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.write_all(get).await.unwrap();
    assert!(read_healthz(&mut s).await.starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    // The server's idle clock starts when it wrote the answer, a little before this read of
    // it returned: allow that much, and still far above the 200 ms head timeout.
    let took = closed_after(&mut s, idle).await;
    assert!(took >= Duration::from_millis(1300), "{took:?}");
}

#[tokio::test]
async fn beyond_max_connections_new_connections_are_closed_at_once_and_counted() {
    let app = spawn_with(|f| f.merge(("server.max_connections", 2))).await;
    let held = [
        TcpStream::connect(app.addr).await.unwrap(),
        TcpStream::connect(app.addr).await.unwrap(),
    ];
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    closed_after(&mut third, Instant::now()).await;
    drop(held);
    // The two slots free up once the gateway sees the connections close; each scrape that
    // finds no free slot yet is refused, and counted, too.
    let mut refused = 1.0;
    let text = loop {
        match reqwest::get(format!("http://{}/metrics", app.addr)).await {
            Ok(r) => break r.text().await.unwrap(),
            Err(_) => refused += 1.0,
        }
        assert!(refused < 1000.0, "the slots never freed up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let line = text
        .lines()
        .find(|l| l.starts_with("gateway_connections_refused_total"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        line,
        format!("gateway_connections_refused_total{{listener=\"internal\"}} {refused}")
    );
}

#[tokio::test]
async fn the_emulators_port_limits_connections_and_closes_silent_ones() {
    use stream_emulator::{Emulator, EmulatorConfig};
    use stream_gateway::server::{emulator_serve, Limits, EMULATOR_LIMITS};
    use stream_wire::auth::Secret;
    let emu = Emulator::spawn_served(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: true,
        },
        Default::default(),
        Default::default(),
        ([127, 0, 0, 1], 0).into(),
        emulator_serve(Limits {
            max_connections: 2,
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            peer_addr: false,
        }),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut held = [
        TcpStream::connect(emu.addr()).await.unwrap(),
        TcpStream::connect(emu.addr()).await.unwrap(),
    ];
    let mut third = TcpStream::connect(emu.addr()).await.unwrap();
    assert!(closed_after(&mut third, Instant::now()).await < Duration::from_millis(300));
    // Silent connections are closed after the head timeout, not held for ever.
    for s in &mut held {
        assert!(closed_after(s, t0).await >= Duration::from_millis(300));
    }
    assert_eq!(EMULATOR_LIMITS.max_connections, 1024);
}
