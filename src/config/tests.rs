//! The configuration's tests: loading, layering, validation messages.

// figment::Jail's closures return figment::Error, which is large; that is figment's type.
#![allow(clippy::result_large_err)]

use super::*;
use std::time::Duration;

use figment::Jail;

use stream_wire::{Action, Resource};

fn base() -> Figment {
    Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("stream.api_key", "key"))
        .merge(("stream.api_secret", "s3cr3t-value"))
}

fn err(f: Figment) -> ConfigError {
    Config::from_figment(&f).unwrap_err()
}

#[test]
fn defaults_follow_the_contract() {
    let c = Config::from_figment(&base()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert_eq!(c.server.max_concurrency, 1024);
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.server.max_connections, 4096);
    assert_eq!(c.stream.base_url, "https://us-east-api.stream-io-api.com");
    assert_eq!(c.stream.batch_auth, BatchAuth::Signature);
    assert_eq!(c.stream.token_ttl_s, 3600);
    assert_eq!(c.upstream.timeout, Duration::from_millis(3000));
    assert_eq!(c.upstream.deadline, Duration::from_millis(10_000));
    assert_eq!(c.upstream.max_retries, 2);
    assert_eq!(c.upstream.pool_idle_timeout, Duration::from_millis(55_000));
    assert_eq!(c.upstream.max_response_bytes, 8 * 1024 * 1024);
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn a_missing_secret_names_its_key_and_no_value() {
    let f =
        Figment::from(Serialized::defaults(FileConfig::default())).merge(("stream.api_key", "key"));
    let e = err(f);
    assert_eq!(e.key, "stream.api_secret");
    assert!(e
        .to_string()
        .starts_with("configuration error: stream.api_secret: missing"));
}

#[test]
fn an_unknown_region_lists_the_known_ones() {
    let e = err(base().merge(("stream.region", "mars")));
    assert_eq!(e.key, "stream.region");
    assert!(e.problem.contains("us-east, eu-west, singapore"), "{e}");
    let c = Config::from_figment(&base().merge(("stream.region", "eu-west"))).unwrap();
    assert_eq!(c.stream.base_url, "https://eu-west-api.stream-io-api.com");
}

#[test]
fn v2_is_off_by_default_and_its_url_follows_the_base_url_unless_set() {
    let c = Config::from_figment(&base()).unwrap();
    assert!(!c.stream.v2);
    assert_eq!(c.stream.v2_base_url, "https://chat.stream-io-api.com");
    let c = Config::from_figment(
        &base()
            .merge(("stream.v2", true))
            .merge(("stream.base_url", "http://127.0.0.1:9000/")),
    )
    .unwrap();
    assert!(c.stream.v2);
    assert_eq!(c.stream.v2_base_url, "http://127.0.0.1:9000");
    let c = Config::from_figment(
        &base()
            .merge(("stream.base_url", "http://127.0.0.1:9000"))
            .merge(("stream.v2_base_url", "https://v2.example:8443/")),
    )
    .unwrap();
    assert_eq!(c.stream.v2_base_url, "https://v2.example:8443");
    assert_eq!(
        err(base().merge(("stream.v2_base_url", "http://x/api"))).key,
        "stream.v2_base_url"
    );
    let e = err(base()
        .merge(("stream.emulator", true))
        .merge(("stream.api_secret", "emulator-s3cr3t"))
        .merge(("stream.v2_base_url", "http://x")));
    assert_eq!(e.key, "stream.v2_base_url");
}

#[test]
fn a_base_url_needs_a_scheme_and_no_path() {
    assert_eq!(
        err(base().merge(("stream.base_url", "localhost:9000"))).key,
        "stream.base_url"
    );
    assert_eq!(
        err(base().merge(("stream.base_url", "ftp://x"))).key,
        "stream.base_url"
    );
    let e = err(base().merge(("stream.base_url", "http://127.0.0.1:8080/api/")));
    assert_eq!(e.key, "stream.base_url");
    assert!(e.problem.contains("stream-js reads STREAM_BASE_URL"), "{e}");
    // What the upstream client could not parse, or a port it could not use, stops start-up
    // here instead of panicking later.
    for bad in [
        "https://a|b",
        "https://[::1",
        "https://host:abc",
        "http://host:0",
    ] {
        assert_eq!(
            err(base().merge(("stream.base_url", bad))).key,
            "stream.base_url",
            "{bad}"
        );
    }
    let c =
        Config::from_figment(&base().merge(("stream.base_url", "http://127.0.0.1:9/"))).unwrap();
    assert_eq!(c.stream.base_url, "http://127.0.0.1:9");
}

#[test]
fn a_base_url_that_is_the_gateways_own_listen_address_is_refused() {
    let with = |listen: &str, url: &str| {
        Config::from_figment(
            &base()
                .merge(("server.listen", listen))
                .merge(("stream.base_url", url)),
        )
    };
    for (listen, url) in [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("127.0.0.1:8080", "http://localhost:8080/"),
        ("127.0.0.1:8080", "http://LOCALHOST.:8080"),
        ("127.0.0.1:8080", "http://0.0.0.0:8080"),
        ("127.0.0.1:8080", "http://[::1]:8080"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0:443", "https://gateway.localhost"),
        ("[::]:80", "http://127.0.0.1"),
        ("10.0.0.5:9000", "http://10.0.0.5:9000"),
    ] {
        let e = with(listen, url).unwrap_err();
        assert_eq!(e.key, "stream.base_url", "{listen} {url}");
        assert!(e.problem.contains("own address"), "{e}");
        assert!(e.problem.contains("STREAM_BASE_URL"), "{e}");
    }
    // The other services' URLs too.
    let e = err(base()
        .merge(("server.listen", "127.0.0.1:8080"))
        .merge(("stream.analytics_base_url", "http://localhost:8080")));
    assert_eq!(e.key, "stream.analytics_base_url");
    for (listen, url) in [
        ("127.0.0.1:8080", "http://127.0.0.1:9000"),
        ("127.0.0.1:8080", "http://stream-emulator:8080"),
        ("10.0.0.5:8080", "http://10.0.0.6:8080"),
        ("127.0.0.1:443", "https://us-east-api.stream-io-api.com"),
        ("127.0.0.1:0", "http://127.0.0.1:8080"),
    ] {
        assert!(with(listen, url).is_ok(), "{listen} {url}");
    }
}

#[test]
fn analytics_and_personalization_hosts_default_from_the_region_and_follow_a_base_url() {
    let c = Config::from_figment(&base().merge(("stream.region", "tokyo"))).unwrap();
    assert_eq!(
        c.stream.analytics_base_url,
        "https://analytics.stream-io-api.com"
    );
    assert_eq!(
        c.stream.personalization_base_url,
        "https://tokyo-personalization.stream-io-api.com"
    );
    let c =
        Config::from_figment(&base().merge(("stream.base_url", "http://127.0.0.1:9/"))).unwrap();
    assert_eq!(c.stream.analytics_base_url, "http://127.0.0.1:9");
    assert_eq!(c.stream.personalization_base_url, "http://127.0.0.1:9");
    let c = Config::from_figment(
        &base()
            .merge(("stream.base_url", "http://127.0.0.1:9"))
            .merge(("stream.analytics_base_url", "http://127.0.0.1:10/"))
            .merge(("stream.personalization_base_url", "https://p.example")),
    )
    .unwrap();
    assert_eq!(c.stream.base_url, "http://127.0.0.1:9");
    assert_eq!(c.stream.analytics_base_url, "http://127.0.0.1:10");
    assert_eq!(c.stream.personalization_base_url, "https://p.example");
    for key in [
        "stream.analytics_base_url",
        "stream.personalization_base_url",
    ] {
        assert_eq!(err(base().merge((key, "http://x/api"))).key, key);
        let emu = base()
            .merge(("stream.emulator", true))
            .merge((key, "http://127.0.0.1:9"));
        assert_eq!(err(emu).key, key);
    }
}

#[test]
fn the_healthcheck_probes_the_configured_listener_on_loopback_when_unspecified() {
    let probe = |f: Figment| probe_addr(&f).map(|a| a.to_string());
    let defaults = Figment::from(Serialized::defaults(FileConfig::default()));
    // No secret is needed to probe.
    assert_eq!(probe(defaults.clone()).unwrap(), "127.0.0.1:8080");
    assert_eq!(
        probe(defaults.clone().merge(("server.listen", "0.0.0.0:9001"))).unwrap(),
        "127.0.0.1:9001"
    );
    assert_eq!(
        probe(defaults.clone().merge(("server.listen", "[::]:9001"))).unwrap(),
        "[::1]:9001"
    );
    assert_eq!(
        probe(defaults.clone().merge(("server.listen", "10.1.2.3:9001"))).unwrap(),
        "10.1.2.3:9001"
    );
    let e = probe_addr(&defaults.clone().merge(("server.listen", "nowhere"))).unwrap_err();
    assert_eq!(e.key, "server.listen");
    let e = probe_addr(&defaults.merge(("server.nope", 1))).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn the_file_in_use_is_the_flag_then_gateway_config_then_the_default_when_present() {
    Jail::expect_with(|jail| {
        assert_eq!(file_in_use(None), None);
        std::fs::create_dir("config").unwrap();
        jail.create_file(DEFAULT_FILE, "")?;
        assert_eq!(file_in_use(None), Some(PathBuf::from(DEFAULT_FILE)));
        jail.set_env("GATEWAY_CONFIG", "env.toml");
        assert_eq!(file_in_use(None), Some(PathBuf::from("env.toml")));
        assert_eq!(
            file_in_use(Some(Path::new("flag.toml"))),
            Some(PathBuf::from("flag.toml"))
        );
        Ok(())
    });
}

#[test]
fn lists_and_maps_can_be_given_in_the_environment_as_production_md_shows() {
    Jail::expect_with(|jail| {
        jail.set_env("STREAM_API_KEY", "key");
        jail.set_env("STREAM_API_SECRET", "s3cr3t-value");
        jail.set_env("GATEWAY_UPSTREAM__TIMEOUT_MS", "2000");
        jail.set_env("GATEWAY_TOKENS__ALLOW", "[feed/read, feed/write]");
        jail.set_env("GATEWAY_EMULATOR__FEED_GROUPS", "{digest = \"aggregated\"}");
        jail.set_env("GATEWAY_CALLERS__SERVICE__BATCH__RATE", "5");
        let c = Config::load(None).unwrap();
        assert_eq!(c.upstream.timeout, Duration::from_millis(2000));
        assert_eq!(c.tokens.allow.len(), 2);
        assert_eq!(
            c.emulator.feed_groups.kind("digest"),
            stream_emulator::FeedKind::Aggregated
        );
        let callers = c.callers.unwrap();
        assert_eq!(callers.services[0].name, "batch");
        jail.set_env("GATEWAY_EMULATOR__FEED_GROUPS", "");
        jail.set_env("GATEWAY_EMULATOR__FEED_GROUPS__DIGEST", "notification");
        let c = Config::load(None).unwrap();
        assert_eq!(
            c.emulator.feed_groups.kind("digest"),
            stream_emulator::FeedKind::Notification
        );
        Ok(())
    });
}

#[test]
fn accepted_api_keys_default_to_none_and_must_be_printable() {
    assert!(Config::from_figment(&base())
        .unwrap()
        .stream
        .accepted_api_keys
        .is_empty());
    let c = Config::from_figment(
        &base().merge(("stream.accepted_api_keys", vec!["placeholder", "dev-key"])),
    )
    .unwrap();
    assert_eq!(c.stream.accepted_api_keys, ["placeholder", "dev-key"]);
    for bad in ["a b", ""] {
        let e = err(base().merge(("stream.accepted_api_keys", vec![bad])));
        assert_eq!(e.key, "stream.accepted_api_keys");
    }
}

#[test]
fn zero_timeouts_are_refused_by_name() {
    for key in [
        "server.header_read_timeout_ms",
        "server.idle_timeout_ms",
        "server.max_connections",
        "upstream.timeout_ms",
        "upstream.connect_timeout_ms",
        "upstream.deadline_ms",
    ] {
        assert_eq!(err(base().merge((key, 0))).key, key);
    }
    assert_eq!(
        err(base().merge(("server.max_concurrency", 0))).key,
        "server.max_concurrency"
    );
}

#[test]
fn an_upstream_proxy_is_an_http_host_and_port() {
    assert_eq!(Config::from_figment(&base()).unwrap().upstream.proxy, None);
    let c = Config::from_figment(&base().merge(("upstream.proxy", "http://10.0.0.1:3128/")));
    assert_eq!(
        c.unwrap().upstream.proxy.as_deref(),
        Some("http://10.0.0.1:3128")
    );
    for bad in [
        "10.0.0.1:3128",
        "https://proxy:3128",
        "socks5://proxy:1080",
        "http://proxy",
        "http://proxy:0",
        "http://user:pass@proxy:3128",
        "http://proxy:3128/path",
    ] {
        assert_eq!(
            err(base().merge(("upstream.proxy", bad))).key,
            "upstream.proxy",
            "{bad}"
        );
    }
}

#[test]
fn a_wrong_type_or_unknown_key_names_the_key() {
    assert_eq!(
        err(base().merge(("upstream.timeout_ms", "soon"))).key,
        "upstream.timeout_ms"
    );
    assert_eq!(
        err(base().merge(("stream.batch_auth", "oauth"))).key,
        "stream.batch_auth"
    );
    assert!(err(base().merge(("upstream.timeout", 5)))
        .problem
        .contains("timeout"));
}

#[test]
fn the_emulator_generates_credentials_and_refuses_a_base_url() {
    let f =
        Figment::from(Serialized::defaults(FileConfig::default())).merge(("stream.emulator", true));
    let c = Config::from_figment(&f).unwrap();
    assert!(c.stream.emulator);
    assert!(c.stream.api_key.starts_with("emu"));
    let e = err(f.merge(("stream.base_url", "http://127.0.0.1:1")));
    assert_eq!(e.key, "stream.base_url");
}

#[test]
fn the_emulator_makes_up_a_numeric_app_id_unless_one_is_given() {
    let f =
        Figment::from(Serialized::defaults(FileConfig::default())).merge(("stream.emulator", true));
    let made_up = Config::from_figment(&f).unwrap().stream.app_id.unwrap();
    assert!(made_up.bytes().all(|b| b.is_ascii_digit()), "{made_up}");
    let given = Config::from_figment(&f.merge(("stream.app_id", "1234"))).unwrap();
    assert_eq!(given.stream.app_id.as_deref(), Some("1234"));
}

#[test]
fn the_emulators_bounds_default_to_the_documented_values_and_refuse_zero() {
    let c = Config::from_figment(&base()).unwrap();
    assert_eq!(
        c.emulator.bounds,
        stream_emulator::Bounds {
            max_activities: 1_000_000,
            max_request_log: 10_000,
            max_import_bytes: 64 << 20,
        }
    );
    let c = Config::from_figment(&base().merge(("emulator.max_request_log", 5))).unwrap();
    assert_eq!(c.emulator.bounds.max_request_log, 5);
    assert_eq!(c.emulator.data_dir, None);
    let c = Config::from_figment(&base().merge(("emulator.data_dir", ".stream"))).unwrap();
    assert_eq!(c.emulator.data_dir, Some(".stream".into()));
    for key in [
        "emulator.max_activities",
        "emulator.max_request_log",
        "emulator.max_import_bytes",
    ] {
        assert_eq!(err(base().merge((key, 0))).key, key);
    }
}

#[test]
fn the_realtime_listener_defaults_to_local_faye_and_can_be_turned_off() {
    let c = Config::from_figment(&base()).unwrap();
    assert_eq!(
        c.emulator.realtime_listen,
        Some("127.0.0.1:9999".parse().unwrap())
    );
    let off = Config::from_figment(&base().merge(("emulator.realtime_listen", ""))).unwrap();
    assert_eq!(off.emulator.realtime_listen, None);
    assert_eq!(
        err(base().merge(("emulator.realtime_listen", "localhost"))).key,
        "emulator.realtime_listen"
    );
    assert_eq!(
        EmulatorSettings::default().realtime_listen,
        c.emulator.realtime_listen
    );
}

#[test]
fn the_emulator_refuses_a_secret_without_its_prefix_naming_where_it_came_from() {
    Jail::expect_with(|jail| {
        jail.create_file("gw.toml", "[stream]\napi_secret = \"real-from-file\"\n")?;
        jail.create_file("secret.txt", "real-from-secret-file\n")?;
        let emulated = |f: Figment| Config::from_figment(&f.merge(("stream.emulator", true)));
        jail.set_env("STREAM_API_SECRET", "real-from-env");
        let e = emulated(figment(None)).unwrap_err();
        assert_eq!(e.key, "stream.api_secret");
        assert!(e.problem.contains("STREAM_API_SECRET"), "{e}");
        assert!(!e.to_string().contains("real-from-env"), "{e}");

        jail.clear_env();
        jail.set_env("STREAM_API_SECRET_FILE", "secret.txt");
        let e = emulated(figment(None)).unwrap_err();
        assert_eq!(e.key, "stream.api_secret_file");
        assert!(e.problem.contains("STREAM_API_SECRET_FILE"), "{e}");
        assert!(!e.to_string().contains("real-from-secret-file"), "{e}");

        jail.clear_env();
        let e = emulated(figment(Some(Path::new("gw.toml")))).unwrap_err();
        assert_eq!(e.key, "stream.api_secret");
        assert!(e.problem.contains("gw.toml"), "{e}");
        assert!(!e.to_string().contains("real-from-file"), "{e}");

        jail.set_env("STREAM_API_SECRET", "emulator-anything");
        let c = emulated(figment(None)).unwrap();
        assert_eq!(c.stream.api_secret.expose(), "emulator-anything");
        // Without the emulator, any secret is taken.
        jail.set_env("STREAM_API_SECRET", "real-from-env");
        assert!(Config::from_figment(&figment(None).merge(("stream.api_key", "k"))).is_ok());
        Ok(())
    });
}

#[test]
fn file_then_gateway_env_then_stream_env_override_in_order() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gw.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            [stream]
            api_key = "from-file"
            api_secret = "file-secret"
            region = "singapore"
            [upstream]
            timeout_ms = 1500
            "#,
        )?;
        jail.set_env("GATEWAY_UPSTREAM__TIMEOUT_MS", "2500");
        jail.set_env("GATEWAY_SERVER__MAX_BODY_BYTES", "1000");
        jail.set_env("STREAM_API_KEY", "from-env");
        jail.set_env("STREAM_REGION", "tokyo");
        let c = Config::load(Some(Path::new("gw.toml"))).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.upstream.timeout, Duration::from_millis(2500));
        assert_eq!(c.server.max_body_bytes, 1000);
        assert_eq!(c.stream.api_key, "from-env");
        assert_eq!(c.stream.api_secret.expose(), "file-secret");
        assert_eq!(c.stream.base_url, "https://tokyo-api.stream-io-api.com");
        Ok(())
    });
}

#[test]
fn the_secret_can_come_from_a_file_and_its_trailing_newline_is_dropped() {
    Jail::expect_with(|jail| {
        jail.create_file("secret.txt", "from-a-file\n")?;
        jail.set_env("STREAM_API_KEY", "k");
        jail.set_env("STREAM_API_SECRET_FILE", "secret.txt");
        let c = Config::load(None).unwrap();
        assert_eq!(c.stream.api_secret.expose(), "from-a-file");
        jail.set_env("STREAM_API_SECRET_FILE", "missing.txt");
        let e = Config::load(None).unwrap_err();
        assert_eq!(e.key, "stream.api_secret_file");
        Ok(())
    });
}

#[test]
fn numeric_looking_credentials_stay_strings() {
    Jail::expect_with(|jail| {
        jail.set_env("STREAM_API_KEY", "12345");
        jail.set_env("STREAM_API_SECRET", "0123");
        jail.set_env("STREAM_APP_ID", "1234");
        let c = Config::load(None).unwrap();
        assert_eq!(c.stream.api_key, "12345");
        assert_eq!(c.stream.api_secret.expose(), "0123");
        assert_eq!(c.stream.app_id.as_deref(), Some("1234"));
        jail.set_env("GATEWAY_STREAM__APP_ID", "99");
        jail.set_env("STREAM_APP_ID", "");
        // STREAM_* wins over GATEWAY_STREAM__*; an empty value counts as unset.
        assert_eq!(Config::load(None).unwrap().stream.app_id, None);
        Ok(())
    });
}

#[test]
fn gateway_config_names_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "other.toml",
            "[stream]\napi_key = \"k\"\napi_secret = \"s\"\nregion = \"ohio\"\n",
        )?;
        jail.set_env("GATEWAY_CONFIG", "other.toml");
        let c = Config::load(None).unwrap();
        assert_eq!(c.stream.region, "ohio");
        Ok(())
    });
}

#[test]
fn the_token_policy_defaults_to_read_only_feed_and_follower_tokens() {
    let t = Config::from_figment(&base()).unwrap().tokens;
    assert_eq!((t.default_ttl_s, t.max_ttl_s), (3600, 86_400));
    assert_eq!(
        t.allow,
        vec![
            (Resource::Feed, Action::Read),
            (Resource::Follower, Action::Read)
        ]
    );
    assert!(t.user_tokens && !t.wildcards);
    assert!(t.identity_header.is_none() && t.cors_origins.is_empty());
}

#[test]
fn a_bad_token_policy_names_its_key() {
    assert_eq!(
        err(base().merge(("tokens.allow", ["feed:read"]))).key,
        "tokens.allow"
    );
    assert_eq!(
        err(base().merge(("tokens.allow", ["url/read"]))).key,
        "tokens.allow"
    );
    assert_eq!(
        err(base().merge(("tokens.cors_origins", ["*"]))).key,
        "tokens.cors_origins"
    );
    assert_eq!(
        err(base().merge(("tokens.cors_origins", ["https://a.example/path"]))).key,
        "tokens.cors_origins"
    );
    assert_eq!(
        err(base().merge(("tokens.identity_header", "bad header"))).key,
        "tokens.identity_header"
    );
    assert_eq!(
        err(base().merge(("tokens.identity_header", "X-User-Id"))).key,
        "tokens.feed_groups",
        "an identity header needs the feed groups"
    );
    assert_eq!(
        err(base().merge(("tokens.feed_groups", ["user", "no:colon"]))).key,
        "tokens.feed_groups"
    );
    assert_eq!(
        err(base().merge(("tokens.max_ttl_s", 10))).key,
        "tokens.max_ttl_s"
    );
    assert_eq!(
        err(base().merge(("tokens.default_ttl_s", 0))).key,
        "tokens.default_ttl_s"
    );
    let ok = base()
        .merge((
            "tokens.cors_origins",
            ["https://app.example.com", "http://localhost:3000"],
        ))
        .merge(("tokens.identity_header", "X-User-Id"))
        .merge(("tokens.feed_groups", ["user", "timeline"]));
    let t = Config::from_figment(&ok).unwrap().tokens;
    assert_eq!(t.identity_header.unwrap().as_str(), "x-user-id");
    assert_eq!(t.cors_origins.len(), 2);
}

#[test]
fn every_resource_and_action_a_frontend_token_may_name_can_be_allowed() {
    let resources = [
        "feed",
        "follower",
        "activities",
        "feed_targets",
        "reactions",
        "collections",
        "users",
        "personalization",
        "analytics",
        "*",
    ];
    let pairs: Vec<String> = resources
        .iter()
        .flat_map(|r| ["read", "write", "delete", "*"].map(|a| format!("{r}/{a}")))
        .collect();
    let t = Config::from_figment(&base().merge(("tokens.allow", &pairs)))
        .unwrap()
        .tokens;
    let back: Vec<String> = t
        .allow
        .iter()
        .map(|(r, a)| format!("{}/{}", r.as_str(), a.as_str()))
        .collect();
    assert_eq!(back, pairs);
}

#[test]
fn a_bad_allowed_pair_lists_what_may_be_named() {
    let e = err(base().merge(("tokens.allow", ["feed/read", "url/read"])));
    assert_eq!(
        e.to_string(),
        "configuration error: tokens.allow: \"url/read\" is not resource/action with a \
         resource in feed, follower, activities, feed_targets, reactions, collections, users, \
         personalization, analytics, * and an action in read, write, delete, *"
    );
    for bad in ["feed", "feed/", "/read", "feed/read/x", "Feed/read"] {
        assert_eq!(
            err(base().merge(("tokens.allow", [bad]))).key,
            "tokens.allow"
        );
    }
}

#[test]
fn a_cors_origin_is_a_scheme_and_host_with_nothing_after() {
    for ok in ["https://app.example.com", "http://localhost:3000"] {
        assert_eq!(parse_origin(ok).unwrap(), ok);
    }
    assert_eq!(parse_origin("*"), Err(OriginError::Wildcard));
    for bad in [
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "https://app.example.com?x",
        "https://app example.com",
        "https://app.example.com\u{7f}",
    ] {
        assert_eq!(
            parse_origin(bad),
            Err(OriginError::NotAnOrigin(bad.to_owned())),
            "{bad}"
        );
    }
    assert_eq!(
        err(base().merge(("tokens.cors_origins", ["https://a.example/"]))).to_string(),
        "configuration error: tokens.cors_origins: \"https://a.example/\" is not an origin \
         such as https://app.example.com"
    );
    assert_eq!(
        err(base().merge(("tokens.cors_origins", ["*"]))).problem,
        "list the origins explicitly: * would let any web site ask for tokens"
    );
}

#[test]
fn emulator_feed_groups_are_read_and_a_bad_kind_or_slug_is_named() {
    use stream_emulator::FeedKind;
    let c = Config::from_figment(&base().merge(("emulator.feed_groups.timeline", "aggregated")))
        .unwrap();
    let kinds = &c.emulator.feed_groups;
    assert_eq!(kinds.kind("timeline"), FeedKind::Aggregated);
    assert_eq!(
        kinds.kind("notification"),
        FeedKind::Notification,
        "defaults stay"
    );
    assert_eq!(kinds.kind("user"), FeedKind::Flat);
    let e = err(base().merge(("emulator.feed_groups.timeline", "ranked")));
    assert_eq!(e.key, "emulator.feed_groups.timeline");
    let e = err(base().merge(("emulator.feed_groups.bad-slug", "flat")));
    assert_eq!(e.key, "emulator.feed_groups.bad-slug");
}

#[test]
fn server_workers_default_to_one_per_cpu_and_zero_is_refused() {
    let c = Config::from_figment(&base()).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(c.server.workers, cpus);
    let c = Config::from_figment(&base().merge(("server.workers", 3))).unwrap();
    assert_eq!(c.server.workers, 3);
    assert_eq!(
        err(base().merge(("server.workers", 0))).key,
        "server.workers"
    );
}

#[test]
fn the_kubernetes_example_memory_limit_covers_the_sizing_formula() {
    let readme = include_str!("../../docs/deployment.md");
    let start = readme
        .find("kind: Deployment")
        .expect("the Kubernetes example");
    let example = &readme[start..];
    let example = &example[..example.find("```").unwrap()];
    let mut f = base();
    for line in example.lines() {
        let Some(rest) = line.trim().strip_prefix("- { name: GATEWAY_") else {
            continue;
        };
        let (name, value) = rest.split_once(", value: ").unwrap();
        let key = name.to_ascii_lowercase().replacen("__", ".", 1);
        let value = value.trim_end_matches(" }").trim_matches('"');
        f = match value.parse::<u64>() {
            Ok(n) => f.merge((key, n)),
            Err(_) => f.merge((key, value)),
        };
    }
    let limit = example
        .split("limits: { memory: ")
        .nth(1)
        .and_then(|l| l.split("Mi").next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a memory limit in Mi");
    let c = Config::from_figment(&f).unwrap();
    assert!(
        c.server.max_concurrency < 1024,
        "the example sets its own limits"
    );
    let bound = c.memory_bound_bytes();
    assert!(limit << 20 >= bound, "{limit} Mi < {} Mi", bound >> 20);
    // The defaults need far more: a container limit needs the limits set down.
    assert!(Config::from_figment(&base()).unwrap().memory_bound_bytes() > 8 << 30);
}

#[test]
fn webhook_routes_come_from_file_and_env_and_a_bad_one_names_its_key() {
    let c = Config::from_figment(&base()).unwrap();
    assert!(c.webhooks.routes.is_empty(), "no route unless configured");
    assert_eq!(c.stream.previous_secret_grace, Duration::from_secs(300));
    Jail::expect_with(|jail| {
        jail.create_file(
            "gw.toml",
            "[stream]\napi_key = \"k\"\napi_secret = \"s\"\n\
             [webhooks.routes.feeds]\npath = \"/webhooks/feeds\"\n\
             forward_to = \"https://feeds-events.internal/hooks\"\n",
        )?;
        jail.set_env("GATEWAY_WEBHOOKS__ROUTES__CHAT__PATH", "/webhooks/chat");
        jail.set_env(
            "GATEWAY_WEBHOOKS__ROUTES__CHAT__FORWARD_TO",
            "http://chat-events:8080/hooks",
        );
        jail.set_env("GATEWAY_WEBHOOKS__TIMEOUT_MS", "2000");
        jail.set_env("GATEWAY_STREAM__PREVIOUS_SECRET_GRACE_S", "60");
        let c = Config::load(Some(Path::new("gw.toml"))).unwrap();
        let names: Vec<_> = c.webhooks.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["chat", "feeds"]);
        assert_eq!(c.webhooks.routes[0].path, "/webhooks/chat");
        assert_eq!(c.webhooks.timeout, Duration::from_millis(2000));
        assert_eq!(c.stream.previous_secret_grace, Duration::from_secs(60));
        // Webhooks in flight and the answers remembered count in the memory bound.
        let without = Config::from_figment(&base()).unwrap().memory_bound_bytes();
        assert_eq!(
            c.memory_bound_bytes() - without,
            1024 * 2 * (4 << 20) + 10_000 * (64 << 10)
        );
        jail.set_env("GATEWAY_WEBHOOKS__ROUTES__CHAT__PATH", "/tokens");
        let e = Config::load(Some(Path::new("gw.toml"))).unwrap_err();
        assert_eq!(e.key, "webhooks.routes.chat.path");
        jail.set_env("GATEWAY_WEBHOOKS__ROUTES__CHAT__PATH", "/webhooks/chat");
        jail.set_env("GATEWAY_STREAM__PREVIOUS_SECRET_GRACE_S", "86401");
        let e = Config::load(Some(Path::new("gw.toml"))).unwrap_err();
        assert_eq!(e.key, "stream.previous_secret_grace_s");
        Ok(())
    });
}

#[test]
fn callers_are_off_without_the_section_and_read_from_file_and_env() {
    assert!(Config::from_figment(&base()).unwrap().callers.is_none());
    Jail::expect_with(|jail| {
        jail.create_file(
            "gw.toml",
            "[stream]\napi_key = \"k\"\napi_secret = \"s\"\n[callers]\n",
        )?;
        let c = Config::load(Some(Path::new("gw.toml"))).unwrap();
        assert!(
            c.callers.unwrap().services.is_empty(),
            "an empty section is on"
        );
        jail.set_env("GATEWAY_CALLERS__IDENTITY_HEADER", "X-Caller");
        jail.set_env("GATEWAY_CALLERS__SERVICE__BATCH__RATE", "5");
        jail.set_env(
            "GATEWAY_CALLERS__SERVICE__INDEXER__ALLOW",
            "[feed.read, reactions.*]",
        );
        let c = Config::load(Some(Path::new("gw.toml"))).unwrap();
        let callers = c.callers.unwrap();
        assert_eq!(callers.identity_header.unwrap().as_str(), "x-caller");
        assert_eq!(callers.services[0].name, "batch");
        assert_eq!(callers.services[0].rate, Some((5.0, 5)));
        let allowed = callers.services[1].allow.iter().filter(|a| **a).count();
        assert!(allowed > 1, "feed.read and the reactions");
        jail.set_env("GATEWAY_CALLERS__SERVICE__BATCH__RATE", "0");
        let e = Config::load(Some(Path::new("gw.toml"))).unwrap_err();
        assert_eq!(
            e.to_string().split(':').nth(1).unwrap().trim(),
            "callers.service.batch.rate"
        );
        Ok(())
    });
    let e = err(base().merge(("callers.service.web.allow", ["feed.raed"])));
    assert_eq!(e.key, "callers.service.web.allow");
    let e = err(base().merge(("callers.service.web.cidrs", ["10.0.0.0/99"])));
    assert_eq!(e.key, "callers.service.web.cidrs");
    let e = err(base().merge(("callers.service.web.speed", 3)));
    assert!(e.key.starts_with("callers"), "{e}");
}

#[test]
fn a_config_error_never_shows_the_secret() {
    let e = err(base().merge(("stream.region", "mars")));
    assert!(!format!("{e} {e:?}").contains("s3cr3t-value"));
    let c = Config::from_figment(&base()).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn telemetry_is_off_by_default_and_a_bad_otlp_endpoint_is_named() {
    let c = Config::from_figment(&base()).unwrap();
    assert!(c.telemetry.otlp_endpoint.is_none());
    assert_eq!(c.telemetry.service_name, "stream-gateway");
    let url = "http://127.0.0.1:4318/v1/traces";
    let c = Config::from_figment(&base().merge(("telemetry.otlp_endpoint", url))).unwrap();
    assert_eq!(c.telemetry.otlp_endpoint.unwrap().to_string(), url);
    for bad in [
        "collector:4318/v1/traces",
        "ftp://collector/v1/traces",
        "http://collector:4318",
        "http://collector:4318/",
        "http://user:pw@collector/v1/traces",
        "http://[::1/v1/traces",
    ] {
        let e = err(base().merge(("telemetry.otlp_endpoint", bad)));
        assert_eq!(e.key, "telemetry.otlp_endpoint", "{bad}");
    }
    for key in [
        "telemetry.otlp_timeout_ms",
        "telemetry.batch_delay_ms",
        "telemetry.max_batch_spans",
        "telemetry.max_queue_spans",
    ] {
        assert_eq!(err(base().merge((key, 0))).key, key);
    }
    let e = err(base().merge(("telemetry.max_batch_spans", 4096)));
    assert_eq!(e.key, "telemetry.max_batch_spans");
    let e = err(base().merge(("telemetry.service_name", " ")));
    assert_eq!(e.key, "telemetry.service_name");
}

#[test]
fn the_public_and_admin_listeners_are_off_unless_named_and_take_their_own_limits() {
    let c = Config::from_figment(&base()).unwrap();
    assert!(c.server.public.is_none() && c.server.admin.is_none());
    assert_eq!(c.server.allowed_hosts, Some(vec![]));
    let c = Config::from_figment(
        &base()
            .merge(("server.public_listen", "0.0.0.0:8443"))
            .merge(("server.public_max_connections", 10))
            .merge(("server.admin_listen", "0.0.0.0:9090"))
            .merge(("server.allowed_hosts", ["Stream-Gateway", "gw.internal."])),
    )
    .unwrap();
    let public = c.server.public.unwrap();
    assert_eq!(public.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(public.max_connections, 10);
    assert_eq!(public.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.server.admin.unwrap().max_connections, 8);
    assert_eq!(
        c.server.allowed_hosts,
        Some(vec!["stream-gateway".into(), "gw.internal".into()])
    );
    let star = base().merge(("server.allowed_hosts", ["a", "*"]));
    assert_eq!(
        Config::from_figment(&star).unwrap().server.allowed_hosts,
        None
    );
    // The extra connections count in the memory bound.
    let plain = Config::from_figment(&base()).unwrap().memory_bound_bytes();
    assert_eq!(
        Config::from_figment(&base().merge(("server.admin_listen", "127.0.0.1:9090")))
            .unwrap()
            .memory_bound_bytes(),
        plain + 8 * CONNECTION_MEMORY_BYTES
    );
}

#[test]
fn a_listener_on_a_taken_port_or_a_bad_host_name_is_refused() {
    let e = err(base().merge(("server.admin_listen", "0.0.0.0:8080")));
    assert_eq!(e.key, "server.admin_listen");
    let e = err(base()
        .merge(("server.public_listen", "0.0.0.0:9000"))
        .merge(("server.admin_listen", "127.0.0.1:9000")));
    assert_eq!(e.key, "server.admin_listen");
    let e = err(base().merge(("server.public_listen", "nowhere")));
    assert_eq!(e.key, "server.public_listen");
    for bad in ["gw:8080", "http://gw", "", "a b"] {
        let e = err(base().merge(("server.allowed_hosts", [bad])));
        assert_eq!(e.key, "server.allowed_hosts", "{bad}");
    }
    let e = err(base()
        .merge(("server.public_listen", "0.0.0.0:9000"))
        .merge(("server.public_idle_timeout_ms", 0)));
    assert_eq!(e.key, "server.public_idle_timeout_ms");
}

/// The one line of a configuration error, checked to hold none of `secrets`.
fn error_line(secrets: &[&str]) -> String {
    let e = Config::load(Some(Path::new("gw.toml")))
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    for s in secrets {
        assert!(!e.contains(s), "{s} in {e}");
    }
    e
}

#[test]
fn configuration_errors_name_key_and_line_and_never_quote_the_source_or_a_secret() {
    Jail::expect_with(|jail| {
        let head = "[stream]\napi_key = \"k\"\n";
        // An unclosed quote: toml's message quotes the line.
        jail.create_file(
            "gw.toml",
            &format!("{head}api_secret = \"s3cr3t-unclosed\n"),
        )?;
        let e = error_line(&["s3cr3t", "unclosed"]);
        assert!(e.contains("stream.api_secret"), "{e}");
        assert!(e.contains("gw.toml line 3"), "{e}");
        // A number where a string goes: the number is the secret.
        jail.create_file("gw.toml", &format!("{head}api_secret = 31415926535\n"))?;
        let e = error_line(&["31415926535"]);
        assert_eq!(
            e,
            "configuration error: stream.api_secret: expected a string, found an integer \
             (gw.toml line 3)"
        );
        // A bad escape in a Redis URL with its password.
        jail.create_file(
            "gw.toml",
            &format!("{head}api_secret = \"x\"\n[callers]\nredis_url = \"redis://u:hunter2\\q@r:6379\"\n"),
        )?;
        let e = error_line(&["hunter2", "redis://"]);
        assert!(
            e.contains("callers.redis_url") && e.contains("line 5"),
            "{e}"
        );
        // A proxy or collector URL whose shape is wrong is not repeated: it may hold a password.
        jail.create_file(
            "gw.toml",
            &format!("{head}api_secret = \"x\"\n[upstream]\nproxy = \"http://u:hunter2@p:3128\"\n"),
        )?;
        assert!(error_line(&["hunter2"]).contains("upstream.proxy"));
        jail.create_file(
            "gw.toml",
            &format!("{head}api_secret = \"x\"\n[telemetry]\notlp_endpoint = \"ftp://u:hunter2@c/v1/traces\"\n"),
        )?;
        assert!(error_line(&["hunter2"]).contains("telemetry.otlp_endpoint"));
        // From the environment: the variable is named, its value is not.
        jail.create_file("gw.toml", &format!("{head}api_secret = \"x\"\n"))?;
        jail.set_env("GATEWAY_SERVER__MAX_CONNECTIONS", "hunter2");
        let e = error_line(&["hunter2"]);
        assert!(e.contains("GATEWAY_SERVER__MAX_CONNECTIONS"), "{e}");
        Ok(())
    });
}

#[test]
fn a_secret_file_is_a_small_regular_file_and_anything_else_is_named_and_refused() {
    let dir = std::env::temp_dir().join(format!("gw-secret-{}", random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge");
    std::fs::write(&huge, "s".repeat(100_000)).unwrap();
    let e = secret_from_file(&huge).unwrap_err();
    assert!(e.contains("larger than 4096 bytes"), "{e}");
    let e = secret_from_file(Path::new("/dev/zero")).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = secret_from_file(&fifo).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(secret_from_file(&dir)
        .unwrap_err()
        .contains("not a regular file"));
    // A symlink to a small regular file is read, as Kubernetes' volumes are.
    std::fs::write(dir.join("real"), "s3cr3t\n").unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    assert_eq!(secret_from_file(&dir.join("link")).unwrap(), "s3cr3t");
    std::fs::write(dir.join("bad"), [0xff, 0xfe]).unwrap();
    assert!(secret_from_file(&dir.join("bad"))
        .unwrap_err()
        .contains("UTF-8"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn healthcheck_probes_the_admin_listener_when_there_is_one() {
    let f = base()
        .merge(("server.listen", "0.0.0.0:8080"))
        .merge(("server.admin_listen", "0.0.0.0:9090"));
    assert_eq!(probe_addr(&f).unwrap().to_string(), "127.0.0.1:9090");
    let f = base().merge(("server.listen", "0.0.0.0:8080"));
    assert_eq!(probe_addr(&f).unwrap().to_string(), "127.0.0.1:8080");
}

#[test]
fn every_entry_of_the_reload_table_is_a_key_or_section_the_configuration_has() {
    let mut f = FileConfig::default();
    f.tokens.oidc = Some(Default::default());
    f.callers = Some(Default::default());
    let v = serde_json::to_value(&f).unwrap();
    for (key, _) in RELOADS {
        let found = key.split('.').try_fold(&v, |v, k| v.get(k));
        assert!(
            found.is_some(),
            "RELOADS names {key}, which the configuration lacks"
        );
    }
}
