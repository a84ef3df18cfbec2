//! The audit log: one entry per change to an activity, reaction, user or collection entry,
//! filtered by entity type and id or by user id, newest first, paged by opaque cursors.

use serde_json::{json, Value};

use super::{now_string, Store};

/// What an audit entry is about (its `entity_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    Activity,
    Reaction,
    User,
    CollectionEntry,
}

impl Entity {
    fn name(self) -> &'static str {
        match self {
            Entity::Activity => "activity",
            Entity::Reaction => "reaction",
            Entity::User => "user",
            Entity::CollectionEntry => "collection_entry",
        }
    }
}

/// What happened to it (its `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Create,
    Update,
    Delete,
}

impl Change {
    /// An update when a stored one was replaced, else a create.
    pub(super) fn replacing(replaced: bool) -> Self {
        if replaced {
            Change::Update
        } else {
            Change::Create
        }
    }

    fn name(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Delete => "delete",
        }
    }
}

/// One audit log entry.
#[derive(Debug, Clone)]
pub(super) struct AuditEntry {
    seq: u64,
    entity_type: Entity,
    entity_id: String,
    action: Change,
    user_id: String,
    created_at: String,
}

/// What `GET audit_logs/` selects.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `activity`, `reaction`, `user` or `collection_entry`.
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    /// Who made the change (an activity's actor, a reaction's or entry's user).
    pub user_id: Option<String>,
    /// Entries per page.
    pub limit: usize,
    /// A cursor from a previous page's `next`: older entries.
    pub next: Option<String>,
    /// A cursor from a previous page's `prev`: newer entries.
    pub prev: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<Value>,
    /// Cursor of the next (older) page, when there is one.
    pub next: Option<String>,
    /// Cursor of the previous (newer) page, when there is one.
    pub prev: Option<String>,
}

impl Store {
    /// Records a change: only the store's own methods do, each for the change it makes.
    pub(super) fn audit(&mut self, entity: Entity, entity_id: &str, action: Change, user_id: &str) {
        self.audit_seq += 1;
        self.audit_log.push(AuditEntry {
            seq: self.audit_seq,
            entity_type: entity,
            entity_id: entity_id.to_owned(),
            action,
            user_id: user_id.to_owned(),
            created_at: now_string(),
        });
    }

    /// A page of entries matching `f`. Cursors are entry numbers; a bad one selects nothing.
    pub fn audit_page(&self, f: &AuditFilter) -> AuditPage {
        let cursor = |c: &Option<String>| c.as_deref().map(|c| c.parse::<u64>().unwrap_or(0));
        let (before, after) = (cursor(&f.next), cursor(&f.prev));
        let matching: Vec<&AuditEntry> = self
            .audit_log
            .iter()
            .rev()
            .filter(|e| {
                f.entity_type
                    .as_ref()
                    .is_none_or(|t| t == e.entity_type.name())
            })
            .filter(|e| f.entity_id.as_ref().is_none_or(|i| *i == e.entity_id))
            .filter(|e| f.user_id.as_ref().is_none_or(|u| *u == e.user_id))
            .collect();
        let window: Vec<&AuditEntry> = match (before, after) {
            (Some(b), _) => matching
                .iter()
                .filter(|e| e.seq < b)
                .take(f.limit)
                .copied()
                .collect(),
            (None, Some(a)) => {
                let newer: Vec<&AuditEntry> =
                    matching.iter().filter(|e| e.seq > a).copied().collect();
                newer[newer.len().saturating_sub(f.limit)..].to_vec()
            }
            (None, None) => matching.iter().take(f.limit).copied().collect(),
        };
        let (newest, oldest) = match (window.first(), window.last()) {
            (Some(n), Some(o)) => (n.seq, o.seq),
            _ => {
                return AuditPage {
                    entries: Vec::new(),
                    next: None,
                    prev: None,
                }
            }
        };
        AuditPage {
            next: matching
                .iter()
                .any(|e| e.seq < oldest)
                .then(|| oldest.to_string()),
            prev: matching
                .iter()
                .any(|e| e.seq > newest)
                .then(|| newest.to_string()),
            entries: window
                .iter()
                .map(|e| {
                    json!({
                        "id": e.seq.to_string(),
                        "entity_type": e.entity_type.name(),
                        "entity_id": e.entity_id,
                        "action": e.action.name(),
                        "user_id": e.user_id,
                        "custom": {},
                        "created_at": e.created_at,
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
impl Store {
    /// Every entry, oldest first: entity id, action, user id.
    pub(super) fn audit_trail(&self) -> Vec<(String, String, String)> {
        self.audit_log
            .iter()
            .map(|e| {
                (
                    e.entity_id.clone(),
                    e.action.name().to_owned(),
                    e.user_id.clone(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(s: &Store, f: AuditFilter) -> (Vec<String>, Option<String>, Option<String>) {
        let p = s.audit_page(&f);
        let ids = p
            .entries
            .iter()
            .map(|e| e["entity_id"].as_str().unwrap().to_owned())
            .collect();
        (ids, p.next, p.prev)
    }

    #[test]
    fn pages_walk_older_with_next_and_back_with_prev() {
        let mut s = Store::default();
        for n in 1..=5 {
            s.audit(Entity::Activity, &format!("a{n}"), Change::Create, "ann");
        }
        s.audit(Entity::Reaction, "r1", Change::Create, "bob");
        let f = |next: Option<String>, prev: Option<String>| AuditFilter {
            entity_type: Some("activity".into()),
            limit: 2,
            next,
            prev,
            ..AuditFilter::default()
        };

        let (first, next, prev) = page(&s, f(None, None));
        let (second, next2, prev2) = page(&s, f(next.clone(), None));
        let (back, _, _) = page(&s, f(None, prev2));

        assert_eq!(first, ["a5", "a4"]);
        assert_eq!(prev, None);
        assert_eq!(second, ["a3", "a2"]);
        assert!(next2.is_some());
        assert_eq!(back, first);
        let (by_user, _, _) = page(
            &s,
            AuditFilter {
                user_id: Some("bob".into()),
                limit: 25,
                ..AuditFilter::default()
            },
        );
        assert_eq!(by_user, ["r1"]);
    }
}
