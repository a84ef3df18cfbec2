//! Docs that code owns are written from the code: `docs/endpoints.md` from the endpoint table.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the file; otherwise this test fails when it
//! differs from what the table says, so the reference cannot drift.

use std::fmt::Write as _;

use stream_gateway::stream::endpoint::{
    AuthKind, BodyKind, FeedScope, Host, Idempotency, QueryRule,
};
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
        BodyKind::Json => "JSON (Stream's service decides its shape)",
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
         Every path is exactly Stream's: the feeds API's under `/api/v1.0/` (shown without \
         it), sent to `stream.base_url`; the analytics and personalization paths under their \
         own prefix, sent to `stream.analytics_base_url` and `stream.personalization_base_url`. \
         The upstream credential is the narrowest that covers the call (on the analytics and \
         personalization hosts, the token the official clients send there). \"Retried\" says when a timeout, 502, 503 or 504 may \
         be retried without duplicating an effect (any request whose connection failed before \
         it was sent may be). What each check refuses, and why, is on the validation page.\n\n\
         | name | method | path | upstream credential | retried | body | query checks |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for e in &ENDPOINTS {
        let feed = match (e.host, e.feed_scope) {
            (Host::Analytics, _) => "`user_id` `*`",
            (Host::Personalization, _) => "`*`, `user_id` `*`",
            (Host::Api, FeedScope::PathFeed) => "`{slug}{user_id}`",
            (Host::Api, FeedScope::All) => "`*`",
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
            Idempotency::Never => "no",
        };
        let path = match e.host {
            Host::Api => e.pattern.to_owned(),
            h => format!("{}{}", h.prefix(), e.pattern),
        };
        writeln!(
            s,
            "| `{}` | `{}` | `{}` | {auth} | {retried} | {} | {} |",
            e.name,
            e.method.as_str(),
            path,
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
