//! What every section's settings share: the error that names a key, and the checks of plain
//! values. Each section's schema, defaults and validation live beside the code that reads them
//! (`upstream::settings`, `tokens::settings`, ...); `config` loads and assembles them.

use std::time::Duration;

/// A configuration error: the key and what is wrong, for one line on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    /// The dotted key (`stream.api_secret`).
    pub key: String,
    /// What is wrong, without the value when the value is secret.
    pub problem: String,
}

impl ConfigError {
    /// The error for `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A name the configuration gives something (`callers.service.<name>`,
/// `webhooks.routes.<name>`): 1 to 64 lower-case letters, digits, `_` or `-`, as it appears
/// in metrics labels and log lines. `key` is where it stands; `what` says what it names.
pub(crate) fn check_name(key: String, name: &str, what: &str) -> Result<(), ConfigError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{what} is 1 to 64 lower-case letters, digits, `_` or `-`"),
        ))
    }
}

/// A duration in milliseconds that must not be 0.
pub(crate) fn ms(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "must be greater than 0"));
    }
    Ok(Duration::from_millis(v))
}

/// A count that must not be 0.
pub(crate) fn positive(key: &str, v: u64) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::new(key, "must be greater than 0"));
    }
    Ok(v as usize)
}

/// An optional text, none when blank.
pub(crate) fn present(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// `scheme://host[:port]`, http or https, nothing after the authority but an optional `/`:
/// the scheme and the authority, or what is wrong, worded to follow the quoted value.
pub(crate) fn split_http_url(u: &str) -> Result<(&str, &str), &'static str> {
    let (scheme, rest) = u
        .split_once("://")
        .ok_or("has no scheme: write http://host:port or https://host")?;
    if scheme != "http" && scheme != "https" {
        return Err("must use http or https");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return Err("must be scheme + host [+ port], with no path, query or user info");
    }
    Ok((scheme, authority))
}
