//! Any body for any endpoint: the check never panics; a body it rewrites is valid JSON that
//! passes the same check unchanged, with no client-appended token left in a feed list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_gateway::stream::{body, ENDPOINTS};

fuzz_target!(|data: &[u8]| {
    let Some((&i, raw)) = data.split_first() else {
        return;
    };
    let ep = &ENDPOINTS[usize::from(i) % ENDPOINTS.len()];
    let Ok(checked) = body::check(ep.body, raw) else {
        return;
    };
    if let Some(new) = checked.rewritten {
        let _: serde_json::Value = serde_json::from_slice(&new).expect("a rewrite is JSON");
        let again = body::check(ep.body, &new).expect("a rewrite passes its own check");
        assert_eq!(again.rewritten, None, "a rewrite is already clean");
        assert_eq!(again.keyed, checked.keyed);
    }
});
