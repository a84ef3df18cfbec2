//! Docs that code owns are written from the code: `docs/endpoints.md` from the endpoint table.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the file; otherwise this test fails when it
//! differs from what the table says, so the reference cannot drift.

use std::fmt::Write as _;

use stream_gateway::stream::endpoint::{AuthKind, BodyKind, FeedScope, Idempotency, QueryRule};
use stream_gateway::stream::ENDPOINTS;

fn body(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::None => "none (not forwarded)",
        BodyKind::OptionalObject => "JSON, optional",
        BodyKind::Activities => "an activity, or `{\"activities\": [...]}`",
        BodyKind::Follow => "`{\"target\", \"activity_copy_limit\"?}`",
        BodyKind::ActivitiesUpdate => "`{\"activities\": [...]}`, each with `foreign_id` and `time`",
        BodyKind::PartialUpdate => "a change (`id`, or `foreign_id` + `time`; `set`, `unset`), or `{\"changes\": [...]}`",
        BodyKind::ToTargets => "`{\"foreign_id\", \"time\", \"new_targets\"?, \"added_targets\"?, \"removed_targets\"?}`, or a list",
        BodyKind::AddToMany => "`{\"activity\", \"feeds\"}`",
        BodyKind::FollowMany => "`[{\"source\", \"target\", \"activity_copy_limit\"?}]`",
        BodyKind::UnfollowMany => "`[{\"source\", \"target\", \"keep_history\"?}]`",
        BodyKind::Reaction => "a reaction (`target_feeds` checked)",
        BodyKind::ReactionUpdate => "`{\"data\"?, \"target_feeds\"?}` (`target_feeds` checked)",
        BodyKind::CollectionsUpsert => "`{\"data\": {\"<collection>\": [...]}}`",
        BodyKind::CollectionEntry => "a collection entry",
        BodyKind::CollectionEntryUpdate => "`{\"data\"}`",
        BodyKind::User => "a user",
        BodyKind::UserUpdate => "`{\"data\"}`",
        BodyKind::UsersBatch => "`{\"users\": [...], \"override\"?}`",
    }
}

fn query(rule: QueryRule) -> &'static str {
    match rule {
        QueryRule::FeedPage => "`limit`, `offset`, one direction of `id_*`",
        QueryRule::FollowPage => "`limit`, `offset` <= 400, `filter` feed ids",
        QueryRule::CopyLimit => "`activity_copy_limit` <= 1000",
        QueryRule::FollowStats => "`followers`, `following` feed ids; `*_slugs` slugs",
        QueryRule::None => "passed through",
    }
}

fn render() -> String {
    let mut s = String::from(
        "# Endpoints\n\n\
         <!-- Written from the endpoint table (src/stream/endpoint.rs) by tests/docs.rs: \
         `UPDATE_DOCS=1 cargo test --test docs`. Do not edit by hand. -->\n\n\
         Every path is under `/api/v1.0/`, exactly Stream's. The upstream credential is the \
         narrowest that covers the call. \"Retried\" says when a timeout, 502, 503 or 504 may \
         be retried without duplicating an effect (any request whose connection failed before \
         it was sent may be). What each check refuses, and why, is on the validation page.\n\n\
         | name | method | path | upstream credential | retried | body | query checks |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for e in &ENDPOINTS {
        let feed = match e.feed_scope {
            FeedScope::PathFeed => "`{slug}{user_id}`",
            FeedScope::All => "`*`",
        };
        let auth = match e.auth {
            AuthKind::Jwt => format!(
                "JWT `{}` / `{}` / {feed}",
                e.resource.as_str(),
                e.action.as_str()
            ),
            AuthKind::Application => {
                "HTTP Signature (or JWT `feed`/`follower` / `write` / `*` with `batch_auth = \"jwt\"`)"
                    .to_owned()
            }
        };
        let retried = match e.idempotency {
            Idempotency::Always => "yes",
            Idempotency::WithForeignIdAndTime => "when every activity has `foreign_id` and `time`",
            Idempotency::WithId => "when the body names every new object's `id`",
        };
        writeln!(
            s,
            "| `{}` | `{}` | `{}` | {auth} | {retried} | {} | {} |",
            e.name,
            e.method.as_str(),
            e.pattern,
            body(e.body),
            query(e.query)
        )
        .unwrap();
    }
    s
}

#[test]
fn the_endpoint_reference_is_what_the_table_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/endpoints.md");
    let want = render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/endpoints.md differs from the endpoint table: run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}

#[test]
fn the_readme_is_a_short_door_to_every_docs_page() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(
        readme.len() < 10 * 1024,
        "README.md is {} bytes",
        readme.len()
    );
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".md") {
            continue; // pictures the pages show
        }
        let page = std::fs::read_to_string(format!("{root}/docs/{name}")).unwrap();
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "docs/{name} is not linked from the README"
        );
        assert!(
            !page.contains("../shared") && !page.contains("/work/"),
            "docs/{name} names a path outside the repository"
        );
    }
}

/// The first fenced block of `lang` in a docs page.
fn fenced(page: &str, lang: &str) -> String {
    let start = page
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("no ```{lang} block"))
        + lang.len()
        + 4;
    let len = page[start..].find("\n```").expect("the block ends");
    page[start..start + len].to_owned()
}

/// YAML as JSON, by PyYAML (`python3-yaml`, scripts/system-packages).
fn yaml_to_json(yaml: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/system-packages)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the YAML does not parse (or python3-yaml is missing)"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
// figment::Jail's closure returns figment::Error, which is large; that is figment's type.
#[allow(clippy::result_large_err)]
fn the_webhooks_compose_example_parses_and_its_routes_validate() {
    let root = env!("CARGO_MANIFEST_DIR");
    let page = std::fs::read_to_string(format!("{root}/docs/webhooks.md")).unwrap();
    let compose = yaml_to_json(&fenced(&page, "yaml"));
    let gw = &compose["services"]["stream-gateway"];
    assert_eq!(
        gw["ports"],
        serde_json::json!(["8443:8081"]),
        "only the public listener is published"
    );
    let env = gw["environment"].as_object().unwrap();
    assert_eq!(env["GATEWAY_SERVER__PUBLIC_LISTEN"], "0.0.0.0:8081");
    for service in ["chat-events", "feeds-events"] {
        assert!(compose["services"][service].is_object(), "{service}");
        assert!(compose["services"][service].get("ports").is_none());
    }
    // The webhook keys, as the gateway reads them from the environment, validate.
    figment::Jail::expect_with(|jail| {
        for (k, v) in env
            .iter()
            .filter(|(k, _)| k.starts_with("GATEWAY_WEBHOOKS__"))
        {
            jail.set_env(k, v.as_str().unwrap());
        }
        let f = stream_gateway::config::with_env(
            figment::Figment::from(figment::providers::Serialized::defaults(
                stream_gateway::config::FileConfig::default(),
            ))
            .merge(("stream.api_key", "k"))
            .merge(("stream.api_secret", "s")),
        );
        let c = stream_gateway::config::Config::from_figment(&f).unwrap();
        let routes: Vec<_> = c
            .webhooks
            .routes
            .iter()
            .map(|r| (r.name.as_str(), r.path.as_str(), r.forward_to.to_string()))
            .collect();
        assert_eq!(
            routes,
            [
                (
                    "chat",
                    "/webhooks/chat",
                    "http://chat-events:8080/hooks".into()
                ),
                (
                    "feeds",
                    "/webhooks/feeds",
                    "http://feeds-events:8080/stream".into()
                ),
            ]
        );
        Ok(())
    });
}
