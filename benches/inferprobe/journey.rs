//! What a journey adds to its steps: the time between one step's end of stream and the next
//! step's request that is neither a step's E2E nor think time (reading the rest of the finished
//! body, the checks, carrying the conversation, building the next request), measured with the
//! journey's own clock on real journeys against an in-process simulator.

use std::time::Duration;

use anyhow::{bail, Context};
use inferprobe::config::Loaded;
use inferprobe::journey::run_journey;
use inferprobe::probe::engine;
use inferprobe::runtime::simulator_base_url;

use crate::stats::pct;

/// Think time before each step after the first.
pub const THINK: Duration = Duration::from_millis(20);

/// Steps per journey: a tool call, the answer from its result, a follow-up question.
pub const STEPS: usize = 3;

/// A dialect's journeys.
pub struct Row {
    /// The dialect.
    pub dialect: &'static str,
    /// Journeys measured.
    pub journeys: usize,
    /// Overhead per step boundary, sorted.
    pub overhead: Vec<Duration>,
    /// How much longer the think time slept than configured, sorted.
    pub oversleep: Vec<Duration>,
}

impl Row {
    /// `p50 / p99 / max` of a sorted sample, in µs.
    pub fn summary(sorted: &[Duration]) -> [String; 3] {
        let us = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6);
        [
            us(pct(sorted, 0.5)),
            us(pct(sorted, 0.99)),
            us(sorted.last().copied().unwrap_or_default()),
        ]
    }
}

fn config() -> String {
    format!(
        r#"
simulator: {{ttft: 20ms, itl: 2ms, output_tokens: 16, seed: 1}}
journeys:
  agent:
    think_time: {think}ms
    tools:
      get_weather:
        parameters: {{type: object, properties: {{city: {{type: string}}}}, required: [city]}}
    steps:
      - {{name: ask, prompt: Weather in Lisbon?, expect_tool: get_weather, tool_result: {{temp_c: 21}}}}
      - {{name: answer, checks: {{must_contain: ["21"]}}}}
      - {{name: follow-up, prompt: And tomorrow?, tools: []}}
targets:
  - {{name: chat, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [agent]}}
  - {{name: anthropic, dialect: anthropic-messages, base_url: simulator, model: sim-llm, journeys: [agent]}}
"#,
        think = THINK.as_millis()
    )
}

/// Runs `journeys` journeys per target, one at a time.
pub async fn run(journeys: usize) -> anyhow::Result<Vec<Row>> {
    let loaded: Loaded =
        inferprobe::config::load_str(&config(), "bench.yml").map_err(|e| anyhow::anyhow!("{e}"))?;
    let sim = inferprobe::sim::start(loaded.simulator.clone().context("simulator")?)
        .await
        .context("starting the simulator")?;
    let mut rows = Vec::new();
    for t in &loaded.targets {
        let base = simulator_base_url(&sim.base_url(), t.dialect);
        let journey = t.journeys[0].0.clone();
        let client = engine::client_for(&t.timeouts)?;
        let (mut overhead, mut oversleep) = (Vec::new(), Vec::new());
        for i in 0..journeys + 5 {
            let o = run_journey(&client, t, &base, &journey).await;
            if !o.result.is_success() {
                bail!("{} journey failed: {:?} {:?}", t.name, o.result, o.error);
            }
            if i < 5 {
                continue; // warm-up: connection set-up, allocations
            }
            for w in o.steps.windows(2) {
                let (a, b) = (&w[0].outcome, &w[1].outcome);
                let end_a = a.started + a.e2e.context("completed")?;
                let gap = b.started.saturating_duration_since(end_a);
                overhead.push(gap.saturating_sub(w[1].think));
                oversleep.push(w[1].think.saturating_sub(THINK));
            }
        }
        overhead.sort_unstable();
        oversleep.sort_unstable();
        rows.push(Row {
            dialect: t.dialect.as_str(),
            journeys,
            overhead,
            oversleep,
        });
    }
    sim.shutdown().await;
    Ok(rows)
}
