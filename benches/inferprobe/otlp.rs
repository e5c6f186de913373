//! What OTLP export costs: the time to record one probe outcome into the OpenTelemetry
//! instruments (beside the Prometheus families, which every probe is recorded into anyway), and
//! the size and time of one export as the number of series grows, against a loopback OTLP
//! receiver that decodes nothing (it counts bytes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use inferprobe::config::Loaded;
use inferprobe::metrics::server::ServerMetrics;
use inferprobe::metrics::ProbeMetrics;
use inferprobe::otlp::{OtlpExporter, Sources, TargetAttrs};
use inferprobe::probe::{engine, Outcome};
use inferprobe::runtime::simulator_base_url;

use crate::stats::median;

/// Output tokens of each recorded probe (so 63 inter-token gaps each).
pub const TOKENS: u32 = 64;
/// Real probes whose outcomes are recorded over and over.
const OUTCOMES: usize = 20;
/// Outcomes recorded per timed pass.
pub const RECORDS: usize = 2_000;
/// Timed passes per row.
const PASSES: usize = 5;

/// One recording row.
pub struct RecordRow {
    /// Where the outcomes were recorded.
    pub sink: &'static str,
    /// Median over the passes, per outcome.
    pub per_outcome: Duration,
}

/// One export row.
pub struct ExportRow {
    /// Targets (one scenario each) recorded before the export.
    pub targets: usize,
    /// Histogram mode.
    pub histograms: &'static str,
    /// Bytes of the request body the receiver got.
    pub bytes: usize,
    /// Wall time of one export (flush), median of the passes.
    pub wall: Duration,
}

#[derive(Default)]
struct Sink {
    bytes: AtomicUsize,
}

async fn receive(State(s): State<Arc<Sink>>, body: Bytes) -> &'static str {
    s.bytes.store(body.len(), Ordering::SeqCst);
    ""
}

async fn receiver() -> anyhow::Result<(String, Arc<Sink>)> {
    let sink = Arc::new(Sink::default());
    let app = axum::Router::new()
        .route("/v1/metrics", axum::routing::post(receive))
        .with_state(sink.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((format!("http://{addr}"), sink))
}

fn config(endpoint: &str, histograms: &str) -> String {
    format!(
        r#"
simulator: {{ttft: 5ms, itl: 1ms, output_tokens: {TOKENS}, seed: 1}}
targets:
  - {{name: chat, dialect: openai-chat, base_url: simulator, model: sim-llm}}
otlp: {{endpoint: "{endpoint}", interval: 1h, timeout: 5s, histograms: {histograms}}}
"#
    )
}

fn exporter(loaded: &Loaded) -> anyhow::Result<OtlpExporter> {
    let registry = prometheus::Registry::new();
    let sources = Sources {
        health: inferprobe::metrics::otlp::OtlpMetrics::register(&registry)?,
        gpu: inferprobe::metrics::gpu::GpuMetrics::new(),
        servers: ServerMetrics::new(),
    };
    Ok(OtlpExporter::start(
        loaded.otlp.as_ref().context("otlp block")?,
        sources,
        &loaded.buckets,
    )?)
}

/// Runs the real probes whose outcomes the section records.
async fn outcomes(loaded: &Loaded) -> anyhow::Result<(Vec<Outcome>, TargetAttrs)> {
    let sim = inferprobe::sim::start(loaded.simulator.clone().context("simulator")?).await?;
    let t = &loaded.targets[0];
    let base = simulator_base_url(&sim.base_url(), t.dialect);
    let client = engine::client_for(&t.timeouts)?;
    let scenario = t.scenarios[0].0.clone();
    let mut out = Vec::new();
    for _ in 0..OUTCOMES {
        let o = engine::run_probe(&client, t, &base, &scenario).await;
        if !o.result.is_success() {
            bail!("probe failed: {:?} {:?}", o.result, o.error);
        }
        out.push(o);
    }
    let attrs = TargetAttrs::of(t, &base, None);
    sim.shutdown().await;
    Ok((out, attrs))
}

fn time_passes(mut record: impl FnMut(&Outcome), outcomes: &[Outcome]) -> Duration {
    let mut per = Vec::new();
    for _ in 0..PASSES {
        let t0 = Instant::now();
        for i in 0..RECORDS {
            record(&outcomes[i % outcomes.len()]);
        }
        per.push(t0.elapsed().as_secs_f64() / RECORDS as f64);
    }
    Duration::from_secs_f64(median(&per))
}

/// The recording rows and the export rows.
pub async fn run() -> anyhow::Result<(Vec<RecordRow>, Vec<ExportRow>)> {
    let (endpoint, sink) = receiver().await?;
    let base: Loaded = inferprobe::config::load_str(&config(&endpoint, "exponential"), "b.yml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (outs, attrs) = outcomes(&base).await?;
    let mut records = Vec::new();

    let registry = prometheus::Registry::new();
    let prom = ProbeMetrics::register(&registry, &base.buckets)?;
    records.push(RecordRow {
        sink: "/metrics (Prometheus families)",
        per_outcome: time_passes(|o| prom.observe(o), &outs),
    });
    let mut exports = Vec::new();
    for mode in ["exponential", "explicit"] {
        let loaded: Loaded = inferprobe::config::load_str(&config(&endpoint, mode), "b.yml")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let x = Arc::new(exporter(&loaded)?);
        records.push(RecordRow {
            sink: if mode == "exponential" {
                "OTLP, exponential histograms"
            } else {
                "OTLP, explicit histograms"
            },
            per_outcome: time_passes(|o| x.observe(o, &attrs), &outs),
        });
        tokio::task::spawn_blocking(move || x.shutdown()).await?;

        for targets in [1usize, 10, 100] {
            let x = Arc::new(exporter(&loaded)?);
            for i in 0..targets {
                for o in &outs {
                    let mut o = o.clone();
                    o.target = format!("target-{i:03}");
                    x.observe(&o, &attrs);
                }
            }
            let mut walls = Vec::new();
            for _ in 0..PASSES {
                let y = x.clone();
                let t0 = Instant::now();
                let ok = tokio::task::spawn_blocking(move || y.flush()).await?;
                walls.push(t0.elapsed().as_secs_f64());
                if !ok {
                    bail!("export to the loopback receiver failed");
                }
            }
            exports.push(ExportRow {
                targets,
                histograms: mode,
                bytes: sink.bytes.load(Ordering::SeqCst),
                wall: Duration::from_secs_f64(median(&walls)),
            });
            let y = x.clone();
            tokio::task::spawn_blocking(move || y.shutdown()).await?;
        }
    }
    Ok((records, exports))
}
