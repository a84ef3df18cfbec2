//! The rest of the v1.0 surface: every row beyond the REST docs' eight endpoints,
//! through the gateway to the strict emulator, which refuses a token narrower or wider than
//! the row's scope. Semantics are checked by reading back what was written.

use serde_json::{json, Value};

use crate::helpers::*;

/// Sends one call and checks its status and the scope Stream received for it.
async fn call_ok(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    scope: &str,
) -> Value {
    let before = app.received().len();
    let r = app.call(method, path, body.as_ref()).await;
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {:?}",
        r.status,
        r.json
    );
    let got = app.received();
    assert_eq!(
        got.len(),
        before + 1,
        "{method} {path}: one upstream request"
    );
    let last = got.last().unwrap();
    assert_eq!(upstream_scope(last).to_string(), scope, "{method} {path}");
    assert_eq!(api_keys(last), vec![KEY.to_owned()], "{method} {path}");
    r.json
}

#[tokio::test]
async fn activities_are_looked_up_partially_updated_and_retargeted() {
    let app = spawn_app().await;
    let a = app.post("/feed/user/42/", &keyed_activity(1)).await;
    assert_eq!(a.status, 201);
    let id = a.json["id"].as_str().unwrap().to_owned();
    let time = a.json["time"].as_str().unwrap().to_owned();

    let r = call_ok(
        &app,
        "GET",
        &format!("/activities/?ids={id}"),
        None,
        "activities/read/*",
    )
    .await;
    assert_eq!(r["results"][0]["id"], json!(id));
    let path =
        format!("/enrich/activities/?foreign_ids=post:1&timestamps={time}&withReactionCounts=true");
    let r = call_ok(&app, "GET", &path, None, "activities/read/*").await;
    assert_eq!(r["results"][0]["id"], json!(id));

    let change = json!({"changes": [{"id": id, "set": {"verb": "edit", "extra.deep": 1}, "unset": ["object"]}]});
    let r = call_ok(
        &app,
        "POST",
        "/activity/",
        Some(change),
        "activities/write/*",
    )
    .await;
    assert_eq!(r["activities"][0]["verb"], json!("edit"));
    assert_eq!(r["activities"][0]["extra"]["deep"], json!(1));
    assert!(r["activities"][0].get("object").is_none());
    // One change object without the list (stream-go2's single update) works too.
    let one = json!({"foreign_id": "post:1", "time": time, "set": {"verb": "again"}});
    call_ok(&app, "POST", "/activity/", Some(one), "activities/write/*").await;

    let to = json!({"foreign_id": "post:1", "time": time, "added_targets": ["notification:9"]});
    call_ok(
        &app,
        "POST",
        "/feed_targets/user/42/activity_to_targets/",
        Some(to),
        "feed_targets/write/user42",
    )
    .await;
    let n = app.get("/feed/notification/9/").await;
    assert_eq!(n.json["results"][0]["verb"], json!("again"), "{:?}", n.json);

    let r = call_ok(
        &app,
        "GET",
        "/enrich/feed/user/42/?limit=5&withOwnReactions=true",
        None,
        "feed/read/user42",
    )
    .await;
    assert_eq!(r["results"][0]["id"], json!(id));
}

#[tokio::test]
async fn unfollow_many_is_signed_and_follow_stats_count() {
    let app = spawn_app().await;
    for t in ["user:1", "user:2", "group:3"] {
        let r = app
            .post("/feed/timeline/7/follows/", &json!({"target": t}))
            .await;
        assert_eq!(r.status, 201);
    }
    let r = call_ok(
        &app,
        "GET",
        "/stats/follow/?followers=user:1&following=timeline:7",
        None,
        "follower/read/*",
    )
    .await;
    assert_eq!(r["results"]["following"]["count"], json!(3), "{r:?}");
    assert_eq!(r["results"]["followers"]["count"], json!(1));
    let r = call_ok(
        &app,
        "GET",
        "/stats/follow/?following=timeline:7&following_slugs=user",
        None,
        "follower/read/*",
    )
    .await;
    assert_eq!(r["results"]["following"]["count"], json!(2));

    let before = app.received().len();
    let body = json!([{"source": "timeline:7", "target": "user:1"}, {"source": "timeline:7", "target": "user:2", "keep_history": true}]);
    let r = app.post("/unfollow_many/", &body).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    let got = app.received();
    assert_eq!(got.len(), before + 1);
    let auth = got.last().unwrap().header("authorization").unwrap();
    assert!(
        auth.starts_with("Signature keyId="),
        "application auth: {auth}"
    );
    let r = app.get("/feed/timeline/7/follows/").await;
    assert_eq!(r.json["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn open_graph_gets_the_one_resource_wide_but_read_only_scope() {
    let app = spawn_app().await;
    let r = call_ok(
        &app,
        "GET",
        "/og/?url=https%3A%2F%2Fexample.com%2Fa",
        None,
        "*/read/*",
    )
    .await;
    assert_eq!(r["url"], json!("https://example.com/a"));
}

#[tokio::test]
async fn reactions_are_stored_read_updated_filtered_soft_deleted_and_restored() {
    let app = spawn_app().await;
    let add = json!({"kind": "like", "activity_id": "act-1", "user_id": "bob", "data": null, "target_feeds": ["notification:1 eyJ.x.y"], "target_feeds_extra_data": null});
    let r = call_ok(&app, "POST", "/reaction/", Some(add), "reactions/write/*").await;
    let id = r["id"].as_str().unwrap().to_owned();
    // The token some clients append to a target feed is not forwarded.
    assert!(!app.received().last().unwrap().body.contains("eyJ"));
    let child = json!({"kind": "comment", "parent": id, "user_id": "amy", "data": {"text": "hi"}});
    call_ok(&app, "POST", "/reaction/", Some(child), "reactions/write/*").await;

    let r = call_ok(
        &app,
        "GET",
        &format!("/reaction/{id}/"),
        None,
        "reactions/read/*",
    )
    .await;
    assert_eq!(r["kind"], json!("like"));
    let r = call_ok(
        &app,
        "PUT",
        &format!("/reaction/{id}/"),
        Some(json!({"data": {"n": 2}, "target_feeds": null})),
        "reactions/write/*",
    )
    .await;
    assert_eq!(r["data"]["n"], json!(2));
    let r = call_ok(
        &app,
        "GET",
        "/reaction/activity_id/act-1/?limit=5&with_activity_data=false",
        None,
        "reactions/read/*",
    )
    .await;
    assert_eq!(r["results"].as_array().unwrap().len(), 2);
    let r = call_ok(
        &app,
        "GET",
        "/reaction/activity_id/act-1/like/",
        None,
        "reactions/read/*",
    )
    .await;
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    let r = call_ok(
        &app,
        "GET",
        &format!("/reaction/reaction_id/{id}/"),
        None,
        "reactions/read/*",
    )
    .await;
    assert_eq!(r["results"][0]["kind"], json!("comment"));
    let r = call_ok(
        &app,
        "GET",
        &format!("/reaction/get_many/?ids={id}"),
        None,
        "reactions/read/*",
    )
    .await;
    assert_eq!(r["results"][0]["id"], json!(id));

    call_ok(
        &app,
        "DELETE",
        &format!("/reaction/{id}/?soft=True"),
        None,
        "reactions/delete/*",
    )
    .await;
    // Stream still reads a soft-deleted reaction, marked with `deleted_at`.
    let soft = app.get(&format!("/reaction/{id}/")).await;
    assert_eq!(soft.status, 200);
    assert!(soft.json["deleted_at"].is_string(), "{:?}", soft.json);
    call_ok(
        &app,
        "PUT",
        &format!("/reaction/{id}/restore/"),
        None,
        "reactions/write/*",
    )
    .await;
    assert_eq!(app.get(&format!("/reaction/{id}/")).await.status, 200);
    call_ok(
        &app,
        "DELETE",
        &format!("/reaction/{id}/"),
        None,
        "reactions/delete/*",
    )
    .await;
    assert_eq!(app.get(&format!("/reaction/{id}/")).await.status, 404);
}

#[tokio::test]
async fn collections_and_users_are_stored_read_updated_and_deleted() {
    let app = spawn_app().await;
    let upsert =
        json!({"data": {"food": [{"id": "1", "name": "pizza"}, {"id": 2, "name": "pasta"}]}});
    call_ok(
        &app,
        "POST",
        "/collections/",
        Some(upsert),
        "collections/write/*",
    )
    .await;
    let r = call_ok(
        &app,
        "GET",
        "/collections/?foreign_ids=food:1,food:2",
        None,
        "collections/read/*",
    )
    .await;
    assert_eq!(r["response"]["data"].as_array().unwrap().len(), 2, "{r:?}");
    let r = call_ok(
        &app,
        "POST",
        "/collections/food/",
        Some(json!({"id": "3", "data": {"name": "soup"}, "user_id": null})),
        "collections/write/*",
    )
    .await;
    assert_eq!(r["foreign_id"], json!("food:3"));
    let r = call_ok(
        &app,
        "PUT",
        "/collections/food/3/",
        Some(json!({"data": {"name": "stew"}})),
        "collections/write/*",
    )
    .await;
    assert_eq!(r["data"]["name"], json!("stew"));
    let r = call_ok(
        &app,
        "GET",
        "/collections/food/3/",
        None,
        "collections/read/*",
    )
    .await;
    assert_eq!(r["data"]["name"], json!("stew"));
    call_ok(
        &app,
        "DELETE",
        "/collections/food/3/",
        None,
        "collections/delete/*",
    )
    .await;
    call_ok(
        &app,
        "DELETE",
        "/collections/?collection_name=food&ids=1&ids=2",
        None,
        "collections/delete/*",
    )
    .await;
    let r = app.get("/collections/?foreign_ids=food:1").await;
    assert_eq!(r.json["response"]["data"], json!([]));

    let r = call_ok(
        &app,
        "POST",
        "/user/?get_or_create=False",
        Some(json!({"id": "bob", "data": {"name": "Bob"}})),
        "users/write/*",
    )
    .await;
    assert_eq!(r["id"], json!("bob"));
    assert_eq!(app.post("/user/", &json!({"id": "bob"})).await.status, 409);
    call_ok(
        &app,
        "POST",
        "/user/?get_or_create=true",
        Some(json!({"id": "bob"})),
        "users/write/*",
    )
    .await;
    call_ok(
        &app,
        "PUT",
        "/user/bob/",
        Some(json!({"data": {"name": "Robert"}})),
        "users/write/*",
    )
    .await;
    let r = call_ok(
        &app,
        "GET",
        "/user/bob/?with_follow_counts=true",
        None,
        "users/read/*",
    )
    .await;
    assert_eq!(r["data"]["name"], json!("Robert"));
    call_ok(&app, "DELETE", "/user/bob/", None, "users/delete/*").await;
    assert_eq!(app.get("/user/bob/").await.status, 404);

    let batch =
        json!({"users": [{"id": "amy", "data": {"n": 1}}, {"id": "cy"}], "override": false});
    call_ok(&app, "POST", "/users/", Some(batch), "users/write/*").await;
    let r = call_ok(&app, "GET", "/users/?ids=amy,cy", None, "users/read/*").await;
    assert_eq!(r["users"].as_array().unwrap().len(), 2);
    call_ok(&app, "DELETE", "/users/?ids=amy,cy", None, "users/delete/*").await;
    assert_eq!(app.get("/user/amy/").await.status, 404);
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // a table: one refused input per row
async fn bad_input_on_the_new_rows_is_refused_before_stream() {
    let app = spawn_app().await;
    let t = "2026-11-27T10:00:00";
    // Each refusal has a reason: Stream refuses it (REST docs), or safety needs it.
    let cases: Vec<(&str, &str, Option<Value>, &str)> = vec![
        (
            "POST",
            "/activity/",
            Some(json!({"changes": [{"set": {"a": 1}}]})),
            "changes[0].id",
        ),
        (
            "POST",
            "/activity/",
            Some(json!({"changes": [{"foreign_id": "x", "set": {}}]})),
            "changes[0].time",
        ),
        (
            "POST",
            "/activity/",
            Some(json!({"id": "x", "set": {"to": ["nope"]}})),
            "body.set.to[0]",
        ),
        (
            "POST",
            "/feed_targets/user/42/activity_to_targets/",
            Some(json!({"time": t})),
            "body.foreign_id",
        ),
        (
            "POST",
            "/feed_targets/user/42/activity_to_targets/",
            Some(json!({"foreign_id": "x", "time": t, "added_targets": ["bad"]})),
            "body.added_targets[0]",
        ),
        (
            "POST",
            "/feed_targets/us-er/42/activity_to_targets/",
            Some(json!({})),
            "feed_slug",
        ),
        (
            "POST",
            "/unfollow_many/",
            Some(json!([{"source": "a:1"}])),
            "[0].target",
        ),
        (
            "POST",
            "/unfollow_many/",
            Some(json!([{"source": "a:1", "target": 42}])),
            "[0].target",
        ),
        ("GET", "/stats/follow/?followers=user42", None, "followers"),
        (
            "GET",
            "/stats/follow/?following=user:1&following_slugs=us-er",
            None,
            "following_slugs",
        ),
        (
            "POST",
            "/reaction/",
            Some(json!({"kind": "like", "activity_id": "a", "target_feeds": ["nope"]})),
            "reaction.target_feeds[0]",
        ),
        (
            "PUT",
            "/reaction/r1/",
            Some(json!({"target_feeds": ["user:1", 2]})),
            "reaction.target_feeds[1]",
        ),
        ("GET", "/user//", None, "user_id"),
        ("GET", "/reaction//", None, "reaction_id"),
        ("GET", "/collections/x//", None, "id"),
        ("DELETE", "/feed/user/42//", None, "activity_id"),
    ];
    for (m, p, body, field) in cases {
        let r = app.call(m, p, body.as_ref()).await;
        assert_eq!(r.status, 400, "{m} {p}: {:?}", r.json);
        assert_eq!(r.json["code"], json!(4), "{m} {p}");
        assert!(
            r.json["exception_fields"].get(field).is_some(),
            "{m} {p}: expected field {field}, got {:?}",
            r.json
        );
    }
    assert!(app.received().is_empty(), "nothing reached Stream");
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // a table: one accepted input per row
async fn input_without_a_reason_to_refuse_reaches_stream_which_decides() {
    let app = spawn_app().await;
    let many = vec!["a"; 101].join(",");
    // Each of these was once refused by the gateway with no documented reason.
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/activities/".into(), None),
        ("GET", format!("/activities/?ids={many}"), None),
        (
            "GET",
            "/activities/?foreign_ids=a,b&timestamps=2026-11-27T10:00:00".into(),
            None,
        ),
        ("POST", "/activity/".into(), Some(json!({"changes": []}))),
        (
            "POST",
            "/activity/".into(),
            Some(json!({"id": "x", "unset": "verb"})),
        ),
        (
            "POST",
            "/feed_targets/user/42/activity_to_targets/".into(),
            Some(json!({"foreign_id": "x", "time": "2026-11-27T10:00:00"})),
        ),
        (
            "POST",
            "/unfollow_many/".into(),
            Some(json!([{"source": "a:1", "target": "b:2", "keep_history": "yes"}])),
        ),
        ("GET", "/stats/follow/".into(), None),
        ("GET", "/og/?url=ftp://example.com/".into(), None),
        (
            "POST",
            "/reaction/".into(),
            Some(json!({"activity_id": "a"})),
        ),
        (
            "POST",
            "/reaction/".into(),
            Some(json!({"kind": "like", "activity_id": "a", "data": [1], "user_id": 7})),
        ),
        ("DELETE", "/reaction/r1/?soft=maybe".into(), None),
        ("PUT", "/reaction/r1/restore/".into(), Some(json!([1]))),
        ("GET", format!("/reaction/get_many/?ids={many}"), None),
        (
            "POST",
            "/collections/".into(),
            Some(json!({"data": {"fo od": []}})),
        ),
        ("GET", "/collections/?foreign_ids=food".into(), None),
        ("DELETE", "/collections/?ids=1".into(), None),
        (
            "POST",
            "/collections/food/".into(),
            Some(json!({"id": "1"})),
        ),
        (
            "PUT",
            "/collections/food/1/".into(),
            Some(json!({"data": 3})),
        ),
        (
            "POST",
            "/user/?get_or_create=perhaps".into(),
            Some(json!({"data": {}})),
        ),
        ("PUT", "/user/bob/".into(), Some(json!({"data": "x"}))),
        (
            "POST",
            "/users/".into(),
            Some(json!({"users": [{"id": "a"}], "override": "yes"})),
        ),
        ("DELETE", "/users/?ids=".into(), None),
        (
            "POST",
            "/feed/user/42/".into(),
            Some(
                json!({"actor": 1, "verb": "tweet", "object": 3, "foreign_id": 7, "time": "2026-11-27T10:00:00.123Z"}),
            ),
        ),
    ];
    for (m, p, body) in cases {
        let before = app.received().len();
        let r = app.call(m, &p, body.as_ref()).await;
        // Whatever Stream (here the emulator) answers is returned; the gateway refused nothing.
        assert_eq!(
            app.received().len(),
            before + 1,
            "{m} {p} must reach Stream: {:?}",
            r.json
        );
    }
}

#[tokio::test]
async fn a_reaction_without_an_id_is_not_resent_but_one_with_an_id_is() {
    let app = spawn_app().await;
    app.fault("POST", "/api/v1.0/reaction/", |f| f.status = Some(503));
    let r = app
        .post("/reaction/", &json!({"kind": "like", "activity_id": "a"}))
        .await;
    assert_eq!(r.status, 503, "no retry without an id");
    assert_eq!(app.received().len(), 1);
    app.fault("POST", "/api/v1.0/reaction/", |f| f.status = Some(503));
    let r = app
        .post(
            "/reaction/",
            &json!({"kind": "like", "activity_id": "a", "id": "r-1"}),
        )
        .await;
    assert_eq!(r.status, 201, "retried with an id: {:?}", r.json);
    assert_eq!(app.received().len(), 3);
}
