//! What the gateway reads of Stream's answers: any status, `Retry-After` and
//! `X-Ratelimit-Reset`. Never a panic; a 429 wait is what the header says, bounded by the
//! deadline in the retry decision; a non-idempotent request that was sent is never resent.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use stream_gateway::upstream::retry::{decide, retry_wait, Attempted, Decision, Outcome};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 1000;
    let flags = data[2];
    let remaining = Duration::from_millis(u64::from(u16::from_le_bytes([data[3], data[4]])));
    let backoff = Duration::from_millis(u64::from(data[5]) * 10);
    let Ok(text) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let (retry_after, reset) = match text.split_once('\n') {
        Some((a, b)) => (Some(a), Some(b)),
        None => (Some(text), None),
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_795_800_000);
    let wait = retry_wait(retry_after, reset, now);
    // Seconds in `Retry-After` are taken as they are; nothing else invents a wait.
    if let Some(n) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        assert_eq!(wait, Some(Duration::from_secs(n)));
    }
    if retry_after.is_none_or(|v| v.trim().is_empty()) && reset.is_none() {
        assert_eq!(wait, None);
    }
    let outcome = match flags % 4 {
        0 => Outcome::NotSent,
        1 => Outcome::Timeout,
        2 => Outcome::Dropped,
        _ => Outcome::Status { status, wait },
    };
    let a = Attempted {
        retries: u32::from(data[6] % 5),
        max_retries: u32::from(data[7] % 5),
        idempotent: flags & 4 == 4,
        remaining,
        backoff,
    };
    match decide(outcome, a, || flags & 8 == 8) {
        Decision::Retry { after, .. } => {
            assert!(after < remaining, "a retry waits less than the time left");
            assert!(a.retries < a.max_retries);
            let sent = !matches!(outcome, Outcome::NotSent);
            let rate_limited = matches!(outcome, Outcome::Status { status: 429, .. });
            assert!(a.idempotent || !sent || rate_limited, "{outcome:?}");
        }
        Decision::Stop(_) => {}
    }
});
