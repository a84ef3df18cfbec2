//! Stream's feed semantics in memory, with no HTTP inside: time-based activity ids, newest
//! first, paging by offset and by id, de-duplication on `foreign_id` + `time` (or, without a
//! foreign id, on `time` + data), fan-out to followers and `to` targets, copy on follow, purge
//! on unfollow unless `keep_history`.
//!
//! Activity lookups by id or by `foreign_id` + `time`, partial updates, `to` target updates
//! and follow counts work on the same data. Reactions, collections and users are kept as
//! objects: stored, read back, updated, deleted.
//!
//! Aggregated and notification feeds ([`groups`]), enrichment ([`enrich`]) and the rendering
//! of reactions, users and entries ([`objects`]) work on the same data.
//!
//! The data is reached only through [`Store`]'s methods (no field is public): each change is
//! made by one method, which writes its audit entry ([`audit`]) and keeps a soft-deleted
//! reaction unchanged ([`reactions`]); users and collection entries have theirs in their own
//! files.
//!
//! Not emulated: ranking, custom aggregation formats, open graph scraping.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use stream_wire::{parse_time, FeedId};

pub mod audit;
pub mod changes;
mod collections;
pub mod enrich;
pub mod export;
pub mod groups;
pub mod import;
pub mod objects;
pub mod reactions;
mod users;

use audit::{Change, Entity};
use groups::{FeedGroups, GroupState};

/// Default `activity_copy_limit` on follow (REST docs).
pub const DEFAULT_COPY_LIMIT: usize = 300;
/// Default page size of reads, followers and following.
pub const DEFAULT_LIMIT: usize = 25;

/// Order of activities in a feed: by time, then id.
type Key = (NaiveDateTime, Uuid);

#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    /// The feed the activity was added to (itself, a followed feed, or a `to` target).
    origin: String,
}

#[derive(Debug, Clone)]
struct Follow {
    source: String,
    target: String,
    created_at: NaiveDateTime,
}

/// Which way to page by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdBound {
    /// `id_lt`
    Lt,
    /// `id_lte`
    Lte,
    /// `id_gt`
    Gt,
    /// `id_gte`
    Gte,
}

/// The emulator's data.
#[derive(Debug)]
pub struct Store {
    node: [u8; 6],
    clock: uuid::timestamp::context::ContextV1,
    activities: HashMap<Uuid, Map<String, Value>>,
    by_key: HashMap<(String, NaiveDateTime), Uuid>,
    /// Activities without a foreign id, by their data and time (Stream's other uniqueness).
    by_data: HashMap<(String, NaiveDateTime), Uuid>,
    feeds: HashMap<String, Vec<Entry>>,
    follows: Vec<Follow>,
    /// Reactions by id.
    reactions: HashMap<String, Map<String, Value>>,
    /// Collection entries by (collection, id).
    collections: HashMap<(String, String), Map<String, Value>>,
    /// Users by id.
    users: HashMap<String, Map<String, Value>>,
    /// The kind of each feed group.
    groups: FeedGroups,
    /// Group ids and seen/read state, by feed and group.
    group_state: HashMap<String, HashMap<String, GroupState>>,
    /// Every change, oldest first.
    audit_log: Vec<audit::AuditEntry>,
    audit_seq: u64,
    /// Feed membership changes not yet published to realtime subscribers ([`changes`]).
    changes: Vec<changes::Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(FeedGroups::default())
    }
}

impl Store {
    /// An empty store whose feed groups have these kinds.
    pub fn new(groups: FeedGroups) -> Self {
        let mut node = [0u8; 6];
        node.iter_mut().for_each(|b| *b = fastrand::u8(..));
        Self {
            node,
            clock: uuid::timestamp::context::ContextV1::new(fastrand::u16(..)),
            activities: HashMap::new(),
            by_key: HashMap::new(),
            by_data: HashMap::new(),
            feeds: HashMap::new(),
            follows: Vec::new(),
            reactions: HashMap::new(),
            collections: HashMap::new(),
            users: HashMap::new(),
            groups,
            group_state: HashMap::new(),
            audit_log: Vec::new(),
            audit_seq: 0,
            changes: Vec::new(),
        }
    }

    /// The kinds of feed groups this store was made with (kept across a reset).
    pub fn feed_groups(&self) -> &FeedGroups {
        &self.groups
    }
}

/// Stream's time format: microseconds, no zone.
pub fn fmt_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// The current time in Stream's format, for `created_at` and `updated_at`.
pub fn now_string() -> String {
    fmt_time(&now())
}

impl Store {
    fn new_id(&self, t: &NaiveDateTime, node: &[u8; 6]) -> Uuid {
        let utc = t.and_utc();
        let ts = uuid::Timestamp::from_unix(
            &self.clock,
            utc.timestamp().max(0) as u64,
            utc.timestamp_subsec_nanos(),
        );
        Uuid::new_v1(ts, node)
    }

    /// A v1 id for `t` that no stored activity has. Ids of one instant differ only in the
    /// 14-bit clock sequence, which wraps: the 16385th activity at the same time took the id
    /// (and overwrote the content) of an earlier one (found by the fault soak, 32 writers
    /// reusing the same times). On a clash the id gets another random node.
    fn fresh_id(&self, t: &NaiveDateTime) -> Uuid {
        let mut id = self.new_id(t, &self.node);
        while self.activities.contains_key(&id) {
            let mut node = [0u8; 6];
            node.iter_mut().for_each(|b| *b = fastrand::u8(..));
            id = self.new_id(t, &node);
        }
        id
    }

    fn insert(&mut self, feed: &str, key: Key, origin: &str) {
        let list = self.feeds.entry(feed.to_owned()).or_default();
        if list.iter().any(|e| e.key.1 == key.1) {
            return;
        }
        // Newest first.
        let at = list.partition_point(|e| e.key > key);
        list.insert(
            at,
            Entry {
                key,
                origin: origin.to_owned(),
            },
        );
        self.note_group(feed, &key);
        self.changed(changes::Change::added(feed, key.1));
    }

    fn followers_of(&self, feed: &str) -> Vec<String> {
        self.follows
            .iter()
            .filter(|f| f.target == feed)
            .map(|f| f.source.clone())
            .collect()
    }

    fn render(&self, id: &Uuid) -> Value {
        self.activities
            .get(id)
            .map(|a| Value::Object(a.clone()))
            .unwrap_or(Value::Null)
    }

    /// An activity as a lookup (by id, by `foreign_id` + `time`, a partial update) answers
    /// it: the fields of a feed read, `"origin": null` included (read from no feed).
    fn render_alone(&self, id: &Uuid) -> Value {
        let mut v = self.render(id);
        v["origin"] = Value::Null;
        v
    }

    /// Stores an activity (or updates the one with the same `foreign_id` + `time`) and returns
    /// it with its id. `fan_out` is false for `add_to_many`, which Stream does not propagate.
    fn store(&mut self, mut activity: Map<String, Value>) -> Key {
        stringify_scalars(&mut activity);
        let given = activity
            .get("time")
            .and_then(Value::as_str)
            .and_then(parse_time);
        let time = given.unwrap_or_else(now);
        let foreign = activity
            .get("foreign_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        activity.insert("time".into(), json!(fmt_time(&time)));
        activity.remove("id");
        // Without a foreign id, Stream takes the same time and the same data for the same
        // activity (a retried post, or one post added to two followed feeds). Serialized with
        // sorted keys, the map is its own fingerprint.
        let fingerprint = match (&foreign, given) {
            (None, Some(t)) => Some((Value::Object(activity.clone()).to_string(), t)),
            _ => None,
        };
        let existing = match (&foreign, given, &fingerprint) {
            (Some(f), Some(t), _) => self.by_key.get(&(f.clone(), t)).copied(),
            (_, _, Some(fp)) => self.by_data.get(fp).copied(),
            _ => None,
        };
        let id = existing.unwrap_or_else(|| self.fresh_id(&time));
        if let (Some(f), Some(t)) = (foreign, given) {
            self.by_key.insert((f, t), id);
        }
        if let Some(fp) = fingerprint {
            self.by_data.insert(fp, id);
        }
        activity.insert("id".into(), json!(id.to_string()));
        activity.entry("foreign_id").or_insert(Value::Null);
        let actor = actor_of(&activity);
        let action = Change::replacing(self.activities.contains_key(&id));
        self.audit(Entity::Activity, &id.to_string(), action, &actor);
        self.activities.insert(id, activity);
        (time, id)
    }

    /// Adds an activity to `feed`, fans it out to followers and `to` targets; returns it.
    pub fn add(&mut self, feed: &FeedId, activity: Map<String, Value>) -> Value {
        let key = self.store(activity);
        let to = self.to_of(&key.1);
        let feed = feed.to_string();
        let mut targets = vec![feed];
        targets.extend(to);
        for origin in targets {
            self.insert(&origin, key, &origin);
            for follower in self.followers_of(&origin) {
                self.insert(&follower, key, &origin);
            }
        }
        self.render(&key.1)
    }

    /// Adds one activity to each feed, without fan-out (as Stream's `add_to_many`).
    pub fn add_to_many(&mut self, feeds: &[FeedId], activity: Map<String, Value>) {
        let key = self.store(activity);
        for f in feeds {
            let f = f.to_string();
            self.insert(&f, key, &f);
        }
    }

    /// Updates activities by `foreign_id` + `time` (stores them when new), keeping their ids.
    pub fn update(&mut self, activity: Map<String, Value>) {
        self.store(activity);
    }

    /// Removes an activity from `feed` by id (or by foreign id), and its copies in followers.
    /// Returns whether it was there.
    pub fn remove(&mut self, feed: &FeedId, id: &str, by_foreign_id: bool) -> bool {
        let feed = feed.to_string();
        let Some(list) = self.feeds.get(&feed) else {
            return false;
        };
        let found = list.iter().find(|e| {
            if by_foreign_id {
                self.activities
                    .get(&e.key.1)
                    .and_then(|a| a.get("foreign_id"))
                    .and_then(Value::as_str)
                    == Some(id)
            } else {
                e.key.1.to_string() == id
            }
        });
        let Some(found) = found.map(|e| e.key.1) else {
            return false;
        };
        // Removed from the feed it was added to, it also leaves its `to` targets (and their
        // followers), as it reached them through that add; removed from a target, only there.
        let mut gone = vec![feed.clone()];
        let to = self.to_of(&found);
        if !to.contains(&feed) {
            gone.extend(to);
        }
        let mut left = Vec::new();
        for (name, list) in self.feeds.iter_mut() {
            let before = list.len();
            list.retain(|e| {
                !(e.key.1 == found && (gone.contains(name) || gone.contains(&e.origin)))
            });
            if list.len() != before {
                left.push(name.clone());
            }
        }
        for name in left {
            self.changed(changes::Change::removed(&name, found));
        }
        let actor = self
            .activities
            .get(&found)
            .map(actor_of)
            .unwrap_or_default();
        self.audit(Entity::Activity, &found.to_string(), Change::Delete, &actor);
        true
    }

    /// The `to` targets of a stored activity, without any token a client appended.
    fn to_of(&self, id: &Uuid) -> Vec<String> {
        self.activities
            .get(id)
            .and_then(|a| a.get("to"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.split(' ').next().unwrap_or(s).to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A page of `feed`, newest first.
    pub fn read(
        &self,
        feed: &FeedId,
        limit: usize,
        offset: usize,
        bounds: &[(IdBound, Uuid)],
    ) -> Vec<Value> {
        let Some(list) = self.feeds.get(&feed.to_string()) else {
            return Vec::new();
        };
        let pivots: Vec<(IdBound, Key)> = bounds
            .iter()
            .map(|&(b, id)| {
                let key = list
                    .iter()
                    .find(|e| e.key.1 == id)
                    .map(|e| e.key)
                    .or_else(|| {
                        self.activities
                            .get(&id)
                            .and_then(|a| a.get("time"))
                            .and_then(Value::as_str)
                            .and_then(parse_time)
                            .map(|t| (t, id))
                    })
                    .unwrap_or((uuid_time(&id), id));
                (b, key)
            })
            .collect();
        list.iter()
            .filter(|e| {
                pivots.iter().all(|&(b, k)| match b {
                    IdBound::Lt => e.key < k,
                    IdBound::Lte => e.key <= k,
                    IdBound::Gt => e.key > k,
                    IdBound::Gte => e.key >= k,
                })
            })
            .skip(offset)
            .take(limit)
            .map(|e| self.render_entry(e, &feed.to_string()))
            .collect()
    }

    /// An activity as a read of `feed` lists it.
    fn render_entry(&self, e: &Entry, feed: &str) -> Value {
        let mut v = self.render(&e.key.1);
        // Stream marks copies with the feed they came from, and the activity in its own
        // feed (or a `to` target) with `"origin": null`.
        v["origin"] = if e.origin == feed {
            Value::Null
        } else {
            json!(e.origin)
        };
        v
    }

    /// How many activities `feed` holds.
    pub fn len(&self, feed: &str) -> usize {
        self.feeds.get(feed).map_or(0, Vec::len)
    }

    /// How many distinct activities are stored.
    pub fn activity_count(&self) -> usize {
        self.activities.len()
    }

    /// `source` follows `target`, copying up to `copy_limit` of the target's own activities.
    pub fn follow(&mut self, source: &FeedId, target: &FeedId, copy_limit: usize) {
        let (s, t) = (source.to_string(), target.to_string());
        if !self.follows.iter().any(|f| f.source == s && f.target == t) {
            self.follows.push(Follow {
                source: s.clone(),
                target: t.clone(),
                created_at: now(),
            });
        }
        let copied: Vec<Key> = self
            .feeds
            .get(&t)
            .map(|l| {
                l.iter()
                    .filter(|e| e.origin == t)
                    .take(copy_limit)
                    .map(|e| e.key)
                    .collect()
            })
            .unwrap_or_default();
        for key in copied {
            self.insert(&s, key, &t);
        }
    }

    /// `source` stops following `target`; its copies are purged unless `keep_history`.
    pub fn unfollow(&mut self, source: &FeedId, target: &FeedId, keep_history: bool) {
        let (s, t) = (source.to_string(), target.to_string());
        self.follows.retain(|f| !(f.source == s && f.target == t));
        if !keep_history {
            let mut purged = Vec::new();
            if let Some(list) = self.feeds.get_mut(&s) {
                list.retain(|e| {
                    let keep = e.origin != t;
                    if !keep {
                        purged.push(e.key.1);
                    }
                    keep
                });
            }
            for id in purged {
                self.changed(changes::Change::removed(&s, id));
            }
        }
    }

    /// Followers (`followers == true`) or followed feeds of `feed`, newest first, filtered by
    /// the other side's feed id.
    pub fn follow_list(
        &self,
        feed: &FeedId,
        followers: bool,
        limit: usize,
        offset: usize,
        filter: &[String],
    ) -> Vec<Value> {
        let f = feed.to_string();
        self.follows
            .iter()
            .rev()
            .filter(|x| {
                if followers {
                    x.target == f
                } else {
                    x.source == f
                }
            })
            .filter(|x| {
                let other = if followers { &x.source } else { &x.target };
                filter.is_empty() || filter.contains(other)
            })
            .skip(offset)
            .take(limit)
            .map(|x| {
                json!({
                    "feed_id": x.source,
                    "target_id": x.target,
                    "created_at": fmt_time(&x.created_at),
                    "updated_at": fmt_time(&x.created_at),
                })
            })
            .collect()
    }
}

impl Store {
    /// A new object id (reactions, collection entries without one).
    pub fn object_id(&self) -> String {
        self.object_uuid().to_string()
    }

    fn object_uuid(&self) -> Uuid {
        self.fresh_id(&now())
    }

    /// Activities by id, in the order asked, unknown ids left out.
    pub fn by_ids(&self, ids: &[&str]) -> Vec<Value> {
        ids.iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .filter(|id| self.activities.contains_key(id))
            .map(|id| self.render_alone(&id))
            .collect()
    }

    /// Activities by `foreign_id` + `time`, in the order asked, unknown pairs left out.
    pub fn by_foreign_ids(&self, keys: &[(String, NaiveDateTime)]) -> Vec<Value> {
        keys.iter()
            .filter_map(|k| self.by_key.get(k))
            .map(|id| self.render_alone(id))
            .collect()
    }

    /// Applies one partial update (`set` dotted paths, `unset` fields) to the activity named
    /// by `id` or `foreign_id` + `time`; returns it, or `None` when there is no such activity.
    pub fn partial_update(&mut self, change: &Map<String, Value>) -> Option<Value> {
        let id = match (
            change.get("id").and_then(Value::as_str),
            change.get("foreign_id"),
        ) {
            (Some(id), _) => Uuid::parse_str(id).ok()?,
            (None, Some(Value::String(f))) => {
                let t = change
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(parse_time)?;
                *self.by_key.get(&(f.clone(), t))?
            }
            _ => return None,
        };
        let actor = self.activities.get(&id).map(actor_of)?;
        self.audit(Entity::Activity, &id.to_string(), Change::Update, &actor);
        let a = self.activities.get_mut(&id)?;
        if let Some(Value::Object(set)) = change.get("set") {
            for (path, v) in set {
                let mut parts = path.split('.').peekable();
                let mut at = &mut *a;
                while let Some(p) = parts.next() {
                    if parts.peek().is_none() {
                        at.insert(p.to_owned(), v.clone());
                        break;
                    }
                    let next = at.entry(p.to_owned()).or_insert_with(|| json!({}));
                    if !next.is_object() {
                        *next = json!({});
                    }
                    at = next.as_object_mut().expect("made an object above");
                }
            }
        }
        if let Some(Value::Array(unset)) = change.get("unset") {
            for path in unset.iter().filter_map(Value::as_str) {
                unset_path(a, path);
            }
        }
        Some(self.render_alone(&id))
    }

    /// Changes the `to` targets of the activity with `foreign_id` + `time` added to `feed`:
    /// `new` replaces them, `added` and `removed` edit them; the activity is copied into added
    /// targets and taken out of removed ones. Returns the activity, or `None` if unknown.
    pub fn update_to_targets(
        &mut self,
        feed: &FeedId,
        foreign_id: &str,
        time: NaiveDateTime,
        new: Option<Vec<String>>,
        added: Vec<String>,
        removed: Vec<String>,
    ) -> Option<Value> {
        let id = *self.by_key.get(&(foreign_id.to_owned(), time))?;
        // The activity must have been added to this feed.
        self.feeds
            .get(&feed.to_string())?
            .iter()
            .find(|e| e.key.1 == id)?;
        let old: Vec<String> = self.activities[&id]
            .get("to")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut to = new.unwrap_or_else(|| old.clone());
        to.retain(|t| !removed.contains(t));
        for a in added {
            if !to.contains(&a) {
                to.push(a);
            }
        }
        let key = (time, id);
        for gone in old.iter().filter(|t| !to.contains(t)) {
            if let Some(list) = self.feeds.get_mut(gone) {
                let before = list.len();
                list.retain(|e| e.key.1 != id);
                if list.len() != before {
                    self.changed(changes::Change::removed(gone, id));
                }
            }
        }
        for t in to.iter().filter(|t| !old.contains(t)) {
            self.insert(t, key, t);
        }
        let stored = self.activities.get_mut(&id).expect("looked up above");
        // Stream drops the field when no target is left, rather than keeping `[]`.
        if to.is_empty() {
            stored.remove("to");
        } else {
            stored.insert("to".into(), json!(to));
        }
        Some(self.render(&id))
    }

    /// How many follows point at any feed of `user_id` (followers) and start from any of its
    /// feeds (following): what `GET user/{id}/?with_follow_counts=true` reports.
    pub fn user_follow_counts(&self, user_id: &str) -> (usize, usize) {
        let owned = |feed: &str| feed.split_once(':').map(|(_, u)| u) == Some(user_id);
        let followers = self.follows.iter().filter(|f| owned(&f.target)).count();
        let following = self.follows.iter().filter(|f| owned(&f.source)).count();
        (followers, following)
    }

    /// How many feeds follow `feed` and how many it follows, counting only the given slugs
    /// when a list is given.
    pub fn follow_counts(
        &self,
        followers_of: Option<&str>,
        following_of: Option<&str>,
        followers_slugs: &[String],
        following_slugs: &[String],
    ) -> Value {
        let slug_ok = |feed: &str, slugs: &[String]| {
            slugs.is_empty() || slugs.iter().any(|s| feed.split(':').next() == Some(s))
        };
        // Follows whose one end is `feed` and whose other end has one of `slugs`.
        let count = |feed: &str, end: fn(&Follow) -> (&str, &str), slugs: &[String]| {
            let n = self
                .follows
                .iter()
                .map(end)
                .filter(|(this, other)| *this == feed && slug_ok(other, slugs))
                .count();
            json!({ "feed": feed, "count": n })
        };
        let mut out = json!({});
        if let Some(f) = followers_of {
            out["followers"] = count(f, |x| (&x.target, &x.source), followers_slugs);
        }
        if let Some(f) = following_of {
            out["following"] = count(f, |x| (&x.source, &x.target), following_slugs);
        }
        out
    }
}

/// Who an audit log entry names for an activity: its actor.
fn actor_of(activity: &Map<String, Value>) -> String {
    objects::text(activity, "actor").to_owned()
}

/// Removes the field at a dotted path (`product.color`); a path through a missing field or a
/// non-object is left alone, as `set` creates what it walks through but `unset` never does.
fn unset_path(at: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            at.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = at.get_mut(head) {
                unset_path(inner, rest);
            }
        }
    }
}

fn uuid_time(id: &Uuid) -> NaiveDateTime {
    id.get_timestamp()
        .map(|ts| {
            let (s, n) = ts.to_unix();
            chrono::DateTime::from_timestamp(s as i64, n)
                .map(|d| d.naive_utc())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Stream stores `actor`, `object`, `target` and `foreign_id` as strings: a number sent there
/// comes back as its decimal string (`3` -> `"3"`).
pub fn stringify_scalars(activity: &mut Map<String, Value>) {
    for key in ["actor", "object", "target", "foreign_id"] {
        if let Some(v) = activity.get_mut(key) {
            if let Value::Number(n) = v {
                *v = Value::String(n.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &str) -> FeedId {
        FeedId::parse(s).unwrap()
    }
    fn act(n: u32, keyed: bool) -> Map<String, Value> {
        let mut v = json!({"actor": "user:1", "verb": "post", "object": format!("post:{n}")});
        if keyed {
            v["foreign_id"] = json!(format!("post:{n}"));
            v["time"] = json!(format!("2026-11-27T10:00:{:02}", n % 60));
        }
        v.as_object().unwrap().clone()
    }
    fn objects(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|a| a["object"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn activities_get_time_based_ids_and_come_back_newest_first() {
        let mut s = Store::default();
        for n in 1..=3 {
            s.add(&feed("user:1"), act(n, true));
        }
        let page = s.read(&feed("user:1"), 25, 0, &[]);
        assert_eq!(objects(&page), ["post:3", "post:2", "post:1"]);
        let id = Uuid::parse_str(page[0]["id"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 1);
        assert_eq!(page[0]["time"], "2026-11-27T10:00:03.000000");
    }

    #[test]
    fn the_same_foreign_id_and_time_updates_and_never_duplicates() {
        let mut s = Store::default();
        let a = s.add(&feed("user:1"), act(1, true));
        let mut changed = act(1, true);
        changed.insert("extra".into(), json!("x"));
        let b = s.add(&feed("user:1"), changed);
        assert_eq!(a["id"], b["id"]);
        assert_eq!(s.len("user:1"), 1);
        assert_eq!(s.activity_count(), 1);
        assert_eq!(s.read(&feed("user:1"), 25, 0, &[])[0]["extra"], "x");
        // Unkeyed activities are new each time.
        s.add(&feed("user:1"), act(2, false));
        s.add(&feed("user:1"), act(2, false));
        assert_eq!(s.len("user:1"), 3);
    }

    #[test]
    fn paging_by_limit_offset_and_ids() {
        let mut s = Store::default();
        for n in 1..=5 {
            s.add(&feed("user:1"), act(n, true));
        }
        let all = s.read(&feed("user:1"), 25, 0, &[]);
        assert_eq!(
            objects(&s.read(&feed("user:1"), 2, 1, &[])),
            ["post:4", "post:3"]
        );
        let id = |i: usize| Uuid::parse_str(all[i]["id"].as_str().unwrap()).unwrap();
        assert_eq!(
            objects(&s.read(&feed("user:1"), 25, 0, &[(IdBound::Lt, id(1))])),
            ["post:3", "post:2", "post:1"]
        );
        assert_eq!(
            objects(&s.read(&feed("user:1"), 25, 0, &[(IdBound::Lte, id(1))])),
            ["post:4", "post:3", "post:2", "post:1"]
        );
        assert_eq!(
            objects(&s.read(&feed("user:1"), 25, 0, &[(IdBound::Gt, id(1))])),
            ["post:5"]
        );
        assert_eq!(
            objects(&s.read(&feed("user:1"), 25, 0, &[(IdBound::Gte, id(1))])),
            ["post:5", "post:4"]
        );
    }

    #[test]
    fn new_activities_fan_out_to_followers_and_to_targets() {
        let mut s = Store::default();
        s.follow(&feed("timeline:2"), &feed("user:1"), 300);
        s.follow(&feed("timeline:3"), &feed("notification:9"), 300);
        let mut a = act(1, true);
        a.insert("to".into(), json!(["notification:9"]));
        s.add(&feed("user:1"), a);
        assert_eq!(s.len("timeline:2"), 1);
        assert_eq!(s.len("notification:9"), 1);
        assert_eq!(s.len("timeline:3"), 1);
        assert_eq!(
            s.read(&feed("timeline:2"), 25, 0, &[])[0]["origin"],
            "user:1"
        );
    }

    #[test]
    fn follow_copies_up_to_the_limit_of_the_targets_own_activities() {
        let mut s = Store::default();
        for n in 1..=5 {
            s.add(&feed("user:1"), act(n, true));
        }
        s.follow(&feed("timeline:2"), &feed("user:1"), 3);
        assert_eq!(
            objects(&s.read(&feed("timeline:2"), 25, 0, &[])),
            ["post:5", "post:4", "post:3"]
        );
        s.follow(&feed("timeline:3"), &feed("user:1"), 0);
        assert_eq!(s.len("timeline:3"), 0);
        // Copies are not copied on: timeline:4 follows timeline:2, which holds only copies.
        s.follow(&feed("timeline:4"), &feed("timeline:2"), 300);
        assert_eq!(s.len("timeline:4"), 0);
    }

    #[test]
    fn unfollow_purges_copies_unless_history_is_kept() {
        let mut s = Store::default();
        s.add(&feed("user:1"), act(1, true));
        s.add(&feed("timeline:2"), act(2, true));
        s.follow(&feed("timeline:2"), &feed("user:1"), 300);
        s.unfollow(&feed("timeline:2"), &feed("user:1"), false);
        assert_eq!(
            objects(&s.read(&feed("timeline:2"), 25, 0, &[])),
            ["post:2"]
        );
        s.follow(&feed("timeline:2"), &feed("user:1"), 300);
        s.unfollow(&feed("timeline:2"), &feed("user:1"), true);
        assert_eq!(s.len("timeline:2"), 2);
        assert!(s
            .follow_list(&feed("timeline:2"), false, 25, 0, &[])
            .is_empty());
    }

    #[test]
    fn remove_by_id_or_foreign_id_also_removes_the_copies() {
        let mut s = Store::default();
        s.follow(&feed("timeline:2"), &feed("user:1"), 300);
        let a = s.add(&feed("user:1"), act(1, true));
        s.add(&feed("user:1"), act(2, true));
        assert!(s.remove(&feed("user:1"), a["id"].as_str().unwrap(), false));
        assert!(s.remove(&feed("user:1"), "post:2", true));
        assert_eq!(s.len("user:1"), 0);
        assert_eq!(s.len("timeline:2"), 0);
        assert!(!s.remove(&feed("user:1"), "post:2", true));
    }

    #[test]
    fn followers_and_following_page_and_filter() {
        let mut s = Store::default();
        for n in 1..=4 {
            s.follow(&feed(&format!("timeline:{n}")), &feed("user:1"), 0);
        }
        s.follow(&feed("timeline:1"), &feed("user:2"), 0);
        let fl = s.follow_list(&feed("user:1"), true, 2, 1, &[]);
        assert_eq!(
            fl.iter()
                .map(|v| v["feed_id"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["timeline:3", "timeline:2"]
        );
        let filtered = s.follow_list(&feed("timeline:1"), false, 25, 0, &["user:2".into()]);
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0]["target_id"], "user:2");
    }

    #[test]
    fn add_to_many_stores_one_activity_in_each_feed_without_fan_out() {
        let mut s = Store::default();
        s.follow(&feed("timeline:9"), &feed("user:1"), 300);
        s.add_to_many(&[feed("user:1"), feed("user:2")], act(1, true));
        assert_eq!(
            (s.len("user:1"), s.len("user:2"), s.len("timeline:9")),
            (1, 1, 0)
        );
        assert_eq!(s.activity_count(), 1);
    }

    #[test]
    fn activities_at_the_same_instant_never_share_an_id() {
        let mut s = Store::default();
        let n = 17_000; // past the 14-bit clock sequence
        for i in 0..n {
            let a = json!({"actor": "a", "verb": "v", "object": format!("o{i}"),
                "time": "2026-11-27T10:00:00"});
            s.store(a.as_object().cloned().unwrap());
        }
        assert_eq!(s.activity_count(), n);
    }
}
