//! The subcommands behind `main`: each returns an exit code, or an error `main` prints.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tracing::{info, warn};

use crate::cli::{self, CheckConfigArgs, ProbeArgs, RunArgs};
use crate::config::{self, BaseUrl, Loaded, Scenario, Target, Timeouts};
use crate::probe::dialect::DialectKind;
use crate::probe::{clip, engine, Outcome};
use crate::redact::{self, Redactor};
use crate::runtime::{self, Daemon};
use crate::shard::Shard;
use crate::webconfig::{WebOptions, WebSecurity};

/// Exit code of a failed probe or an invalid config.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad flags or input that names nothing runnable.
pub const EXIT_USAGE: u8 = 2;

/// A daemon serving its web endpoints, for `run` and for tests.
pub struct Running {
    /// The address the web server listens on.
    pub addr: SocketAddr,
    /// The daemon.
    pub daemon: Arc<Daemon>,
    /// The web config in force (`--web.config.file`).
    pub web: Arc<WebSecurity>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops probing at once, then the web server, which gives requests in flight
    /// `--web.shutdown-grace` to finish.
    pub async fn stop(self) {
        self.daemon.shutdown().await;
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}

/// Starts the daemon for `loaded` and serves its endpoints on `listen` (`:PORT`, `HOST:PORT`).
pub async fn start(
    loaded: Loaded,
    config_path: Option<PathBuf>,
    listen: &str,
) -> anyhow::Result<Running> {
    start_with_web(
        loaded,
        config_path,
        listen,
        WebSecurity::open(),
        Shard::single(),
    )
    .await
}

/// Like [`start`], behind the TLS, authentication and restrictions of `web`, probing only the
/// targets `shard` owns.
pub async fn start_with_web(
    loaded: Loaded,
    config_path: Option<PathBuf>,
    listen: &str,
    web: Arc<WebSecurity>,
    shard: Shard,
) -> anyhow::Result<Running> {
    let addr = cli::listen_address(listen);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("--web.listen-address={listen}: cannot listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    let daemon = Daemon::start(loaded, config_path, shard).await?;
    web.register_metrics(daemon.registry())
        .context("registering the web config metrics")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = crate::web::app(daemon.clone());
    let server = tokio::spawn(crate::webconfig::serve(
        listener,
        app,
        web.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    Ok(Running {
        addr,
        daemon,
        web,
        shutdown: tx,
        server,
    })
}

/// `inferprobe run`: serve until SIGTERM/SIGINT; SIGHUP reloads the config.
pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let loaded = match config::load(&args.config_file) {
        Ok(l) => l,
        Err(e) => {
            redact::eprint(format_args!("{e}"));
            return Ok(EXIT_FAILURE);
        }
    };
    let web = match WebSecurity::new(WebOptions {
        config_file: args.web_config_file.clone(),
        disable_reload: args.web_disable_reload,
        disable_probe: args.web_disable_probe,
        max_connections: args.web_max_connections,
        read_header_timeout: args.web_read_header_timeout,
        idle_timeout: args.web_idle_timeout,
        shutdown_grace: args.web_shutdown_grace,
    }) {
        Ok(w) => w,
        Err(e) => {
            redact::eprint(format_args!("{e}"));
            return Ok(EXIT_FAILURE);
        }
    };
    let shard = match Shard::new(args.shard_index, args.shard_count) {
        Ok(s) => s,
        Err(e) => {
            redact::eprint(format_args!("error: {e}"));
            return Ok(EXIT_USAGE);
        }
    };
    info!(
        version = crate::VERSION,
        revision = crate::REVISION,
        config = %args.config_file.display(),
        shard = %shard,
        "Starting inferprobe."
    );
    let signals = install_signals();
    let running = start_with_web(
        loaded,
        Some(args.config_file.clone()),
        &args.listen_address,
        web,
        shard,
    )
    .await?;
    info!(address = %running.addr, "Listening; metrics at /metrics.");
    wait_for_signals(signals, &running.daemon, &running.web).await;
    info!("Shutting down.");
    running.stop().await;
    Ok(0)
}

/// SIGHUP and SIGTERM, taken over before the daemon says it listens: a SIGTERM right after
/// start-up then stops it cleanly (exit 0) instead of killing it.
#[cfg(unix)]
type Signals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;
#[cfg(not(unix))]
type Signals = ();

#[cfg(unix)]
fn install_signals() -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(hup), Ok(term)) => Some((hup, term)),
        _ => None,
    }
}

#[cfg(not(unix))]
fn install_signals() -> Signals {}

#[cfg(unix)]
async fn wait_for_signals(signals: Signals, daemon: &Arc<Daemon>, web: &WebSecurity) {
    let Some((mut hup, mut term)) = signals else {
        warn!("Cannot install signal handlers; stop with Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP: reloading the config.");
                // The outcome is logged and exported by reload itself.
                let _ = daemon.reload().await;
                let _ = web.reload();
            }
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_signals: Signals, _daemon: &Arc<Daemon>, _web: &WebSecurity) {
    let _ = tokio::signal::ctrl_c().await;
}

/// `inferprobe check-config FILE`: `OK` and a summary, or every error; exit 1 on errors. API keys
/// that cannot be read here are warnings, since configs are often checked where secrets are not.
pub fn check_config(args: CheckConfigArgs) -> u8 {
    match config::load_for_check(&args.file) {
        Ok(l) => {
            for w in &l.warnings {
                redact::eprint(format_args!("warning: {w}"));
            }
            redact::print(format_args!("{}\n", config::summary(&l)));
            0
        }
        Err(e) => {
            redact::eprint(format_args!("{e}"));
            EXIT_FAILURE
        }
    }
}

/// `inferprobe probe`: one probe now; exit 0 only on `success`.
pub async fn probe(args: ProbeArgs) -> anyhow::Result<u8> {
    engine::install_crypto_provider();
    if let Some(journey) = &args.journey {
        return probe_journey(&args, journey).await;
    }
    let (target, scenario, sim) = match probe_setup(&args).await {
        Ok(x) => x,
        Err(e) => {
            redact::eprint(format_args!("error: {e:#}"));
            return Ok(EXIT_USAGE);
        }
    };
    let base_url = base_url_of(&target, sim.as_ref())?;
    let client = engine::client_for(&target.timeouts).context("building the HTTP client")?;
    let mut all_ok = true;
    let mut outcomes = Vec::new();
    let count = args.count.max(1);
    let several = count > 1;
    let mut next = tokio::time::Instant::now();
    for n in 1..=count {
        if n > 1 {
            if let Some(every) = args.interval {
                next += every;
                tokio::time::sleep_until(next).await;
            }
        }
        next = next.max(tokio::time::Instant::now());
        let mut outcome = engine::run_probe(&client, &target, &base_url, &scenario).await;
        one_shot_self_hosted_cost(&target, &mut outcome);
        all_ok &= outcome.result.is_success();
        print_probe(&args, &outcome, target.dialect, &base_url, n);
        if several {
            outcomes.push(outcome);
        }
    }
    if several {
        if args.json {
            let summary = crate::probe::show::count_summary(&outcomes);
            redact::print(format_args!("{}\n", serde_json::to_string(&summary)?));
        } else {
            redact::print(format_args!(
                "\n{}",
                crate::probe::show::count_table(&outcomes)
            ));
        }
    }
    if let Some(s) = sim {
        s.shutdown().await;
    }
    Ok(if all_ok { 0 } else { EXIT_FAILURE })
}

/// Prints one probe of `probe`: the table or JSON object (one line per probe with `--count` or
/// `--trace`), with its events before it under `--trace`, or one line per probe in a `--count`
/// table.
fn print_probe(args: &ProbeArgs, o: &Outcome, dialect: DialectKind, base_url: &str, n: u32) {
    let lines = args.trace || args.count > 1;
    if args.json {
        if args.trace {
            for e in crate::probe::show::event_lines(o) {
                redact::print(format_args!("{e}\n"));
            }
        }
        let mut v = outcome_json(o, dialect);
        if lines {
            if let Some(m) = v.as_object_mut() {
                m.insert("type".into(), "probe".into());
                m.insert("probe".into(), n.into());
            }
            redact::print(format_args!("{v}\n"));
        } else {
            redact::print(format_args!(
                "{}\n",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            ));
        }
        return;
    }
    if args.count > 1 && !args.trace {
        if n == 1 {
            redact::print(format_args!(
                "{:>5}  {:<18} {:>11} {:>11} {:>11} {:>6}\n",
                "#", "result", "TTFT", "ITL p50", "E2E", "out"
            ));
        }
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "–".into())
        };
        redact::print(format_args!(
            "{:>5}  {:<18} {:>11} {:>11} {:>11} {:>6}\n",
            n,
            o.result.as_str(),
            ms(o.ttft),
            ms(o.itl_summary().map(|s| s.p50)),
            ms(o.e2e),
            o.output_tokens
        ));
        return;
    }
    if n > 1 {
        redact::print(format_args!("\n"));
    }
    redact::print(format_args!("{}", outcome_table(o, dialect, base_url)));
    if args.trace {
        redact::print(format_args!("\n{}", crate::probe::show::waterfall(o)));
    }
}

/// A self-hosted target's cost for a one-shot probe: with no server or GPU samples, the whole
/// GPU rate is charged for the request's duration (an upper bound).
fn one_shot_self_hosted_cost(target: &Target, o: &mut Outcome) {
    if let Some(sh) = &target.self_hosted {
        let rate = crate::cost::self_hosted_hourly_usd(sh, None);
        o.cost_usd = Some(crate::cost::self_hosted_request_cost(
            rate,
            o.e2e.unwrap_or(o.elapsed),
            None,
        ));
    }
}

/// `inferprobe probe --journey J`: one run of a configured journey; exit 0 only on `success`.
async fn probe_journey(args: &ProbeArgs, name: &str) -> anyhow::Result<u8> {
    let usage = |e: String| {
        redact::eprint(format_args!("error: {e}"));
        Ok(EXIT_USAGE)
    };
    let Some(path) = &args.endpoint.config_file else {
        return usage("--journey needs --config.file".to_string());
    };
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return usage(e.to_string()),
    };
    let target = match select_from_config(&loaded, path, args.endpoint.target.as_deref(), None) {
        Ok((t, _)) => t,
        Err(e) => return usage(e),
    };
    let Some(journey) = target
        .journeys
        .iter()
        .map(|(j, _)| j.clone())
        .find(|j| j.name == name)
    else {
        let names: Vec<&str> = target
            .journeys
            .iter()
            .map(|(j, _)| j.name.as_str())
            .collect();
        return usage(format!(
            "--journey={name}: target {:?} runs no such journey; its journeys: {}",
            target.name,
            if names.is_empty() {
                "none (list them under the target's `journeys:`)".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let mut t = (**target).clone();
    t.timeouts = override_timeouts(t.timeouts, args);
    let sim = start_simulator_for(&t, &loaded).await?;
    let base_url = base_url_of(&t, sim.as_ref())?;
    let client = engine::client_for(&t.timeouts).context("building the HTTP client")?;
    let mut outcome = crate::journey::run_journey(&client, &t, &base_url, &journey).await;
    for s in &mut outcome.steps {
        one_shot_self_hosted_cost(&t, &mut s.outcome);
    }
    if args.json {
        redact::print(format_args!(
            "{}\n",
            serde_json::to_string_pretty(&crate::journey::report::journey_json(
                &outcome, t.dialect
            ))?
        ));
    } else {
        redact::print(format_args!(
            "{}",
            crate::journey::report::journey_table(&outcome, t.dialect, &base_url)
        ));
    }
    if let Some(s) = sim {
        s.shutdown().await;
    }
    Ok(if outcome.result.is_success() {
        0
    } else {
        EXIT_FAILURE
    })
}

type ProbeSetup = (Target, Scenario, Option<crate::sim::SimHandle>);

/// The config's simulator, started for a one-shot command when the target uses it.
async fn start_simulator_for(
    t: &Target,
    loaded: &Loaded,
) -> anyhow::Result<Option<crate::sim::SimHandle>> {
    match (&t.base_url, &loaded.simulator) {
        (BaseUrl::Simulator, Some(cfg)) => Ok(Some(
            crate::sim::start(cfg.clone())
                .await
                .context("starting the simulator")?,
        )),
        _ => Ok(None),
    }
}

/// The target's base URL, the running simulator's for `base_url: simulator`.
fn base_url_of(t: &Target, sim: Option<&crate::sim::SimHandle>) -> anyhow::Result<String> {
    match (&t.base_url, sim) {
        (BaseUrl::Url(u), _) => Ok(u.clone()),
        (BaseUrl::Simulator, Some(s)) => Ok(runtime::simulator_base_url(&s.base_url(), t.dialect)),
        (BaseUrl::Simulator, None) => bail!(
            "target {:?} needs the simulator, which did not start",
            t.name
        ),
    }
}

async fn probe_setup(args: &ProbeArgs) -> anyhow::Result<ProbeSetup> {
    if let Some(path) = &args.endpoint.config_file {
        let loaded = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (target, scenarios) = select_from_config(
            &loaded,
            path,
            args.endpoint.target.as_deref(),
            args.endpoint.scenario.as_deref(),
        )
        .map_err(anyhow::Error::msg)?;
        let scenario = scenarios.first().with_context(|| {
            format!(
                "target {:?} runs journeys only; run one with --journey NAME",
                target.name
            )
        })?;
        let mut t = (**target).clone();
        t.timeouts = override_timeouts(t.timeouts, args);
        let sim = start_simulator_for(&t, &loaded).await?;
        return Ok((t, (**scenario).clone(), sim));
    }
    let (target, scenario) = adhoc_target(&AdHoc {
        url: args.endpoint.url.as_deref(),
        dialect: args.endpoint.dialect.as_deref(),
        model: args.endpoint.model.as_deref(),
        prompt: args.endpoint.prompt.as_deref(),
        max_tokens: args.endpoint.max_tokens,
        api_key_env: args.endpoint.api_key_env.as_deref(),
        headers: &args.headers,
        no_usage: args.endpoint.no_usage,
        timeouts: override_timeouts(Timeouts::default(), args),
    })?;
    Ok((target, scenario, None))
}

/// The target `--target` names (else the config's first) and the scenarios `--scenario` names
/// (else all of the target's, in order). Errors name the flag and list what the config defines.
/// The config's secrets are registered with the redactor.
pub fn select_from_config<'a>(
    loaded: &'a Loaded,
    path: &std::path::Path,
    target: Option<&str>,
    scenario: Option<&str>,
) -> Result<(&'a Arc<Target>, Vec<Arc<Scenario>>), String> {
    redact::install(Redactor::from_config(loaded));
    let target = match target {
        Some(name) => loaded
            .targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                format!(
                    "--target={name}: no such target; configured: {}",
                    loaded
                        .targets
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        None => loaded
            .targets
            .first()
            .ok_or_else(|| format!("{}: defines no targets", path.display()))?,
    };
    let all = target.scenarios.iter().map(|(s, _)| s.clone());
    let scenarios = match scenario {
        None => all.collect(),
        Some(name) => vec![all.clone().find(|s| s.name == name).ok_or_else(|| {
            format!(
                "--scenario={name}: target {:?} has no such scenario; its scenarios: {}",
                target.name,
                all.map(|s| s.name.clone()).collect::<Vec<_>>().join(", ")
            )
        })?],
    };
    Ok((target, scenarios))
}

pub use crate::config::AdHoc;

/// Builds a target and its one scenario from ad-hoc flags, through the config's resolver (so
/// the config's rules apply to `--url` and the rest; errors name the flag), and registers the
/// target's secrets with the redactor.
pub fn adhoc_target(a: &AdHoc<'_>) -> anyhow::Result<(Target, Scenario)> {
    let (target, scenario) = config::resolve_adhoc(a)?;
    redact::install(Redactor::from_target(&target));
    Ok((target, scenario))
}

fn override_timeouts(t: Timeouts, a: &ProbeArgs) -> Timeouts {
    Timeouts {
        connect: a.connect_timeout.unwrap_or(t.connect),
        first_token: a.first_token_timeout.unwrap_or(t.first_token),
        idle: a.idle_timeout.unwrap_or(t.idle),
        total: a.total_timeout.unwrap_or(t.total),
    }
}

fn secs(d: Option<Duration>) -> serde_json::Value {
    d.map(|d| serde_json::json!(d.as_secs_f64()))
        .unwrap_or(serde_json::Value::Null)
}

/// The `probe --json` object. Durations in seconds, `null` when the phase was not reached.
pub fn outcome_json(o: &Outcome, dialect: DialectKind) -> serde_json::Value {
    let itl = o.itl_summary().map(|s| {
        serde_json::json!({
            "p50": s.p50.as_secs_f64(),
            "p95": s.p95.as_secs_f64(),
            "max": s.max.as_secs_f64(),
            "count": o.inter_token_latencies.len(),
        })
    });
    serde_json::json!({
        "target": o.target,
        "dialect": dialect.as_str(),
        "model": o.model,
        "scenario": o.scenario,
        "result": o.result.as_str(),
        "error": o.error,
        "http_status": o.http_status,
        "time_to_first_byte_seconds": secs(o.ttfb),
        "time_to_first_event_seconds": secs(o.time_to_first_event),
        "time_to_first_token_seconds": secs(o.ttft),
        "time_to_first_answer_token_seconds": secs(o.time_to_first_answer_token),
        "inter_token_latency_seconds": itl,
        "time_per_output_token_seconds": secs(o.tpot),
        "request_duration_seconds": secs(o.e2e),
        "elapsed_seconds": o.elapsed.as_secs_f64(),
        "output_tokens_per_second": o.output_tokens_per_second,
        "input_tokens": o.input_tokens,
        "cached_input_tokens": o.cached_input_tokens,
        "reasoning_tokens": o.reasoning_tokens,
        "output_tokens": o.output_tokens,
        "output_events": o.output_events,
        "token_source": o.token_source.as_str(),
        "token_count_mismatch": o.token_count_mismatch(),
        "cost_usd": o.cost_usd,
        "response_model": o.response_model,
        "finish_reason": o.finish_reason,
        "answer": clip(&o.answer, 2000),
        "connection": o.connection.used.map(|c| c.as_str()),
        "retried": o.connection.retried.map(|r| r.as_str()),
        "redirects": o.connection.redirects,
        "rate_limit": rate_limit_json(&o.rate_limit),
        "server_reported_seconds": server_timings_json(&o.server_timings),
        "tool_calls": o.tool_calls.iter().map(|c| serde_json::json!({
            "id": c.id,
            "name": c.name,
            "arguments": clip(&c.arguments, 2000),
        })).collect::<Vec<_>>(),
    })
}

/// Server-reported durations as `{phase: seconds}`, `null` when the server reported none.
fn server_timings_json(t: &[(&'static str, f64)]) -> serde_json::Value {
    if t.is_empty() {
        return serde_json::Value::Null;
    }
    t.iter()
        .map(|(phase, secs)| ((*phase).to_string(), serde_json::json!(secs)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The table's server line: `load 2.1 ms, prompt_eval 40.0 ms, eval 980.3 ms, total 1030.0 ms`.
fn server_timings_line(t: &[(&'static str, f64)]) -> Option<String> {
    if t.is_empty() {
        return None;
    }
    let parts: Vec<String> = t
        .iter()
        .map(|(phase, secs)| format!("{phase} {:.1} ms", secs * 1e3))
        .collect();
    Some(parts.join(", "))
}

/// The table's rate-limit line: `retry after 4s; requests 0 of 100 left (reset in 20s)`.
fn rate_limit_line(r: &crate::probe::ratelimit::RateLimitInfo) -> Option<String> {
    use crate::probe::ratelimit::Resource;
    if r.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(d) = r.retry_after {
        parts.push(format!("retry after {}", fmt_secs(d)));
    }
    for res in Resource::ALL {
        let q = r.quota(res);
        let Some(left) = q.remaining else { continue };
        let mut p = format!("{} {left}", res.as_str());
        if let Some(l) = q.limit {
            p.push_str(&format!(" of {l}"));
        }
        p.push_str(" left");
        if let Some(reset) = q.reset {
            p.push_str(&format!(" (reset in {})", fmt_secs(reset)));
        }
        parts.push(p);
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn fmt_secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// What the response said about rate limits: the asked wait and each quota it reported; `null`
/// when it said nothing.
fn rate_limit_json(r: &crate::probe::ratelimit::RateLimitInfo) -> serde_json::Value {
    use crate::probe::ratelimit::Resource;
    if r.is_empty() {
        return serde_json::Value::Null;
    }
    let mut quotas = serde_json::Map::new();
    for res in Resource::ALL {
        let q = r.quota(res);
        if q.limit.is_none() && q.remaining.is_none() && q.reset.is_none() {
            continue;
        }
        quotas.insert(
            res.as_str().to_string(),
            serde_json::json!({
                "limit": q.limit,
                "remaining": q.remaining,
                "reset_seconds": q.reset.map(|d| d.as_secs_f64()),
            }),
        );
    }
    serde_json::json!({
        "retry_after_seconds": r.retry_after.map(|d| d.as_secs_f64()),
        "quotas": quotas,
    })
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:>10.1} ms", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| format!("{:>13}", "–"))
}

/// The `probe` table.
pub fn outcome_table(o: &Outcome, dialect: DialectKind, base_url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "target               {} ({}, {})",
        o.target,
        dialect.as_str(),
        base_url
    );
    let _ = writeln!(s, "model / scenario     {} / {}", o.model, o.scenario);
    let _ = writeln!(
        s,
        "result               {}{}",
        o.result.as_str(),
        o.http_status
            .map(|c| format!(" (HTTP {c})"))
            .unwrap_or_default()
    );
    if let Some(e) = &o.error {
        let _ = writeln!(s, "error                {e}");
    }
    let _ = writeln!(s, "time to first byte   {}", ms(o.ttfb));
    let _ = writeln!(s, "time to first event  {}", ms(o.time_to_first_event));
    let _ = writeln!(s, "time to first token  {}", ms(o.ttft));
    let _ = writeln!(
        s,
        "first answer token   {}",
        ms(o.time_to_first_answer_token)
    );
    match o.itl_summary() {
        Some(i) => {
            let _ = writeln!(
                s,
                "inter-token latency  p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} gaps)",
                i.p50.as_secs_f64() * 1e3,
                i.p95.as_secs_f64() * 1e3,
                i.max.as_secs_f64() * 1e3,
                o.inter_token_latencies.len()
            );
        }
        None => {
            let _ = writeln!(s, "inter-token latency  –");
        }
    }
    let _ = writeln!(s, "time per out. token  {}", ms(o.tpot));
    let _ = writeln!(s, "end to end           {}", ms(o.e2e));
    if let Some(r) = o.output_tokens_per_second {
        let _ = writeln!(s, "output rate          {r:>10.1} tokens/s");
    }
    let _ = writeln!(
        s,
        "tokens               in {}, out {} ({}{})",
        o.input_tokens
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        o.output_tokens,
        if o.token_source.is_reported() {
            format!("from {}", o.token_source.as_str())
        } else {
            "counted from events: the server reported no usage".to_string()
        },
        o.cached_input_tokens
            .map(|c| format!(", {c} cached"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "cost                 {}",
        o.cost_usd
            .map(|c| format!("${c:.8}"))
            .unwrap_or_else(|| "– (no price configured)".into())
    );
    if o.response_model.is_some() || o.finish_reason.is_some() {
        let _ = writeln!(
            s,
            "response             model {}, finish {}",
            o.response_model.as_deref().unwrap_or("?"),
            o.finish_reason.as_deref().unwrap_or("?")
        );
    }
    if let Some(line) = server_timings_line(&o.server_timings) {
        let _ = writeln!(s, "server reports       {line}");
    }
    if let Some(line) = rate_limit_line(&o.rate_limit) {
        let _ = writeln!(s, "rate limit           {line}");
    }
    if let Some(c) = o.connection.used {
        let mut line = format!("connection           {}", c.as_str());
        if let Some(r) = o.connection.retried {
            line.push_str(&format!(", retried once ({})", r.as_str()));
        }
        if o.connection.redirects > 0 {
            line.push_str(&format!(", {} redirects followed", o.connection.redirects));
        }
        let _ = writeln!(s, "{line}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ratelimit::{Quota, RateLimitInfo};

    #[test]
    fn server_reported_durations_show_only_when_reported() {
        assert_eq!(server_timings_line(&[]), None);
        assert_eq!(server_timings_json(&[]), serde_json::Value::Null);
        let t = [("load", 0.0021), ("eval", 0.98)];
        assert_eq!(
            server_timings_line(&t).as_deref(),
            Some("load 2.1 ms, eval 980.0 ms")
        );
        assert_eq!(
            server_timings_json(&t),
            serde_json::json!({"load": 0.0021, "eval": 0.98})
        );
    }

    #[test]
    fn rate_limit_shows_in_the_table_and_json_only_when_reported() {
        let none = RateLimitInfo::default();
        assert_eq!(rate_limit_line(&none), None);
        assert_eq!(rate_limit_json(&none), serde_json::Value::Null);
        let r = RateLimitInfo {
            retry_after: Some(Duration::from_secs(4)),
            requests: Quota {
                limit: Some(100),
                remaining: Some(0),
                reset: Some(Duration::from_millis(20_500)),
            },
            ..Default::default()
        };
        assert_eq!(
            rate_limit_line(&r).as_deref(),
            Some("retry after 4s; requests 0 of 100 left (reset in 20s 500ms)")
        );
        let j = rate_limit_json(&r);
        assert_eq!(j["retry_after_seconds"], 4.0);
        assert_eq!(j["quotas"]["requests"]["remaining"], 0);
        assert_eq!(j["quotas"]["requests"]["limit"], 100);
        assert_eq!(j["quotas"]["requests"]["reset_seconds"], 20.5);
        assert!(j["quotas"].get("tokens").is_none());
    }
}
