//! The README walk-through, against the gateway started as `--emulator` would start it.

use figment::providers::Serialized;
use figment::Figment;
use serde_json::{json, Value};
use stream_gateway::app::App;
use stream_gateway::config::{Config, FileConfig};

async fn call(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = c.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_readme_walkthrough_runs_against_the_emulator() {
    let f = Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.emulator", true));
    let app = App::build(Config::from_figment(&f).unwrap()).await.unwrap();
    assert!(app.emulator().is_some());
    let api = format!("http://{}/api/v1.0", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let c = reqwest::Client::new();

    // 1. Add an activity to user:42.
    let (s, added) = call(
        &c,
        "POST",
        &format!("{api}/feed/user/42/"),
        Some(json!({
            "actor": "user:42", "verb": "post", "object": "post:1",
            "foreign_id": "post:1", "time": "2026-11-27T10:00:00"
        })),
    )
    .await;
    assert_eq!(s, 201, "{added}");
    // 2. Read it back.
    let (s, feed) = call(&c, "GET", &format!("{api}/feed/user/42/?limit=10"), None).await;
    assert_eq!(
        (s, feed["results"][0]["id"].clone()),
        (200, added["id"].clone())
    );
    // 3. timeline:1 follows user:42 and gets its activity.
    let (s, _) = call(
        &c,
        "POST",
        &format!("{api}/feed/timeline/1/follows/"),
        Some(json!({"target": "user:42"})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, timeline) = call(&c, "GET", &format!("{api}/feed/timeline/1/"), None).await;
    assert_eq!(timeline["results"][0]["object"], "post:1");
    let (_, followers) = call(&c, "GET", &format!("{api}/feed/user/42/followers/"), None).await;
    assert_eq!(followers["results"][0]["feed_id"], "timeline:1");
    // 4. Unfollow: the copied activity is purged from the timeline.
    let (s, _) = call(
        &c,
        "DELETE",
        &format!("{api}/feed/timeline/1/follows/user:42/"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, timeline) = call(&c, "GET", &format!("{api}/feed/timeline/1/"), None).await;
    assert_eq!(timeline["results"], json!([]));
}

#[tokio::test]
async fn emulator_feed_groups_from_the_configuration_reach_the_embedded_emulator() {
    let f = Figment::from(Serialized::defaults(FileConfig::default()))
        .merge(("server.listen", "127.0.0.1:0"))
        .merge(("stream.emulator", true))
        .merge(("emulator.feed_groups.digest", "aggregated"));
    let app = App::build(Config::from_figment(&f).unwrap()).await.unwrap();
    let api = format!("http://{}/api/v1.0", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let c = reqwest::Client::new();
    for n in 1..=2 {
        let a = json!({"actor": "user:1", "verb": "post", "object": format!("post:{n}")});
        let (s, _) = call(
            &c,
            "POST",
            &format!("{api}/feed/digest/1/"),
            Some(a.clone()),
        )
        .await;
        assert_eq!(s, 201);
        let (s, _) = call(&c, "POST", &format!("{api}/feed/plain/1/"), Some(a)).await;
        assert_eq!(s, 201);
    }
    // `digest` is aggregated by the configuration: one group of two; `plain` stays flat.
    let (_, read) = call(&c, "GET", &format!("{api}/feed/digest/1/"), None).await;
    assert_eq!(read["results"].as_array().unwrap().len(), 1, "{read}");
    assert_eq!(read["results"][0]["activity_count"], json!(2), "{read}");
    let (_, read) = call(&c, "GET", &format!("{api}/feed/plain/1/"), None).await;
    assert_eq!(read["results"].as_array().unwrap().len(), 2, "{read}");
    assert!(read["results"][0].get("activities").is_none(), "{read}");
}
