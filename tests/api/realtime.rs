//! The emulator's realtime (Faye/Bayeux), through a small Bayeux client of our own over both
//! transports: subscriptions with stream-js's `ext` and a read token from the gateway's
//! `/tokens`, activities written through the gateway pushed to them, and every refusal.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use stream_emulator::{Emulator, EmulatorConfig, FeedGroups, RealtimeBounds, RealtimeSettings};
use stream_gateway::config::Config;
use stream_wire::auth::{jwt, Secret};
use stream_wire::{Action, FeedClaim, Resource, Scope};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const APP_ID: &str = "424242";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    LongPolling,
    WebSocket,
}

const BOTH: [Transport; 2] = [Transport::LongPolling, Transport::WebSocket];

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Bayeux client: handshakes on creation; `call` sends messages and returns the replies to
/// them; `poll` sends a `/meta/connect` and returns what it delivered.
struct Bayeux {
    url: String,
    http: reqwest::Client,
    socket: Option<Socket>,
    client_id: String,
    next_id: u64,
}

impl Bayeux {
    async fn new(addr: SocketAddr, transport: Transport) -> Self {
        let socket = match transport {
            Transport::LongPolling => None,
            Transport::WebSocket => Some(
                tokio_tungstenite::connect_async(format!("ws://{addr}/faye"))
                    .await
                    .expect("websocket upgrade")
                    .0,
            ),
        };
        let mut b = Self {
            url: format!("http://{addr}/faye/"),
            http: reqwest::Client::new(),
            socket,
            client_id: String::new(),
            next_id: 0,
        };
        let r = b
            .call(json!({
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["websocket", "long-polling"],
            }))
            .await;
        assert_eq!(r["successful"], true, "{r}");
        assert!(r["supportedConnectionTypes"]
            .as_array()
            .unwrap()
            .contains(&json!("websocket")));
        b.client_id = r["clientId"].as_str().unwrap().to_owned();
        b
    }

    /// Sends one message (with an id and the client id) and returns every message that came
    /// back with it, the reply first.
    async fn exchange(&mut self, mut m: Value) -> Vec<Value> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        m["id"] = json!(id);
        if !self.client_id.is_empty() && m.get("clientId").is_none() {
            m["clientId"] = json!(self.client_id);
        }
        let batch = json!([m]).to_string();
        match &mut self.socket {
            None => {
                let r = self
                    .http
                    .post(&self.url)
                    .header("content-type", "application/json")
                    .body(batch)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                v.as_array().unwrap().clone()
            }
            Some(ws) => {
                ws.send(Message::text(batch)).await.unwrap();
                loop {
                    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                        .await
                        .expect("a frame in time")
                        .expect("socket open")
                        .unwrap();
                    let Message::Text(t) = frame else { continue };
                    let v: Vec<Value> = serde_json::from_str(t.as_str()).unwrap();
                    if v.iter().any(|r| r["id"] == json!(id)) {
                        return v;
                    }
                }
            }
        }
    }

    async fn call(&mut self, m: Value) -> Value {
        self.exchange(m).await.remove(0)
    }

    async fn subscribe(&mut self, channel: &str, token: &str) -> Value {
        let ext =
            json!({"user_id": channel.trim_start_matches('/'), "api_key": KEY, "signature": token});
        self.call(json!({"channel": "/meta/subscribe", "subscription": channel, "ext": ext}))
            .await
    }

    /// One `/meta/connect`: its reply, and the data of what it delivered.
    async fn connect(&mut self) -> (Value, Vec<Value>) {
        let mut all = self
            .exchange(json!({"channel": "/meta/connect", "connectionType": "long-polling"}))
            .await;
        let reply = all.remove(0);
        let data = all
            .into_iter()
            .map(|d| {
                assert!(!d["channel"].as_str().unwrap().starts_with("/meta/"), "{d}");
                d["data"].clone()
            })
            .collect();
        (reply, data)
    }

    /// Connects until something is delivered.
    async fn next(&mut self) -> Vec<Value> {
        for _ in 0..20 {
            let (reply, data) = self.connect().await;
            assert_eq!(reply["successful"], true, "{reply}");
            if !data.is_empty() {
                return data;
            }
        }
        panic!("nothing delivered");
    }
}

fn bounds() -> RealtimeBounds {
    RealtimeBounds {
        connect_hold: Duration::from_millis(400),
        ..RealtimeBounds::default()
    }
}

async fn realtime_app_with(bounds: RealtimeBounds, listen: Option<SocketAddr>) -> TestApp {
    let emu = Emulator::spawn_with_realtime(
        EmulatorConfig {
            api_key: KEY.into(),
            api_secret: Secret::new(SECRET),
            strict_scopes: true,
        },
        FeedGroups::default(),
        RealtimeSettings {
            app_id: APP_ID.into(),
            listen,
            bounds,
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = Config::from_figment(&base_figment(&emu).merge(("stream.app_id", APP_ID)))
        .expect("test config is valid");
    start(config, emu).await
}

async fn realtime_app() -> TestApp {
    realtime_app_with(bounds(), None).await
}

fn channel(feed: &str) -> String {
    format!("/site-{APP_ID}-feed-{}", feed.replace(':', ""))
}

/// A read token for `feed`, from the gateway's `POST /tokens`, as a frontend gets it.
async fn read_token(app: &TestApp, feed: &str) -> String {
    let r = app
        .tokens(
            json!({"feed": feed, "resource": "feed", "action": "read"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["app_id"], APP_ID);
    r.json["token"].as_str().unwrap().to_owned()
}

fn objects(data: &[Value], key: &str) -> Vec<String> {
    data.iter()
        .flat_map(|d| d[key].as_array().unwrap().clone())
        .map(|a| match key {
            "new" => a["object"].as_str().unwrap().to_owned(),
            _ => a.as_str().unwrap().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_subscription_receives_adds_removes_and_fan_out_over_both_transports() {
    for transport in BOTH {
        let app = realtime_app().await;
        let token = read_token(&app, "timeline:1").await;
        let mut c = Bayeux::new(app.emu.addr(), transport).await;
        let r = c.subscribe(&channel("timeline:1"), &token).await;
        assert_eq!(r["successful"], true, "{transport:?}: {r}");
        assert_eq!(r["subscription"], channel("timeline:1"));

        // Copy on follow.
        let first = json!({"actor": "u1", "verb": "post", "object": "o1", "foreign_id": "post:1", "time": "2026-01-02T03:04:05"});
        assert_eq!(app.post("/feed/user/1/", &first).await.status, 201);
        let r = app
            .post("/feed/timeline/1/follows/", &json!({"target": "user:1"}))
            .await;
        assert_eq!(r.status, 201);
        let data = c.next().await;
        assert_eq!(objects(&data, "new"), ["o1"], "{transport:?}");
        let d = &data[0];
        assert_eq!(d["feed"], "timeline:1");
        assert_eq!(d["app_id"], APP_ID);
        assert!(d["published_at"].as_str().unwrap().starts_with("20"), "{d}");
        assert_eq!(d["new"][0]["origin"], "user:1");
        assert_eq!(d["deleted"], json!([]));

        // Fan-out of an add to a followed feed, and a `to` target.
        let r = app
            .post(
                "/feed/user/1/",
                &json!({"actor": "u1", "verb": "post", "object": "o2", "to": ["timeline:1"]}),
            )
            .await;
        assert_eq!(r.status, 201);
        let id = r.json["id"].as_str().unwrap().to_owned();
        let data = c.next().await;
        assert_eq!(objects(&data, "new"), ["o2"], "one entry, reached twice");

        // Batch add.
        let r = app
            .post(
                "/feed/add_to_many/",
                &json!({"feeds": ["timeline:1", "user:9"], "activity": {"actor": "u", "verb": "v", "object": "o3"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        assert_eq!(objects(&c.next().await, "new"), ["o3"]);

        // Removal from the origin feed leaves the follower's feed too.
        assert_eq!(app.delete(&format!("/feed/user/1/{id}/")).await.status, 200);
        let data = c.next().await;
        assert_eq!(objects(&data, "deleted"), std::slice::from_ref(&id));
        assert_eq!(data[0]["new"], json!([]));

        // By foreign id: `deleted_foreign_ids` carries it with its time.
        assert_eq!(
            app.delete("/feed/user/1/post:1/?foreign_id=1").await.status,
            200
        );
        let data = c.next().await;
        assert_eq!(
            data[0]["deleted_foreign_ids"],
            json!([["post:1", "2026-01-02T03:04:05.000000"]])
        );
    }
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "a table of refusals, over both transports"
)]
async fn subscriptions_are_refused_without_the_ext_or_with_the_wrong_key_feed_token_or_app() {
    let app = realtime_app().await;
    let good = read_token(&app, "user:1").await;
    let other_feed = read_token(&app, "user:2").await;
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let scope = Scope {
        resource: Resource::Feed,
        action: Action::Read,
        feed: FeedClaim::One("user1".into()),
    };
    let other_app = jwt::encode(
        &jwt::Claims::for_scope(&scope, None),
        &Secret::new("another-apps-secret"),
    );
    let write_only = jwt::encode(
        &jwt::Claims::for_scope(
            &Scope {
                action: Action::Write,
                ..scope.clone()
            },
            None,
        ),
        &Secret::new(SECRET),
    );
    let expired = jwt::encode(
        &jwt::Claims::for_scope(&scope, Some(1)),
        &Secret::new(SECRET),
    );
    for transport in BOTH {
        let mut c = Bayeux::new(app.emu.addr(), transport).await;
        let ch = channel("user:1");
        let mut refused = vec![];
        for (why, ext) in [
            ("no ext", Value::Null),
            ("no signature", json!({"user_id": "x", "api_key": KEY})),
            ("no user_id", json!({"api_key": KEY, "signature": good})),
            (
                "another api key",
                json!({"user_id": "x", "api_key": "not-the-key", "signature": good}),
            ),
            (
                "another feed's token",
                json!({"user_id": "x", "api_key": KEY, "signature": other_feed}),
            ),
            (
                "a tampered token",
                json!({"user_id": "x", "api_key": KEY, "signature": tampered}),
            ),
            (
                "another app's token",
                json!({"user_id": "x", "api_key": KEY, "signature": other_app}),
            ),
            (
                "a write token",
                json!({"user_id": "x", "api_key": KEY, "signature": write_only}),
            ),
            (
                "an expired token",
                json!({"user_id": "x", "api_key": KEY, "signature": expired}),
            ),
        ] {
            let r = c
                .call(json!({"channel": "/meta/subscribe", "subscription": ch, "ext": ext}))
                .await;
            assert_eq!(r["successful"], false, "{transport:?} {why}: {r}");
            let e = r["error"].as_str().unwrap();
            assert!(e.starts_with(&format!("403:{ch}:")), "{why}: {e}");
            refused.push(e.to_owned());
        }
        // Another app's channel, even with a good token; and publishing.
        let r = c.subscribe("/site-1-feed-user1", &good).await;
        assert!(r["error"].as_str().unwrap().starts_with("405:"), "{r}");
        let r = c.call(json!({"channel": ch, "data": {"new": []}})).await;
        assert!(r["error"].as_str().unwrap().starts_with("403:"), "{r}");
        // No subscription was taken by any refusal: an add reaches nobody.
        assert!(!app.emu().realtime().listens("user:1"));
        // And the good token works.
        let r = c.subscribe(&ch, &good).await;
        assert_eq!(r["successful"], true, "{r}");
        assert!(app.emu().realtime().listens("user:1"));
        c.call(json!({"channel": "/meta/unsubscribe", "subscription": ch}))
            .await;
    }
}

#[tokio::test]
async fn a_user_token_or_a_wider_scope_token_subscribes_too() {
    let app = realtime_app().await;
    let mut c = Bayeux::new(app.emu.addr(), Transport::LongPolling).await;
    let user = jwt::encode(
        &jwt::Claims {
            user_id: Some("1".into()),
            ..Default::default()
        },
        &Secret::new(SECRET),
    );
    assert_eq!(
        c.subscribe(&channel("user:1"), &user).await["successful"],
        true
    );
    let all = jwt::encode(
        &jwt::Claims::for_scope(
            &Scope {
                resource: Resource::All,
                action: Action::All,
                feed: FeedClaim::All,
            },
            None,
        ),
        &Secret::new(SECRET),
    );
    assert_eq!(
        c.subscribe(&channel("user:2"), &all).await["successful"],
        true
    );
}

#[tokio::test]
async fn an_unsubscribed_or_disconnected_client_receives_nothing_more() {
    let app = realtime_app().await;
    let token = read_token(&app, "user:1").await;
    for transport in BOTH {
        let mut c = Bayeux::new(app.emu.addr(), transport).await;
        assert_eq!(
            c.subscribe(&channel("user:1"), &token).await["successful"],
            true
        );
        let r = c
            .call(json!({"channel": "/meta/unsubscribe", "subscription": channel("user:1")}))
            .await;
        assert_eq!(r["successful"], true, "{r}");
        assert_eq!(app.post("/feed/user/1/", &activity(1)).await.status, 201);
        let (reply, data) = c.connect().await;
        assert_eq!(reply["successful"], true);
        assert!(data.is_empty(), "{data:?}");
        assert_eq!(reply["advice"]["timeout"], 400, "the hold is the advice");

        let r = c.call(json!({"channel": "/meta/disconnect"})).await;
        assert_eq!(r["successful"], true, "{r}");
        let (reply, _) = c.connect().await;
        assert_eq!(reply["successful"], false);
        assert!(
            reply["error"].as_str().unwrap().starts_with("401:"),
            "{reply}"
        );
        assert_eq!(reply["advice"]["reconnect"], "handshake");
        let r = c.subscribe(&channel("user:1"), &token).await;
        assert!(r["error"].as_str().unwrap().starts_with("401:"), "{r}");
    }
}

#[tokio::test]
async fn many_subscribers_on_one_feed_each_receive_the_activity() {
    let app = realtime_app().await;
    let token = read_token(&app, "user:7").await;
    let mut clients = Vec::new();
    for n in 0..16 {
        let t = if n % 2 == 0 {
            Transport::LongPolling
        } else {
            Transport::WebSocket
        };
        let mut c = Bayeux::new(app.emu.addr(), t).await;
        assert_eq!(
            c.subscribe(&channel("user:7"), &token).await["successful"],
            true
        );
        clients.push(c);
    }
    // Connects held at once, answered when the activity arrives, not at the hold's end.
    let waiting: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.next().await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.post("/feed/user/7/", &activity(7)).await.status, 201);
    for w in waiting {
        let data = w.await.unwrap();
        assert_eq!(objects(&data, "new").len(), 1);
    }
}

#[tokio::test]
async fn a_slow_subscriber_is_dropped_and_does_not_stall_the_others() {
    let app = realtime_app_with(
        RealtimeBounds {
            max_queued: 3,
            ..bounds()
        },
        None,
    )
    .await;
    let token = read_token(&app, "user:1").await;
    let mut slow = Bayeux::new(app.emu.addr(), Transport::LongPolling).await;
    let mut fast = Bayeux::new(app.emu.addr(), Transport::WebSocket).await;
    assert_eq!(
        slow.subscribe(&channel("user:1"), &token).await["successful"],
        true
    );
    assert_eq!(
        fast.subscribe(&channel("user:1"), &token).await["successful"],
        true
    );
    let mut got = Vec::new();
    for n in 1..=8 {
        assert_eq!(app.post("/feed/user/1/", &activity(n)).await.status, 201);
        got.extend(objects(&fast.next().await, "new"));
    }
    let expected: Vec<String> = (1..=8)
        .map(|n| activity(n)["object"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected, "every activity, in order");
    // The slow one never polled: dropped at its fourth message, it must handshake again.
    let (reply, data) = slow.connect().await;
    assert!(data.is_empty());
    assert!(
        reply["error"].as_str().unwrap().starts_with("401:"),
        "{reply}"
    );
    assert_eq!(reply["advice"]["reconnect"], "handshake");
}

#[tokio::test]
async fn bounds_refuse_large_messages_and_too_many_subscriptions_and_close_idle_sockets() {
    let app = realtime_app_with(
        RealtimeBounds {
            max_message_bytes: 2048,
            max_subscriptions: 2,
            idle: Duration::from_secs(1),
            ..bounds()
        },
        None,
    )
    .await;
    let url = format!("http://{}/faye", app.emu.addr());
    let big = json!([{"channel": "/meta/handshake", "pad": "x".repeat(4096)}]).to_string();
    let r = reqwest::Client::new()
        .post(&url)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let mut tokens = Vec::new();
    for feed in ["user:1", "user:2", "user:3"] {
        tokens.push(read_token(&app, feed).await);
    }
    let mut c = Bayeux::new(app.emu.addr(), Transport::LongPolling).await;
    for (feed, t) in ["user:1", "user:2"].iter().zip(&tokens) {
        assert_eq!(c.subscribe(&channel(feed), t).await["successful"], true);
    }
    let r = c.subscribe(&channel("user:3"), &tokens[2]).await;
    assert_eq!(r["successful"], false, "{r}");

    // A silent socket is closed; a client not heard from is forgotten.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/faye", app.emu.addr()))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the idle socket was closed");
    wait_until("the idle client is swept", || {
        app.emu().realtime().client_count() == 0
    })
    .await;
    let (reply, _) = c.connect().await;
    assert!(
        reply["error"].as_str().unwrap().starts_with("401:"),
        "{reply}"
    );
}

#[tokio::test]
async fn realtime_is_also_served_on_its_own_listener_and_a_taken_port_leaves_the_main_one() {
    let first = realtime_app_with(bounds(), Some(([127, 0, 0, 1], 0).into())).await;
    let own = first.emu.realtime_addr().expect("bound");
    let mut c = Bayeux::new(own, Transport::WebSocket).await;
    let token = read_token(&first, "user:1").await;
    assert_eq!(
        c.subscribe(&channel("user:1"), &token).await["successful"],
        true
    );
    assert_eq!(first.post("/feed/user/1/", &activity(1)).await.status, 201);
    assert_eq!(objects(&c.next().await, "new").len(), 1);

    let second = realtime_app_with(bounds(), Some(own)).await;
    assert_eq!(second.emu.realtime_addr(), None, "the port was taken");
    let mut c = Bayeux::new(second.emu.addr(), Transport::LongPolling).await;
    let r = c.call(json!({"channel": "/meta/nothing"})).await;
    assert!(r["error"].as_str().unwrap().starts_with("404:"), "{r}");
}

#[tokio::test]
async fn long_polling_takes_forms_and_get_and_answers_cors() {
    let app = realtime_app().await;
    let url = format!("http://{}/faye", app.emu.addr());
    let http = reqwest::Client::new();
    let handshake = json!({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]});
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://localhost:3000")
        .body(format!(
            "message={}",
            percent_encoding::utf8_percent_encode(
                &handshake.to_string(),
                percent_encoding::NON_ALPHANUMERIC
            )
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v[0]["successful"], true);
    let r = http
        .get(&url)
        .query(&[("message", handshake.to_string())])
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v[0]["successful"], true);
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:3000")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-headers"], "content-type");
    for bad in ["not json", "3", "[1]"] {
        let r = http.post(&url).body(bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(http.get(&url).send().await.unwrap().status(), 400);
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("other=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(http.put(&url).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn a_socket_sending_binary_or_not_bayeux_is_closed_and_a_bad_upgrade_is_refused() {
    let app = realtime_app_with(
        RealtimeBounds {
            max_message_bytes: 2048,
            ..bounds()
        },
        None,
    )
    .await;
    let url = format!("ws://{}/faye", app.emu.addr());
    for bad in [
        Message::binary(vec![1u8, 2, 3]),
        Message::text("not json"),
        Message::text("x".repeat(4096)),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(Message::Ping(vec![1u8].into())).await.unwrap();
        ws.send(bad.clone()).await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "closed after {bad:?}");
    }
    // Asking to upgrade without the WebSocket handshake's headers.
    let r = reqwest::Client::new()
        .get(format!("http://{}/faye", app.emu.addr()))
        .header("upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // A GET's message is bounded too.
    let r = reqwest::Client::new()
        .get(format!("http://{}/faye", app.emu.addr()))
        .query(&[("message", "x".repeat(4096))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn malformed_or_unknown_messages_get_bayeux_errors_in_the_same_batch() {
    let app = realtime_app_with(
        RealtimeBounds {
            max_clients: 1,
            connect_hold: Duration::from_secs(5),
            ..bounds()
        },
        None,
    )
    .await;
    let mut c = Bayeux::new(app.emu.addr(), Transport::LongPolling).await;
    let batch = json!([
        {"id": "a"},
        {"channel": "/meta/connect", "id": "b"},
        {"channel": "/meta/subscribe", "clientId": c.client_id, "subscription": ["/x", "/y"], "id": "c"},
        {"channel": "/meta/unsubscribe", "clientId": "nobody", "subscription": "/x", "id": "d"},
        {"channel": "/meta/disconnect", "clientId": "nobody", "id": "e"},
        {"channel": "/meta/handshake", "version": "1.0", "id": "f"},
        {"channel": "/meta/connect", "clientId": "nobody", "id": "g"},
        {"channel": "/meta/subscribe", "clientId": "nobody", "subscription": channel("user:1"), "id": "h"},
    ]);
    let r = reqwest::Client::new()
        .post(&c.url)
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    let replies: Vec<Value> = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let error = |id: &str| {
        let r = replies.iter().find(|r| r["id"] == id).unwrap();
        assert_eq!(r["successful"], false, "{r}");
        r["error"].as_str().unwrap().to_owned()
    };
    assert!(error("a").starts_with("400::"));
    assert!(error("b").starts_with("402::"));
    assert!(error("c").starts_with("400::"));
    assert!(error("d").starts_with("401:nobody:"));
    assert!(error("e").starts_with("401:nobody:"));
    assert_eq!(error("f"), "403::too many clients");
    assert!(error("g").starts_with("401:nobody:"));
    assert!(error("h").starts_with("401:nobody:"));
    // The first connect of a client (advice timeout 0) is answered at once.
    let t0 = std::time::Instant::now();
    let r = c
        .call(json!({"channel": "/meta/connect", "connectionType": "long-polling", "advice": {"timeout": 0}}))
        .await;
    assert_eq!(r["successful"], true);
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn connects_past_four_are_answered_at_once_and_a_closed_socket_leaves_a_client_that_is_swept()
{
    let app = realtime_app_with(
        RealtimeBounds {
            connect_hold: Duration::from_secs(30),
            idle: Duration::from_secs(1),
            ..bounds()
        },
        None,
    )
    .await;
    let mut w = Bayeux::new(app.emu.addr(), Transport::WebSocket).await;
    let connect = json!([{"channel": "/meta/connect", "clientId": w.client_id, "connectionType": "websocket"}]);
    let mut ws = w.socket.take().unwrap();
    // Four connects wait (held 30 s); a fifth is answered at once.
    for _ in 0..5 {
        ws.send(Message::text(connect.to_string())).await.unwrap();
    }
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the fifth connect answered at once")
        .unwrap()
        .unwrap();
    let replies: Vec<Value> = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(replies[0]["channel"], "/meta/connect");
    assert_eq!(replies[0]["successful"], true);
    drop(ws);
    wait_until("the client of a closed socket is swept", || {
        app.emu().realtime().client_count() == 0
    })
    .await;
}
