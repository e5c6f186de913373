//! Live behaviour changes: a partial JSON object merged into the current config.

use serde_json::Value;

use crate::config::simulator::SimulatorConfig;

/// Merges `patch` (same field names as the config; `faults` merged field by field) into
/// `current` and validates the result. The error names the offending field.
pub fn apply_patch(current: &SimulatorConfig, patch: &Value) -> Result<SimulatorConfig, String> {
    let Value::Object(patch) = patch else {
        return Err("the body must be a JSON object, e.g. {\"ttft\": \"2s\"}".to_string());
    };
    let mut merged = serde_json::to_value(current)
        .map_err(|e| format!("cannot serialize the current behaviour: {e}"))?;
    let Value::Object(base) = &mut merged else {
        return Err("the current behaviour is not a JSON object".to_string());
    };
    for (k, v) in patch {
        if k == "api_key" {
            continue;
        }
        match (base.get_mut(k), v) {
            (Some(Value::Object(old)), Value::Object(new)) if k == "faults" => {
                for (fk, fv) in new {
                    old.insert(fk.clone(), fv.clone());
                }
            }
            // `null` clears an optional field (served_model, seed).
            (_, Value::Null) => {
                base.remove(k);
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    let mut next: SimulatorConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    next.api_key = match patch.get("api_key") {
        None => current.api_key.clone(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("api_key: {e}"))?,
    };
    if next.listen != current.listen {
        return Err("listen: cannot be changed while the simulator runs".to_string());
    }
    let problems = next.validate();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems
            .into_iter()
            .map(|(path, msg)| format!("{path}: {msg}"))
            .collect();
        return Err(msgs.join("; "));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::simulator::{Dist, SimApiKey};
    use serde_json::json;
    use std::time::Duration;

    fn base() -> SimulatorConfig {
        SimulatorConfig {
            api_key: Some(SimApiKey::new("k".to_string())),
            served_model: Some("other".to_string()),
            ..SimulatorConfig::default()
        }
    }

    #[test]
    fn changes_only_the_given_fields() {
        let mut c = base();
        c.faults.rate_limited = 0.2;
        let n = apply_patch(
            &c,
            &json!({"ttft": "2s", "faults": {"http_5xx": 0.5}, "itl": {"dist": "uniform", "min": "1ms", "max": "3ms"}}),
        )
        .unwrap();
        assert_eq!(n.ttft, Dist::Fixed(Duration::from_secs(2)));
        assert_eq!(
            n.itl,
            Dist::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(3)
            }
        );
        assert_eq!((n.faults.http_5xx, n.faults.rate_limited), (0.5, 0.2));
        assert_eq!(n.api_key, c.api_key);
        assert_eq!(n.served_model.as_deref(), Some("other"));
        assert_eq!(n.output_tokens, c.output_tokens);
    }

    #[test]
    fn null_clears_and_api_key_can_change() {
        let n = apply_patch(&base(), &json!({"served_model": null, "api_key": null})).unwrap();
        assert_eq!((n.served_model, n.api_key), (None, None));
        let n = apply_patch(&base(), &json!({"api_key": "new"})).unwrap();
        assert_eq!(n.api_key.as_ref().map(SimApiKey::expose), Some("new"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = |p: Value| apply_patch(&base(), &p).unwrap_err();
        assert_eq!(
            e(json!({"faults": {"http_5xx": 2.0}})),
            "faults.http_5xx: must be a probability between 0 and 1, got 2"
        );
        assert!(e(json!({"ttft": "soon"})).starts_with("ttft: invalid duration \"soon\""));
        assert!(e(json!({"slots": -1})).starts_with("slots: invalid value"));
        assert!(e(json!({"ttfb": "1s"})).contains("unknown field `ttfb`"));
        let msg = e(json!({"faults": {"nope": 1}}));
        assert!(
            msg.starts_with("faults.nope: unknown field `nope`"),
            "{msg}"
        );
        assert_eq!(
            e(json!({"listen": "127.0.0.1:9"})),
            "listen: cannot be changed while the simulator runs"
        );
        assert!(e(json!([1])).starts_with("the body must be a JSON object"));
    }
}
