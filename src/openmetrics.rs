//! The `/metrics` answer of every program (server, provider, operator): a Prometheus
//! registry in the OpenMetrics text format.

use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn response(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode metrics\n",
        )
            .into_response(),
    }
}

/// `kvault_build_info{component, version}` (always 1) and the standard `process_*` metrics
/// (CPU seconds, resident and virtual memory, open and maximum file descriptors, start time),
/// on a registry without prefix. Every program registers them once.
pub fn register_build_and_process(registry: &mut Registry, component: &'static str) {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            component,
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register(
        "kvault_build_info",
        "The running kvault's version, by component (always 1)",
        build,
    );
    registry.register_collector(Box::new(ProcessCollector));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct BuildLabels {
    component: &'static str,
    version: &'static str,
}

/// What `/proc/self` says about this process, read at each scrape (Linux only; elsewhere
/// nothing is reported).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

/// `/proc` reports CPU times and start times in USER_HZ, which Linux fixes at 100.
const USER_HZ: f64 = 100.0;

/// Parses `/proc/self/stat`, the `btime` line of `/proc/stat`, the `VmRSS`/`VmSize` lines of
/// `/proc/self/status` and the "Max open files" line of `/proc/self/limits`. Pure.
pub fn parse_process_stats(
    stat: &str,
    proc_stat: &str,
    status: &str,
    limits: &str,
    open_fds: u64,
) -> Option<ProcessStats> {
    // The command name (field 2) may hold spaces: the fields after it start after its ')'.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field n of proc(5) is fields[n - 3] here.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    Some(ProcessStats {
        cpu_seconds: ticks as f64 / USER_HZ,
        resident_bytes: kib("VmRSS:").unwrap_or(0),
        virtual_bytes: kib("VmSize:").unwrap_or(0),
        start_time_seconds: btime as f64 + start_ticks as f64 / USER_HZ,
        open_fds,
        max_fds,
    })
}

fn read_process_stats() -> Option<ProcessStats> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse_process_stats(
        &read("/proc/self/stat")?,
        &read("/proc/stat")?,
        &read("/proc/self/status")?,
        &read("/proc/self/limits").unwrap_or_default(),
        open_fds,
    )
}

#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some(s) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(s.resident_bytes as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(s.virtual_bytes as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                Some(s.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                Some(s.open_fds as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds.map(|m| m as f64),
            ),
        ];
        for (name, help, value) in gauges {
            let Some(v) = value else { continue };
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_read_from_proc() {
        let stat = "4242 (kvault (x) y) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 \
                    12345 999 111 18446744073709551615";
        let s = parse_process_stats(
            stat,
            "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n",
            "Name:\tkvault\nVmSize:\t  20480 kB\nVmRSS:\t   1024 kB\n",
            "Limit Soft Limit Hard Limit Units\nMax open files            1048576              1048576              files\n",
            12,
        )
        .unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 1024 * 1024);
        assert_eq!(s.virtual_bytes, 20480 * 1024);
        assert_eq!(s.start_time_seconds, 1_700_000_123.45);
        assert_eq!((s.open_fds, s.max_fds), (12, Some(1_048_576)));
        assert!(parse_process_stats("garbage", "", "", "", 0).is_none());
    }

    #[test]
    fn the_registry_reports_build_info_and_this_process() {
        let mut r = Registry::default();
        register_build_and_process(&mut r, "server");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(
            out.contains(&format!(
                "kvault_build_info{{component=\"server\",version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{out}"
        );
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name}: {out}");
        }
    }
}
