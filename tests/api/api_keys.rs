//! A foreign `api_key` is refused, as Stream refuses it: a service configured for another app
//! hears so instead of writing into this one. None at all, the app's own, or an accepted
//! placeholder pass (and Stream gets the app's key).

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_foreign_api_key_is_refused_on_every_family_and_nothing_is_sent() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.addr);
    for (method, path) in [
        (
            "GET",
            "/api/v1.0/feed/user/1/?api_key=5crf3bhfzesnMISSING&limit=1",
        ),
        ("POST", "/api/v1.0/feed/user/1/?api_key=5crf3bhfzesnMISSING"),
        (
            "POST",
            "/analytics/v1.0/engagement/?api_key=5crf3bhfzesnMISSING",
        ),
        (
            "GET",
            "/personalization/v1.0/follow_recommendations/?api_key=5crf3bhfzesnMISSING",
        ),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .send(
                app.client
                    .request(m, format!("{base}{path}"))
                    .body(json!({"actor": "a", "verb": "v", "object": "o"}).to_string()),
            )
            .await;
        assert_eq!(r.status, 401, "{path}: {:?}", r.json);
        assert_eq!(r.json["code"], 2, "{path}");
        assert_eq!(r.json["exception"], "ApiKeyException");
        let detail = r.json["detail"].as_str().unwrap();
        assert!(detail.contains("5crf..."), "{detail}");
        assert!(
            !detail.contains("3bhf"),
            "only the first 4 characters: {detail}"
        );
    }
    assert!(app.received().is_empty(), "nothing reached Stream");
    assert_eq!(app.metric("gateway_api_key_refused_total").await, 4.0);
}

#[tokio::test]
async fn no_api_key_the_apps_own_or_an_accepted_placeholder_pass_with_the_apps_key() {
    let app = spawn_with(|f| f.merge(("stream.accepted_api_keys", vec!["team-placeholder"]))).await;
    for q in [
        "limit=1".to_owned(),
        format!("api_key={KEY}"),
        "api_key=team-placeholder".to_owned(),
        "API_KEY=other&apiKey=other".to_owned(),
    ] {
        let r = app.get(&format!("/feed/user/1/?{q}")).await;
        assert_eq!(r.status, 200, "{q}: {:?}", r.json);
        let last = app.received().pop().unwrap();
        assert_eq!(api_keys(&last), vec![KEY.to_owned()], "{q}");
    }
    assert_eq!(app.metric("gateway_api_key_refused_total").await, 0.0);
}

#[tokio::test]
async fn a_repeated_api_key_is_refused_even_when_each_is_the_apps() {
    let app = spawn_app().await;
    for q in [
        format!("api_key={KEY}&api_key={KEY}"),
        format!("api_key={KEY}&api_key=other"),
    ] {
        let r = app.get(&format!("/feed/user/1/?{q}")).await;
        assert_eq!((r.status, r.json["code"].as_u64()), (400, Some(4)), "{q}");
        assert!(
            r.json["exception_fields"]["api_key"].is_array(),
            "{:?}",
            r.json
        );
    }
    assert!(app.received().is_empty());
    assert_eq!(app.metric("gateway_api_key_refused_total").await, 2.0);
}
