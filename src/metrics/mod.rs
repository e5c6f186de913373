//! PLACEHOLDER: the metrics owner replaces this file (probe and self families).

pub mod gpu;
pub mod server;

use std::collections::BTreeMap;

/// Namespace.
pub const NAMESPACE: &str = "inferprobe";
/// Content type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Skip reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Overlap.
    Overlap,
    /// Concurrency.
    Concurrency,
    /// Budget.
    TokenBudget,
}

/// Error.
#[derive(Debug, thiserror::Error)]
#[error("metrics")]
pub struct MetricsError;

/// Probe families.
pub struct ProbeMetrics;
impl ProbeMetrics {
    /// Register.
    pub fn register(_r: &prometheus::Registry, _b: &BTreeMap<String, Vec<f64>>) -> Result<ProbeMetrics, MetricsError> {
        Ok(ProbeMetrics)
    }
    /// Precreate.
    pub fn precreate(&self, _t: &str, _m: &str, _s: &str) {}
    /// Observe.
    pub fn observe(&self, _o: &crate::probe::Outcome) {}
    /// Skip.
    pub fn skipped(&self, _t: &str, _m: &str, _s: &str, _r: SkipReason) {}
    /// Remove.
    pub fn remove(&self, _t: &str, _m: &str, _s: &str) {}
}
/// Self families.
pub struct SelfMetrics;
impl SelfMetrics {
    /// Register.
    pub fn register(_r: &prometheus::Registry) -> Result<SelfMetrics, MetricsError> {
        Ok(SelfMetrics)
    }
    /// Reload.
    pub fn config_reloaded(&self, _ok: bool, _at: std::time::SystemTime) {}
}
/// Encode.
pub fn encode(_r: &prometheus::Registry) -> String {
    String::new()
}
