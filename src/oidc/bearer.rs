//! The `Authorization: Bearer <token>` header, parsed without trusting anything in it.

use http::header::{GetAll, HeaderValue};

/// Why the header gives no token; each names the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header.
    Missing,
    /// Two or more `Authorization` headers: proxies disagree on which one counts.
    Repeated,
    /// Not `Bearer`, no token, or characters a token cannot hold.
    Malformed,
}

impl BearerError {
    /// The refusal's detail.
    pub fn detail(self) -> &'static str {
        match self {
            BearerError::Missing => "the Authorization header is missing (Bearer <IdP token>)",
            BearerError::Repeated => "the Authorization header must be given once",
            BearerError::Malformed => {
                "the Authorization header is not `Bearer <token>` with a token of base64url \
                 characters"
            }
        }
    }
}

/// The token of the one `Authorization` header: scheme `Bearer` (any case), one or more
/// spaces, then RFC 6750's b64token characters (`A-Z a-z 0-9 - . _ ~ + /`, trailing `=`).
pub fn parse_header(values: GetAll<'_, HeaderValue>) -> Result<&str, BearerError> {
    let mut it = values.iter();
    let first = it.next().ok_or(BearerError::Missing)?;
    if it.next().is_some() {
        return Err(BearerError::Repeated);
    }
    parse(first.as_bytes())
}

/// [`parse_header`] on one value.
pub fn parse(value: &[u8]) -> Result<&str, BearerError> {
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let (scheme, rest) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed);
    }
    let token = rest.trim_start_matches(' ').trim_end_matches([' ', '\t']);
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_taken_in_any_case_of_the_scheme() {
        assert_eq!(parse(b"Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(parse(b"bearer   a.b.c "), Ok("a.b.c"));
        assert_eq!(parse(b"BEARER a-_b.c~+/=="), Ok("a-_b.c~+/=="));
    }

    #[test]
    fn other_schemes_empty_tokens_and_odd_bytes_are_malformed() {
        for bad in [
            &b"Basic dXNlcjpwdw=="[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer ==",
            b"Bearer a b",
            b"Bearer a,b",
            b"Bearer a=b",
            b"Bearer\ta.b.c",
            b"Bearer \xff",
            b"Token a.b.c",
            b"",
        ] {
            assert_eq!(parse(bad), Err(BearerError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_or_repeated_header_is_named_as_such() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            parse_header(h.get_all("authorization")),
            Err(BearerError::Missing)
        );
        h.append("authorization", HeaderValue::from_static("Bearer a.b.c"));
        assert_eq!(parse_header(h.get_all("authorization")), Ok("a.b.c"));
        h.append("authorization", HeaderValue::from_static("Bearer d.e.f"));
        assert_eq!(
            parse_header(h.get_all("authorization")),
            Err(BearerError::Repeated)
        );
    }
}
