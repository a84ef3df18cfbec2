//! `[server]` as read ([`ServerFile`]) and validated ([`ServerConfig`]): the listeners, their
//! connection limits and timeouts, and the request limits. A problem names its key.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::{ms, positive, present, ConfigError};

/// `[server]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerFile {
    pub listen: String,
    pub max_body_bytes: u64,
    /// In-flight proxied requests before 503.
    pub max_concurrency: u64,
    /// Drain time on SIGTERM.
    pub shutdown_grace_ms: u64,
    /// On SIGTERM, keep serving with `/readyz` at 503 this long before closing the listener.
    pub drain_delay_ms: u64,
    /// A connection whose request head is not complete this long after it began is closed.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection idle this long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections; beyond it, new ones are closed at once.
    pub max_connections: u64,
    /// Runtime worker threads; none: one per CPU.
    pub workers: Option<u64>,
    /// Names a request's `Host` may carry on the internal listener, besides the listen
    /// address, `localhost`, the loopback addresses and the machine's hostname; `*`: any.
    pub allowed_hosts: Vec<String>,
    /// The listener that faces browsers and the internet (`/tokens` only); none: off.
    pub public_listen: Option<String>,
    /// Open connections on the public listener.
    pub public_max_connections: u64,
    /// Head timeout on the public listener.
    pub public_header_read_timeout_ms: u64,
    /// Idle timeout on the public listener.
    pub public_idle_timeout_ms: u64,
    /// The operators' listener (health, readiness, metrics); none: off.
    pub admin_listen: Option<String>,
    /// Open connections on the admin listener.
    pub admin_max_connections: u64,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1_048_576,
            max_concurrency: 1024,
            shutdown_grace_ms: 10_000,
            drain_delay_ms: 0,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 4096,
            workers: None,
            allowed_hosts: Vec::new(),
            public_listen: None,
            public_max_connections: 1024,
            public_header_read_timeout_ms: 5000,
            public_idle_timeout_ms: 30_000,
            admin_listen: None,
            admin_max_connections: 8,
        }
    }
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// In-flight proxied requests before 503.
    pub max_concurrency: usize,
    /// Drain time on SIGTERM.
    pub shutdown_grace: Duration,
    /// Time between SIGTERM and closing the listener, with `/readyz` at 503.
    pub drain_delay: Duration,
    /// Longest time from the start of a request head (or of the connection) to its end.
    pub header_read_timeout: Duration,
    /// Longest time a keep-alive connection stays open with no request.
    pub idle_timeout: Duration,
    /// Open connections before new ones are closed at once.
    pub max_connections: usize,
    /// Runtime worker threads (one per CPU unless set).
    pub workers: usize,
    /// Extra names the internal listener answers to (`server.allowed_hosts`); `None`: any
    /// (`*` listed).
    pub allowed_hosts: Option<Vec<String>>,
    /// `server.public_listen` and its limits.
    pub public: Option<Listener>,
    /// `server.admin_listen` and its limits.
    pub admin: Option<Listener>,
}

/// A listener besides the internal one: its address and its own connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Head timeout of the admin listener: probes send their request at once.
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle timeout of the admin listener.
pub const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn address(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{v:?} is not an address such as 127.0.0.1:8080"),
        )
    })
}

/// `server.allowed_hosts`: host names or IP addresses, without port; `*` alone turns the check off.
fn allowed_hosts(v: &[String]) -> Result<Option<Vec<String>>, ConfigError> {
    let key = "server.allowed_hosts";
    if v.iter().any(|h| h == "*") {
        return Ok(None);
    }
    v.iter()
        .map(|h| {
            crate::guard::host_name(h)
                .filter(|n| *n == h.to_ascii_lowercase().trim_end_matches('.'))
                .ok_or_else(|| {
                    ConfigError::new(
                        key,
                        format!(
                            "{h:?} is not a host name such as gateway.internal \
                             (no scheme, no port)"
                        ),
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

impl ServerConfig {
    pub fn validate(sv: ServerFile) -> Result<Self, ConfigError> {
        let listen = address("server.listen", &sv.listen)?;
        let public = match present(sv.public_listen) {
            None => None,
            Some(a) => Some(Listener {
                listen: address("server.public_listen", &a)?,
                max_connections: positive(
                    "server.public_max_connections",
                    sv.public_max_connections,
                )?,
                header_read_timeout: ms(
                    "server.public_header_read_timeout_ms",
                    sv.public_header_read_timeout_ms,
                )?,
                idle_timeout: ms("server.public_idle_timeout_ms", sv.public_idle_timeout_ms)?,
            }),
        };
        let admin = match present(sv.admin_listen) {
            None => None,
            Some(a) => Some(Listener {
                listen: address("server.admin_listen", &a)?,
                max_connections: positive(
                    "server.admin_max_connections",
                    sv.admin_max_connections,
                )?,
                header_read_timeout: ADMIN_HEADER_READ_TIMEOUT,
                idle_timeout: ADMIN_IDLE_TIMEOUT,
            }),
        };
        let ports = [
            Some(listen),
            public.map(|l| l.listen),
            admin.map(|l| l.listen),
        ];
        for (i, key) in ["server.public_listen", "server.admin_listen"]
            .iter()
            .enumerate()
        {
            let Some(a) = ports[i + 1] else { continue };
            if a.port() != 0 && ports[..=i].iter().flatten().any(|b| b.port() == a.port()) {
                return Err(ConfigError::new(
                    *key,
                    "must use a port of its own: each listener serves other routes to other callers",
                ));
            }
        }
        Ok(Self {
            allowed_hosts: allowed_hosts(&sv.allowed_hosts)?,
            public,
            admin,
            listen,
            max_body_bytes: positive("server.max_body_bytes", sv.max_body_bytes)?,
            max_concurrency: positive("server.max_concurrency", sv.max_concurrency)?,
            shutdown_grace: Duration::from_millis(sv.shutdown_grace_ms),
            drain_delay: Duration::from_millis(sv.drain_delay_ms),
            header_read_timeout: ms("server.header_read_timeout_ms", sv.header_read_timeout_ms)?,
            idle_timeout: ms("server.idle_timeout_ms", sv.idle_timeout_ms)?,
            max_connections: positive("server.max_connections", sv.max_connections)?,
            workers: match sv.workers {
                Some(n) => positive("server.workers", n)?,
                None => std::thread::available_parallelism().map_or(1, usize::from),
            },
        })
    }
}

impl ServerConfig {
    /// Where `--healthcheck` connects: the listener that serves `/healthz` and `/readyz`, on
    /// loopback when it listens on every interface.
    pub fn probe_addr(&self) -> SocketAddr {
        // The admin listener keeps connections of its own: a probe there answers under a flood.
        let listen = self.admin.map_or(self.listen, |a| a.listen);
        let ip = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        SocketAddr::new(ip, listen.port())
    }
}
