//! Users: created, read, replaced, updated and deleted one at a time or in batches. Every
//! change writes its audit entry here (the user names itself as who made it), so a route
//! cannot change a user without one.

use serde_json::{json, Map, Value};

use super::audit::{Change, Entity};
use super::objects::user_json;
use super::{now_string, Store};

/// A stored user: its `data` and times, as `user_json` renders it.
fn new_user(data: Map<String, Value>) -> Map<String, Value> {
    let t = now_string();
    let mut u = Map::new();
    u.insert("data".into(), Value::Object(data));
    u.insert("created_at".into(), json!(t));
    u.insert("updated_at".into(), json!(t));
    u
}

impl Store {
    /// Creates the user `id` with `data`; `None` when that id is taken (nothing changes).
    pub fn add_user(&mut self, id: &str, data: Map<String, Value>) -> Option<Value> {
        if self.users.contains_key(id) {
            return None;
        }
        Some(self.put_user(id, data))
    }

    /// Replaces the `data` of the user `id`; `None` when there is no such user.
    pub fn update_user(&mut self, id: &str, data: Map<String, Value>) -> Option<Value> {
        let u = self.users.get_mut(id)?;
        u.insert("data".into(), Value::Object(data));
        u.insert("updated_at".into(), json!(now_string()));
        let out = user_json(id, u);
        self.audit(Entity::User, id, Change::Update, id);
        Some(out)
    }

    /// Deletes the user `id`; whether there was one.
    pub fn delete_user(&mut self, id: &str) -> bool {
        let gone = self.users.remove(id).is_some();
        if gone {
            self.audit(Entity::User, id, Change::Delete, id);
        }
        gone
    }

    /// `POST users/`: each user created, or, when it exists, replaced (`replace`) or answered
    /// as it is; the users as they are now, in the order given.
    pub fn add_users(
        &mut self,
        users: Vec<(String, Map<String, Value>)>,
        replace: bool,
    ) -> Vec<Value> {
        users
            .into_iter()
            .map(|(id, data)| match self.user_view(&id) {
                Some(existing) if !replace => existing,
                _ => self.put_user(&id, data),
            })
            .collect()
    }

    /// Deletes the users named; the ids of those there were, in the order given.
    pub fn delete_users<'a>(&mut self, ids: &[&'a str]) -> Vec<&'a str> {
        ids.iter()
            .copied()
            .filter(|id| self.delete_user(id))
            .collect()
    }

    /// The users named that exist, in the order given.
    pub fn users_view(&self, ids: &[&str]) -> Vec<Value> {
        ids.iter().filter_map(|id| self.user_view(id)).collect()
    }

    /// Stores the user `id` afresh (created now), recording a create, or an update of one
    /// that was there.
    fn put_user(&mut self, id: &str, data: Map<String, Value>) -> Value {
        let u = new_user(data);
        let out = user_json(id, &u);
        let action = Change::replacing(self.users.insert(id.to_owned(), u).is_some());
        self.audit(Entity::User, id, action, id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn data(name: &str) -> Map<String, Value> {
        json!({ "name": name }).as_object().cloned().unwrap()
    }

    #[test]
    fn every_user_change_has_its_audit_entry_and_a_refused_one_has_none() {
        let mut s = Store::default();

        assert!(s.add_user("ann", data("Ann")).is_some());
        assert!(s.add_user("ann", data("Other")).is_none());
        assert!(s.update_user("ann", data("Anne")).is_some());
        assert!(s.update_user("nobody", data("x")).is_none());
        s.add_users(
            vec![("ann".into(), data("no")), ("bob".into(), data("Bob"))],
            false,
        );
        s.add_users(vec![("bob".into(), data("Robert"))], true);
        assert_eq!(s.delete_users(&["ann", "nobody"]), ["ann"]);
        assert!(!s.delete_user("ann"));

        assert_eq!(
            s.audit_trail(),
            [
                ("ann", "create"),
                ("ann", "update"),
                ("bob", "create"),
                ("bob", "update"),
                ("ann", "delete"),
            ]
            .map(|(id, action)| (id.to_owned(), action.to_owned(), id.to_owned()))
        );
        assert_eq!(s.users_view(&["bob", "ann"])[0]["data"]["name"], "Robert");
        assert_eq!(s.users_view(&["bob", "ann"]).len(), 1);
    }
}
