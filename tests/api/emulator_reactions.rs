//! The emulator's reactions as Stream answers them: children and their counts, `user`, soft
//! delete and restore, filters with kinds and id paging, activities in `target_feeds`.

use serde_json::{json, Value};

use crate::helpers::*;

async fn react(app: &TestApp, body: Value) -> Value {
    let r = app.post("/reaction/", &body).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let mut v = r.json;
    v.as_object_mut().unwrap().remove("duration");
    v
}

fn without_duration(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("duration");
    v
}

#[tokio::test]
async fn a_parent_lists_its_children_and_counts_them_by_kind() {
    let app = spawn_app().await;
    let parent = react(
        &app,
        json!({"kind": "comment", "activity_id": "a1", "user_id": "ann"}),
    )
    .await;
    let pid = parent["id"].as_str().unwrap();

    let child = react(
        &app,
        json!({"kind": "like", "parent": pid, "user_id": "bob"}),
    )
    .await;

    assert_eq!(
        child["activity_id"], "a1",
        "a child belongs to its parent's activity"
    );
    let got = app.get(&format!("/reaction/{pid}/")).await.json;
    assert_eq!(got["children_counts"], json!({"like": 1}));
    assert_eq!(got["latest_children"]["like"][0], child);
    assert_eq!(parent["children_counts"], json!({}));
}

#[tokio::test]
async fn a_child_of_a_missing_parent_is_invalid_input() {
    let app = spawn_app().await;

    let r = app
        .post(
            "/reaction/",
            &json!({"kind": "like", "parent": "nope", "user_id": "bob"}),
        )
        .await;

    assert_eq!(r.status, 400, "{:?}", r.json);
    assert_eq!(r.json["code"], json!(4));
}

#[tokio::test]
async fn a_reaction_by_a_known_user_carries_the_user() {
    let app = spawn_app().await;
    let user = without_duration(
        app.post("/user/", &json!({"id": "ann", "data": {"name": "Ann"}}))
            .await
            .json,
    );

    let r = react(
        &app,
        json!({"kind": "like", "activity_id": "a1", "user_id": "ann"}),
    )
    .await;
    let stranger = react(
        &app,
        json!({"kind": "like", "activity_id": "a1", "user_id": "zed"}),
    )
    .await;

    assert_eq!(r["user"], user);
    assert!(stranger.get("user").is_none());
}

#[tokio::test]
async fn soft_deleted_reactions_read_with_deleted_at_until_restored() {
    let app = spawn_app().await;
    let r = react(
        &app,
        json!({"kind": "like", "activity_id": "a1", "user_id": "ann"}),
    )
    .await;
    let path = format!("/reaction/{}/", r["id"].as_str().unwrap());

    assert_eq!(app.delete(&format!("{path}?soft=true")).await.status, 200);
    let deleted = app.get(&path).await;
    let listed = app.get("/reaction/activity_id/a1/").await.json;
    let restored = app.call("PUT", &format!("{path}restore/"), None).await;

    assert_eq!(deleted.status, 200);
    assert!(deleted.json["deleted_at"].is_string(), "{:?}", deleted.json);
    assert_eq!(listed["results"], json!([]), "filters leave it out");
    assert_eq!(restored.status, 201, "{:?}", restored.json);
    assert!(app.get(&path).await.json.get("deleted_at").is_none());
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.get(&path).await.status, 404, "a hard delete is gone");
}

#[tokio::test]
async fn filters_page_by_id_and_include_children_of_the_activity() {
    let app = spawn_app().await;
    let like = react(
        &app,
        json!({"kind": "like", "activity_id": "a1", "user_id": "ann"}),
    )
    .await;
    let lid = like["id"].as_str().unwrap().to_owned();
    let child = react(
        &app,
        json!({"kind": "like", "parent": lid, "user_id": "ann"}),
    )
    .await;
    let comment = react(
        &app,
        json!({"kind": "comment", "activity_id": "a1", "user_id": "ann"}),
    )
    .await;
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    let all = app.get("/reaction/activity_id/a1/").await.json;
    let likes_upto = app
        .get(&format!("/reaction/activity_id/a1/like/?id_lte={lid}"))
        .await
        .json;
    let after = app
        .get(&format!("/reaction/activity_id/a1/?id_gt={lid}"))
        .await
        .json;
    let by_user = app
        .get(&format!("/reaction/user_id/ann/like/?id_lt={}", id(&child)))
        .await
        .json;
    let children = app.get(&format!("/reaction/reaction_id/{lid}/")).await.json;

    assert_eq!(
        ids(&all),
        [id(&comment), id(&child), lid.clone()],
        "newest first"
    );
    assert_eq!(ids(&likes_upto), [lid.as_str()]);
    assert_eq!(ids(&after), [id(&comment), id(&child)]);
    assert_eq!(ids(&by_user), [lid.as_str()]);
    assert_eq!(children["results"], json!([child]));
    let parent_now = without_duration(app.get(&format!("/reaction/{lid}/")).await.json);
    assert_eq!(
        likes_upto["results"][0], parent_now,
        "a filter reads as a get"
    );
}

#[tokio::test]
async fn a_reaction_with_target_feeds_adds_an_activity_naming_it() {
    let app = spawn_app().await;

    let r = react(
        &app,
        json!({"kind": "superlike", "activity_id": "a1", "user_id": "mike",
        "data": {"popularity": 50}, "target_feeds": ["user:michelle"],
        "target_feeds_extra_data": {"popularity": 100}}),
    )
    .await;

    let a = &app.get("/feed/user/michelle/").await.json["results"][0];
    assert!(
        a["reaction"]
            .as_str()
            .unwrap()
            .contains(r["id"].as_str().unwrap()),
        "{a}"
    );
    assert_eq!(
        (&a["verb"], &a["popularity"]),
        (&json!("superlike"), &json!(100))
    );
    assert_eq!(r["data"]["popularity"], json!(50));
}

#[tokio::test]
async fn numbers_sent_as_ids_come_back_as_strings() {
    let app = spawn_app().await;

    let r = react(
        &app,
        json!({"kind": "like", "activity_id": 42, "user_id": 7}),
    )
    .await;
    let u = app.post("/user/", &json!({"id": 8, "data": {}})).await;

    assert_eq!(
        (&r["activity_id"], &r["user_id"]),
        (&json!("42"), &json!("7"))
    );
    assert_eq!(u.status, 201, "{:?}", u.json);
    assert_eq!(u.json["id"], json!("8"));
    assert_eq!(
        app.get("/reaction/user_id/7/").await.json["results"][0]["id"],
        r["id"]
    );
}
