//! GPU metric families (NVML): name, help, type and labels, and the snapshot they are rendered
//! from.
//!
//! The NVML collector builds one complete [`GpuSnapshot`] per refresh (every per-GPU reading plus
//! the collector's own health) and publishes it at once with [`GpuMetrics::publish`]. Both
//! `/metrics` (through the custom [`Collector`] below, which builds the `MetricFamily` values at
//! scrape time) and the OTLP exporter render from that snapshot, so neither ever sees half of a
//! refresh, and nothing reads values back out of the Prometheus registry. A series the latest
//! refresh did not write (a process that exited, a reading that started failing, a GPU that
//! vanished) is simply not in the snapshot.
//!
//! Every per-GPU family carries `gpu` (NVML index) and `uuid`. A reading the device does not
//! support has no series at all (never a 0). The collector's own health families
//! (`inferprobe_nvml_up`, refresh duration and success) have no labels and appear once the
//! collector has published its first refresh, so nothing GPU-related is exported when it is
//! disabled.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::Registry;

/// Labels of every per-GPU family.
pub const GPU_LABELS: [&str; 2] = ["gpu", "uuid"];
/// Labels of `inferprobe_gpu_clock_event_active`.
pub const CLOCK_EVENT_LABELS: [&str; 3] = ["gpu", "uuid", "reason"];
/// Labels of `inferprobe_gpu_fan_speed_ratio`.
pub const FAN_LABELS: [&str; 3] = ["gpu", "uuid", "fan"];
/// Labels of `inferprobe_gpu_process_memory_used_bytes`.
pub const PROCESS_LABELS: [&str; 4] = ["gpu", "uuid", "pid", "process"];
/// Labels of `inferprobe_gpu_info`.
pub const INFO_LABELS: [&str; 4] = ["gpu", "uuid", "name", "driver_version"];

/// Values of the `reason` label of `inferprobe_gpu_clock_event_active`, with NVML's bit for each
/// (`nvmlClocksEventReason*`, formerly `nvmlClocksThrottleReason*`).
pub const CLOCK_EVENT_REASONS: [(&str, u64); 9] = [
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
];

/// One GPU family. The variants name the families; [`GpuFamily::name`] gives the full
/// Prometheus name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GpuFamily {
    /// `inferprobe_gpu_utilization_ratio{gpu,uuid}`
    Utilization,
    /// `inferprobe_gpu_memory_utilization_ratio{gpu,uuid}`
    MemoryUtilization,
    /// `inferprobe_gpu_memory_used_bytes{gpu,uuid}`
    MemoryUsed,
    /// `inferprobe_gpu_memory_free_bytes{gpu,uuid}`
    MemoryFree,
    /// `inferprobe_gpu_memory_total_bytes{gpu,uuid}`
    MemoryTotal,
    /// `inferprobe_gpu_temperature_celsius{gpu,uuid}`
    Temperature,
    /// `inferprobe_gpu_power_usage_watts{gpu,uuid}`
    PowerUsage,
    /// `inferprobe_gpu_power_limit_watts{gpu,uuid}`
    PowerLimit,
    /// `inferprobe_gpu_energy_consumed_joules_total{gpu,uuid}` (counter). The value is the
    /// device's own counter as read at the refresh; it restarts when the driver is reloaded,
    /// and Prometheus reads the drop as a counter reset.
    Energy,
    /// `inferprobe_gpu_sm_clock_hertz{gpu,uuid}`
    SmClock,
    /// `inferprobe_gpu_memory_clock_hertz{gpu,uuid}`
    MemoryClock,
    /// `inferprobe_gpu_clock_event_active{gpu,uuid,reason}`
    ClockEvent,
    /// `inferprobe_gpu_pcie_rx_bytes_per_second{gpu,uuid}`
    PcieRx,
    /// `inferprobe_gpu_pcie_tx_bytes_per_second{gpu,uuid}`
    PcieTx,
    /// `inferprobe_gpu_ecc_errors_corrected_total{gpu,uuid}` (counter): NVML's volatile count,
    /// as read at the refresh; it restarts at driver load (a counter reset to Prometheus).
    EccCorrected,
    /// `inferprobe_gpu_ecc_errors_uncorrected_total{gpu,uuid}` (counter), as
    /// [`GpuFamily::EccCorrected`].
    EccUncorrected,
    /// `inferprobe_gpu_fan_speed_ratio{gpu,uuid,fan}`
    FanSpeed,
    /// `inferprobe_gpu_process_memory_used_bytes{gpu,uuid,pid,process}`
    ProcessMemory,
    /// `inferprobe_gpu_info{gpu,uuid,name,driver_version}`, always 1
    Info,
    /// `inferprobe_nvml_up` (no labels)
    NvmlUp,
    /// `inferprobe_gpu_collector_refresh_duration_seconds` (no labels)
    RefreshDuration,
    /// `inferprobe_gpu_collector_last_refresh_success` (no labels)
    LastRefreshSuccess,
}

impl GpuFamily {
    /// Every family, in declaration order.
    pub const ALL: [GpuFamily; 22] = [
        GpuFamily::Utilization,
        GpuFamily::MemoryUtilization,
        GpuFamily::MemoryUsed,
        GpuFamily::MemoryFree,
        GpuFamily::MemoryTotal,
        GpuFamily::Temperature,
        GpuFamily::PowerUsage,
        GpuFamily::PowerLimit,
        GpuFamily::Energy,
        GpuFamily::SmClock,
        GpuFamily::MemoryClock,
        GpuFamily::ClockEvent,
        GpuFamily::PcieRx,
        GpuFamily::PcieTx,
        GpuFamily::EccCorrected,
        GpuFamily::EccUncorrected,
        GpuFamily::FanSpeed,
        GpuFamily::ProcessMemory,
        GpuFamily::Info,
        GpuFamily::NvmlUp,
        GpuFamily::RefreshDuration,
        GpuFamily::LastRefreshSuccess,
    ];

    /// The full Prometheus name, e.g. `inferprobe_gpu_utilization_ratio`.
    pub fn name(self) -> &'static str {
        match self {
            GpuFamily::Utilization => "inferprobe_gpu_utilization_ratio",
            GpuFamily::MemoryUtilization => "inferprobe_gpu_memory_utilization_ratio",
            GpuFamily::MemoryUsed => "inferprobe_gpu_memory_used_bytes",
            GpuFamily::MemoryFree => "inferprobe_gpu_memory_free_bytes",
            GpuFamily::MemoryTotal => "inferprobe_gpu_memory_total_bytes",
            GpuFamily::Temperature => "inferprobe_gpu_temperature_celsius",
            GpuFamily::PowerUsage => "inferprobe_gpu_power_usage_watts",
            GpuFamily::PowerLimit => "inferprobe_gpu_power_limit_watts",
            GpuFamily::Energy => "inferprobe_gpu_energy_consumed_joules_total",
            GpuFamily::SmClock => "inferprobe_gpu_sm_clock_hertz",
            GpuFamily::MemoryClock => "inferprobe_gpu_memory_clock_hertz",
            GpuFamily::ClockEvent => "inferprobe_gpu_clock_event_active",
            GpuFamily::PcieRx => "inferprobe_gpu_pcie_rx_bytes_per_second",
            GpuFamily::PcieTx => "inferprobe_gpu_pcie_tx_bytes_per_second",
            GpuFamily::EccCorrected => "inferprobe_gpu_ecc_errors_corrected_total",
            GpuFamily::EccUncorrected => "inferprobe_gpu_ecc_errors_uncorrected_total",
            GpuFamily::FanSpeed => "inferprobe_gpu_fan_speed_ratio",
            GpuFamily::ProcessMemory => "inferprobe_gpu_process_memory_used_bytes",
            GpuFamily::Info => "inferprobe_gpu_info",
            GpuFamily::NvmlUp => "inferprobe_nvml_up",
            GpuFamily::RefreshDuration => "inferprobe_gpu_collector_refresh_duration_seconds",
            GpuFamily::LastRefreshSuccess => "inferprobe_gpu_collector_last_refresh_success",
        }
    }

    /// The help text.
    pub fn help(self) -> &'static str {
        match self {
            GpuFamily::Utilization => "Fraction of the last NVML sample period (1/6 s to 1 s) during which one or more kernels ran on the GPU.",
            GpuFamily::MemoryUtilization => "Fraction of the last NVML sample period during which device memory was being read or written.",
            GpuFamily::MemoryUsed => "Device memory allocated by contexts, in bytes (NVML memory info v2).",
            GpuFamily::MemoryFree => "Device memory not allocated, in bytes (NVML memory info v2).",
            GpuFamily::MemoryTotal => "Installed device memory, in bytes.",
            GpuFamily::Temperature => "GPU die temperature, in degrees Celsius.",
            GpuFamily::PowerUsage => "Power drawn by the board, in watts.",
            GpuFamily::PowerLimit => "Power limit the driver enforces on the board, in watts.",
            GpuFamily::Energy => "Energy consumed by the GPU since the driver was last loaded, in joules (the device's own counter).",
            GpuFamily::SmClock => "Current streaming-multiprocessor clock, in hertz.",
            GpuFamily::MemoryClock => "Current memory clock, in hertz.",
            GpuFamily::ClockEvent => "1 while the named reason holds the GPU clocks below their maximum (NVML clocks event / throttle reasons), else 0.",
            GpuFamily::PcieRx => "PCIe data received by the GPU over NVML's 20 ms sample window, in bytes per second (NVML KB taken as 1024 bytes).",
            GpuFamily::PcieTx => "PCIe data sent by the GPU over NVML's 20 ms sample window, in bytes per second (NVML KB taken as 1024 bytes).",
            GpuFamily::EccCorrected => "Single-bit ECC errors corrected since the driver was last loaded (NVML volatile counter).",
            GpuFamily::EccUncorrected => "Double-bit ECC errors not corrected since the driver was last loaded (NVML volatile counter).",
            GpuFamily::FanSpeed => "Intended fan speed as a fraction of the fan's maximum; may exceed 1 on some boards.",
            GpuFamily::ProcessMemory => "Device memory used by one process, in bytes; only the processes using the most memory per GPU (gpus.process_top_n).",
            GpuFamily::Info => "Always 1; the labels name the GPU model and the driver version.",
            GpuFamily::NvmlUp => "1 when NVML was loaded and listed at least one GPU at the last refresh, else 0.",
            GpuFamily::RefreshDuration => "Wall time of the last GPU collector refresh, in seconds.",
            GpuFamily::LastRefreshSuccess => "1 when every reading of the last GPU collector refresh succeeded or is unsupported by the device, else 0.",
        }
    }

    /// The label names, in the order of [`GpuPoint::labels`].
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            GpuFamily::ClockEvent => &CLOCK_EVENT_LABELS,
            GpuFamily::FanSpeed => &FAN_LABELS,
            GpuFamily::ProcessMemory => &PROCESS_LABELS,
            GpuFamily::Info => &INFO_LABELS,
            GpuFamily::NvmlUp | GpuFamily::RefreshDuration | GpuFamily::LastRefreshSuccess => &[],
            _ => &GPU_LABELS,
        }
    }

    /// Whether the family is a counter (else a gauge).
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            GpuFamily::Energy | GpuFamily::EccCorrected | GpuFamily::EccUncorrected
        )
    }
}

/// One series of a family at one refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuPoint {
    /// Label values, in the order of the family's [`GpuFamily::label_names`].
    pub labels: Vec<String>,
    /// The value, in the family's base unit.
    pub value: f64,
}

/// Everything one refresh found. A family with no points (or no entry) has no series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuSnapshot {
    /// The points of each family, in the order the collector wrote them.
    pub families: BTreeMap<GpuFamily, Vec<GpuPoint>>,
}

impl GpuSnapshot {
    /// Adds a point to `family`.
    pub fn push(&mut self, family: GpuFamily, labels: Vec<String>, value: f64) {
        self.families
            .entry(family)
            .or_default()
            .push(GpuPoint { labels, value });
    }

    /// The points of `family` (empty when it has none).
    pub fn points(&self, family: GpuFamily) -> &[GpuPoint] {
        self.families.get(&family).map_or(&[], Vec::as_slice)
    }
}

/// The GPU families: a shared, cheaply cloned handle holding the last published snapshot, that
/// the collector publishes to and a registry (or the OTLP exporter) reads from.
#[derive(Clone, Debug)]
pub struct GpuMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    descs: Vec<Desc>,
    snapshot: RwLock<Arc<GpuSnapshot>>,
}

impl GpuMetrics {
    /// The families, unregistered, with an empty snapshot.
    pub fn new() -> GpuMetrics {
        let descs = GpuFamily::ALL
            .iter()
            .filter_map(|f| super::snapshot_desc(f.name(), f.help(), f.label_names()))
            .collect();
        GpuMetrics {
            inner: Arc::new(Inner {
                descs,
                snapshot: RwLock::new(Arc::new(GpuSnapshot::default())),
            }),
        }
    }

    /// Creates the families and registers them in `registry`. Registering a second set in the
    /// same registry fails, as the names are taken.
    pub fn register(registry: &Registry) -> Result<GpuMetrics, prometheus::Error> {
        let metrics = GpuMetrics::new();
        registry.register(Box::new(metrics.clone()))?;
        Ok(metrics)
    }

    /// Replaces the whole picture at once: readers see either the previous snapshot or this
    /// one, never a mix.
    pub fn publish(&self, snapshot: GpuSnapshot) {
        let snapshot = Arc::new(snapshot);
        // A writer that panicked left a whole `Arc` behind (each write is one assignment), so
        // the value is still consistent.
        let mut guard = self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = snapshot;
    }

    /// The last published snapshot (empty before the first refresh). Cheap: the lock is held
    /// only to clone the `Arc`.
    pub fn snapshot(&self) -> Arc<GpuSnapshot> {
        Arc::clone(
            &self
                .inner
                .snapshot
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Mean power draw over the GPUs of the last snapshot, in watts; `None` when no GPU
    /// reports it.
    pub fn mean_power_usage_watts(&self) -> Option<f64> {
        let snapshot = self.snapshot();
        let points = snapshot.points(GpuFamily::PowerUsage);
        if points.is_empty() {
            return None;
        }
        Some(points.iter().map(|p| p.value).sum::<f64>() / points.len() as f64)
    }
}

impl Default for GpuMetrics {
    fn default() -> Self {
        GpuMetrics::new()
    }
}

impl Collector for GpuMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.snapshot();
        snapshot
            .families
            .iter()
            .filter_map(|(family, points)| {
                let names = family.label_names();
                let metrics: Vec<proto::Metric> = points
                    .iter()
                    // A point with the wrong number of labels is a programming error; it is
                    // left out rather than exported with labels that do not match the family.
                    .filter(|p| p.labels.len() == names.len())
                    .map(|p| metric(*family, names, p))
                    .collect();
                if metrics.is_empty() {
                    return None;
                }
                let mut mf = MetricFamily::default();
                mf.set_name(family.name().to_string());
                mf.set_help(family.help().to_string());
                mf.set_field_type(if family.is_counter() {
                    MetricType::COUNTER
                } else {
                    MetricType::GAUGE
                });
                mf.set_metric(metrics);
                Some(mf)
            })
            .collect()
    }
}

/// One series, its label pairs sorted by name (as the `prometheus` crate's own vectors write
/// them).
fn metric(family: GpuFamily, names: &[&str], point: &GpuPoint) -> proto::Metric {
    let pairs = names
        .iter()
        .copied()
        .zip(point.labels.iter().map(String::as_str))
        .collect();
    super::scalar_metric(
        super::sorted_labels(pairs),
        point.value,
        family.is_counter(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn encode(registry: &Registry) -> String {
        crate::metrics::encode(registry)
    }

    fn labels(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    /// One point per family, every value `value`, with as many label values as it needs.
    fn uniform(value: f64, gpus: u32) -> GpuSnapshot {
        let mut s = GpuSnapshot::default();
        for family in GpuFamily::ALL {
            let per_family = if family.label_names().is_empty() {
                1
            } else {
                gpus
            };
            for gpu in 0..per_family {
                let values = family
                    .label_names()
                    .iter()
                    .map(|n| format!("{n}-{gpu}"))
                    .collect();
                s.push(family, values, value);
            }
        }
        s
    }

    #[test]
    fn families_are_complete_and_distinct() {
        assert_eq!(GpuMetrics::new().desc().len(), GpuFamily::ALL.len());
        for (i, f) in GpuFamily::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?} is out of order in ALL");
            assert!(f.name().starts_with("inferprobe_"), "{f:?}");
            assert_eq!(f.is_counter(), f.name().ends_with("_total"), "{f:?}");
        }
        let names: HashSet<&str> = GpuFamily::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), GpuFamily::ALL.len());
        assert_eq!(GpuFamily::ClockEvent.label_names(), CLOCK_EVENT_LABELS);
        assert_eq!(GpuFamily::NvmlUp.label_names(), &[] as &[&str]);
    }

    #[test]
    fn registers_once_and_exports_nothing_before_a_refresh() {
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).expect("registers");
        assert!(registry.gather().is_empty());
        assert!(m.snapshot().families.is_empty());
        // A second registration of the same names is refused.
        assert!(GpuMetrics::register(&registry).is_err());
        let mut s = GpuSnapshot::default();
        s.push(GpuFamily::NvmlUp, vec![], 0.0);
        // A family with no points is left out, not exported empty or as 0.
        s.families.insert(GpuFamily::PowerUsage, Vec::new());
        m.publish(s);
        assert_eq!(
            encode(&registry),
            "# HELP inferprobe_nvml_up 1 when NVML was loaded and listed at least one GPU at \
             the last refresh, else 0.\n\
             # TYPE inferprobe_nvml_up gauge\n\
             inferprobe_nvml_up 0\n"
        );
    }

    #[test]
    fn renders_types_sorted_labels_and_values() {
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).expect("registers");
        let mut s = GpuSnapshot::default();
        let gpu0 = || labels(&["0", "GPU-a"]);
        s.push(GpuFamily::Energy, gpu0(), 123556.5);
        s.push(GpuFamily::EccCorrected, gpu0(), 7.0);
        s.push(
            GpuFamily::ProcessMemory,
            labels(&["1", "GPU-b", "2001", "trainer"]),
            536870912.0,
        );
        s.push(
            GpuFamily::ProcessMemory,
            labels(&["0", "GPU-a", "1001", "python3"]),
            2147483648.0,
        );
        s.push(
            GpuFamily::Info,
            labels(&["0", "GPU-a", "Fake \"H100\"", "550.54.15"]),
            1.0,
        );
        s.push(GpuFamily::MemoryClock, gpu0(), 2.619e9);
        s.push(GpuFamily::RefreshDuration, vec![], 0.25);
        m.publish(s);
        let expected = "\
# HELP inferprobe_gpu_collector_refresh_duration_seconds Wall time of the last GPU collector refresh, in seconds.
# TYPE inferprobe_gpu_collector_refresh_duration_seconds gauge
inferprobe_gpu_collector_refresh_duration_seconds 0.25
# HELP inferprobe_gpu_ecc_errors_corrected_total Single-bit ECC errors corrected since the driver was last loaded (NVML volatile counter).
# TYPE inferprobe_gpu_ecc_errors_corrected_total counter
inferprobe_gpu_ecc_errors_corrected_total{gpu=\"0\",uuid=\"GPU-a\"} 7
# HELP inferprobe_gpu_energy_consumed_joules_total Energy consumed by the GPU since the driver was last loaded, in joules (the device's own counter).
# TYPE inferprobe_gpu_energy_consumed_joules_total counter
inferprobe_gpu_energy_consumed_joules_total{gpu=\"0\",uuid=\"GPU-a\"} 123556.5
# HELP inferprobe_gpu_info Always 1; the labels name the GPU model and the driver version.
# TYPE inferprobe_gpu_info gauge
inferprobe_gpu_info{driver_version=\"550.54.15\",gpu=\"0\",name=\"Fake \\\"H100\\\"\",uuid=\"GPU-a\"} 1
# HELP inferprobe_gpu_memory_clock_hertz Current memory clock, in hertz.
# TYPE inferprobe_gpu_memory_clock_hertz gauge
inferprobe_gpu_memory_clock_hertz{gpu=\"0\",uuid=\"GPU-a\"} 2619000000
# HELP inferprobe_gpu_process_memory_used_bytes Device memory used by one process, in bytes; only the processes using the most memory per GPU (gpus.process_top_n).
# TYPE inferprobe_gpu_process_memory_used_bytes gauge
inferprobe_gpu_process_memory_used_bytes{gpu=\"0\",pid=\"1001\",process=\"python3\",uuid=\"GPU-a\"} 2147483648
inferprobe_gpu_process_memory_used_bytes{gpu=\"1\",pid=\"2001\",process=\"trainer\",uuid=\"GPU-b\"} 536870912
";
        assert_eq!(encode(&registry), expected);
    }

    #[test]
    fn a_point_with_the_wrong_label_count_is_left_out() {
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).expect("registers");
        let mut s = GpuSnapshot::default();
        s.push(GpuFamily::Temperature, labels(&["0"]), 50.0);
        s.push(GpuFamily::Temperature, labels(&["1", "GPU-b"]), 60.0);
        m.publish(s);
        let text = encode(&registry);
        assert!(text.contains("inferprobe_gpu_temperature_celsius{gpu=\"1\",uuid=\"GPU-b\"} 60\n"));
        assert!(!text.contains(" 50\n"), "{text}");
    }

    #[test]
    fn publish_replaces_the_whole_picture() {
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).expect("registers");
        m.publish(uniform(1.0, 2));
        assert!(encode(&registry).contains("inferprobe_gpu_power_usage_watts"));
        let mut s = GpuSnapshot::default();
        s.push(GpuFamily::NvmlUp, vec![], 0.0);
        m.publish(s.clone());
        assert_eq!(*m.snapshot(), s);
        let text = encode(&registry);
        assert!(!text.contains("uuid="), "{text}");
        assert!(text.contains("inferprobe_nvml_up 0\n"), "{text}");
    }

    #[test]
    fn mean_power_comes_from_the_snapshot() {
        let m = GpuMetrics::new();
        assert_eq!(m.mean_power_usage_watts(), None);
        let mut s = GpuSnapshot::default();
        s.push(GpuFamily::PowerLimit, labels(&["0", "GPU-a"]), 700.0);
        m.publish(s.clone());
        assert_eq!(m.mean_power_usage_watts(), None);
        s.push(GpuFamily::PowerUsage, labels(&["0", "GPU-a"]), 250.5);
        s.push(GpuFamily::PowerUsage, labels(&["1", "GPU-b"]), 49.5);
        m.publish(s);
        assert_eq!(m.mean_power_usage_watts(), Some(150.0));
        // Unregistered and registered handles read the same way; a clone shares the snapshot.
        let clone = m.clone();
        m.publish(GpuSnapshot::default());
        assert_eq!(clone.mean_power_usage_watts(), None);
    }

    #[test]
    fn a_scrape_during_refreshes_never_mixes_two_refreshes() {
        const REFRESHES: u32 = 2_000;
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).expect("registers");
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let m = m.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                for k in 1..=REFRESHES {
                    m.publish(uniform(f64::from(k), 4));
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut scrapes = 0u32;
        let mut last = 0.0;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let families = registry.gather();
            let values: Vec<f64> = families
                .iter()
                .flat_map(|f| f.get_metric().iter())
                .map(|m| m.get_gauge().get_value() + m.get_counter().get_value())
                .collect();
            if let Some(first) = values.first() {
                assert_eq!(families.len(), GpuFamily::ALL.len());
                assert_eq!(values.len(), 19 * 4 + 3);
                assert!(
                    values.iter().all(|v| v == first),
                    "a scrape mixed refreshes: {values:?}"
                );
                assert!(*first >= last, "went back from {last} to {first}");
                last = *first;
                scrapes += 1;
            }
            if finished {
                break;
            }
        }
        writer.join().expect("writer thread");
        assert!(scrapes >= 1);
        assert_eq!(last, f64::from(REFRESHES));
    }
}
