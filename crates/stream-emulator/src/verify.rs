//! How the emulator checks credentials, as Stream does: `api_key` once and right; a JWT
//! signed with the secret, unexpired, whose scope covers the route; or, on the batch routes,
//! an HTTP Signature over the listed headers with `X-Api-Key` and a fresh `Date`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, Uri};

use super::reply::{stream_error, EmuError};
use serde_json::Value;
use stream_wire::auth::{httpsig, jwt, Secret};
use stream_wire::{Action, FeedClaim, Resource, Scope};

/// Largest clock difference a signed `Date` may have.
pub const MAX_DATE_SKEW: Duration = Duration::from_secs(300);

/// What a route requires.
#[derive(Debug, Clone)]
pub enum Needed {
    /// A JWT covering this scope.
    Jwt(Scope),
    /// Application auth: an HTTP Signature, or a JWT covering this scope.
    App(Scope),
    /// A JWT for one of Stream's other services (analytics, personalization): `resource` that
    /// service or `*`, `action` `*`. Strict, exactly the token the current clients send:
    /// `resource` the service, `user_id` `*`, and for analytics no `feed_id`.
    Service(Resource),
}

/// The emulator's credentials and strictness.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// The API key it takes.
    pub api_key: String,
    /// The API secrets it takes: one, or two while a rotation is under way.
    pub secrets: Vec<Secret>,
    /// Refuse tokens wider than the route needs (tests of least privilege). Stream itself
    /// accepts them.
    pub strict_scopes: bool,
}

impl Verifier {
    /// Checks a request; `Err` is the response Stream would give.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        needed: &Needed,
    ) -> Result<(), EmuError> {
        let keys: Vec<String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "api_key")
            .map(|(_, v)| v.into_owned())
            .collect();
        match keys.as_slice() {
            [k] if *k == self.api_key => {}
            [] => {
                return Err(stream_error(
                    401,
                    2,
                    "ApiKeyException",
                    "api_key is missing",
                ))
            }
            [k] => {
                return Err(stream_error(
                    401,
                    2,
                    "ApiKeyException",
                    &stream_wire::query::foreign_key_detail(k),
                ))
            }
            _ => {
                return Err(stream_error(
                    400,
                    4,
                    "InputException",
                    "api_key is given more than once",
                ))
            }
        }
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let auth = header("authorization");
        let jwt_type = header("stream-auth-type").is_some_and(|v| v.eq_ignore_ascii_case("jwt"));
        match (auth, jwt_type, needed) {
            (None, _, _) => Err(stream_error(
                403,
                17,
                "NotAllowedException",
                "Missing auth header.",
            )),
            (Some(token), true, Needed::Jwt(scope) | Needed::App(scope)) => {
                self.check_jwt(token, scope)
            }
            (Some(token), true, Needed::Service(resource)) => {
                self.check_service_jwt(token, *resource)
            }
            (Some(sig), false, Needed::App(_)) if sig.starts_with("Signature ") => {
                self.check_signature(method, uri, headers, sig)
            }
            (Some(_), _, _) => Err(stream_error(
                403,
                17,
                "NotAllowedException",
                "url signature missing or invalid",
            )),
        }
    }

    /// Checks the `ext` stream-js sends with a Faye subscription (`user_id`, `api_key`,
    /// `signature`): this app's api key, and a signature that is a token signed with one of
    /// the secrets, unexpired, reading `feed` (`<slug><user_id>`): a scope token covering
    /// `feed`/`read`/`feed`, or a user token (stream-js sends its user token when the client
    /// was made with one). The reason of a refusal otherwise.
    pub fn check_subscription(&self, ext: Option<&Value>, feed: &str) -> Result<(), String> {
        let field = |name: &str| ext.and_then(|e| e.get(name)).and_then(Value::as_str);
        let (Some(_), Some(key), Some(token)) =
            (field("user_id"), field("api_key"), field("signature"))
        else {
            return Err("Missing ext: user_id, api_key and signature are required".into());
        };
        if key != self.api_key {
            return Err("api_key is not valid".into());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut refusal = jwt::VerifyError::BadSignature;
        let claims = self
            .secrets
            .iter()
            .find_map(|s| match jwt::verify(token, s, now) {
                Ok(c) => Some(c),
                Err(e) => {
                    if e != jwt::VerifyError::BadSignature {
                        refusal = e;
                    }
                    None
                }
            })
            .ok_or_else(|| format!("Invalid signature: {refusal}"))?;
        let needed = Scope {
            resource: Resource::Feed,
            action: Action::Read,
            feed: FeedClaim::One(feed.to_owned()),
        };
        let allowed = match claims.scope() {
            Some(granted) => granted.covers(&needed),
            None => claims.resource.is_none() && claims.user_id.is_some(),
        };
        if allowed {
            Ok(())
        } else {
            Err("Invalid signature: the token does not read this feed".into())
        }
    }

    fn check_service_jwt(&self, token: &str, service: Resource) -> Result<(), EmuError> {
        let claims = self.verified(token)?;
        let resource = claims.resource.as_deref().and_then(Resource::parse);
        let covers = matches!(resource, Some(r) if r == service || r == Resource::All)
            && claims.action.as_deref() == Some("*");
        if !covers {
            return Err(stream_error(
                403,
                17,
                "NotAllowedException",
                "You do not have permission to perform this action.",
            ));
        }
        let exact = resource == Some(service)
            && claims.user_id.as_deref() == Some("*")
            && match service {
                Resource::Analytics => claims.feed_id.is_none(),
                _ => claims.feed_id.as_deref() == Some("*"),
            };
        if self.strict_scopes && !exact {
            return Err(stream_error(
                403,
                17,
                "NotAllowedException",
                &format!(
                    "strict emulator: a {} token is {}/*, user_id *{}",
                    service.as_str(),
                    service.as_str(),
                    if service == Resource::Analytics {
                        ""
                    } else {
                        ", feed_id *"
                    }
                ),
            ));
        }
        Ok(())
    }

    /// The claims of a token signed with a secret taken, unexpired.
    fn verified(&self, token: &str) -> Result<jwt::Claims, EmuError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Any secret taken will do; otherwise the first refusal that is not a bad signature
        // (expired, malformed) is the one to say.
        let mut refusal = jwt::VerifyError::BadSignature;
        let mut verified = None;
        for secret in &self.secrets {
            match jwt::verify(token, secret, now) {
                Ok(c) => {
                    verified = Some(c);
                    break;
                }
                Err(jwt::VerifyError::BadSignature) => {}
                Err(e) => refusal = e,
            }
        }
        verified.ok_or_else(|| stream_error(403, 17, "NotAllowedException", &refusal.to_string()))
    }

    fn check_jwt(&self, token: &str, needed: &Scope) -> Result<(), EmuError> {
        let claims = self.verified(token)?;
        let denied = || {
            stream_error(
                403,
                17,
                "NotAllowedException",
                "You do not have permission to perform this action.",
            )
        };
        let granted = claims.scope().ok_or_else(denied)?;
        if !granted.covers(needed) {
            return Err(denied());
        }
        if self.strict_scopes && granted.is_wider_than(needed) {
            return Err(stream_error(
                403,
                17,
                "NotAllowedException",
                &format!("strict emulator: token scope {granted} is wider than this call needs ({needed})"),
            ));
        }
        Ok(())
    }

    fn check_signature(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        value: &str,
    ) -> Result<(), EmuError> {
        let bad = |why: &str| stream_error(401, 3, "SignatureException", why);
        let p = httpsig::parse(value).ok_or_else(|| bad("malformed Signature header"))?;
        if p.key_id != self.api_key {
            return Err(bad("keyId is not this app's api key"));
        }
        if p.algorithm != "hmac-sha256" {
            return Err(bad("algorithm must be hmac-sha256"));
        }
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(self.api_key.as_str()) {
            return Err(bad("X-Api-Key header is missing or wrong"));
        }
        if !p.headers.iter().any(|h| h == "date") {
            return Err(bad("the signature must cover the date header"));
        }
        let date = headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("Date header is missing"))?;
        let at =
            httpdate::parse_http_date(date).map_err(|_| bad("Date header is not an HTTP date"))?;
        let now = SystemTime::now();
        let skew = now
            .duration_since(at)
            .or_else(|_| at.duration_since(now))
            .unwrap_or_default();
        if skew > MAX_DATE_SKEW {
            return Err(bad(
                "Date header is more than 5 minutes from the server's clock",
            ));
        }
        let mut lines = Vec::with_capacity(p.headers.len());
        for h in &p.headers {
            if h == "(request-target)" {
                let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
                lines.push(format!(
                    "(request-target): {} {target}",
                    method.as_str().to_ascii_lowercase()
                ));
            } else {
                let v = headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| bad(&format!("signed header {h} is missing")))?;
                lines.push(format!("{h}: {v}"));
            }
        }
        let message = lines.join("\n");
        if !self
            .secrets
            .iter()
            .any(|s| httpsig::verify(s, &message, &p.signature))
        {
            return Err(bad("signature is invalid"));
        }
        Ok(())
    }
}
