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

async fn post_fault(app: &TestApp, fault: Value) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{}/_emulator/faults", app.emu.url()))
        .header("content-type", "application/json")
        .body(fault.to_string())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn token_faults_answer_streams_token_refusals_for_the_next_calls() {
    let app = spawn_app().await;
    let details = [
        ("expired", "token is expired by 1h0m0s"),
        ("invalid_signature", "signature is invalid"),
        (
            "not_allowed",
            "You do not have permission to perform this action.",
        ),
    ];
    for (kind, detail) in details {
        let fault = json!({"token_error": kind, "times": 2});
        assert_eq!(post_fault(&app, fault).await, 201);
        for _ in 0..2 {
            let r = app.get("/feed/user/1/").await;
            assert_eq!(r.status, 403, "{kind}");
            let mut body = r.json.clone();
            assert_eq!(body["duration"].take().as_str().map(|_| ()), Some(()));
            assert_eq!(
                body,
                json!({"code": 17, "detail": detail, "duration": null,
                       "exception": "NotAllowedException", "status_code": 403}),
                "{kind}"
            );
        }
        assert_eq!(app.get("/feed/user/1/").await.status, 200, "{kind} used up");
    }
}

#[tokio::test]
async fn token_faults_can_target_one_feed_or_one_user() {
    let app = spawn_app().await;
    let fault = json!({"token_error": "expired", "feed": "user:7", "times": 5});
    assert_eq!(post_fault(&app, fault).await, 201);
    assert_eq!(app.get("/feed/user/8/").await.status, 200);
    assert_eq!(app.get("/feed/timeline/7/").await.status, 200);
    assert_eq!(app.get("/feed/user/7/").await.status, 403);
    assert_eq!(app.post("/feed/user/7/", &activity(1)).await.status, 403);
    app.emu().clear_faults();

    let fault = json!({"token_error": "not_allowed", "user_id": "7", "times": 5});
    assert_eq!(post_fault(&app, fault).await, 201);
    assert_eq!(app.get("/feed/user/8/").await.status, 200);
    assert_eq!(app.get("/feed/timeline/7/").await.status, 403);
    assert_eq!(app.get("/feed/notification/7/").await.status, 403);
    assert_eq!(app.get("/user/7/").await.status, 403);
    assert_eq!(app.get("/user/8/").await.status, 404);
}

#[tokio::test]
async fn a_fault_with_a_bad_feed_user_or_count_is_refused() {
    let app = spawn_app().await;
    for fault in [
        json!({"token_error": "expired", "feed": "user7", "times": 1}),
        json!({"token_error": "expired", "feed": "user:", "times": 1}),
        json!({"token_error": "expired", "user_id": "", "times": 1}),
        json!({"token_error": "expired", "times": 0}),
    ] {
        assert_eq!(post_fault(&app, fault.clone()).await, 400, "{fault}");
    }
    assert_eq!(
        post_fault(&app, json!({"token_error": "stale", "times": 1})).await,
        422
    );
    assert!(app.emu().faults().is_empty());
}

async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    origin: Option<&str>,
) -> (u16, String) {
    let c = reqwest::Client::new();
    let mut req = c
        .request(method.parse().unwrap(), format!("{}{path}", app.emu.url()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn an_export_imported_again_exports_the_same_and_a_bad_import_changes_nothing() {
    let app = spawn_app().await;
    app.post("/feed/timeline/1/follows/", &json!({"target": "user:1"}))
        .await;
    for n in 1..=3 {
        assert_eq!(
            app.post("/feed/user/1/", &keyed_activity(n)).await.status,
            201
        );
    }
    app.post("/feed/notification/1/", &activity(9)).await;
    let (_, exported) = admin(&app, "GET", "/_emulator/export", "", None).await;
    let doc: Value = serde_json::from_str(&exported).unwrap();

    assert_eq!(
        admin(&app, "POST", "/_emulator/reset", "", None).await.0,
        204
    );
    assert_eq!(
        admin(&app, "POST", "/_emulator/import", &exported, None)
            .await
            .0,
        204
    );
    let (_, again) = admin(&app, "GET", "/_emulator/export", "", None).await;
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), doc);
    assert_eq!(
        app.get("/feed/timeline/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A document bad in its last part is refused whole: nothing of it was loaded.
    let mut bad = doc.clone();
    bad["activities"][0]["foreign_id"] = json!("changed");
    bad["users"] = json!([{"id": 5}]);
    let (status, body) = admin(
        &app,
        "POST",
        "/_emulator/import?mode=replace",
        &bad.to_string(),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("users[0].id") && body.contains("nothing changed"),
        "{body}"
    );
    for bad_body in ["{", r#"{"version": 1}"#] {
        let (status, _) = admin(
            &app,
            "POST",
            "/_emulator/import?mode=sideways",
            bad_body,
            None,
        )
        .await;
        assert_eq!(status, 400);
    }
    assert_eq!(
        admin(&app, "POST", "/_emulator/import", "{", None).await.0,
        400
    );
    let (_, after) = admin(&app, "GET", "/_emulator/export", "", None).await;
    assert_eq!(serde_json::from_str::<Value>(&after).unwrap(), doc);

    // Another site's page may not import.
    let (status, _) = admin(
        &app,
        "POST",
        "/_emulator/import",
        &exported,
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_import_in_merge_mode_keeps_what_is_there() {
    let app = spawn_app().await;
    assert_eq!(
        app.post("/feed/user/1/", &keyed_activity(1)).await.status,
        201
    );
    let (_, exported) = admin(&app, "GET", "/_emulator/export", "", None).await;
    assert_eq!(
        admin(&app, "POST", "/_emulator/reset", "", None).await.0,
        204
    );
    assert_eq!(
        app.post("/feed/user/1/", &keyed_activity(2)).await.status,
        201
    );
    assert_eq!(
        admin(
            &app,
            "POST",
            "/_emulator/import?mode=merge",
            &exported,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        app.get("/feed/user/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        admin(
            &app,
            "POST",
            "/_emulator/import?mode=replace",
            &exported,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        app.get("/feed/user/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn bounded(app: &TestApp, f: impl FnOnce(&mut stream_emulator::Bounds)) {
    let mut b = app.emu().bounds();
    f(&mut b);
    app.emu().set_bounds(b);
}

#[tokio::test]
async fn adds_beyond_max_activities_are_refused_in_streams_shape() {
    let app = spawn_app().await;
    bounded(&app, |b| b.max_activities = 2);
    assert_eq!(app.post("/feed/user/1/", &activity(1)).await.status, 201);
    let two = json!({"activities": [activity(2), activity(3)]});
    let r = app.post("/feed/user/1/", &two).await;
    assert_eq!(
        (r.status, r.json["code"].clone()),
        (400, json!(4)),
        "{}",
        r.json
    );
    assert_eq!(r.json["exception"], "InputException");
    assert!(r.json["detail"]
        .as_str()
        .unwrap()
        .contains("emulator.max_activities (2)"));
    assert_eq!(app.post("/feed/user/1/", &activity(2)).await.status, 201);
    assert_eq!(app.post("/feed/user/1/", &activity(3)).await.status, 400);
    let many = json!({"activity": activity(4), "feeds": ["user:2"]});
    assert_eq!(app.post("/feed/add_to_many/", &many).await.status, 400);
    let update = json!({"activities": [keyed_activity(5)]});
    assert_eq!(app.post("/activities/", &update).await.status, 400);
    assert_eq!(
        app.get("/feed/user/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // An import that would hold more is refused too; a reset makes room.
    let (_, exported) = admin(&app, "GET", "/_emulator/export", "", None).await;
    assert_eq!(
        admin(&app, "POST", "/_emulator/reset", "", None).await.0,
        204
    );
    bounded(&app, |b| b.max_activities = 1);
    let (status, body) = admin(&app, "POST", "/_emulator/import", &exported, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_activities (1)"), "{body}");
    assert_eq!(app.post("/feed/user/1/", &activity(1)).await.status, 201);
}

#[tokio::test]
async fn the_request_log_keeps_the_last_max_request_log_requests() {
    let app = spawn_app().await;
    bounded(&app, |b| b.max_request_log = 3);
    for n in 1..=5 {
        app.get(&format!("/feed/user/{n}/")).await;
    }
    let seen: Vec<String> = app.received().iter().map(|r| r.target.clone()).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("/api/v1.0/feed/user/3/"), "{seen:?}");
    assert!(seen[2].starts_with("/api/v1.0/feed/user/5/"), "{seen:?}");
    assert_eq!(app.received()[2].seq, 5);
}

#[tokio::test]
async fn an_import_larger_than_max_import_bytes_is_refused() {
    let app = spawn_app().await;
    let (_, exported) = admin(&app, "GET", "/_emulator/export", "", None).await;
    bounded(&app, |b| b.max_import_bytes = exported.len() - 1);
    let (status, body) = admin(&app, "POST", "/_emulator/import", &exported, None).await;
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["code"].clone(), v["exception"].clone()),
        (json!(4), json!("InputException"))
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("emulator.max_import_bytes"),
        "{v}"
    );
    bounded(&app, |b| b.max_import_bytes = exported.len());
    assert_eq!(
        admin(&app, "POST", "/_emulator/import", &exported, None)
            .await
            .0,
        204
    );
}

#[tokio::test]
async fn a_failed_write_to_the_data_dir_answers_500_and_the_change_is_written_with_the_next() {
    // Each write waits for SQLite's sync to disk: more than the tests' 400 ms attempt timeout
    // on a loaded machine (a POST without an id is not resent, so that would be a 504).
    let app = spawn_with(|f| f.merge(("upstream.timeout_ms", 10_000))).await;
    let dir = std::env::temp_dir().join(format!("gw-persist-api-{}", uuid::Uuid::new_v4()));
    let emu = app.emu();
    assert!(
        !emu.persist_to(&dir).unwrap(),
        "an empty dir holds no state"
    );
    assert!(emu.persist_to(&dir).is_err(), "one data dir at most");
    let r = app.post("/feed/user/1/", &activity(1)).await;
    assert_eq!(r.status, 201, "{}", r.json);
    // The table gone, the next write cannot be kept.
    let file = dir.join("emulator.sqlite3");
    let db = rusqlite::Connection::open(&file).unwrap();
    db.execute_batch("DROP TABLE state").unwrap();
    let r = app.post("/feed/user/1/", &activity(2)).await;
    assert_eq!(r.status, 500, "{}", r.json);
    assert!(
        r.json.to_string().contains("StorageException"),
        "{}",
        r.json
    );
    // Back, the next request (a read here) writes both.
    db.execute_batch(
        "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 1), doc BLOB NOT NULL)",
    )
    .unwrap();
    assert_eq!(app.get("/feed/user/1/").await.status, 200);
    let doc: Vec<u8> = db
        .query_row("SELECT doc FROM state", [], |r| r.get(0))
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(doc["activities"].as_array().unwrap().len(), 2, "{doc}");
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
