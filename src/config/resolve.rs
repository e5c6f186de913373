//! Semantic checks and resolution: from decoded sections to a [`Loaded`] config.
//!
//! Checks and resolution happen in one pass because most checks *are* resolution (reading a
//! secret, reading a prompt file, compiling a regex). Every problem is recorded in [`Diag`] and
//! the pass carries on, so that one run reports all of them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::gpus::GpusConfig;
use super::load::{io_reason, one_of, Decoded, Diag, Environment, YamlPath};
use super::servers::ServerConfig;
use super::simulator::SimulatorConfig;
use super::types::{
    default_connection_idle_timeout, ChecksConfig, GlobalConfig, PriceConfig, ScenarioConfig,
    ScenarioRef, ScenarioSelection, ScheduleConfig, Secret, SecretRef, SelfHostedConfig,
    TargetConfig, Timeouts, TimeoutsConfig, MAX_RETRY_AFTER_LIMIT,
};
use super::{BaseUrl, Checks, ConnectionSettings, Loaded, Scenario, Target};
use crate::probe::dialect::{AuthStyle, Message};

/// Histogram metrics whose buckets the `buckets:` section may override, without the
/// `inferprobe_` prefix.
pub const BUCKET_METRICS: &[&str] = &[
    "time_to_first_token_seconds",
    "time_to_first_answer_token_seconds",
    "time_to_first_event_seconds",
    "inter_token_latency_seconds",
    "time_per_output_token_seconds",
    "request_duration_seconds",
    "time_to_first_byte_seconds",
    "output_tokens_per_second",
    "request_cost_usd",
];

/// Largest `context_tokens`: far beyond any model's window, small enough to build in memory.
const MAX_CONTEXT_TOKENS: u32 = 1_000_000;

/// Characters of filler per requested context token (a common rule of thumb for English text).
const CHARS_PER_TOKEN: usize = 4;

/// Neutral filler for long-context scenarios: plain statements that ask nothing, so the model's
/// answer is still driven by the scenario's own question.
const FILLER: &str = "The river runs past the old mill and on toward the sea. \
    A library keeps its books on long wooden shelves. \
    The morning train leaves the station at seven. \
    Bread rises slowly in a warm kitchen. \
    Clouds drift over the hills in the afternoon. \
    The market opens early on the first day of the week. ";

/// Header names whose values are credentials.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
];

/// Deterministic filler text of exactly `tokens × 4` characters.
pub(crate) fn filler(tokens: u32) -> String {
    let len = tokens as usize * CHARS_PER_TOKEN;
    FILLER.chars().cycle().take(len).collect()
}

/// Checks and resolves the decoded sections. Returns `None` when any error was recorded.
pub(crate) fn resolve(
    d: Decoded,
    source_name: &str,
    env: &Environment<'_>,
    diag: &mut Diag<'_>,
) -> Option<Loaded> {
    let root = YamlPath::root();

    // A section that failed to decode has its error recorded; defaults keep the other checks
    // going without inventing follow-up errors.
    let global = d.global.unwrap_or_default();
    check_global(&global, &root.key("global"), diag);
    let global_timeouts = global.timeouts.resolve(&Timeouts::default());

    for (model, price) in &d.prices {
        if let Some(p) = price {
            check_price(p, &root.key("prices").key(model), diag);
        }
    }

    let mut buckets = BTreeMap::new();
    for (name, bounds) in &d.buckets {
        if let Some(b) = bounds {
            if check_buckets(name, b, &root.key("buckets").key(name), diag) {
                buckets.insert(name.clone(), b.clone());
            }
        }
    }

    let mut scenarios = BTreeMap::new();
    for (name, cfg) in &d.scenarios {
        let path = root.key("scenarios").key(name);
        let s = cfg
            .as_ref()
            .and_then(|c| resolve_scenario(name, c, &path, env, diag));
        scenarios.insert(name.clone(), s.map(Arc::new));
    }
    let mut journeys = BTreeMap::new();
    for (name, cfg) in &d.journeys {
        let path = root.key("journeys").key(name);
        let j = cfg
            .as_ref()
            .and_then(|c| super::journeys::resolve_journey(name, c, &path, diag));
        journeys.insert(name.clone(), j.map(Arc::new));
    }

    let ctx = TargetContext {
        env,
        global: &global,
        global_timeouts,
        has_simulator: d.simulator.is_some(),
        server_names: d.servers.iter().flatten().map(|s| s.name.clone()).collect(),
        scenarios: &scenarios,
        journeys: &journeys,
        default_scenario: Arc::new(Scenario::builtin_default()),
        prices: &d.prices,
        adhoc: false,
    };
    let mut targets = Vec::new();
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, t) in d.targets.iter().enumerate() {
        let Some(t) = t else { continue };
        let path = root.key("targets").index(i);
        if let Some(first) = first_index.get(t.name.as_str()) {
            diag.error(
                &path.key("name"),
                format!(
                    "duplicate target name {:?} (first used by targets[{first}])",
                    t.name
                ),
            );
        } else {
            first_index.insert(&t.name, i);
        }
        if let Some(target) = resolve_target(t, &path, &ctx, diag) {
            targets.push(Arc::new(target));
        }
    }

    let simulator = d.simulator.flatten();
    let gpus = d.gpus.unwrap_or_default();
    validate_extensions(simulator.as_ref(), &gpus, &d.servers, diag);
    let otlp = d
        .otlp
        .flatten()
        .and_then(|o| super::otlp::resolve(&o, &root.key("otlp"), env, diag));

    if diag.error_count() > 0 {
        return None;
    }
    Some(Loaded {
        source_name: source_name.to_string(),
        global,
        targets,
        buckets,
        simulator,
        gpus,
        servers: d.servers.into_iter().flatten().collect(),
        otlp,
        warnings: Vec::new(),
    })
}

/// Checks of the `simulator:`, `gpus:` and `servers:` blocks, whose types live in their own
/// files. Each block adds its checks here so that they land in the same error list, e.g.
/// `if let Some(s) = simulator { s.validate(&YamlPath::root().key("simulator"), diag) }`.
fn validate_extensions(
    simulator: Option<&SimulatorConfig>,
    gpus: &GpusConfig,
    servers: &[Option<ServerConfig>],
    diag: &mut Diag<'_>,
) {
    if let Some(sim) = simulator {
        report_block(&YamlPath::root().key("simulator"), sim.validate(), diag);
    }
    report_block(&YamlPath::root().key("gpus"), gpus.validate(), diag);
    // Server names are the `server` label: checked like target names.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        let Some(s) = s else { continue };
        report_block(
            &YamlPath::root().key("servers").index(i),
            s.validate(),
            diag,
        );
        if s.is_simulator() && simulator.is_none() {
            diag.error(
                &YamlPath::root().key("servers").index(i).key("url"),
                "url: simulator needs a simulator: block",
            );
        }
        let path = YamlPath::root().key("servers").index(i).key("name");
        check_label("server", &s.name, &path, diag);
        if let Some(first) = seen.get(s.name.as_str()) {
            diag.error(
                &path,
                format!(
                    "duplicate server name {:?} (first used by servers[{first}])",
                    s.name
                ),
            );
        } else {
            seen.insert(&s.name, i);
        }
    }
}

/// Records the problems a block's own `validate()` found, given as (path relative to the block,
/// message), e.g. `("faults.http_5xx", "must be between 0 and 1")`.
fn report_block(block: &YamlPath, problems: Vec<(String, String)>, diag: &mut Diag<'_>) {
    for (rel, message) in problems {
        let path = rel
            .split('.')
            .filter(|k| !k.is_empty())
            .fold(block.clone(), |p, k| p.key(k));
        diag.error(&path, message);
    }
}

fn check_global(g: &GlobalConfig, path: &YamlPath, diag: &mut Diag<'_>) {
    if g.max_concurrent_probes == 0 {
        diag.error(&path.key("max_concurrent_probes"), "must be at least 1");
    }
    if g.max_response_bytes == 0 {
        diag.error(&path.key("max_response_bytes"), "must be at least 1");
    }
    if g.max_retry_after > MAX_RETRY_AFTER_LIMIT {
        // MAX_RETRY_AFTER_LIMIT is 24h; humantime would print it as "1day".
        diag.error(
            &path.key("max_retry_after"),
            format!(
                "must be at most 24h (got {}); a longer hold would hide an outage",
                fmt_duration(g.max_retry_after)
            ),
        );
    }
    if g.status_history > super::types::MAX_STATUS_HISTORY {
        diag.error(
            &path.key("status_history"),
            format!(
                "must be at most {} (got {})",
                super::types::MAX_STATUS_HISTORY,
                g.status_history
            ),
        );
    }
    check_schedule(&g.schedule, &path.key("schedule"), diag);
    check_timeouts(&g.timeouts, &path.key("timeouts"), diag);
    let t = g.timeouts.resolve(&Timeouts::default());
    check_first_token_within_total(&t, &path.key("timeouts"), diag);
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn check_schedule(s: &ScheduleConfig, path: &YamlPath, diag: &mut Diag<'_>) {
    if s.every < Duration::from_secs(1) {
        diag.error(
            &path.key("every"),
            format!("must be at least 1s (got {})", fmt_duration(s.every)),
        );
    }
    if !(0.0..=0.5).contains(&s.jitter) {
        diag.error(
            &path.key("jitter"),
            format!("must be between 0 and 0.5 (got {})", s.jitter),
        );
    }
    if let Some(cron) = &s.cron {
        if let Err(e) = parse_cron(cron) {
            diag.error(
                &path.key("cron"),
                format!(
                    "invalid cron expression {cron:?} ({}); write seconds first, e.g. \"0 */5 * * * *\"",
                    e.to_string().trim_end_matches('.')
                ),
            );
        }
    }
}

/// Parses a cron expression the way the scheduler does (seconds required).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
}

fn check_timeouts(t: &TimeoutsConfig, path: &YamlPath, diag: &mut Diag<'_>) {
    for (name, value) in [
        ("connect", t.connect),
        ("first_token", t.first_token),
        ("idle", t.idle),
        ("total", t.total),
    ] {
        if value == Some(Duration::ZERO) {
            diag.error(&path.key(name), "must be greater than 0");
        }
    }
}

fn check_first_token_within_total(t: &Timeouts, path: &YamlPath, diag: &mut Diag<'_>) {
    if t.first_token > t.total {
        diag.error(
            path,
            format!(
                "first_token ({}) is longer than total ({})",
                fmt_duration(t.first_token),
                fmt_duration(t.total)
            ),
        );
    }
}

fn check_price(p: &PriceConfig, path: &YamlPath, diag: &mut Diag<'_>) {
    for (name, value) in [
        ("input_per_million", Some(p.input_per_million)),
        ("output_per_million", Some(p.output_per_million)),
        ("cached_input_per_million", p.cached_input_per_million),
    ] {
        if let Some(v) = value {
            if !(v >= 0.0 && v.is_finite()) {
                diag.error(&path.key(name), format!("must not be negative (got {v})"));
            }
        }
    }
}

fn check_buckets(name: &str, bounds: &[f64], path: &YamlPath, diag: &mut Diag<'_>) -> bool {
    let before = diag.error_count();
    if !BUCKET_METRICS.contains(&name) {
        diag.error(
            path,
            format!(
                "unknown histogram `{name}`, expected one of {}",
                one_of(BUCKET_METRICS)
            ),
        );
    }
    if bounds.is_empty() {
        diag.error(path, "needs at least one bucket bound");
    }
    if let Some(i) = bounds.windows(2).position(|w| w[1] <= w[0]) {
        diag.error(
            &path.index(i + 1),
            format!(
                "bucket bounds must be strictly increasing ({} follows {})",
                bounds[i + 1],
                bounds[i]
            ),
        );
    }
    diag.error_count() == before
}

/// Records an error unless `name` is a usable label value; returns whether it is.
pub(super) fn check_label(kind: &str, name: &str, path: &YamlPath, diag: &mut Diag<'_>) -> bool {
    if name.is_empty() {
        diag.error(path, format!("{kind} name must not be empty"));
        false
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        diag.error(
            path,
            format!("{kind} name {name:?} may only contain letters, digits and `_` `.` `:` `-`"),
        );
        false
    } else {
        true
    }
}

fn resolve_scenario(
    name: &str,
    c: &ScenarioConfig,
    path: &YamlPath,
    env: &Environment<'_>,
    diag: &mut Diag<'_>,
) -> Option<Scenario> {
    let before = diag.error_count();
    check_label("scenario", name, path, diag);

    let mut messages = Vec::new();
    if let Some(system) = &c.system {
        messages.push(Message {
            role: "system".to_string(),
            content: system.clone(),
            ..Default::default()
        });
    }
    let mut sources = Vec::new();
    if !c.messages.is_empty() {
        sources.push("messages");
    }
    if c.prompt.is_some() {
        sources.push("prompt");
    }
    if c.prompt_file.is_some() {
        sources.push("prompt_file");
    }
    match sources.as_slice() {
        [] => diag.error(path, "needs one of `messages`, `prompt` or `prompt_file`"),
        ["messages"] => {
            for (i, m) in c.messages.iter().enumerate() {
                if !["system", "user", "assistant"].contains(&m.role.as_str()) {
                    diag.error(
                        &path.key("messages").index(i).key("role"),
                        format!(
                            "unknown role {:?}, expected one of `system`, `user`, `assistant`",
                            m.role
                        ),
                    );
                }
                messages.push(Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                    ..Default::default()
                });
            }
            if !c.messages.iter().any(|m| m.role == "user") {
                diag.error(&path.key("messages"), "needs at least one `user` message");
            }
        }
        ["prompt"] => {
            let prompt = c.prompt.clone().unwrap_or_default();
            if prompt.trim().is_empty() {
                diag.error(&path.key("prompt"), "must not be empty");
            }
            messages.push(user(prompt));
        }
        ["prompt_file"] => {
            let file = c.prompt_file.as_deref().unwrap_or_default();
            let p = path.key("prompt_file");
            match crate::fsutil::read_to_string(
                &env.base_dir.join(file),
                crate::fsutil::PROMPT_FILE_LIMIT,
            ) {
                Ok(text) => {
                    let text = text.trim_end_matches(['\n', '\r']).to_string();
                    if text.trim().is_empty() {
                        diag.error(&p, format!("prompt file {file:?} is empty"));
                    }
                    messages.push(user(text));
                }
                Err(e) => diag.error(
                    &p,
                    format!("cannot read prompt file {file:?}: {}", io_reason(&e)),
                ),
            }
        }
        _ => diag.error(
            path,
            format!(
                "set only one of `messages`, `prompt` and `prompt_file` (found {})",
                one_of(&sources)
            ),
        ),
    }

    if c.context_tokens > MAX_CONTEXT_TOKENS {
        diag.error(
            &path.key("context_tokens"),
            format!(
                "must be at most {MAX_CONTEXT_TOKENS} (got {})",
                c.context_tokens
            ),
        );
    } else if c.context_tokens > 0 {
        if let Some(last_user) = messages.iter_mut().rev().find(|m| m.role == "user") {
            last_user.content.push_str("\n\n");
            last_user.content.push_str(&filler(c.context_tokens));
        }
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
    let checks = compile_checks(&c.checks, &path.key("checks"), diag);

    if diag.error_count() > before {
        return None;
    }
    Some(Scenario {
        name: name.to_string(),
        messages,
        max_tokens: c.max_tokens,
        temperature: c.temperature,
        stop: c.stop.clone(),
        extra_body: c.extra_body.clone(),
        cache_bust: c.cache_bust,
        checks: checks?,
        tools: Vec::new(),
        headers: BTreeMap::new(),
    })
}

fn user(content: String) -> Message {
    Message {
        role: "user".to_string(),
        content,
        ..Default::default()
    }
}

pub(super) fn compile_checks(
    c: &ChecksConfig,
    path: &YamlPath,
    diag: &mut Diag<'_>,
) -> Option<Checks> {
    let mut ok = true;
    if let (Some(min), Some(max)) = (c.min_output_tokens, c.max_output_tokens) {
        if min > max {
            diag.error(
                &path.key("min_output_tokens"),
                format!("min_output_tokens ({min}) is greater than max_output_tokens ({max})"),
            );
            ok = false;
        }
    }
    let regex = match &c.regex {
        None => None,
        Some(r) => match regex::Regex::new(r) {
            Ok(re) => Some(re),
            Err(e) => {
                diag.error(
                    &path.key("regex"),
                    format!("invalid regex {r:?}: {}", regex_reason(&e)),
                );
                ok = false;
                None
            }
        },
    };
    ok.then(|| Checks {
        min_output_tokens: c.min_output_tokens,
        max_output_tokens: c.max_output_tokens,
        must_contain: c.must_contain.clone(),
        regex,
        valid_json: c.valid_json,
        expect_model: c.expect_model.clone(),
        expect_tool: None,
    })
}

/// The one-line cause of a regex error (its `Display` spans several lines with a caret
/// diagram, which does not fit a list of errors).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(reason) => reason.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// What every target resolves against.
struct TargetContext<'a> {
    env: &'a Environment<'a>,
    global: &'a GlobalConfig,
    global_timeouts: Timeouts,
    has_simulator: bool,
    server_names: std::collections::BTreeSet<String>,
    scenarios: &'a BTreeMap<String, Option<Arc<Scenario>>>,
    journeys: &'a BTreeMap<String, Option<Arc<super::Journey>>>,
    default_scenario: Arc<Scenario>,
    prices: &'a BTreeMap<String, Option<PriceConfig>>,
    /// An ad-hoc target built from flags: no simulator, hints name flags.
    adhoc: bool,
}

fn resolve_target(
    t: &TargetConfig,
    path: &YamlPath,
    ctx: &TargetContext<'_>,
    diag: &mut Diag<'_>,
) -> Option<Target> {
    let before = diag.error_count();
    check_label("target", &t.name, &path.key("name"), diag);
    let base_url = check_base_url(&t.base_url, ctx, &path.key("base_url"), diag);
    if t.model.trim().is_empty() {
        diag.error(&path.key("model"), "must not be empty");
    }
    let api_key = t
        .api_key
        .as_ref()
        .and_then(|r| resolve_secret(r, &path.key("api_key"), ctx.env, diag));
    check_headers(&t.headers, &path.key("headers"), diag);
    let scenarios = resolve_scenario_refs(t, &path.key("scenarios"), ctx, diag);
    let journeys =
        super::journeys::resolve_journey_refs(t, &path.key("journeys"), ctx.journeys, diag);
    if !t.dialect.spec().reports_model {
        // The check would fail every probe: a false failure by configuration.
        for (s, _) in &scenarios {
            if s.checks.expect_model.is_some() {
                diag.error(
                    &path.key("scenarios"),
                    format!(
                        "scenario {:?} checks expect_model, but {} responses never name their \
                         model",
                        s.name,
                        t.dialect.as_str()
                    ),
                );
            }
        }
    }

    let schedule = match &t.schedule {
        Some(s) => {
            check_schedule(s, &path.key("schedule"), diag);
            s.clone()
        }
        None => ctx.global.schedule.clone(),
    };
    check_timeouts(&t.timeouts, &path.key("timeouts"), diag);
    let timeouts = t.timeouts.resolve(&ctx.global_timeouts);
    // A global mistake is reported once, at `global.timeouts`, not again for every target.
    if t.timeouts.first_token.is_some() || t.timeouts.total.is_some() {
        check_first_token_within_total(&timeouts, &path.key("timeouts"), diag);
    }
    if t.max_response_bytes == Some(0) {
        diag.error(&path.key("max_response_bytes"), "must be at least 1");
    }
    let idle_timeout = t
        .connection_idle_timeout
        .unwrap_or_else(default_connection_idle_timeout);
    if idle_timeout.is_zero() || idle_timeout > MAX_CONNECTION_IDLE_TIMEOUT {
        diag.error(
            &path.key("connection_idle_timeout"),
            format!(
                "must be greater than 0 and at most {}",
                fmt_duration(MAX_CONNECTION_IDLE_TIMEOUT)
            ),
        );
    }
    let price = match &t.price {
        Some(p) => {
            check_price(p, &path.key("price"), diag);
            Some(p.clone())
        }
        None => ctx.prices.get(&t.model).cloned().flatten(),
    };
    let (price, self_hosted) = match &t.self_hosted {
        None => (price, None),
        Some(sh) => {
            check_self_hosted(sh, &path.key("self_hosted"), &ctx.server_names, diag);
            if t.price.is_some() {
                diag.error(
                    &path.key("self_hosted"),
                    "a target has either self_hosted or price, not both",
                );
            }
            // Token prices of the model do not apply to GPUs you pay for by the hour.
            (None, Some(sh.clone()))
        }
    };

    if diag.error_count() > before {
        return None;
    }
    let auth = t
        .auth
        .unwrap_or_else(|| default_auth(t.dialect, api_key.is_some()));
    if auth == AuthStyle::AwsSigv4 && api_key.is_none() {
        // Read again before every request (files and session tokens rotate): a warning now.
        let var = |k: &str| (ctx.env.var)(k).filter(|v| !v.trim().is_empty());
        let home = var("HOME").map(std::path::PathBuf::from);
        let bearer = var(crate::probe::aws::BEARER_TOKEN_ENV).is_some();
        let creds = crate::probe::aws::credentials_from(&var, home.as_deref());
        if let (false, Err(e)) = (bearer, creds) {
            diag.warn(
                &path.key("auth"),
                format!("{e} (probes are not sent, and end http_4xx, until there are some)"),
            );
        }
    }
    Some(Target {
        name: t.name.clone(),
        dialect: t.dialect,
        base_url: base_url?,
        model: t.model.clone(),
        api_key,
        auth,
        headers: t.headers.clone(),
        query: t.query.clone(),
        include_usage: t.include_usage,
        scenarios,
        journeys,
        scenario_selection: t.scenario_selection,
        schedule,
        timeouts,
        max_response_bytes: t
            .max_response_bytes
            .unwrap_or(ctx.global.max_response_bytes),
        price,
        self_hosted,
        production: t.production,
        connection: ConnectionSettings {
            mode: t.connection,
            idle_timeout,
            follow_redirects: t.follow_redirects,
        },
    })
}

/// Longest `connection_idle_timeout`: servers and load balancers close idle connections long
/// before this, so a longer pool life would only keep dead sockets.
const MAX_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

fn check_self_hosted(
    sh: &SelfHostedConfig,
    path: &YamlPath,
    servers: &std::collections::BTreeSet<String>,
    diag: &mut Diag<'_>,
) {
    if sh.gpus == 0 {
        diag.error(&path.key("gpus"), "must be at least 1");
    }
    if !(sh.gpu_hour_usd.is_finite() && sh.gpu_hour_usd >= 0.0) {
        diag.error(&path.key("gpu_hour_usd"), "must be a non-negative number");
    }
    if let Some(e) = sh.energy_usd_per_kwh {
        if !(e.is_finite() && e >= 0.0) {
            diag.error(
                &path.key("energy_usd_per_kwh"),
                "must be a non-negative number",
            );
        }
    }
    if let Some(name) = &sh.server {
        if !servers.contains(name) {
            let known: Vec<&str> = servers.iter().map(String::as_str).collect();
            diag.error(
                &path.key("server"),
                format!(
                    "no servers: entry named {name:?}; defined: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
}

fn check_base_url(
    raw: &str,
    ctx: &TargetContext<'_>,
    path: &YamlPath,
    diag: &mut Diag<'_>,
) -> Option<BaseUrl> {
    let has_simulator = ctx.has_simulator;
    let raw = raw.trim();
    // The same rules for `--url`, with hints in terms of flags.
    let credential_hint = if ctx.adhoc {
        "--api-key-env NAME"
    } else {
        "`api_key` with {env: NAME}"
    };
    if raw == "simulator" && !ctx.adhoc {
        if has_simulator {
            return Some(BaseUrl::Simulator);
        }
        diag.error(
            path,
            "`simulator` needs a top-level `simulator:` block (e.g. `simulator: {listen: 127.0.0.1:0}`)",
        );
        return None;
    }
    let url = match reqwest::Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            diag.error(
                path,
                format!(
                        "{:?} is not a URL ({e}); write e.g. \"http://127.0.0.1:8000/v1\" or `simulator`",
                    without_userinfo(raw)
                ),
            );
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // The URL is not echoed: it holds a credential.
        diag.error(
            path,
            format!("must not contain credentials; use {credential_hint}"),
        );
        return None;
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        diag.error(
            path,
            format!(
                "{:?} is not an http:// or https:// URL (or `simulator`)",
                without_userinfo(raw)
            ),
        );
        return None;
    }
    if ctx.adhoc && url.fragment().is_some() {
        // The query of `--url` was already taken apart into query parameters.
        diag.error(path, format!("{raw:?} must not carry a #fragment"));
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        diag.error(
            path,
            format!(
                "{raw:?} must not carry a query or fragment; put query parameters under `query:`"
            ),
        );
        return None;
    }
    Some(BaseUrl::Url(raw.trim_end_matches('/').to_string()))
}

/// The auth style of a target that names none: the dialect's, except that a key given to a
/// signing dialect (Bedrock) is an API key sent as a bearer token.
fn default_auth(dialect: crate::probe::dialect::DialectKind, has_key: bool) -> AuthStyle {
    match dialect.default_auth() {
        AuthStyle::AwsSigv4 if has_key => AuthStyle::Bearer,
        other => other,
    }
}

/// `raw` with anything before an `@` in its authority replaced, for error messages: a URL that
/// fails to parse may still carry a password.
fn without_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &raw[..start], &raw[start + at..]).into(),
        None => raw.into(),
    }
}

/// An API key that cannot be read: an error, or (for `check-config`) a warning that says what
/// `run` will do.
fn missing_secret(path: &YamlPath, message: String, env: &Environment<'_>, diag: &mut Diag<'_>) {
    if env.secrets_required {
        diag.error(path, message);
    } else {
        diag.warn(
            path,
            format!("{message} (`run` and `probe` will fail until this is fixed)"),
        );
    }
}

pub(crate) fn resolve_secret(
    r: &SecretRef,
    path: &YamlPath,
    env: &Environment<'_>,
    diag: &mut Diag<'_>,
) -> Option<Secret> {
    // Messages name the variable or the file, never the value.
    let value = match r {
        SecretRef::Env { env: name } => {
            if name.is_empty() {
                diag.error(&path.key("env"), "needs an environment variable name");
                return None;
            }
            match (env.var)(name) {
                None => {
                    missing_secret(
                        path,
                        format!("environment variable {name} is not set"),
                        env,
                        diag,
                    );
                    return None;
                }
                Some(v) if v.trim().is_empty() => {
                    diag.error(path, format!("environment variable {name} is empty"));
                    return None;
                }
                Some(v) => v.trim().to_string(),
            }
        }
        SecretRef::File { file } => match crate::fsutil::read_to_string(
            &env.base_dir.join(file),
            crate::fsutil::SECRET_FILE_LIMIT,
        ) {
            Err(e) => {
                missing_secret(
                    path,
                    format!("cannot read API key file {file:?}: {}", io_reason(&e)),
                    env,
                    diag,
                );
                return None;
            }
            Ok(v) if v.trim().is_empty() => {
                diag.error(path, format!("API key file {file:?} is empty"));
                return None;
            }
            Ok(v) => v.trim().to_string(),
        },
        SecretRef::Inline(v) => {
            if v.trim().is_empty() {
                diag.error(path, "API key is empty");
                return None;
            }
            diag.warn(path, "inline API key; prefer {env: NAME} or {file: PATH}");
            v.trim().to_string()
        }
    };
    if reqwest::header::HeaderValue::from_str(&value).is_err() {
        diag.error(
            path,
            "API key contains characters that cannot be sent in an HTTP header",
        );
        return None;
    }
    Some(Secret::new(value))
}

/// True for a header whose value is a credential (`authorization`, `x-api-key`, ...).
pub(crate) fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

pub(super) fn check_headers(
    headers: &BTreeMap<String, String>,
    path: &YamlPath,
    diag: &mut Diag<'_>,
) {
    for (name, value) in headers {
        let p = path.key(name);
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            diag.error(&p, format!("{name:?} is not a valid HTTP header name"));
        }
        // The value is not echoed: it may be a credential.
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            diag.error(
                &p,
                "value contains characters that cannot be sent in an HTTP header",
            );
        }
        if is_credential_header(name) {
            diag.warn(
                &p,
                format!(
                    "header {name} carries a credential in the config file; prefer `api_key: {{env: NAME}}` with `auth: bearer | x-api-key | api-key`"
                ),
            );
        }
    }
}

fn resolve_scenario_refs(
    t: &TargetConfig,
    path: &YamlPath,
    ctx: &TargetContext<'_>,
    diag: &mut Diag<'_>,
) -> Vec<(Arc<Scenario>, u32)> {
    if t.scenarios.is_empty() {
        if !t.journeys.is_empty() {
            return Vec::new();
        }
        if ctx.scenarios.is_empty() {
            return vec![(ctx.default_scenario.clone(), 1)];
        }
        return ctx
            .scenarios
            .values()
            .flatten()
            .map(|s| (s.clone(), 1))
            .collect();
    }
    resolve_refs(
        t,
        &t.scenarios,
        "scenario",
        ctx.scenarios,
        path,
        diag,
        |_, _, _| true,
    )
}

/// Resolves one of a target's lists of named references (`scenarios:`, `journeys:`) against
/// the `kind`s the file defines: a name listed twice or not defined is an error at its index,
/// and so is a weight that is 0 or has no effect. `accept` checks a defined one against the
/// target (recording why it does not fit); a definition that failed its own checks is skipped,
/// its error being recorded already.
pub(super) fn resolve_refs<T>(
    t: &TargetConfig,
    refs: &[ScenarioRef],
    kind: &str,
    defined: &BTreeMap<String, Option<Arc<T>>>,
    path: &YamlPath,
    diag: &mut Diag<'_>,
    mut accept: impl FnMut(&Arc<T>, &YamlPath, &mut Diag<'_>) -> bool,
) -> Vec<(Arc<T>, u32)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, r) in refs.iter().enumerate() {
        let p = path.index(i);
        let name = r.name();
        if !seen.insert(name) {
            diag.error(&p, format!("{kind} {name:?} is listed twice"));
            continue;
        }
        match defined.get(name) {
            None if defined.is_empty() => diag.error(
                &p,
                format!("unknown {kind} {name:?}; the file defines no {kind}s"),
            ),
            None => {
                let names: Vec<&str> = defined.keys().map(String::as_str).collect();
                diag.error(
                    &p,
                    format!(
                        "unknown {kind} {name:?}, expected one of {}",
                        one_of(&names)
                    ),
                );
            }
            Some(None) => {}
            Some(Some(x)) => {
                if accept(x, &p, diag) {
                    out.push((x.clone(), r.weight()));
                }
            }
        }
        check_weight(t, r, &p, diag);
    }
    out
}

/// A `{name, weight}` reference's weight: at least 1, and only with weighted selection.
fn check_weight(t: &TargetConfig, r: &ScenarioRef, p: &YamlPath, diag: &mut Diag<'_>) {
    if let ScenarioRef::Weighted { weight, .. } = r {
        let wp = p.key("weight");
        if *weight == 0 {
            diag.error(&wp, "must be at least 1");
        } else if t.scenario_selection != ScenarioSelection::Weighted && diag.is_set(&wp) {
            diag.error(
                &wp,
                "has no effect unless the target sets `scenario_selection: weighted`",
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ad-hoc targets

/// The flags of an ad-hoc target (`probe` and `calibrate` without a config file). No `Debug`:
/// header values may be credentials.
pub struct AdHoc<'a> {
    /// `--url`.
    pub url: Option<&'a str>,
    /// `--dialect`.
    pub dialect: Option<&'a str>,
    /// `--model`.
    pub model: Option<&'a str>,
    /// `--prompt`.
    pub prompt: Option<&'a str>,
    /// `--max-tokens`.
    pub max_tokens: u32,
    /// `--api-key-env`.
    pub api_key_env: Option<&'a str>,
    /// `--header NAME: VALUE`, repeated.
    pub headers: &'a [String],
    /// `--no-usage`.
    pub no_usage: bool,
    /// Timeouts after any `--*-timeout` flags.
    pub timeouts: Timeouts,
}

/// Every problem with the flags of an ad-hoc target, one per line, each naming its flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct AdHocErrors(pub Vec<String>);

/// Builds a target named `adhoc` and its one scenario from flags, through the same checks and
/// resolution as a config target (URL rules, header names and values, the API key, timeouts,
/// `max_tokens`). A query string in `--url` becomes the target's query parameters (as a
/// config's `query:`), so the dialect's path is appended to the URL's path. `{env: NAME}` is read
/// from the process environment.
pub fn resolve_adhoc(a: &AdHoc<'_>) -> Result<(Target, Scenario), AdHocErrors> {
    resolve_adhoc_with(a, &|name: &str| std::env::var(name).ok())
}

/// Like [`resolve_adhoc`], with an explicit environment-variable lookup.
pub fn resolve_adhoc_with(
    a: &AdHoc<'_>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(Target, Scenario), AdHocErrors> {
    let (Some(url), Some(dialect), Some(model)) = (a.url, a.dialect, a.model) else {
        return Err(AdHocErrors(vec![
            "give either --config.file, or --url, --dialect and --model".to_string(),
        ]));
    };
    let mut errors = Vec::new();
    let dialect = match serde_json::from_value::<crate::probe::dialect::DialectKind>(
        serde_json::Value::String(dialect.to_string()),
    ) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(format!("--dialect: {e}"));
            None
        }
    };
    let (base_url, query) = match split_query(url) {
        Ok(x) => x,
        Err(e) => {
            errors.push(format!("--url: {e}"));
            (url.to_string(), BTreeMap::new())
        }
    };
    let mut headers = BTreeMap::new();
    for (i, h) in a.headers.iter().enumerate() {
        match h.split_once(':') {
            Some((k, v)) => {
                headers.insert(k.trim().to_string(), v.trim().to_string());
            }
            // Not echoed: a malformed header may be a bare credential.
            None => errors.push(format!(
                "--header (#{}): expected \"NAME: VALUE\" (the value is not shown: it may be a credential)",
                i + 1
            )),
        }
    }
    let Some(dialect) = dialect else {
        return Err(AdHocErrors(errors));
    };

    let t = TargetConfig {
        name: "adhoc".to_string(),
        dialect,
        base_url,
        model: model.to_string(),
        api_key: a.api_key_env.map(|v| SecretRef::Env { env: v.to_string() }),
        auth: None,
        headers,
        query,
        include_usage: !a.no_usage,
        scenarios: vec![ScenarioRef::Name("adhoc".to_string())],
        journeys: Vec::new(),
        scenario_selection: ScenarioSelection::default(),
        schedule: None,
        timeouts: TimeoutsConfig {
            connect: Some(a.timeouts.connect),
            first_token: Some(a.timeouts.first_token),
            idle: Some(a.timeouts.idle),
            total: Some(a.timeouts.total),
        },
        max_response_bytes: None,
        price: None,
        self_hosted: None,
        production: false,
        connection: Default::default(),
        connection_idle_timeout: None,
        follow_redirects: false,
    };
    let builtin = Scenario::builtin_default();
    let prompt = match a.prompt {
        Some(p) => p.to_string(),
        None => builtin
            .messages
            .iter()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default(),
    };
    let sc = ScenarioConfig {
        system: None,
        messages: Vec::new(),
        prompt: Some(prompt),
        prompt_file: None,
        context_tokens: 0,
        max_tokens: a.max_tokens,
        temperature: builtin.temperature,
        stop: Vec::new(),
        extra_body: serde_json::Map::new(),
        cache_bust: builtin.cache_bust,
        checks: ChecksConfig::default(),
    };

    // There is no document: paths are reported relative to the target, then named as flags.
    let root = super::load::Node {
        line: None,
        kind: super::load::Kind::Null,
    };
    let mut diag = Diag::new(&root);
    let env = Environment {
        base_dir: std::path::Path::new("."),
        var,
        secrets_required: true,
    };
    let scenario_path = YamlPath::root().key("scenario");
    let scenario = resolve_scenario("adhoc", &sc, &scenario_path, &env, &mut diag).map(Arc::new);
    let mut scenarios = BTreeMap::new();
    scenarios.insert("adhoc".to_string(), scenario.clone());
    let global = GlobalConfig::default();
    let prices = BTreeMap::new();
    let journeys = BTreeMap::new();
    let ctx = TargetContext {
        env: &env,
        global: &global,
        global_timeouts: Timeouts::default(),
        has_simulator: false,
        server_names: Default::default(),
        scenarios: &scenarios,
        journeys: &journeys,
        default_scenario: Arc::new(builtin),
        prices: &prices,
        adhoc: true,
    };
    let target = resolve_target(&t, &YamlPath::root(), &ctx, &mut diag);
    // Warnings are about what to write in a config file; flags have nothing to warn about.
    let (config_errors, _warnings) = diag.finish();
    errors.extend(
        config_errors
            .iter()
            .map(|e| format!("{}: {}", flag_for(&e.path), e.message)),
    );
    match (target, scenario) {
        (Some(t), Some(s)) if errors.is_empty() => Ok((t, (*s).clone())),
        _ => {
            if errors.is_empty() {
                errors.push("invalid ad-hoc target".to_string());
            }
            Err(AdHocErrors(errors))
        }
    }
}

/// Splits a query string off `--url`: the URL without it, and its parameters. A parameter given
/// twice is an error, since a target's query parameters are a map.
fn split_query(url: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let url = url.trim();
    let Some(q) = url.find('?') else {
        return Ok((url.to_string(), BTreeMap::new()));
    };
    let (head, rest) = url.split_at(q);
    let (query, fragment) = match rest.find('#') {
        Some(f) => (&rest[1..f], &rest[f..]),
        None => (&rest[1..], ""),
    };
    let mut params = BTreeMap::new();
    // Parameters are decoded here and encoded again when the request is built.
    let parsed = reqwest::Url::parse(&format!("http://x/?{query}"))
        .map_err(|e| format!("cannot read the query string ({e})"))?;
    for (k, v) in parsed.query_pairs() {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("query parameter {k:?} is given twice"));
        }
    }
    Ok((format!("{head}{fragment}"), params))
}

/// The flag behind a path of the ad-hoc target.
fn flag_for(path: &str) -> String {
    let first = path.split(['.', '[']).next().unwrap_or("");
    match (first, path) {
        (_, "timeouts.connect") => "--connect-timeout".to_string(),
        (_, "timeouts.first_token") => "--first-token-timeout".to_string(),
        (_, "timeouts.idle") => "--idle-timeout".to_string(),
        (_, "timeouts.total") => "--total-timeout".to_string(),
        (_, "scenario.max_tokens") => "--max-tokens".to_string(),
        ("timeouts", _) => "--first-token-timeout/--total-timeout".to_string(),
        ("scenario", _) => "--prompt".to_string(),
        ("base_url" | "query", _) => "--url".to_string(),
        ("model", _) => "--model".to_string(),
        ("dialect", _) => "--dialect".to_string(),
        ("api_key", _) => "--api-key-env".to_string(),
        ("headers", _) => match path.strip_prefix("headers.") {
            Some(name) => format!("--header {name}"),
            None => "--header".to_string(),
        },
        ("include_usage", _) => "--no-usage".to_string(),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_has_the_requested_length_and_is_deterministic() {
        assert_eq!(filler(0), "");
        assert_eq!(filler(2000).len(), 8000);
        assert_eq!(filler(2000), filler(2000));
        assert_eq!(filler(3), "The river ru");
        assert!(filler(100).is_ascii());
    }

    #[test]
    fn regex_reason_is_one_line() {
        // Built at run time: a literal bad pattern would trip clippy's own regex check.
        let pattern = String::from("(");
        let e = regex::Regex::new(&pattern).unwrap_err();
        assert_eq!(regex_reason(&e), "unclosed group");
    }

    #[test]
    fn query_strings_are_split_off_ad_hoc_urls() {
        let (base, q) = split_query("http://h/v1?api-version=1&x=a%20b#f").unwrap();
        assert_eq!(base, "http://h/v1#f");
        assert_eq!(
            q.into_iter().collect::<Vec<_>>(),
            [
                ("api-version".to_string(), "1".to_string()),
                ("x".to_string(), "a b".to_string())
            ]
        );
        assert_eq!(split_query("http://h/v1").unwrap().0, "http://h/v1");
        assert!(split_query("http://h/v1?a=1&a=2").is_err());
    }

    #[test]
    fn userinfo_is_not_shown_in_url_errors() {
        assert_eq!(
            without_userinfo("http://u:p@h:1/x@y"),
            "http://<redacted>@h:1/x@y"
        );
        assert_eq!(without_userinfo("http://h/x@y"), "http://h/x@y");
        assert_eq!(without_userinfo("u:p@h"), "<redacted>@h");
    }

    #[test]
    fn ad_hoc_paths_name_flags() {
        assert_eq!(flag_for("base_url"), "--url");
        assert_eq!(flag_for("api_key.env"), "--api-key-env");
        assert_eq!(flag_for("headers.X-Y"), "--header X-Y");
        assert_eq!(flag_for("timeouts.idle"), "--idle-timeout");
        assert_eq!(flag_for("scenario.max_tokens"), "--max-tokens");
        assert_eq!(flag_for("scenario.prompt"), "--prompt");
    }

    #[test]
    fn cron_with_seconds() {
        assert!(parse_cron("0 */5 * * * *").is_ok());
        assert!(parse_cron("*/5 * * * *").is_err());
        assert!(parse_cron("0 61 * * * *").is_err());
    }
}

#[cfg(test)]
mod resolution_tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{
        load_str_with, summary, BaseUrl, Environment, Loaded, PriceConfig, ScenarioSelection,
        ScheduleConfig, Timeouts,
    };
    use crate::probe::dialect::{AuthStyle, DialectKind};

    fn var(name: &str) -> Option<String> {
        (name == "TEST_KEY").then(|| "sk-env-secret-value".to_string())
    }

    fn load(text: &str) -> Loaded {
        let env = Environment {
            base_dir: Path::new("."),
            var: &var,
            secrets_required: true,
        };
        load_str_with(text, "test.yml", &env).unwrap_or_else(|e| panic!("{e}"))
    }

    const TARGET: &str = "
    dialect: openai-chat
    base_url: http://127.0.0.1:8000/v1/
    model: m
";

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let loaded = load(&format!("targets:\n  - name: t{TARGET}"));
        let t = &loaded.targets[0];
        assert_eq!(t.name, "t");
        assert_eq!(t.dialect, DialectKind::OpenaiChat);
        assert_eq!(
            t.base_url,
            BaseUrl::Url("http://127.0.0.1:8000/v1".to_string())
        );
        assert_eq!(t.auth, AuthStyle::Bearer);
        assert!(t.api_key.is_none());
        assert!(t.include_usage);
        assert_eq!(t.schedule, ScheduleConfig::default());
        assert_eq!(t.timeouts, Timeouts::default());
        assert_eq!(t.max_response_bytes, 4 * 1024 * 1024);
        assert_eq!(t.price, None);
        assert!(!t.production);
        assert_eq!(t.scenario_selection, ScenarioSelection::Rotate);
        assert_eq!(t.scenarios.len(), 1);
        assert_eq!(t.scenarios[0].0.name, "default");
        assert_eq!(t.scenarios[0].1, 1);
        assert!(loaded.simulator.is_none());
        assert!(loaded.buckets.is_empty());
        assert!(loaded.warnings.is_empty());
        assert_eq!(
            summary(&loaded),
            "OK: 1 target, 1 scenario, simulator off, 0 warnings"
        );
    }

    #[test]
    fn anthropic_defaults_to_x_api_key() {
        let loaded = load(
            "targets:\n  - name: a\n    dialect: anthropic-messages\n    base_url: https://api.anthropic.com\n    model: m\n    api_key: {env: TEST_KEY}\n",
        );
        let t = &loaded.targets[0];
        assert_eq!(t.auth, AuthStyle::XApiKey);
        assert_eq!(
            t.api_key.as_ref().map(|k| k.expose()),
            Some("sk-env-secret-value")
        );
    }

    #[test]
    fn target_settings_fall_back_to_global_then_defaults() {
        let loaded = load(&format!(
            "global:
  schedule: {{every: 10s, jitter: 0.3}}
  timeouts: {{connect: 2s, total: 60s}}
  max_response_bytes: 1000
targets:
  - name: inherits{TARGET}  - name: overrides{TARGET}    schedule: {{cron: '0 */5 * * * *'}}
    timeouts: {{first_token: 5s}}
    max_response_bytes: 50
    price: {{input_per_million: 1, output_per_million: 2}}
    auth: api-key
prices:
  m: {{input_per_million: 0.5, output_per_million: 1.5, cached_input_per_million: 0.25}}
"
        ));
        let inherits = &loaded.targets[0];
        assert_eq!(inherits.schedule.every, Duration::from_secs(10));
        assert_eq!(inherits.schedule.jitter, 0.3);
        let expected = Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            total: Duration::from_secs(60),
        };
        assert_eq!(inherits.timeouts, expected);
        assert_eq!(inherits.max_response_bytes, 1000);
        assert_eq!(
            inherits.price,
            Some(PriceConfig {
                input_per_million: 0.5,
                output_per_million: 1.5,
                cached_input_per_million: Some(0.25),
            })
        );

        let overrides = &loaded.targets[1];
        // A target's schedule replaces the global one as a whole.
        assert_eq!(
            overrides.schedule,
            ScheduleConfig {
                every: Duration::from_secs(30),
                jitter: 0.1,
                cron: Some("0 */5 * * * *".to_string()),
            }
        );
        assert_eq!(
            overrides.timeouts,
            Timeouts {
                first_token: Duration::from_secs(5),
                ..expected
            }
        );
        assert_eq!(overrides.max_response_bytes, 50);
        assert_eq!(overrides.auth, AuthStyle::ApiKey);
        assert_eq!(
            overrides.price,
            Some(PriceConfig {
                input_per_million: 1.0,
                output_per_million: 2.0,
                cached_input_per_million: None,
            })
        );
    }

    #[test]
    fn targets_without_a_list_run_every_scenario_in_name_order() {
        let loaded = load(&format!(
            "scenarios:
  zeta: {{prompt: z}}
  alpha: {{prompt: a}}
targets:
  - name: all{TARGET}  - name: some{TARGET}    scenarios: [zeta, {{name: alpha, weight: 3}}]
    scenario_selection: weighted
"
        ));
        let names = |i: usize| -> Vec<(String, u32)> {
            loaded.targets[i]
                .scenarios
                .iter()
                .map(|(s, w)| (s.name.clone(), *w))
                .collect()
        };
        assert_eq!(
            names(0),
            [("alpha".to_string(), 1), ("zeta".to_string(), 1)]
        );
        assert_eq!(
            names(1),
            [("zeta".to_string(), 1), ("alpha".to_string(), 3)]
        );
        // Both targets share one resolved scenario.
        assert!(std::sync::Arc::ptr_eq(
            &loaded.targets[0].scenarios[0].0,
            &loaded.targets[1].scenarios[1].0
        ));
        assert_eq!(
            summary(&loaded),
            "OK: 2 targets, 2 scenarios, simulator off, 0 warnings"
        );
    }

    #[test]
    fn messages_put_system_first_and_filler_on_the_last_user_message() {
        let loaded = load(&format!(
            "scenarios:
  conv:
    system: Be brief.
    messages:
      - {{role: user, content: First.}}
      - {{role: assistant, content: Ok.}}
      - {{role: user, content: Second.}}
    context_tokens: 10
    max_tokens: 7
    temperature: 0.5
    stop: [END]
    cache_bust: false
    extra_body: {{ignore_eos: true}}
    checks: {{min_output_tokens: 1, max_output_tokens: 7, must_contain: [x], regex: '^a+$', valid_json: true, expect_model: m}}
targets:
  - name: t{TARGET}"
        ));
        let s = &loaded.targets[0].scenarios[0].0;
        let roles: Vec<&str> = s.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(s.messages[0].content, "Be brief.");
        assert_eq!(s.messages[1].content, "First.");
        assert_eq!(
            s.messages[3].content,
            format!("Second.\n\n{}", super::filler(10))
        );
        assert_eq!(super::filler(10).len(), 40);
        assert_eq!(s.max_tokens, 7);
        assert_eq!(s.temperature, 0.5);
        assert_eq!(s.stop, ["END"]);
        assert!(!s.cache_bust);
        assert_eq!(
            s.extra_body.get("ignore_eos"),
            Some(&serde_json::json!(true))
        );
        assert_eq!(s.checks.min_output_tokens, Some(1));
        assert_eq!(s.checks.max_output_tokens, Some(7));
        assert_eq!(s.checks.must_contain, ["x"]);
        let re = s.checks.regex.as_ref().map(|r| r.as_str());
        assert_eq!(re, Some("^a+$"));
        assert!(s.checks.valid_json);
        assert_eq!(s.checks.expect_model.as_deref(), Some("m"));
    }

    #[test]
    fn prompt_becomes_one_user_message_after_the_system_prompt() {
        let loaded = load(&format!(
            "scenarios:\n  p: {{system: S, prompt: Hello, context_tokens: 2000}}\ntargets:\n  - name: t{TARGET}"
        ));
        let s = &loaded.targets[0].scenarios[0].0;
        assert_eq!(s.messages.len(), 2);
        assert_eq!(s.messages[0].role, "system");
        assert_eq!(s.messages[1].role, "user");
        assert_eq!(s.messages[1].content.len(), "Hello\n\n".len() + 8000);
        assert!(s.messages[1].content.starts_with("Hello\n\nThe river"));
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let loaded = load(&format!(
            "targets:
  - name: inline{TARGET}    api_key: sk-inline-secret-value
    headers: {{Authorization: Bearer sk-header-secret-value, X-Trace: 'on'}}
  - name: env{TARGET}    api_key: {{env: TEST_KEY}}
"
        ));
        let debug = format!("{loaded:?}");
        for secret in [
            "sk-inline-secret-value",
            "sk-header-secret-value",
            "sk-env-secret-value",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("Authorization"));
        assert_eq!(
            loaded.targets[0].api_key.as_ref().map(|k| k.expose()),
            Some("sk-inline-secret-value")
        );
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "targets[0].api_key: inline API key; prefer {env: NAME} or {file: PATH}",
                "targets[0].headers.Authorization: header Authorization carries a credential in the config file; prefer `api_key: {env: NAME}` with `auth: bearer | x-api-key | api-key`",
            ]
        );
        assert_eq!(
            summary(&loaded),
            "OK: 2 targets, 1 scenario, simulator off, 2 warnings"
        );
    }

    #[test]
    fn errors_do_not_echo_secrets() {
        let env = Environment {
            base_dir: Path::new("."),
            var: &|_: &str| Some("bad\nvalue-secret".to_string()),
            secrets_required: true,
        };
        let text = format!(
            "targets:\n  - name: t{TARGET}    api_key: {{env: K}}\n    headers: {{x-api-key: \"a\\nheader-secret\"}}\n"
        );
        let err = load_str_with(&text, "t.yml", &env).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(
            err,
            "t.yml: 2 errors\n  \
             targets[0].api_key (line 6): API key contains characters that cannot be sent in an HTTP header\n  \
             targets[0].headers.x-api-key (line 7): value contains characters that cannot be sent in an HTTP header"
        );
    }

    #[test]
    fn simulator_targets_and_empty_simulator_block() {
        let loaded = load(
            "simulator:\ntargets:\n  - {name: s, dialect: openai-chat, base_url: simulator, model: m}\n",
        );
        assert_eq!(loaded.targets[0].base_url, BaseUrl::Simulator);
        assert!(loaded.simulator.is_some());
        assert_eq!(
            summary(&loaded),
            "OK: 1 target, 1 scenario, simulator on, 0 warnings"
        );
    }
}
