//! Collectors of the machine's side: NVIDIA GPUs (NVML) and local inference servers' `/metrics`.
//! Collectors know nothing of probes.

pub mod nvml;
pub mod server;
