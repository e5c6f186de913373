//! Configuration of the built-in simulated endpoint (the `simulator:` block and `inferprobe sim`).
//! PLACEHOLDER: the simulator owner replaces this file.

use serde::Deserialize;

/// The simulated endpoint's behaviour.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Listen address; `127.0.0.1:0` picks a free port.
    #[serde(default)]
    pub listen: Option<String>,
}
