//! Parsing request bodies as JSON, refusing a key that appears twice in one object.
//!
//! serde keeps the last of two equal keys, while the body may be forwarded byte for byte and
//! Stream may read the first: `{"to":["a:1 <token>"],"to":["a:1"]}` would pass the checks on
//! one value and reach Stream with the other. So a duplicate key at any depth is refused.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::InvalidInput;

/// Parses `body` as JSON; a key repeated inside one object is an error naming the key.
pub fn parse_strict(body: &[u8]) -> Result<Value, InvalidInput> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (parsed, duplicate.into_inner()) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(key)) => Err(InvalidInput::new(
            key,
            "appears more than once in one object: send each key once",
        )),
        (Err(e), None) => Err(InvalidInput::new(
            "body",
            &format!("is not valid JSON: {e}"),
        )),
    }
}

/// A JSON value that records the first duplicate key it meets.
struct Strict<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Strict {
            duplicate: self.duplicate,
        })? {
            list.push(v);
        }
        Ok(Value::Array(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Strict {
                duplicate: self.duplicate,
            })?;
            if out.contains_key(&key) {
                let msg = format!("duplicate key {key:?}");
                *self.duplicate.borrow_mut() = Some(key);
                return Err(A::Error::custom(msg));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_at_any_depth_is_refused_naming_the_key() {
        for (body, key) in [
            (r#"{"to":["a:1 t"],"to":["a:1"]}"#, "to"),
            (r#"{"target":"*:*","target":"user:42"}"#, "target"),
            (r#"[{"source":"a:1","source":"b:2"}]"#, "source"),
            (r#"{"activity":{"x":{"y":1,"y":2}}}"#, "y"),
        ] {
            let e = parse_strict(body.as_bytes()).unwrap_err();
            assert_eq!(e.field, key, "{body}");
            assert!(e.reason.contains("more than once"), "{e}");
        }
    }

    #[test]
    fn equal_keys_in_different_objects_and_plain_json_parse_as_serde_does() {
        for body in [
            r#"{"a":{"k":1},"b":{"k":2}}"#,
            r#"[{"k":1},{"k":2}]"#,
            r#"{"n":1.5,"m":-3,"u":18446744073709551615,"s":"x","z":null,"t":true}"#,
            "[]",
            "\"x\"",
        ] {
            let want: Value = serde_json::from_str(body).unwrap();
            assert_eq!(parse_strict(body.as_bytes()).unwrap(), want, "{body}");
        }
    }

    #[test]
    fn malformed_json_and_trailing_bytes_name_the_body() {
        for body in ["{", r#"{"a":1} x"#, "", "{\"a\":}"] {
            assert_eq!(parse_strict(body.as_bytes()).unwrap_err().field, "body");
        }
    }
}
