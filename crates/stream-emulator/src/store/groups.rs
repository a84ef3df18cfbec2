//! Aggregated and notification feeds. Which kind a feed group is comes from
//! [`FeedGroups`] (Stream's default app: `aggregated` aggregated, `notification`
//! notification, every other group flat). Activities group by Stream's default aggregation
//! format, `{{ verb.id }}_{{ time.strftime('%Y-%m-%d') }}`: one group per verb and day.
//! Notification groups are seen or read up to their newest activity, so a new activity
//! makes its group unseen and unread again.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{fmt_time, Entry, Key, Store};

/// Activities listed in a group (Stream's default `max_length` of a group's list).
const GROUP_ACTIVITIES: usize = 15;

/// The kind of a feed group, as Stream's dashboard sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// Activities, newest first.
    Flat,
    /// Groups of activities.
    Aggregated,
    /// Groups with seen and read state.
    Notification,
}

/// The kind of each feed group: configured ones, else Stream's default test app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedGroups {
    configured: HashMap<String, FeedKind>,
}

impl FeedGroups {
    /// These groups' kinds on top of the defaults.
    pub fn new(configured: HashMap<String, FeedKind>) -> Self {
        Self { configured }
    }

    /// The kind of feed group `slug`.
    pub fn kind(&self, slug: &str) -> FeedKind {
        self.configured.get(slug).copied().unwrap_or(match slug {
            "aggregated" => FeedKind::Aggregated,
            "notification" => FeedKind::Notification,
            _ => FeedKind::Flat,
        })
    }
}

/// A group's id and how far it has been seen and read.
#[derive(Debug, Clone)]
pub(super) struct GroupState {
    id: Uuid,
    seen: Option<Key>,
    read: Option<Key>,
}

/// Which groups a `mark_seen` or `mark_read` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marks {
    /// `true`: every group of the feed.
    All,
    /// A comma-separated list of group ids.
    Ids(Vec<String>),
}

/// A notification feed's counts of groups not yet seen and not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unseen {
    /// Groups with an activity newer than the last `mark_seen`.
    pub unseen: usize,
    /// Groups with an activity newer than the last `mark_read`.
    pub unread: usize,
}

impl Store {
    /// The kind of `feed` (`slug:user`).
    pub fn kind(&self, feed: &str) -> FeedKind {
        self.groups.kind(feed.split(':').next().unwrap_or(feed))
    }

    pub(super) fn group_key(&self, key: &Key) -> String {
        let verb = self
            .activities
            .get(&key.1)
            .and_then(|a| a.get("verb"))
            .and_then(Value::as_str)
            .unwrap_or("");
        format!("{verb}_{}", key.0.format("%Y-%m-%d"))
    }

    /// Gives the group an activity joins in `feed` an id, once.
    pub(super) fn note_group(&mut self, feed: &str, key: &Key) {
        if self.kind(feed) == FeedKind::Flat {
            return;
        }
        let group = self.group_key(key);
        if self
            .group_state
            .get(feed)
            .is_some_and(|g| g.contains_key(&group))
        {
            return;
        }
        let id = self.object_uuid();
        self.group_state.entry(feed.to_owned()).or_default().insert(
            group,
            GroupState {
                id,
                seen: None,
                read: None,
            },
        );
    }

    /// Sets a group's id (when given) and marks it seen or read up to its newest activity
    /// (an import); false when no activity of `feed` is in `group`.
    pub(super) fn restore_group(
        &mut self,
        feed: &str,
        group: &str,
        id: Option<Uuid>,
        seen: bool,
        read: bool,
    ) -> bool {
        let Some(newest) = self
            .grouped(feed)
            .into_iter()
            .find(|(g, _)| g == group)
            .map(|(_, entries)| entries[0].key)
        else {
            return false;
        };
        self.note_group(feed, &newest);
        let Some(state) = self
            .group_state
            .get_mut(feed)
            .and_then(|g| g.get_mut(group))
        else {
            return false;
        };
        if let Some(id) = id {
            state.id = id;
        }
        state.seen = seen.then_some(newest);
        state.read = read.then_some(newest);
        true
    }

    /// The groups of `feed`, each with its entries newest first, most recently updated first.
    pub(super) fn grouped(&self, feed: &str) -> Vec<(String, Vec<&Entry>)> {
        let mut order: Vec<(String, Vec<&Entry>)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for e in self.feeds.get(feed).map(Vec::as_slice).unwrap_or_default() {
            let g = self.group_key(&e.key);
            let i = *at.entry(g.clone()).or_insert_with(|| {
                order.push((g, Vec::new()));
                order.len() - 1
            });
            order[i].1.push(e);
        }
        order
    }

    fn state(&self, feed: &str, group: &str) -> Option<&GroupState> {
        self.group_state.get(feed)?.get(group)
    }

    /// A page of groups of an aggregated or notification feed.
    pub fn read_groups(&self, feed: &str, limit: usize, offset: usize) -> Vec<Value> {
        let notification = self.kind(feed) == FeedKind::Notification;
        self.grouped(feed)
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(group, entries)| {
                let newest = entries[0].key;
                let oldest = entries[entries.len() - 1].key;
                let actors: HashSet<String> = entries
                    .iter()
                    .filter_map(|e| self.activities.get(&e.key.1))
                    .map(|a| a.get("actor").map(Value::to_string).unwrap_or_default())
                    .collect();
                let activities: Vec<Value> = entries
                    .iter()
                    .take(GROUP_ACTIVITIES)
                    .map(|e| self.render_entry(e, feed))
                    .collect();
                let state = self.state(feed, &group);
                let verb = activities[0]["verb"].clone();
                let mut g = json!({
                    "id": state.map(|s| s.id.to_string()).unwrap_or_default(),
                    "group": group,
                    "verb": verb,
                    "activities": activities,
                    "activity_count": entries.len(),
                    "actor_count": actors.len(),
                    "created_at": fmt_time(&oldest.0),
                    "updated_at": fmt_time(&newest.0),
                });
                if notification {
                    let upto = |k: Option<Key>| k.is_some_and(|k| newest <= k);
                    g["is_seen"] = json!(upto(state.and_then(|s| s.seen)));
                    g["is_read"] = json!(upto(state.and_then(|s| s.read)));
                }
                g
            })
            .collect()
    }

    /// How many groups of a notification feed are unseen and unread.
    pub fn unseen(&self, feed: &str) -> Unseen {
        let mut out = Unseen {
            unseen: 0,
            unread: 0,
        };
        for (group, entries) in self.grouped(feed) {
            let newest = entries[0].key;
            let state = self.state(feed, &group);
            let upto = |k: Option<Key>| k.is_some_and(|k| newest <= k);
            out.unseen += usize::from(!upto(state.and_then(|s| s.seen)));
            out.unread += usize::from(!upto(state.and_then(|s| s.read)));
        }
        out
    }

    /// Marks the named groups of `feed` seen (`read == false`) or read, up to their newest
    /// activity; unknown group ids are ignored, as Stream does.
    pub fn mark(&mut self, feed: &str, marks: &Marks, read: bool) {
        let newest: Vec<(String, Key)> = self
            .grouped(feed)
            .into_iter()
            .map(|(g, entries)| (g, entries[0].key))
            .collect();
        let Some(states) = self.group_state.get_mut(feed) else {
            return;
        };
        for (group, key) in newest {
            let Some(s) = states.get_mut(&group) else {
                continue;
            };
            let named = match marks {
                Marks::All => true,
                Marks::Ids(ids) => ids.iter().any(|i| *i == s.id.to_string()),
            };
            if named {
                if read {
                    s.read = Some(key);
                } else {
                    s.seen = Some(key);
                }
            }
        }
    }
}
