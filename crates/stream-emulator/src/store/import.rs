//! Reading an export document back (`POST /_emulator/import`, `--emulator-seed`): the format
//! [`super::export`] writes, `version` 1 (docs/emulator.md). A document is checked whole into a
//! new [`Store`] before anything changes, so a bad one changes nothing; the first problem is
//! named with where it is (`activities[3].time: ...`).
//!
//! What an export does not hold is rebuilt: the `foreign_id` + `time` and data indexes from
//! the activities, a group's seen/read state from its `is_seen`/`is_read` (seen or read up to
//! its newest activity). The audit log starts empty.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::export::EXPORT_VERSION;
use super::groups::FeedGroups;
use super::{fmt_time, now, Entry, Follow, Store};
use stream_wire::{parse_time, FeedId};

/// The parts of a document, each a list; any other key is refused (a typo would otherwise
/// load nothing, silently).
pub(super) const PARTS: [&str; 8] = [
    "version",
    "activities",
    "feeds",
    "follows",
    "reactions",
    "collections",
    "users",
    "analytics",
];

/// Why a document was refused: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct ImportError {
    /// The place in the document (`version`, `feeds[2].activities[0].id`).
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

fn refuse<T>(at: impl Into<String>, reason: impl Into<String>) -> Result<T, ImportError> {
    Err(ImportError {
        at: at.into(),
        reason: reason.into(),
    })
}

fn list<'a>(doc: &'a Map<String, Value>, part: &str) -> Result<&'a [Value], ImportError> {
    match doc.get(part) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => refuse(part, "must be a list"),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ImportError> {
    v.as_object()
        .map_or_else(|| refuse(at, "must be an object"), Ok)
}

fn text<'a>(o: &'a Map<String, Value>, field: &str, at: &str) -> Result<&'a str, ImportError> {
    match o.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => refuse(format!("{at}.{field}"), "must be a non-empty string"),
    }
}

fn feed_id(s: &str, at: &str) -> Result<String, ImportError> {
    FeedId::parse(s)
        .map(|f| f.to_string())
        .map_err(|e| ImportError {
            at: at.to_owned(),
            reason: format!("not a feed id ({e})"),
        })
}

/// The analytics events of a document, each `{"kind", "event"}`.
pub fn analytics(doc: &Value) -> Result<Vec<Value>, ImportError> {
    let doc = object(doc, "document")?;
    let mut out = Vec::new();
    for (i, e) in list(doc, "analytics")?.iter().enumerate() {
        let at = format!("analytics[{i}]");
        let o = object(e, &at)?;
        if !matches!(text(o, "kind", &at)?, "engagement" | "impression") {
            return refuse(format!("{at}.kind"), "must be engagement or impression");
        }
        object(
            o.get("event").unwrap_or(&Value::Null),
            &format!("{at}.event"),
        )?;
        out.push(e.clone());
    }
    Ok(out)
}

impl Store {
    /// A store with these feed groups holding the document's data, or the first problem in it.
    pub fn from_export(doc: &Value, groups: FeedGroups) -> Result<Self, ImportError> {
        let mut s = Store::new(groups);
        let doc = object(doc, "document")?;
        if let Some(k) = doc.keys().find(|k| !PARTS.contains(&k.as_str())) {
            return refuse(
                k.as_str(),
                format!("unknown part (known: {})", PARTS.join(", ")),
            );
        }
        match doc.get("version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(EXPORT_VERSION) => {}
            _ => return refuse("version", format!("must be {EXPORT_VERSION}")),
        }
        s.import_activities(list(doc, "activities")?)?;
        s.import_feeds(list(doc, "feeds")?)?;
        for (i, f) in list(doc, "follows")?.iter().enumerate() {
            let at = format!("follows[{i}]");
            let o = object(f, &at)?;
            let source = feed_id(text(o, "feed_id", &at)?, &format!("{at}.feed_id"))?;
            let target = feed_id(text(o, "target_id", &at)?, &format!("{at}.target_id"))?;
            let created_at = match o.get("created_at") {
                None | Some(Value::Null) => now(),
                Some(t) => match t.as_str().and_then(parse_time) {
                    Some(t) => t,
                    None => return refuse(format!("{at}.created_at"), "not a time"),
                },
            };
            if s.follows
                .iter()
                .any(|f| f.source == source && f.target == target)
            {
                return refuse(at, "a second follow of the same feeds");
            }
            s.follows.push(Follow {
                source,
                target,
                created_at,
            });
        }
        for (i, r) in list(doc, "reactions")?.iter().enumerate() {
            let at = format!("reactions[{i}]");
            let o = object(r, &at)?;
            let id = text(o, "id", &at)?.to_owned();
            if s.reactions.insert(id, o.clone()).is_some() {
                return refuse(format!("{at}.id"), "a second reaction with this id");
            }
        }
        for (i, e) in list(doc, "collections")?.iter().enumerate() {
            let at = format!("collections[{i}]");
            let mut o = object(e, &at)?.clone();
            let key = (
                text(&o, "collection", &at)?.to_owned(),
                text(&o, "id", &at)?.to_owned(),
            );
            for derived in ["collection", "id", "foreign_id"] {
                o.remove(derived);
            }
            if s.collections.insert(key, o).is_some() {
                return refuse(
                    format!("{at}.id"),
                    "a second entry with this collection and id",
                );
            }
        }
        for (i, u) in list(doc, "users")?.iter().enumerate() {
            let at = format!("users[{i}]");
            let mut o = object(u, &at)?.clone();
            let id = text(&o, "id", &at)?.to_owned();
            o.remove("id");
            if s.users.insert(id, o).is_some() {
                return refuse(format!("{at}.id"), "a second user with this id");
            }
        }
        analytics(&Value::Object(doc.clone()))?;
        s.changes.clear();
        Ok(s)
    }

    fn import_activities(&mut self, items: &[Value]) -> Result<(), ImportError> {
        for (i, a) in items.iter().enumerate() {
            let at = format!("activities[{i}]");
            let mut a = object(a, &at)?.clone();
            let id = Uuid::parse_str(text(&a, "id", &at)?).map_err(|_| ImportError {
                at: format!("{at}.id"),
                reason: "not an activity id (a UUID)".into(),
            })?;
            let Some(time) = parse_time(text(&a, "time", &at)?) else {
                return refuse(format!("{at}.time"), "not a time");
            };
            for field in ["actor", "verb", "object"] {
                text(&a, field, &at)?;
            }
            a.insert("time".into(), Value::String(fmt_time(&time)));
            let foreign = a.get("foreign_id").cloned().unwrap_or(Value::Null);
            match &foreign {
                Value::String(f) => {
                    self.by_key.insert((f.clone(), time), id);
                }
                Value::Null => {
                    // The data fingerprint as stored would have taken it (see `store`).
                    let mut data = a.clone();
                    data.remove("id");
                    data.remove("foreign_id");
                    self.by_data
                        .insert((Value::Object(data).to_string(), time), id);
                }
                _ => return refuse(format!("{at}.foreign_id"), "must be a string or null"),
            }
            a.insert("foreign_id".into(), foreign);
            if self.activities.insert(id, a).is_some() {
                return refuse(format!("{at}.id"), "a second activity with this id");
            }
        }
        Ok(())
    }

    fn import_feeds(&mut self, items: &[Value]) -> Result<(), ImportError> {
        let mut seen = HashSet::new();
        for (i, f) in items.iter().enumerate() {
            let at = format!("feeds[{i}]");
            let o = object(f, &at)?;
            let feed = feed_id(text(o, "id", &at)?, &format!("{at}.id"))?;
            if !seen.insert(feed.clone()) {
                return refuse(format!("{at}.id"), "a second feed with this id");
            }
            let kind = self.kind(&feed);
            if let Some(k) = o.get("kind") {
                if *k != serde_json::json!(kind) {
                    return refuse(
                        format!("{at}.kind"),
                        format!("this emulator's {feed} is {}", serde_json::json!(kind)),
                    );
                }
            }
            let entries = match o.get("activities") {
                None => &[][..],
                Some(Value::Array(e)) => e,
                Some(_) => return refuse(format!("{at}.activities"), "must be a list"),
            };
            let mut list: Vec<Entry> = Vec::with_capacity(entries.len());
            for (j, e) in entries.iter().enumerate() {
                let at = format!("{at}.activities[{j}]");
                let e = object(e, &at)?;
                let id = Uuid::parse_str(text(e, "id", &at)?).ok();
                let Some((id, time)) = id.and_then(|id| {
                    let a = self.activities.get(&id)?;
                    Some((id, parse_time(a.get("time")?.as_str()?)?))
                }) else {
                    return refuse(format!("{at}.id"), "not one of the document's activities");
                };
                let origin = match e.get("origin") {
                    None | Some(Value::Null) => feed.clone(),
                    Some(Value::String(o)) => feed_id(o, &format!("{at}.origin"))?,
                    Some(_) => return refuse(format!("{at}.origin"), "must be a feed id or null"),
                };
                if list.iter().any(|e| e.key.1 == id) {
                    return refuse(format!("{at}.id"), "twice in this feed");
                }
                list.push(Entry {
                    key: (time, id),
                    origin,
                });
            }
            // Newest first, whatever order the document gave.
            list.sort_by_key(|e| std::cmp::Reverse(e.key));
            let keys: Vec<_> = list.iter().map(|e| e.key).collect();
            self.feeds.insert(feed.clone(), list);
            for key in &keys {
                self.note_group(&feed, key);
            }
            self.import_groups(&feed, o, &at)?;
        }
        Ok(())
    }

    /// A feed's `groups`: their ids and seen/read state.
    fn import_groups(
        &mut self,
        feed: &str,
        o: &Map<String, Value>,
        at: &str,
    ) -> Result<(), ImportError> {
        let groups = match o.get("groups") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(g)) => g,
            Some(_) => return refuse(format!("{at}.groups"), "must be a list"),
        };
        let mut states = HashMap::new();
        for (j, g) in groups.iter().enumerate() {
            let at = format!("{at}.groups[{j}]");
            let g = object(g, &at)?;
            let name = text(g, "group", &at)?;
            let id = match g.get("id") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(id) => Some(id),
                    None => return refuse(format!("{at}.id"), "not a group id (a UUID)"),
                },
            };
            let flag = |f: &str| g.get(f).and_then(Value::as_bool).unwrap_or(false);
            states.insert(name.to_owned(), (id, flag("is_seen"), flag("is_read")));
        }
        for (name, (id, is_seen, is_read)) in states {
            if !self.restore_group(feed, &name, id, is_seen, is_read) {
                return refuse(
                    format!("{at}.groups"),
                    format!("no activity of {feed} is in group {name}"),
                );
            }
        }
        Ok(())
    }

    /// How many of this store's activities `other` does not hold.
    pub fn new_activities(&self, other: &Store) -> usize {
        self.activities
            .keys()
            .filter(|id| !other.activities.contains_key(id))
            .count()
    }

    /// Moves `other`'s data into this store: an activity, reaction, collection entry, user or
    /// group with the same id is replaced; feeds gain the other's entries; follows are added.
    pub fn merge(&mut self, other: Store) {
        self.activities.extend(other.activities);
        self.by_key.extend(other.by_key);
        self.by_data.extend(other.by_data);
        for (feed, entries) in other.feeds {
            let list = self.feeds.entry(feed).or_default();
            list.retain(|e| !entries.iter().any(|n| n.key.1 == e.key.1));
            list.extend(entries);
            list.sort_by_key(|e| std::cmp::Reverse(e.key));
        }
        for f in other.follows {
            if !self
                .follows
                .iter()
                .any(|g| g.source == f.source && g.target == f.target)
            {
                self.follows.push(f);
            }
        }
        self.reactions.extend(other.reactions);
        self.collections.extend(other.collections);
        self.users.extend(other.users);
        for (feed, groups) in other.group_state {
            self.group_state.entry(feed).or_default().extend(groups);
        }
        let feeds: Vec<(String, Vec<super::Key>)> = self
            .feeds
            .iter()
            .map(|(f, l)| (f.clone(), l.iter().map(|e| e.key).collect()))
            .collect();
        // An activity that joined a feed's group here may have no group id yet.
        for (feed, keys) in feeds {
            for key in &keys {
                self.note_group(&feed, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with_data() -> Store {
        let mut s = Store::new(FeedGroups::default());
        let user = FeedId::parse("user:1").unwrap();
        let notif = FeedId::parse("notification:1").unwrap();
        let timeline = FeedId::parse("timeline:1").unwrap();
        s.follow(&timeline, &user, 10);
        let a = json!({"actor": "a", "verb": "post", "object": "o", "foreign_id": "p:1",
                       "time": "2026-01-01T10:00:00"});
        s.add(&user, a.as_object().unwrap().clone());
        let b = json!({"actor": "a", "verb": "like", "object": "o", "time": "2026-01-01T11:00:00"});
        s.add(&notif, b.as_object().unwrap().clone());
        s.users.insert(
            "u1".into(),
            json!({"data": {"n": 1}}).as_object().unwrap().clone(),
        );
        s
    }

    #[test]
    fn an_export_read_back_exports_the_same_document() {
        let doc = store_with_data().export();
        let back = Store::from_export(&doc, FeedGroups::default()).unwrap();
        assert_eq!(back.export(), doc);
    }

    #[test]
    fn a_read_back_store_still_deduplicates_by_foreign_id_and_time() {
        let doc = store_with_data().export();
        let mut back = Store::from_export(&doc, FeedGroups::default()).unwrap();
        let again = json!({"actor": "a", "verb": "post", "object": "o2", "foreign_id": "p:1",
                           "time": "2026-01-01T10:00:00"});
        back.add(
            &FeedId::parse("user:1").unwrap(),
            again.as_object().unwrap().clone(),
        );
        assert_eq!(back.export()["activities"].as_array().unwrap().len(), 2);
    }

    fn refused_at(doc: &Value) -> String {
        Store::from_export(doc, FeedGroups::default())
            .unwrap_err()
            .at
    }

    #[test]
    fn a_document_of_the_wrong_shape_or_version_is_refused_naming_where() {
        let cases = [
            (json!([]), "document"),
            (json!({"version": 2}), "version"),
            (json!({"version": 1, "activites": []}), "activites"),
            (json!({"version": 1, "activities": {}}), "activities"),
            (
                json!({"version": 1, "activities": [{"id": "x", "time": "2026-01-01T10:00:00"}]}),
                "activities[0].id",
            ),
        ];
        for (doc, at) in cases {
            assert_eq!(refused_at(&doc), at);
        }
    }

    #[test]
    fn a_document_with_one_bad_value_is_refused_naming_where() {
        let doc = store_with_data().export();
        type Edit = (&'static str, fn(&mut Value));
        let edits: [Edit; 9] = [
            ("activities[0].time", |d| {
                d["activities"][0]["time"] = json!("yesterday")
            }),
            ("activities[1].id", |d| {
                d["activities"][1] = d["activities"][0].clone()
            }),
            ("feeds[2].activities[0].id", |d| {
                d["feeds"][2]["activities"][0]["id"] = json!(Uuid::nil().to_string());
            }),
            ("feeds[2].kind", |d| {
                d["feeds"][2]["kind"] = json!("aggregated")
            }),
            ("feeds[0].id", |d| d["feeds"][0]["id"] = json!("no colon")),
            ("feeds[0].groups", |d| {
                d["feeds"][0]["groups"][0]["group"] = json!("nope_2020-01-01");
            }),
            ("follows[0].target_id", |d| {
                d["follows"][0]["target_id"] = json!(7)
            }),
            ("users[0].id", |d| d["users"][0]["id"] = json!("")),
            ("analytics[0].kind", |d| {
                d["analytics"] = json!([{"kind": "click", "event": {}}]);
            }),
        ];
        for (at, edit) in edits {
            let mut bad = doc.clone();
            edit(&mut bad);
            assert_eq!(refused_at(&bad), at);
        }
    }

    #[test]
    fn a_merge_adds_the_documents_data_and_replaces_same_ids() {
        let mut here = store_with_data();
        let mut other = Store::new(FeedGroups::default());
        let b = json!({"actor": "b", "verb": "post", "object": "o", "time": "2026-01-02T10:00:00"});
        other.add(
            &FeedId::parse("user:1").unwrap(),
            b.as_object().unwrap().clone(),
        );
        other.users.insert(
            "u1".into(),
            json!({"data": {"n": 2}}).as_object().unwrap().clone(),
        );
        here.merge(other);
        let v = here.export();
        assert_eq!(v["activities"].as_array().unwrap().len(), 3);
        let user1 = v["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "user:1")
            .unwrap();
        assert_eq!(user1["activities"].as_array().unwrap().len(), 2);
        assert_eq!(v["users"][0]["data"]["n"], 2);
    }
}
