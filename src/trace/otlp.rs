//! The OTLP messages the exporter sends, in protobuf's wire format, written by hand: an
//! `ExportTraceServiceRequest` holding one resource (the gateway), one instrumentation scope
//! and its spans. Field numbers are opentelemetry-proto's (`collector/trace/v1`, `trace/v1`,
//! `common/v1`, `resource/v1`); a test decodes what this writes independently.
//!
//! Eight messages and three wire types did not justify a protobuf code generator and its
//! build step, or the OpenTelemetry SDK (see `export`).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{SpanKind, SpanRecord};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// `Span.SpanKind`.
const SPAN_KIND_SERVER: u64 = 2;
const SPAN_KIND_CLIENT: u64 = 3;
/// `Status.StatusCode`.
const STATUS_CODE_ERROR: u64 = 2;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// An embedded message: written aside, then length-prefixed.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes(out, field, &inner);
}

/// A value an attribute holds (`AnyValue`'s `string_value` or `int_value`).
enum Value<'a> {
    Str(&'a str),
    Int(u64),
}

/// A `KeyValue` in field `field` of the message being written.
fn attribute(out: &mut Vec<u8>, field: u32, key: &str, value: Value<'_>) {
    message(out, field, |kv| {
        bytes(kv, 1, key.as_bytes());
        message(kv, 2, |any| match value {
            Value::Str(s) => bytes(any, 1, s.as_bytes()),
            Value::Int(i) => uint(any, 3, i),
        });
    });
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Span attributes (`Span.attributes` is field 9).
fn attr(out: &mut Vec<u8>, key: &str, value: Value<'_>) {
    attribute(out, 9, key, value);
}

fn span(out: &mut Vec<u8>, s: &SpanRecord) {
    bytes(out, 1, &s.trace_id.0);
    bytes(out, 2, &s.span_id.0);
    if let Some(ts) = &s.tracestate {
        bytes(out, 3, ts.as_bytes());
    }
    if let Some(p) = s.parent {
        bytes(out, 4, &p.0);
    }
    let error = match &s.kind {
        SpanKind::Request {
            method,
            path,
            endpoint,
            status,
            attempts,
            request_id,
        } => {
            bytes(out, 5, format!("{method} {endpoint}").as_bytes());
            uint(out, 6, SPAN_KIND_SERVER);
            attr(out, "http.request.method", Value::Str(method.as_str()));
            attr(out, "url.path", Value::Str(path));
            attr(
                out,
                "http.response.status_code",
                Value::Int((*status).into()),
            );
            attr(out, "gateway.endpoint", Value::Str(endpoint));
            attr(out, "gateway.attempts", Value::Int((*attempts).into()));
            attr(out, "gateway.request_id", Value::Str(request_id));
            *status >= 500
        }
        SpanKind::Attempt {
            method,
            endpoint,
            attempt,
            outcome,
            status,
        } => {
            bytes(out, 5, format!("upstream {method} {endpoint}").as_bytes());
            uint(out, 6, SPAN_KIND_CLIENT);
            attr(out, "http.request.method", Value::Str(method.as_str()));
            attr(out, "gateway.endpoint", Value::Str(endpoint));
            attr(out, "gateway.attempt", Value::Int((*attempt).into()));
            attr(out, "gateway.outcome", Value::Str(outcome));
            if let Some(st) = status {
                attr(out, "http.response.status_code", Value::Int((*st).into()));
            }
            // OpenTelemetry's HTTP conventions: a client span errs from 400, a server's from 500.
            status.is_none_or(|st| st >= 400)
        }
    };
    fixed64(out, 7, unix_nanos(s.start));
    fixed64(out, 8, unix_nanos(s.end));
    if error {
        message(out, 15, |st| uint(st, 3, STATUS_CODE_ERROR));
    }
}

/// The body of one export: `spans` as the gateway's, under `service.name` = `service_name`.
pub(crate) fn export_request(service_name: &str, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 256);
    message(&mut out, 1, |rs| {
        message(rs, 1, |resource| {
            attribute(resource, 1, "service.name", Value::Str(service_name));
            attribute(
                resource,
                1,
                "service.version",
                Value::Str(env!("CARGO_PKG_VERSION")),
            );
        });
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes(scope, 1, b"stream-gateway");
                bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                message(ss, 2, |out| span(out, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        for (v, want) in [
            (0u64, &[0u8][..]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn an_attribute_is_a_key_value_with_an_any_value() {
        let mut out = Vec::new();
        attribute(&mut out, 9, "k", Value::Str("v"));
        // field 9 LEN (0x4a), 8 bytes: key (0x0a 1 "k"), value (0x12 3 (0x0a 1 "v")).
        assert_eq!(out, b"\x4a\x08\x0a\x01k\x12\x03\x0a\x01v");
        let mut out = Vec::new();
        attribute(&mut out, 1, "n", Value::Int(300));
        assert_eq!(out, b"\x0a\x08\x0a\x01n\x12\x03\x18\xac\x02");
    }

    #[test]
    fn a_time_before_the_epoch_is_zero() {
        assert_eq!(
            unix_nanos(UNIX_EPOCH - std::time::Duration::from_secs(1)),
            0
        );
        assert_eq!(
            unix_nanos(UNIX_EPOCH + std::time::Duration::from_nanos(7)),
            7
        );
    }
}
