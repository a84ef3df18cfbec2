//! The emulator's admin API and feed semantics, reached as users reach them.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn faults_requests_and_reset_are_on_the_emulators_port_only() {
    let app = spawn_app().await;
    let admin = app.emu.url();
    let c = reqwest::Client::new();
    let fault = json!({"method": "GET", "path_prefix": "/api/v1.0/feed/user/9/", "status": 500, "times": 1});
    let r = c
        .post(format!("{admin}/_emulator/faults"))
        .header("content-type", "application/json")
        .body(fault.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(app.get("/feed/user/9/").await.status, 500);
    assert_eq!(
        app.get("/feed/user/9/").await.status,
        200,
        "the fault applied once"
    );
    let log: Value = serde_json::from_slice(
        &c.get(format!("{admin}/_emulator/requests"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(
        c.post(format!("{admin}/_emulator/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(app.received().is_empty());
    // The gateway's own port has no admin routes.
    let r = app
        .send(
            app.client
                .get(format!("http://{}/_emulator/requests", app.addr)),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn follow_copy_limit_keep_history_and_paging_work_through_the_gateway() {
    let app = spawn_app().await;
    for n in 1..=5 {
        assert_eq!(
            app.post("/feed/user/1/", &keyed_activity(n)).await.status,
            201
        );
    }
    let r = app
        .post(
            "/feed/timeline/1/follows/",
            &json!({"target": "user:1", "activity_copy_limit": 2}),
        )
        .await;
    assert_eq!(r.status, 201);
    let page = app.get("/feed/timeline/1/").await.json;
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let all = app.get("/feed/user/1/?limit=2").await.json;
    let last = all["results"][1]["id"].as_str().unwrap();
    let older = app.get(&format!("/feed/user/1/?id_lt={last}")).await.json;
    let objects: Vec<&str> = older["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["object"].as_str().unwrap())
        .collect();
    assert_eq!(objects, ["post:3", "post:2", "post:1"]);
    assert_eq!(
        app.delete("/feed/timeline/1/follows/user:1/?keep_history=true")
            .await
            .status,
        200
    );
    assert_eq!(
        app.get("/feed/timeline/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_update_by_foreign_id_and_time_changes_the_stored_activity() {
    let app = spawn_app().await;
    let added = app.post("/feed/user/1/", &keyed_activity(1)).await.json;
    let mut changed = keyed_activity(1);
    changed["popularity"] = json!(99);
    assert_eq!(
        app.post("/activities/", &json!({"activities": [changed]}))
            .await
            .status,
        201
    );
    let read = app.get("/feed/user/1/").await.json;
    assert_eq!(read["results"][0]["id"], added["id"]);
    assert_eq!(read["results"][0]["popularity"], 99);
}
