//! Collection entries: added, read, updated, deleted one at a time, and upserted or deleted in
//! batches. Every change writes its audit entry here (`collection_entry`, `name:id`, the
//! entry's `user_id` as who made it), so a route cannot change an entry without one.

use serde_json::{json, Map, Value};

use super::audit::{Change, Entity};
use super::objects::entry_json;
use super::{now_string, Store};

/// Who an audit entry names for a reaction or a collection entry: its `user_id`, if any.
fn user_of(r: &Map<String, Value>) -> String {
    super::objects::text(r, "user_id").to_owned()
}

/// Entries to upsert: `(collection, [(id, data)])`.
pub(super) type EntryBatch = Vec<(String, Vec<(String, Map<String, Value>)>)>;

fn key(name: &str, id: &str) -> (String, String) {
    (name.to_owned(), id.to_owned())
}

impl Store {
    /// `POST collections/{name}/`: a new entry (`id` made up when not given) with `data` and
    /// `user_id`; `None` when the id is taken (nothing changes).
    pub fn add_entry(
        &mut self,
        name: &str,
        id: Option<String>,
        data: Map<String, Value>,
        user_id: Value,
    ) -> Option<Value> {
        let id = id.unwrap_or_else(|| self.object_id());
        if self.collections.contains_key(&key(name, &id)) {
            return None;
        }
        let t = now_string();
        let entry = json!({ "data": data, "user_id": user_id, "created_at": t, "updated_at": t });
        Some(self.put_entry(name, &id, entry.as_object().cloned().unwrap_or_default()))
    }

    /// `PUT collections/{name}/{id}/`: replaces the entry's `data`; `None` when there is no
    /// such entry.
    pub fn update_entry(
        &mut self,
        name: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> Option<Value> {
        let mut entry = self.collections.get(&key(name, id))?.clone();
        entry.insert("data".into(), Value::Object(data));
        entry.insert("updated_at".into(), json!(now_string()));
        Some(self.put_entry(name, id, entry))
    }

    /// `POST collections/`: each entry of each collection created, or replaced keeping its
    /// `created_at`; the entries as stored, by collection, in the order given.
    pub fn upsert_entries(&mut self, batch: EntryBatch) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, entries) in batch {
            let saved = entries
                .into_iter()
                .map(|(id, data)| {
                    let t = now_string();
                    let created_at = self
                        .collections
                        .get(&key(&name, &id))
                        .and_then(|e| e.get("created_at").cloned())
                        .unwrap_or_else(|| json!(t));
                    let entry = json!({ "data": data, "created_at": created_at, "updated_at": t });
                    self.put_entry(&name, &id, entry.as_object().cloned().unwrap_or_default())
                })
                .collect();
            out.insert(name, Value::Array(saved));
        }
        out
    }

    /// Deletes the entry; whether there was one.
    pub fn delete_entry(&mut self, name: &str, id: &str) -> bool {
        let Some(gone) = self.collections.remove(&key(name, id)) else {
            return false;
        };
        let user = user_of(&gone);
        self.audit(
            Entity::CollectionEntry,
            &format!("{name}:{id}"),
            Change::Delete,
            &user,
        );
        true
    }

    /// The entries named by `(collection, id)` that exist, in the order given.
    pub fn entries_view(&self, keys: &[(&str, &str)]) -> Vec<Value> {
        keys.iter()
            .filter_map(|(name, id)| self.entry_view(name, id))
            .collect()
    }

    /// Stores the entry, recording a create, or an update of one that was there.
    fn put_entry(&mut self, name: &str, id: &str, entry: Map<String, Value>) -> Value {
        let out = entry_json(name, id, &entry);
        let user = user_of(&entry);
        let action = Change::replacing(self.collections.insert(key(name, id), entry).is_some());
        self.audit(
            Entity::CollectionEntry,
            &format!("{name}:{id}"),
            action,
            &user,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn data(v: u32) -> Map<String, Value> {
        json!({ "v": v }).as_object().cloned().unwrap()
    }

    #[test]
    fn every_entry_change_has_its_audit_entry_and_a_refused_one_has_none() {
        let mut s = Store::default();

        assert!(s
            .add_entry("food", Some("f1".into()), data(1), json!("ann"))
            .is_some());
        assert!(s
            .add_entry("food", Some("f1".into()), data(2), json!("bob"))
            .is_none());
        assert!(s.update_entry("food", "f1", data(3)).is_some());
        assert!(s.update_entry("food", "none", data(3)).is_none());
        let first = s.upsert_entries(vec![("food".into(), vec![("f2".into(), data(4))])]);
        s.upsert_entries(vec![("food".into(), vec![("f2".into(), data(5))])]);
        assert!(s.delete_entry("food", "f2"));
        assert!(!s.delete_entry("food", "f2"));
        assert!(s.delete_entry("food", "f1"));

        let t = |id: &str, action: &str, user: &str| (id.into(), action.into(), user.into());
        assert_eq!(
            s.audit_trail(),
            [
                t("food:f1", "create", "ann"),
                t("food:f1", "update", "ann"),
                t("food:f2", "create", ""),
                t("food:f2", "update", ""),
                t("food:f2", "delete", ""),
                t("food:f1", "delete", "ann"),
            ]
        );
        assert_eq!(first["food"][0]["foreign_id"], "food:f2");
    }

    #[test]
    fn an_upsert_keeps_the_creation_time_of_an_entry_it_replaces() {
        let mut s = Store::default();
        let before = s
            .add_entry("food", Some("f1".into()), data(1), Value::Null)
            .unwrap();

        let after = s.upsert_entries(vec![("food".into(), vec![("f1".into(), data(2))])]);

        assert_eq!(after["food"][0]["created_at"], before["created_at"]);
        assert_eq!(s.entries_view(&[("food", "f1"), ("food", "f9")]).len(), 1);
    }
}
