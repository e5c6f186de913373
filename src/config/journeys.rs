//! Resolution of the `journeys:` section and of targets' journey references.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::load::{one_of, Diag, YamlPath};
use super::resolve::{check_headers, check_label, compile_checks, resolve_refs};
use super::types::{JourneyConfig, StepConfig, TargetConfig};
use super::{ExpectTool, Journey, Step};
use crate::journey::schema;
use crate::probe::dialect::ToolSpec;

/// Most steps in a journey: enough for any agent task a canary should replay, few enough that
/// the `step` label stays small.
pub const MAX_STEPS: usize = 16;

/// Longest think time: a canary journey that waits longer is no longer one task.
const MAX_THINK_TIME: Duration = Duration::from_secs(600);

/// Largest canned tool result, in bytes.
const MAX_TOOL_RESULT: usize = 64 * 1024;

/// Resolves one journey. `None` when any error was recorded.
pub(super) fn resolve_journey(
    name: &str,
    c: &JourneyConfig,
    path: &YamlPath,
    diag: &mut Diag<'_>,
) -> Option<Journey> {
    let before = diag.error_count();
    check_label("journey", name, path, diag);
    let tools = resolve_tools(c, &path.key("tools"), diag);
    if c.steps.is_empty() {
        diag.error(&path.key("steps"), "must list at least one step");
    } else if c.steps.len() > MAX_STEPS {
        diag.error(
            &path.key("steps"),
            format!("at most {MAX_STEPS} steps (got {})", c.steps.len()),
        );
    }
    if c.max_tokens == 0 {
        diag.error(&path.key("max_tokens"), "must be at least 1");
    }
    if !(0.0..=2.0).contains(&c.temperature) {
        diag.error(
            &path.key("temperature"),
            format!("must be between 0 and 2 (got {})", c.temperature),
        );
    }
    if let Some(t) = c.think_time {
        check_think_time(t, &path.key("think_time"), diag);
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut names = HashSet::new();
    for (i, sc) in c.steps.iter().enumerate().take(MAX_STEPS) {
        let p = path.key("steps").index(i);
        if check_label("step", &sc.name, &p.key("name"), diag) && !names.insert(sc.name.as_str()) {
            diag.error(
                &p.key("name"),
                format!("step name {:?} is used twice", sc.name),
            );
        }
        let prev = if i == 0 { None } else { c.steps.get(i - 1) };
        let prev_tools = steps.last().map(|s| s.tools.clone()).unwrap_or_default();
        if let Some(step) = resolve_step(c, sc, prev, prev_tools, i, &tools, &p, diag) {
            steps.push(step);
        }
    }
    if diag.error_count() > before {
        return None;
    }
    Some(Journey {
        name: name.to_string(),
        system: c.system.clone(),
        steps,
        temperature: c.temperature,
        extra_body: c.extra_body.clone(),
        cache_bust: c.cache_bust,
    })
}

fn check_think_time(t: Duration, path: &YamlPath, diag: &mut Diag<'_>) {
    if t > MAX_THINK_TIME {
        diag.error(
            path,
            format!(
                "must be at most {}s (got {}s)",
                MAX_THINK_TIME.as_secs(),
                t.as_secs()
            ),
        );
    }
}

/// The journey's tools, by name, with their schemas checked.
fn resolve_tools(
    c: &JourneyConfig,
    path: &YamlPath,
    diag: &mut Diag<'_>,
) -> BTreeMap<String, ToolSpec> {
    let mut out = BTreeMap::new();
    for (name, t) in &c.tools {
        let p = path.key(name);
        // The strictest common rule (OpenAI, Anthropic, Bedrock): 1-64 of [A-Za-z0-9_-].
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            diag.error(
                &p,
                format!(
                    "tool name {:?} must be 1 to 64 letters, digits, `_` or `-` (what every API \
                     accepts)",
                    crate::probe::clip(name, 70)
                ),
            );
            continue;
        }
        let parameters = t
            .parameters
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        let pp = p.key("parameters");
        if parameters.get("type").and_then(|v| v.as_str()) != Some("object") {
            diag.error(
                &pp,
                "must be a JSON schema of `type: object` (tool arguments are an object in every \
                 API)",
            );
            continue;
        }
        if let Err(e) = schema::supported(&parameters) {
            diag.error(&pp, e);
            continue;
        }
        out.insert(
            name.clone(),
            ToolSpec {
                name: name.clone(),
                description: t.description.clone(),
                parameters,
            },
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn resolve_step(
    c: &JourneyConfig,
    sc: &StepConfig,
    prev: Option<&StepConfig>,
    prev_tools: Vec<ToolSpec>,
    index: usize,
    tools: &BTreeMap<String, ToolSpec>,
    p: &YamlPath,
    diag: &mut Diag<'_>,
) -> Option<Step> {
    let before = diag.error_count();
    let after_tool_result = prev.is_some_and(|s| s.tool_result.is_some());
    match (&sc.prompt, after_tool_result) {
        (None, false) if index == 0 => {
            diag.error(&p.key("prompt"), "the first step needs a prompt")
        }
        (None, false) => diag.error(
            &p.key("prompt"),
            "required: only the step right after a step with `tool_result` may leave it out \
             (it is the model's turn, answering from the tool's result)",
        ),
        (Some(_), true) => diag.error(
            &p.key("prompt"),
            format!(
                "must be left out: steps[{}] sends a tool result, and this step is the model's \
                 turn answering from it",
                index - 1
            ),
        ),
        (Some(prompt), false) if prompt.trim().is_empty() => {
            diag.error(&p.key("prompt"), "must not be empty")
        }
        _ => {}
    }

    let lookup = |name: &str, at: &YamlPath, diag: &mut Diag<'_>| -> Option<ToolSpec> {
        match tools.get(name) {
            Some(t) => Some(t.clone()),
            None if c.tools.contains_key(name) => None, // its own error is recorded
            None => {
                let defined: Vec<&str> = c.tools.keys().map(String::as_str).collect();
                diag.error(
                    at,
                    if defined.is_empty() {
                        format!("unknown tool {name:?}; the journey defines no `tools`")
                    } else {
                        format!(
                            "unknown tool {name:?}, expected one of {}",
                            one_of(&defined)
                        )
                    },
                );
                None
            }
        }
    };
    let mut offered = match &sc.tools {
        None => prev_tools,
        Some(_) => Vec::new(),
    };
    for (j, name) in sc.tools.iter().flatten().enumerate() {
        if let Some(t) = lookup(name, &p.key("tools").index(j), diag) {
            if offered.iter().any(|o: &ToolSpec| o.name == t.name) {
                diag.error(
                    &p.key("tools").index(j),
                    format!("tool {name:?} is listed twice"),
                );
            } else {
                offered.push(t);
            }
        }
    }
    let mut expect_tool = None;
    if let Some(name) = &sc.expect_tool {
        if let Some(t) = lookup(name, &p.key("expect_tool"), diag) {
            match &sc.tools {
                Some(listed) if !listed.contains(name) => diag.error(
                    &p.key("expect_tool"),
                    format!("tool {name:?} is not among this step's `tools`"),
                ),
                _ => {
                    if !offered.iter().any(|o| o.name == t.name) {
                        offered.push(t.clone());
                    }
                }
            }
            expect_tool = Some(ExpectTool {
                name: t.name,
                schema: t.parameters,
            });
        }
    }

    let tool_result = match (&sc.tool_result, &sc.expect_tool) {
        (Some(_), None) => {
            diag.error(
                &p.key("tool_result"),
                "needs `expect_tool`: it is the result of that tool's call",
            );
            None
        }
        (None, Some(_)) if index + 1 < c.steps.len() => {
            diag.error(
                &p.key("tool_result"),
                "required: the next step answers from the tool's result",
            );
            None
        }
        (Some(v), Some(_)) => {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if text.len() > MAX_TOOL_RESULT {
                diag.error(
                    &p.key("tool_result"),
                    format!("at most {MAX_TOOL_RESULT} bytes (got {})", text.len()),
                );
            }
            Some(text)
        }
        (None, _) => None,
    };

    let think_time = if index == 0 {
        if sc.think_time.is_some_and(|t| !t.is_zero()) {
            diag.error(
                &p.key("think_time"),
                "the first step has no think time (a journey starts with its first request)",
            );
        }
        Duration::ZERO
    } else {
        let t = sc.think_time.or(c.think_time).unwrap_or(Duration::ZERO);
        if let Some(own) = sc.think_time {
            check_think_time(own, &p.key("think_time"), diag);
        }
        t
    };
    let max_tokens = sc.max_tokens.unwrap_or(c.max_tokens);
    if sc.max_tokens == Some(0) {
        diag.error(&p.key("max_tokens"), "must be at least 1");
    }
    check_headers(&sc.headers, &p.key("headers"), diag);
    let checks = compile_checks(&sc.checks, &p.key("checks"), diag);
    if diag.error_count() > before {
        return None;
    }
    let mut checks = checks?;
    checks.expect_tool = expect_tool;
    Some(Step {
        name: sc.name.clone(),
        prompt: sc.prompt.clone(),
        tools: offered,
        tool_result,
        think_time,
        max_tokens,
        checks,
        headers: sc.headers.clone(),
    })
}

/// A target's journey references, checked against the journeys defined and the target's
/// dialect.
pub(super) fn resolve_journey_refs(
    t: &TargetConfig,
    path: &YamlPath,
    journeys: &BTreeMap<String, Option<Arc<Journey>>>,
    diag: &mut Diag<'_>,
) -> Vec<(Arc<Journey>, u32)> {
    resolve_refs(
        t,
        &t.journeys,
        "journey",
        journeys,
        path,
        diag,
        |j, p, diag| {
            let name = &j.name;
            if j.uses_tools() && !t.dialect.supports_tools() {
                let with: Vec<&str> = crate::probe::dialect::DialectKind::ALL
                    .iter()
                    .filter(|d| d.supports_tools())
                    .map(|d| d.as_str())
                    .collect();
                diag.error(
                    p,
                    format!(
                        "journey {name:?} offers tools, but the {} API has no tool calls \
                     (dialects with tools: {})",
                        t.dialect.as_str(),
                        with.join(", ")
                    ),
                );
                false
            } else if !t.dialect.spec().reports_model
                && j.steps.iter().any(|s| s.checks.expect_model.is_some())
            {
                diag.error(
                    p,
                    format!(
                        "journey {name:?} checks expect_model, but {} responses never name \
                     their model",
                        t.dialect.as_str()
                    ),
                );
                false
            } else {
                true
            }
        },
    )
}
