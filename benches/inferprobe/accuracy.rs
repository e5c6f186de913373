//! Section 1: how far the engine's timings are from the simulator's ground truth.
//!
//! The real engine probes the in-process simulator one probe at a time, so both sides stamp the
//! same monotonic clock and the n-th ground-truth record belongs to the n-th probe. The outcome
//! only carries durations from the probe's own `t_start`, so errors are taken on durations both
//! sides define the same way (token gaps; first token after the first event; first token after
//! the headers). The absolute delay from "simulator handed the token's bytes to the HTTP body" to
//! "engine stamped the chunk" needs `t_start` as an `Instant`: it is estimated as
//! `(instant run_probe returned) − elapsed`, which is late by the work between the last read and
//! the return, so that delay is an upper bound. How late is bounded by the estimate minus the
//! instant `run_probe` was called (which also holds building the request body).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use inferprobe::config::simulator::{Dist, SimulatorConfig};
use inferprobe::config::{Scenario, Target, Timeouts};
use inferprobe::probe::dialect::DialectKind;
use inferprobe::probe::{engine, Outcome};
use inferprobe::runtime::simulator_base_url;

use crate::stats::{ns, signed_ns, ErrorSummary};

/// Probes before the measured ones (connection set-up, first-use allocations).
const WARMUP: usize = 5;
/// Simulated time to first token.
pub const TTFT: Duration = Duration::from_millis(50);
/// Simulated inter-token latency.
pub const ITL: Duration = Duration::from_millis(5);
/// Tokens per response.
pub const TOKENS: u32 = 30;

/// One named error distribution.
pub struct Measure {
    /// What was compared.
    pub name: &'static str,
    /// Its signed errors.
    pub summary: ErrorSummary,
}

/// The result of one dialect's run.
pub struct Report {
    /// The dialect probed.
    pub dialect: DialectKind,
    /// Measured probes.
    pub probes: usize,
    /// Error distributions, in print order.
    pub measures: Vec<Measure>,
}

/// A target for the in-process simulator, as the daemon would resolve it.
pub fn bench_target(dialect: DialectKind, base_url: &str) -> Target {
    let (mut target, _) = inferprobe::commands::adhoc_target(&inferprobe::commands::AdHoc {
        url: Some(base_url),
        dialect: Some(dialect.as_str()),
        model: Some("sim-llm"),
        prompt: None,
        max_tokens: 64,
        api_key_env: None,
        headers: &[],
        no_usage: false,
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            total: Duration::from_secs(30),
        },
    })
    .expect("a valid ad-hoc target");
    target.name = format!("bench-{}", dialect.as_str());
    if dialect.default_auth() == inferprobe::probe::dialect::AuthStyle::AwsSigv4 {
        // A Bedrock API key (bearer): the benchmark must not need AWS credentials.
        target.api_key = Some(inferprobe::config::Secret::new("bench-key".to_string()));
    }
    target
}

struct Run {
    called: Instant,
    returned: Instant,
    outcome: Outcome,
}

/// Runs `probes` sequential probes of `dialect` against a fresh in-process simulator.
pub async fn run(dialect: DialectKind, probes: usize) -> anyhow::Result<Report> {
    let cfg = SimulatorConfig {
        ttft: Dist::Fixed(TTFT),
        itl: Dist::Fixed(ITL),
        output_tokens: Dist::Fixed(TOKENS),
        seed: Some(1),
        ..SimulatorConfig::default()
    };
    let sim = inferprobe::sim::start(cfg)
        .await
        .context("starting the simulator")?;
    let base = simulator_base_url(&sim.base_url(), dialect);
    let target = bench_target(dialect, &base);
    let scenario = Scenario {
        max_tokens: TOKENS * 2,
        ..Scenario::builtin_default()
    };
    let client = engine::client_for(&target.timeouts)?;

    let mut runs = Vec::with_capacity(WARMUP + probes);
    for _ in 0..WARMUP + probes {
        let called = Instant::now();
        let outcome = engine::run_probe(&client, &target, &base, &scenario).await;
        let returned = Instant::now();
        if !outcome.result.is_success() {
            bail!(
                "{} probe failed: {} {:?}",
                dialect.as_str(),
                outcome.result.as_str(),
                outcome.error
            );
        }
        runs.push(Run {
            called,
            returned,
            outcome,
        });
    }
    let truth = sim.ground_truth();
    sim.shutdown().await;
    ensure!(
        truth.len() == runs.len(),
        "{} ground-truth records for {} probes",
        truth.len(),
        runs.len()
    );

    let mut itl = Vec::new();
    let mut after_event = Vec::new();
    let mut after_headers = Vec::new();
    let mut delay_first = Vec::new();
    let mut delay_all = Vec::new();
    let mut request_path = Vec::new();
    let mut vs_server = Vec::new();
    let mut slack = Vec::new();
    for (run, rec) in runs.iter().zip(&truth).skip(WARMUP) {
        let o = &run.outcome;
        let toks = &rec.tokens;
        ensure!(
            toks.len() == TOKENS as usize && o.output_events == u64::from(TOKENS),
            "token count mismatch: probe saw {} events, simulator wrote {} tokens",
            o.output_events,
            toks.len()
        );
        let (Some(ttft), Some(tfe), Some(ttfb)) = (o.ttft, o.time_to_first_event, o.ttfb) else {
            bail!("a successful probe lacks a milestone");
        };
        let (Some(sim_first_event), Some(sim_headers)) = (rec.first_event, rec.headers_sent) else {
            bail!("a ground-truth record lacks a stamp");
        };
        for (k, gap) in o.inter_token_latencies.iter().enumerate() {
            itl.push(ns(*gap) - signed_ns(toks[k + 1], toks[k]));
        }
        after_event.push(ns(ttft) - ns(tfe) - signed_ns(toks[0], sim_first_event));
        after_headers.push(ns(ttft) - ns(ttfb) - signed_ns(toks[0], sim_headers));

        let start = run.returned - o.elapsed;
        let mut stamp = start + ttft;
        delay_first.push(signed_ns(stamp, toks[0]));
        delay_all.push(signed_ns(stamp, toks[0]));
        for (k, gap) in o.inter_token_latencies.iter().enumerate() {
            stamp += *gap;
            delay_all.push(signed_ns(stamp, toks[k + 1]));
        }
        request_path.push(signed_ns(rec.arrival, start));
        slack.push(signed_ns(start, run.called));
        vs_server.push(ns(ttft) - signed_ns(toks[0], rec.arrival));
    }

    let m = |name, v: &[i64]| Measure {
        name,
        summary: ErrorSummary::of(v),
    };
    Ok(Report {
        dialect,
        probes,
        measures: vec![
            m("ITL error (probe gap − true gap)", &itl),
            m("TTFT error, from first event (probe − truth)", &after_event),
            m(
                "TTFT error, from response headers (probe − truth)",
                &after_headers,
            ),
            m(
                "first-token stamp delay (probe stamp − sim write)",
                &delay_first,
            ),
            m(
                "every-token stamp delay (probe stamp − sim write)",
                &delay_all,
            ),
            m("request path (t_start → sim handler start)", &request_path),
            m(
                "TTFT − server-side TTFT (request path + delivery)",
                &vs_server,
            ),
            m("bound on the t_start estimate's lateness", &slack),
        ],
    })
}
