//! The standard `process_*` metrics of Prometheus' client libraries, read from
//! `/proc/self` at each scrape: CPU time, resident and virtual memory, open
//! and maximum file descriptors, threads and the start time.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// The process metrics, registered without the daemon's prefix.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    cpu: Counter<f64, AtomicU64>,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

/// What `/proc/self/stat` says, in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: i64,
    start_seconds_after_boot: f64,
    virtual_bytes: i64,
    resident_bytes: i64,
}

/// Parses `/proc/self/stat` (fields after the parenthesised command name, which may hold spaces).
fn parse_stat(text: &str, ticks: f64, page: i64) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is f[n - 3]
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    #[allow(clippy::cast_precision_loss)]
    Some(Stat {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        threads: num(20)?,
        start_seconds_after_boot: num(22)? as f64 / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
    })
}

/// `Max open files` of `/proc/self/limits` (the soft limit).
fn parse_max_fds(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: when the machine booted, in Unix seconds.
fn parse_boot_time(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

impl ProcessMetrics {
    /// Registers them in `registry` under their standard names.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ProcessMetrics::default();
        registry.register_with_unit(
            "process_cpu",
            "Total user and system CPU time spent",
            Unit::Seconds,
            m.cpu.clone(),
        );
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            m.resident.clone(),
        );
        registry.register_with_unit(
            "process_virtual_memory",
            "Virtual memory size",
            Unit::Bytes,
            m.virtual_memory.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            m.open_fds.clone(),
        );
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            m.max_fds.clone(),
        );
        registry.register("process_threads", "OS threads", m.threads.clone());
        registry.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            m.start_time.clone(),
        );
        m
    }

    /// Reads `/proc/self` now. A file that cannot be read leaves its metrics as they were.
    pub fn refresh(&self) {
        #[allow(clippy::cast_precision_loss)]
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let page = i64::try_from(rustix::param::page_size()).unwrap_or(4096);
        if let Some(st) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t, ticks, page))
        {
            let now = self.cpu.get();
            if st.cpu_seconds > now {
                self.cpu.inc_by(st.cpu_seconds - now);
            }
            self.threads.set(st.threads);
            self.virtual_memory.set(st.virtual_bytes);
            self.resident.set(st.resident_bytes);
            if let Some(boot) = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_boot_time(&t))
            {
                #[allow(clippy::cast_precision_loss)]
                self.start_time
                    .set(boot as f64 + st.start_seconds_after_boot);
            }
        }
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(rd.count()).unwrap_or(i64::MAX));
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| parse_max_fds(&t))
        {
            self.max_fds.set(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (bio (x) y) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 50 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let st = parse_stat(line, 100.0, 4096).expect("parsed");
        assert!((st.cpu_seconds - 3.0).abs() < 1e-9, "{st:?}");
        assert_eq!(st.threads, 7);
        assert!((st.start_seconds_after_boot - 1234.56).abs() < 1e-9);
        assert_eq!(st.virtual_bytes, 104_857_600);
        assert_eq!(st.resident_bytes, 2560 * 4096);
    }

    #[test]
    fn limits_and_boot_time_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1780000000\n"),
            Some(1_780_000_000)
        );
    }

    #[test]
    fn this_process_reports_itself() {
        let mut r = Registry::default();
        let m = ProcessMetrics::register(&mut r);
        m.refresh();
        assert!(m.resident.get() > 0);
        assert!(m.open_fds.get() > 0);
        assert!(m.threads.get() >= 1);
    }
}
