//! GPU metric families (NVML): name, help, type and labels. The NVML collector records into
//! them; a scrape only reads them.
//!
//! Every per-GPU family carries `gpu` (NVML index) and `uuid`. A reading the device does not
//! support has no series at all (never a 0). The collector's own health families
//! (`inferprobe_nvml_up`, refresh duration and success) have no labels and appear once the
//! collector has run its first refresh, so nothing GPU-related is exported when it is disabled.

use prometheus::core::Collector;
use prometheus::{CounterVec, GaugeVec, IntCounterVec, Opts, Registry};

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

/// Every GPU family. Cloning is cheap and clones share the series.
#[derive(Clone, Debug)]
pub struct GpuMetrics {
    /// `inferprobe_gpu_utilization_ratio{gpu,uuid}`
    pub utilization_ratio: GaugeVec,
    /// `inferprobe_gpu_memory_utilization_ratio{gpu,uuid}`
    pub memory_utilization_ratio: GaugeVec,
    /// `inferprobe_gpu_memory_used_bytes{gpu,uuid}`
    pub memory_used_bytes: GaugeVec,
    /// `inferprobe_gpu_memory_free_bytes{gpu,uuid}`
    pub memory_free_bytes: GaugeVec,
    /// `inferprobe_gpu_memory_total_bytes{gpu,uuid}`
    pub memory_total_bytes: GaugeVec,
    /// `inferprobe_gpu_temperature_celsius{gpu,uuid}`
    pub temperature_celsius: GaugeVec,
    /// `inferprobe_gpu_power_usage_watts{gpu,uuid}`
    pub power_usage_watts: GaugeVec,
    /// `inferprobe_gpu_power_limit_watts{gpu,uuid}`
    pub power_limit_watts: GaugeVec,
    /// `inferprobe_gpu_energy_consumed_joules_total{gpu,uuid}`
    pub energy_consumed_joules_total: CounterVec,
    /// `inferprobe_gpu_sm_clock_hertz{gpu,uuid}`
    pub sm_clock_hertz: GaugeVec,
    /// `inferprobe_gpu_memory_clock_hertz{gpu,uuid}`
    pub memory_clock_hertz: GaugeVec,
    /// `inferprobe_gpu_clock_event_active{gpu,uuid,reason}`
    pub clock_event_active: GaugeVec,
    /// `inferprobe_gpu_pcie_rx_bytes_per_second{gpu,uuid}`
    pub pcie_rx_bytes_per_second: GaugeVec,
    /// `inferprobe_gpu_pcie_tx_bytes_per_second{gpu,uuid}`
    pub pcie_tx_bytes_per_second: GaugeVec,
    /// `inferprobe_gpu_ecc_errors_corrected_total{gpu,uuid}`
    pub ecc_errors_corrected_total: IntCounterVec,
    /// `inferprobe_gpu_ecc_errors_uncorrected_total{gpu,uuid}`
    pub ecc_errors_uncorrected_total: IntCounterVec,
    /// `inferprobe_gpu_fan_speed_ratio{gpu,uuid,fan}`
    pub fan_speed_ratio: GaugeVec,
    /// `inferprobe_gpu_process_memory_used_bytes{gpu,uuid,pid,process}`
    pub process_memory_used_bytes: GaugeVec,
    /// `inferprobe_gpu_info{gpu,uuid,name,driver_version}`
    pub info: GaugeVec,
    /// `inferprobe_nvml_up` (no labels; absent until the collector's first refresh)
    pub nvml_up: GaugeVec,
    /// `inferprobe_gpu_collector_refresh_duration_seconds` (no labels)
    pub refresh_duration_seconds: GaugeVec,
    /// `inferprobe_gpu_collector_last_refresh_success` (no labels)
    pub last_refresh_success: GaugeVec,
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
    GaugeVec::new(Opts::new(name, help), labels)
}

impl GpuMetrics {
    /// Creates every GPU family and registers it in `registry`.
    pub fn register(registry: &Registry) -> Result<GpuMetrics, prometheus::Error> {
        let m = GpuMetrics {
            utilization_ratio: gauge(
                "inferprobe_gpu_utilization_ratio",
                "Fraction of the last NVML sample period (1/6 s to 1 s) during which one or more kernels ran on the GPU.",
                &GPU_LABELS,
            )?,
            memory_utilization_ratio: gauge(
                "inferprobe_gpu_memory_utilization_ratio",
                "Fraction of the last NVML sample period during which device memory was being read or written.",
                &GPU_LABELS,
            )?,
            memory_used_bytes: gauge(
                "inferprobe_gpu_memory_used_bytes",
                "Device memory allocated by contexts, in bytes (NVML memory info v2).",
                &GPU_LABELS,
            )?,
            memory_free_bytes: gauge(
                "inferprobe_gpu_memory_free_bytes",
                "Device memory not allocated, in bytes (NVML memory info v2).",
                &GPU_LABELS,
            )?,
            memory_total_bytes: gauge(
                "inferprobe_gpu_memory_total_bytes",
                "Installed device memory, in bytes.",
                &GPU_LABELS,
            )?,
            temperature_celsius: gauge(
                "inferprobe_gpu_temperature_celsius",
                "GPU die temperature, in degrees Celsius.",
                &GPU_LABELS,
            )?,
            power_usage_watts: gauge(
                "inferprobe_gpu_power_usage_watts",
                "Power drawn by the board, in watts.",
                &GPU_LABELS,
            )?,
            power_limit_watts: gauge(
                "inferprobe_gpu_power_limit_watts",
                "Power limit the driver enforces on the board, in watts.",
                &GPU_LABELS,
            )?,
            energy_consumed_joules_total: CounterVec::new(
                Opts::new(
                    "inferprobe_gpu_energy_consumed_joules_total",
                    "Energy consumed by the GPU since the driver was last loaded, in joules (the device's own counter).",
                ),
                &GPU_LABELS,
            )?,
            sm_clock_hertz: gauge(
                "inferprobe_gpu_sm_clock_hertz",
                "Current streaming-multiprocessor clock, in hertz.",
                &GPU_LABELS,
            )?,
            memory_clock_hertz: gauge(
                "inferprobe_gpu_memory_clock_hertz",
                "Current memory clock, in hertz.",
                &GPU_LABELS,
            )?,
            clock_event_active: gauge(
                "inferprobe_gpu_clock_event_active",
                "1 while the named reason holds the GPU clocks below their maximum (NVML clocks event / throttle reasons), else 0.",
                &CLOCK_EVENT_LABELS,
            )?,
            pcie_rx_bytes_per_second: gauge(
                "inferprobe_gpu_pcie_rx_bytes_per_second",
                "PCIe data received by the GPU over NVML's 20 ms sample window, in bytes per second (NVML KB taken as 1024 bytes).",
                &GPU_LABELS,
            )?,
            pcie_tx_bytes_per_second: gauge(
                "inferprobe_gpu_pcie_tx_bytes_per_second",
                "PCIe data sent by the GPU over NVML's 20 ms sample window, in bytes per second (NVML KB taken as 1024 bytes).",
                &GPU_LABELS,
            )?,
            ecc_errors_corrected_total: IntCounterVec::new(
                Opts::new(
                    "inferprobe_gpu_ecc_errors_corrected_total",
                    "Single-bit ECC errors corrected since the driver was last loaded (NVML volatile counter).",
                ),
                &GPU_LABELS,
            )?,
            ecc_errors_uncorrected_total: IntCounterVec::new(
                Opts::new(
                    "inferprobe_gpu_ecc_errors_uncorrected_total",
                    "Double-bit ECC errors not corrected since the driver was last loaded (NVML volatile counter).",
                ),
                &GPU_LABELS,
            )?,
            fan_speed_ratio: gauge(
                "inferprobe_gpu_fan_speed_ratio",
                "Intended fan speed as a fraction of the fan's maximum; may exceed 1 on some boards.",
                &FAN_LABELS,
            )?,
            process_memory_used_bytes: gauge(
                "inferprobe_gpu_process_memory_used_bytes",
                "Device memory used by one process, in bytes; only the processes using the most memory per GPU (gpus.process_top_n).",
                &PROCESS_LABELS,
            )?,
            info: gauge(
                "inferprobe_gpu_info",
                "Always 1; the labels name the GPU model and the driver version.",
                &INFO_LABELS,
            )?,
            nvml_up: gauge(
                "inferprobe_nvml_up",
                "1 when NVML was loaded and listed at least one GPU at the last refresh, else 0.",
                &[],
            )?,
            refresh_duration_seconds: gauge(
                "inferprobe_gpu_collector_refresh_duration_seconds",
                "Wall time of the last GPU collector refresh, in seconds.",
                &[],
            )?,
            last_refresh_success: gauge(
                "inferprobe_gpu_collector_last_refresh_success",
                "1 when every reading of the last GPU collector refresh succeeded or is unsupported by the device, else 0.",
                &[],
            )?,
        };
        for c in m.collectors() {
            registry.register(c)?;
        }
        Ok(m)
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.utilization_ratio.clone()),
            Box::new(self.memory_utilization_ratio.clone()),
            Box::new(self.memory_used_bytes.clone()),
            Box::new(self.memory_free_bytes.clone()),
            Box::new(self.memory_total_bytes.clone()),
            Box::new(self.temperature_celsius.clone()),
            Box::new(self.power_usage_watts.clone()),
            Box::new(self.power_limit_watts.clone()),
            Box::new(self.energy_consumed_joules_total.clone()),
            Box::new(self.sm_clock_hertz.clone()),
            Box::new(self.memory_clock_hertz.clone()),
            Box::new(self.clock_event_active.clone()),
            Box::new(self.pcie_rx_bytes_per_second.clone()),
            Box::new(self.pcie_tx_bytes_per_second.clone()),
            Box::new(self.ecc_errors_corrected_total.clone()),
            Box::new(self.ecc_errors_uncorrected_total.clone()),
            Box::new(self.fan_speed_ratio.clone()),
            Box::new(self.process_memory_used_bytes.clone()),
            Box::new(self.info.clone()),
            Box::new(self.nvml_up.clone()),
            Box::new(self.refresh_duration_seconds.clone()),
            Box::new(self.last_refresh_success.clone()),
        ]
    }
}

impl GpuMetrics {
    /// Mean power draw over the GPUs of the last sample, in watts; `None` when no GPU reports it.
    pub fn mean_power_usage_watts(&self) -> Option<f64> {
        use prometheus::core::Collector;
        let values: Vec<f64> = self
            .power_usage_watts
            .collect()
            .iter()
            .flat_map(|mf| mf.get_metric().iter().map(|m| m.get_gauge().get_value()))
            .collect();
        if values.is_empty() {
            return None;
        }
        Some(values.iter().sum::<f64>() / values.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_and_exports_nothing_before_a_refresh() {
        let registry = Registry::new();
        let m = GpuMetrics::register(&registry).unwrap();
        assert!(registry.gather().is_empty());
        // A second registration of the same names is refused.
        assert!(GpuMetrics::register(&registry).is_err());
        m.nvml_up.with_label_values::<&str>(&[]).set(0.0);
        let families = registry.gather();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].name(), "inferprobe_nvml_up");
    }
}
