//! Feed membership changes, recorded where they happen (an entry inserted into a feed, or taken
//! out of one) and drained into realtime messages once per store lock: the one place every
//! add, removal and fan-out (followers, `to` targets, `add_to_many`, copy on follow, purge on
//! unfollow) passes through, so no handler has to remember realtime.

use serde_json::{json, Value};
use uuid::Uuid;

use super::groups::FeedKind;
use super::Store;

/// One change to a feed's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The feed, `slug:user`.
    pub feed: String,
    /// The activity.
    pub id: Uuid,
    /// True when it entered the feed, false when it left it.
    pub added: bool,
}

impl Change {
    /// `id` entered `feed`.
    pub fn added(feed: &str, id: Uuid) -> Self {
        Self {
            feed: feed.to_owned(),
            id,
            added: true,
        }
    }

    /// `id` left `feed`.
    pub fn removed(feed: &str, id: Uuid) -> Self {
        Self {
            feed: feed.to_owned(),
            id,
            added: false,
        }
    }
}

/// What one feed's subscribers get for the changes of one store lock: Stream's realtime message
/// without the fields the publisher adds (`app_id`, `published_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedUpdate {
    /// The feed, `slug:user`.
    pub feed: String,
    /// The activities added, as a read of the feed shows them.
    pub new: Vec<Value>,
    /// The ids of the activities removed.
    pub deleted: Vec<String>,
    /// `[foreign_id, time]` of the removed activities that have a foreign id.
    pub deleted_foreign_ids: Vec<Value>,
}

/// Most changes kept for one lock; past it (a huge copy on follow with nobody draining, as in
/// unit tests of the store) newer ones are not kept rather than memory growing.
const MAX_PENDING: usize = 100_000;

impl Store {
    /// Records a change.
    pub(super) fn changed(&mut self, change: Change) {
        if self.changes.len() < MAX_PENDING {
            self.changes.push(change);
        }
    }

    /// True when changes wait to be drained.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Takes the recorded changes and renders, for each feed `wanted` says someone listens to
    /// (in the order feeds first changed), one update; the others are dropped unrendered.
    pub fn drain_changes(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<FeedUpdate> {
        let changes = std::mem::take(&mut self.changes);
        let mut updates: Vec<FeedUpdate> = Vec::new();
        for c in changes {
            if !wanted(&c.feed) {
                continue;
            }
            let at = match updates.iter().position(|u| u.feed == c.feed) {
                Some(i) => i,
                None => {
                    updates.push(FeedUpdate {
                        feed: c.feed.clone(),
                        new: Vec::new(),
                        deleted: Vec::new(),
                        deleted_foreign_ids: Vec::new(),
                    });
                    updates.len() - 1
                }
            };
            let u = &mut updates[at];
            if c.added {
                let entry = self
                    .feeds
                    .get(&c.feed)
                    .and_then(|l| l.iter().find(|e| e.key.1 == c.id));
                // Gone again before the drain: nothing to announce as new.
                if let Some(e) = entry {
                    let mut item = self.render_entry(e, &c.feed);
                    // In an aggregated or notification feed, the group it joined.
                    if self.kind(&c.feed) != FeedKind::Flat {
                        item["group"] = json!(self.group_key(&e.key));
                    }
                    u.new.push(item);
                }
            } else {
                u.deleted.push(c.id.to_string());
                let a = self.activities.get(&c.id);
                let foreign = a.and_then(|a| a.get("foreign_id")).and_then(Value::as_str);
                let time = a.and_then(|a| a.get("time")).and_then(Value::as_str);
                if let (Some(f), Some(t)) = (foreign, time) {
                    u.deleted_foreign_ids.push(json!([f, t]));
                }
            }
        }
        updates.retain(|u| !(u.new.is_empty() && u.deleted.is_empty()));
        updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use stream_wire::FeedId;

    fn feed(s: &str) -> FeedId {
        FeedId::parse(s).unwrap()
    }

    fn act(object: &str, foreign: Option<&str>) -> Map<String, Value> {
        let mut v = json!({"actor": "u", "verb": "post", "object": object});
        if let Some(f) = foreign {
            v["foreign_id"] = json!(f);
            v["time"] = json!("2026-01-02T03:04:05.000006");
        }
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_add_reaches_its_feed_its_followers_and_its_targets_each_once() {
        let mut s = Store::default();
        s.follow(&feed("timeline:1"), &feed("user:1"), 0);
        s.drain_changes(|_| true);
        let mut a = act("o1", None);
        a.insert("to".into(), json!(["notification:2"]));
        s.add(&feed("user:1"), a);
        let updates = s.drain_changes(|_| true);
        let feeds: Vec<&str> = updates.iter().map(|u| u.feed.as_str()).collect();
        assert_eq!(feeds, ["user:1", "timeline:1", "notification:2"]);
        assert!(updates
            .iter()
            .all(|u| u.new.len() == 1 && u.deleted.is_empty()));
        assert_eq!(updates[0].new[0]["origin"], Value::Null);
        assert_eq!(updates[1].new[0]["origin"], "user:1");
        assert_eq!(
            updates[0].new[0].get("group"),
            None,
            "a flat feed has no groups"
        );
        let group = updates[2].new[0]["group"].as_str().unwrap();
        assert!(group.starts_with("post_20"), "{group}");
        assert!(!s.has_changes(), "drained");
    }

    #[test]
    fn a_removal_names_the_id_and_the_foreign_id_with_its_time_in_every_feed_it_left() {
        let mut s = Store::default();
        s.follow(&feed("timeline:1"), &feed("user:1"), 0);
        let added = s.add(&feed("user:1"), act("o1", Some("post:1")));
        let id = added["id"].as_str().unwrap().to_owned();
        s.drain_changes(|_| true);
        assert!(s.remove(&feed("user:1"), &id, false));
        let mut updates = s.drain_changes(|_| true);
        updates.sort_by(|a, b| a.feed.cmp(&b.feed));
        assert_eq!(updates.len(), 2);
        for u in &updates {
            assert_eq!(u.deleted, std::slice::from_ref(&id));
            assert_eq!(
                u.deleted_foreign_ids,
                [json!(["post:1", "2026-01-02T03:04:05.000006"])]
            );
        }
    }

    #[test]
    fn copy_on_follow_and_purge_on_unfollow_are_changes_of_the_follower() {
        let mut s = Store::default();
        s.add(&feed("user:1"), act("o1", None));
        s.add(&feed("user:1"), act("o2", None));
        s.drain_changes(|_| true);
        s.follow(&feed("timeline:1"), &feed("user:1"), 300);
        let u = s.drain_changes(|_| true);
        assert_eq!(
            (u.len(), u[0].feed.as_str(), u[0].new.len()),
            (1, "timeline:1", 2)
        );
        s.unfollow(&feed("timeline:1"), &feed("user:1"), false);
        let u = s.drain_changes(|_| true);
        assert_eq!((u.len(), u[0].deleted.len()), (1, 2));
    }

    #[test]
    fn feeds_nobody_listens_to_are_dropped_unrendered() {
        let mut s = Store::default();
        s.add_to_many(&[feed("user:1"), feed("user:2")], act("o1", None));
        let u = s.drain_changes(|f| f == "user:2");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].feed, "user:2");
        assert!(!s.has_changes());
    }

    #[test]
    fn target_updates_announce_the_targets_left_and_entered() {
        let mut s = Store::default();
        let mut a = act("o1", Some("post:1"));
        a.insert("to".into(), json!(["user:2"]));
        s.add(&feed("user:1"), a);
        s.drain_changes(|_| true);
        let t = super::super::parse_time("2026-01-02T03:04:05.000006").unwrap();
        s.update_to_targets(
            &feed("user:1"),
            "post:1",
            t,
            Some(vec!["user:3".into()]),
            vec![],
            vec![],
        )
        .unwrap();
        let mut u = s.drain_changes(|_| true);
        u.sort_by(|a, b| a.feed.cmp(&b.feed));
        assert_eq!(u[0].feed, "user:2");
        assert_eq!(u[0].deleted.len(), 1);
        assert_eq!(u[1].feed, "user:3");
        assert_eq!(u[1].new.len(), 1);
    }
}
