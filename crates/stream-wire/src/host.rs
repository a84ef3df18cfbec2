//! The name a `Host` header carries, and the names that mean "this machine": the same-origin
//! checks of the gateway's internal listener and of the emulator's admin routes both use them.

use std::net::{IpAddr, SocketAddr};

/// The names a `Host` header may carry on the internal listener.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// `None`: any (`server.allowed_hosts` lists `*`).
    names: Option<Vec<String>>,
}

impl Hosts {
    /// The listen address, `localhost`, the machine's hostname and `extra`
    /// (`server.allowed_hosts`; `None` turns the check off). Loopback addresses always pass.
    pub fn new(listen: SocketAddr, extra: Option<&[String]>) -> Self {
        let names = extra.map(|extra| {
            let mut names = vec!["localhost".to_owned(), ip_name(listen.ip())];
            names.extend(machine_hostname());
            names.extend(extra.iter().cloned());
            names
        });
        Self { names }
    }

    /// Whether a request whose `Host` is `value` is for this gateway.
    pub fn allow(&self, value: &str) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        // Compared without a lower-cased copy: this runs on every request.
        let Some(name) = host_part(value) else {
            return false;
        };
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            || names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// An IP address as it appears in a `Host` header (IPv6 in brackets).
fn ip_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The machine's hostname, lower-cased (Linux; elsewhere `$HOSTNAME`).
fn machine_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    host_name(name.trim())
}

/// The host of a `Host` header value: without its port, lower-cased, without a trailing
/// dot; `None` when it is not a host name or address.
pub fn host_name(value: &str) -> Option<String> {
    host_part(value).map(str::to_ascii_lowercase)
}

/// [`host_name`] as it is written (not lower-cased).
fn host_part(value: &str) -> Option<&str> {
    let value = value.trim();
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        let rest = &value[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        &value[..=end]
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    ok.then_some(host)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(extra: &[&str]) -> Hosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Hosts::new(([10, 0, 0, 5], 8080).into(), Some(&extra))
    }

    #[test]
    fn the_gateways_own_names_pass_with_or_without_a_port() {
        let h = hosts(&["stream-gateway"]);
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1:8080",
            "127.8.9.1",
            "[::1]:8080",
            "10.0.0.5:8080",
            "stream-gateway:8080",
        ] {
            assert!(h.allow(ok), "{ok}");
        }
        if let Some(name) = machine_hostname() {
            assert!(h.allow(&name));
        }
    }

    #[test]
    fn other_names_and_malformed_hosts_are_refused() {
        let h = hosts(&["stream-gateway"]);
        for bad in [
            "evil.example",
            "evil.example:8080",
            "stream-gateway.evil.example",
            "10.0.0.6",
            "localhost:80:80",
            "local host",
            "[::1",
            "",
        ] {
            assert!(!h.allow(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_compared_without_regard_to_case_on_either_side() {
        let h = hosts(&["Stream-Gateway"]);
        assert!(h.allow("stream-gateway:8080") && h.allow("STREAM-GATEWAY"));
        assert!(!h.allow("stream-gateway2"));
    }

    #[test]
    fn a_star_lets_any_host_pass() {
        let h = Hosts::new(([127, 0, 0, 1], 8080).into(), None);
        assert!(h.allow("evil.example"));
    }
}
