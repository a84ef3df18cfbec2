//! Docs that code owns are written from the code: `docs/endpoints.md` from the endpoint table.
//! `UPDATE_DOCS=1 cargo test --test docs` rewrites the file; otherwise this test fails when it
//! differs from what the table says, so the reference cannot drift.

use std::fmt::Write as _;

use stream_wire::endpoint::{AuthKind, BodyKind, FeedScope, Host, Idempotency, QueryRule};
use stream_wire::ENDPOINTS;

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
         <!-- Written from the endpoint table (crates/stream-wire/src/endpoint.rs) by tests/docs.rs: \
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

/// The `/api/v2/` section, from the generated route table.
fn render_v2() -> String {
    use stream_wire::v2::{Product, V2Method, SPEC_VERSION, V2_ROUTES};
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
         `server.max_body_bytes` (a `GET` or `DELETE` body is dropped), except the uploads' \
         (`chat.UploadChannelFile`, `chat.UploadChannelImage`, `common.UploadFile`, \
         `common.UploadImage`), sent as `multipart/form-data` with their boundary and forwarded \
         as they came; the caller's `Authorization` and `Stream-Auth-Type` are replaced, and its \
         `api_key` too when it is the app's (another app's is refused: 401, code 2). The rest is \
         Stream's.\n",
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

/// `config/gateway.toml` with its commented-out keys (`# key = value`, `# [section]`) made live.
fn gateway_toml_uncommented(text: &str) -> String {
    text.lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix('#') else {
                return line.to_owned();
            };
            let rest = rest.trim_start();
            let name_end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let key_line = name_end > 0 && rest[name_end..].starts_with(" = ");
            let section = rest.starts_with('[') && rest.trim_end().ends_with(']');
            if key_line || section {
                rest.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

mod keys {
    use figment::error::Kind;
    use figment::providers::Serialized;
    use figment::value::{Dict, Value};
    use figment::Figment;
    use stream_gateway::config::FileConfig;

    const PROBE: &str = "zz_probe";

    /// What extracting the configuration says when `path` is given a key no code knows.
    fn probe(path: &[&str]) -> (Vec<String>, Kind) {
        let key = path
            .iter()
            .copied()
            .chain([PROBE])
            .collect::<Vec<_>>()
            .join(".");
        let f = Figment::from(Serialized::defaults(FileConfig::default())).merge((key, 1));
        let e = f
            .extract::<FileConfig>()
            .expect_err("a probe key is unknown");
        (e.path.clone(), e.kind.clone())
    }

    /// Every key the code reads, as dotted paths; a map's entries are `*`
    /// (`callers.service.*.rate`). Learned from the configuration's own refusals: a struct
    /// names its fields when given an unknown one, so keys added later are found too.
    pub(crate) fn known(path: &mut Vec<&'static str>, out: &mut Vec<String>) {
        let (at, kind) = probe(path);
        let here: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let is_struct = |at: &[String], kind: &Kind, depth: usize| {
            matches!(kind, Kind::UnknownField(name, _) if name == PROBE) && at.len() == depth + 1
        };
        match kind {
            Kind::UnknownField(_, fields) if is_struct(&at, &kind, here.len()) => {
                for f in fields {
                    path.push(f);
                    known(path, out);
                    path.pop();
                }
            }
            // An enum read the probe key as a variant's name: a value.
            Kind::UnknownVariant(..) => out.push(here.join(".")),
            // A value where the probe key was: a map, whose entries are named by the user.
            _ if at.len() > here.len() => {
                path.push("x");
                let (at, kind) = probe(path);
                let entries_are_structs = is_struct(&at, &kind, path.len());
                if entries_are_structs {
                    let mut inner = Vec::new();
                    known(path, &mut inner);
                    let prefix = path.join(".");
                    let star = format!("{}.*", here.join("."));
                    out.extend(inner.into_iter().map(|k| k.replacen(&prefix, &star, 1)));
                } else {
                    out.push(format!("{}.*", here.join(".")));
                }
                path.pop();
            }
            _ => out.push(here.join(".")),
        }
    }

    /// The dotted paths of every value in `d` (arrays are values).
    pub(crate) fn leaves(prefix: &str, d: &Dict, out: &mut Vec<String>) {
        for (k, v) in d {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Dict(_, inner) => leaves(&key, inner, out),
                _ => out.push(key),
            }
        }
    }

    /// Whether `key` (from the file) is an instance of `pattern` (from the code).
    pub(crate) fn matches(pattern: &str, key: &str) -> bool {
        let (p, k): (Vec<_>, Vec<_>) = (pattern.split('.').collect(), key.split('.').collect());
        p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
    }
}

#[test]
fn the_configuration_file_lists_every_key_the_code_reads_with_the_codes_defaults() {
    use figment::providers::{Format, Toml};
    use figment::{Figment, Provider};
    use stream_gateway::config::FileConfig;

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml"))
        .unwrap();
    // As shipped, the file sets only defaults: it changes nothing.
    let as_shipped: FileConfig = Figment::from(Toml::string(&text)).extract().unwrap();
    assert_eq!(
        serde_json::to_value(&as_shipped).unwrap(),
        serde_json::to_value(FileConfig::default()).unwrap(),
        "config/gateway.toml sets a value that differs from the code's default"
    );
    // With its examples made live, every key in it is one the code reads...
    let live = gateway_toml_uncommented(&text);
    let parsed = Figment::from(Toml::string(&live));
    if let Err(e) = parsed.extract::<FileConfig>() {
        panic!("config/gateway.toml, its examples uncommented, is refused: {e}");
    }
    let dict = parsed
        .data()
        .unwrap()
        .into_values()
        .next()
        .unwrap_or_default();
    let mut in_file = Vec::new();
    keys::leaves("", &dict, &mut in_file);
    // ... and every key the code reads is in it.
    let mut known = Vec::new();
    keys::known(&mut Vec::new(), &mut known);
    assert!(
        known.len() > 50,
        "the key probe found too few keys: {known:?}"
    );
    let missing: Vec<_> = known
        .iter()
        .filter(|k| !in_file.iter().any(|f| keys::matches(k, f)))
        .collect();
    assert!(
        missing.is_empty(),
        "config/gateway.toml lacks these keys (add each, commented out when it has no default): {missing:?}"
    );
}

/// The first ```sh block of `page` whose first line starts with `start`.
fn example_block(page: &str, start: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/{page}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.starts_with(start))
        .unwrap_or_else(|| panic!("{page} has no example block starting with {start}"))
        .to_owned()
}

/// Whether a shown value changes from run to run (ids, times, durations, elisions, the app).
fn volatile(key: &str, v: &serde_json::Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    let uuid = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
    let date =
        s.len() >= 10 && s.as_bytes()[4] == b'-' && s[..4].bytes().all(|b| b.is_ascii_digit());
    matches!(key, "duration" | "expires_at" | "app_id") || s.contains("...") || uuid || date
}

/// The shown answer's keys are all in the real one, with the same values where they are stable.
fn assert_like(shown: &serde_json::Value, got: &serde_json::Value, at: &str) {
    match (shown, got) {
        (serde_json::Value::Object(s), serde_json::Value::Object(g)) => {
            for (k, v) in s {
                let g = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}: no `{k}` in {got}"));
                if !volatile(k, v) {
                    assert_like(v, g, &format!("{at}.{k}"));
                }
            }
        }
        (serde_json::Value::Array(s), serde_json::Value::Array(g)) => {
            assert_eq!(s.len(), g.len(), "{at}: {got}");
            for (i, (s, g)) in s.iter().zip(g).enumerate() {
                assert_like(s, g, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(shown, got, "{at}"),
    }
}

/// The gateway as `--emulator` starts it, on a free port: its address and the emulator's URL.
async fn start_emulated() -> (String, String) {
    use figment::providers::Serialized;
    use figment::Figment;
    use stream_gateway::app::App;
    use stream_gateway::config::{Config, FileConfig};

    let f = Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.emulator", true));
    let app = App::build(Config::from_figment(&f).unwrap()).await.unwrap();
    let addr = app.local_addr().to_string();
    let emu = app.emulator().unwrap().url();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (addr, emu)
}

/// Runs a docs block of shell commands as written (after `replace`) in one bash, each command
/// in turn, and checks every curl's status (the `-> NNN` of the comment above it, else 2xx)
/// and, where the block shows an answer under it, that the answer is like it.
async fn run_block(block: &str, replace: &[(&str, &str)]) -> usize {
    let mut block = block.to_owned();
    for (from, to) in replace {
        block = block.replace(from, to);
    }
    let block = block.replace("\\\n", " ");
    let dir = std::env::temp_dir().join(format!("gw-docs-{}", fastrand_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut script = format!(
        "T={}\ncurl() {{ command curl -o \"$T/body\" -w '%{{http_code}}\\n' \"$@\" >> \"$T/status\"; cat \"$T/body\"; }}\n",
        dir.display()
    );
    // (command, expected status (0: any 2xx), shown answer)
    let mut steps: Vec<(String, u16, Option<String>)> = Vec::new();
    let mut status = 0;
    for line in block.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            status = c
                .rsplit("-> ")
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        } else if line.starts_with("curl ") || line.contains("=$(curl ") {
            steps.push((line.to_owned(), status, None));
        } else if line.starts_with('{') {
            steps.last_mut().expect("an answer follows a command").2 = Some(line.to_owned());
        } else if !line.trim().is_empty() {
            script.push_str(line);
            script.push('\n');
        }
    }
    for (cmd, _, _) in &steps {
        script.push_str(&format!("{cmd}\necho\necho @@END@@\n"));
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let outputs: Vec<&str> = stdout.split("@@END@@\n").collect();
    let statuses = std::fs::read_to_string(dir.join("status")).unwrap();
    let mut statuses = statuses.lines();
    for (i, (cmd, want, shown)) in steps.iter().enumerate() {
        let got: u16 = statuses.next().unwrap().parse().unwrap();
        if *want == 0 {
            assert!((200..300).contains(&got), "{cmd}: {got} {}", outputs[i]);
        } else {
            assert_eq!(got, *want, "{cmd}: {}", outputs[i]);
        }
        let Some(shown) = shown else { continue };
        let answer: serde_json::Value = serde_json::from_str(outputs[i].trim())
            .unwrap_or_else(|_| panic!("{cmd} answered {:?}", outputs[i]));
        if let Ok(shown) = serde_json::from_str(shown) {
            assert_like(&shown, &answer, cmd);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let curls = block
        .lines()
        .filter(|l| l.starts_with("curl ") || l.contains("=$(curl "))
        .count();
    assert_eq!(steps.len(), curls, "every curl of the block ran");
    steps.len()
}

/// A name no other run of these tests uses at the same time.
fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_examples_run_as_written_against_the_emulator() {
    let (addr, _) = start_emulated().await;
    let ran = run_block(
        &example_block("docs/requests.md", "B="),
        &[("127.0.0.1:8080", &addr)],
    )
    .await;
    assert_eq!(ran, 15, "every curl of the block ran");
    // What the examples removed is gone: the activity added first, by the id it was given.
    let feed = reqwest::get(format!("http://{addr}/api/v1.0/feed/user/42/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !feed.contains("\"post:1\""),
        "post:1 was not removed: {feed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_token_and_emulator_examples_run_as_written() {
    let (addr, _) = start_emulated().await;
    let readme = example_block("README.md", "curl -s -X POST localhost:8080");
    assert_eq!(run_block(&readme, &[("localhost:8080", &addr)]).await, 4);
    let tokens = example_block("docs/tokens.md", "# A feed token");
    assert_eq!(run_block(&tokens, &[("localhost:8080", &addr)]).await, 2);
    let (_, emu) = start_emulated().await;
    let faults = example_block("docs/emulator.md", "EMU=");
    let emu_at = [("http://127.0.0.1:<port from the banner>", emu.as_str())];
    assert!(run_block(&faults, &emu_at).await >= 7);
}

/// The `docker run` (or podman run) command starting at `start` in `text`, its `\`
/// continuations joined (and `#` comment marks of a Dockerfile dropped), as shell words.
fn run_command(text: &str, start: &str) -> Vec<String> {
    let mut joined = String::new();
    for line in text[text.find(start).unwrap()..].lines() {
        let line = line.trim_start_matches('#').trim();
        joined.push_str(line.trim_end_matches('\\'));
        joined.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    joined
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_owned())
        .collect()
}

/// The values that follow `flag` in `words`.
fn flag_values<'a>(words: &'a [String], flag: &str) -> Vec<&'a str> {
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn the_docker_run_examples_publish_on_loopback_and_name_the_mounted_secret_file() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let smoke = run_command(
        &read("scripts/container-smoke"),
        "\"${P[@]}\" run -d --name \"$name\" ",
    );
    for (page, text) in [
        ("Dockerfile", read("Dockerfile")),
        ("docs/deployment.md", read("docs/deployment.md")),
    ] {
        let words = run_command(&text, "docker run");
        let published = flag_values(&words, "-p");
        assert!(
            !published.is_empty() && published.iter().all(|p| p.starts_with("127.0.0.1:")),
            "{page}: publish on 127.0.0.1 only: {published:?}"
        );
        let mounted: Vec<_> = flag_values(&words, "-v")
            .iter()
            .filter_map(|v| {
                v.strip_suffix(":ro")?
                    .rsplit_once(':')
                    .map(|(_, at)| at.to_owned())
            })
            .collect();
        let env = flag_values(&words, "-e");
        let secret_file = format!("STREAM_API_SECRET_FILE={}", mounted[0]);
        assert!(
            env.contains(&secret_file.as_str()),
            "{page}: the secret is mounted at {} but {secret_file} is not set: {env:?}",
            mounted[0]
        );
        // scripts/container-smoke runs the image the same way (with host networking instead
        // of -p, and the emulator as Stream).
        assert!(
            flag_values(&smoke, "-e").contains(&secret_file.as_str())
                && flag_values(&smoke, "-v")
                    .iter()
                    .any(|v| v.ends_with(&format!(":{}:ro", mounted[0]))),
            "scripts/container-smoke does not run the image as {page} says: {smoke:?}"
        );
    }
}

#[test]
fn every_metric_the_code_describes_is_in_the_metric_reference() {
    let root = env!("CARGO_MANIFEST_DIR");
    let reference = std::fs::read_to_string(format!("{root}/docs/production.md")).unwrap();
    let operations = std::fs::read_to_string(format!("{root}/docs/operations.md")).unwrap();
    let reference = &reference[reference.find("## Metric reference").unwrap()..];
    for name in stream_gateway::recorder::metric_names() {
        let named = |page: &str| page.contains(&format!("`{name}`"));
        assert!(
            named(reference),
            "{name} is not in docs/production.md's metric reference"
        );
        assert!(
            named(&operations),
            "{name} is not in docs/operations.md's metrics table"
        );
    }
}

#[test]
fn the_emulator_configuration_of_the_quick_start_is_valid_as_shipped_and_uncommented() {
    use figment::providers::{Format, Serialized, Toml};
    use figment::Figment;
    use stream_gateway::config::{Config, FileConfig};

    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/emulator.toml"))
            .unwrap();
    for toml in [text.clone(), gateway_toml_uncommented(&text)] {
        let f =
            Figment::from(Serialized::defaults(FileConfig::default())).merge(Toml::string(&toml));
        let c = Config::from_figment(&f).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert!(c.stream.emulator);
    }
}

/// GitHub's anchor for a heading: lower-cased, punctuation but `-` and `_` dropped, spaces `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_heading() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![
        root.join("README.md"),
        root.join("SECURITY.md"),
        root.join("CHANGELOG.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            pages.push(p);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let target = &target[..target.find(')').unwrap_or(0)];
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, frag) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{}: {target}", page.display()));
                continue;
            }
            if !frag.is_empty() && path.extension().is_some_and(|e| e == "md") {
                let linked = std::fs::read_to_string(&path).unwrap();
                let found = linked
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| anchor(h.trim_start_matches('#')))
                    .any(|a| a == frag);
                if !found {
                    broken.push(format!("{}: {target}", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere: {broken:#?}");
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
    let mut child = std::process::Command::new("/usr/bin/python3")
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
        // Every key of the example the gateway reads from the environment (the secret is the
        // test's: the example's file is not here).
        for (k, v) in env.iter().filter(|(k, _)| k.starts_with("GATEWAY_")) {
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
        assert!(
            c.server.public.is_some(),
            "the example's public listener is configured"
        );
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

/// The code's defaults as dotted keys (`upstream.max_retries`), with `[tokens.oidc]` and
/// `[callers]`, absent by default, at their own defaults; a key whose default is "none" or is
/// decided at validation (`server.workers`) is `null`.
fn code_defaults() -> std::collections::BTreeMap<String, serde_json::Value> {
    use stream_gateway::config::FileConfig;
    fn flatten(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, serde_json::Value>,
    ) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned(), v.clone());
            }
        }
    }
    let mut f = FileConfig::default();
    f.tokens.oidc = Some(Default::default());
    f.callers = Some(Default::default());
    let mut out = std::collections::BTreeMap::new();
    flatten("", &serde_json::to_value(&f).unwrap(), &mut out);
    out
}

/// A default as docs/configuration.md writes it: a string bare (`""` when empty), a list as TOML.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if s.is_empty() => "\"\"".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// The rows of docs/configuration.md's key table: each key (`a` / `b` names two, `b` in `a`'s
/// section) with its default cell (`50` / `2000` gives each its own) and its meaning.
fn documented_keys() -> Vec<(String, String, String)> {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let mut rows = Vec::new();
    for line in page.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        let (Some(keys), Some(default)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        let Some(keys) = keys.strip_prefix("| `") else {
            continue;
        };
        let keys: Vec<&str> = keys.split(" / ").map(|k| k.trim_matches('`')).collect();
        let defaults: Vec<&str> = if keys.len() > 1 {
            default.split(" / ").collect()
        } else {
            vec![default]
        };
        let section = keys[0].rsplit_once('.').map_or("", |(s, _)| s);
        for (i, key) in keys.iter().enumerate() {
            let key = if key.contains('.') {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            let default = defaults.get(i).or(defaults.first()).unwrap().trim();
            let meaning = cells.get(2).unwrap_or(&"").trim_end_matches(" |");
            rows.push((key, default.to_owned(), meaning.to_owned()));
        }
    }
    rows
}

#[test]
fn every_default_in_the_configuration_reference_is_the_codes() {
    let code = code_defaults();
    let (mut compared, mut wrong) = (0, Vec::new());
    for (key, default, _) in documented_keys() {
        if key.contains(['*', '<']) {
            continue; // a section or a map's entries: no one default
        }
        let value = code
            .get(&key)
            .unwrap_or_else(|| panic!("docs/configuration.md names {key}, which the code lacks"));
        // A literal default is the cell's first word in backticks (`67108864` (64 MiB)), when
        // it is not another key (`stream.base_url` when set, ...).
        let literal = default
            .strip_prefix('`')
            .and_then(|d| d.split_once('`'))
            .map(|(d, _)| d)
            .filter(|d| !code.contains_key(*d));
        match (literal, value) {
            // A default made at validation (`https://chat.stream-io-api.com`) or "none": the
            // file's default is none.
            (_, serde_json::Value::Null) => {
                if let Some(d) = literal {
                    let computed = [(
                        "stream.v2_base_url",
                        stream_gateway::config::DEFAULT_V2_BASE_URL,
                    )];
                    if !computed.contains(&(key.as_str(), d)) {
                        wrong.push(format!("{key}: documented {d}, the code has none"));
                    }
                }
            }
            (Some(d), v) => {
                compared += 1;
                if d != shown(v) {
                    wrong.push(format!("{key}: documented {d}, the code's is {}", shown(v)));
                }
            }
            (None, v) => {
                if default.starts_with("none") || default.starts_with("required") {
                    wrong.push(format!(
                        "{key}: documented as none, the code's is {}",
                        shown(v)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "docs/configuration.md: {wrong:#?}");
    assert!(compared > 40, "too few defaults compared: {compared}");
}

#[test]
fn every_value_the_configuration_file_shows_for_a_key_with_a_default_is_that_default() {
    use figment::providers::{Format, Toml};
    use figment::{Figment, Provider};

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml"))
        .unwrap();
    // Commented-out keys too: `# realtime_listen = "127.0.0.1:9999"` shows the default of a key
    // that matters only with --emulator; an example of a key without one (`# workers = 2`, or
    // `# feed_groups = ["user"]` whose default is the empty list) is free.
    let live = Figment::from(Toml::string(&gateway_toml_uncommented(&text)));
    let dict = live
        .data()
        .unwrap()
        .into_values()
        .next()
        .unwrap_or_default();
    let mut in_file = Vec::new();
    keys::leaves("", &dict, &mut in_file);
    let code = code_defaults();
    let (mut compared, mut wrong) = (0, Vec::new());
    for key in in_file {
        let none = |v: &&serde_json::Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
        let Some(default) = code.get(&key).filter(|v| !none(v)) else {
            continue;
        };
        let shown_here: serde_json::Value = live.extract_inner(&key).unwrap();
        compared += 1;
        if &shown_here != default {
            wrong.push(format!(
                "{key} = {shown_here}, the code's default is {default}"
            ));
        }
    }
    assert!(wrong.is_empty(), "config/gateway.toml: {wrong:#?}");
    assert!(compared > 50, "too few defaults compared: {compared}");
}

#[test]
fn the_configuration_reference_says_read_at_start_up_only_of_the_keys_a_reload_keeps() {
    use stream_gateway::config::{reloads, RELOADS};
    let mut wrong = Vec::new();
    for (key, _, meaning) in documented_keys() {
        // A section that reloads says which of its keys do not; elsewhere none reloads but
        // the secret, as the page says once.
        let section = key.split('.').next().unwrap();
        if !RELOADS.contains(&(section, true)) || key.contains('*') {
            continue;
        }
        let says = meaning.contains("read at start-up only");
        if says == reloads(&key) {
            wrong.push(format!(
                "{key}: reloads {}, the reference says {meaning:?}",
                reloads(&key)
            ));
        }
    }
    assert!(wrong.is_empty(), "docs/configuration.md: {wrong:#?}");
}
