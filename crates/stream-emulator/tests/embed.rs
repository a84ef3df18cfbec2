//! The emulator embedded in a test with one call, as its README shows: a feed written and read
//! back with tokens scoped as Stream scopes them, and a token for another feed refused.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use stream_emulator::{Emulator, EmulatorConfig};
use stream_wire::auth::{jwt, Secret};
use stream_wire::{Action, FeedClaim, Resource, Scope};

const KEY: &str = "key";

fn token(secret: &Secret, action: Action, feed: &str) -> String {
    let scope = Scope {
        resource: Resource::Feed,
        action,
        feed: FeedClaim::One(feed.into()),
    };
    jwt::encode(&jwt::Claims::for_scope(&scope, None), secret)
}

async fn call(emu: &Emulator, method: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(format!(
            "{}/api/v1.0/feed/user/42/?api_key={KEY}",
            emu.url()
        ))
        .header("authorization", token)
        .header("stream-auth-type", "jwt")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn an_embedded_emulator_stores_what_a_scoped_token_writes_and_refuses_another_feeds_token() {
    let secret = Secret::new("secret");
    // The one call: an emulator on a free loopback port, verifying as Stream does.
    let emu = Emulator::spawn(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: secret.clone(),
            strict_scopes: true,
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();

    let activity = json!({"actor": "user:42", "verb": "post", "object": "photo:1"});
    let write = token(&secret, Action::Write, "user42");
    let (status, added) = call(&emu, "POST", &write, Some(activity)).await;
    assert_eq!(status, 201, "{added}");

    let (status, read) = call(&emu, "GET", &token(&secret, Action::Read, "user42"), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["results"][0]["id"], added["id"]);

    let (status, refused) = call(&emu, "GET", &token(&secret, Action::Read, "user43"), None).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["exception"], "NotAllowedException");
}
