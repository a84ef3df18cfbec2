//! The policy on paused time: who a caller is, what it may call, how fast.

use super::*;
use std::time::Duration;

use stream_wire::endpoint::EndpointId;

fn settings(toml: &str) -> Settings {
    use figment::providers::Format;
    let f: CallersFile = figment::Figment::from(figment::providers::Toml::string(toml))
        .extract()
        .expect("test [callers] parses");
    Settings::validate(f).expect("test [callers] is valid")
}

const EXAMPLE: &str = r#"
identity_header = "X-Caller"
[service.web]
[service.batch]
rate = 5.0
burst = 10
[service.indexer]
allow = ["feed.read", "reactions.*"]
cidrs = ["10.1.0.0/16"]
[service.default]
rate = 100.0
"#;

fn headers(caller: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(c) = caller {
        h.insert("x-caller", c.parse().unwrap());
    }
    h
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn callers(toml: &str) -> Callers {
    Callers::new(Some(&settings(toml)), Arc::new(Metrics::new()))
}

async fn admit(c: &Callers, caller: Option<&str>, peer: &str, ep: EndpointId) -> Admission {
    let peer = Some(SocketAddr::new(peer.parse().unwrap(), 1234));
    c.admit(&headers(caller), peer, Endpoint::get(ep)).await
}

fn refused_status(a: &Admission) -> Option<u16> {
    a.refused.as_ref().map(|e| e.parts().0.as_u16())
}

#[test]
fn the_endpoint_table_is_indexed_by_its_ids() {
    for (i, e) in ENDPOINTS.iter().enumerate() {
        assert_eq!(e.id as usize, i, "{}", e.name);
    }
}

#[test]
fn a_caller_is_known_by_its_header_by_its_network_or_is_default() {
    let p = Policy::compile(&settings(EXAMPLE), Instant::now());
    let who = |h: Option<&str>, peer: Option<IpAddr>| -> String {
        p.identify(&headers(h), peer).name.to_string()
    };
    assert_eq!(who(Some("web"), ip("192.0.2.1")), "web");
    assert_eq!(who(Some("Web"), None), "web", "case does not matter");
    assert_eq!(who(Some("batch"), None), "batch");
    assert_eq!(who(None, ip("10.1.2.3")), "indexer", "by address");
    assert_eq!(who(Some("indexer"), ip("10.1.2.3")), "indexer");
    assert_eq!(
        who(Some("indexer"), ip("192.0.2.1")),
        "default",
        "its header counts only from inside its networks"
    );
    assert_eq!(who(Some("indexer"), None), "default");
    assert_eq!(who(Some("stranger"), ip("192.0.2.1")), "default");
    assert_eq!(who(None, None), "default");
    // An IPv4 peer seen on an IPv6 socket.
    let mapped = "::ffff:10.1.0.9".parse::<IpAddr>().unwrap().to_canonical();
    assert_eq!(who(None, Some(mapped)), "indexer");
    // A service known by its address cannot name itself out of its policy (review finding):
    // not as a caller without networks, not as `default`.
    assert_eq!(who(Some("web"), ip("10.1.3.4")), "indexer");
    assert_eq!(who(Some("default"), ip("10.1.3.4")), "indexer");
    assert_eq!(who(Some("default"), ip("192.0.2.1")), "default");
    // A repeated header names no one: a mesh appending its value cannot be outvoted.
    let mut twice = headers(Some("web"));
    twice.append("x-caller", "batch".parse().unwrap());
    assert_eq!(
        p.identify(&twice, ip("192.0.2.1")).name.to_string(),
        "default"
    );
}

#[test]
fn a_network_written_as_ipv4_mapped_ipv6_matches_ipv4_peers() {
    let p = Policy::compile(
        &settings(
            r#"
            [service.mapped]
            cidrs = ["::ffff:10.1.0.0/112"]
            "#,
        ),
        Instant::now(),
    );
    assert_eq!(
        p.identify(&HeaderMap::new(), ip("10.1.2.3"))
            .name
            .to_string(),
        "mapped"
    );
}

#[test]
fn the_narrowest_network_wins_and_a_missing_default_allows_everything() {
    let p = Policy::compile(
        &settings(
            r#"
            [service.wide]
            cidrs = ["10.0.0.0/8"]
            [service.narrow]
            cidrs = ["10.1.0.0/16"]
            "#,
        ),
        Instant::now(),
    );
    let who = |peer| p.identify(&HeaderMap::new(), ip(peer)).name.to_string();
    assert_eq!(who("10.1.0.1"), "narrow");
    assert_eq!(who("10.2.0.1"), "wide");
    let d = &p.callers[p.default];
    assert_eq!(&*d.name, "default");
    assert!(d.allow.iter().all(|a| *a) && d.bucket.is_none());
    assert!(
        p.identity_header.is_none(),
        "no header: only networks identify"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_outside_the_allow_list_is_403_naming_caller_and_endpoint() {
    let c = callers(EXAMPLE);
    let ok = admit(&c, None, "10.1.0.1", EndpointId::FeedRead).await;
    assert!(ok.refused.is_none());
    assert_eq!(ok.caller.as_deref(), Some("indexer"));
    let no = admit(&c, None, "10.1.0.1", EndpointId::FeedAdd).await;
    assert_eq!(refused_status(&no), Some(403));
    let detail = no.refused.unwrap().to_string();
    assert!(
        detail.contains("indexer") && detail.contains("feed.add"),
        "{detail}"
    );
    let yes = admit(&c, None, "10.1.0.1", EndpointId::ReactionAdd).await;
    assert!(yes.refused.is_none(), "reactions.*");
}

#[tokio::test(start_paused = true)]
async fn a_caller_over_its_rate_gets_429_and_others_do_not() {
    let c = callers(EXAMPLE);
    for _ in 0..10 {
        let a = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
        assert!(a.refused.is_none());
    }
    let over = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
    match over.refused {
        Some(ApiError::RateLimited(r)) => {
            assert_eq!(r.retry_after_s, 1, "200 ms, rounded up");
            assert!(r.window.is_none());
            assert!(r.detail.contains("batch"), "{}", r.detail);
        }
        other => panic!("{other:?}"),
    }
    let web = admit(&c, Some("web"), "192.0.2.1", EndpointId::FeedRead).await;
    assert!(web.refused.is_none(), "web has no limit");
    tokio::time::advance(Duration::from_millis(200)).await;
    let again = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
    assert!(again.refused.is_none(), "one token back after 200 ms");
}

fn stream_report(remaining: u64, reset_in_s: u64) -> HeaderMap {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit", 100.into());
    h.insert("x-ratelimit-remaining", remaining.into());
    h.insert("x-ratelimit-reset", (now + reset_in_s).into());
    h
}

#[tokio::test(start_paused = true)]
async fn a_spent_window_is_429_with_streams_headers_and_takes_no_token() {
    let c = callers(EXAMPLE);
    let feed = Endpoint::get(EndpointId::FeedRead);
    c.observe(feed, 429, &stream_report(0, 30));
    for _ in 0..20 {
        let a = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
        match a.refused {
            Some(ApiError::RateLimited(r)) => {
                let (limit, remaining, _) = r.window.expect("Stream's window");
                assert_eq!((limit, remaining), (100, 0));
                assert!((29..=30).contains(&r.retry_after_s), "{}", r.retry_after_s);
            }
            other => panic!("{other:?}"),
        }
    }
    let other = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedAdd).await;
    assert!(other.refused.is_none(), "another endpoint's window");
    tokio::time::advance(Duration::from_secs(31)).await;
    for _ in 0..9 {
        let a = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
        assert!(
            a.refused.is_none(),
            "the refusals took nothing from the bucket"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reserve_keeps_the_end_of_the_window_for_its_caller() {
    let c = callers(
        r#"
        identity_header = "X-Caller"
        [service.web]
        reserve = 0.2
        [service.batch]
        "#,
    );
    let feed = Endpoint::get(EndpointId::FeedRead);
    c.observe(feed, 200, &stream_report(20, 30));
    let batch = admit(&c, Some("batch"), "192.0.2.1", EndpointId::FeedRead).await;
    assert_eq!(refused_status(&batch), Some(429));
    let unknown = admit(&c, None, "192.0.2.1", EndpointId::FeedRead).await;
    assert_eq!(
        refused_status(&unknown),
        Some(429),
        "default has no reserve"
    );
    let web = admit(&c, Some("web"), "192.0.2.1", EndpointId::FeedRead).await;
    assert!(web.refused.is_none());
}

#[tokio::test(start_paused = true)]
async fn without_callers_nothing_is_identified_limited_or_tracked() {
    let c = Callers::new(None, Arc::new(Metrics::new()));
    let feed = Endpoint::get(EndpointId::FeedRead);
    c.observe(feed, 429, &stream_report(0, 30));
    let a = c.admit(&headers(Some("web")), None, feed).await;
    assert!(a.caller.is_none() && a.refused.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_replaced_policy_is_in_force_for_the_next_request() {
    let c = callers(EXAMPLE);
    let a = admit(&c, None, "10.1.0.1", EndpointId::FeedAdd).await;
    assert_eq!(refused_status(&a), Some(403));
    c.replace(Some(&settings(
        "[service.indexer]\ncidrs = [\"10.1.0.0/16\"]",
    )));
    let a = admit(&c, None, "10.1.0.1", EndpointId::FeedAdd).await;
    assert!(a.refused.is_none());
    c.replace(None);
    assert!(admit(&c, None, "10.1.0.1", EndpointId::FeedAdd)
        .await
        .caller
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn outcomes_are_counted_by_caller_endpoint_and_outcome() {
    let metrics = Arc::new(Metrics::new());
    let c = Callers::new(Some(&settings(EXAMPLE)), metrics.clone());
    admit(&c, None, "10.1.0.1", EndpointId::FeedRead).await;
    admit(&c, None, "10.1.0.1", EndpointId::FeedAdd).await;
    admit(&c, Some("made-up"), "192.0.2.1", EndpointId::FeedRead).await;
    c.observe(
        Endpoint::get(EndpointId::FeedRead),
        200,
        &stream_report(42, 30),
    );
    let text = metrics.render();
    for line in [
        r#"gateway_caller_requests_total{caller="indexer",endpoint="feed.read",outcome="allowed"} 1"#,
        r#"gateway_caller_requests_total{caller="indexer",endpoint="feed.add",outcome="forbidden"} 1"#,
        r#"gateway_caller_requests_total{caller="default",endpoint="feed.read",outcome="allowed"} 1"#,
        r#"gateway_upstream_ratelimit_remaining{endpoint="feed.read"} 42"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(
        !text.contains("made-up"),
        "an unknown name is never a label"
    );
}

#[test]
fn the_documented_example_is_valid_and_means_what_the_page_says() {
    use figment::providers::Format;
    let page = include_str!("../../docs/callers.md");
    let start = page.find("```toml\n").expect("an example") + "```toml\n".len();
    let toml = &page[start..start + page[start..].find("```").unwrap()];
    let f: CallersFile = figment::Figment::from(figment::providers::Toml::string(toml))
        .focus("callers")
        .extract()
        .expect("the example parses");
    let p = Policy::compile(&Settings::validate(f).expect("valid"), Instant::now());
    let who = |h: Option<&str>, peer| p.identify(&headers(h), ip(peer)).name.to_string();
    assert_eq!(who(Some("web"), "192.0.2.9"), "web");
    assert_eq!(who(None, "10.1.3.4"), "indexer");
    assert_eq!(who(Some("indexer"), "192.0.2.9"), "default");
    let indexer = p.callers.iter().find(|c| &*c.name == "indexer").unwrap();
    assert!(indexer.allow[EndpointId::FeedRead as usize]);
    assert!(!indexer.allow[EndpointId::FeedAdd as usize]);
    assert!((p.reserved - 0.2).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_cidr_only_caller_from_elsewhere_is_default_unlimited_unless_default_says_otherwise() {
    let only_cidrs = r#"
        [service.indexer]
        allow = ["feed.read"]
        cidrs = ["10.1.0.0/16"]
    "#;
    let c = callers(only_cidrs);
    let away = admit(&c, None, "192.0.2.7", EndpointId::FeedAdd).await;
    assert_eq!(away.caller.as_deref(), Some("default"));
    assert!(
        away.refused.is_none(),
        "no default entry: allowed everything"
    );
    let c = callers(&format!("{only_cidrs}\n[service.default]\nallow = []\n"));
    let away = admit(&c, None, "192.0.2.7", EndpointId::FeedRead).await;
    assert_eq!(
        refused_status(&away),
        Some(403),
        "a default that allows nothing"
    );
}
