//! Process metrics under Prometheus' standard names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), read from `/proc/self` at each scrape, as the
//! official clients' process collectors do. Written straight into the exposition text: the
//! `metrics` facade's counters hold integers, and CPU time is counted in fractions of a second.
//! Elsewhere than on Linux there are none.

use std::fmt::Write as _;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: the kernel's `USER_HZ`, 100 on every
/// Linux architecture's ABI (Prometheus' procfs reader makes the same assumption).
const USER_HZ: f64 = 100.0;

/// One reading of the process.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sample {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (none: unlimited).
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// OS threads.
    pub threads: u64,
}

/// Reads `/proc/stat`-style texts into a sample: `stat` is `/proc/self/stat`, `status`
/// `/proc/self/status`, `limits` `/proc/self/limits`, `system_stat` `/proc/stat` (for the boot
/// time). None when `stat` cannot be read.
pub(crate) fn parse(
    stat: &str,
    status: &str,
    limits: &str,
    system_stat: &str,
    open_fds: u64,
) -> Option<Sample> {
    // The command name, in parentheses, may hold spaces and parentheses: fields start after
    // the last `)`. Fields are then numbered from 3 (`state`) as in proc(5).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = field(14)? + field(15)?;
    let boot_time: u64 = system_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|v| v * 1024)
    };
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            l["Max open files".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
    Some(Sample {
        cpu_seconds: ticks as f64 / USER_HZ,
        resident_bytes: kib("VmRSS:").unwrap_or(0),
        virtual_bytes: kib("VmSize:").unwrap_or(0),
        open_fds,
        max_fds,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / USER_HZ,
        threads: field(20)?,
    })
}

/// This process, now (Linux only).
pub(crate) fn sample() -> Option<Sample> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    parse(
        &read("/proc/self/stat"),
        &read("/proc/self/status"),
        &read("/proc/self/limits"),
        &read("/proc/stat"),
        fds,
    )
}

/// The sample in Prometheus' text format.
pub(crate) fn render(s: &Sample) -> String {
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        );
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        s.cpu_seconds,
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        s.resident_bytes as f64,
    );
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        s.virtual_bytes as f64,
    );
    one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        s.open_fds as f64,
    );
    if let Some(max) = s.max_fds {
        one(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max as f64,
        );
    }
    one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        s.start_time_seconds,
    );
    one(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        s.threads as f64,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (stream gate) way) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
        250 125 0 0 20 0 7 0 360000 3133440 396 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
    const STATUS: &str = "Name:\tstream-gateway\nVmSize:\t    3892 kB\nVmRSS:\t    1948 kB\n";
    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units\n\
        Max open files            1024                 4096                 files     \n";
    const SYSTEM: &str = "cpu  1 2 3\nbtime 1796644946\nprocesses 9\n";

    #[test]
    fn proc_texts_give_cpu_memory_files_threads_and_start_time() {
        let s = parse(STAT, STATUS, LIMITS, SYSTEM, 12).unwrap();
        assert_eq!(
            s,
            Sample {
                cpu_seconds: 3.75,
                resident_bytes: 1948 * 1024,
                virtual_bytes: 3892 * 1024,
                open_fds: 12,
                max_fds: Some(1024),
                start_time_seconds: 1_796_644_946.0 + 3600.0,
                threads: 7,
            }
        );
        let text = render(&s);
        assert!(text.contains(
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.75\n"
        ));
        assert!(text.contains("process_max_fds 1024\n"));
        assert!(text.contains("process_resident_memory_bytes 1994752\n"));
    }

    #[test]
    fn an_unreadable_stat_gives_no_sample_and_an_unlimited_fd_limit_no_series() {
        assert_eq!(parse("", STATUS, LIMITS, SYSTEM, 1), None);
        assert_eq!(parse(STAT, STATUS, LIMITS, "", 1), None);
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        let s = parse(STAT, "", unlimited, SYSTEM, 1).unwrap();
        assert_eq!((s.max_fds, s.resident_bytes), (None, 0));
        assert!(!render(&s).contains("process_max_fds"));
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        let s = sample();
        assert_eq!(s.is_some(), cfg!(target_os = "linux"));
        if let Some(s) = s {
            assert!(
                s.resident_bytes > 0 && s.open_fds > 0 && s.threads > 0,
                "{s:?}"
            );
            assert!(s.start_time_seconds > 1.6e9, "{s:?}");
        }
    }
}
