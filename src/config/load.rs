//! Reading, parsing and validating a config file. PLACEHOLDER: the config owner replaces this.

use super::{ConfigErrors, Loaded};

/// Loads, validates and resolves a config file.
pub fn load(path: &std::path::Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source_name: path.display().to_string(),
        errors: vec![super::ConfigError { path: String::new(), line: None, message: e.to_string() }],
    })?;
    load_str(&text, &path.display().to_string())
}

/// Loads, validates and resolves config text; `source_name` names it in errors.
pub fn load_str(_text: &str, _source_name: &str) -> Result<Loaded, ConfigErrors> {
    todo!("config loader")
}
