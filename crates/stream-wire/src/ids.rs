//! Feed identifiers as Stream knows them, parsed once at the edge.
//!
//! After a handler boundary nothing takes a raw `String` for a slug, a user id or a feed id:
//! they are [`Slug`], [`UserId`] and [`FeedId`], which can only be built by `parse`.

use std::fmt;

/// Longest slug or user id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// Why an identifier was refused; the caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing between the separators.
    #[error("must not be empty")]
    Empty,
    /// Over [`MAX_ID_BYTES`].
    #[error("must be at most {MAX_ID_BYTES} bytes")]
    TooLong,
    /// A character outside the allowed set (the message lists the set).
    #[error("may only contain {allowed} (found {found:?})")]
    BadChar {
        /// The allowed set, for the message.
        allowed: &'static str,
        /// The first offending character.
        found: char,
    },
    /// A feed id without `:`.
    #[error("must be a feed id of the form slug:user_id")]
    NotFeedId,
}

fn check(s: &str, dash_ok: bool) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong);
    }
    let allowed = if dash_ok {
        "letters, digits, '_' and '-'"
    } else {
        "letters, digits and '_'"
    };
    match s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || (dash_ok && c == '-')))
    {
        Some(found) => Err(IdError::BadChar { allowed, found }),
        None => Ok(()),
    }
}

/// A collection name or a reaction kind: `^[A-Za-z0-9_-]+$`, at most [`MAX_ID_BYTES`].
pub fn check_name(s: &str) -> Result<(), IdError> {
    check(s, true)
}

/// A feed group slug: `^[A-Za-z0-9_]+$`, the REST docs' `\w+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug, refusing anything outside `[A-Za-z0-9_]`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check(s, false).map(|()| Self(s.to_owned()))
    }
    /// The slug as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A feed's user id: `^[A-Za-z0-9_-]+$` (the official clients accept `-`, which UUIDs need).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// Parses a user id, refusing anything outside `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check(s, true).map(|()| Self(s.to_owned()))
    }
    /// The user id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A feed: `slug:user_id` in bodies, `slug/user_id` in paths, `sluguser_id` in JWT claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedId {
    slug: Slug,
    user: UserId,
}

impl FeedId {
    /// A feed from its two parts.
    pub fn new(slug: Slug, user: UserId) -> Self {
        Self { slug, user }
    }

    /// Parses `slug:user_id`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (slug, user) = s.split_once(':').ok_or(IdError::NotFeedId)?;
        Ok(Self::new(Slug::parse(slug)?, UserId::parse(user)?))
    }

    /// The feed group.
    pub fn slug(&self) -> &Slug {
        &self.slug
    }

    /// The user id part.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The `feed_id` JWT claim: slug and user id concatenated without a colon.
    pub fn claim(&self) -> String {
        format!("{}{}", self.slug.0, self.user.0)
    }

    /// The path form, `slug/user_id`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.slug.0, self.user.0)
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.slug.0, self.user.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_accepts_word_characters_only() {
        assert!(Slug::parse("user_feed9").is_ok());
        assert!(matches!(
            Slug::parse("user-feed"),
            Err(IdError::BadChar { found: '-', .. })
        ));
        assert_eq!(Slug::parse(""), Err(IdError::Empty));
        assert!(Slug::parse("ü").is_err());
    }

    #[test]
    fn user_id_accepts_dashes_for_uuids() {
        assert!(UserId::parse("6f1c2f36-0f9e-4b6c-9f3a-0c6f1d2a3b4c").is_ok());
        assert!(UserId::parse("a.b").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a\0").is_err());
    }

    #[test]
    fn ids_are_limited_to_255_bytes() {
        assert!(UserId::parse(&"a".repeat(255)).is_ok());
        assert_eq!(UserId::parse(&"a".repeat(256)), Err(IdError::TooLong));
        assert_eq!(Slug::parse(&"a".repeat(256)), Err(IdError::TooLong));
    }

    #[test]
    fn feed_id_round_trips_through_its_three_forms() {
        let f = FeedId::parse("timeline:42").unwrap();
        assert_eq!(f.to_string(), "timeline:42");
        assert_eq!(f.claim(), "timeline42");
        assert_eq!(f.path(), "timeline/42");
        assert_eq!(FeedId::parse(&f.to_string()).unwrap(), f);
    }

    #[test]
    fn feed_id_without_colon_or_with_two_is_refused() {
        assert_eq!(FeedId::parse("user42"), Err(IdError::NotFeedId));
        assert!(FeedId::parse("user:4:2").is_err());
        assert!(FeedId::parse(":42").is_err());
    }
}
