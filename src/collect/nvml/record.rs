//! Turns one refresh's [`DeviceSample`]s into the per-GPU points of a [`GpuSnapshot`]. No NVML
//! here: this is tested on hand-built samples.
//!
//! Every refresh builds a full picture from scratch, so a series the latest refresh did not write
//! (a process that exited, a reading that started failing, a GPU that vanished) is simply absent
//! from the published snapshot, and a scrape never shows a stale value beside fresh ones. What
//! lives from one refresh to the next is only the bookkeeping of what was logged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use tracing::{debug, info, warn};

use crate::collect::nvml::sample::{DeviceSample, Reading};
use crate::metrics::gpu::{GpuFamily, GpuSnapshot, CLOCK_EVENT_REASONS};

/// How often the same failing reading of the same GPU is logged again.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(600);

type LabelSet = Vec<String>;

/// Records samples into snapshots and remembers what it logged.
#[derive(Default)]
pub struct Recorder {
    /// (gpu, reading) pairs already reported as unsupported.
    unsupported_logged: HashSet<(u32, &'static str)>,
    /// When each failing (gpu, reading) was last logged.
    error_logged_at: HashMap<(u32, &'static str), Instant>,
}

/// One refresh in progress.
struct Pass<'a> {
    snapshot: &'a mut GpuSnapshot,
    errors: u32,
    newly_unsupported: BTreeMap<u32, Vec<&'static str>>,
}

impl Recorder {
    /// A recorder that has logged nothing yet.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Adds one refresh's per-GPU points to `snapshot` and returns the number of readings that
    /// failed (unsupported readings are not failures).
    ///
    /// Label sets are unique by construction (one GPU index per sample, fixed reasons, fan
    /// indices, processes merged by pid), so every series appears once.
    pub fn record(
        &mut self,
        samples: &[DeviceSample],
        driver_version: &str,
        snapshot: &mut GpuSnapshot,
    ) -> u32 {
        let mut pass = Pass {
            snapshot,
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
        pass.errors
    }

    /// Counts a failure that is not a reading of one GPU (e.g. a GPU handle that could not be
    /// obtained), with the same rate-limited logging.
    pub fn note_device_error(&mut self, gpu: u32, error: &NvmlError) {
        self.log_error(gpu, "device", error);
    }

    fn record_device(&mut self, pass: &mut Pass<'_>, s: &DeviceSample, driver_version: &str) {
        let gpu = s.index.to_string();
        let base = || vec![gpu.clone(), s.uuid.clone()];
        let id = s.index;

        let name = match self.check(pass, id, "name", &s.name) {
            Some(n) => n.as_str(),
            None => "unknown",
        };
        point(
            pass,
            GpuFamily::Info,
            vec![
                gpu.clone(),
                s.uuid.clone(),
                name.to_string(),
                driver_version.to_string(),
            ],
            1.0,
        );

        if let Some(&(g, m)) = self.check(pass, id, "utilization", &s.utilization) {
            point(pass, GpuFamily::Utilization, base(), f64::from(g) / 100.0);
            point(
                pass,
                GpuFamily::MemoryUtilization,
                base(),
                f64::from(m) / 100.0,
            );
        }
        if let Some(&(used, free, total)) = self.check(pass, id, "memory", &s.memory) {
            point(pass, GpuFamily::MemoryUsed, base(), used as f64);
            point(pass, GpuFamily::MemoryFree, base(), free as f64);
            point(pass, GpuFamily::MemoryTotal, base(), total as f64);
        }
        if let Some(&t) = self.check(pass, id, "temperature", &s.temperature_c) {
            point(pass, GpuFamily::Temperature, base(), f64::from(t));
        }
        if let Some(&mw) = self.check(pass, id, "power_usage", &s.power_usage_mw) {
            point(pass, GpuFamily::PowerUsage, base(), f64::from(mw) / 1000.0);
        }
        if let Some(&mw) = self.check(pass, id, "power_limit", &s.power_limit_mw) {
            point(pass, GpuFamily::PowerLimit, base(), f64::from(mw) / 1000.0);
        }
        // The counters carry the device's own counts as read now. They restart when the driver
        // is reloaded; the series then goes down, which Prometheus reads as a counter reset.
        if let Some(&mj) = self.check(pass, id, "energy", &s.energy_mj) {
            point(pass, GpuFamily::Energy, base(), mj as f64 / 1000.0);
        }
        if let Some(&mhz) = self.check(pass, id, "sm_clock", &s.sm_clock_mhz) {
            point(pass, GpuFamily::SmClock, base(), f64::from(mhz) * 1e6);
        }
        if let Some(&mhz) = self.check(pass, id, "memory_clock", &s.memory_clock_mhz) {
            point(pass, GpuFamily::MemoryClock, base(), f64::from(mhz) * 1e6);
        }
        if let Some(&bits) = self.check(pass, id, "clock_events", &s.clock_events) {
            for (reason, bit) in CLOCK_EVENT_REASONS {
                let active = if bits & bit != 0 { 1.0 } else { 0.0 };
                let labels = vec![gpu.clone(), s.uuid.clone(), reason.to_string()];
                point(pass, GpuFamily::ClockEvent, labels, active);
            }
        }
        if let Some(&kb) = self.check(pass, id, "pcie_rx", &s.pcie_rx_kb) {
            point(pass, GpuFamily::PcieRx, base(), f64::from(kb) * 1024.0);
        }
        if let Some(&kb) = self.check(pass, id, "pcie_tx", &s.pcie_tx_kb) {
            point(pass, GpuFamily::PcieTx, base(), f64::from(kb) * 1024.0);
        }
        if let Some(&n) = self.check(pass, id, "ecc_corrected", &s.ecc_corrected) {
            point(pass, GpuFamily::EccCorrected, base(), n as f64);
        }
        if let Some(&n) = self.check(pass, id, "ecc_uncorrected", &s.ecc_uncorrected) {
            point(pass, GpuFamily::EccUncorrected, base(), n as f64);
        }
        if let Some(fans) = self.check(pass, id, "fans", &s.fans) {
            for (fan, speed) in fans {
                if let Some(&pct) = self.check(pass, id, "fan_speed", speed) {
                    let labels = vec![gpu.clone(), s.uuid.clone(), fan.to_string()];
                    point(pass, GpuFamily::FanSpeed, labels, f64::from(pct) / 100.0);
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
                    point(
                        pass,
                        GpuFamily::ProcessMemory,
                        labels,
                        proc.used_bytes as f64,
                    );
                }
            }
        }
    }

    /// The value of a reading, or `None` after noting why there is none.
    fn check<'a, T>(
        &mut self,
        pass: &mut Pass<'_>,
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
}

fn point(pass: &mut Pass<'_>, family: GpuFamily, labels: LabelSet, value: f64) {
    pass.snapshot.push(family, labels, value);
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

    /// One refresh of `samples` into a fresh snapshot, and the error count.
    fn record(r: &mut Recorder, samples: &[DeviceSample]) -> (GpuSnapshot, u32) {
        let mut snapshot = GpuSnapshot::default();
        let errors = r.record(samples, "1.0", &mut snapshot);
        (snapshot, errors)
    }

    /// The value of the point of `family` whose label values are `values`.
    fn v(s: &GpuSnapshot, family: GpuFamily, values: &[&str]) -> Option<f64> {
        let found: Vec<f64> = s
            .points(family)
            .iter()
            .filter(|p| p.labels == values)
            .map(|p| p.value)
            .collect();
        assert!(found.len() <= 1, "{family:?}{values:?} appears twice");
        found.first().copied()
    }

    fn n(s: &GpuSnapshot, family: GpuFamily) -> usize {
        s.points(family).len()
    }

    #[test]
    fn converts_units() {
        let mut r = Recorder::new();
        let (s, errors) = record(&mut r, &[sample(0)]);
        assert_eq!(errors, 0);
        let l = ["0", "GPU-0"];
        for (family, want) in [
            (GpuFamily::Utilization, 0.5),
            (GpuFamily::MemoryUtilization, 0.25),
            (GpuFamily::MemoryUsed, 1024.0),
            (GpuFamily::MemoryFree, 3072.0),
            (GpuFamily::MemoryTotal, 4096.0),
            (GpuFamily::Temperature, 70.0),
            (GpuFamily::PowerUsage, 123.5),
            (GpuFamily::PowerLimit, 300.0),
            (GpuFamily::Energy, 2.5),
            (GpuFamily::SmClock, 1.5e9),
            (GpuFamily::MemoryClock, 5.001e9),
            (GpuFamily::PcieRx, 3072.0),
            (GpuFamily::PcieTx, 0.0),
            (GpuFamily::EccCorrected, 4.0),
            (GpuFamily::EccUncorrected, 1.0),
        ] {
            assert_eq!(v(&s, family, &l), Some(want), "{family:?}");
            assert_eq!(n(&s, family), 1, "{family:?}");
        }
        let reason = |r: &str| v(&s, GpuFamily::ClockEvent, &["0", "GPU-0", r]);
        assert_eq!(reason("gpu_idle"), Some(1.0));
        assert_eq!(reason("display_clock_setting"), Some(1.0));
        assert_eq!(reason("sw_power_cap"), Some(0.0));
        assert_eq!(n(&s, GpuFamily::ClockEvent), 9);
        assert_eq!(v(&s, GpuFamily::FanSpeed, &["0", "GPU-0", "0"]), Some(0.3));
        assert_eq!(n(&s, GpuFamily::FanSpeed), 1);
        assert_eq!(
            v(&s, GpuFamily::ProcessMemory, &["0", "GPU-0", "7", "a"]),
            Some(900.0)
        );
        assert_eq!(
            v(&s, GpuFamily::ProcessMemory, &["0", "GPU-0", "8", "b"]),
            Some(100.0)
        );
        assert_eq!(
            v(&s, GpuFamily::Info, &["0", "GPU-0", "Test GPU", "1.0"]),
            Some(1.0)
        );
        // The recorder writes per-GPU families only; the collector adds its health.
        assert_eq!(n(&s, GpuFamily::NvmlUp), 0);
        assert_eq!(s.families.len(), 19);
        for (family, points) in &s.families {
            for p in points {
                assert_eq!(p.labels.len(), family.label_names().len(), "{family:?}");
            }
        }
    }

    #[test]
    fn unsupported_and_failed_readings_leave_no_series() {
        let mut r = Recorder::new();
        let mut s = sample(0);
        s.power_usage_mw = Err(NvmlError::NotSupported);
        s.temperature_c = Err(NvmlError::Unknown);
        s.energy_mj = Err(NvmlError::FailedToLoadSymbol("x".to_string()));
        s.name = Err(NvmlError::Unknown);
        let (snap, errors) = record(&mut r, &[s]);
        assert_eq!(errors, 2);
        assert_eq!(n(&snap, GpuFamily::PowerUsage), 0);
        assert_eq!(n(&snap, GpuFamily::Temperature), 0);
        assert_eq!(n(&snap, GpuFamily::Energy), 0);
        assert_eq!(
            v(&snap, GpuFamily::Info, &["0", "GPU-0", "unknown", "1.0"]),
            Some(1.0)
        );
        assert_eq!(
            v(&snap, GpuFamily::PowerLimit, &["0", "GPU-0"]),
            Some(300.0)
        );
        assert!(r.unsupported_logged.contains(&(0, "power_usage")));
        assert!(r.unsupported_logged.contains(&(0, "energy")));
        assert!(r.unsupported_logged.contains(&(0, "graphics_processes")));
        assert!(!r.unsupported_logged.contains(&(0, "temperature")));
        assert!(r.error_logged_at.contains_key(&(0, "temperature")));
    }

    #[test]
    fn each_refresh_is_a_full_picture() {
        let mut r = Recorder::new();
        let (first, _) = record(&mut r, &[sample(0), sample(1)]);
        assert_eq!(n(&first, GpuFamily::Temperature), 2);

        let mut s = sample(0);
        s.temperature_c = Err(NvmlError::Unknown);
        if let Some(p) = &mut s.processes {
            p.top.remove(0);
        }
        let (snap, errors) = record(&mut r, &[s]);
        assert_eq!(errors, 1);
        assert_eq!(n(&snap, GpuFamily::Temperature), 0);
        assert!(!snap.families.contains_key(&GpuFamily::Temperature));
        assert_eq!(v(&snap, GpuFamily::Utilization, &["0", "GPU-0"]), Some(0.5));
        assert_eq!(n(&snap, GpuFamily::Utilization), 1);
        assert_eq!(
            v(&snap, GpuFamily::ProcessMemory, &["0", "GPU-0", "7", "a"]),
            None
        );
        assert_eq!(
            v(&snap, GpuFamily::ProcessMemory, &["0", "GPU-0", "8", "b"]),
            Some(100.0)
        );
        assert_eq!(n(&snap, GpuFamily::Info), 1);

        let (empty, errors) = record(&mut r, &[]);
        assert_eq!(errors, 0);
        assert!(empty.families.is_empty());
    }

    #[test]
    fn counters_are_the_device_counters() {
        let mut r = Recorder::new();
        let l = ["0", "GPU-0"];
        record(&mut r, &[sample(0)]);
        let mut s = sample(0);
        s.energy_mj = Ok(10_250);
        s.ecc_corrected = Ok(9);
        let (snap, _) = record(&mut r, &[s]);
        assert_eq!(v(&snap, GpuFamily::Energy, &l), Some(10.25));
        assert_eq!(v(&snap, GpuFamily::EccCorrected, &l), Some(9.0));

        // Driver reload: the device counters start again from a small value, and so does the
        // series (a counter reset to Prometheus).
        let mut s = sample(0);
        s.energy_mj = Ok(500);
        s.ecc_corrected = Ok(0);
        let (snap, _) = record(&mut r, &[s]);
        assert_eq!(v(&snap, GpuFamily::Energy, &l), Some(0.5));
        assert_eq!(v(&snap, GpuFamily::EccCorrected, &l), Some(0.0));
        assert_eq!(v(&snap, GpuFamily::EccUncorrected, &l), Some(1.0));
    }

    #[test]
    fn no_process_series_when_both_lists_fail() {
        let mut r = Recorder::new();
        let mut s = sample(0);
        if let Some(p) = &mut s.processes {
            p.compute = Err(NvmlError::Unknown);
            p.graphics = Err(NvmlError::NotSupported);
        }
        let (snap, errors) = record(&mut r, &[s]);
        assert_eq!(errors, 1);
        assert_eq!(n(&snap, GpuFamily::ProcessMemory), 0);
    }
}
