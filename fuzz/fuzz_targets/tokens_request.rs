//! Any `/tokens` body and identity: parsing and the policy never panic, and a grant never
//! exceeds the policy: its lifetime is within the maximum, a feed token names an allowed
//! resource/action pair and no `*` (wildcards are off), a user token only when enabled and
//! only for the caller's own identity; a feed token's claim names no other user's feed in
//! the configured feed groups (`user` + `42` is also `user4` + `2`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_gateway::config::TokensConfig;
use stream_wire::{Action, Resource, UserId};
use stream_gateway::tokens::{decide, TokenRequest};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (identity_raw, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(n) => (&rest[..n], &rest[n + 1..]),
        None => (&rest[..0], rest),
    };
    let Ok(req) = serde_json::from_slice::<TokenRequest>(body) else {
        return;
    };
    let cfg = TokensConfig {
        default_ttl_s: 600,
        max_ttl_s: 3600,
        allow: vec![
            (Resource::Feed, Action::Read),
            (Resource::Follower, Action::Read),
        ],
        user_tokens: flags & 1 == 1,
        wildcards: false,
        identity_header: Some(http::HeaderName::from_static("x-user-id")),
        feed_groups: ["user", "user4", "timeline", "timeline1", "t"]
            .map(String::from)
            .to_vec(),
        cors_origins: Vec::new(),
        // Every group of the app: the listed ones, which prefix each other.
        app_feed_groups: ["user", "user4", "timeline", "timeline1", "t"]
            .map(String::from)
            .to_vec(),
        max_in_flight: 64,
        body_timeout: std::time::Duration::from_secs(10),
        oidc: None,
    };
    let identity = std::str::from_utf8(identity_raw).ok();
    let identity = if flags & 2 == 2 {
        Some(identity)
    } else {
        Some(None)
    };
    let Ok(grant) = decide(&req, identity, &cfg) else {
        return;
    };
    assert!(grant.ttl_s > 0 && grant.ttl_s <= cfg.max_ttl_s);
    let claims = serde_json::to_value(&grant.claims).expect("claims serialize");
    match grant.kind {
        "feed" => {
            let pair = (
                Resource::parse(claims["resource"].as_str().unwrap_or_default()),
                Action::parse(claims["action"].as_str().unwrap_or_default()),
            );
            let allowed = match pair {
                (Some(r), Some(a)) => cfg.allow.contains(&(r, a)),
                _ => false,
            };
            assert!(allowed, "{claims}");
            let claim = claims["feed_id"].as_str().unwrap_or_default();
            assert_ne!(claim, "*");
            let who = identity.flatten().expect("a feed grant has an identity");
            for g in &cfg.feed_groups {
                if let Some(rest) = claim.strip_prefix(g.as_str()) {
                    assert!(rest == who || UserId::parse(rest).is_err(), "{claim} {g}");
                }
            }
        }
        "user" => {
            assert!(cfg.user_tokens);
            assert_eq!(claims["user_id"].as_str(), identity.flatten());
        }
        other => panic!("unknown grant kind {other}"),
    }
});
