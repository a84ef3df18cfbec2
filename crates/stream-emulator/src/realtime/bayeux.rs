//! Bayeux 1.0 as Faye speaks it, over either transport: a batch of messages in, the replies
//! out. A `/meta/connect` is the one message that waits: [`process`] returns it as a
//! [`HeldConnect`], and [`finish_connect`] answers it when something is queued for the client
//! or the hold (the `timeout` advice) has passed, with the queued messages after the reply.
//!
//! Clients only subscribe: publishing is Stream's (an activity added through the API), so a
//! message on any other channel is refused, as Stream's Faye refuses it.

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::HubError;
use super::Realm;

/// The transports a handshake offers (Faye's names).
pub const CONNECTION_TYPES: [&str; 3] = ["long-polling", "cross-origin-long-polling", "websocket"];

/// A `/meta/connect` to answer later.
#[derive(Debug, Clone)]
pub struct HeldConnect {
    client: String,
    id: Option<Value>,
    /// The client asked for an answer at once (`advice.timeout` 0, its first connect).
    now: bool,
}

/// Parses a request body: one message or an array of them.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_owned())?;
    let items = match v {
        Value::Array(a) => a,
        o @ Value::Object(_) => vec![o],
        _ => return Err("body is not a Bayeux message or an array of them".into()),
    };
    items
        .into_iter()
        .map(|m| match m {
            Value::Object(o) => Ok(o),
            _ => Err("a Bayeux message must be an object".into()),
        })
        .collect()
}

/// Answers every message of a batch at once but the connects, which come back held.
pub fn process(
    state: &dyn Realm,
    batch: Vec<Map<String, Value>>,
    now: Instant,
) -> (Vec<Value>, Vec<HeldConnect>) {
    let mut replies = Vec::new();
    let mut held = Vec::new();
    for m in batch {
        let channel = m
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let client = m.get("clientId").and_then(Value::as_str).map(str::to_owned);
        if let Some(c) = &client {
            state.realtime().touch(c, now);
        }
        let mut reply = Map::new();
        reply.insert("channel".into(), json!(channel));
        if let Some(id) = m.get("id") {
            reply.insert("id".into(), id.clone());
        }
        let outcome = match channel.as_str() {
            "/meta/handshake" => handshake(state, now),
            "/meta/connect" => match connect(state, client.as_deref(), &m) {
                Ok(h) => {
                    held.push(h);
                    continue;
                }
                Err(e) => Err(e),
            },
            "/meta/subscribe" => subscription(state, client.as_deref(), &m, true),
            "/meta/unsubscribe" => subscription(state, client.as_deref(), &m, false),
            "/meta/disconnect" => disconnect(state, client.as_deref()),
            "" => Err(Refusal::plain("400::channel is missing")),
            c if c.starts_with("/meta/") => {
                Err(Refusal::plain(&format!("404:{c}:Unknown meta channel")))
            }
            c => Err(Refusal::plain(&format!(
                "403:{c}:Publishing is not allowed: Stream publishes activities added through its API"
            ))),
        };
        match outcome {
            Ok(fields) => {
                reply.insert("successful".into(), json!(true));
                reply.extend(fields);
            }
            Err(r) => {
                reply.insert("successful".into(), json!(false));
                reply.insert("error".into(), json!(r.error));
                if let Some(a) = r.advice {
                    reply.insert("advice".into(), a);
                }
                if let Some(c) = &client {
                    reply.insert("clientId".into(), json!(c));
                }
            }
        }
        replies.push(Value::Object(reply));
    }
    (replies, held)
}

/// Answers a held connect: at once when something is queued or the client asked so, else
/// when something arrives or the hold has passed. The reply comes first, then the messages.
pub async fn finish_connect(state: &dyn Realm, h: HeldConnect) -> Vec<Value> {
    let hub = state.realtime();
    let hold = hub.bounds().connect_hold;
    let Some((wake, may_wait)) = hub.hold(&h.client) else {
        return vec![connect_reply(state, &h, None)];
    };
    // Released however this ends, also when the wait is dropped (its socket closed): a client
    // with a connect held is never swept.
    let _held = Held {
        hub,
        client: &h.client,
    };
    let deadline = Instant::now() + hold;
    let queued = loop {
        match hub.take(&h.client) {
            None => break None,
            Some(q) if !q.is_empty() || h.now || !may_wait => break Some(q),
            Some(_) => {}
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep_until(deadline) => break hub.take(&h.client),
        }
    };
    let mut out = vec![connect_reply(state, &h, queued.as_ref())];
    out.extend(queued.unwrap_or_default());
    out
}

/// A connect held for a client, released when dropped.
struct Held<'a> {
    hub: &'a super::Hub,
    client: &'a str,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.hub.release(self.client, Instant::now());
    }
}

fn connect_reply(state: &dyn Realm, h: &HeldConnect, known: Option<&Vec<Value>>) -> Value {
    let mut r = match known {
        Some(_) => json!({
            "channel": "/meta/connect",
            "successful": true,
            "clientId": h.client,
            "advice": advice(state),
        }),
        None => json!({
            "channel": "/meta/connect",
            "successful": false,
            "clientId": h.client,
            "error": format!("401:{}:Unknown client", h.client),
            "advice": {"reconnect": "handshake", "interval": 0},
        }),
    };
    if let Some(id) = &h.id {
        r["id"] = id.clone();
    }
    r
}

fn advice(state: &dyn Realm) -> Value {
    let ms = state.realtime().bounds().connect_hold.as_millis() as u64;
    json!({"reconnect": "retry", "interval": 0, "timeout": ms})
}

/// A refused message: the Bayeux `error` (`code:args:message`) and an optional advice.
struct Refusal {
    error: String,
    advice: Option<Value>,
}

impl Refusal {
    fn plain(error: &str) -> Self {
        Self {
            error: error.to_owned(),
            advice: None,
        }
    }

    fn unknown_client(client: &str) -> Self {
        Self {
            error: format!("401:{client}:Unknown client"),
            advice: Some(json!({"reconnect": "handshake", "interval": 0})),
        }
    }

    fn from_hub(e: HubError, client: &str) -> Self {
        match e {
            HubError::UnknownClient => Self::unknown_client(client),
            HubError::Full(why) => Self::plain(&format!("403::{why}")),
        }
    }
}

type Outcome = Result<Map<String, Value>, Refusal>;

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn handshake(state: &dyn Realm, now: Instant) -> Outcome {
    let id = state
        .realtime()
        .handshake(now)
        .map_err(|e| Refusal::from_hub(e, ""))?;
    Ok(fields(json!({
        "version": "1.0",
        "supportedConnectionTypes": CONNECTION_TYPES,
        "clientId": id,
        "advice": advice(state),
    })))
}

fn connect(
    state: &dyn Realm,
    client: Option<&str>,
    m: &Map<String, Value>,
) -> Result<HeldConnect, Refusal> {
    let client = client.ok_or_else(|| Refusal::plain("402::clientId is missing"))?;
    if !state.realtime().touch(client, Instant::now()) {
        return Err(Refusal::unknown_client(client));
    }
    let now = m
        .get("advice")
        .and_then(|a| a.get("timeout"))
        .and_then(Value::as_u64)
        == Some(0);
    Ok(HeldConnect {
        client: client.to_owned(),
        id: m.get("id").cloned(),
        now,
    })
}

fn subscription(
    state: &dyn Realm,
    client: Option<&str>,
    m: &Map<String, Value>,
    subscribe: bool,
) -> Outcome {
    let client = client.ok_or_else(|| Refusal::plain("402::clientId is missing"))?;
    let channel = m
        .get("subscription")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::plain("400::subscription must be one channel"))?;
    let echo = fields(json!({"clientId": client, "subscription": channel}));
    let hub = state.realtime();
    if !subscribe {
        hub.unsubscribe(client, channel)
            .map_err(|e| Refusal::from_hub(e, client))?;
        return Ok(echo);
    }
    if !hub.touch(client, Instant::now()) {
        return Err(Refusal::unknown_client(client));
    }
    let feed = hub.feed_of_channel(channel).ok_or_else(|| {
        Refusal::plain(&format!(
            "405:{channel}:Invalid channel: not a feed of this app (/site-{}-feed-<slug><user_id>)",
            hub.app_id()
        ))
    })?;
    state
        .authorize_subscription(m.get("ext"), feed)
        .map_err(|why| Refusal::plain(&format!("403:{channel}:{why}")))?;
    hub.subscribe(client, channel)
        .map_err(|e| Refusal::from_hub(e, client))?;
    Ok(echo)
}

fn disconnect(state: &dyn Realm, client: Option<&str>) -> Outcome {
    let client = client.ok_or_else(|| Refusal::plain("402::clientId is missing"))?;
    if !state.realtime().remove(client) {
        return Err(Refusal::unknown_client(client));
    }
    Ok(fields(json!({"clientId": client})))
}
