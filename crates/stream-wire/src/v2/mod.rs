//! Stream's `/api/v2/` family (Feeds v3, Chat, Video, Moderation and the operations they share)
//! as data: the route table generated from Stream's specs ([`V2_ROUTES`], in `routes.rs`),
//! the router over its path templates, and the names `[callers]` policies use.
//!
//! Unlike v1.0, v2 has no scoped tokens: every server-side call carries a server token, so the
//! table holds no scope; what narrows a caller is its `[callers]` allow list, by operation name
//! (`chat.SendMessage`), product family (`chat.*`) or a product's reads (`chat.read`).
//!
//! [`route`] matches a raw (still percent-encoded) path: each segment is decoded once, literals
//! win over parameters (as Stream's router does), and a parameter is one non-empty segment
//! with no `/`, `\`, control character, `.` or `..` once decoded. The path forwarded is
//! rebuilt from the decoded segments, re-encoded one way.

use std::collections::HashMap;
use std::sync::LazyLock;

mod routes;

use super::InvalidInput;
pub use routes::{SPEC_FILES, SPEC_VERSION, V2_ROUTES};

/// The prefix every v2 path has.
pub const V2_PREFIX: &str = "/api/v2/";

/// The methods v2 operations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V2Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl V2Method {
    /// Every method an operation uses.
    pub const ALL: [V2Method; 5] = [
        V2Method::Get,
        V2Method::Post,
        V2Method::Put,
        V2Method::Patch,
        V2Method::Delete,
    ];

    /// Parses an HTTP method name; `None` for one no operation uses.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GET" => V2Method::Get,
            "POST" => V2Method::Post,
            "PUT" => V2Method::Put,
            "PATCH" => V2Method::Patch,
            "DELETE" => V2Method::Delete,
            _ => return None,
        })
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            V2Method::Get => "GET",
            V2Method::Post => "POST",
            V2Method::Put => "PUT",
            V2Method::Patch => "PATCH",
            V2Method::Delete => "DELETE",
        }
    }

    /// Whether a resend after the request may have reached Stream cannot duplicate an effect:
    /// GET, PUT and DELETE, as on v1.0. POST and PATCH are resent only when nothing was sent.
    pub fn idempotent(self) -> bool {
        matches!(self, V2Method::Get | V2Method::Put | V2Method::Delete)
    }
}

/// Which product an operation belongs to: the first path segment after `/api/v2/` when it
/// is `chat`, `feeds`, `video` or `moderation`, else `common` (users, devices, polls, ...).
/// The spec's `product:` tags say the same; the generator checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    /// Operations every product shares (`/api/v2/users`, ...).
    Common,
    /// `/api/v2/chat/...`
    Chat,
    /// `/api/v2/feeds/...` (Feeds v3)
    Feeds,
    /// `/api/v2/video/...`
    Video,
    /// `/api/v2/moderation/...`
    Moderation,
}

impl Product {
    /// Every product, in the order docs list them.
    pub const ALL: [Product; 5] = [
        Product::Common,
        Product::Chat,
        Product::Feeds,
        Product::Video,
        Product::Moderation,
    ];

    /// The name operations are prefixed with.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Common => "common",
            Product::Chat => "chat",
            Product::Feeds => "feeds",
            Product::Video => "video",
            Product::Moderation => "moderation",
        }
    }
}

/// One operation of Stream's server-side spec.
#[derive(Debug)]
pub struct V2Route {
    pub method: V2Method,
    /// The spec's path template: `/api/v2/...`, `{name}` parameters as whole segments.
    pub path: &'static str,
    pub product: Product,
    /// The spec's `operationId`.
    pub operation: &'static str,
    /// `<product>.<operationId>`: the name allow lists, metrics and logs use.
    pub name: &'static str,
}

/// A request matched to an operation.
#[derive(Debug, Clone)]
pub struct V2Match {
    /// The operation.
    pub route: &'static V2Route,
    /// Its index in [`V2_ROUTES`].
    pub index: usize,
    /// The path to forward: the decoded segments, re-encoded one way.
    pub path: String,
}

/// Why a path did not match an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2RouteError {
    /// No operation has this path.
    NotFound,
    /// Operations have this path, with other methods.
    MethodNotAllowed(Vec<V2Method>),
    /// The path is an operation's, with a bad parameter.
    Invalid(InvalidInput),
}

/// Characters re-encoded in a forwarded parameter.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':')
    .remove(b'!');

/// Decodes one segment; the tricks that change a path's meaning downstream are refused: an
/// encoded `/` or `\`, a control character, invalid UTF-8, `.` and `..`, and an empty segment
/// (it would collapse into another path).
fn decode(raw: &str) -> Result<String, &'static str> {
    let s = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "is not valid UTF-8 once percent-decoded")?;
    if s.is_empty() {
        return Err("is empty");
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '/' | '\\')) {
        return Err("contains `/`, `\\` or a control character");
    }
    if s == "." || s == ".." {
        return Err("is a dot segment");
    }
    Ok(s.into_owned())
}

/// The templates as a tree of segments: a literal edge per word, one parameter edge.
#[derive(Debug, Default)]
struct Node {
    literal: HashMap<&'static str, Node>,
    param: Option<Box<Node>>,
    /// Operations whose template ends here (one per method).
    rows: Vec<usize>,
}

static TREE: LazyLock<Node> = LazyLock::new(|| {
    let mut root = Node::default();
    for (i, r) in V2_ROUTES.iter().enumerate() {
        let mut node = &mut root;
        for seg in r.path.split('/').skip(1) {
            node = if seg.starts_with('{') {
                &mut **node.param.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(seg).or_default()
            };
        }
        node.rows.push(i);
    }
    root
});

/// Finds the operation for `method` under `node`, literals first, then the parameter edge;
/// records the methods of templates that matched the path but not the method.
fn find(
    node: &Node,
    segs: &[Result<String, &'static str>],
    method: V2Method,
    others: &mut Vec<V2Method>,
) -> Option<usize> {
    let Some((seg, rest)) = segs.split_first() else {
        for &i in &node.rows {
            if V2_ROUTES[i].method == method {
                return Some(i);
            }
            others.push(V2_ROUTES[i].method);
        }
        return None;
    };
    if let Some(child) = seg.as_ref().ok().and_then(|s| node.literal.get(s.as_str())) {
        if let Some(i) = find(child, rest, method, others) {
            return Some(i);
        }
    }
    node.param
        .as_ref()
        .and_then(|child| find(child, rest, method, others))
}

/// Matches a request to an operation. `method` is the request's (an unknown one matches no
/// operation); `path` is still percent-encoded.
pub fn route(method: &str, path: &str) -> Result<V2Match, V2RouteError> {
    let Some(rest) = path.strip_prefix(V2_PREFIX) else {
        return Err(V2RouteError::NotFound);
    };
    // At most the deepest template's segments: a longer path matches nothing.
    const MAX_SEGMENTS: usize = 16;
    let raw: Vec<&str> = std::iter::once("api")
        .chain(std::iter::once("v2"))
        .chain(rest.split('/'))
        .collect();
    if raw.len() > MAX_SEGMENTS {
        return Err(V2RouteError::NotFound);
    }
    let segs: Vec<_> = raw.iter().map(|s| decode(s)).collect();
    let mut others = Vec::new();
    let found = match V2Method::parse(method) {
        Some(m) => find(&TREE, &segs, m, &mut others),
        None => {
            // No operation takes this method: 405 when the path is known, else 404.
            for m in V2Method::ALL {
                if find(&TREE, &segs, m, &mut Vec::new()).is_some() {
                    others.push(m);
                }
            }
            None
        }
    };
    let Some(index) = found else {
        if others.is_empty() {
            return Err(V2RouteError::NotFound);
        }
        let mut allow: Vec<V2Method> = Vec::new();
        for m in others {
            if !allow.contains(&m) {
                allow.push(m);
            }
        }
        return Err(V2RouteError::MethodNotAllowed(allow));
    };
    let route = &V2_ROUTES[index];
    let mut out = String::with_capacity(path.len());
    for (template, seg) in route.path.split('/').skip(1).zip(&segs) {
        out.push('/');
        match (template.strip_prefix('{'), seg) {
            (None, _) => out.push_str(template),
            (Some(_), Ok(s)) => out.extend(percent_encoding::utf8_percent_encode(s, SEGMENT)),
            (Some(name), Err(reason)) => {
                let field = name.trim_end_matches('}');
                return Err(V2RouteError::Invalid(InvalidInput::new(field, reason)));
            }
        }
    }
    Ok(V2Match {
        route,
        index,
        path: out,
    })
}

/// The query to forward: the caller's pairs with its credentials dropped (the gateway adds the
/// app's `api_key`); a query that is not UTF-8 once decoded is refused.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, InvalidInput> {
    super::query::pairs(raw)
}

/// The operations a `[callers]` allow pattern names: an operation's name, a product family
/// (`chat.*`), a product's reads (`chat.read`: its GET operations) or `*`.
pub fn allows(pattern: &str, r: &V2Route) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(product) = pattern.strip_suffix(".*") {
        return product == r.product.as_str();
    }
    if let Some(product) = pattern.strip_suffix(".read") {
        if product == r.product.as_str() {
            return r.method == V2Method::Get;
        }
    }
    pattern == r.name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(m: &str, p: &str) -> V2Match {
        route(m, p).unwrap_or_else(|e| panic!("{m} {p}: {e:?}"))
    }

    fn name(m: &str, p: &str) -> &'static str {
        ok(m, p).route.name
    }

    #[test]
    fn every_row_parses_and_routes_to_itself() {
        let mut names = std::collections::HashSet::new();
        let mut shapes = std::collections::HashSet::new();
        for (i, r) in V2_ROUTES.iter().enumerate() {
            assert!(r.path.starts_with(V2_PREFIX), "{}", r.path);
            assert_eq!(
                r.name,
                format!("{}.{}", r.product.as_str(), r.operation),
                "{}",
                r.path
            );
            assert!(names.insert(r.name), "{} twice", r.name);
            assert!(shapes.insert((r.method, r.path)), "{} twice", r.path);
            // The template with each parameter filled in routes back to this row.
            let concrete: Vec<String> = r
                .path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "x1".to_owned()
                    } else {
                        s.to_owned()
                    }
                })
                .collect();
            let concrete = concrete.join("/");
            let m = ok(r.method.as_str(), &concrete);
            assert_eq!(
                m.index, i,
                "{} {concrete} routed to {}",
                r.name, m.route.name
            );
            assert_eq!(m.path, concrete);
            let product = match r.path.split('/').nth(3) {
                Some("chat") => Product::Chat,
                Some("feeds") => Product::Feeds,
                Some("video") => Product::Video,
                Some("moderation") => Product::Moderation,
                _ => Product::Common,
            };
            assert_eq!(r.product, product, "{}", r.path);
            assert_ne!(r.operation, "read", "`read` is the read-only family's");
        }
        assert!(!SPEC_VERSION.is_empty());
        assert_eq!(SPEC_FILES.len(), 4);
    }

    #[test]
    fn each_product_has_its_core_operations() {
        for (method, path, expected) in [
            ("POST", "/api/v2/users", "common.UpdateUsers"),
            ("GET", "/api/v2/users", "common.QueryUsers"),
            (
                "POST",
                "/api/v2/chat/channels/messaging/general/query",
                "chat.GetOrCreateChannel",
            ),
            (
                "POST",
                "/api/v2/chat/channels/messaging/general/message",
                "chat.SendMessage",
            ),
            ("POST", "/api/v2/chat/channels", "chat.QueryChannels"),
            ("POST", "/api/v2/feeds/activities", "feeds.AddActivity"),
            (
                "POST",
                "/api/v2/feeds/feed_groups/user/feeds/u1",
                "feeds.GetOrCreateFeed",
            ),
            ("POST", "/api/v2/feeds/follows", "feeds.Follow"),
            (
                "POST",
                "/api/v2/video/call/default/c1",
                "video.GetOrCreateCall",
            ),
            ("GET", "/api/v2/video/call/default/c1", "video.GetCall"),
        ] {
            assert_eq!(name(method, path), expected, "{method} {path}");
        }
        for p in Product::ALL {
            assert!(
                V2_ROUTES.iter().filter(|r| r.product == p).count() >= 10,
                "{p:?}"
            );
        }
    }

    #[test]
    fn literals_win_over_parameters_and_the_method_decides_between_them() {
        // `query` is QueryActivities's literal for POST, and an activity id for GET.
        assert_eq!(
            name("POST", "/api/v2/feeds/activities/query"),
            "feeds.QueryActivities"
        );
        assert_eq!(
            name("GET", "/api/v2/feeds/activities/query"),
            "feeds.GetActivity"
        );
        // An encoded literal is the literal: the name is what Stream's router will see.
        assert_eq!(
            name("POST", "/api/v2/feeds/activities/%71uery"),
            "feeds.QueryActivities"
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        for p in [
            "/api/v2/",
            "/api/v2/nope",
            "/api/v2/users/",
            "/api/v2/users//block",
            "/api/v2/chat/channels/a/b/c/d/e/f/g",
            "/api/v2.0/users",
            "/api/v1.0/users/",
            &format!("/api/v2/{}", "a/".repeat(40)),
        ] {
            assert_eq!(route("GET", p).unwrap_err(), V2RouteError::NotFound, "{p}");
        }
        assert_eq!(
            route("HEAD", "/api/v2/nope").unwrap_err(),
            V2RouteError::NotFound
        );
        assert_eq!(
            route("PUT", "/api/v2/feeds/follows").unwrap_err(),
            V2RouteError::MethodNotAllowed(vec![V2Method::Post, V2Method::Patch])
        );
        assert!(matches!(
            route("OPTIONS", "/api/v2/users"),
            Err(V2RouteError::MethodNotAllowed(_))
        ));
    }

    #[test]
    fn parameters_are_single_safe_segments_and_the_error_names_them() {
        for (p, field) in [
            ("/api/v2/video/call/default/a%2Fb", "id"),
            ("/api/v2/video/call/default/..", "id"),
            ("/api/v2/video/call/default/%2e%2e", "id"),
            ("/api/v2/video/call/default/.", "id"),
            ("/api/v2/video/call/%2E%2E/c1", "type"),
            ("/api/v2/video/call/default/a%5Cb", "id"),
            ("/api/v2/video/call/default/a%00b", "id"),
            ("/api/v2/video/call/default/a%0Ab", "id"),
            ("/api/v2/video/call/default/%FF", "id"),
            ("/api/v2/video/call/default/", "id"),
        ] {
            match route("GET", p) {
                Err(V2RouteError::Invalid(i)) => assert_eq!(i.field, field, "{p}"),
                other => panic!("{p}: {other:?}"),
            }
        }
        // Anything else is Stream's to judge, and is forwarded encoded one way.
        assert_eq!(
            ok("GET", "/api/v2/video/call/default/a%20b%C3%A9").path,
            "/api/v2/video/call/default/a%20b%C3%A9"
        );
        assert_eq!(
            ok("GET", "/api/v2/video/call/default/a%3Ab!").path,
            "/api/v2/video/call/default/a:b!"
        );
    }

    #[test]
    fn only_get_put_and_delete_are_resent_after_they_may_have_arrived() {
        assert!(V2Method::Get.idempotent());
        assert!(V2Method::Put.idempotent());
        assert!(V2Method::Delete.idempotent());
        assert!(!V2Method::Post.idempotent());
        assert!(!V2Method::Patch.idempotent());
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(V2Method::parse(m).unwrap().as_str(), m);
        }
    }

    #[test]
    fn allow_patterns_name_operations_families_and_reads() {
        let send = ok("POST", "/api/v2/chat/channels/messaging/general/message").route;
        let get_call = ok("GET", "/api/v2/video/call/default/c1").route;
        assert!(allows("chat.SendMessage", send));
        assert!(allows("chat.*", send));
        assert!(allows("*", send));
        assert!(!allows("chat.read", send));
        assert!(!allows("feeds.*", send));
        assert!(!allows("chat.SendMessag", send));
        assert!(allows("video.read", get_call));
        assert!(!allows("chat.read", get_call));
    }

    #[test]
    fn credentials_in_the_query_are_dropped_and_the_rest_kept() {
        let q = query_pairs(Some(
            "api_key=theirs&limit=5&API-KEY=x&stream-auth-type=jwt",
        ))
        .unwrap();
        assert_eq!(q, vec![("limit".to_owned(), "5".to_owned())]);
        assert_eq!(query_pairs(None).unwrap(), vec![]);
        assert_eq!(query_pairs(Some("a=%FF")).unwrap_err().field, "query");
    }
}
