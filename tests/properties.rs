//! Property tests of the invariants the gateway's safety rests on.

use std::time::Duration;

use proptest::prelude::*;
use stream_gateway::upstream::retry::{decide, Attempted, Backoff, Decision, Outcome};
use stream_wire::endpoint::FeedScope;
use stream_wire::{route, FeedClaim, FeedId, Method, RouteError, Slug, UserId};

/// Path segments from an alphabet that includes the tricks: encoded slashes, NULs, dots,
/// non-ASCII, colons, the reserved words of the table.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_]{1,8}",
        "[A-Za-z0-9_-]{1,8}",
        "[a-z]{1,4}:[0-9]{1,3}",
        Just("follows".to_owned()),
        Just("following".to_owned()),
        Just("followers".to_owned()),
        Just("feed".to_owned()),
        Just("add_to_many".to_owned()),
        Just("reaction".to_owned()),
        Just("activity_id".to_owned()),
        Just("restore".to_owned()),
        Just("get_many".to_owned()),
        Just("collections".to_owned()),
        Just("user".to_owned()),
        Just("enrich".to_owned()),
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("a%2Fb".to_owned()),
        Just("%00".to_owned()),
        Just("%C3%A9".to_owned()),
        Just("%FF".to_owned()),
        Just("".to_owned()),
        "[ -~]{0,6}",
    ]
}

/// Paths in the shapes of the table, with parts from the hostile alphabet, and free-form ones.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![shaped_path(), free_path()]
}

fn shaped_path() -> impl Strategy<Value = String> {
    let part = || {
        prop_oneof![
            3 => "[A-Za-z0-9_]{1,8}",
            1 => segment(),
        ]
    };
    let target = prop_oneof![3 => "[a-z_]{1,6}:[A-Za-z0-9_-]{1,6}", 1 => segment()];
    let lookup = prop_oneof![
        3 => prop_oneof![
            Just("reaction_id".to_owned()),
            Just("activity_id".to_owned()),
            Just("user_id".to_owned())
        ],
        1 => segment(),
    ];
    (
        part(),
        part(),
        target,
        part(),
        lookup,
        0u8..37,
        any::<bool>(),
    )
        .prop_map(|(slug, user, target, activity, lookup, tail, slash)| {
            let end = if slash { "/" } else { "" };
            match tail {
                0 => format!("/api/v1.0/feed/{slug}/{user}{end}"),
                1 => format!("/api/v1.0/feed/{slug}/{user}/followers{end}"),
                2 => format!("/api/v1.0/feed/{slug}/{user}/follows{end}"),
                3 => format!("/api/v1.0/feed/{slug}/{user}/following{end}"),
                4 => format!("/api/v1.0/feed/{slug}/{user}/follows/{target}{end}"),
                5 => format!("/api/v1.0/feed/{slug}/{user}/following/{target}{end}"),
                6 => format!("/api/v1.0/feed/{slug}/{user}/{activity}{end}"),
                7 => format!("/api/v1.0/activities{end}"),
                8 => format!("/api/v1.0/feed/add_to_many{end}"),
                9 => format!("/api/v1.0/follow_many{end}"),
                10 => format!("/api/v1.0/enrich/feed/{slug}/{user}{end}"),
                11 => format!("/api/v1.0/feed_targets/{slug}/{user}/activity_to_targets{end}"),
                12 => format!("/api/v1.0/enrich/activities{end}"),
                13 => format!("/api/v1.0/activity{end}"),
                14 => format!("/api/v1.0/unfollow_many{end}"),
                15 => format!("/api/v1.0/stats/follow{end}"),
                16 => format!("/api/v1.0/og{end}"),
                17 => format!("/api/v1.0/reaction{end}"),
                18 => format!("/api/v1.0/reaction/{activity}{end}"),
                19 => format!("/api/v1.0/reaction/{activity}/restore{end}"),
                20 => format!("/api/v1.0/reaction/{lookup}/{activity}{end}"),
                21 => format!("/api/v1.0/reaction/{lookup}/{activity}/{slug}{end}"),
                22 => format!("/api/v1.0/reaction/get_many{end}"),
                23 => format!("/api/v1.0/collections{end}"),
                24 => format!("/api/v1.0/collections/{slug}{end}"),
                25 => format!("/api/v1.0/collections/{slug}/{activity}{end}"),
                26 => format!("/api/v1.0/user{end}"),
                27 => format!("/api/v1.0/user/{activity}{end}"),
                28 => format!("/api/v1.0/users{end}"),
                29 => format!("/api/v1.0/audit_logs{end}"),
                30 => format!("/analytics/v1.0/engagement{end}"),
                31 => format!("/analytics/v1.0/impression{end}"),
                32 => format!("/personalization/v1.0/{activity}{end}"),
                _ => format!("/api/v1.0/{target}/{activity}{end}"),
            }
        })
}

fn free_path() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("/api/v1.0/feed/".to_owned()),
            Just("/api/v1.0/".to_owned())
        ],
        proptest::collection::vec(segment(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(prefix, segs, slash)| {
            format!("{prefix}{}{}", segs.join("/"), if slash { "/" } else { "" })
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        3 => Just(Method::Get),
        3 => Just(Method::Post),
        3 => Just(Method::Delete),
        1 => Just(Method::Put),
        1 => Just(Method::Other)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever the path: refused, or routed with exactly its row's resource and action and
    /// the feed of its own path (never `*` for a feed row), and the canonical path it forwards
    /// routes again to the same endpoint and scope.
    #[test]
    fn a_path_is_refused_or_gets_exactly_its_own_scope(m in method(), p in path()) {
        match route(m, &p) {
            Err(RouteError::NotFound | RouteError::MethodNotAllowed { .. } | RouteError::Invalid(_)) => {}
            Ok(r) => {
                let scope = r.scope();
                prop_assert_eq!(scope.resource, r.endpoint.resource);
                prop_assert_eq!(scope.action, r.endpoint.action);
                prop_assert_eq!(r.endpoint.method, m);
                match r.endpoint.feed_scope {
                    FeedScope::PathFeed => {
                        let feed = r.feed.clone().expect("a feed row has a path feed");
                        prop_assert_eq!(&scope.feed, &FeedClaim::One(feed.claim()));
                        let under = ["feed", "enrich/feed", "feed_targets"]
                            .iter()
                            .any(|p| r.path.starts_with(&format!("/api/v1.0/{p}/{}/", feed.path())));
                        prop_assert!(under, "{} under its feed {}", r.path, feed.path());
                    }
                    FeedScope::All => prop_assert_eq!(&scope.feed, &FeedClaim::All),
                }
                prop_assert!(!r.path.contains("/../") && !r.path.contains("%2F") && !r.path.contains("%00"));
                prop_assert!(r.path.ends_with('/'));
                let again = route(m, &r.path).expect("the canonical path routes");
                prop_assert_eq!(again.endpoint.id, r.endpoint.id);
                prop_assert_eq!(again.scope(), scope);
                prop_assert_eq!(again.path, r.path);
            }
        }
    }

    /// A feed id that passes validation round-trips through its three forms.
    #[test]
    fn a_valid_feed_id_round_trips(slug in "[A-Za-z0-9_]{1,40}", user in "[A-Za-z0-9_-]{1,40}") {
        let f = FeedId::parse(&format!("{slug}:{user}")).unwrap();
        prop_assert_eq!(f.to_string(), format!("{slug}:{user}"));
        prop_assert_eq!(f.claim(), format!("{slug}{user}"));
        prop_assert_eq!(FeedId::parse(&f.to_string()).unwrap(), f.clone());
        prop_assert_eq!(FeedId::new(Slug::parse(&slug).unwrap(), UserId::parse(&user).unwrap()), f);
    }

    /// Anything else is refused.
    #[test]
    fn an_id_with_a_character_outside_the_set_is_refused(s in "[A-Za-z0-9_]{0,5}[^A-Za-z0-9_-][A-Za-z0-9_]{0,5}") {
        prop_assert!(UserId::parse(&s).is_err());
        prop_assert!(Slug::parse(&s).is_err());
    }

    /// The backoff never exceeds its ceiling nor its maximum.
    #[test]
    fn backoff_stays_under_its_maximum(base in 1u64..500, extra in 0u64..5000, n in 0u32..100, unit in 0.0f64..1.0) {
        let (base, max) = (Duration::from_millis(base), Duration::from_millis(base + extra));
        let b = Backoff::try_new(base, max).unwrap();
        let d = b.delay(n, unit);
        prop_assert!(d <= b.ceiling(n));
        prop_assert!(b.ceiling(n) <= max);
    }

    /// A request that may have reached Stream is never resent unless it is idempotent; and a
    /// retry's wait always fits inside the time left.
    #[test]
    fn the_policy_never_resends_a_sent_non_idempotent_request(
        status in 100u16..600,
        kind in 0u8..4,
        wait in proptest::option::of(0u64..20_000),
        idempotent in any::<bool>(),
        retries in 0u32..4,
        remaining in 0u64..20_000,
        backoff in 0u64..3000,
    ) {
        let outcome = match kind {
            0 => Outcome::NotSent,
            1 => Outcome::Timeout,
            2 => Outcome::Dropped,
            _ => Outcome::Status { status, wait: wait.map(Duration::from_millis) },
        };
        let a = Attempted {
            retries,
            max_retries: 2,
            idempotent,
            remaining: Duration::from_millis(remaining),
            backoff: Duration::from_millis(backoff),
        };
        if let Decision::Retry { after, .. } = decide(outcome, a, || true) {
            let refused_before_acting = matches!(outcome, Outcome::NotSent | Outcome::Status { status: 429, .. });
            prop_assert!(idempotent || refused_before_acting, "{:?}", outcome);
            prop_assert!(after < a.remaining);
            prop_assert!(retries < 2);
        }
    }
}

/// The path property is only as good as its inputs: a good share of them must route, or it
/// would only ever check the refusal branch.
#[test]
fn the_path_generator_reaches_every_endpoint() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::HashSet;
    let mut runner = TestRunner::deterministic();
    let mut reached = HashSet::new();
    let mut ok = 0;
    for _ in 0..5_000 {
        let m = method().new_tree(&mut runner).unwrap().current();
        let p = path().new_tree(&mut runner).unwrap().current();
        if let Ok(r) = route(m, &p) {
            ok += 1;
            reached.insert(r.endpoint.id);
        }
    }
    assert!(ok > 500, "only {ok} of 5000 generated paths routed");
    assert_eq!(reached.len(), stream_wire::ENDPOINTS.len(), "{reached:?}");
}

/// A `traceparent` near a valid one: each part from a mix of valid and broken spellings.
fn near_traceparent() -> impl Strategy<Value = String> {
    (
        prop_oneof![6 => "[0-9a-f]{2}", 1 => Just("ff".to_owned()), 1 => "[0-9A-Fa-z]{1,3}"],
        prop_oneof![6 => "[0-9a-f]{32}", 1 => Just("0".repeat(32)), 1 => "[0-9A-Fa-f]{31,33}"],
        prop_oneof![6 => "[0-9a-f]{16}", 1 => Just("0".repeat(16)), 1 => "[0-9A-Fa-f]{15,17}"],
        prop_oneof![6 => "[0-9a-f]{2}", 1 => "[0-9A-Fa-z]{1,3}"],
        prop_oneof![4 => Just(String::new()), 1 => "-[ -~]{0,8}", 1 => "[ -~]{1,4}"],
        prop_oneof![6 => Just("-".to_owned()), 1 => "[_ ]"],
    )
        .prop_map(|(v, t, s, f, tail, sep)| format!("{v}-{t}{sep}{s}-{f}{tail}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever the caller sends, the `traceparent` that goes upstream is a valid version-00
    /// one; it continues the caller's trace exactly when the caller's value was valid, and a
    /// valid version-00 value with flags 00 or 01 comes back as sent when its span is reused.
    #[test]
    fn the_traceparent_sent_on_is_always_valid_and_continues_only_a_valid_one(
        tp in prop_oneof![near_traceparent(), "[ -~]{0,70}"],
    ) {
        use stream_gateway::trace::context::parse_traceparent;
        use stream_gateway::trace::Context;
        let mut headers = http::HeaderMap::new();
        let Ok(value) = http::HeaderValue::from_str(&tp) else { return Ok(()) };
        headers.insert("traceparent", value);
        let ctx = Context::from_headers(&headers, true);
        let parsed = parse_traceparent(tp.as_bytes());
        let sent = ctx.traceparent(ctx.span_id);
        let back = parse_traceparent(sent.as_bytes()).expect("the gateway's traceparent is valid");
        prop_assert_eq!(sent.len(), 55);
        prop_assert_eq!(back.trace_id, ctx.trace_id);
        match parsed {
            Some(p) => {
                prop_assert_eq!(p.trace_id, ctx.trace_id);
                if tp.len() == 55 && tp.starts_with("00-") && p.flags <= 1 {
                    let again = ctx.traceparent(p.parent_id);
                    prop_assert_eq!(again.to_str().unwrap(), tp.as_str());
                }
            }
            None => prop_assert!(!tp.contains(&ctx.trace_id.to_string())),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever the `Authorization` value's bytes: refused, or a non-empty token of
    /// base64url/b64token characters that is a part of the value after the scheme.
    #[test]
    fn an_authorization_value_gives_a_clean_token_or_none(
        v in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            "(Bearer|bearer|BEARER|Basic|Token)[ \t]{0,3}[ -~]{0,60}".prop_map(String::into_bytes),
        ]
    ) {
        if let Ok(t) = stream_gateway::oidc::bearer::parse(&v) {
            let body = t.trim_end_matches('=');
            prop_assert!(!body.is_empty());
            prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
            let text = std::str::from_utf8(&v).unwrap();
            prop_assert!(text.to_ascii_lowercase().starts_with("bearer "));
            prop_assert!(text[7..].contains(t));
        }
    }

    /// Any b64token behind `Bearer` and spaces comes back unchanged.
    #[test]
    fn a_bearer_token_comes_back_unchanged(
        scheme in "(Bearer|bearer|BEARER|bEaReR)",
        spaces in 1usize..4,
        token in "[A-Za-z0-9._~+/-]{1,120}={0,2}",
    ) {
        let value = format!("{scheme}{}{token}", " ".repeat(spaces));
        prop_assert_eq!(stream_gateway::oidc::bearer::parse(value.as_bytes()), Ok(token.as_str()));
    }
}

/// `/api/v2/` paths: a template of the generated table with each parameter from the hostile
/// alphabet, or free segments.
fn v2_path() -> impl Strategy<Value = String> {
    use stream_wire::v2::V2_ROUTES;
    let shaped = (0..V2_ROUTES.len(), prop::collection::vec(segment(), 4)).prop_map(|(i, fill)| {
        let mut n = 0;
        V2_ROUTES[i]
            .path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    n += 1;
                    fill[(n - 1) % fill.len()].clone()
                } else {
                    s.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    });
    let free =
        prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/api/v2/{}", s.join("/")));
    prop_oneof![3 => shaped, 1 => free]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A v2 path is refused, or forwarded as its operation's template with every parameter one
    /// safe segment: nothing the caller encodes can reach another operation's path.
    #[test]
    fn a_v2_path_is_refused_or_forwarded_as_its_own_operation(
        m in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE")],
        p in v2_path(),
    ) {
        use stream_wire::v2::route as v2_route;
        if let Ok(found) = v2_route(m, &p) {
            let r = found.route;
            prop_assert_eq!(r.method.as_str(), m);
            let sent: Vec<&str> = found.path.split('/').collect();
            let template: Vec<&str> = r.path.split('/').collect();
            prop_assert_eq!(sent.len(), template.len(), "{} -> {}", p, found.path);
            for (s, t) in sent.iter().zip(&template) {
                if t.starts_with('{') {
                    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().unwrap();
                    prop_assert!(!decoded.is_empty() && decoded != "." && decoded != "..");
                    prop_assert!(!decoded.contains(['/', '\\']) && !decoded.chars().any(char::is_control));
                } else {
                    prop_assert_eq!(s, t);
                }
            }
            // What is forwarded routes to the same operation.
            prop_assert_eq!(v2_route(m, &found.path).unwrap().index, found.index);
        }
    }
}
