//! The running daemon: one *generation* per loaded config (targets, their loops, their clients),
//! replaced whole on reload; the metrics registry, status board and simulator outlive generations.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tracing::{debug, error, info, warn};

use crate::collect::nvml::{self, GpuCollectorHandle};
use crate::collect::server::{self as server_collector, ServerCollectorHandle};
use crate::config::gpus::GpusConfig;
use crate::config::servers::ServerConfig;
use crate::config::{self, BaseUrl, Journey, Loaded, Scenario, Target};
use crate::cost;
use crate::journey::{self as journeys, JourneyOutcome};
use crate::metrics::gpu::GpuMetrics;
use crate::metrics::journey::JourneyMetrics;
use crate::metrics::otlp::OtlpMetrics;
use crate::metrics::server::ServerMetrics;
use crate::metrics::{ProbeMetrics, SelfMetrics, SkipReason};
use crate::otlp::{OtlpExporter, TargetAttrs};
use crate::probe::engine;
use crate::probe::Outcome;
use crate::schedule::{Plan, ProbeReport, Prober, Scheduler, TargetState};
use crate::shard::Shard;
use crate::sim::{self, SimHandle};

/// State shared by every generation.
pub struct Daemon {
    registry: prometheus::Registry,
    probes: ProbeMetrics,
    journeys: JourneyMetrics,
    self_metrics: SelfMetrics,
    board: StatusBoard,
    config_path: Option<PathBuf>,
    /// The share of the targets this replica probes.
    shard: Shard,
    sim: Option<SimHandle>,
    gpu_metrics: GpuMetrics,
    server_metrics: ServerMetrics,
    otlp_metrics: OtlpMetrics,
    /// The running OTLP exporter, when `otlp:` is configured.
    otlp: std::sync::RwLock<Option<Arc<OtlpExporter>>>,
    /// The running GPU collector and the config it runs with.
    gpu: Mutex<Option<(GpusConfig, GpuCollectorHandle)>>,
    /// The inference-server scrapers and the configs they run with, by server name.
    servers: Mutex<(ServerCollectorHandle, BTreeMap<String, ServerConfig>)>,
    generation: tokio::sync::Mutex<Generation>,
    ready: AtomicBool,
}

/// Why `/probe` could not run a probe. The messages name only what was asked: `/probe` may be
/// open to clients that should not learn the other targets' names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeNowError {
    /// No target of that name.
    #[error("unknown target {name:?}")]
    UnknownTarget {
        /// The name asked for.
        name: String,
    },
    /// The target has no scenario of that name.
    #[error("target {target:?} has no scenario {name:?}")]
    UnknownScenario {
        /// The target.
        target: String,
        /// The name asked for.
        name: String,
    },
    /// The target runs no journey of that name.
    #[error("target {target:?} has no journey {name:?}")]
    UnknownJourney {
        /// The target.
        target: String,
        /// The name asked for.
        name: String,
    },
    /// The target was busy for longer than the wait allowed.
    #[error("target {0:?} is busy with another probe")]
    Busy(String),
    /// Every global probe permit (`max_concurrent_probes`) stayed taken for longer than the
    /// wait allowed.
    #[error("all {0} probe slots (global.max_concurrent_probes) are busy")]
    NoPermit(usize),
    /// The fresh registry of the answer could not be set up.
    #[error("{0}")]
    Metrics(String),
}

/// Everything running for one loaded config.
struct Generation {
    loaded: Loaded,
    targets: BTreeMap<String, Arc<TargetRuntime>>,
    schedule: Scheduler,
}

/// One target's runtime: its client, resolved URL and scheduling state.
pub struct TargetRuntime {
    target: Arc<Target>,
    client: engine::ProbeClient,
    base_url: String,
    /// Probe lock, scenario turn, token budget and rate-limit hold.
    state: Arc<TargetState>,
    /// The GenAI attributes of its OTLP measurements.
    genai: TargetAttrs,
}

impl TargetRuntime {
    /// `clients` holds one HTTP client per connect timeout: a client (its connection pool and TLS
    /// config) costs over 100 KiB, and targets with the same timeout can share one. Connections
    /// are pooled per host, so sharing changes nothing about what each probe measures.
    fn new(
        target: Arc<Target>,
        sim: Option<&SimHandle>,
        loaded: &Loaded,
        clients: &mut HashMap<Duration, engine::ProbeClient>,
    ) -> anyhow::Result<TargetRuntime> {
        let client = match clients.get(&target.timeouts.connect) {
            Some(c) => c.clone(),
            None => {
                let c = engine::client_for(&target.timeouts).with_context(|| {
                    format!("building HTTP client for target {:?}", target.name)
                })?;
                clients.insert(target.timeouts.connect, c.clone());
                c
            }
        };
        let base_url = resolve_base_url(&target, sim)?;
        let state = Arc::new(TargetState::new(Plan::for_target(&target, &loaded.global)));
        let server_kind = target
            .self_hosted
            .as_ref()
            .and_then(|sh| sh.server.as_deref())
            .and_then(|name| loaded.servers.iter().find(|s| s.name == name))
            .map(|s| s.kind);
        let genai = TargetAttrs::of(&target, &base_url, server_kind);
        Ok(TargetRuntime {
            target,
            client,
            base_url,
            state,
            genai,
        })
    }

    /// The scenario or journey at index `i` of the schedule's rotation (scenarios, then
    /// journeys), clamped to the list.
    fn job_at(&self, i: usize) -> Job {
        let t = &self.target;
        let n = t.scenarios.len();
        match (t.scenarios.get(i), t.journeys.get(i.saturating_sub(n))) {
            (Some((s, _)), _) => Job::Scenario(s.clone()),
            (None, Some((j, _))) => Job::Journey(j.clone()),
            _ => match (t.journeys.last(), t.scenarios.last()) {
                (Some((j, _)), _) => Job::Journey(j.clone()),
                (None, Some((s, _))) => Job::Scenario(s.clone()),
                // Resolution never leaves a target with neither.
                (None, None) => Job::Scenario(Arc::new(Scenario::builtin_default())),
            },
        }
    }

    /// The next scenario in the rotation for an on-demand probe, skipping journeys; `None` for
    /// a target that runs journeys only.
    fn next_scenario(&self) -> Option<Arc<Scenario>> {
        let turns = self.target.scenarios.len() + self.target.journeys.len();
        (0..turns.max(1)).find_map(|_| match self.job_at(self.state.next_scenario()) {
            Job::Scenario(s) => Some(s),
            Job::Journey(_) => None,
        })
    }

    /// Admits an on-demand probe or journey: waits while a scheduled one of the target runs,
    /// then for a global permit, both within the target's total timeout or half of `deadline`
    /// if shorter (a probe started with a sliver of time left would only be cut off). Returns
    /// the lock, the permit and what is left of `deadline`.
    async fn admit_now(
        &self,
        permits: Arc<tokio::sync::Semaphore>,
        slots: usize,
        deadline: Option<Duration>,
    ) -> Result<
        (
            tokio::sync::OwnedMutexGuard<()>,
            tokio::sync::OwnedSemaphorePermit,
            Option<Duration>,
        ),
        ProbeNowError,
    > {
        let total = self.target.timeouts.total;
        let start = tokio::time::Instant::now();
        let wait = deadline.map_or(total, |d| (d / 2).min(total));
        let guard = self
            .state
            .lock_within(wait)
            .await
            .ok_or_else(|| ProbeNowError::Busy(self.target.name.clone()))?;
        // On-demand probes share the schedule's concurrency permits.
        let permit = tokio::time::timeout_at(start + wait, permits.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(ProbeNowError::NoPermit(slots))?;
        let left =
            deadline.map(|d| (start + d).saturating_duration_since(tokio::time::Instant::now()));
        Ok((guard, permit, left))
    }

    /// Runs one journey (the caller holds the target lock).
    async fn run_journey(&self, journey: &Journey) -> JourneyOutcome {
        journeys::run_journey(&self.client, &self.target, &self.base_url, journey).await
    }

    fn scenario_named(&self, name: &str) -> Option<Arc<Scenario>> {
        self.target
            .scenarios
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(s, _)| s.clone())
    }

    /// Runs one probe (the caller holds the target lock).
    async fn run(&self, scenario: &Scenario) -> Outcome {
        self.run_within(scenario, None).await
    }

    /// Runs one probe with its total timeout cut to `limit` when that is shorter.
    async fn run_within(&self, scenario: &Scenario, limit: Option<Duration>) -> Outcome {
        engine::run_probe_within(&self.client, &self.target, &self.base_url, scenario, limit).await
    }
}

/// The daemon's side of a target's schedule: probes over HTTP, records into metrics and the
/// status board.
struct ScheduledTarget {
    daemon: Arc<Daemon>,
    rt: Arc<TargetRuntime>,
}

/// What one turn of a target's rotation runs.
enum Job {
    Scenario(Arc<Scenario>),
    Journey(Arc<Journey>),
}

impl Prober for ScheduledTarget {
    async fn probe(&self, index: usize) -> ProbeReport {
        match self.rt.job_at(index) {
            Job::Scenario(scenario) => {
                let mut outcome = self.rt.run(&scenario).await;
                self.daemon
                    .apply_self_hosted_cost(&self.rt.target, &mut outcome);
                self.daemon.record(&outcome, &self.rt.genai);
                ProbeReport::of(&outcome)
            }
            Job::Journey(journey) => {
                let mut outcome = self.rt.run_journey(&journey).await;
                for s in &mut outcome.steps {
                    self.daemon
                        .apply_self_hosted_cost(&self.rt.target, &mut s.outcome);
                }
                self.daemon.record_journey(&outcome);
                journey_report(&outcome)
            }
        }
    }

    fn skipped(&self, index: usize, reason: SkipReason) {
        let t = &self.rt.target;
        let (name, journey) = match self.rt.job_at(index) {
            Job::Scenario(s) => (s.name.clone(), false),
            Job::Journey(j) => (j.name.clone(), true),
        };
        if journey {
            self.daemon
                .journeys
                .skipped(&t.name, &t.model, &name, reason);
        } else {
            self.daemon.probes.skipped(&t.name, &t.model, &name, reason);
        }
        if let Some(x) = self.daemon.otlp() {
            x.skipped(&t.name, &t.model, &name, journey, reason);
        }
    }
}

/// What the schedule learns from a journey: every step's output tokens count against the
/// budget, and a rate limit on the failing step holds the target as a probe's would.
fn journey_report(o: &JourneyOutcome) -> ProbeReport {
    match o.last_outcome() {
        Some(last) => ProbeReport::new(last.result, o.output_tokens(), &last.rate_limit),
        None => ProbeReport::default(),
    }
}

/// Resolves `base_url: simulator` to the running simulator, with the dialect's path convention.
fn resolve_base_url(target: &Target, sim: Option<&SimHandle>) -> anyhow::Result<String> {
    match &target.base_url {
        BaseUrl::Url(u) => Ok(u.trim_end_matches('/').to_string()),
        BaseUrl::Simulator => {
            let sim = sim.with_context(|| {
                format!(
                    "target {:?} uses base_url: simulator but no simulator is running",
                    target.name
                )
            })?;
            Ok(simulator_base_url(&sim.base_url(), target.dialect))
        }
    }
}

/// The simulator's base URL as each provider's SDK would take it (the dialect table's
/// `simulator_prefix`: `/v1` for OpenAI dialects, none for Anthropic).
pub fn simulator_base_url(root: &str, dialect: crate::probe::dialect::DialectKind) -> String {
    dialect.simulator_base_url(root)
}

/// The latest outcome per (target, scenario), for the status page.
#[derive(Default)]
pub struct StatusBoard {
    latest: Mutex<BTreeMap<(String, String), Outcome>>,
    journeys: Mutex<BTreeMap<(String, String), JourneyOutcome>>,
    history: Mutex<History>,
}

/// The last probes of each (target, scenario), for the status page's sparklines and waterfalls.
#[derive(Default)]
struct History {
    /// Probes kept per (target, scenario): `global.status_history`.
    capacity: usize,
    /// Sequence number of the next probe recorded (1 for the first).
    next_seq: u64,
    probes: BTreeMap<(String, String), VecDeque<ProbeRecord>>,
}

/// Most events kept per probe in the status page's history.
const MAX_HISTORY_EVENTS: usize = 1024;

/// What the status page keeps of one probe: its result, milestones and events (not its answer).
#[derive(Clone, Debug)]
pub struct ProbeRecord {
    /// Unique within this process, increasing.
    pub seq: u64,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// How it ended.
    pub result: crate::probe::ProbeResult,
    /// Why it failed (redacted).
    pub error: Option<String>,
    /// Response headers.
    pub ttfb: Option<Duration>,
    /// First event.
    pub ttfe: Option<Duration>,
    /// First output.
    pub ttft: Option<Duration>,
    /// First answer text.
    pub ttfat: Option<Duration>,
    /// End of a completed stream.
    pub e2e: Option<Duration>,
    /// Until the end or the failure.
    pub elapsed: Duration,
    /// Output tokens.
    pub output_tokens: u64,
    /// Gaps between output events.
    pub gaps: usize,
    /// Every event of the stream.
    pub events: Vec<crate::probe::trace::TraceEvent>,
}

impl ProbeRecord {
    fn of(o: &Outcome, seq: u64) -> ProbeRecord {
        ProbeRecord {
            seq,
            started_at: o.started_at,
            result: o.result,
            error: o.error.clone(),
            ttfb: o.ttfb,
            ttfe: o.time_to_first_event,
            ttft: o.ttft,
            ttfat: o.time_to_first_answer_token,
            e2e: o.e2e,
            elapsed: o.elapsed,
            output_tokens: o.output_tokens,
            gaps: o.inter_token_latencies.len(),
            // A waterfall of a thousand events is already unreadable; the bound keeps a history
            // of a broken stream's probes small.
            events: o.events.iter().take(MAX_HISTORY_EVENTS).copied().collect(),
        }
    }
}

impl StatusBoard {
    fn record_journey(&self, o: &JourneyOutcome) {
        if let Ok(mut m) = self.journeys.lock() {
            m.insert((o.target.clone(), o.journey.clone()), o.clone());
        }
    }

    /// The latest journey outcomes, ordered by target then journey.
    pub fn journeys(&self) -> Vec<JourneyOutcome> {
        self.journeys
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn record(&self, o: &Outcome) {
        if let Ok(mut m) = self.latest.lock() {
            m.insert((o.target.clone(), o.scenario.clone()), o.clone());
        }
        if let Ok(mut h) = self.history.lock() {
            let cap = h.capacity;
            if cap == 0 {
                return;
            }
            h.next_seq += 1;
            let seq = h.next_seq;
            let q = h
                .probes
                .entry((o.target.clone(), o.scenario.clone()))
                .or_default();
            while q.len() >= cap {
                q.pop_front();
            }
            q.push_back(ProbeRecord::of(o, seq));
        }
    }

    /// Sets how many probes are kept per (target, scenario); longer histories are cut.
    fn set_history(&self, capacity: usize) {
        if let Ok(mut h) = self.history.lock() {
            h.capacity = capacity;
            for q in h.probes.values_mut() {
                while q.len() > capacity {
                    q.pop_front();
                }
            }
        }
    }

    /// The last probes of a (target, scenario), oldest first.
    pub fn history(&self, target: &str, scenario: &str) -> Vec<ProbeRecord> {
        self.history
            .lock()
            .ok()
            .and_then(|h| {
                h.probes
                    .get(&(target.to_string(), scenario.to_string()))
                    .map(|q| q.iter().cloned().collect())
            })
            .unwrap_or_default()
    }

    fn retain_targets(&self, names: &HashSet<String>) {
        if let Ok(mut m) = self.latest.lock() {
            m.retain(|(t, _), _| names.contains(t));
        }
        if let Ok(mut h) = self.history.lock() {
            h.probes.retain(|(t, _), _| names.contains(t));
        }
        if let Ok(mut m) = self.journeys.lock() {
            m.retain(|(t, _), _| names.contains(t));
        }
    }

    /// The latest outcomes, ordered by target then scenario.
    pub fn snapshot(&self) -> Vec<Outcome> {
        self.latest
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// A row of the status page: a configured target/scenario and its latest outcome, if any.
pub struct StatusRow {
    /// Target name.
    pub target: String,
    /// Dialect name.
    pub dialect: &'static str,
    /// Resolved base URL.
    pub base_url: String,
    /// Model.
    pub model: String,
    /// Scenario name.
    pub scenario: String,
    /// Human schedule (`every 30s ±10%` or `cron ...`).
    pub schedule: String,
    /// The latest outcome.
    pub latest: Option<Outcome>,
}

/// A row of the status page's journey table.
pub struct JourneyRow {
    /// Target name.
    pub target: String,
    /// Journey name.
    pub journey: String,
    /// Configured steps.
    pub steps: usize,
    /// The latest outcome.
    pub latest: Option<JourneyOutcome>,
}

impl Daemon {
    /// Starts the simulator (if configured), registers metrics and starts every target's
    /// schedule. `config_path` is re-read on reload.
    /// Only the targets `shard` owns are probed.
    pub async fn start(
        mut loaded: Loaded,
        config_path: Option<PathBuf>,
        shard: Shard,
    ) -> anyhow::Result<Arc<Daemon>> {
        apply_shard(&mut loaded, shard);
        crate::redact::install(crate::redact::Redactor::from_config(&loaded));
        engine::install_crypto_provider();
        let registry = prometheus::Registry::new();
        let probes = ProbeMetrics::register(&registry, &loaded.buckets)
            .context("registering probe metrics")?;
        let journeys =
            JourneyMetrics::register(&registry).context("registering journey metrics")?;
        let self_metrics = SelfMetrics::register(&registry).context("registering self metrics")?;
        let gpu_metrics = GpuMetrics::register(&registry).context("registering GPU metrics")?;
        let server_metrics =
            ServerMetrics::register(&registry).context("registering server metrics")?;
        let otlp_metrics = OtlpMetrics::register(&registry).context("registering OTLP metrics")?;
        let scrape_client = reqwest::Client::builder()
            .user_agent(concat!("inferprobe/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the server-scrape HTTP client")?;
        let sim = match &loaded.simulator {
            Some(cfg) => {
                let h = sim::start(cfg.clone())
                    .await
                    .context("starting the built-in simulator")?;
                info!(address = %h.addr(), "Simulator listening.");
                Some(h)
            }
            None => None,
        };
        for w in &loaded.warnings {
            warn!(path = %w.path, "{}", w.message);
        }
        let daemon = Arc::new(Daemon {
            registry,
            probes,
            journeys,
            self_metrics,
            board: StatusBoard::default(),
            config_path,
            shard,
            sim,
            gpu_metrics,
            server_metrics: server_metrics.clone(),
            otlp_metrics,
            otlp: std::sync::RwLock::new(None),
            gpu: Mutex::new(None),
            servers: Mutex::new((
                server_collector::start(Vec::new(), server_metrics, scrape_client),
                BTreeMap::new(),
            )),
            generation: tokio::sync::Mutex::new(Generation {
                loaded: loaded.clone(),
                targets: BTreeMap::new(),
                schedule: Scheduler::idle(),
            }),
            ready: AtomicBool::new(false),
        });
        daemon.board.set_history(loaded.global.status_history);
        daemon.apply_gpus(&loaded.gpus);
        daemon.apply_servers(&loaded.servers);
        daemon.apply_otlp(loaded.otlp.as_ref(), &loaded.buckets);
        let generation = daemon.build_generation(loaded).await?;
        *daemon.generation.lock().await = generation;
        daemon.self_metrics.config_reloaded(true, SystemTime::now());
        daemon.ready.store(true, Ordering::SeqCst);
        Ok(daemon)
    }

    /// The registry every family is registered in.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// True once the first generation runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The in-process simulator, if one runs.
    pub fn simulator(&self) -> Option<&SimHandle> {
        self.sim.as_ref()
    }

    /// Histogram bucket overrides of the current config (for `/probe`'s fresh registry).
    pub async fn buckets(&self) -> BTreeMap<String, Vec<f64>> {
        self.generation.lock().await.loaded.buckets.clone()
    }

    /// Starts, restarts or stops the GPU collector when its config differs from the running one.
    /// A collector that cannot find NVML still runs (and retries); it never fails start-up.
    fn apply_gpus(&self, cfg: &GpusConfig) {
        let Ok(mut slot) = self.gpu.lock() else {
            return;
        };
        if slot.as_ref().is_some_and(|(running, _)| running == cfg) {
            return;
        }
        // Dropping a handle stops its thread without waiting for it.
        *slot = nvml::start(cfg, self.gpu_metrics.clone()).map(|h| (cfg.clone(), h));
    }

    /// The OTLP endpoint and how its exports have gone, when OTLP export is on.
    pub fn otlp_status(&self) -> Option<(String, crate::otlp::ExportStatus)> {
        self.otlp()
            .map(|x| (x.settings().endpoint.clone(), x.status()))
    }

    /// The running OTLP exporter, if any.
    fn otlp(&self) -> Option<Arc<OtlpExporter>> {
        match self.otlp.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts, restarts or stops the OTLP exporter when its settings differ from the running
    /// one's. A replaced exporter sends its last data and stops on a blocking thread, so a
    /// receiver that hangs delays nothing here. An exporter that cannot be built is logged and
    /// left off; probing goes on.
    fn apply_otlp(
        &self,
        wanted: Option<&config::otlp::OtlpSettings>,
        buckets: &BTreeMap<String, Vec<f64>>,
    ) {
        let running = self.otlp();
        if running.as_ref().map(|x| x.settings()) == wanted {
            return;
        }
        let next = wanted.and_then(|s| {
            let sources = crate::otlp::Sources {
                health: self.otlp_metrics.clone(),
                gpu: self.gpu_metrics.clone(),
                servers: self.server_metrics.clone(),
            };
            match OtlpExporter::start(s, sources, buckets) {
                Ok(x) => Some(Arc::new(x)),
                Err(e) => {
                    error!(error = %e, "OTLP export is off.");
                    None
                }
            }
        });
        let old = match self.otlp.write() {
            Ok(mut g) => std::mem::replace(&mut *g, next),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), next),
        };
        if let Some(old) = old {
            tokio::task::spawn_blocking(move || old.shutdown());
        }
    }

    /// Starts scraping new or changed servers and stops scraping removed ones (their series go).
    fn apply_servers(&self, wanted: &[ServerConfig]) {
        let Ok(mut guard) = self.servers.lock() else {
            return;
        };
        let (handle, running) = &mut *guard;
        let wanted_names: HashSet<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = running
            .keys()
            .filter(|n| !wanted_names.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            handle.remove(&name);
            running.remove(&name);
        }
        for cfg in wanted {
            if running.get(&cfg.name) == Some(cfg) {
                continue;
            }
            let url = if cfg.is_simulator() {
                match &self.sim {
                    Some(sim) => format!("{}/metrics", sim.base_url().trim_end_matches('/')),
                    None => {
                        error!(server = %cfg.name, "url: simulator needs a simulator: block; not scraping.");
                        continue;
                    }
                }
            } else {
                cfg.url.trim().to_string()
            };
            handle.add(cfg.clone(), url);
            running.insert(cfg.name.clone(), cfg.clone());
        }
    }

    /// Builds and starts a generation for `loaded`.
    async fn build_generation(self: &Arc<Daemon>, loaded: Loaded) -> anyhow::Result<Generation> {
        let mut clients = HashMap::new();
        let mut targets = BTreeMap::new();
        // A reload keeps what each target's schedule knew: the tokens spent this hour (else every
        // reload would reset the budget) and a rate-limit hold, while the endpoint is the same.
        let previous = self.generation.lock().await.targets.clone();
        for t in &loaded.targets {
            let rt = TargetRuntime::new(t.clone(), self.sim.as_ref(), &loaded, &mut clients)?;
            if let Some(old) = previous.get(&t.name) {
                let same_endpoint = old.base_url == rt.base_url && old.target.model == t.model;
                rt.state.inherit(&old.state, same_endpoint);
            }
            for (s, _) in &t.scenarios {
                self.probes.precreate(&t.name, &t.model, &s.name);
            }
            for (j, _) in &t.journeys {
                self.journeys.precreate(&t.name, &t.model, j);
            }
            targets.insert(t.name.clone(), Arc::new(rt));
        }
        let scheduled = targets
            .values()
            .map(|rt| {
                let prober = ScheduledTarget {
                    daemon: self.clone(),
                    rt: rt.clone(),
                };
                (rt.state.clone(), Arc::new(prober))
            })
            .collect();
        let schedule = Scheduler::start(scheduled, loaded.global.max_concurrent_probes)
            .await
            .context("starting the schedules")?;
        info!(
            targets = targets.len(),
            max_concurrent_probes = loaded.global.max_concurrent_probes,
            "Probing started."
        );
        Ok(Generation {
            loaded,
            targets,
            schedule,
        })
    }

    /// Re-reads the config file and swaps generations. A config that does not load leaves the
    /// running one untouched and sets `inferprobe_config_last_reload_successful 0`. So does a
    /// config with no targets while targets are running (an emptied or truncated file), unless
    /// the file says `targets: []`.
    pub async fn reload(self: &Arc<Daemon>) -> Result<String, String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload (started without --config.file)".to_string());
        };
        let loaded = match config::load(path) {
            Ok(l) => l,
            Err(e) => {
                error!(
                    errors = e.errors.len(),
                    "Reload failed; keeping the running config.\n{e}"
                );
                self.self_metrics.config_reloaded(false, SystemTime::now());
                return Err(e.to_string());
            }
        };
        if loaded.targets.is_empty() {
            let running = self.generation.lock().await.targets.len();
            let explicit = std::fs::read_to_string(path)
                .map(|text| config::declares_no_targets(&text))
                .unwrap_or(false);
            if running > 0 && !explicit {
                let e = format!(
                    "{}: the new config has no targets and would stop all {running} running \
                     ones; write `targets: []` to remove them all on purpose",
                    path.display()
                );
                error!(error = %e, "Reload refused; keeping the running config.");
                self.self_metrics.config_reloaded(false, SystemTime::now());
                return Err(e);
            }
            if running > 0 {
                warn!(
                    stopped = running,
                    "The new config says `targets: []`: every target is removed."
                );
            }
        }
        match self.swap(loaded).await {
            Ok(summary) => {
                info!(%summary, "Config reloaded.");
                self.self_metrics.config_reloaded(true, SystemTime::now());
                Ok(summary)
            }
            Err(e) => {
                error!(error = %format!("{e:#}"), "Reload failed; keeping the running config.");
                self.self_metrics.config_reloaded(false, SystemTime::now());
                Err(format!("{e:#}"))
            }
        }
    }

    /// Replaces the running generation with one for `loaded`; series of (target, model,
    /// scenario) combinations that disappear are removed.
    pub async fn swap(self: &Arc<Daemon>, mut loaded: Loaded) -> anyhow::Result<String> {
        apply_shard(&mut loaded, self.shard);
        // Old and new secrets are both matched until the old generation has stopped.
        let redactor = crate::redact::Redactor::from_config(&loaded);
        crate::redact::extend(&redactor);
        for w in &loaded.warnings {
            warn!(path = %w.path, "{}", w.message);
        }
        let summary = config::summary(&loaded);
        let gpus = loaded.gpus.clone();
        let servers = loaded.servers.clone();
        let otlp = loaded.otlp.clone();
        let otlp_buckets = loaded.buckets.clone();
        self.board.set_history(loaded.global.status_history);
        let new_keys = series_keys(&loaded);
        let new_journeys = journey_keys(&loaded);
        let new_gen = self.build_generation(loaded).await?;
        self.apply_gpus(&gpus);
        self.apply_servers(&servers);
        self.apply_otlp(otlp.as_ref(), &otlp_buckets);
        let old = std::mem::replace(&mut *self.generation.lock().await, new_gen);
        let names: HashSet<String> = new_keys.iter().map(|(t, _, _)| t.clone()).collect();
        for (t, m, s) in series_keys(&old.loaded) {
            if !new_keys.contains(&(t.clone(), m.clone(), s.clone())) {
                self.probes.remove(&t, &m, &s);
            }
        }
        for key in journey_keys(&old.loaded) {
            if !new_journeys.contains(&key) {
                let (t, m, j, steps) = key;
                self.journeys.remove(&t, &m, &j, &steps);
            }
        }
        self.board.retain_targets(&names);
        stop_generation(old).await;
        crate::redact::install(redactor);
        Ok(summary)
    }

    /// Runs one journey now, outside the schedule, as [`Daemon::probe_now`] runs a probe: the
    /// same lock, permit and deadline; the journey gets what is left of `deadline`.
    pub async fn journey_now(
        &self,
        target: &str,
        journey: &str,
        deadline: Option<Duration>,
    ) -> Result<JourneyOutcome, ProbeNowError> {
        let (rt, permits, slots) = self.target_runtime(target).await?;
        let journey = rt
            .target
            .journeys
            .iter()
            .find(|(j, _)| j.name == journey)
            .map(|(j, _)| j.clone())
            .ok_or_else(|| ProbeNowError::UnknownJourney {
                target: target.to_string(),
                name: journey.to_string(),
            })?;
        let (_guard, _permit, left) = rt.admit_now(permits, slots, deadline).await?;
        let mut outcome =
            journeys::run_journey_within(&rt.client, &rt.target, &rt.base_url, &journey, left)
                .await;
        rt.state.record(&journey_report(&outcome));
        for s in &mut outcome.steps {
            self.apply_self_hosted_cost(&rt.target, &mut s.outcome);
        }
        Ok(outcome)
    }

    /// A target's runtime with the global permits and their number.
    async fn target_runtime(
        &self,
        target: &str,
    ) -> Result<(Arc<TargetRuntime>, Arc<tokio::sync::Semaphore>, usize), ProbeNowError> {
        let g = self.generation.lock().await;
        match g.targets.get(target) {
            Some(rt) => Ok((
                rt.clone(),
                g.schedule.permits(),
                g.loaded.global.max_concurrent_probes.max(1),
            )),
            None => Err(ProbeNowError::UnknownTarget {
                name: target.to_string(),
            }),
        }
    }

    /// Runs one probe now, outside the schedule: waits while a scheduled probe of the target
    /// runs, then for one of the global probe permits, both within the target's total timeout
    /// or half of `deadline` if shorter; the probe itself gets what is left of `deadline`.
    pub async fn probe_now(
        &self,
        target: &str,
        scenario: Option<&str>,
        deadline: Option<Duration>,
    ) -> Result<Outcome, ProbeNowError> {
        let (rt, permits, slots) = self.target_runtime(target).await?;
        let scenario = match scenario {
            None => rt
                .next_scenario()
                .ok_or_else(|| ProbeNowError::UnknownScenario {
                    target: target.to_string(),
                    name: "(the target runs journeys only)".to_string(),
                })?,
            Some(name) => {
                rt.scenario_named(name)
                    .ok_or_else(|| ProbeNowError::UnknownScenario {
                        target: target.to_string(),
                        name: name.to_string(),
                    })?
            }
        };
        let (_guard, _permit, left) = rt.admit_now(permits, slots, deadline).await?;
        let mut outcome = rt.run_within(&scenario, left).await;
        // What the server said (tokens spent, a rate limit) counts for the schedule too.
        rt.state.record(&ProbeReport::of(&outcome));
        self.apply_self_hosted_cost(&rt.target, &mut outcome);
        Ok(outcome)
    }

    /// Configured targets and scenarios with their latest outcome.
    pub async fn status(&self) -> Vec<StatusRow> {
        let latest: HashMap<(String, String), Outcome> = self
            .board
            .snapshot()
            .into_iter()
            .map(|o| ((o.target.clone(), o.scenario.clone()), o))
            .collect();
        let g = self.generation.lock().await;
        let mut rows = Vec::new();
        for rt in g.targets.values() {
            let t = &rt.target;
            let schedule = match &t.schedule.cron {
                Some(c) => format!("cron {c}"),
                None => format!(
                    "every {} ±{:.0}%",
                    humantime::format_duration(t.schedule.every),
                    t.schedule.jitter * 100.0
                ),
            };
            for (s, _) in &t.scenarios {
                rows.push(StatusRow {
                    target: t.name.clone(),
                    dialect: t.dialect.as_str(),
                    base_url: rt.base_url.clone(),
                    model: t.model.clone(),
                    scenario: s.name.clone(),
                    schedule: schedule.clone(),
                    latest: latest.get(&(t.name.clone(), s.name.clone())).cloned(),
                });
            }
        }
        rows
    }

    /// The last probes of a (target, scenario), oldest first, for the status page.
    pub fn history(&self, target: &str, scenario: &str) -> Vec<ProbeRecord> {
        self.board.history(target, scenario)
    }

    /// Configured journeys with their latest outcome, by target then journey.
    pub async fn journey_status(&self) -> Vec<JourneyRow> {
        let latest: HashMap<(String, String), JourneyOutcome> = self
            .board
            .journeys()
            .into_iter()
            .map(|o| ((o.target.clone(), o.journey.clone()), o))
            .collect();
        let g = self.generation.lock().await;
        let mut rows = Vec::new();
        for rt in g.targets.values() {
            let t = &rt.target;
            for (j, _) in &t.journeys {
                rows.push(JourneyRow {
                    target: t.name.clone(),
                    journey: j.name.clone(),
                    steps: j.steps.len(),
                    latest: latest.get(&(t.name.clone(), j.name.clone())).cloned(),
                });
            }
        }
        rows
    }

    /// Stops every schedule and the simulator.
    pub async fn shutdown(&self) {
        let old = std::mem::replace(
            &mut *self.generation.lock().await,
            Generation {
                loaded: empty_loaded(),
                targets: BTreeMap::new(),
                schedule: Scheduler::idle(),
            },
        );
        stop_generation(old).await;
        let exporter = match self.otlp.write() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(x) = exporter {
            // The last export carries the last probes and the collectors' last
            // snapshots; it is bounded by otlp.timeout.
            let _ = tokio::task::spawn_blocking(move || x.shutdown()).await;
        }
        if let Ok(mut g) = self.gpu.lock() {
            g.take();
        }
        self.apply_servers(&[]);
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Exports to the OTLP receiver now (blocks up to `otlp.timeout`); false when no exporter
    /// runs or the export failed.
    pub async fn flush_otlp(&self) -> bool {
        match self.otlp() {
            Some(x) => tokio::task::spawn_blocking(move || x.flush())
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    /// For a self-hosted target, replaces the token-price cost (there is none) with the share of
    /// the GPUs' hourly cost this request used, and exports the hourly rate.
    fn apply_self_hosted_cost(&self, target: &Target, o: &mut Outcome) {
        let Some(sh) = &target.self_hosted else {
            return;
        };
        let rate = cost::self_hosted_hourly_usd(sh, self.gpu_metrics.mean_power_usage_watts());
        let running = sh
            .server
            .as_deref()
            .and_then(|s| self.server_metrics.requests_running(s));
        let duration = o.e2e.unwrap_or(o.elapsed);
        o.cost_usd = Some(cost::self_hosted_request_cost(rate, duration, running));
        self.probes
            .set_gpu_cost_rate(&target.name, &target.model, rate);
        if let Some(x) = self.otlp() {
            x.gpu_cost_rate(&target.name, &target.model, rate);
        }
    }

    fn record_journey(&self, o: &JourneyOutcome) {
        self.journeys.observe(o);
        if let Some(x) = self.otlp() {
            x.observe_journey(o);
        }
        self.board.record_journey(o);
        if o.result.is_success() {
            debug!(
                target = %o.target,
                journey = %o.journey,
                duration_seconds = o.duration.as_secs_f64(),
                model_calls = o.model_calls(),
                "Journey succeeded."
            );
        } else {
            warn!(
                target = %o.target,
                journey = %o.journey,
                step = o.failed_step.as_deref().unwrap_or(""),
                result = o.result.as_str(),
                error = o.error.as_deref().unwrap_or(""),
                "Journey failed."
            );
        }
    }

    /// Records a scheduled probe's outcome into `/metrics`, OTLP and the status page.
    fn record(&self, o: &Outcome, genai: &TargetAttrs) {
        self.probes.observe(o);
        if let Some(x) = self.otlp() {
            x.observe(o, genai);
        }
        self.board.record(o);
        if o.result.is_success() {
            debug!(
                target = %o.target,
                scenario = %o.scenario,
                ttft_seconds = o.ttft.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
                output_tokens = o.output_tokens,
                "Probe succeeded."
            );
        } else {
            warn!(
                target = %o.target,
                scenario = %o.scenario,
                result = o.result.as_str(),
                error = o.error.as_deref().unwrap_or(""),
                "Probe failed."
            );
        }
    }
}

/// Keeps only the targets this replica owns; the others are probed by their own replicas.
fn apply_shard(loaded: &mut Loaded, shard: Shard) {
    if shard.count <= 1 {
        return;
    }
    let total = loaded.targets.len();
    loaded.targets.retain(|t| shard.owns(&t.name));
    info!(
        shard = %shard,
        owned = loaded.targets.len(),
        configured = total,
        "Sharding: probing the targets this replica owns."
    );
}

/// (target, model, scenario) of every series a config creates.
fn series_keys(loaded: &Loaded) -> HashSet<(String, String, String)> {
    loaded
        .targets
        .iter()
        .flat_map(|t| {
            t.scenarios
                .iter()
                .map(|(s, _)| (t.name.clone(), t.model.clone(), s.name.clone()))
        })
        .collect()
}

/// (target, model, journey, step names) of every journey a config runs: a journey whose steps
/// change loses the series of the steps it no longer has.
fn journey_keys(loaded: &Loaded) -> HashSet<(String, String, String, Vec<String>)> {
    loaded
        .targets
        .iter()
        .flat_map(|t| {
            t.journeys.iter().map(|(j, _)| {
                let steps = j.steps.iter().map(|s| s.name.clone()).collect();
                (t.name.clone(), t.model.clone(), j.name.clone(), steps)
            })
        })
        .collect()
}

fn empty_loaded() -> Loaded {
    Loaded {
        source_name: String::new(),
        global: Default::default(),
        targets: Vec::new(),
        buckets: BTreeMap::new(),
        simulator: None,
        gpus: Default::default(),
        servers: Vec::new(),
        otlp: None,
        warnings: Vec::new(),
    }
}

/// Stops a generation's loops and cancels its probes in flight.
async fn stop_generation(g: Generation) {
    g.schedule.stop().await;
}
