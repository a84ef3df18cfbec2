//! Heap allocations per request, the gateway's and the floor's (`examples/floor_proxy.rs`,
//! hyper mode), counted by a counting allocator that only this benchmark has (dhat's; the
//! gateway's binary keeps mimalloc and counts nothing).
//!
//! `cargo bench --bench allocations 2>/tmp/gw.log` (stderr off the terminal: the access log
//! then takes the buffered path it takes in production, as `bench/run` runs the gateway).
//!
//! In one process: an upstream that answers every request with bench/run's canned answers
//! (a raw socket loop, allocating nothing per request), the gateway (`App`, defaults, the
//! access log on at `info`) and the floor in front of it, and a raw keep-alive client (one
//! connection, one request at a time). Each case runs `WARM` requests, then `N` counted ones:
//! (blocks allocated during them) / N. The direct case (client to upstream, no proxy) is what
//! the harness itself allocates, and is taken off the others. Then the allocation sites of
//! the gateway's GET and POST (dhat's backtraces), by blocks per request.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

// The floor as a module here; its items are pub for its own binary.
#[allow(unreachable_pub)]
#[path = "../examples/floor_proxy.rs"]
#[allow(dead_code)]
mod floor;

const WARM: usize = 2_000;
const N: usize = 20_000;
const PAGE: &str = include_str!("../bench/feed-page.json");
const POSTED: &str = r#"{"actor":"user:42","verb":"post","object":"post:1"}"#;
const ACTIVITY: &str = r#"{"actor":"user:42","verb":"post","object":"post:1","foreign_id":"post:1","time":"2026-11-27T10:00:00"}"#;
const GET_PATH: &str = "/api/v1.0/feed/user/42/?limit=5";
const POST_PATH: &str = "/api/v1.0/feed/user/42/";

fn main() {
    // Criterion's flags (`--bench`) are not this harness's.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let only = std::env::var("ONLY").ok();
    let file = std::env::temp_dir().join(format!(
        "stream-gateway-dhat-{}.json",
        only.as_deref().unwrap_or("all")
    ));
    let profiler = dhat::Profiler::builder()
        .file_name(&file)
        .trim_backtraces(only.as_ref().map(|_| 64))
        .build();
    let cases = rt.block_on(run(only.as_deref()));
    drop(profiler);
    match only {
        None => {
            report(&cases);
            // Where they come from: each proxy alone in a process of its own, so every site in
            // dhat's file is that proxy's (or the harness's, which allocates nothing per request).
            for target in ["gateway", "floor"] {
                let status = std::process::Command::new(std::env::current_exe().expect("a path"))
                    .env("ONLY", target)
                    .status();
                assert!(status.is_ok_and(|s| s.success()), "the {target} run failed");
            }
        }
        Some(target) => sites(&target, &file),
    }
}

/// One case: name, blocks and bytes per request (harness included).
struct Case {
    name: &'static str,
    blocks: f64,
    bytes: f64,
}

async fn run(only: Option<&str>) -> Vec<Case> {
    let logs = stream_gateway::telemetry::init(stream_gateway::config::LogFormat::Text);
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "note: stderr is a terminal, so the access log goes through tracing's formatter, \
             not the gateway's buffered writer; run with 2>/tmp/gw.log for production's path"
        );
    }
    let _ = logs;
    let upstream = upstream().await.expect("the upstream binds");
    let gateway = gateway(upstream).await;
    let floor_addr = floor(upstream).await;
    let mut cases = Vec::new();
    for (name, addr, post) in [
        ("direct GET", upstream, false),
        ("direct POST", upstream, true),
        ("gateway GET", gateway, false),
        ("gateway POST", gateway, true),
        ("floor GET", floor_addr, false),
        ("floor POST", floor_addr, true),
    ] {
        if only.is_none_or(|t| name.starts_with(t)) {
            cases.push(measure(name, addr, post).await.expect("requests answered"));
        }
    }
    cases
}

async fn measure(name: &'static str, addr: SocketAddr, post: bool) -> io::Result<Case> {
    let mut client = Client::connect(addr).await?;
    for _ in 0..WARM {
        client.request(post).await?;
    }
    // Let the gateway's timers and the log writer settle before counting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = dhat::HeapStats::get();
    for _ in 0..N {
        client.request(post).await?;
    }
    let after = dhat::HeapStats::get();
    Ok(Case {
        name,
        blocks: (after.total_blocks - before.total_blocks) as f64 / N as f64,
        bytes: (after.total_bytes - before.total_bytes) as f64 / N as f64,
    })
}

fn report(cases: &[Case]) {
    let direct = |post: bool| &cases[usize::from(post)];
    println!("heap allocations per request: {N} requests after {WARM}, one keep-alive connection");
    println!("(the harness's own, the direct case, taken off)\n");
    println!("| target | request | allocations | bytes allocated |");
    println!("|---|---|---|---|");
    for c in cases {
        let base = direct(c.name.ends_with("POST"));
        if c.name.starts_with("direct") {
            println!(
                "| (harness: client + upstream) | {} | {:.1} | {:.0} |",
                &c.name[7..],
                c.blocks,
                c.bytes
            );
            continue;
        }
        let (target, request) = c.name.split_once(' ').unwrap();
        println!(
            "| {target} | {request} | {:.1} | {:.0} |",
            c.blocks - base.blocks,
            c.bytes - base.bytes
        );
    }
}

/// The allocation sites of a run of `target` alone, from dhat's file, by blocks per request:
/// the first frame that is neither the allocator, std, nor a container names the site, and
/// the innermost frame of the gateway's own code (or hyper's, tokio's) says who asked.
fn sites(target: &str, file: &std::path::Path) {
    let text = std::fs::read_to_string(file).expect("dhat's file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("dhat's JSON");
    let frames: Vec<&str> = v["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();
    let mut by_site: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    for pp in v["pps"].as_array().unwrap() {
        // tbk: total blocks (tb is bytes).
        let blocks = pp["tbk"].as_u64().unwrap_or(0);
        let chain: Vec<String> = pp["fs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| frames.get(i.as_u64()? as usize).map(|f| clean(f)))
            .collect();
        total += blocks;
        let site = chain
            .iter()
            .find(|f| !GENERIC.iter().any(|s| f.starts_with(s)))
            .cloned()
            .unwrap_or_else(|| "?".into());
        let who = chain
            .iter()
            .find(|f| OWNERS.iter().any(|s| f.starts_with(s)) && **f != site)
            .cloned()
            .unwrap_or_default();
        *by_site.entry(format!("{site}  <- {who}")).or_default() += blocks;
    }
    let requests = (2 * (WARM + N)) as f64;
    let mut sites: Vec<_> = by_site.into_iter().collect();
    sites.sort_by_key(|s| std::cmp::Reverse(s.1));
    println!(
        "\n{target}: allocation sites, blocks per request over GET and POST ({:.1} per request \
         in all, start-up included):",
        total as f64 / requests
    );
    for (site, blocks) in sites.iter().take(40) {
        let per = *blocks as f64 / requests;
        if per >= 0.05 {
            println!("  {per:6.2}  {site}");
        }
    }
}

/// Frames that say nothing about who allocated.
const GENERIC: &[&str] = &[
    "alloc::",
    "<alloc::",
    "core::",
    "<core::",
    "std::",
    "<std::",
    "dhat::",
    "<dhat::",
    "__rust",
    "<&",
    "<T as",
    "<u8 as",
    "hashbrown::",
    "<hashbrown::",
    "bytes::",
    "<bytes::",
    "?",
    "[root]",
    "http::header::map::",
    "<http::header::map::",
    "http::extensions::",
    "alloc_",
];

/// Frames of code that asks for memory on a request's behalf.
const OWNERS: &[&str] = &[
    "stream_gateway::",
    "<stream_gateway::",
    "stream_wire::",
    "<stream_wire::",
    "floor_proxy::",
    "allocations::floor::",
    "hyper::",
    "<hyper::",
    "hyper_util::",
    "<hyper_util::",
    "axum::",
    "<axum::",
    "tower",
    "<tower",
    "tokio::",
    "<tokio::",
];

/// A dhat frame (`0x1234: name (file:line:col)`) as its function name, without the hash.
fn clean(frame: &str) -> String {
    let name = frame.split_once(": ").map_or(frame, |(_, rest)| rest);
    let name = name.rsplit_once(" (").map_or(name, |(n, _)| n);
    let name = match name.rfind("::h") {
        Some(i) if name[i + 3..].len() == 16 => &name[..i],
        _ => name,
    };
    name.chars().take(120).collect()
}

/// The upstream: bench/run's canned answers, over keep-alive, from fixed buffers.
async fn upstream() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let page = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{PAGE}",
        PAGE.len()
    );
    let posted = format!(
        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{POSTED}",
        POSTED.len()
    );
    let answers: &'static (String, String) = Box::leak(Box::new((page, posted)));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut have = 0;
                loop {
                    let Some((head, body)) = complete(&buf[..have]) else {
                        match s.read(&mut buf[have..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                        continue;
                    };
                    let answer = if buf.starts_with(b"POST") {
                        &answers.1
                    } else {
                        &answers.0
                    };
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    buf.copy_within(head + body..have, 0);
                    have -= head + body;
                }
            });
        }
    });
    Ok(addr)
}

/// The request at the start of `buf`, when complete: (head length, body length).
fn complete(buf: &[u8]) -> Option<(usize, usize)> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = content_length(&buf[..head]);
    (buf.len() >= head + body).then_some((head, body))
}

fn content_length(head: &[u8]) -> usize {
    let text = std::str::from_utf8(head).unwrap_or("");
    text.split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// The gateway with its defaults, in front of `upstream`.
async fn gateway(upstream: SocketAddr) -> SocketAddr {
    use figment::providers::Serialized;
    use stream_gateway::config::{Config, FileConfig};
    let figment = figment::Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.api_key", "benchkey"))
        .merge(("stream.api_secret", "bench-secret-0123456789abcdef"))
        .merge(("stream.base_url", format!("http://{upstream}")));
    let config = Config::from_figment(&figment).expect("a valid configuration");
    let app = stream_gateway::app::App::build(config)
        .await
        .expect("the gateway starts");
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    addr
}

/// The floor, hyper mode, in front of `upstream`.
async fn floor(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("an address");
    let base: &'static str = Box::leak(format!("http://{upstream}").into_boxed_str());
    tokio::spawn(floor::serve(listener, floor::Upstream::hyper(), base));
    addr
}

/// A keep-alive client sending fixed requests, reading each answer whole into one buffer.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    get: Vec<u8>,
    post: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let get = format!(
            "GET {GET_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            addr.port()
        );
        let post = format!(
            "POST {POST_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ACTIVITY}",
            addr.port(),
            ACTIVITY.len()
        );
        Ok(Self {
            stream,
            buf: vec![0; 64 * 1024],
            get: get.into_bytes(),
            post: post.into_bytes(),
        })
    }

    /// One request; fails unless the answer is 2xx.
    async fn request(&mut self, post: bool) -> io::Result<()> {
        let req = if post { &self.post } else { &self.get };
        self.stream.write_all(req).await?;
        let mut have = 0;
        loop {
            let n = self.stream.read(&mut self.buf[have..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
            let got = &self.buf[..have];
            let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
                continue;
            };
            if !got.starts_with(b"HTTP/1.1 2") {
                return Err(io::Error::other(
                    String::from_utf8_lossy(&got[..head]).into_owned(),
                ));
            }
            let chunked = got[..head]
                .windows(26)
                .any(|w| w.eq_ignore_ascii_case(b"transfer-encoding: chunked"));
            let done = if chunked {
                got[head..].ends_with(b"0\r\n\r\n")
            } else {
                have >= head + content_length(&got[..head])
            };
            if done {
                return Ok(());
            }
        }
    }
}
