//! JWT permission scopes: the `resource`, `action` and `feed_id` claims Stream checks.

use std::fmt;

/// The `resource` claim: which family of endpoints a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `feed`: read, add and remove activities of a feed; `add_to_many`.
    Feed,
    /// `follower`: followers, following, follow, unfollow, `follow_many`.
    Follower,
    /// `activities`: `activities/` (read and update), `enrich/activities/`, `activity/`.
    Activities,
    /// `feed_targets`: `feed_targets/{slug}/{user_id}/activity_to_targets/`.
    FeedTargets,
    /// `reactions`: `reaction/...`.
    Reactions,
    /// `collections`: `collections/...`.
    Collections,
    /// `users`: `user/...` and `users/`.
    Users,
    /// `personalization`: Stream's personalization API, on another host; no route here, but a
    /// frontend token may name it.
    Personalization,
    /// `analytics`: Stream's analytics API, on another host; no route here, but a frontend
    /// token may name it.
    Analytics,
    /// `*`: every resource (never minted by the gateway for upstream calls).
    All,
}

impl Resource {
    /// Every resource, in the order error messages list them.
    pub const ALL: [Resource; 10] = [
        Resource::Feed,
        Resource::Follower,
        Resource::Activities,
        Resource::FeedTargets,
        Resource::Reactions,
        Resource::Collections,
        Resource::Users,
        Resource::Personalization,
        Resource::Analytics,
        Resource::All,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Feed => "feed",
            Resource::Follower => "follower",
            Resource::Activities => "activities",
            Resource::FeedTargets => "feed_targets",
            Resource::Reactions => "reactions",
            Resource::Collections => "collections",
            Resource::Users => "users",
            Resource::Personalization => "personalization",
            Resource::Analytics => "analytics",
            Resource::All => "*",
        }
    }

    /// Parses a claim value; `None` for a resource this gateway does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "feed" => Resource::Feed,
            "follower" => Resource::Follower,
            "activities" => Resource::Activities,
            "feed_targets" => Resource::FeedTargets,
            "reactions" => Resource::Reactions,
            "collections" => Resource::Collections,
            "users" => Resource::Users,
            "personalization" => Resource::Personalization,
            "analytics" => Resource::Analytics,
            "*" => Resource::All,
            _ => return None,
        })
    }
}

/// The `action` claim: which HTTP verbs a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `read`: GET.
    Read,
    /// `write`: POST and PUT.
    Write,
    /// `delete`: DELETE.
    Delete,
    /// `*`: every verb.
    All,
}

impl Action {
    /// Every action, in the order error messages list them.
    pub const ALL: [Action; 4] = [Action::Read, Action::Write, Action::Delete, Action::All];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::All => "*",
        }
    }

    /// Parses a claim value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => Action::Read,
            "write" => Action::Write,
            "delete" => Action::Delete,
            "*" => Action::All,
            _ => return None,
        })
    }
}

/// The `feed_id` claim: one feed (`user42`) or every feed (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeedClaim {
    /// One feed, as slug and user id concatenated.
    One(String),
    /// `*`.
    All,
}

impl FeedClaim {
    /// The claim value.
    pub fn as_str(&self) -> &str {
        match self {
            FeedClaim::One(s) => s,
            FeedClaim::All => "*",
        }
    }

    /// Parses a claim value.
    pub fn parse(s: &str) -> Self {
        if s == "*" {
            FeedClaim::All
        } else {
            FeedClaim::One(s.to_owned())
        }
    }
}

/// A permission scope: what one token allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The `resource` claim.
    pub resource: Resource,
    /// The `action` claim.
    pub action: Action,
    /// The `feed_id` claim.
    pub feed: FeedClaim,
}

impl Scope {
    /// True when a token with this scope allows a call that needs `needed`, as Stream decides:
    /// each claim equal, or `*`.
    pub fn covers(&self, needed: &Scope) -> bool {
        (self.resource == Resource::All || self.resource == needed.resource)
            && (self.action == Action::All || self.action == needed.action)
            && (self.feed == FeedClaim::All || self.feed == needed.feed)
    }

    /// True when this scope grants more than `needed`: it covers it and differs from it.
    pub fn is_wider_than(&self, needed: &Scope) -> bool {
        self.covers(needed) && self != needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.resource.as_str(),
            self.action.as_str(),
            self.feed.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(r: Resource, a: Action, f: &str) -> Scope {
        Scope {
            resource: r,
            action: a,
            feed: FeedClaim::parse(f),
        }
    }

    #[test]
    fn a_scope_covers_itself_and_is_not_wider() {
        let s = scope(Resource::Feed, Action::Read, "user42");
        assert!(s.covers(&s));
        assert!(!s.is_wider_than(&s));
    }

    #[test]
    fn wildcards_cover_and_are_wider() {
        let needed = scope(Resource::Feed, Action::Read, "user42");
        for wide in [
            scope(Resource::All, Action::Read, "user42"),
            scope(Resource::Feed, Action::All, "user42"),
            scope(Resource::Feed, Action::Read, "*"),
        ] {
            assert!(wide.covers(&needed), "{wide}");
            assert!(wide.is_wider_than(&needed), "{wide}");
        }
    }

    #[test]
    fn another_feed_action_or_resource_does_not_cover() {
        let needed = scope(Resource::Feed, Action::Read, "user42");
        assert!(!scope(Resource::Feed, Action::Read, "user43").covers(&needed));
        assert!(!scope(Resource::Feed, Action::Write, "user42").covers(&needed));
        assert!(!scope(Resource::Follower, Action::Read, "user42").covers(&needed));
    }

    #[test]
    fn claim_values_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::parse(r.as_str()), Some(r));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Resource::parse("url"), None);
        assert_eq!(Action::parse("READ"), None);
    }
}
