//! The access log: one line per request, formatted without tracing's formatter into a reused
//! buffer, and written to stderr by a thread of its own in few system calls.
//!
//! The line has the same fields, order and shape as the `tracing` event it replaces (text:
//! `fmt`'s default format; JSON: `fmt().json().flatten_event(true)`, target
//! `stream_gateway::telemetry`), and `RUST_LOG` still decides whether it is written: the
//! target's level is asked of the subscriber in force. What changes is the cost: the fields
//! are known at compile time, so a line is a few copies into a thread's scratch buffer, then
//! one copy into a shared bounded buffer. The writer thread empties that buffer into stderr
//! every [`FLUSH_EVERY`], or at once past [`FLUSH_AT`] bytes, and on shutdown ([`flush`]).
//! A request never waits for stderr: when the buffer holds [`CAPACITY`] bytes, lines are
//! dropped, counted (`gateway_log_lines_dropped_total`) and reported once.
//!
//! Until [`install`] runs (an embedding app, a test), or when stderr is a terminal (colours
//! for a person), the line goes through `tracing` as before.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::Level;

use crate::config::LogFormat;
use crate::trace::TraceId;

/// The target the line is logged under, as when `tracing` wrote it: `RUST_LOG` directives
/// naming it keep working.
pub const TARGET: &str = "stream_gateway::telemetry";

/// The most bytes waiting for stderr; past it, lines are dropped.
pub const CAPACITY: usize = 1 << 20;
/// Bytes waiting that wake the writer at once.
pub const FLUSH_AT: usize = 64 << 10;
/// The longest a line waits for the writer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// One request's line.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// The request id (validated or made by the gateway).
    pub request_id: &'a str,
    /// The request's trace.
    pub trace_id: TraceId,
    /// The request's method.
    pub method: &'a http::Method,
    /// The request's path as received; escaped here ([`log_safe`]).
    pub path: &'a str,
    /// The endpoint table's name, or a fixed route's.
    pub endpoint: &'static str,
    /// The caller, with `[callers]`.
    pub caller: Option<&'a str>,
    /// The answer's status.
    pub status: u16,
    /// Attempts sent upstream.
    pub attempts: u32,
    /// From the request's arrival to its answer.
    pub duration: Duration,
    /// A probe or a scrape: logged at `debug`, not `info`.
    pub probe: bool,
}

/// Writes `line` if `RUST_LOG` lets its level through: to the buffer [`install`]ed, or to
/// this thread's [`set_default`] writer, or through `tracing`.
pub fn write(line: &Line<'_>) {
    let enabled = if line.probe {
        tracing::enabled!(target: TARGET, Level::DEBUG)
    } else {
        tracing::enabled!(target: TARGET, Level::INFO)
    };
    if !enabled {
        return;
    }
    if SCOPED.load(Ordering::Relaxed) > 0 && write_scoped(line) {
        return;
    }
    match GLOBAL.get() {
        Some(log) => log.push(line),
        None => through_tracing(line),
    }
}

/// The line as a `tracing` event, for a terminal and for a process that installed no buffer.
fn through_tracing(line: &Line<'_>) {
    let path = log_safe(line.path);
    let duration_ms = line.duration.as_secs_f64() * 1000.0;
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: "stream_gateway::telemetry",
                request_id = %line.request_id,
                trace_id = %line.trace_id,
                method = %line.method,
                path = %path,
                endpoint = line.endpoint,
                caller = line.caller,
                status = line.status,
                attempts = line.attempts,
                duration_ms,
                "request"
            )
        };
    }
    if line.probe {
        event!(debug);
    } else {
        event!(info);
    }
}

/// Writes the access log to stderr in `format` through the bounded buffer, from now on, unless
/// stderr is a terminal. A second call changes nothing.
pub fn install(format: LogFormat) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        return;
    }
    GLOBAL.get_or_init(|| {
        Buffered::start(
            format,
            Box::new(std::io::stderr()),
            Limits::DEFAULT,
            &crate::recorder::LOG_LINES_DROPPED,
        )
    });
}

/// Writes every line waiting to stderr now, and waits for it: the shutdown path calls it last.
/// A stderr that takes nothing (a stuck pipe) holds shutdown for at most a second here.
pub fn flush() {
    if let Some(log) = GLOBAL.get() {
        if let Some(mut out) = log.out.try_lock_for(Duration::from_secs(1)) {
            log.flush_locked(&mut out);
        }
    }
}

static GLOBAL: OnceLock<Arc<Buffered>> = OnceLock::new();

/// The most bytes written to stderr at once (whole lines, unless one line is longer).
const WRITE_PIECE: usize = 64 * 1024;

/// `buf` in pieces of at most `max` bytes that end at a line's end (a longer line is a piece
/// of its own).
fn whole_lines(buf: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= max {
            rest.len()
        } else {
            match rest[..max].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1),
            }
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// How big the buffer is and when it is written.
#[derive(Debug, Clone, Copy)]
struct Limits {
    capacity: usize,
    flush_at: usize,
    every: Duration,
}

impl Limits {
    const DEFAULT: Self = Self {
        capacity: CAPACITY,
        flush_at: FLUSH_AT,
        every: FLUSH_EVERY,
    };
}

/// The shared buffer and its writer thread.
struct Buffered {
    format: LogFormat,
    limits: Limits,
    pending: Mutex<Pending>,
    /// Held while writing, so a shutdown flush waits for the writer's batch to go out first.
    out: Mutex<Out>,
    writer: OnceLock<std::thread::Thread>,
    /// Lines dropped: the process's count (`gateway_log_lines_dropped_total`) for stderr's.
    dropped: &'static AtomicU64,
    reported: AtomicBool,
}

struct Pending {
    buf: Vec<u8>,
    /// The writer thread is parked until a line arrives.
    idle: bool,
}

struct Out {
    sink: Box<dyn Write + Send>,
    /// The previous batch's buffer, reused for the next one.
    spare: Vec<u8>,
}

impl Buffered {
    fn new(
        format: LogFormat,
        sink: Box<dyn Write + Send>,
        limits: Limits,
        dropped: &'static AtomicU64,
    ) -> Arc<Self> {
        Arc::new(Self {
            format,
            limits,
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                idle: false,
            }),
            out: Mutex::new(Out {
                sink,
                spare: Vec::new(),
            }),
            writer: OnceLock::new(),
            dropped,
            reported: AtomicBool::new(false),
        })
    }

    /// The buffer with its writer thread running. The thread ends when the buffer is dropped.
    fn start(
        format: LogFormat,
        sink: Box<dyn Write + Send>,
        limits: Limits,
        dropped: &'static AtomicU64,
    ) -> Arc<Self> {
        let log = Self::new(format, sink, limits, dropped);
        let weak = Arc::downgrade(&log);
        match std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer_loop(&weak))
        {
            Ok(handle) => {
                let _ = log.writer.set(handle.thread().clone());
            }
            // Without a thread, lines are written when the buffer passes `flush_at`, by the
            // request that crosses it, and on shutdown.
            Err(e) => tracing::warn!(error = %e, "no thread for the access log: written inline"),
        }
        log
    }

    /// Formats `line` and adds it to the buffer, or drops it when the buffer is full.
    fn push(&self, line: &Line<'_>) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            format_line(&mut scratch, self.format, line, SystemTime::now());
            self.push_bytes(&scratch);
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = Vec::new();
            }
        });
    }

    fn push_bytes(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock();
        let before = pending.buf.len();
        if before + bytes.len() > self.limits.capacity {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.buf.extend_from_slice(bytes);
        let after = pending.buf.len();
        let wake_idle = std::mem::take(&mut pending.idle);
        drop(pending);
        let full = before < self.limits.flush_at && after >= self.limits.flush_at;
        match self.writer.get() {
            Some(writer) if wake_idle || full => writer.unpark(),
            Some(_) => {}
            None if full => self.flush(),
            None => {}
        }
    }

    /// Writes what is waiting; reports the first dropped lines.
    fn flush(&self) {
        self.flush_locked(&mut self.out.lock());
    }

    fn flush_locked(&self, out: &mut Out) {
        {
            let mut pending = self.pending.lock();
            std::mem::swap(&mut pending.buf, &mut out.spare);
        }
        if !out.spare.is_empty() {
            // In pieces of whole lines: stderr is locked per write, so another log event waits
            // for one piece, not the whole batch, and never lands inside a line. Nothing to do
            // about a closed stderr: the lines are lost, as tracing's would be.
            for piece in whole_lines(&out.spare, WRITE_PIECE) {
                if out.sink.write_all(piece).is_err() {
                    break;
                }
            }
            let _ = out.sink.flush();
            out.spare.clear();
            if out.spare.capacity() > self.limits.capacity {
                out.spare = Vec::new();
            }
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 && !self.reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dropped,
                capacity_bytes = self.limits.capacity,
                "access log lines dropped: stderr does not take them as fast as requests come; \
                 counted in gateway_log_lines_dropped_total (reported once)"
            );
        }
    }

    /// What the writer does next, decided under the lock: a wake-up for a line or for
    /// `flush_at` can come before the writer parks, and the state says what it missed.
    fn next_step(&self) -> Step {
        let mut pending = self.pending.lock();
        pending.idle = pending.buf.is_empty();
        if pending.idle {
            Step::Park
        } else if pending.buf.len() >= self.limits.flush_at {
            Step::Flush
        } else {
            Step::Gather(self.limits.every)
        }
    }
}

/// The writer thread's next step.
enum Step {
    /// Nothing waits: sleep until a line comes.
    Park,
    /// Let lines gather this long (or until `flush_at` bytes), then write.
    Gather(Duration),
    /// Write now.
    Flush,
}

impl Drop for Buffered {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }
}

/// The writer thread: parked while nothing waits; once a line arrives, it lets lines gather
/// for `every` (or until `flush_at` bytes wake it) and writes them in one go.
fn writer_loop(log: &Weak<Buffered>) {
    loop {
        let Some(step) = log.upgrade().map(|log| log.next_step()) else {
            return;
        };
        match step {
            Step::Park => std::thread::park(),
            Step::Gather(every) => std::thread::park_timeout(every),
            Step::Flush => {}
        }
        if !matches!(step, Step::Park) {
            match log.upgrade() {
                Some(log) => log.flush(),
                None => return,
            }
        }
    }
}

/// A thread's scratch buffer for the line being formatted.
const SCRATCH_KEEP: usize = 16 << 10;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SCOPED_SINK: RefCell<Option<(LogFormat, Box<dyn Write>)>> = const { RefCell::new(None) };
}

/// Threads with a [`set_default`] writer: while none, [`write`] does not look.
static SCOPED: AtomicUsize = AtomicUsize::new(0);

/// Until the guard drops, this thread's access-log lines go to `sink`, in `format`, at once
/// (no buffer): how a test captures them beside its `tracing` subscriber.
pub fn set_default(format: LogFormat, sink: impl Write + 'static) -> DefaultGuard {
    let previous = SCOPED_SINK.with(|s| s.borrow_mut().replace((format, Box::new(sink))));
    SCOPED.fetch_add(1, Ordering::Relaxed);
    DefaultGuard {
        previous: Some(previous),
    }
}

/// Restores the thread's previous access-log writer when dropped.
#[must_use = "the writer is replaced only while the guard lives"]
pub struct DefaultGuard {
    previous: Option<Option<(LogFormat, Box<dyn Write>)>>,
}

impl std::fmt::Debug for DefaultGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DefaultGuard")
    }
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        let previous = self.previous.take().flatten();
        SCOPED_SINK.with(|s| *s.borrow_mut() = previous);
        SCOPED.fetch_sub(1, Ordering::Relaxed);
    }
}

fn write_scoped(line: &Line<'_>) -> bool {
    SCOPED_SINK.with(|s| {
        let mut s = s.borrow_mut();
        let Some((format, sink)) = s.as_mut() else {
            return false;
        };
        let mut buf = Vec::with_capacity(256);
        format_line(&mut buf, *format, line, SystemTime::now());
        let _ = sink.write_all(&buf);
        true
    })
}

/// `s` with every character that could break or restyle a text log line escaped as
/// `\u{..}`: C0 and C1 controls (NEL, CSI), DEL, line and paragraph separators, and bidi
/// overrides. A path with none of them is borrowed as is.
pub fn log_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Appends `line` to `buf` as `format` has it, with its newline, at `now`.
fn format_line(buf: &mut Vec<u8>, format: LogFormat, line: &Line<'_>, now: SystemTime) {
    match format {
        LogFormat::Text => format_text(buf, line, now),
        LogFormat::Json => format_json(buf, line, now),
    }
}

/// `fmt`'s default format, without colours: `TIME LEVEL TARGET: request k=v ...`; `%` fields
/// as they display, string fields quoted as `Debug` has them, numbers bare.
fn format_text(buf: &mut Vec<u8>, line: &Line<'_>, now: SystemTime) {
    timestamp(buf, now);
    buf.extend_from_slice(if line.probe { b" DEBUG " } else { b"  INFO " });
    buf.extend_from_slice(TARGET.as_bytes());
    buf.extend_from_slice(b": request request_id=");
    buf.extend_from_slice(line.request_id.as_bytes());
    buf.extend_from_slice(b" trace_id=");
    hex(buf, &line.trace_id.0);
    buf.extend_from_slice(b" method=");
    buf.extend_from_slice(line.method.as_str().as_bytes());
    buf.extend_from_slice(b" path=");
    buf.extend_from_slice(log_safe(line.path).as_bytes());
    buf.extend_from_slice(b" endpoint=");
    debug_str(buf, line.endpoint);
    if let Some(caller) = line.caller {
        buf.extend_from_slice(b" caller=");
        debug_str(buf, caller);
    }
    let _ = write!(
        buf,
        " status={} attempts={} duration_ms={:?}",
        line.status,
        line.attempts,
        line.duration.as_secs_f64() * 1000.0
    );
    buf.push(b'\n');
}

/// `fmt().json().flatten_event(true)`: timestamp, level, the fields in order, target.
fn format_json(buf: &mut Vec<u8>, line: &Line<'_>, now: SystemTime) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(if line.probe {
        b"\",\"level\":\"DEBUG\",\"message\":\"request\",\"request_id\":"
    } else {
        b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":"
    });
    json_str(buf, line.request_id);
    buf.extend_from_slice(b",\"trace_id\":\"");
    hex(buf, &line.trace_id.0);
    buf.extend_from_slice(b"\",\"method\":");
    json_str(buf, line.method.as_str());
    buf.extend_from_slice(b",\"path\":");
    json_str(buf, &log_safe(line.path));
    buf.extend_from_slice(b",\"endpoint\":");
    json_str(buf, line.endpoint);
    if let Some(caller) = line.caller {
        buf.extend_from_slice(b",\"caller\":");
        json_str(buf, caller);
    }
    let _ = write!(
        buf,
        ",\"status\":{},\"attempts\":{},\"duration_ms\":",
        line.status, line.attempts
    );
    // serde_json's own float formatting, as tracing's JSON has it.
    let _ = serde_json::to_writer(&mut *buf, &(line.duration.as_secs_f64() * 1000.0));
    buf.extend_from_slice(b",\"target\":\"");
    buf.extend_from_slice(TARGET.as_bytes());
    buf.extend_from_slice(b"\"}\n");
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// `s` as `{:?}` writes it: quoted, escaped; plain ASCII without a copy through `fmt`.
fn debug_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

fn hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        buf.push(DIGITS[usize::from(b >> 4)]);
        buf.push(DIGITS[usize::from(b & 0xf)]);
    }
}

/// RFC 3339 in UTC with microseconds, as `fmt`'s default timer writes it:
/// `2026-12-07T14:51:20.123456Z`.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    if (0..=9999).contains(&year) {
        two(buf, (year / 100) as u32);
        two(buf, (year % 100) as u32);
    } else {
        let _ = write!(buf, "+{year}");
    }
    buf.push(b'-');
    two(buf, month);
    buf.push(b'-');
    two(buf, day);
    buf.push(b'T');
    two(buf, (of_day / 3600) as u32);
    buf.push(b':');
    two(buf, (of_day / 60 % 60) as u32);
    buf.push(b':');
    two(buf, (of_day % 60) as u32);
    buf.push(b'.');
    let micros = since.subsec_micros();
    for div in [100_000, 10_000, 1000, 100, 10, 1] {
        buf.push(b'0' + (micros / div % 10) as u8);
    }
    buf.push(b'Z');
}

fn two(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10 % 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Year, month and day of the `days`th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_escapes_controls_separators_and_bidi_and_keeps_the_rest() {
        assert!(matches!(
            log_safe("/api/v1.0/feed/user/1/"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            log_safe("/a\u{85}b\u{9b}31mc\u{2028}d\u{202e}e\ng\u{7f}/é"),
            "/a\\u{85}b\\u{9b}31mc\\u{2028}d\\u{202e}e\\u{a}g\\u{7f}/é"
        );
    }

    /// Every `write` call the sink got, as its own chunk; `gate` held blocks the writes.
    #[derive(Clone, Default)]
    struct Sink {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock();
            self.writes.lock().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().clone()
        }
        fn text(&self) -> String {
            String::from_utf8(self.writes().concat()).unwrap()
        }
    }

    fn line(i: usize, path: &str) -> (String, String) {
        (format!("req-{i}"), path.to_owned())
    }

    fn push(log: &Buffered, (id, path): &(String, String)) {
        log.push(&Line {
            request_id: id,
            trace_id: TraceId([7; 16]),
            method: &http::Method::GET,
            path,
            endpoint: "feed.read",
            caller: None,
            status: 200,
            attempts: 1,
            duration: Duration::from_micros(1500),
            probe: false,
        });
    }

    fn limits(capacity: usize, flush_at: usize, every: Duration) -> Limits {
        Limits {
            capacity,
            flush_at,
            every,
        }
    }

    fn counter() -> &'static AtomicU64 {
        Box::leak(Box::new(AtomicU64::new(0)))
    }

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_microseconds() {
        let at = |secs: u64, nanos: u32| {
            let mut buf = Vec::new();
            timestamp(&mut buf, UNIX_EPOCH + Duration::new(secs, nanos));
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 500_000_000), "2000-02-29T00:00:00.500000Z");
        assert_eq!(
            at(1_796_659_200, 250_000_999),
            "2026-12-07T16:00:00.250000Z"
        );
        assert_eq!(
            at(253_402_300_799, 999_999_000),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(at(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z");
    }

    #[test]
    fn lines_gather_in_the_buffer_and_go_out_in_one_write() {
        let sink = Sink::default();
        let log = Buffered::new(
            LogFormat::Json,
            Box::new(sink.clone()),
            limits(1 << 20, 1 << 16, Duration::from_secs(3600)),
            counter(),
        );
        for i in 0..100 {
            push(&log, &line(i, "/api/v1.0/feed/user/1/"));
        }
        assert!(sink.writes().is_empty(), "nothing written before a flush");
        log.flush();
        let writes = sink.writes();
        assert_eq!(writes.len(), 1, "one write for 100 lines");
        let text = sink.text();
        assert_eq!(text.lines().count(), 100);
        for (i, l) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["request_id"], format!("req-{i}"), "in order");
        }
        log.flush();
        assert_eq!(sink.writes().len(), 1, "an empty buffer writes nothing");
    }

    #[test]
    fn a_full_buffer_drops_lines_counts_them_and_reports_once() {
        let sink = Sink::default();
        let one = {
            let mut buf = Vec::new();
            let (id, path) = line(0, "/p");
            format_line(
                &mut buf,
                LogFormat::Text,
                &Line {
                    request_id: &id,
                    trace_id: TraceId([7; 16]),
                    method: &http::Method::GET,
                    path: &path,
                    endpoint: "feed.read",
                    caller: None,
                    status: 200,
                    attempts: 1,
                    duration: Duration::from_micros(1500),
                    probe: false,
                },
                UNIX_EPOCH,
            );
            buf.len()
        };
        let log = Buffered::new(
            LogFormat::Text,
            Box::new(sink.clone()),
            limits(one * 3, one * 100, Duration::from_secs(3600)),
            counter(),
        );
        let (reports, _guard) = {
            let cap = Sink::default();
            let c2 = cap.clone();
            let sub = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || c2.clone())
                .finish();
            (cap, tracing::subscriber::set_default(sub))
        };
        for i in 0..5 {
            push(&log, &line(i, "/p"));
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 2, "three fit");
        log.flush();
        for i in 5..10 {
            push(&log, &line(i, "/p"));
        }
        log.flush();
        assert_eq!(log.dropped.load(Ordering::Relaxed), 4);
        let text = sink.text();
        let ids: Vec<_> = text
            .lines()
            .map(|l| {
                l.split("request_id=")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, ["req-0", "req-1", "req-2", "req-5", "req-6", "req-7"]);
        let reports = reports.text();
        assert_eq!(
            reports.matches("access log lines dropped").count(),
            1,
            "{reports}"
        );
        assert!(
            reports.contains("WARN") && reports.contains("dropped=2"),
            "{reports}"
        );
    }

    #[test]
    fn a_batch_is_written_in_pieces_of_whole_lines() {
        let buf = b"aaaa\nbbbb\ncc\ndddddddddd\ne\n";
        let pieces: Vec<&[u8]> = whole_lines(buf, 8).collect();
        assert_eq!(
            pieces,
            [&b"aaaa\n"[..], b"bbbb\ncc\n", b"dddddddddd\n", b"e\n"]
        );
        assert_eq!(pieces.concat(), buf);
        assert_eq!(whole_lines(b"no end", 3).collect::<Vec<_>>(), [b"no end"]);
        assert_eq!(whole_lines(b"", 3).count(), 0);
    }

    #[test]
    fn a_request_does_not_wait_for_a_stuck_stderr() {
        let sink = Sink::default();
        let log = Buffered::start(
            LogFormat::Text,
            Box::new(sink.clone()),
            limits(4096, 1024, Duration::from_millis(1)),
            counter(),
        );
        // The writer is stuck in its write, holding a batch.
        let stuck = sink.gate.lock();
        push(&log, &line(0, "/first"));
        wait_until("the writer took the first line", || {
            log.pending.lock().buf.is_empty()
        });
        let mut i = 1;
        while log.dropped.load(Ordering::Relaxed) == 0 {
            push(&log, &line(i, "/later"));
            i += 1;
            assert!(i < 1000, "the buffer never filled");
        }
        assert!(sink.writes().is_empty());
        drop(stuck);
        wait_until("the writer wrote what fit", || {
            log.pending.lock().buf.is_empty() && sink.text().contains("req-1 ")
        });
        assert!(sink.text().contains("path=/first"));
        assert!(!sink.text().contains(&format!("req-{} ", i - 1)), "dropped");
    }

    #[test]
    fn the_writer_writes_within_its_interval_or_at_once_past_flush_at() {
        // Every millisecond: a line waits for no flush.
        let sink = Sink::default();
        let log = Buffered::start(
            LogFormat::Text,
            Box::new(sink.clone()),
            limits(1 << 20, 1 << 16, Duration::from_millis(1)),
            counter(),
        );
        push(&log, &line(1, "/a"));
        wait_until("the line written", || sink.text().contains("req-1 "));
        // Idle, then woken again by the next line.
        push(&log, &line(2, "/b"));
        wait_until("the next line written", || sink.text().contains("req-2 "));

        // Every hour, but 200 bytes wake the writer.
        let sink = Sink::default();
        let log = Buffered::start(
            LogFormat::Text,
            Box::new(sink.clone()),
            limits(1 << 20, 200, Duration::from_secs(3600)),
            counter(),
        );
        push(&log, &line(1, "/a"));
        push(&log, &line(2, "/b"));
        wait_until("written past flush_at", || sink.text().contains("req-2 "));
        drop(log);
    }

    #[test]
    fn without_a_writer_thread_the_line_past_flush_at_writes_the_batch() {
        let sink = Sink::default();
        let log = Buffered::new(
            LogFormat::Text,
            Box::new(sink.clone()),
            limits(1 << 20, 300, Duration::from_secs(3600)),
            counter(),
        );
        push(&log, &line(1, "/a"));
        assert!(sink.writes().is_empty());
        push(&log, &line(2, "/b"));
        push(&log, &line(3, "/c"));
        assert_eq!(sink.writes().len(), 1, "{}", sink.text());
        assert!(sink.text().contains("req-2 "));
    }

    #[test]
    fn a_thread_writer_set_by_default_gets_the_lines_until_its_guard_drops() {
        let sink = Sink::default();
        let _sub = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(std::io::sink)
                .finish(),
        );
        let l = line(1, "/a");
        let at = |probe: bool| Line {
            request_id: &l.0,
            trace_id: TraceId([1; 16]),
            method: &http::Method::GET,
            path: &l.1,
            endpoint: if probe { "healthz" } else { "feed.read" },
            caller: Some("web"),
            status: 200,
            attempts: u32::from(!probe),
            duration: Duration::ZERO,
            probe,
        };
        let guard = set_default(LogFormat::Text, sink.clone());
        let inner = Sink::default();
        let inner_guard = set_default(LogFormat::Json, inner.clone());
        write(&at(false));
        drop(inner_guard);
        assert!(
            inner.text().starts_with("{\"timestamp\""),
            "{}",
            inner.text()
        );
        write(&at(false));
        // `fmt()`'s default level is INFO: the probe's DEBUG line is not enabled.
        write(&at(true));
        drop(guard);
        write(&at(false));
        let text = sink.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("  INFO stream_gateway::telemetry: request request_id=req-1 "));
        assert!(text.contains(" caller=\"web\" status=200 attempts=1 duration_ms=0.0\n"));
    }
}
