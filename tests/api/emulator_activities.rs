//! The emulator's activity semantics where Stream's own clients test them: partial updates,
//! `origin`, `to` target updates, uniqueness without a foreign id, user follow counts.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn partial_update_unsets_dotted_paths_and_leaves_siblings() {
    let app = spawn_app().await;
    let mut a = keyed_activity(1);
    a["product"] = json!({"name": "shoes", "price": 9.99, "color": "blue"});
    let id = app.post("/feed/user/1/", &a).await.json["id"].clone();

    let change = json!({"id": id, "set": {"product.name": "boots"},
        "unset": ["product.color", "missing.path", "product.name.deeper"]});
    let r = app.post("/activity/", &change).await;

    assert_eq!(r.status, 201, "{:?}", r.json);
    let got = &app.get("/feed/user/1/").await.json["results"][0];
    assert_eq!(got["product"], json!({"name": "boots", "price": 9.99}));
}

#[tokio::test]
async fn origin_is_null_in_own_and_to_feeds_and_names_the_source_in_copies() {
    let app = spawn_app().await;
    app.post("/feed/timeline/2/follows/", &json!({"target": "team:1"}))
        .await;
    let mut a = activity(1);
    a["to"] = json!(["team:1"]);

    let id = app.post("/feed/user/1/", &a).await.json["id"].clone();

    let own = &app.get("/feed/user/1/").await.json["results"][0];
    assert!(
        own["origin"].is_null() && own.get("origin").is_some(),
        "{own}"
    );
    let to = &app.get("/feed/team/1/").await.json["results"][0];
    assert_eq!((&to["id"], &to["origin"]), (&id, &json!(null)));
    let copy = &app.get("/feed/timeline/2/").await.json["results"][0];
    assert_eq!((&copy["id"], &copy["origin"]), (&id, &json!("team:1")));
}

#[tokio::test]
async fn to_target_update_answers_the_activity_and_drops_an_emptied_to() {
    let app = spawn_app().await;
    let mut a = keyed_activity(1);
    a["to"] = json!(["user:2"]);
    app.post("/feed/user/1/", &a).await;
    let path = "/feed_targets/user/1/activity_to_targets/";
    let base = json!({"foreign_id": a["foreign_id"], "time": a["time"]});

    let mut change = base.clone();
    change["new_targets"] = json!(["user:3", "user:2"]);
    let r = app.post(path, &change).await;

    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["activity"]["to"], json!(["user:3", "user:2"]));
    let mut change = base.clone();
    change["removed_targets"] = json!(["user:3", "user:2"]);
    let r = app.post(path, &change).await;
    assert!(r.json["activity"].get("to").is_none(), "{:?}", r.json);
    assert!(app.get("/feed/user/1/").await.json["results"][0]
        .get("to")
        .is_none());
    assert_eq!(app.get("/feed/user/2/").await.json["results"], json!([]));
}

#[tokio::test]
async fn same_time_and_data_without_foreign_id_is_one_activity() {
    let app = spawn_app().await;
    app.post("/feed/timeline/9/follows/", &json!({"target": "topic:1"}))
        .await;
    app.post("/feed/timeline/9/follows/", &json!({"target": "user:1"}))
        .await;
    let a = json!({"actor": 1, "verb": "tweet", "object": 1,
        "time": "2026-11-27T10:00:00.123456", "tweet": "my way"});

    let first = app.post("/feed/topic/1/", &a).await.json;
    let second = app.post("/feed/user/1/", &a).await.json;
    let again = app.post("/feed/user/1/", &a).await.json;

    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["id"], again["id"]);
    assert_eq!(
        app.get("/feed/user/1/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/feed/timeline/9/").await.json["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Other data at the same time is another activity.
    let mut other = a.clone();
    other["tweet"] = json!("another");
    assert_ne!(
        app.post("/feed/user/1/", &other).await.json["id"],
        first["id"]
    );
}

#[tokio::test]
async fn user_with_follow_counts_counts_follows_of_its_feeds() {
    let app = spawn_app().await;
    app.post("/user/", &json!({"id": "ann", "data": {}})).await;
    app.post(
        "/feed/timeline/ann/follows/",
        &json!({"target": "user:bob"}),
    )
    .await;
    app.post(
        "/feed/timeline/bob/follows/",
        &json!({"target": "user:ann"}),
    )
    .await;
    app.post(
        "/feed/timeline/cid/follows/",
        &json!({"target": "user:ann"}),
    )
    .await;

    let plain = app.get("/user/ann/").await.json;
    let counted = app.get("/user/ann/?with_follow_counts=true").await.json;

    assert!(plain.get("followers_count").is_none());
    assert_eq!(counted["followers_count"], json!(2));
    assert_eq!(counted["following_count"], json!(1));
}

#[tokio::test]
async fn removing_from_the_source_feed_also_removes_it_from_to_targets_and_their_followers() {
    let app = spawn_app().await;
    app.post("/feed/timeline/2/follows/", &json!({"target": "team:1"}))
        .await;
    let mut a = activity(1);
    a["to"] = json!(["team:1"]);
    let id = app.post("/feed/user/1/", &a).await.json["id"].clone();

    let r = app
        .delete(&format!("/feed/user/1/{}/", id.as_str().unwrap()))
        .await;

    assert_eq!(r.status, 200);
    for feed in ["user/1", "team/1", "timeline/2"] {
        let page = app.get(&format!("/feed/{feed}/")).await.json;
        assert_eq!(page["results"], json!([]), "{feed}");
    }
}

#[tokio::test]
async fn lookups_and_partial_updates_answer_the_fields_of_a_feed_read_with_a_null_origin() {
    let app = spawn_app().await;
    let a = keyed_activity(1);
    let id = app.post("/feed/user/1/", &a).await.json["id"].clone();
    let read = app.get("/feed/user/1/").await.json["results"][0].clone();

    let by_id = &app
        .get(&format!("/activities/?ids={}", id.as_str().unwrap()))
        .await
        .json["results"][0];
    let by_key = &app
        .get(&format!(
            "/activities/?foreign_ids={}&timestamps={}",
            a["foreign_id"].as_str().unwrap(),
            a["time"].as_str().unwrap()
        ))
        .await
        .json["results"][0];
    for got in [by_id, by_key] {
        assert_eq!(got, &read, "the same fields as a feed read");
        assert!(got.get("origin").is_some_and(|o| o.is_null()), "{got}");
    }
    let r = app
        .post("/activity/", &json!({"id": id, "set": {"x": 1}}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let updated = &r.json["activities"][0];
    assert!(
        updated.get("origin").is_some_and(|o| o.is_null()),
        "{:?}",
        r.json
    );
    assert_eq!(updated["x"], 1);
}

#[tokio::test]
async fn an_empty_object_is_refused_by_the_gateway_and_by_the_emulator() {
    let app = spawn_app().await;
    let empty = json!({"actor": "a", "verb": "v", "object": ""});
    let r = app.post("/feed/user/1/", &empty).await;
    assert_eq!(
        (r.status, r.json["exception"].as_str()),
        (400, Some("InputException"))
    );
    assert!(
        r.json["exception_fields"]["activity.object"].is_array(),
        "{:?}",
        r.json
    );
    assert!(app.received().is_empty(), "nothing reached Stream");

    // The emulator refuses it too, as Stream does, to a client that talks to it directly.
    let token = stream_wire::auth::jwt::encode(
        &stream_wire::auth::jwt::Claims {
            resource: Some("feed".into()),
            action: Some("write".into()),
            feed_id: Some("user1".into()),
            ..Default::default()
        },
        &stream_wire::auth::Secret::new(SECRET),
    );
    for body in [empty.clone(), json!({"activities": [activity(1), empty]})] {
        let resp = app
            .client
            .post(format!(
                "{}/api/v1.0/feed/user/1/?api_key={KEY}",
                app.emu.url()
            ))
            .header("authorization", &token)
            .header("stream-auth-type", "jwt")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(
            (v["code"].as_u64(), v["exception"].as_str()),
            (Some(4), Some("InputException"))
        );
    }
    assert_eq!(app.emu().store().activity_count(), 0);
}
