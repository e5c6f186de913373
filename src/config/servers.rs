//! The `servers:` list. PLACEHOLDER: the server-collector owner replaces this file.

use serde::Deserialize;

/// One local inference server whose `/metrics` is scraped.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Unique name; the `server` label.
    pub name: String,
}
