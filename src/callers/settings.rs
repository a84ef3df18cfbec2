//! `[callers]` as read ([`CallersFile`]) and validated ([`Settings`]): who a caller is, what
//! it may call, at what rate, and what share of Stream's window is kept for it. A problem
//! names its key (`callers.service.batch.rate`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::settings::{check_name, ConfigError};

use super::{named_count, named_endpoints};

/// The caller that covers everyone not otherwise known.
pub const DEFAULT_CALLER: &str = "default";
/// `callers.redis_timeout_ms` by default: the 50 ms the issue sets.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 50;

/// `[callers]` as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallersFile {
    /// The header naming the caller (set by the mesh or the service itself).
    pub identity_header: Option<String>,
    /// `[callers.service.<name>]`.
    pub service: BTreeMap<String, ServiceFile>,
    /// `redis://host:port/db` or `rediss://`: buckets and Stream's window shared by replicas.
    pub redis_url: Option<String>,
    /// How long a decision waits for Redis before the instance's own bucket decides (ms).
    pub redis_timeout_ms: u64,
}

impl Default for CallersFile {
    fn default() -> Self {
        Self {
            identity_header: None,
            service: BTreeMap::new(),
            redis_url: None,
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
        }
    }
}

/// `[callers.service.<name>]` as read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceFile {
    /// Endpoint names, `family.*` or `*`; none: every endpoint.
    pub allow: Option<Vec<String>>,
    /// Requests per second; none: no limit.
    pub rate: Option<f64>,
    /// Bucket size; none: `ceil(rate)`.
    pub burst: Option<u64>,
    /// Source networks the caller is known by (and the only ones its header is taken from).
    pub cidrs: Vec<String>,
    /// Share (0 to 1) of each Stream window kept for this caller.
    pub reserve: Option<f64>,
    /// Requests of this caller in flight at once, bodies included; none: a quarter of
    /// `server.max_concurrency`, at least 1.
    pub max_in_flight: Option<u64>,
}

/// `[callers]`, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The header naming the caller, if callers are known by one.
    pub identity_header: Option<http::HeaderName>,
    /// Every configured caller, `default` included when configured, by name.
    pub services: Vec<Service>,
    /// Where buckets and Stream's window are shared, if they are.
    pub redis_url: Option<RedisUrl>,
    /// `callers.redis_timeout_ms`: the longest a decision waits for Redis.
    pub redis_timeout: std::time::Duration,
    /// `max_in_flight` of a caller that sets none (`default` added unconfigured included): a
    /// quarter of `server.max_concurrency`, at least 1 (the configuration sets it).
    pub default_max_in_flight: usize,
}

/// `server.max_concurrency` by default, over four: [`Settings::default_max_in_flight`] until
/// the configuration sets it from the running value.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024 / 4;

/// `callers.redis_url`, checked, with its client (which only parses: nothing connects yet). Its
/// `Debug` and [`RedisUrl::redacted`] leave out user and password.
#[derive(Clone)]
pub struct RedisUrl {
    url: String,
    client: redis::Client,
}

impl RedisUrl {
    /// A `redis://` or `rediss://` URL the client takes.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err("must be redis://host:port/db, or rediss://host:port/db for TLS".into());
        }
        // The client's own reading; its error would quote the URL, password and all.
        let client = redis::Client::open(url)
            .map_err(|_| "is not a Redis URL: redis://[user:password@]host[:port][/db]")?;
        Ok(Self {
            url: url.to_owned(),
            client,
        })
    }

    /// The URL as configured, password included.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The client for this URL.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The URL without user and password, for logs.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("redis", &self.url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        format!("{scheme}://{host}")
    }
}

impl PartialEq for RedisUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// One caller, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Lower-case letters, digits, `_` and `-`.
    pub name: String,
    /// By the endpoint table's index: whether the caller may call it.
    pub allow: Vec<bool>,
    /// Requests per second and bucket size.
    pub rate: Option<(f64, u32)>,
    /// Networks the caller is known by.
    pub cidrs: Vec<IpNet>,
    /// Share of each Stream window kept for this caller.
    pub reserve: f64,
    /// Requests in flight at once; none: [`Settings::default_max_in_flight`].
    pub max_in_flight: Option<usize>,
}

impl Settings {
    /// Validates `[callers]`; the first problem names its key.
    pub fn validate(f: CallersFile) -> Result<Self, ConfigError> {
        let identity_header = match f.identity_header.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) => Some(http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                ConfigError::new(
                    "callers.identity_header",
                    format!("{h:?} is not a header name"),
                )
            })?),
        };
        let mut services = Vec::with_capacity(f.service.len());
        let mut reserved = 0.0;
        for (name, s) in f.service {
            let service = Service::validate(name, s)?;
            reserved += service.reserve;
            if reserved > 1.0 + 1e-9 {
                return Err(ConfigError::new(
                    format!("callers.service.{}.reserve", service.name),
                    "the reserves of all callers add up to more than 1",
                ));
            }
            services.push(service);
        }
        let redis_url = match f.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                Some(RedisUrl::parse(u).map_err(|p| ConfigError::new("callers.redis_url", p))?)
            }
        };
        let redis_timeout = match f.redis_timeout_ms {
            ms @ 1..=1000 => std::time::Duration::from_millis(ms),
            _ => {
                return Err(ConfigError::new(
                    "callers.redis_timeout_ms",
                    "must be 1 to 1000 (milliseconds)",
                ))
            }
        };
        Ok(Self {
            identity_header,
            services,
            redis_url,
            redis_timeout,
            default_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }
}

impl Service {
    fn validate(name: String, s: ServiceFile) -> Result<Self, ConfigError> {
        let key = |k: &str| format!("callers.service.{name}.{k}");
        check_name(format!("callers.service.{name}"), &name, "a caller's name")?;
        let allow = match &s.allow {
            // Every v1.0 endpoint, whose tokens are scoped; a v2 operation carries a server
            // token that may do anything (app settings, webhook URL), so it is allowed only
            // by a pattern that names it (`chat.*`, `*`).
            None => (0..named_count())
                .map(|i| i < stream_wire::endpoint::ENDPOINTS.len())
                .collect(),
            Some(patterns) => allowed(patterns).map_err(|p| ConfigError::new(key("allow"), p))?,
        };
        let rate = match (s.rate, s.burst) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    key("burst"),
                    format!("needs {}", key("rate")),
                ));
            }
            (Some(r), _) if !(r.is_finite() && r > 0.0) => {
                return Err(ConfigError::new(
                    key("rate"),
                    "must be greater than 0 (requests per second)",
                ));
            }
            (Some(_), Some(0)) => {
                return Err(ConfigError::new(key("burst"), "must be greater than 0"))
            }
            (Some(r), burst) => {
                let burst = burst.unwrap_or(r.ceil() as u64).min(u64::from(u32::MAX));
                Some((r, burst as u32))
            }
        };
        let cidrs = s
            .cidrs
            .iter()
            .map(|c| {
                parse_cidr(c).ok_or_else(|| {
                    ConfigError::new(
                        key("cidrs"),
                        format!("{c:?} is not a network such as 10.1.0.0/16"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let reserve = s.reserve.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&reserve) {
            return Err(ConfigError::new(key("reserve"), "must be between 0 and 1"));
        }
        let max_in_flight = match s.max_in_flight {
            None => None,
            Some(0) => {
                return Err(ConfigError::new(
                    key("max_in_flight"),
                    "must be greater than 0",
                ))
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        };
        Ok(Self {
            name,
            allow,
            rate,
            cidrs,
            reserve,
            max_in_flight,
        })
    }
}

/// The endpoints a list of names, `family.*` and `*` allows, by the named endpoints' index;
/// v2 operations also by their product's reads (`chat.read`).
fn allowed(patterns: &[String]) -> Result<Vec<bool>, String> {
    let mut allow = vec![false; named_count()];
    for p in patterns {
        let matches = |name: &str| match p.strip_suffix(".*") {
            _ if p == "*" => true,
            Some(family) => name
                .strip_prefix(family)
                .is_some_and(|r| r.starts_with('.')),
            None => name == p,
        };
        let mut any = false;
        for (i, (name, v2)) in named_endpoints().enumerate() {
            let hit = match v2 {
                Some(r) => stream_wire::v2::allows(p, r),
                None => matches(name),
            };
            if hit {
                allow[i] = true;
                any = true;
            }
        }
        if !any {
            return Err(format!(
                "{p:?} names no endpoint: use a name from docs/endpoints.md (`feed.read`, \
                 `chat.SendMessage`), a family (`reactions.*`, `chat.*`), a product's reads \
                 (`chat.read`) or `*`"
            ));
        }
    }
    Ok(allow)
}

/// `10.1.0.0/16`, `fd00::/8`, or one address.
fn parse_cidr(c: &str) -> Option<IpNet> {
    let c = c.trim();
    let net = c
        .parse::<IpNet>()
        .ok()
        .or_else(|| c.parse::<IpAddr>().ok().map(IpNet::from))?;
    // Peers are compared in their plain form (`::ffff:10.1.2.3` is 10.1.2.3), so networks too.
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(IpNet::V4),
            None => Some(net),
        },
        _ => Some(net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(f: ServiceFile) -> Result<Service, ConfigError> {
        Service::validate("svc".into(), f)
    }

    fn names(allow: &[bool]) -> Vec<&'static str> {
        assert_eq!(allow.len(), named_count());
        named_endpoints()
            .zip(allow)
            .filter(|(_, a)| **a)
            .map(|((name, _), _)| name)
            .collect()
    }

    #[test]
    fn a_caller_with_no_keys_may_call_every_v1_endpoint_and_no_v2_operation_without_a_limit() {
        let s = service(ServiceFile::default()).unwrap();
        let v1 = stream_wire::endpoint::ENDPOINTS.len();
        assert!(s.allow[..v1].iter().all(|a| *a));
        assert!(
            s.allow[v1..].iter().all(|a| !*a),
            "a server token's operations need a pattern"
        );
        assert_eq!(s.allow.len(), named_count());
        assert_eq!((s.rate, s.reserve), (None, 0.0));
    }

    #[test]
    fn allow_takes_names_families_and_a_star() {
        let s = service(ServiceFile {
            allow: Some(vec!["feed.read".into(), "reactions.*".into()]),
            ..Default::default()
        })
        .unwrap();
        let n = names(&s.allow);
        assert!(n.contains(&"feed.read") && n.contains(&"reactions.add"));
        assert!(!n.contains(&"feed.read_enriched") && !n.contains(&"feed.add"));
        assert!(n
            .iter()
            .all(|e| *e == "feed.read" || e.starts_with("reactions.")));
        let all = service(ServiceFile {
            allow: Some(vec!["*".into()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(names(&all.allow).len(), named_count());
        let none = service(ServiceFile {
            allow: Some(vec![]),
            ..Default::default()
        })
        .unwrap();
        assert!(
            names(&none.allow).is_empty(),
            "an empty list allows nothing"
        );
    }

    #[test]
    fn allow_takes_v2_operations_products_and_their_reads() {
        let s = service(ServiceFile {
            allow: Some(vec![
                "chat.read".into(),
                "chat.SendMessage".into(),
                "feeds.*".into(),
            ]),
            ..Default::default()
        })
        .unwrap();
        let n = names(&s.allow);
        assert!(n.contains(&"chat.SendMessage") && n.contains(&"chat.GetManyMessages"));
        assert!(!n.contains(&"chat.UpdateChannel") && !n.contains(&"common.UpdateUsers"));
        assert!(n.contains(&"feeds.AddActivity") && n.contains(&"feeds.Follow"));
        assert!(!n.contains(&"feed.read"), "v1.0 names are apart");
        let reads = stream_wire::v2::V2_ROUTES
            .iter()
            .filter(|r| r.name.starts_with("chat.") && r.method == stream_wire::v2::V2Method::Get)
            .count();
        let feeds = stream_wire::v2::V2_ROUTES
            .iter()
            .filter(|r| r.name.starts_with("feeds."))
            .count();
        assert_eq!(n.len(), reads + 1 + feeds);
    }

    #[test]
    fn an_unknown_endpoint_or_family_names_the_allow_key() {
        for bad in [
            "feed.raed",
            "reaction.*",
            "feed",
            "feed.*x",
            "",
            "chat.Nope",
            "chats.*",
            "feeds.reads",
        ] {
            let e = service(ServiceFile {
                allow: Some(vec![bad.into()]),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(e.key, "callers.service.svc.allow", "{bad}");
            assert!(e.problem.contains(&format!("{bad:?}")), "{e:?}");
        }
    }

    #[test]
    fn burst_defaults_to_the_rate_rounded_up() {
        let rated = |rate, burst| {
            service(ServiceFile {
                rate: Some(rate),
                burst,
                ..Default::default()
            })
        };
        assert_eq!(rated(5.0, None).unwrap().rate, Some((5.0, 5)));
        assert_eq!(rated(0.5, None).unwrap().rate, Some((0.5, 1)));
        assert_eq!(rated(2.5, None).unwrap().rate, Some((2.5, 3)));
        assert_eq!(rated(5.0, Some(10)).unwrap().rate, Some((5.0, 10)));
        assert_eq!(
            rated(0.0, None).unwrap_err().key,
            "callers.service.svc.rate"
        );
        assert_eq!(
            rated(-1.0, None).unwrap_err().key,
            "callers.service.svc.rate"
        );
        assert_eq!(
            rated(f64::NAN, None).unwrap_err().key,
            "callers.service.svc.rate"
        );
        assert_eq!(
            rated(1.0, Some(0)).unwrap_err().key,
            "callers.service.svc.burst"
        );
        let burst_alone = service(ServiceFile {
            burst: Some(3),
            ..Default::default()
        });
        assert_eq!(burst_alone.unwrap_err().key, "callers.service.svc.burst");
    }

    #[test]
    fn cidrs_are_networks_or_addresses() {
        let s = service(ServiceFile {
            cidrs: vec!["10.1.0.0/16".into(), "fd00::/8".into(), "192.0.2.7".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.cidrs.len(), 3);
        assert!(s.cidrs[2].contains(&"192.0.2.7".parse::<IpAddr>().unwrap()));
        for bad in ["10.1.0.0/33", "10.1.0/16", "somewhere", "10.1.0.0/"] {
            let e = service(ServiceFile {
                cidrs: vec![bad.into()],
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(e.key, "callers.service.svc.cidrs", "{bad}");
        }
    }

    #[test]
    fn a_bad_name_reserve_or_header_is_named() {
        let e = Service::validate("Web".into(), ServiceFile::default()).unwrap_err();
        assert_eq!(e.key, "callers.service.Web");
        let e = service(ServiceFile {
            reserve: Some(1.5),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "callers.service.svc.reserve");
        let mut f = CallersFile::default();
        f.service.insert(
            "a".into(),
            ServiceFile {
                reserve: Some(0.6),
                ..Default::default()
            },
        );
        f.service.insert(
            "b".into(),
            ServiceFile {
                reserve: Some(0.6),
                ..Default::default()
            },
        );
        let e = Settings::validate(f.clone()).unwrap_err();
        assert_eq!(e.key, "callers.service.b.reserve");
        f.service.get_mut("b").unwrap().reserve = Some(0.4);
        assert!(Settings::validate(f.clone()).is_ok());
        f.identity_header = Some("bad header".into());
        assert_eq!(
            Settings::validate(f).unwrap_err().key,
            "callers.identity_header"
        );
    }

    #[test]
    fn a_redis_url_is_redis_or_rediss_and_its_password_stays_out_of_debug() {
        let with = |u: &str| {
            Settings::validate(CallersFile {
                redis_url: Some(u.into()),
                ..Default::default()
            })
        };
        let s = with("redis://:hunter2@cache.internal:6380/2").unwrap();
        let url = s.redis_url.unwrap();
        assert_eq!(url.expose(), "redis://:hunter2@cache.internal:6380/2");
        assert_eq!(url.redacted(), "redis://cache.internal:6380/2");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(with("rediss://cache.internal:6380/0").is_ok());
        assert!(with("").unwrap().redis_url.is_none(), "empty: none");
        for bad in [
            "http://cache:6379",
            "cache:6379",
            "redis://cache:port/0",
            "redis://",
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.key, "callers.redis_url", "{bad}");
            assert!(!e.problem.contains("hunter2"));
        }
    }

    #[test]
    fn the_redis_timeout_is_50_ms_unless_set_between_1_and_1000() {
        let with = |ms: u64| {
            Settings::validate(CallersFile {
                redis_timeout_ms: ms,
                ..Default::default()
            })
        };
        use std::time::Duration;
        let default = CallersFile::default().redis_timeout_ms;
        assert_eq!(
            with(default).unwrap().redis_timeout,
            Duration::from_millis(50)
        );
        assert_eq!(with(1000).unwrap().redis_timeout, Duration::from_secs(1));
        for bad in [0, 1001] {
            assert_eq!(with(bad).unwrap_err().key, "callers.redis_timeout_ms");
        }
    }

    #[test]
    fn max_in_flight_is_positive_and_unset_takes_the_default() {
        let e = service(ServiceFile {
            max_in_flight: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "callers.service.svc.max_in_flight");
        let s = service(ServiceFile {
            max_in_flight: Some(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.max_in_flight, Some(3));
        assert_eq!(service(ServiceFile::default()).unwrap().max_in_flight, None);
    }
}
