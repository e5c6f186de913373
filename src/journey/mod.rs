//! Journeys: multi-step probes of one target that carry a conversation from step to step, with
//! tool calls answered by canned results.
//!
//! A journey runs its steps in order, each one model call through the probe engine
//! ([`engine::run_probe`]), with every earlier turn in the request: the prompts, the model's real
//! answers and tool calls, and the configured tool results. The first failing step ends the
//! journey, whose `result` is that step's. Times:
//!
//! - each step has the timings of a single probe (TTFT, ITL, E2E, ...), on its own clock;
//! - the journey's **duration** is the monotonic time from the first step's request to the end
//!   of the last step's stream: the steps' E2E, plus the think time slept between steps, plus
//!   what runs between two requests (reading the rest of a finished body, building the next
//!   request), which is well under a millisecond per step against a local server;
//! - **model time** is the sum of the steps' E2E (think time excluded).

pub mod report;
pub mod schema;

use std::time::{Duration, Instant, SystemTime};

use crate::config::{Journey, Scenario, Step, Target};
use crate::probe::dialect::Message;
use crate::probe::engine::{self, ProbeClient};
use crate::probe::{Outcome, ProbeResult};

/// Most bytes of a step's answer carried into the next request. An honest answer is bounded by
/// `max_tokens`; a server streaming megabytes of text must not grow every later request.
const MAX_CARRIED_ANSWER: usize = 256 * 1024;

/// What a tool call the journey has no canned result for gets back.
const NO_RESULT: &str = r#"{"error":"this tool is not available"}"#;

/// One step's outcome.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    /// The step's name.
    pub step: String,
    /// The pause slept before the step's request (measured).
    pub think: Duration,
    /// The model call's outcome (`scenario` is the journey's name).
    pub outcome: Outcome,
}

/// The outcome of one journey run.
#[derive(Clone, Debug)]
pub struct JourneyOutcome {
    /// Target name.
    pub target: String,
    /// Model name.
    pub model: String,
    /// Journey name.
    pub journey: String,
    /// `success`, or the failing step's result.
    pub result: ProbeResult,
    /// The failing step's name.
    pub failed_step: Option<String>,
    /// The failing step's error, as redacted by the engine.
    pub error: Option<String>,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// First request sent to the end of the last stream reached (think time included); for a
    /// failed journey, to the moment its failing step ended.
    pub duration: Duration,
    /// Think time slept between steps.
    pub think: Duration,
    /// The steps that ran, in order.
    pub steps: Vec<StepOutcome>,
}

impl JourneyOutcome {
    /// Model calls made.
    pub fn model_calls(&self) -> usize {
        self.steps.len()
    }

    /// Sum of the steps' E2E (the time spent waiting on the model); `None` unless every step
    /// completed.
    pub fn model_time(&self) -> Option<Duration> {
        self.steps.iter().map(|s| s.outcome.e2e).sum()
    }

    /// Input tokens of all steps; `None` when no step reported any.
    pub fn input_tokens(&self) -> Option<u64> {
        self.steps
            .iter()
            .filter_map(|s| s.outcome.input_tokens)
            .reduce(|a, b| a.saturating_add(b))
    }

    /// Output tokens of all steps.
    pub fn output_tokens(&self) -> u64 {
        self.steps.iter().map(|s| s.outcome.output_tokens).sum()
    }

    /// Cost of all steps whose cost is known; `None` when none is.
    pub fn cost_usd(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter_map(|s| s.outcome.recordable_cost())
            .reduce(|a, b| a + b)
    }

    /// The step whose outcome tells the schedule about a rate limit: the failing one.
    pub fn last_outcome(&self) -> Option<&Outcome> {
        self.steps.last().map(|s| &s.outcome)
    }
}

/// The request of one step: the conversation so far as a scenario of the journey's name.
fn step_scenario(journey: &Journey, step: &Step, messages: Vec<Message>) -> Scenario {
    Scenario {
        name: journey.name.clone(),
        messages,
        max_tokens: step.max_tokens,
        temperature: journey.temperature,
        stop: Vec::new(),
        extra_body: journey.extra_body.clone(),
        // The journey bust the cache once, on its first prompt; later steps share that prefix.
        cache_bust: false,
        checks: step.checks.clone(),
        tools: step.tools.clone(),
        headers: step.headers.clone(),
    }
}

/// Runs `journey` against `target` (base URL resolved). Never panics and never returns an error:
/// a failing step is the journey's result.
pub async fn run_journey(
    client: &ProbeClient,
    target: &Target,
    base_url: &str,
    journey: &Journey,
) -> JourneyOutcome {
    run_journey_within(client, target, base_url, journey, None).await
}

/// [`run_journey`] that ends by `limit` from now: think time is cut to what is left, and each
/// step's total timeout too (a step started with nothing left ends `timeout_total`).
pub async fn run_journey_within(
    client: &ProbeClient,
    target: &Target,
    base_url: &str,
    journey: &Journey,
    limit: Option<Duration>,
) -> JourneyOutcome {
    let deadline = limit.map(|l| Instant::now() + l);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let started_at = SystemTime::now();
    let mut messages = Vec::new();
    if let Some(system) = &journey.system {
        messages.push(Message {
            role: "system".to_string(),
            content: system.clone(),
            ..Default::default()
        });
    }
    let nonce = journey
        .cache_bust
        .then(|| format!("[probe {:016x}] ", rand::random::<u64>()));
    let mut steps: Vec<StepOutcome> = Vec::with_capacity(journey.steps.len());
    let mut first_start: Option<Instant> = None;
    let mut think_total = Duration::ZERO;
    for (i, step) in journey.steps.iter().enumerate() {
        let mut think = Duration::ZERO;
        if i > 0 && !step.think_time.is_zero() {
            let t0 = Instant::now();
            let pause = left().map_or(step.think_time, |l| l.min(step.think_time));
            tokio::time::sleep(pause).await;
            think = t0.elapsed();
            think_total += think;
        }
        if let Some(prompt) = &step.prompt {
            let content = match (i, &nonce) {
                (0, Some(n)) => format!("{n}{prompt}"),
                _ => prompt.clone(),
            };
            messages.push(Message {
                role: "user".to_string(),
                content,
                ..Default::default()
            });
        }
        let scenario = step_scenario(journey, step, messages.clone());
        let outcome = engine::run_probe_within(client, target, base_url, &scenario, left()).await;
        first_start.get_or_insert(outcome.started);
        let ok = outcome.result.is_success();
        if ok {
            let mut content = outcome.answer.clone();
            if content.len() > MAX_CARRIED_ANSWER {
                let mut cut = MAX_CARRIED_ANSWER;
                while !content.is_char_boundary(cut) {
                    cut -= 1;
                }
                content.truncate(cut);
            }
            messages.push(Message {
                role: "assistant".to_string(),
                content,
                tool_calls: outcome.tool_calls.clone(),
                ..Default::default()
            });
            if let Some(result) = &step.tool_result {
                let expected = step.checks.expect_tool.as_ref().map(|t| t.name.as_str());
                for call in &outcome.tool_calls {
                    let content = if Some(call.name.as_str()) == expected {
                        result.clone()
                    } else {
                        NO_RESULT.to_string()
                    };
                    messages.push(Message {
                        role: "tool".to_string(),
                        content,
                        tool_call_id: Some(call.id.clone()),
                        tool_name: Some(call.name.clone()),
                        ..Default::default()
                    });
                }
            }
        }
        steps.push(StepOutcome {
            step: step.name.clone(),
            think,
            outcome,
        });
        if !ok {
            break;
        }
    }
    let (result, failed_step, error) = match steps.last() {
        Some(s) if !s.outcome.result.is_success() => (
            s.outcome.result,
            Some(s.step.clone()),
            s.outcome.error.clone(),
        ),
        _ => (ProbeResult::Success, None, None),
    };
    let duration = match (first_start, steps.last()) {
        (Some(first), Some(last)) => {
            let o = &last.outcome;
            let end = o.started + o.e2e.unwrap_or(o.elapsed);
            end.saturating_duration_since(first)
        }
        _ => Duration::ZERO,
    };
    JourneyOutcome {
        target: target.name.clone(),
        model: target.model.clone(),
        journey: journey.name.clone(),
        result,
        failed_step,
        error,
        started_at,
        duration,
        think: think_total,
        steps,
    }
}
