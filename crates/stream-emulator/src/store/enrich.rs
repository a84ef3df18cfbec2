//! Enriched reads: `SU:<user id>` and `SO:<collection>:<id>` references expanded into the
//! stored user or entry, and an activity's reactions (`own_reactions`, `latest_reactions`,
//! `reaction_counts`) attached when asked, limited to some kinds when asked.

use serde_json::{json, Map, Value};

use super::Store;

/// Fields that hold Stream's own values, never references.
const NOT_REFERENCES: &[&str] = &["id", "foreign_id", "time", "verb", "origin", "to"];

/// Latest reactions per kind when the read names no `recent_reactions_limit`.
pub const DEFAULT_RECENT_LIMIT: usize = 10;

/// What an enriched read asks for beyond expanding references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrichment {
    /// `own_reactions`: the reactions of `user_id`, per kind.
    pub own: bool,
    /// `latest_reactions`: the newest reactions per kind.
    pub recent: bool,
    /// `reaction_counts`: how many reactions per kind.
    pub counts: bool,
    /// Only these kinds (all when `None`).
    pub kinds: Option<Vec<String>>,
    /// Reactions listed per kind.
    pub recent_limit: usize,
    /// Whose reactions are `own`.
    pub user_id: Option<String>,
}

impl Store {
    /// The object a reference names, if it is one and the object exists.
    fn resolve(&self, s: &str) -> Option<Value> {
        if let Some(id) = s.strip_prefix("SU:") {
            return self.user_view(id);
        }
        let (name, id) = s.strip_prefix("SO:")?.split_once(':')?;
        self.entry_view(name, id)
    }

    /// Replaces each top-level reference in `obj` with the object it names.
    fn expand(&self, obj: &mut Map<String, Value>) {
        for (k, v) in obj.iter_mut() {
            if NOT_REFERENCES.contains(&k.as_str()) {
                continue;
            }
            if let Some(found) = v.as_str().and_then(|s| self.resolve(s)) {
                *v = found;
            }
        }
    }

    /// A reaction as an enriched read lists it: references in its data expanded.
    fn enriched_reaction(&self, id: &str) -> Option<Value> {
        let mut r = self.reaction_view(id)?;
        if let Some(Value::Object(data)) = r.get_mut("data") {
            self.expand(data);
        }
        Some(r)
    }

    /// Enriches one activity (a stored one, as a read renders it) in place.
    pub fn enrich(&self, activity: &mut Value, o: &Enrichment) {
        let Some(obj) = activity.as_object_mut() else {
            return;
        };
        self.expand(obj);
        if !(o.own || o.recent || o.counts) {
            return;
        }
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind_ok = |k: &str| o.kinds.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
        // Children count on their parent, not on the activity.
        let reactions = self.live_reactions(|r| {
            r.get("activity_id").and_then(Value::as_str) == Some(id.as_str())
                && r.get("parent")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                && kind_ok(r.get("kind").and_then(Value::as_str).unwrap_or(""))
        });
        let (mut counts, mut latest, mut own) = (Map::new(), Map::new(), Map::new());
        for r in reactions {
            let kind = r
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let rid = r.get("id").and_then(Value::as_str).unwrap_or("");
            let n = counts.entry(kind.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
            let push = |into: &mut Map<String, Value>| {
                let list = into.entry(kind.clone()).or_insert(json!([]));
                if let Some(list) = list.as_array_mut() {
                    if list.len() < o.recent_limit {
                        list.extend(self.enriched_reaction(rid));
                    }
                }
            };
            push(&mut latest);
            let mine = o
                .user_id
                .as_deref()
                .is_some_and(|u| r.get("user_id").and_then(Value::as_str) == Some(u));
            if mine {
                push(&mut own);
            }
        }
        if o.counts {
            obj.insert("reaction_counts".into(), Value::Object(counts));
        }
        if o.recent {
            obj.insert("latest_reactions".into(), Value::Object(latest));
        }
        if o.own {
            obj.insert("own_reactions".into(), Value::Object(own));
        }
    }
}
