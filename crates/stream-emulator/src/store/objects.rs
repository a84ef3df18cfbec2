//! Reactions, collection entries and users as Stream renders them, shared by their handlers
//! and by enrichment so that an object reads the same wherever it appears: a reaction with its
//! children (counts and the latest of each kind) and its `user` when that user exists.

use serde_json::{json, Map, Value};

use super::{fmt_time, uuid_time, IdBound, Store};

/// Children listed per kind in `latest_children`.
const LATEST_CHILDREN: usize = 10;

/// A user as `GET user/{id}/` answers it.
pub fn user_json(id: &str, u: &Map<String, Value>) -> Value {
    let mut v = Value::Object(u.clone());
    v["id"] = json!(id);
    v
}

/// A collection entry as `GET collections/{name}/{id}/` answers it.
pub fn entry_json(name: &str, id: &str, e: &Map<String, Value>) -> Value {
    let mut v = Value::Object(e.clone());
    v["id"] = json!(id);
    v["collection"] = json!(name);
    v["foreign_id"] = json!(format!("{name}:{id}"));
    v
}

/// What a reaction filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionLookup {
    /// Reactions to an activity, children included.
    Activity,
    /// Children of a reaction.
    Parent,
    /// Reactions by a user.
    User,
}

/// Reactions sort newest first by creation time; the id breaks ties.
type ReactionKey = (String, String);

/// A text field of a stored object (`""` when absent or not text).
pub(super) fn text<'a>(r: &'a Map<String, Value>, field: &str) -> &'a str {
    r.get(field).and_then(Value::as_str).unwrap_or("")
}

fn key_of(r: &Map<String, Value>) -> ReactionKey {
    (text(r, "created_at").to_owned(), text(r, "id").to_owned())
}

impl Store {
    /// A user by id.
    pub fn user_view(&self, id: &str) -> Option<Value> {
        self.users.get(id).map(|u| user_json(id, u))
    }

    /// A collection entry by collection and id.
    pub fn entry_view(&self, name: &str, id: &str) -> Option<Value> {
        self.collections
            .get(&(name.to_owned(), id.to_owned()))
            .map(|e| entry_json(name, id, e))
    }

    /// Live (not soft-deleted) reactions matching `keep`, newest first.
    pub fn live_reactions(
        &self,
        keep: impl Fn(&Map<String, Value>) -> bool,
    ) -> Vec<&Map<String, Value>> {
        let mut out: Vec<&Map<String, Value>> = self
            .reactions
            .values()
            .filter(|r| r.get("deleted_at").is_none())
            .filter(|r| keep(r))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(key_of(r)));
        out
    }

    /// A reaction with its children and its user, as every reaction route answers it; soft
    /// deleted ones too (with `deleted_at`).
    pub fn reaction_view(&self, id: &str) -> Option<Value> {
        let r = self.reactions.get(id)?;
        let mut v = Value::Object(r.clone());
        let mut counts = Map::new();
        let mut latest = Map::new();
        for child in self.live_reactions(|c| text(c, "parent") == id) {
            let kind = text(child, "kind").to_owned();
            let n = counts.entry(kind.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
            let list = latest.entry(kind).or_insert(json!([]));
            if let Some(list) = list.as_array_mut() {
                if list.len() < LATEST_CHILDREN {
                    list.extend(self.reaction_view(text(child, "id")));
                }
            }
        }
        v["children_counts"] = Value::Object(counts);
        v["latest_children"] = Value::Object(latest);
        if let Some(user) = self.user_view(text(r, "user_id")) {
            v["user"] = user;
        }
        Some(v)
    }

    /// A page of a reaction filter: `kind` when given, id bounds as on feeds, newest first.
    pub fn filter_reactions(
        &self,
        lookup: ReactionLookup,
        value: &str,
        kind: Option<&str>,
        bounds: &[(IdBound, String)],
        limit: usize,
    ) -> Vec<Value> {
        let field = match lookup {
            ReactionLookup::Activity => "activity_id",
            ReactionLookup::Parent => "parent",
            ReactionLookup::User => "user_id",
        };
        // A bound names a reaction; one not stored is placed by the time in its v1 id.
        let pivots: Vec<(IdBound, ReactionKey)> = bounds
            .iter()
            .map(|(b, id)| {
                let key = self.reactions.get(id).map(key_of).unwrap_or_else(|| {
                    let t = uuid::Uuid::parse_str(id)
                        .map(|u| fmt_time(&uuid_time(&u)))
                        .unwrap_or_default();
                    (t, id.clone())
                });
                (*b, key)
            })
            .collect();
        self.live_reactions(|r| {
            text(r, field) == value && kind.is_none_or(|k| text(r, "kind") == k)
        })
        .into_iter()
        .filter(|r| {
            let k = key_of(r);
            pivots.iter().all(|(b, p)| match b {
                IdBound::Lt => k < *p,
                IdBound::Lte => k <= *p,
                IdBound::Gt => k > *p,
                IdBound::Gte => k >= *p,
            })
        })
        .take(limit)
        .filter_map(|r| self.reaction_view(text(r, "id")))
        .collect()
    }
}
