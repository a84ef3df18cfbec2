//! `[tokens.oidc]` as read ([`OidcFile`]) and validated ([`OidcSettings`]): which identity
//! provider's tokens `/tokens` takes, and how they are checked. A problem names its key
//! (`tokens.oidc.algorithms`).

use std::net::IpAddr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;

/// `tokens.oidc.leeway_s` at most: a clock further off than this is a broken clock.
pub(crate) const MAX_LEEWAY_S: u64 = 300;

/// `[tokens.oidc]` as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcFile {
    /// The exact `iss` of the tokens.
    pub issuer: Option<String>,
    /// `aud` must contain one of these.
    pub audience: Option<OneOrMany>,
    /// Where the keys are; none: the discovery document's `jwks_uri`.
    pub jwks_url: Option<String>,
    /// The claim naming the Stream user id.
    pub user_claim: String,
    /// Signature algorithms taken.
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
    pub leeway_s: u64,
    /// Shortest time between two fetches caused by unknown `kid`s, seconds.
    pub refetch_interval_s: u64,
}

impl Default for OidcFile {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            jwks_url: None,
            user_claim: "sub".into(),
            algorithms: DEFAULT_ALGORITHMS
                .iter()
                .map(|a| format!("{a:?}"))
                .collect(),
            leeway_s: 30,
            refetch_interval_s: 30,
        }
    }
}

/// A string or a list of strings (`audience = "app"` or `audience = ["app", "api"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `[tokens.oidc]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The exact `iss` (`https://idp.example.com/realms/app`).
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audience: Vec<String>,
    /// The JWKS URL, when configured (else discovered from the issuer).
    pub jwks_url: Option<String>,
    pub user_claim: String,
    /// Never HMAC (`HS*`): the IdP's public keys would be the shared secret.
    pub algorithms: Vec<Algorithm>,
    pub leeway_s: u64,
    pub refetch_interval: Duration,
}

fn problem(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: format!("tokens.oidc.{key}"),
        problem: problem.into(),
    }
}

/// The default of `tokens.oidc.algorithms`.
pub(crate) const DEFAULT_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

impl OidcSettings {
    /// Validates `[tokens.oidc]`.
    pub fn validate(f: OidcFile) -> Result<Self, ConfigError> {
        let issuer = f
            .issuer
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| problem("issuer", "is required (the exact `iss` of the tokens)"))?;
        https_or_loopback(&issuer).map_err(|e| problem("issuer", e))?;
        let audience = match f.audience {
            None => Vec::new(),
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(a)) => a,
        };
        if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
            return Err(problem(
                "audience",
                "is required: the client id (or ids) the tokens are issued for",
            ));
        }
        let jwks_url = f.jwks_url.filter(|s| !s.trim().is_empty());
        if let Some(u) = &jwks_url {
            https_or_loopback(u).map_err(|e| problem("jwks_url", e))?;
        }
        let user_claim = f.user_claim;
        if user_claim.trim().is_empty() {
            return Err(problem("user_claim", "must name a claim"));
        }
        let algorithms = parse_algorithms(&f.algorithms)?;
        let leeway_s = f.leeway_s;
        if leeway_s > MAX_LEEWAY_S {
            return Err(problem(
                "leeway_s",
                format!("must be at most {MAX_LEEWAY_S}"),
            ));
        }
        let refetch = f.refetch_interval_s;
        if refetch == 0 {
            return Err(problem("refetch_interval_s", "must be at least 1"));
        }
        Ok(Self {
            issuer,
            audience,
            jwks_url,
            user_claim,
            algorithms,
            leeway_s,
            refetch_interval: Duration::from_secs(refetch),
        })
    }

    /// The discovery document's URL: `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    if names.is_empty() {
        return Err(problem("algorithms", "must name at least one algorithm"));
    }
    let mut out = Vec::new();
    for n in names {
        if n.starts_with("HS") || n.eq_ignore_ascii_case("none") {
            return Err(problem(
                "algorithms",
                format!(
                    "{n:?} is refused: HS* would take the IdP's public key as a shared secret, \
                     and none is no signature"
                ),
            ));
        }
        let alg: Algorithm = n.parse().map_err(|_| {
            problem(
                "algorithms",
                format!(
                    "{n:?} is not an algorithm; known: RS256, RS384, RS512, PS256, PS384, PS512, \
                     ES256, ES384, EdDSA"
                ),
            )
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// `https://`, or `http://` to a loopback host (tests and local IdPs): keys fetched in clear
/// over a network could be swapped by anyone on the path.
pub(crate) fn https_or_loopback(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("{url:?} is not a URL with a host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "{url:?} must be https (http only for loopback hosts)"
        )),
        _ => Err(format!("{url:?} is not an http(s) URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> OidcFile {
        OidcFile {
            issuer: Some("https://idp.example.com/realms/app".into()),
            audience: Some(OneOrMany::One("web".into())),
            ..OidcFile::default()
        }
    }

    fn refused(f: OidcFile) -> String {
        let e = OidcSettings::validate(f).unwrap_err();
        format!("{}: {}", e.key, e.problem)
    }

    #[test]
    fn defaults_are_sub_the_three_asymmetric_algorithms_30_s_leeway_and_30_s_refetch() {
        let s = OidcSettings::validate(file()).unwrap();
        assert_eq!(s.user_claim, "sub");
        assert_eq!(s.algorithms, DEFAULT_ALGORITHMS);
        assert_eq!(s.leeway_s, 30);
        assert_eq!(s.refetch_interval, Duration::from_secs(30));
        assert_eq!(s.audience, ["web"]);
        assert_eq!(
            s.discovery_url(),
            "https://idp.example.com/realms/app/.well-known/openid-configuration"
        );
    }

    #[test]
    fn an_audience_may_be_a_list() {
        let mut f = file();
        f.audience = Some(OneOrMany::Many(vec!["a".into(), "b".into()]));
        assert_eq!(OidcSettings::validate(f).unwrap().audience, ["a", "b"]);
    }

    #[test]
    fn hmac_and_none_stop_start_up() {
        for bad in ["HS256", "HS512", "none", "NONE"] {
            let mut f = file();
            f.algorithms = vec!["RS256".into(), bad.into()];
            assert!(refused(f).starts_with("tokens.oidc.algorithms: "), "{bad}");
        }
        let mut f = file();
        f.algorithms = vec!["RS1024".into()];
        assert!(refused(f).contains("is not an algorithm"));
        let mut f = file();
        f.algorithms = vec![];
        assert!(refused(f).contains("at least one"));
    }

    #[test]
    fn issuer_and_audience_are_required() {
        let mut f = file();
        f.issuer = None;
        assert!(refused(f).starts_with("tokens.oidc.issuer: is required"));
        let mut f = file();
        f.audience = None;
        assert!(refused(f).starts_with("tokens.oidc.audience: is required"));
        let mut f = file();
        f.audience = Some(OneOrMany::Many(vec![]));
        assert!(refused(f).starts_with("tokens.oidc.audience"));
    }

    #[test]
    fn urls_must_be_https_except_for_loopback_hosts() {
        for ok in [
            "https://idp.example.com",
            "http://127.0.0.1:8080/realms/x",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            assert_eq!(https_or_loopback(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "ftp://127.0.0.1/",
            "idp",
            "http://10.0.0.1/",
        ] {
            assert!(https_or_loopback(bad).is_err(), "{bad}");
        }
        let mut f = file();
        f.jwks_url = Some("http://idp.example.com/jwks".into());
        assert!(refused(f).starts_with("tokens.oidc.jwks_url: "));
        let mut f = file();
        f.issuer = Some("http://idp.example.com".into());
        assert!(refused(f).starts_with("tokens.oidc.issuer: "));
    }

    #[test]
    fn leeway_and_refetch_interval_are_bounded() {
        let mut f = file();
        f.leeway_s = 301;
        assert!(refused(f).starts_with("tokens.oidc.leeway_s"));
        let mut f = file();
        f.leeway_s = 300;
        assert!(OidcSettings::validate(f).is_ok());
        let mut f = file();
        f.refetch_interval_s = 0;
        assert!(refused(f).starts_with("tokens.oidc.refetch_interval_s"));
        let mut f = file();
        f.user_claim = " ".into();
        assert!(refused(f).starts_with("tokens.oidc.user_claim"));
    }
}
