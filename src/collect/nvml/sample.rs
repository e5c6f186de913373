//! Reads one GPU through NVML into a plain [`DeviceSample`]. Every reading keeps its own
//! `Result`, so one unsupported or failing reading never hides the others.

use std::collections::BTreeMap;

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};

/// One reading's result.
pub type Reading<T> = Result<T, NvmlError>;

/// Buffer size for `nvmlSystemGetProcessName`; longer names are cut by NVML.
const PROCESS_NAME_LEN: usize = 256;

/// Most fans read per GPU; a bound on what a confused driver could make one refresh do.
const MAX_FANS: u32 = 16;

/// Everything read from one GPU in one refresh, in NVML's own units.
#[derive(Debug)]
pub struct DeviceSample {
    /// NVML index; the `gpu` label.
    pub index: u32,
    /// `GPU-…` UUID; the `uuid` label.
    pub uuid: String,
    /// Product name.
    pub name: Reading<String>,
    /// GPU and memory utilization, in percent.
    pub utilization: Reading<(u32, u32)>,
    /// Memory (used, free, total), in bytes.
    pub memory: Reading<(u64, u64, u64)>,
    /// Die temperature, in °C.
    pub temperature_c: Reading<u32>,
    /// Power draw, in mW.
    pub power_usage_mw: Reading<u32>,
    /// Enforced power limit, in mW.
    pub power_limit_mw: Reading<u32>,
    /// Energy since driver load, in mJ.
    pub energy_mj: Reading<u64>,
    /// SM clock, in MHz.
    pub sm_clock_mhz: Reading<u32>,
    /// Memory clock, in MHz.
    pub memory_clock_mhz: Reading<u32>,
    /// Active clocks event (throttle) reasons, NVML's raw bit mask.
    pub clock_events: Reading<u64>,
    /// PCIe receive throughput, in KB/s.
    pub pcie_rx_kb: Reading<u32>,
    /// PCIe transmit throughput, in KB/s.
    pub pcie_tx_kb: Reading<u32>,
    /// Volatile corrected ECC errors.
    pub ecc_corrected: Reading<u64>,
    /// Volatile uncorrected ECC errors.
    pub ecc_uncorrected: Reading<u64>,
    /// Fan speeds in percent, by fan index; `Err` when the fan count is unknown.
    pub fans: Reading<Vec<(u32, Reading<u32>)>>,
    /// Processes, when `process_top_n > 0`.
    pub processes: Option<ProcessesSample>,
}

/// The per-process part of a sample.
#[derive(Debug)]
pub struct ProcessesSample {
    /// Whether the compute process list could be read.
    pub compute: Reading<()>,
    /// Whether the graphics process list could be read.
    pub graphics: Reading<()>,
    /// The top processes by memory, largest first.
    pub top: Vec<ProcessSample>,
}

/// One process using a GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSample {
    /// Process id.
    pub pid: u32,
    /// Device memory used, in bytes.
    pub used_bytes: u64,
    /// Executable name without its directory (`unknown` when NVML cannot tell).
    pub name: String,
}

/// Reads every reading of GPU `index`. Fails only when the GPU cannot be addressed at all (no
/// handle or no UUID), since its series could not be labelled.
pub fn sample_device(nvml: &Nvml, index: u32, top_n: usize) -> Result<DeviceSample, NvmlError> {
    let device = nvml.device_by_index(index)?;
    let uuid = device.uuid()?;
    Ok(DeviceSample {
        index,
        uuid,
        name: device.name(),
        utilization: device.utilization_rates().map(|u| (u.gpu, u.memory)),
        memory: device.memory_info().map(|m| (m.used, m.free, m.total)),
        temperature_c: device.temperature(TemperatureSensor::Gpu),
        power_usage_mw: device.power_usage(),
        power_limit_mw: device.enforced_power_limit(),
        energy_mj: device.total_energy_consumption(),
        sm_clock_mhz: device.clock_info(Clock::SM),
        memory_clock_mhz: device.clock_info(Clock::Memory),
        clock_events: device.current_throttle_reasons().map(|r| r.bits()),
        pcie_rx_kb: device.pcie_throughput(PcieUtilCounter::Receive),
        pcie_tx_kb: device.pcie_throughput(PcieUtilCounter::Send),
        ecc_corrected: device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
        ecc_uncorrected: device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
        fans: device.num_fans().map(|n| {
            (0..n.min(MAX_FANS))
                .map(|i| (i, device.fan_speed(i)))
                .collect()
        }),
        processes: (top_n > 0).then(|| sample_processes(nvml, &device, top_n)),
    })
}

fn sample_processes(nvml: &Nvml, device: &Device<'_>, top_n: usize) -> ProcessesSample {
    let compute = device.running_compute_processes();
    let graphics = device.running_graphics_processes();
    let lists: Vec<&[ProcessInfo]> = [&compute, &graphics]
        .into_iter()
        .filter_map(|r| r.as_ref().ok().map(Vec::as_slice))
        .collect();
    let top = top_processes(&lists, top_n)
        .into_iter()
        .map(|(pid, used_bytes)| ProcessSample {
            pid,
            used_bytes,
            name: nvml
                .sys_process_name(pid, PROCESS_NAME_LEN)
                .map(|n| short_process_name(&n))
                .unwrap_or_else(|_| "unknown".to_string()),
        })
        .collect();
    ProcessesSample {
        compute: compute.map(|_| ()),
        graphics: graphics.map(|_| ()),
        top,
    }
}

/// The `n` processes using the most memory across the lists, largest first (ties by pid). A
/// process with both a compute and a graphics context appears in both lists with the same
/// allocation, so it is counted once, with its larger figure. Processes whose usage NVML cannot
/// report are left out.
pub fn top_processes(lists: &[&[ProcessInfo]], n: usize) -> Vec<(u32, u64)> {
    let mut by_pid: BTreeMap<u32, u64> = BTreeMap::new();
    for p in lists.iter().flat_map(|l| l.iter()) {
        if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
            let e = by_pid.entry(p.pid).or_insert(0);
            *e = (*e).max(bytes);
        }
    }
    let mut v: Vec<(u32, u64)> = by_pid.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// `/usr/bin/python3` → `python3`: the label stays short and free of install paths.
pub fn short_process_name(full: &str) -> String {
    let base = full.trim().rsplit('/').next().unwrap_or("");
    if base.is_empty() {
        "unknown".to_string()
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, used: Option<u64>) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: match used {
                Some(b) => UsedGpuMemory::Used(b),
                None => UsedGpuMemory::Unavailable,
            },
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    #[test]
    fn top_processes_merges_sorts_and_truncates() {
        let compute = [p(10, Some(100)), p(11, Some(300)), p(12, None)];
        let graphics = [p(10, Some(100)), p(13, Some(300)), p(14, Some(5))];
        let lists: [&[ProcessInfo]; 2] = [&compute, &graphics];
        assert_eq!(
            top_processes(&lists, 10),
            vec![(11, 300), (13, 300), (10, 100), (14, 5)]
        );
        assert_eq!(top_processes(&lists, 2), vec![(11, 300), (13, 300)]);
        assert_eq!(top_processes(&lists, 0), vec![]);
        assert_eq!(top_processes(&[], 3), vec![]);
    }

    #[test]
    fn short_names() {
        assert_eq!(short_process_name("/usr/bin/python3"), "python3");
        assert_eq!(short_process_name("vllm"), "vllm");
        assert_eq!(short_process_name(""), "unknown");
        assert_eq!(short_process_name("/opt/"), "unknown");
    }
}
