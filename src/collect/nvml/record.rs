//! Writes [`DeviceSample`]s into the GPU families. No NVML here: this is tested on hand-built
//! samples.
//!
//! Every refresh writes a full picture: a series not written by the latest refresh (a process
//! that exited, a reading that started failing, a GPU that vanished) is removed, so a scrape
//! never shows a stale value beside fresh ones.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use tracing::{debug, info, warn};

use crate::collect::nvml::sample::{DeviceSample, Reading};
use crate::metrics::gpu::{GpuMetrics, CLOCK_EVENT_REASONS};

/// How often the same failing reading of the same GPU is logged again.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(600);

/// The per-GPU families, so that series can be tracked and removed generically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Family {
    Utilization,
    MemoryUtilization,
    MemoryUsed,
    MemoryFree,
    MemoryTotal,
    Temperature,
    PowerUsage,
    PowerLimit,
    Energy,
    SmClock,
    MemoryClock,
    ClockEvent,
    PcieRx,
    PcieTx,
    EccCorrected,
    EccUncorrected,
    FanSpeed,
    ProcessMemory,
    Info,
}

type LabelSet = Vec<String>;

/// Records samples and remembers what it wrote and what it logged.
pub struct Recorder {
    metrics: GpuMetrics,
    /// Series written by the last refresh, per family.
    live: BTreeMap<Family, BTreeSet<LabelSet>>,
    /// (gpu, reading) pairs already reported as unsupported.
    unsupported_logged: HashSet<(u32, &'static str)>,
    /// When each failing (gpu, reading) was last logged.
    error_logged_at: HashMap<(u32, &'static str), Instant>,
}

/// One refresh in progress.
struct Pass {
    written: BTreeMap<Family, BTreeSet<LabelSet>>,
    errors: u32,
    newly_unsupported: BTreeMap<u32, Vec<&'static str>>,
}

impl Recorder {
    /// A recorder writing into `metrics`.
    pub fn new(metrics: GpuMetrics) -> Recorder {
        Recorder {
            metrics,
            live: BTreeMap::new(),
            unsupported_logged: HashSet::new(),
            error_logged_at: HashMap::new(),
        }
    }

    /// Writes one refresh's samples, removes every series it did not write, and returns the
    /// number of readings that failed (unsupported readings are not failures).
    pub fn record(&mut self, samples: &[DeviceSample], driver_version: &str) -> u32 {
        let mut pass = Pass {
            written: BTreeMap::new(),
            errors: 0,
            newly_unsupported: BTreeMap::new(),
        };
        for s in samples {
            self.record_device(&mut pass, s, driver_version);
        }
        for (gpu, readings) in &pass.newly_unsupported {
            info!(
                gpu = *gpu,
                readings = %readings.join(","),
                "GPU does not support these readings; their series are left out."
            );
        }
        self.sweep(pass.written);
        pass.errors
    }

    /// Removes every per-GPU series (NVML went away).
    pub fn clear(&mut self) {
        self.sweep(BTreeMap::new());
    }

    /// Counts a failure that is not a reading of one GPU (e.g. a GPU handle that could not be
    /// obtained), with the same rate-limited logging.
    pub fn note_device_error(&mut self, gpu: u32, error: &NvmlError) {
        self.log_error(gpu, "device", error);
    }

    fn record_device(&mut self, pass: &mut Pass, s: &DeviceSample, driver_version: &str) {
        let gpu = s.index.to_string();
        let base = || vec![gpu.clone(), s.uuid.clone()];
        let id = s.index;

        let name = match self.check(pass, id, "name", &s.name) {
            Some(n) => n.as_str(),
            None => "unknown",
        };
        self.gauge(
            pass,
            Family::Info,
            vec![
                gpu.clone(),
                s.uuid.clone(),
                name.to_string(),
                driver_version.to_string(),
            ],
            1.0,
        );

        if let Some(&(g, m)) = self.check(pass, id, "utilization", &s.utilization) {
            self.gauge(pass, Family::Utilization, base(), f64::from(g) / 100.0);
            self.gauge(
                pass,
                Family::MemoryUtilization,
                base(),
                f64::from(m) / 100.0,
            );
        }
        if let Some(&(used, free, total)) = self.check(pass, id, "memory", &s.memory) {
            self.gauge(pass, Family::MemoryUsed, base(), used as f64);
            self.gauge(pass, Family::MemoryFree, base(), free as f64);
            self.gauge(pass, Family::MemoryTotal, base(), total as f64);
        }
        if let Some(&t) = self.check(pass, id, "temperature", &s.temperature_c) {
            self.gauge(pass, Family::Temperature, base(), f64::from(t));
        }
        if let Some(&mw) = self.check(pass, id, "power_usage", &s.power_usage_mw) {
            self.gauge(pass, Family::PowerUsage, base(), f64::from(mw) / 1000.0);
        }
        if let Some(&mw) = self.check(pass, id, "power_limit", &s.power_limit_mw) {
            self.gauge(pass, Family::PowerLimit, base(), f64::from(mw) / 1000.0);
        }
        if let Some(&mj) = self.check(pass, id, "energy", &s.energy_mj) {
            self.energy(pass, base(), mj as f64 / 1000.0);
        }
        if let Some(&mhz) = self.check(pass, id, "sm_clock", &s.sm_clock_mhz) {
            self.gauge(pass, Family::SmClock, base(), f64::from(mhz) * 1e6);
        }
        if let Some(&mhz) = self.check(pass, id, "memory_clock", &s.memory_clock_mhz) {
            self.gauge(pass, Family::MemoryClock, base(), f64::from(mhz) * 1e6);
        }
        if let Some(&bits) = self.check(pass, id, "clock_events", &s.clock_events) {
            for (reason, bit) in CLOCK_EVENT_REASONS {
                let active = if bits & bit != 0 { 1.0 } else { 0.0 };
                let labels = vec![gpu.clone(), s.uuid.clone(), reason.to_string()];
                self.gauge(pass, Family::ClockEvent, labels, active);
            }
        }
        if let Some(&kb) = self.check(pass, id, "pcie_rx", &s.pcie_rx_kb) {
            self.gauge(pass, Family::PcieRx, base(), f64::from(kb) * 1024.0);
        }
        if let Some(&kb) = self.check(pass, id, "pcie_tx", &s.pcie_tx_kb) {
            self.gauge(pass, Family::PcieTx, base(), f64::from(kb) * 1024.0);
        }
        if let Some(&n) = self.check(pass, id, "ecc_corrected", &s.ecc_corrected) {
            self.ecc(pass, Family::EccCorrected, base(), n);
        }
        if let Some(&n) = self.check(pass, id, "ecc_uncorrected", &s.ecc_uncorrected) {
            self.ecc(pass, Family::EccUncorrected, base(), n);
        }
        if let Some(fans) = self.check(pass, id, "fans", &s.fans) {
            for (fan, speed) in fans {
                if let Some(&pct) = self.check(pass, id, "fan_speed", speed) {
                    let labels = vec![gpu.clone(), s.uuid.clone(), fan.to_string()];
                    self.gauge(pass, Family::FanSpeed, labels, f64::from(pct) / 100.0);
                }
            }
        }
        if let Some(p) = &s.processes {
            let compute_ok = self
                .check(pass, id, "compute_processes", &p.compute)
                .is_some();
            let graphics_ok = self
                .check(pass, id, "graphics_processes", &p.graphics)
                .is_some();
            if compute_ok || graphics_ok {
                for proc in &p.top {
                    let labels = vec![
                        gpu.clone(),
                        s.uuid.clone(),
                        proc.pid.to_string(),
                        proc.name.clone(),
                    ];
                    self.gauge(pass, Family::ProcessMemory, labels, proc.used_bytes as f64);
                }
            }
        }
    }

    /// The value of a reading, or `None` after noting why there is none.
    fn check<'a, T>(
        &mut self,
        pass: &mut Pass,
        gpu: u32,
        reading: &'static str,
        r: &'a Reading<T>,
    ) -> Option<&'a T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if is_unsupported(e) => {
                if self.unsupported_logged.insert((gpu, reading)) {
                    pass.newly_unsupported.entry(gpu).or_default().push(reading);
                }
                None
            }
            Err(e) => {
                pass.errors += 1;
                self.log_error(gpu, reading, e);
                None
            }
        }
    }

    fn log_error(&mut self, gpu: u32, reading: &'static str, error: &NvmlError) {
        let now = Instant::now();
        let due = match self.error_logged_at.get(&(gpu, reading)) {
            Some(at) => now.duration_since(*at) >= ERROR_LOG_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        self.error_logged_at.insert((gpu, reading), now);
        if matches!(error, NvmlError::GpuLost) {
            warn!(gpu, reading, error = %error, "GPU has fallen off the bus.");
        } else {
            debug!(gpu, reading, error = %error, "NVML reading failed; its series is left out.");
        }
    }

    fn gauge(&self, pass: &mut Pass, family: Family, labels: LabelSet, value: f64) {
        if let Some(vec) = self.gauge_vec(family) {
            vec.with_label_values(&labels).set(value);
        }
        pass.written.entry(family).or_default().insert(labels);
    }

    /// Makes the energy counter equal the device's own counter. The device counter restarts at
    /// driver load; the series then restarts too, which Prometheus reads as a counter reset.
    fn energy(&self, pass: &mut Pass, labels: LabelSet, joules: f64) {
        let vec = &self.metrics.energy_consumed_joules_total;
        let current = vec.with_label_values(&labels).get();
        if joules >= current {
            vec.with_label_values(&labels).inc_by(joules - current);
        } else {
            let _ = vec.remove_label_values(&labels);
            vec.with_label_values(&labels).inc_by(joules);
        }
        pass.written
            .entry(Family::Energy)
            .or_default()
            .insert(labels);
    }

    /// Same as [`Self::energy`] for the ECC counts (volatile counters restart at driver load).
    fn ecc(&self, pass: &mut Pass, family: Family, labels: LabelSet, count: u64) {
        let vec = match family {
            Family::EccCorrected => &self.metrics.ecc_errors_corrected_total,
            _ => &self.metrics.ecc_errors_uncorrected_total,
        };
        let current = vec.with_label_values(&labels).get();
        if count >= current {
            vec.with_label_values(&labels).inc_by(count - current);
        } else {
            let _ = vec.remove_label_values(&labels);
            vec.with_label_values(&labels).inc_by(count);
        }
        pass.written.entry(family).or_default().insert(labels);
    }

    fn gauge_vec(&self, family: Family) -> Option<&prometheus::GaugeVec> {
        let m = &self.metrics;
        Some(match family {
            Family::Utilization => &m.utilization_ratio,
            Family::MemoryUtilization => &m.memory_utilization_ratio,
            Family::MemoryUsed => &m.memory_used_bytes,
            Family::MemoryFree => &m.memory_free_bytes,
            Family::MemoryTotal => &m.memory_total_bytes,
            Family::Temperature => &m.temperature_celsius,
            Family::PowerUsage => &m.power_usage_watts,
            Family::PowerLimit => &m.power_limit_watts,
            Family::SmClock => &m.sm_clock_hertz,
            Family::MemoryClock => &m.memory_clock_hertz,
            Family::ClockEvent => &m.clock_event_active,
            Family::PcieRx => &m.pcie_rx_bytes_per_second,
            Family::PcieTx => &m.pcie_tx_bytes_per_second,
            Family::FanSpeed => &m.fan_speed_ratio,
            Family::ProcessMemory => &m.process_memory_used_bytes,
            Family::Info => &m.info,
            Family::Energy | Family::EccCorrected | Family::EccUncorrected => return None,
        })
    }

    fn remove(&self, family: Family, labels: &LabelSet) {
        // Removing a series that is already gone is harmless, hence the ignored results.
        let _ = match family {
            Family::Energy => self
                .metrics
                .energy_consumed_joules_total
                .remove_label_values(labels),
            Family::EccCorrected => self
                .metrics
                .ecc_errors_corrected_total
                .remove_label_values(labels),
            Family::EccUncorrected => self
                .metrics
                .ecc_errors_uncorrected_total
                .remove_label_values(labels),
            other => match self.gauge_vec(other) {
                Some(v) => v.remove_label_values(labels),
                None => Ok(()),
            },
        };
    }

    fn sweep(&mut self, written: BTreeMap<Family, BTreeSet<LabelSet>>) {
        let empty = BTreeSet::new();
        for (family, old) in &self.live {
            let now = written.get(family).unwrap_or(&empty);
            for labels in old.difference(now) {
                self.remove(*family, labels);
            }
        }
        self.live = written;
    }
}

/// A reading this device or driver will never give: logged once, its series left out. A symbol
/// missing from an older driver library is as permanent as `NotSupported`.
fn is_unsupported(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported | NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::nvml::sample::{ProcessSample, ProcessesSample};
    use crate::metrics::gpu::{
        CLOCK_EVENT_LABELS, FAN_LABELS, GPU_LABELS, INFO_LABELS, PROCESS_LABELS,
    };
    use prometheus::Registry;

    fn sample(index: u32) -> DeviceSample {
        DeviceSample {
            index,
            uuid: format!("GPU-{index}"),
            name: Ok("Test GPU".to_string()),
            utilization: Ok((50, 25)),
            memory: Ok((1024, 3072, 4096)),
            temperature_c: Ok(70),
            power_usage_mw: Ok(123_500),
            power_limit_mw: Ok(300_000),
            energy_mj: Ok(2_500),
            sm_clock_mhz: Ok(1500),
            memory_clock_mhz: Ok(5001),
            clock_events: Ok(0x1 | 0x100),
            pcie_rx_kb: Ok(3),
            pcie_tx_kb: Ok(0),
            ecc_corrected: Ok(4),
            ecc_uncorrected: Ok(1),
            fans: Ok(vec![(0, Ok(30)), (1, Err(NvmlError::NotSupported))]),
            processes: Some(ProcessesSample {
                compute: Ok(()),
                graphics: Err(NvmlError::NotSupported),
                top: vec![
                    ProcessSample {
                        pid: 7,
                        used_bytes: 900,
                        name: "a".to_string(),
                    },
                    ProcessSample {
                        pid: 8,
                        used_bytes: 100,
                        name: "b".to_string(),
                    },
                ],
            }),
        }
    }

    fn setup() -> (Registry, GpuMetrics, Recorder) {
        let registry = Registry::new();
        let metrics = GpuMetrics::register(&registry).unwrap();
        let recorder = Recorder::new(metrics.clone());
        (registry, metrics, recorder)
    }

    /// The value of the series of `name` whose label values (in label-name order of the
    /// family's definition) are `values`, without creating it.
    fn g(registry: &Registry, name: &str, names: &[&str], values: &[&str]) -> Option<f64> {
        let families = registry.gather();
        let fam = families.iter().find(|f| f.name() == name)?;
        let m = fam.get_metric().iter().find(|m| {
            names.iter().zip(values).all(|(n, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *n && l.value() == *v)
            })
        })?;
        Some(match fam.get_field_type() {
            prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
            _ => m.get_gauge().get_value(),
        })
    }

    fn series_count(registry: &Registry, name: &str) -> usize {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map_or(0, |f| f.get_metric().len())
    }

    #[test]
    fn converts_units() {
        let (registry, m, mut r) = setup();
        assert_eq!(r.record(&[sample(0)], "1.0"), 0);
        let l = ["0", "GPU-0"];
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_utilization_ratio",
                &GPU_LABELS,
                &l
            ),
            Some(0.5)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_memory_utilization_ratio",
                &GPU_LABELS,
                &l
            ),
            Some(0.25)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_memory_used_bytes",
                &GPU_LABELS,
                &l
            ),
            Some(1024.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_memory_free_bytes",
                &GPU_LABELS,
                &l
            ),
            Some(3072.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_memory_total_bytes",
                &GPU_LABELS,
                &l
            ),
            Some(4096.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_temperature_celsius",
                &GPU_LABELS,
                &l
            ),
            Some(70.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_power_usage_watts",
                &GPU_LABELS,
                &l
            ),
            Some(123.5)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_power_limit_watts",
                &GPU_LABELS,
                &l
            ),
            Some(300.0)
        );
        assert_eq!(
            m.energy_consumed_joules_total.with_label_values(&l).get(),
            2.5
        );
        assert_eq!(
            g(&registry, "inferprobe_gpu_sm_clock_hertz", &GPU_LABELS, &l),
            Some(1.5e9)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_memory_clock_hertz",
                &GPU_LABELS,
                &l
            ),
            Some(5.001e9)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_clock_event_active",
                &CLOCK_EVENT_LABELS,
                &["0", "GPU-0", "gpu_idle"]
            ),
            Some(1.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_clock_event_active",
                &CLOCK_EVENT_LABELS,
                &["0", "GPU-0", "display_clock_setting"]
            ),
            Some(1.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_clock_event_active",
                &CLOCK_EVENT_LABELS,
                &["0", "GPU-0", "sw_power_cap"]
            ),
            Some(0.0)
        );
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_clock_event_active"),
            9
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_pcie_rx_bytes_per_second",
                &GPU_LABELS,
                &l
            ),
            Some(3072.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_pcie_tx_bytes_per_second",
                &GPU_LABELS,
                &l
            ),
            Some(0.0)
        );
        assert_eq!(m.ecc_errors_corrected_total.with_label_values(&l).get(), 4);
        assert_eq!(
            m.ecc_errors_uncorrected_total.with_label_values(&l).get(),
            1
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_fan_speed_ratio",
                &FAN_LABELS,
                &["0", "GPU-0", "0"]
            ),
            Some(0.3)
        );
        assert_eq!(series_count(&registry, "inferprobe_gpu_fan_speed_ratio"), 1);
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_process_memory_used_bytes",
                &PROCESS_LABELS,
                &["0", "GPU-0", "7", "a"]
            ),
            Some(900.0)
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_info",
                &INFO_LABELS,
                &["0", "GPU-0", "Test GPU", "1.0"]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn unsupported_and_failed_readings_leave_no_series() {
        let (registry, _m, mut r) = setup();
        let mut s = sample(0);
        s.power_usage_mw = Err(NvmlError::NotSupported);
        s.temperature_c = Err(NvmlError::Unknown);
        s.energy_mj = Err(NvmlError::FailedToLoadSymbol("x".to_string()));
        assert_eq!(r.record(&[s], "1.0"), 1);
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_power_usage_watts"),
            0
        );
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_temperature_celsius"),
            0
        );
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_energy_consumed_joules_total"),
            0
        );
        assert!(r.unsupported_logged.contains(&(0, "power_usage")));
        assert!(r.unsupported_logged.contains(&(0, "energy")));
        assert!(r.unsupported_logged.contains(&(0, "graphics_processes")));
        assert!(!r.unsupported_logged.contains(&(0, "temperature")));
    }

    #[test]
    fn stale_series_are_removed() {
        let (registry, _m, mut r) = setup();
        r.record(&[sample(0), sample(1)], "1.0");
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_temperature_celsius"),
            2
        );

        let mut s = sample(0);
        s.temperature_c = Err(NvmlError::Unknown);
        if let Some(p) = &mut s.processes {
            p.top.remove(0);
        }
        r.record(&[s], "1.0");
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_temperature_celsius"),
            0
        );
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_utilization_ratio"),
            1
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_process_memory_used_bytes",
                &PROCESS_LABELS,
                &["0", "GPU-0", "7", "a"]
            ),
            None
        );
        assert_eq!(
            g(
                &registry,
                "inferprobe_gpu_process_memory_used_bytes",
                &PROCESS_LABELS,
                &["0", "GPU-0", "8", "b"]
            ),
            Some(100.0)
        );
        assert_eq!(series_count(&registry, "inferprobe_gpu_info"), 1);

        r.clear();
        assert!(registry.gather().is_empty());
    }

    #[test]
    fn counters_follow_the_device_and_restart_with_it() {
        let (_registry, m, mut r) = setup();
        let l = ["0", "GPU-0"];
        r.record(&[sample(0)], "1.0");
        let mut s = sample(0);
        s.energy_mj = Ok(10_250);
        s.ecc_corrected = Ok(9);
        r.record(&[s], "1.0");
        assert_eq!(
            m.energy_consumed_joules_total.with_label_values(&l).get(),
            10.25
        );
        assert_eq!(m.ecc_errors_corrected_total.with_label_values(&l).get(), 9);

        // Driver reload: the device counters start again from a small value.
        let mut s = sample(0);
        s.energy_mj = Ok(500);
        s.ecc_corrected = Ok(0);
        r.record(&[s], "1.0");
        assert_eq!(
            m.energy_consumed_joules_total.with_label_values(&l).get(),
            0.5
        );
        assert_eq!(m.ecc_errors_corrected_total.with_label_values(&l).get(), 0);
    }

    #[test]
    fn no_process_series_when_both_lists_fail() {
        let (registry, _m, mut r) = setup();
        let mut s = sample(0);
        if let Some(p) = &mut s.processes {
            p.compute = Err(NvmlError::Unknown);
            p.graphics = Err(NvmlError::NotSupported);
        }
        assert_eq!(r.record(&[s], "1.0"), 1);
        assert_eq!(
            series_count(&registry, "inferprobe_gpu_process_memory_used_bytes"),
            0
        );
    }
}
