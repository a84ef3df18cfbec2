//! Credentials for Stream: scoped JWTs ([`jwt`]) and HTTP Signatures ([`httpsig`]).
//!
//! Everything here is a pure function of its inputs and the clock it is handed, so tests run on
//! fixed times and on the known answers in `tests/vectors/auth-vectors.json` (a copy of the shared vectors).

pub mod httpsig;
pub mod jwt;

use std::fmt;

/// The API secret. It has no `Display` and no `Serialize`, its `Debug` is redacted, and the
/// only way to the bytes is [`Secret::expose`], so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into().into_boxed_str())
    }

    /// The secret itself, for signing. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_is_redacted_in_debug_output() {
        let s = Secret::new("hunter2-very-secret");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
