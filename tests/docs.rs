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

/// The `/api/v2/` section, from the generated route table.
fn render_v2() -> String {
    use stream_gateway::stream::v2::{Product, V2Method, SPEC_VERSION, V2_ROUTES};
    let mut s = format!(
        "\n## API v2\n\n\
         Stream's `/api/v2/` family (Feeds v3, Chat, Video, Moderation and the operations they \
         share), forwarded when `stream.v2 = true` to `stream.v2_base_url`; off, these paths \
         answer 404 saying so. The table is generated from Stream's server-side OpenAPI spec \
         {SPEC_VERSION} by `scripts/gen-v2-routes` ({} operations; docs/development.md says how to \
         regenerate it); a path or method not in it answers 404 (405) in Stream's v2 error shape \
         and is not sent.\n\n\
         - **Upstream credential**: the server token, claims exactly `{{\"server\": true}}` (no \
         `iat`, no `exp`), HS256 with the secret in force, as `Authorization: <JWT>` with \
         `Stream-Auth-Type: jwt` and the app's `api_key` in the query. Stream has nothing narrower \
         for server-side calls: `[callers]` allow lists are what narrows a service.\n\
         - **Names**: `<product>.<operationId>`; the product is the first segment after \
         `/api/v2/` when it is `chat`, `feeds`, `video` or `moderation`, else `common`. Allow \
         lists take a name, a product's family (`chat.*`), a product's reads (`chat.read`: its \
         `GET` operations) or `*`.\n\
         - **Retried**: `GET`, `PUT` and `DELETE` as on v1.0; `POST` and `PATCH` only when the \
         connection failed before anything was sent.\n\
         - **Checked**: path parameters are one non-empty segment without `/`, `\\`, control \
         characters, `.` or `..` once decoded; a body is JSON with each key once, within \
         `server.max_body_bytes` (a `GET` or `DELETE` body is dropped); the caller's \
         `Authorization`, `Stream-Auth-Type` and `api_key` are replaced. The rest is Stream's.\n",
        V2_ROUTES.len()
    );
    for p in Product::ALL {
        let rows: Vec<_> = V2_ROUTES.iter().filter(|r| r.product == p).collect();
        let reads = rows.iter().filter(|r| r.method == V2Method::Get).count();
        writeln!(
            s,
            "\n### {} ({} operations, {reads} in `{}.read`)\n\n| name | method | path |\n|---|---|---|",
            p.as_str(),
            rows.len(),
            p.as_str()
        )
        .unwrap();
        for r in rows {
            writeln!(
                s,
                "| `{}` | `{}` | `{}` |",
                r.name,
                r.method.as_str(),
                r.path
            )
            .unwrap();
        }
    }
    s
}

#[test]
fn the_endpoint_reference_is_what_the_table_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/endpoints.md");
    let want = render() + &render_v2();
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
