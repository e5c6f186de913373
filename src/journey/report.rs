//! How `inferprobe probe --journey` shows a journey: a table for people, JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use super::JourneyOutcome;
use crate::probe::clip;
use crate::probe::dialect::DialectKind;
use crate::probe::show::ms;

fn secs(d: Option<Duration>) -> serde_json::Value {
    d.map(|d| serde_json::json!(d.as_secs_f64()))
        .unwrap_or(serde_json::Value::Null)
}

/// The `probe --journey --json` object: the task's totals and each step's probe object (as
/// `probe --json` prints it) with the step's name and think time.
pub fn journey_json(o: &JourneyOutcome, dialect: DialectKind) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = o
        .steps
        .iter()
        .map(|s| {
            let mut v = crate::commands::outcome_json(&s.outcome, dialect);
            if let Some(m) = v.as_object_mut() {
                m.insert("step".into(), s.step.clone().into());
                m.insert("think_seconds".into(), s.think.as_secs_f64().into());
            }
            v
        })
        .collect();
    serde_json::json!({
        "target": o.target,
        "dialect": dialect.as_str(),
        "model": o.model,
        "journey": o.journey,
        "result": o.result.as_str(),
        "failed_step": o.failed_step,
        "error": o.error,
        "duration_seconds": o.duration.as_secs_f64(),
        "think_seconds": o.think.as_secs_f64(),
        "model_seconds": secs(o.model_time()),
        "model_calls": o.model_calls(),
        "input_tokens": o.input_tokens(),
        "output_tokens": o.output_tokens(),
        "cost_usd": o.cost_usd(),
        "steps": steps,
    })
}

/// The `probe --journey` table.
pub fn journey_table(o: &JourneyOutcome, dialect: DialectKind, base_url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "target     {} ({}, {})",
        o.target,
        dialect.as_str(),
        base_url
    );
    let _ = writeln!(s, "model      {}", o.model);
    let _ = writeln!(
        s,
        "journey    {}: {}{}",
        o.journey,
        o.result.as_str(),
        o.failed_step
            .as_deref()
            .map(|st| format!(" at step {st}"))
            .unwrap_or_default()
    );
    if let Some(e) = &o.error {
        let _ = writeln!(s, "error      {e}");
    }
    let _ = writeln!(
        s,
        "duration   {} (model {}, think {}), {} model call{}",
        ms(Some(o.duration)),
        ms(o.model_time()),
        ms(Some(o.think)),
        o.model_calls(),
        if o.model_calls() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "tokens     in {}, out {}",
        o.input_tokens()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        o.output_tokens()
    );
    let _ = writeln!(
        s,
        "cost       {}",
        o.cost_usd()
            .map(|c| format!("${c:.8}"))
            .unwrap_or_else(|| "– (no price configured)".into())
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:<16} {:>10} {:>10} {:>10} {:>7} {:>6}  tool calls / answer",
        "step", "result", "think", "TTFT", "E2E", "in", "out"
    );
    for st in &o.steps {
        let so = &st.outcome;
        let detail = if so.tool_calls.is_empty() {
            format!("{:?}", clip(&so.answer, 40))
        } else {
            so.tool_calls
                .iter()
                .map(|c| format!("{}({})", clip(&c.name, 30), clip(&c.arguments, 40)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "{:<16} {:<16} {:>10} {:>10} {:>10} {:>7} {:>6}  {}",
            clip(&st.step, 16),
            so.result.as_str(),
            ms(Some(st.think)),
            ms(so.ttft),
            ms(so.e2e),
            so.input_tokens
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            so.output_tokens,
            detail
        );
    }
    s
}
