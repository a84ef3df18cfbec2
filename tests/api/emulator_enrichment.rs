//! Enriched reads through the gateway: references expanded, reactions attached, on both
//! `enrich/feed/` and `enrich/activities/`.

use serde_json::{json, Value};

use crate::helpers::*;

fn strip(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("duration");
    v
}

#[tokio::test]
async fn user_and_collection_references_expand_only_on_enriched_reads() {
    let app = spawn_app().await;
    let user = strip(
        app.post("/user/", &json!({"id": "mike", "data": {"name": "Mike"}}))
            .await
            .json,
    );
    let entry = strip(
        app.post(
            "/collections/items/",
            &json!({"id": "tm", "data": {"name": "time machine"}}),
        )
        .await
        .json,
    );
    app.post("/feed/user/mike/", &json!({"actor": "SU:mike", "verb": "buy", "object": "SO:items:tm", "target": "SO:items:missing"})).await;

    let plain = &app.get("/feed/user/mike/").await.json["results"][0];
    let rich = &app.get("/enrich/feed/user/mike/").await.json["results"][0];

    assert_eq!(
        (&plain["actor"], &plain["object"]),
        (&json!("SU:mike"), &json!("SO:items:tm"))
    );
    assert_eq!(rich["actor"], user);
    assert_eq!(rich["object"], entry);
    assert_eq!(
        rich["target"],
        json!("SO:items:missing"),
        "an unknown reference stays as sent"
    );
}

#[tokio::test]
async fn enriched_reads_attach_own_latest_and_counted_reactions_of_the_asked_kinds() {
    let app = spawn_app().await;
    let a = app.post("/feed/user/1/", &keyed_activity(1)).await.json;
    let aid = a["id"].as_str().unwrap();
    let mut made = Vec::new();
    for (kind, user) in [
        ("like", "mike"),
        ("like", "ann"),
        ("comment", "ann"),
        ("share", "bob"),
    ] {
        let r = app
            .post(
                "/reaction/",
                &json!({"kind": kind, "activity_id": aid, "user_id": user}),
            )
            .await;
        made.push(strip(r.json));
    }
    // A child counts on its parent, never on the activity.
    let parent = made[2]["id"].clone();
    app.post(
        "/reaction/",
        &json!({"kind": "like", "parent": parent, "user_id": "bob"}),
    )
    .await;

    let q = "withOwnReactions=true&withRecentReactions=true&withReactionCounts=true\
        &user_id=mike&reactionKindsFilter=like,comment&recent_reactions_limit=1";
    let feed = app.get(&format!("/enrich/feed/user/1/?{q}")).await.json;
    let by_id = app
        .get(&format!("/enrich/activities/?ids={aid}&{q}"))
        .await
        .json;
    let snake = app
        .get(&format!(
            "/enrich/activities/?ids={aid}&with_reaction_counts=true&reaction_kinds_filter=share"
        ))
        .await
        .json;
    let plain = app
        .get(&format!("/activities/?ids={aid}&withReactionCounts=true"))
        .await
        .json;

    for got in [&feed["results"][0], &by_id["results"][0]] {
        assert_eq!(
            got["reaction_counts"],
            json!({"like": 2, "comment": 1}),
            "{got}"
        );
        assert_eq!(got["own_reactions"], json!({"like": [made[0]]}));
        assert_eq!(
            got["latest_reactions"]["like"],
            json!([made[1]]),
            "newest first, limited"
        );
        assert_eq!(
            got["latest_reactions"]["comment"][0]["children_counts"],
            json!({"like": 1})
        );
        assert!(got["latest_reactions"].get("share").is_none());
    }
    assert_eq!(snake["results"][0]["reaction_counts"], json!({"share": 1}));
    assert!(
        snake["results"][0].get("latest_reactions").is_none(),
        "only what was asked"
    );
    let js = app
        .get(&format!(
            "/enrich/activities/?ids={aid}&withOwnReactions=true&withUserId=ann"
        ))
        .await
        .json;
    assert_eq!(
        js["results"][0]["own_reactions"]["comment"][0]["id"], made[2]["id"],
        "stream-js names the user withUserId"
    );
    assert!(
        plain["results"][0].get("reaction_counts").is_none(),
        "a plain read is not enriched"
    );
}
