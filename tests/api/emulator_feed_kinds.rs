//! Aggregated and notification feeds: groups by verb and day, seen and read state, and the
//! kinds of feed groups as configured.

use std::collections::HashMap;

use serde_json::{json, Value};
use stream_emulator::{Emulator, EmulatorConfig, FeedGroups, FeedKind};
use stream_gateway::config::Config;
use stream_wire::auth::Secret;

use crate::helpers::*;

fn at(verb: &str, actor: &str, n: u32, time: &str) -> Value {
    json!({"actor": actor, "verb": verb, "object": format!("o:{n}"),
        "foreign_id": format!("f:{n}"), "time": time})
}

fn group_counts(page: &Value) -> Vec<(String, u64)> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["activity_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn aggregated_feeds_group_by_verb_and_day_newest_group_first() {
    let app = spawn_app().await;
    app.post("/feed/aggregated/1/follows/", &json!({"target": "user:1"}))
        .await;
    for a in [
        at("post", "ann", 1, "2026-11-26T09:00:00"),
        at("post", "ann", 2, "2026-11-27T09:00:00"),
        at("like", "bob", 3, "2026-11-27T10:00:00"),
        at("post", "bob", 4, "2026-11-27T11:00:00"),
    ] {
        assert_eq!(app.post("/feed/user/1/", &a).await.status, 201);
    }

    let page = app.get("/feed/aggregated/1/").await.json;

    assert_eq!(
        group_counts(&page),
        [
            ("post_2026-11-27".to_owned(), 2),
            ("like_2026-11-27".to_owned(), 1),
            ("post_2026-11-26".to_owned(), 1)
        ]
    );
    let g = &page["results"][0];
    assert_eq!(g["verb"], "post");
    assert_eq!(g["actor_count"], json!(2));
    assert_eq!(g["created_at"], "2026-11-27T09:00:00.000000");
    assert_eq!(g["updated_at"], "2026-11-27T11:00:00.000000");
    assert_eq!(g["activities"][0]["object"], "o:4");
    assert_eq!(g["activities"][0]["origin"], "user:1");
    assert!(g["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        g.get("is_seen").is_none(),
        "only notification groups have state"
    );
    let second = app.get("/feed/aggregated/1/?limit=1&offset=1").await.json;
    assert_eq!(group_counts(&second), [("like_2026-11-27".to_owned(), 1)]);
}

#[tokio::test]
async fn notification_reads_count_unseen_and_mark_after_answering() {
    let app = spawn_app().await;
    for a in [
        at("follow", "ann", 1, "2026-11-27T09:00:00"),
        at("like", "bob", 2, "2026-11-27T10:00:00"),
        at("comment", "cid", 3, "2026-11-27T11:00:00"),
    ] {
        app.post("/feed/notification/1/", &a).await;
    }
    let first = app.get("/feed/notification/1/").await.json;
    assert_eq!((&first["unseen"], &first["unread"]), (&json!(3), &json!(3)));
    let like_group = first["results"][1]["id"].as_str().unwrap().to_owned();

    let marking = app.get("/feed/notification/1/?mark_seen=true").await.json;
    let after = app
        .get(&format!("/feed/notification/1/?mark_read={like_group}"))
        .await
        .json;
    let last = app.get("/feed/notification/1/").await.json;

    assert_eq!(
        marking["unseen"],
        json!(3),
        "the marking read answers the state before"
    );
    assert_eq!((&after["unseen"], &after["unread"]), (&json!(0), &json!(3)));
    let state: Vec<(bool, bool)> = last["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["is_seen"].as_bool().unwrap(),
                g["is_read"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(state, [(true, false), (true, true), (true, false)]);
    assert_eq!(last["unread"], json!(2));
}

#[tokio::test]
async fn a_new_activity_makes_its_notification_group_unseen_again() {
    let app = spawn_app().await;
    app.post(
        "/feed/notification/1/",
        &at("watch", "ann", 1, "2026-11-27T09:00:00"),
    )
    .await;
    app.get("/feed/notification/1/?mark_seen=true&mark_read=true")
        .await;

    app.post(
        "/feed/notification/1/",
        &at("watch", "bob", 2, "2026-11-27T10:00:00"),
    )
    .await;
    let page = app.get("/feed/notification/1/").await.json;

    let g = &page["results"][0];
    assert_eq!(
        (&g["is_seen"], &g["is_read"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(g["activities"].as_array().unwrap().len(), 2);
    assert_eq!((&page["unseen"], &page["unread"]), (&json!(1), &json!(1)));
}

#[tokio::test]
async fn mark_seen_current_marks_only_the_groups_read() {
    let app = spawn_app().await;
    for (n, verb) in ["follow", "like", "comment"].into_iter().enumerate() {
        let t = format!("2026-11-27T1{n}:00:00");
        app.post("/feed/notification/1/", &at(verb, "ann", n as u32, &t))
            .await;
    }

    app.get("/feed/notification/1/?limit=2&mark_seen=current")
        .await;
    let page = app.get("/feed/notification/1/").await.json;

    let seen: Vec<bool> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["is_seen"].as_bool().unwrap())
        .collect();
    assert_eq!(seen, [true, true, false]);
}

#[tokio::test]
async fn configured_feed_groups_replace_the_default_kinds() {
    let groups = FeedGroups::new(HashMap::from([
        ("timeline".to_owned(), FeedKind::Aggregated),
        ("notification".to_owned(), FeedKind::Flat),
    ]));
    let emu = Emulator::spawn_with_groups(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: true,
        },
        groups,
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = Config::from_figment(&base_figment(&emu)).unwrap();
    let app = start(config, emu).await;
    let a = at("post", "ann", 1, "2026-11-27T09:00:00");
    app.post("/feed/timeline/1/", &a).await;
    app.post("/feed/notification/1/", &a).await;
    app.post("/feed/aggregated/1/", &a).await;

    let timeline = app.get("/feed/timeline/1/").await.json;
    let notification = app.get("/feed/notification/1/").await.json;
    let aggregated = app.get("/feed/aggregated/1/").await.json;

    assert_eq!(group_counts(&timeline), [("post_2026-11-27".to_owned(), 1)]);
    assert_eq!(
        notification["results"][0]["object"], "o:1",
        "flat: activities"
    );
    assert!(notification.get("unseen").is_none());
    assert_eq!(
        group_counts(&aggregated).len(),
        1,
        "unconfigured groups keep the default"
    );
}
