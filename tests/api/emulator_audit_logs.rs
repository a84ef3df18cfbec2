//! `GET audit_logs/` through the gateway: its narrowest token, filters and paging.

use serde_json::{json, Value};

use crate::helpers::*;

fn ids(v: &Value) -> Vec<(String, String)> {
    v["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entity_type"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn audit_logs_filter_by_entity_and_user_and_page_with_cursors() {
    let app = spawn_app().await;
    let a = app
        .post(
            "/feed/user/1/",
            &json!({"actor": "ann", "verb": "tweet", "object": "1"}),
        )
        .await
        .json;
    let aid = a["id"].as_str().unwrap();
    app.post("/activity/", &json!({"id": aid, "set": {"x": 1}}))
        .await;
    app.post(
        "/reaction/",
        &json!({"kind": "like", "activity_id": aid, "user_id": "bob"}),
    )
    .await;

    let r = app
        .get(&format!(
            "/audit_logs/?entity_type=activity&entity_id={aid}&limit=1"
        ))
        .await;

    assert_eq!(r.status, 200, "{:?}", r.json);
    assert_eq!(
        upstream_scope(app.received().last().unwrap()).to_string(),
        "*/read/*",
        "resource * (no client names one), action narrowed to read"
    );
    assert_eq!(ids(&r.json), [("activity".to_owned(), "update".to_owned())]);
    let log = &r.json["audit_logs"][0];
    for field in ["entity_id", "user_id", "created_at", "custom"] {
        assert!(log.get(field).is_some(), "{field} in {log}");
    }
    assert_eq!(log["user_id"], "ann");
    let next = r.json["next"].as_str().unwrap();
    assert!(!next.is_empty());
    let older = app
        .get(&format!(
            "/audit_logs/?entity_type=activity&entity_id={aid}&limit=1&next={next}"
        ))
        .await
        .json;
    assert_eq!(ids(&older), [("activity".to_owned(), "create".to_owned())]);
    assert_eq!(older["next"], "");
    let by_bob = app.get("/audit_logs/?user_id=bob").await.json;
    assert_eq!(ids(&by_bob), [("reaction".to_owned(), "create".to_owned())]);
}

#[tokio::test]
async fn audit_logs_take_no_write_method() {
    let app = spawn_app().await;

    let r = app.post("/audit_logs/", &json!({})).await;

    assert_eq!(r.status, 405);
    assert!(app.received().is_empty(), "refused before going upstream");
}

#[tokio::test]
async fn batch_changes_to_users_and_collections_are_audited_once_each() {
    let app = spawn_app().await;
    let batch = |users: &[&str]| json!({"users": users.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
    for r in [
        app.post("/users/", &batch(&["u1", "u2"])).await,
        // An existing user without `override` is left as it is: no change, no entry.
        app.post("/users/", &batch(&["u1"])).await,
        app.delete("/users/?ids=u1,nobody").await,
        app.post(
            "/collections/",
            &json!({"data": {"food": [{"id": "f1", "name": "pie"}]}}),
        )
        .await,
        app.post(
            "/collections/",
            &json!({"data": {"food": [{"id": "f1", "name": "tart"}]}}),
        )
        .await,
        app.delete("/collections/?collection_name=food&ids=f1,nothing")
            .await,
    ] {
        assert!(r.status < 300, "{} {:?}", r.status, r.json);
    }

    let r = app.get("/audit_logs/").await;

    assert_eq!(r.status, 200, "{:?}", r.json);
    let entries: Vec<(&str, &str, &str)> = r.json["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entity_type"].as_str().unwrap(),
                e["entity_id"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("collection_entry", "food:f1", "delete"),
            ("collection_entry", "food:f1", "update"),
            ("collection_entry", "food:f1", "create"),
            ("user", "u1", "delete"),
            ("user", "u2", "create"),
            ("user", "u1", "create"),
        ]
    );
}
