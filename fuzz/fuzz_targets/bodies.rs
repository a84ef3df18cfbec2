//! Any body for any endpoint: the check never panics; it never accepts a body with a key
//! given twice in one object (found here by a detector of its own, not the gateway's); a body
//! it rewrites is valid JSON that passes the same check unchanged, with no client-appended
//! token left in a feed list.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use stream_wire::endpoint::BodyKind;
use stream_wire::{body, ENDPOINTS};

/// Whether some object in a JSON document repeats a key.
struct Repeats(bool);

impl<'de> Deserialize<'de> for Repeats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RepeatsVisitor)
    }
}

struct RepeatsVisitor;

impl<'de> Visitor<'de> for RepeatsVisitor {
    type Value = Repeats;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_str<E>(self, _: &str) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_unit<E>(self) -> Result<Repeats, E> {
        Ok(Repeats(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Repeats, A::Error> {
        let mut any = false;
        while let Some(Repeats(r)) = seq.next_element()? {
            any |= r;
        }
        Ok(Repeats(any))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Repeats, A::Error> {
        let mut seen = HashSet::new();
        let mut any = false;
        while let Some(k) = map.next_key::<String>()? {
            let Repeats(r) = map.next_value()?;
            any |= r || !seen.insert(k);
        }
        Ok(Repeats(any))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&i, raw)) = data.split_first() else {
        return;
    };
    let ep = &ENDPOINTS[usize::from(i) % ENDPOINTS.len()];
    let Ok(checked) = body::check(ep.body, raw) else {
        return;
    };
    // A body an endpoint does not take is never forwarded, so it is not read at all.
    if ep.body != BodyKind::None {
        if let Ok(Repeats(r)) = serde_json::from_slice::<Repeats>(raw) {
            assert!(!r, "a body with a repeated key was accepted");
        }
    }
    if let Some(new) = checked.rewritten {
        let _: serde_json::Value = serde_json::from_slice(&new).expect("a rewrite is JSON");
        let again = body::check(ep.body, &new).expect("a rewrite passes its own check");
        assert_eq!(again.rewritten, None, "a rewrite is already clean");
        assert_eq!(again.keyed, checked.keyed);
    }
});
