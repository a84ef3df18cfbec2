//! The whole store as one JSON document (`GET /_emulator/export`, format in
//! docs/emulator.md): what a console shows and what a later import reads back. Everything is
//! sorted, so two exports of the same data are the same text.

use serde_json::{json, Value};

use super::groups::FeedKind;
use super::objects::{entry_json, user_json};
use super::{fmt_time, Store};

/// The version of the export format; a reader refuses a version it does not know.
pub const EXPORT_VERSION: u32 = 1;

impl Store {
    /// The data as an export document, without the parts kept outside the store (analytics
    /// events, which [`crate::EmulatorState::export`] adds).
    pub fn export(&self) -> Value {
        let mut activities: Vec<(&str, &uuid::Uuid, Value)> = self
            .activities
            .iter()
            .map(|(id, a)| {
                let time = a.get("time").and_then(Value::as_str).unwrap_or("");
                (time, id, Value::Object(a.clone()))
            })
            .collect();
        activities.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut feed_ids: Vec<&String> = self.feeds.keys().collect();
        feed_ids.sort();
        let feeds: Vec<Value> = feed_ids.into_iter().map(|f| self.export_feed(f)).collect();
        let follows: Vec<Value> = self
            .follows
            .iter()
            .map(|f| {
                json!({
                    "feed_id": f.source,
                    "target_id": f.target,
                    "created_at": fmt_time(&f.created_at),
                })
            })
            .collect();
        let mut reactions: Vec<(&String, &serde_json::Map<String, Value>)> =
            self.reactions.iter().collect();
        reactions.sort_by(|a, b| a.0.cmp(b.0));
        let mut collections: Vec<_> = self.collections.iter().collect();
        collections.sort_by(|a, b| a.0.cmp(b.0));
        let mut users: Vec<_> = self.users.iter().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        json!({
            "version": EXPORT_VERSION,
            "activities": activities.into_iter().map(|(_, _, a)| a).collect::<Vec<_>>(),
            "feeds": feeds,
            "follows": follows,
            "reactions": reactions.into_iter().map(|(_, r)| Value::Object(r.clone())).collect::<Vec<_>>(),
            "collections": collections
                .into_iter()
                .map(|((name, id), e)| entry_json(name, id, e))
                .collect::<Vec<_>>(),
            "users": users.into_iter().map(|(id, u)| user_json(id, u)).collect::<Vec<_>>(),
        })
    }

    /// One feed: its kind, its entries newest first (`origin` null in the activity's own
    /// feed), and, when aggregated or notification, its groups.
    fn export_feed(&self, feed: &str) -> Value {
        let kind = self.kind(feed);
        let entries: Vec<Value> = self.feeds[feed]
            .iter()
            .map(|e| {
                json!({
                    "id": e.key.1.to_string(),
                    "origin": if e.origin == feed { Value::Null } else { json!(e.origin) },
                })
            })
            .collect();
        let mut out = json!({ "id": feed, "kind": kind, "activities": entries });
        if kind != FeedKind::Flat {
            // Groups as a read answers them, listing every activity's id rather than the
            // first 15 activities.
            let ids = self.grouped(feed).into_iter().map(|(_, entries)| {
                entries
                    .iter()
                    .map(|e| json!(e.key.1.to_string()))
                    .collect::<Vec<_>>()
            });
            let groups: Vec<Value> = self
                .read_groups(feed, usize::MAX, 0)
                .into_iter()
                .zip(ids)
                .map(|(mut g, ids)| {
                    if let Some(g) = g.as_object_mut() {
                        g.remove("activities");
                        g.insert("activity_ids".into(), Value::Array(ids));
                    }
                    g
                })
                .collect();
            out["groups"] = Value::Array(groups);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::groups::FeedGroups;
    use serde_json::Map;
    use stream_wire::FeedId;

    fn activity(verb: &str, time: &str) -> Map<String, Value> {
        json!({"actor": "a", "verb": verb, "object": "o", "time": time})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn an_empty_store_exports_empty_lists_and_the_version() {
        let v = Store::new(FeedGroups::default()).export();
        assert_eq!(v["version"], 1);
        let lists = super::super::import::PARTS
            .into_iter()
            .filter(|p| !matches!(*p, "version" | "analytics"));
        for part in lists {
            assert_eq!(v[part], json!([]), "{part}");
        }
    }

    #[test]
    fn feeds_export_their_entries_origins_and_groups() {
        let mut s = Store::new(FeedGroups::default());
        let user = FeedId::parse("user:1").unwrap();
        let agg = FeedId::parse("notification:1").unwrap();
        let timeline = FeedId::parse("timeline:1").unwrap();
        s.follow(&timeline, &user, 10);
        let a = s.add(&user, activity("post", "2026-01-01T10:00:00"));
        s.add(&agg, activity("like", "2026-01-01T10:00:00"));
        s.add(&agg, activity("like", "2026-01-01T11:00:00"));
        s.users.insert("u1".into(), Map::new());
        s.collections
            .insert(("food".into(), "f1".into()), Map::new());
        let v = s.export();
        assert_eq!(v["activities"].as_array().unwrap().len(), 3);
        let feeds = v["feeds"].as_array().unwrap();
        let ids: Vec<&str> = feeds.iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["notification:1", "timeline:1", "user:1"]);
        assert_eq!(feeds[2]["kind"], "flat");
        assert_eq!(
            feeds[2]["activities"][0],
            json!({"id": a["id"], "origin": null})
        );
        assert_eq!(feeds[1]["activities"][0]["origin"], "user:1");
        assert!(feeds[2].get("groups").is_none());
        let groups = feeds[0]["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0]["group"], "like_2026-01-01");
        assert_eq!(groups[0]["activity_ids"].as_array().unwrap().len(), 2);
        assert_eq!(groups[0]["is_seen"], false);
        assert!(groups[0].get("activities").is_none());
        assert_eq!(v["follows"][0]["feed_id"], "timeline:1");
        assert_eq!(v["follows"][0]["target_id"], "user:1");
        assert_eq!(v["users"], json!([{"id": "u1"}]));
        assert_eq!(v["collections"][0]["foreign_id"], "food:f1");
    }
}
