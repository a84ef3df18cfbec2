//! Reactions: added (to an activity, or as a child of a reaction, with an activity in each
//! target feed), updated, deleted hard or soft, restored. Every create, update and delete writes
//! its audit entry here (the reaction's `user_id` as who made it); a restore writes none, as
//! before. A soft-deleted reaction is read but never changed, except by its restore.

use serde_json::{json, Map, Value};

use stream_wire::FeedId;

use super::audit::{Change, Entity};
use super::{now_string, Store};

/// A reaction to add, as `POST reaction/` names it.
#[derive(Debug, Clone, Default)]
pub struct NewReaction {
    /// Its id, when the caller chose one.
    pub id: Option<String>,
    pub kind: String,
    /// The activity it reacts to; a child takes its parent's when not given.
    pub activity_id: Option<String>,
    /// The reaction it is a child of.
    pub parent: Option<String>,
    pub user_id: Option<String>,
    pub data: Map<String, Value>,
    /// `target_feeds` as sent (stored and answered as it came).
    pub target_feeds_field: Option<Value>,
    /// The feeds that get an activity naming the reaction.
    pub target_feeds: Vec<FeedId>,
    /// Fields of those activities, under the ones that name the reaction.
    pub target_feeds_extra_data: Map<String, Value>,
}

/// Why a reaction was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddRefused {
    /// `parent` names no reaction (Stream: invalid input, not 404).
    NoParent,
    /// Neither `activity_id` nor a parent names the activity.
    NoActivity,
    /// A reaction has this id.
    Taken,
}

/// Who an audit entry names for a reaction or a collection entry: its `user_id`, if any.
fn user_of(r: &Map<String, Value>) -> String {
    super::objects::text(r, "user_id").to_owned()
}

impl Store {
    /// Adds a reaction (and an activity naming it to each target feed); it as every
    /// reaction route answers it.
    pub fn add_reaction(&mut self, new: NewReaction) -> Result<Value, AddRefused> {
        let parent_activity = match &new.parent {
            None => None,
            Some(p) => Some(
                self.reactions
                    .get(p)
                    .and_then(|r| r.get("activity_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(AddRefused::NoParent)?,
            ),
        };
        let activity_id = new
            .activity_id
            .or(parent_activity)
            .ok_or(AddRefused::NoActivity)?;
        let id = match new.id {
            Some(id) if self.reactions.contains_key(&id) => return Err(AddRefused::Taken),
            Some(id) => id,
            None => self.object_id(),
        };
        let t = now_string();
        let r = json!({
            "id": id,
            "kind": new.kind,
            "activity_id": activity_id,
            "parent": new.parent.as_deref().unwrap_or(""),
            "user_id": new.user_id.clone().map_or(Value::Null, Value::String),
            "data": new.data,
            "target_feeds": new.target_feeds_field.unwrap_or(json!([])),
            "created_at": t,
            "updated_at": t,
        });
        self.reactions
            .insert(id.clone(), r.as_object().cloned().unwrap_or_default());
        // Each target feed gets an activity that names the reaction, with the extra data on top.
        let mut a = new.target_feeds_extra_data;
        let user = new.user_id.unwrap_or_default();
        for (k, val) in [
            ("actor", json!(format!("SU:{user}"))),
            ("verb", json!(new.kind)),
            ("object", json!(format!("SA:{activity_id}"))),
            ("foreign_id", json!(format!("SR:{id}"))),
            ("reaction", json!(format!("SR:{id}"))),
            ("time", json!(t)),
        ] {
            a.entry(k).or_insert(val);
        }
        for feed in &new.target_feeds {
            self.add(feed, a.clone());
        }
        self.audit(Entity::Reaction, &id, Change::Create, &user);
        Ok(self.reaction_view(&id).unwrap_or(Value::Null))
    }

    /// A reaction that is not soft-deleted.
    fn live_reaction(&mut self, id: &str) -> Option<&mut Map<String, Value>> {
        self.reactions
            .get_mut(id)
            .filter(|r| r.get("deleted_at").is_none())
    }

    /// Replaces the `data` and `target_feeds` given of a live reaction; `None` when there is
    /// none with this id.
    pub fn update_reaction(
        &mut self,
        id: &str,
        data: Option<Map<String, Value>>,
        target_feeds: Option<Value>,
    ) -> Option<Value> {
        let r = self.live_reaction(id)?;
        if let Some(d) = data {
            r.insert("data".into(), Value::Object(d));
        }
        if let Some(t) = target_feeds {
            r.insert("target_feeds".into(), t);
        }
        r.insert("updated_at".into(), json!(now_string()));
        let user = user_of(r);
        self.audit(Entity::Reaction, id, Change::Update, &user);
        self.reaction_view(id)
    }

    /// Deletes a live reaction, or with `soft` marks it deleted (still read, with its
    /// `deleted_at`); whether there was one.
    pub fn delete_reaction(&mut self, id: &str, soft: bool) -> bool {
        let Some(r) = self.live_reaction(id) else {
            return false;
        };
        let user = user_of(r);
        if soft {
            r.insert("deleted_at".into(), json!(now_string()));
        } else {
            self.reactions.remove(id);
        }
        self.audit(Entity::Reaction, id, Change::Delete, &user);
        true
    }

    /// Brings back a soft-deleted reaction; `None` when there is none with this id.
    pub fn restore_reaction(&mut self, id: &str) -> Option<Value> {
        let r = self
            .reactions
            .get_mut(id)
            .filter(|r| r.get("deleted_at").is_some())?;
        r.remove("deleted_at");
        self.reaction_view(id)
    }

    /// The reactions named that exist (soft-deleted ones too), in the order given.
    pub fn reactions_view(&self, ids: &[&str]) -> Vec<Value> {
        ids.iter().filter_map(|id| self.reaction_view(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(id: &str, parent: Option<&str>) -> NewReaction {
        NewReaction {
            id: Some(id.into()),
            kind: "like".into(),
            activity_id: parent.is_none().then(|| "a1".to_owned()),
            parent: parent.map(str::to_owned),
            user_id: Some("ann".into()),
            ..NewReaction::default()
        }
    }

    #[test]
    fn a_soft_deleted_reaction_is_read_but_not_changed_until_restored() {
        let mut s = Store::default();
        s.add_reaction(like("r1", None)).unwrap();

        assert!(s.delete_reaction("r1", true));

        assert!(s.reactions_view(&["r1"])[0].get("deleted_at").is_some());
        assert!(s.update_reaction("r1", None, None).is_none());
        assert!(!s.delete_reaction("r1", true));
        assert!(s.restore_reaction("r1").is_some());
        assert!(s.restore_reaction("r1").is_none(), "live again");
        assert!(s.update_reaction("r1", None, None).is_some());
        let actions: Vec<String> = s.audit_trail().into_iter().map(|e| e.1).collect();
        assert_eq!(actions, ["create", "delete", "update"]);
    }

    #[test]
    fn a_child_takes_its_parents_activity_and_refusals_change_nothing() {
        let mut s = Store::default();
        s.add_reaction(like("r1", None)).unwrap();

        let child = s.add_reaction(like("c1", Some("r1"))).unwrap();

        assert_eq!(child["activity_id"], "a1");
        assert_eq!(
            s.add_reaction(like("c2", Some("nothing"))),
            Err(AddRefused::NoParent)
        );
        assert_eq!(s.add_reaction(like("r1", None)), Err(AddRefused::Taken));
        let orphan = NewReaction {
            kind: "like".into(),
            ..NewReaction::default()
        };
        assert_eq!(s.add_reaction(orphan), Err(AddRefused::NoActivity));
        assert_eq!(s.reactions_view(&["r1", "c1", "c2"]).len(), 2);
        assert!(s.delete_reaction("r1", false));
        assert!(s.reactions_view(&["r1"]).is_empty());
    }
}
