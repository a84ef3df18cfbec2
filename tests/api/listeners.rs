//! Listeners by audience: the internal one (services, operators) refuses web pages and
//! foreign hosts; the public one serves `/tokens` only; the admin one answers probes while
//! the internal one is flooded.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// One raw request on a new connection; the status code of the answer (0: closed unanswered).
async fn status_of(addr: std::net::SocketAddr, head: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    std::str::from_utf8(got.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn post_text(host: &str, extra: &str) -> String {
    let body = r#"{"actor":"user:1","verb":"pin","object":"x:1"}"#;
    format!(
        "POST /api/v1.0/feed/user/1/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
         {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_cross_site_simple_post_from_a_web_page_is_refused_before_anything_is_sent() {
    let app = spawn_app().await;
    let page = "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n";
    assert_eq!(
        status_of(app.addr, &post_text("localhost:8080", page)).await,
        403
    );
    // DNS rebinding: the page's own name in Host, same-origin to the browser.
    let rebound = post_text("evil.example:8080", "Sec-Fetch-Site: same-origin\r\n");
    assert_eq!(status_of(app.addr, &rebound).await, 403);
    assert!(app.received().is_empty(), "nothing reached Stream");
    // A service's request, by any of the gateway's own names, goes through.
    for host in ["localhost", "127.0.0.1", &app.addr.to_string()] {
        assert_eq!(
            status_of(app.addr, &post_text(host, "")).await,
            201,
            "{host}"
        );
    }
}

#[tokio::test]
async fn every_family_the_proxy_serves_refuses_pages_and_foreign_hosts_even_from_a_cors_origin() {
    let app = spawn_with(|f| {
        f.merge(("stream.v2", true))
            .merge(("tokens.cors_origins", ["https://app.example.com"]))
    })
    .await;
    for (method, path) in [
        ("GET", "/api/v1.0/feed/user/1/"),
        ("GET", "/api/v2/app"),
        ("POST", "/analytics/v1.0/impression/"),
        ("GET", "/personalization/v1.0/taste/"),
    ] {
        for extra in [
            "Host: localhost\r\nOrigin: https://evil.example\r\n",
            // `/tokens`' CORS origins admit a page to `/tokens` only.
            "Host: localhost\r\nOrigin: https://app.example.com\r\n",
            "Host: localhost\r\nSec-Fetch-Site: cross-site\r\n",
            "Host: evil.example\r\n",
        ] {
            let head = format!(
                "{method} {path} HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(
                status_of(app.addr, &head).await,
                403,
                "{method} {path} {extra:?}"
            );
        }
    }
    assert!(app.received().is_empty(), "nothing reached Stream");
}

#[tokio::test]
async fn listed_hosts_pass_and_a_star_turns_the_host_check_off() {
    let app = spawn_with(|f| f.merge(("server.allowed_hosts", ["stream-gateway"]))).await;
    assert_eq!(
        status_of(app.addr, &post_text("stream-gateway:8080", "")).await,
        201
    );
    assert_eq!(status_of(app.addr, &post_text("other", "")).await, 403);
    let any = spawn_with(|f| f.merge(("server.allowed_hosts", ["*"]))).await;
    assert_eq!(status_of(any.addr, &post_text("other", "")).await, 201);
    // Origin is still refused.
    let page = "Origin: https://evil.example\r\n";
    assert_eq!(status_of(any.addr, &post_text("other", page)).await, 403);
}

#[tokio::test]
async fn the_public_listener_serves_tokens_with_cors_and_nothing_else() {
    let app = spawn_with(|f| {
        f.merge(("server.public_listen", "127.0.0.1:0"))
            .merge(("tokens.cors_origins", ["https://app.example.com"]))
    })
    .await;
    let public = app.public.expect("a public listener");
    let r = app
        .send(
            app.client
                .post(format!("http://{public}/tokens"))
                .header("origin", "https://app.example.com")
                .header("host", "gateway.example.com")
                .body(json!({"user_id": "1"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    for path in ["/api/v1.0/feed/user/1/", "/healthz", "/readyz", "/metrics"] {
        let r = app
            .send(app.client.get(format!("http://{public}{path}")))
            .await;
        assert_eq!(r.status, 404, "{path}");
    }
    assert!(app.received().is_empty());
}

#[tokio::test]
async fn the_admin_listener_serves_health_readiness_and_metrics_only() {
    let app = spawn_with(|f| f.merge(("server.admin_listen", "127.0.0.1:0"))).await;
    let admin = app.admin.expect("an admin listener");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = app
            .send(app.client.get(format!("http://{admin}{path}")))
            .await;
        assert_eq!(r.status, 200, "{path}");
    }
    for path in ["/tokens", "/api/v1.0/feed/user/1/"] {
        let r = app
            .send(app.client.post(format!("http://{admin}{path}")).body("{}"))
            .await;
        assert_eq!(r.status, 404, "{path}");
    }
}

#[tokio::test]
async fn a_probe_on_the_admin_listener_answers_during_a_flood_of_the_internal_one() {
    let app = spawn_with(|f| {
        f.merge(("server.max_connections", 4))
            .merge(("server.admin_listen", "127.0.0.1:0"))
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..4 {
        flood.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The internal listener is full: a probe there is closed unanswered.
    let probe = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(app.addr, probe).await, 0);
    let admin = app.admin.unwrap();
    for _ in 0..3 {
        assert_eq!(status_of(admin, probe).await, 200);
    }
    drop(flood);
}
