//! Section 2: CPU time the engine spends per 1,000 streamed tokens.
//!
//! The simulator runs as a separate `inferprobe sim` process, so `getrusage(RUSAGE_SELF)` of this
//! process counts only the probing side: request building, HTTP client, SSE framing, decoding,
//! the outcome, and the idle cost of the tokio runtime while it waits for tokens.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use inferprobe::config::Scenario;
use inferprobe::probe::dialect::DialectKind;
use inferprobe::probe::engine;
use inferprobe::runtime::simulator_base_url;

use crate::accuracy::bench_target;
use crate::procs::{cpu_time, spawn_sim};

/// Tokens per response.
pub const TOKENS: u32 = 200;
/// Probes before the measured ones.
const WARMUP: usize = 3;

/// One pacing's result.
pub struct Row {
    /// The simulated inter-token latency.
    pub itl: &'static str,
    /// Measured probes.
    pub probes: usize,
    /// Tokens streamed in the measured probes.
    pub tokens: u64,
    /// Wall time of the measured probes.
    pub wall: Duration,
    /// User CPU time of this process.
    pub user: Duration,
    /// System CPU time of this process.
    pub system: Duration,
}

impl Row {
    /// CPU (user + system) per 1,000 tokens.
    pub fn per_1000(&self) -> Duration {
        let cpu = self.user + self.system;
        if self.tokens == 0 {
            return Duration::ZERO;
        }
        cpu.mul_f64(1000.0 / self.tokens as f64)
    }

    /// CPU as a share of one core over the wall time.
    pub fn core_share(&self) -> f64 {
        (self.user + self.system).as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `probes` sequential probes of `TOKENS` tokens at each pacing against a simulator process.
pub async fn run(probes: usize) -> anyhow::Result<Vec<Row>> {
    let sim = spawn_sim(&["--ttft", "1ms", "--output-tokens", &TOKENS.to_string()])?;
    let dialect = DialectKind::OpenaiChat;
    let base = simulator_base_url(&format!("http://{}", sim.addr), dialect);
    let scenario = Scenario {
        max_tokens: TOKENS * 2,
        ..Scenario::builtin_default()
    };
    let mut rows = Vec::new();
    for itl in ["1ms", "0ms"] {
        let mut target = bench_target(dialect, &base);
        target
            .headers
            .insert("x-sim-itl".to_string(), itl.to_string());
        let client = engine::client_for(&target.timeouts)?;
        for _ in 0..WARMUP {
            engine::run_probe(&client, &target, &base, &scenario).await;
        }
        let (u0, s0) = cpu_time();
        let t0 = Instant::now();
        let mut tokens = 0u64;
        for _ in 0..probes {
            let o = engine::run_probe(&client, &target, &base, &scenario).await;
            if !o.result.is_success() {
                bail!("probe failed: {} {:?}", o.result.as_str(), o.error);
            }
            tokens += o.output_events;
        }
        let wall = t0.elapsed();
        let (u1, s1) = cpu_time();
        ensure!(
            tokens == probes as u64 * u64::from(TOKENS),
            "streamed {tokens} tokens, expected {}",
            probes as u64 * u64::from(TOKENS)
        );
        rows.push(Row {
            itl,
            probes,
            tokens,
            wall,
            user: u1.saturating_sub(u0),
            system: s1.saturating_sub(s0),
        });
    }
    drop(sim);
    Ok(rows)
}
