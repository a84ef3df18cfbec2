//! The stack's floor, for `bench/run` only: the least a Rust proxy on this stack can do per
//! request. It forwards every request to `UPSTREAM` with a fixed `Authorization`, no parsing,
//! no validation, no logging, no metrics, no retries; `hyper` mode uses hyper's own pooled
//! client (`hyper_util`), `reqwest` mode the reqwest client the gateway uses.
//!
//! `cargo run --release --example floor_proxy -- hyper|reqwest PORT UPSTREAM_URL`
//!
//! It tells how much of the gap to nginx is the gateway's own work and how much is the stack
//! under it; it is not a product and takes no part in the tests.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.floor";

#[derive(Clone)]
pub enum Upstream {
    Hyper(Box<Client<HttpConnector, Full<Bytes>>>),
    Reqwest(reqwest::Client),
}

async fn forward(
    up: Upstream,
    base: &'static str,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let sep = if pq.contains('?') { '&' } else { '?' };
    let url = format!("{base}{pq}{sep}api_key=floor");
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let answer = match up {
        Upstream::Hyper(client) => {
            let out = Request::builder()
                .method(method)
                .uri(url)
                .header("authorization", TOKEN)
                .header("stream-auth-type", "jwt")
                .header("content-type", "application/json")
                .body(Full::new(body))
                .expect("a valid request");
            match client.request(out).await {
                Ok(r) => {
                    let (parts, body) = r.into_parts();
                    body.collect()
                        .await
                        .ok()
                        .map(|b| (parts.status, parts.headers, b.to_bytes()))
                }
                Err(_) => None,
            }
        }
        Upstream::Reqwest(client) => {
            let sent = client
                .request(method, url)
                .header("authorization", TOKEN)
                .header("stream-auth-type", "jwt")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) => {
                    let (s, h) = (r.status(), r.headers().clone());
                    r.bytes().await.ok().map(|b| (s, h, b))
                }
                Err(_) => None,
            }
        }
    };
    let Some((code, headers, body)) = answer else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = code;
    if let Some(ct) = headers.get("content-type") {
        resp.headers_mut().insert("content-type", ct.clone());
    }
    Ok(resp)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

impl Upstream {
    /// hyper's pooled client, as the gateway has it.
    pub fn hyper() -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Upstream::Hyper(Box::new(Client::builder(TokioExecutor::new()).build(conn)))
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, port, base] = args.as_slice() else {
        eprintln!("usage: floor_proxy hyper|reqwest PORT UPSTREAM_URL");
        std::process::exit(2);
    };
    let base: &'static str = Box::leak(base.trim_end_matches('/').to_owned().into_boxed_str());
    let up = match mode.as_str() {
        "hyper" => Upstream::hyper(),
        "reqwest" => Upstream::Reqwest(
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .expect("a client"),
        ),
        other => {
            eprintln!("floor_proxy: unknown mode {other}");
            std::process::exit(2);
        }
    };
    let port: u16 = port.parse().expect("a port number");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    serve(listener, up, base).await;
}

/// Serves every connection of `listener`, forwarding to `base` (also benches/allocations.rs).
pub async fn serve(listener: tokio::net::TcpListener, up: Upstream, base: &'static str) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let up = up.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |r| forward(up.clone(), base, r));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
