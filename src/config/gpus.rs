//! The `gpus:` block: NVIDIA GPU sampling through NVML.
//!
//! ```yaml
//! gpus:
//!   enabled: auto          # auto | true | false
//!   library_path: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
//!   interval: 5s
//!   process_top_n: 5
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::config::types::humantime_serde_compat;

/// NVML GPU sampling.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GpusConfig {
    /// `auto` (default): sample GPUs when NVML is present, one info line when it is not.
    /// `true`: GPUs are expected; a missing NVML is logged as an error (the daemon still runs and
    /// exports `inferprobe_nvml_up 0`). `false`: the collector is not started and no GPU family,
    /// `inferprobe_nvml_up` included, is exported.
    #[serde(default)]
    pub enabled: GpuEnabled,
    /// Path to `libnvidia-ml.so`; omitted, the system's `libnvidia-ml.so.1` is found through the
    /// dynamic loader's search path.
    #[serde(default)]
    pub library_path: Option<String>,
    /// Time between two NVML samples (at least 100ms). A scrape reads the last sample and never
    /// waits on NVML.
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Per GPU, how many processes (largest GPU memory first) get an
    /// `inferprobe_gpu_process_memory_used_bytes` series; 0 turns per-process series off.
    #[serde(default = "default_process_top_n")]
    pub process_top_n: usize,
}

impl Default for GpusConfig {
    fn default() -> Self {
        GpusConfig {
            enabled: GpuEnabled::default(),
            library_path: None,
            interval: default_interval(),
            process_top_n: default_process_top_n(),
        }
    }
}

/// Default for `gpus.interval`.
pub fn default_interval() -> Duration {
    Duration::from_secs(5)
}

/// Default for `gpus.process_top_n`.
pub fn default_process_top_n() -> usize {
    5
}

/// Shortest accepted `gpus.interval`: one NVML pass over a few GPUs takes tens of milliseconds.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Largest accepted `gpus.process_top_n`: each process is one series per GPU.
pub const MAX_PROCESS_TOP_N: usize = 100;

impl GpusConfig {
    /// Every problem in this block, as (path relative to the block, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.interval < MIN_INTERVAL {
            errors.push((
                "interval".to_string(),
                format!(
                    "must be at least 100ms (got {}); one NVML pass takes tens of milliseconds",
                    humantime::format_duration(self.interval)
                ),
            ));
        }
        if let Some(path) = &self.library_path {
            if path.trim().is_empty() {
                errors.push((
                    "library_path".to_string(),
                    "must not be empty; omit the field to use the system's libnvidia-ml.so.1"
                        .to_string(),
                ));
            }
        }
        if self.process_top_n > MAX_PROCESS_TOP_N {
            errors.push((
                "process_top_n".to_string(),
                format!(
                    "must be at most {MAX_PROCESS_TOP_N} (got {}); each process is one series per GPU",
                    self.process_top_n
                ),
            ));
        }
        errors
    }
}

/// Whether GPUs are sampled: `auto`, `true` or `false` in YAML.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpuEnabled {
    /// `auto`: sample when NVML is present; its absence is worth one info line.
    #[default]
    Auto,
    /// `true`: GPUs are expected; a missing NVML is an error in the log and `inferprobe_nvml_up 0`.
    Required,
    /// `false`: the collector does not start.
    Disabled,
}

impl<'de> Deserialize<'de> for GpuEnabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EnabledVisitor;

        impl Visitor<'_> for EnabledVisitor {
            type Value = GpuEnabled;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto`, `true` or `false`")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<GpuEnabled, E> {
                Ok(if v {
                    GpuEnabled::Required
                } else {
                    GpuEnabled::Disabled
                })
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<GpuEnabled, E> {
                match v {
                    "auto" => Ok(GpuEnabled::Auto),
                    "true" => Ok(GpuEnabled::Required),
                    "false" => Ok(GpuEnabled::Disabled),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }

        d.deserialize_any(EnabledVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<GpusConfig, String> {
        serde_saphyr::from_str::<GpusConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = GpusConfig::default();
        assert_eq!(c.enabled, GpuEnabled::Auto);
        assert_eq!(c.library_path, None);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.process_top_n, 5);
        assert!(c.validate().is_empty());
        assert_eq!(parse("{}").unwrap(), c);
    }

    #[test]
    fn enabled_values() {
        assert_eq!(parse("enabled: auto").unwrap().enabled, GpuEnabled::Auto);
        assert_eq!(
            parse("enabled: true").unwrap().enabled,
            GpuEnabled::Required
        );
        assert_eq!(
            parse("enabled: false").unwrap().enabled,
            GpuEnabled::Disabled
        );
        assert_eq!(
            parse("enabled: \"true\"").unwrap().enabled,
            GpuEnabled::Required
        );
        let err = parse("enabled: sometimes").unwrap_err();
        assert!(err.contains("`auto`, `true` or `false`"), "{err}");
    }

    #[test]
    fn all_fields() {
        let c = parse(
            "enabled: true\nlibrary_path: /opt/nvml/libnvidia-ml.so\ninterval: 250ms\nprocess_top_n: 0\n",
        )
        .unwrap();
        assert_eq!(
            c,
            GpusConfig {
                enabled: GpuEnabled::Required,
                library_path: Some("/opt/nvml/libnvidia-ml.so".to_string()),
                interval: Duration::from_millis(250),
                process_top_n: 0,
            }
        );
        assert!(c.validate().is_empty());
    }

    #[test]
    fn unknown_field_rejected() {
        let err = parse("intervall: 5s").unwrap_err();
        assert!(err.contains("intervall"), "{err}");
    }

    #[test]
    fn bad_duration_rejected() {
        let err = parse("interval: often").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = GpusConfig {
            enabled: GpuEnabled::Auto,
            library_path: Some("  ".to_string()),
            interval: Duration::from_millis(50),
            process_top_n: 101,
        };
        assert_eq!(
            c.validate(),
            vec![
                (
                    "interval".to_string(),
                    "must be at least 100ms (got 50ms); one NVML pass takes tens of milliseconds"
                        .to_string()
                ),
                (
                    "library_path".to_string(),
                    "must not be empty; omit the field to use the system's libnvidia-ml.so.1"
                        .to_string()
                ),
                (
                    "process_top_n".to_string(),
                    "must be at most 100 (got 101); each process is one series per GPU".to_string()
                ),
            ]
        );
    }
}
