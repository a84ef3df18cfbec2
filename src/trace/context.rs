//! W3C Trace Context: the caller's `traceparent` and `tracestate`, checked at the edge, and the
//! `traceparent` the gateway sends on. Pure: no I/O, no clock.
//!
//! A `traceparent` is continued only when it is one well-formed value; anything else starts a
//! new trace, and the malformed value goes nowhere. `tracestate` rides along only with a valid
//! `traceparent`, and only when it is a valid list itself.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The `sampled` bit of `trace-flags`: the caller may record this trace.
pub const SAMPLED: u8 = 0x01;
/// Most list members a `tracestate` may have.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Longest `tracestate` (all its header lines joined) the gateway passes on.
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// A trace's id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A fresh random id (from the thread-local generator: ids must be unique, not secret).
    pub fn random() -> Self {
        Self(fastrand::u128(1..).to_be_bytes())
    }
}

impl SpanId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(fastrand::u64(1..).to_be_bytes())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

fn fmt_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut buf = [0u8; 32];
    let out = &mut buf[..2 * bytes.len()];
    hex_into(bytes, out);
    f.write_str(std::str::from_utf8(out).expect("hex is ASCII"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_hex(&self.0, f)
    }
}

/// What a valid `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The caller's span: the parent of the gateway's.
    pub parent_id: SpanId,
    pub flags: u8,
}

fn lower_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex into `out` (half as long); `None` on any other character.
fn parse_hex(s: &[u8], out: &mut [u8]) -> Option<()> {
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = lower_hex(pair[0])? << 4 | lower_hex(pair[1])?;
    }
    Some(())
}

/// Parses a `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all
/// zeros. Version `ff` is invalid; a higher version than `00` is read by its first 55
/// characters when they are followed by the end or by `-`, as the W3C text asks of a reader
/// that knows only version `00`.
pub fn parse_traceparent(v: &[u8]) -> Option<TraceParent> {
    if v.len() < 55 {
        return None;
    }
    let mut version = [0u8; 1];
    parse_hex(&v[0..2], &mut version)?;
    match version[0] {
        0xff => return None,
        0 if v.len() != 55 => return None,
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (mut trace, mut span, mut flags) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    parse_hex(&v[3..35], &mut trace)?;
    parse_hex(&v[36..52], &mut span)?;
    parse_hex(&v[53..55], &mut flags)?;
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id: TraceId(trace),
        parent_id: SpanId(span),
        flags: flags[0],
    })
}

/// The number of members of a `tracestate` list (its header lines joined with `,`), or `None`
/// when it is not one the gateway passes on: over [`MAX_TRACESTATE_BYTES`] or
/// [`MAX_TRACESTATE_MEMBERS`], a member that is not `key=value`, or a key given twice.
/// Empty members (`a=1,,b=2`) are allowed and not counted.
pub fn check_tracestate(v: &[u8]) -> Option<usize> {
    if v.len() > MAX_TRACESTATE_BYTES {
        return None;
    }
    let mut keys: [&[u8]; MAX_TRACESTATE_MEMBERS] = [&[]; MAX_TRACESTATE_MEMBERS];
    let mut n = 0;
    for member in v.split(|&b| b == b',') {
        let member = member.trim_ascii();
        if member.is_empty() {
            continue;
        }
        let eq = member.iter().position(|&b| b == b'=')?;
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        if n == MAX_TRACESTATE_MEMBERS
            || !tracestate_key(key)
            || !tracestate_value(value)
            || keys[..n].contains(&key)
        {
            return None;
        }
        keys[n] = key;
        n += 1;
    }
    Some(n)
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b)
}

/// `lcalpha 0*255(key char)`, or `tenant@system`: `(lcalpha / DIGIT) 0*240(key char)` and
/// `lcalpha 0*13(key char)`.
fn tracestate_key(k: &[u8]) -> bool {
    let part = |s: &[u8], first: fn(u8) -> bool, max: usize| {
        (1..=max).contains(&s.len()) && first(s[0]) && s[1..].iter().all(|&b| key_char(b))
    };
    match k.iter().position(|&b| b == b'@') {
        None => part(k, |b| b.is_ascii_lowercase(), 256),
        Some(at) => {
            part(
                &k[..at],
                |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
                241,
            ) && part(&k[at + 1..], |b| b.is_ascii_lowercase(), 14)
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, spaces inside only.
fn tracestate_value(v: &[u8]) -> bool {
    (1..=256).contains(&v.len())
        && v.last() != Some(&b' ')
        && v.iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// One request's place in a trace: the trace it belongs to, the gateway's span for it, and
/// what the next hop is told.
#[derive(Debug, Clone)]
pub struct Context {
    pub trace_id: TraceId,
    /// The gateway's span for the whole request.
    pub span_id: SpanId,
    /// The caller's span, when the caller's trace is continued.
    pub parent: Option<SpanId>,
    /// Whether the trace is sampled (the caller's flag, or the gateway's choice for a new one).
    pub sampled: bool,
    /// The caller's `tracestate`, passed on unchanged when it and the `traceparent` are valid.
    pub tracestate: Option<HeaderValue>,
}

impl Context {
    /// The context for a request with these headers: the caller's trace when its
    /// `traceparent` is one valid value, else a new trace, sampled when `sample_new`.
    pub fn from_headers(headers: &HeaderMap, sample_new: bool) -> Self {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let caller = match (values.next(), values.next()) {
            (Some(v), None) => parse_traceparent(v.as_bytes()),
            _ => None,
        };
        match caller {
            Some(tp) => Self {
                trace_id: tp.trace_id,
                span_id: SpanId::random(),
                parent: Some(tp.parent_id),
                sampled: tp.flags & SAMPLED != 0,
                tracestate: tracestate(headers),
            },
            None => Self::new(sample_new),
        }
    }

    /// A new trace, its root span the gateway's.
    pub fn new(sampled: bool) -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent: None,
            sampled,
            tracestate: None,
        }
    }

    /// The `traceparent` (version `00`) that makes `span` the parent of what the next hop
    /// does. Of the caller's flags only `sampled` is kept: the others mean nothing to a
    /// version-00 reader.
    pub fn traceparent(&self, span: SpanId) -> HeaderValue {
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&self.trace_id.0, &mut buf[3..35]);
        hex_into(&span.0, &mut buf[36..52]);
        if self.sampled {
            buf[54] = b'1';
        }
        HeaderValue::from_bytes(&buf).expect("hex and dashes make a header value")
    }
}

/// The caller's `tracestate` lines as one value, when they make a valid, non-empty list.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(&TRACESTATE).iter();
    let first = values.next()?;
    let joined = match values.next() {
        None => first.clone(),
        Some(second) => {
            let mut all = [first, second]
                .into_iter()
                .chain(values)
                .map(HeaderValue::as_bytes)
                .collect::<Vec<_>>()
                .join(&b","[..]);
            all.truncate(MAX_TRACESTATE_BYTES + 1);
            HeaderValue::from_bytes(&all).ok()?
        }
    };
    (check_tracestate(joined.as_bytes())? > 0).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    #[allow(clippy::too_many_lines)] // a table: one row per case
    fn a_version_00_traceparent_is_parsed_and_anything_malformed_is_refused() {
        let tp = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        let cases: &[(&str, bool)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                true,
            ),
            // Uppercase hex anywhere.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                false,
            ),
            // All-zero ids.
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            // Lengths and separators.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                false,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                false,
            ),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                false,
            ),
            ("", false),
            // Versions: ff is invalid; a higher one is read by its first 55 characters.
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                true,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future",
                true,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",
                false,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                false,
            ),
        ];
        for (v, ok) in cases {
            assert_eq!(parse_traceparent(v.as_bytes()).is_some(), *ok, "{v}");
        }
    }

    #[test]
    fn a_tracestate_is_at_most_32_members_and_512_bytes_of_well_formed_keys_and_values() {
        let cases: &[(&str, Option<usize>)] = &[
            ("congo=t61rcWkgMzE", Some(1)),
            ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", Some(2)),
            (" rojo=1 ,\t congo=2\t", Some(2)),
            ("a=1,,b=2, ,", Some(2)),
            ("", Some(0)),
            ("tenant1@vendor=x,0t@v_-*/9=y", Some(2)),
            ("a=value with spaces", Some(1)),
            // Malformed members.
            ("a", None),
            ("=1", None),
            ("a=", None),
            ("A=1", None),
            ("1a=1", None),
            ("a b=1", None),
            ("a=1=2", None),
            ("a=\u{e9}", None),
            ("a=tab\there", None),
            ("@v=1", None),
            ("t@=1", None),
            ("t@1v=1", None),
            ("t@abcdefghijklmno=1", None),
            // The same key twice.
            ("a=1,b=2,a=3", None),
        ];
        for (v, want) in cases {
            assert_eq!(check_tracestate(v.as_bytes()), *want, "{v:?}");
        }
        let members = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        assert_eq!(check_tracestate(members(32).join(",").as_bytes()), Some(32));
        assert_eq!(check_tracestate(members(33).join(",").as_bytes()), None);
        let long = format!("a={}", "x".repeat(256));
        assert_eq!(check_tracestate(long.as_bytes()), Some(1));
        let longer = format!("a={},b={}", "x".repeat(256), "y".repeat(256));
        assert_eq!(check_tracestate(longer.as_bytes()), None, "over 512 bytes");
        let key = format!("{}=1", "k".repeat(257));
        assert_eq!(check_tracestate(key.as_bytes()), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_its_tracestate_and_a_new_span() {
        let h = headers(&[("traceparent", VALID), ("tracestate", "rojo=1,congo=2")]);
        let c = Context::from_headers(&h, false);
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_ne!(c.span_id, c.parent.unwrap());
        assert_eq!(c.tracestate.unwrap(), "rojo=1,congo=2");
        let sent = c_traceparent(&Context::from_headers(&h, false));
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-01"));
        assert!(parse_traceparent(sent.as_bytes()).is_some(), "{sent}");
    }

    fn c_traceparent(c: &Context) -> String {
        let span = SpanId::random();
        let v = c.traceparent(span);
        let s = v.to_str().unwrap().to_owned();
        assert_eq!(&s[36..52], span.to_string());
        s
    }

    #[test]
    fn a_malformed_or_repeated_traceparent_starts_a_new_trace_without_tracestate() {
        for h in [
            headers(&[("traceparent", "00-xyz"), ("tracestate", "a=1")]),
            headers(&[("traceparent", VALID), ("traceparent", VALID)]),
            headers(&[("tracestate", "a=1")]),
            headers(&[]),
        ] {
            let c = Context::from_headers(&h, true);
            assert_ne!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(
                (c.parent, c.tracestate.is_none(), c.sampled),
                (None, true, true)
            );
            assert!(c_traceparent(&c).ends_with("-01"));
            let unsampled = Context::from_headers(&h, false);
            assert!(c_traceparent(&unsampled).ends_with("-00"));
        }
    }

    #[test]
    fn a_caller_that_does_not_sample_is_not_sampled_and_unknown_flags_are_not_passed_on() {
        let h = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe",
        )]);
        let c = Context::from_headers(&h, true);
        assert!(!c.sampled);
        assert!(c_traceparent(&c).ends_with("-00"));
    }

    #[test]
    fn tracestate_lines_are_joined_and_a_bad_one_drops_them_all() {
        let h = headers(&[
            ("traceparent", VALID),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]);
        assert_eq!(
            Context::from_headers(&h, false).tracestate.unwrap(),
            "a=1,b=2"
        );
        let h = headers(&[
            ("traceparent", VALID),
            ("tracestate", "a=1"),
            ("tracestate", "B=2"),
        ]);
        assert_eq!(Context::from_headers(&h, false).tracestate, None);
        let h = headers(&[("traceparent", VALID), ("tracestate", " , ")]);
        assert_eq!(
            Context::from_headers(&h, false).tracestate,
            None,
            "empty: not sent"
        );
        let long: &'static str = Box::leak(format!("a={}", "x".repeat(255)).into_boxed_str());
        let long2: &'static str = Box::leak(format!("b={}", "x".repeat(255)).into_boxed_str());
        let h = headers(&[
            ("traceparent", VALID),
            ("tracestate", long),
            ("tracestate", long2),
        ]);
        assert_eq!(
            Context::from_headers(&h, false).tracestate,
            None,
            "over 512 bytes"
        );
    }

    #[test]
    fn ids_are_random_never_zero_and_shown_as_lowercase_hex() {
        let (a, b) = (TraceId::random(), TraceId::random());
        assert_ne!(a, b);
        assert_ne!(a.0, [0; 16]);
        assert_eq!(format!("{a:?}").len(), 32);
        assert_eq!(format!("{:?}", SpanId([0xab; 8])), "abababababababab");
        assert_ne!(SpanId::random().0, [0; 8]);
    }
}
