//! The `gpus:` block. PLACEHOLDER: the NVML owner replaces this file.

use serde::Deserialize;

/// NVML GPU sampling.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpusConfig {}
