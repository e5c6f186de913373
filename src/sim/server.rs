//! The simulator's shared state, its HTTP routes and the request handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::capacity::Slots;
use super::metrics::SimMetrics;
use super::record::{lock, Records, RequestRecord, SharedRecord};
use super::stream::{self, Job};
use super::wire::{self, ErrorKind};
use super::{control, request, sample, Api, SimError};
use crate::config::simulator::{FaultKind, FaultOn, SimulatorConfig};

/// Largest request body accepted (long-context prompts included).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Everything one simulator shares between its requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SimState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: RwLock<SimulatorConfig>,
    rng: Mutex<StdRng>,
    slots: Arc<Slots>,
    metrics: SimMetrics,
    records: Records,
    next_id: AtomicU64,
    /// Random per-instance prefix of response ids, so two simulators never share an id.
    id_tag: String,
    http_5xx_count: AtomicU64,
    shutdown: watch::Sender<bool>,
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

impl SimState {
    /// A simulator state for a validated config.
    pub fn new(cfg: SimulatorConfig) -> Result<SimState, SimError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            let msgs: Vec<String> = problems.iter().map(|(p, m)| format!("{p}: {m}")).collect();
            return Err(SimError::Config(msgs.join("; ")));
        }
        let metrics = SimMetrics::new(metrics_model(&cfg))
            .map_err(|e| SimError::Config(format!("metrics: {e}")))?;
        let id_tag: String = {
            let mut r = StdRng::from_os_rng();
            (0..6)
                .map(|_| char::from(b'a' + r.random_range(0..26u8)))
                .collect()
        };
        Ok(SimState(Arc::new(Inner {
            rng: Mutex::new(rng_for(cfg.seed)),
            slots: Slots::new(cfg.slots),
            config: RwLock::new(cfg),
            metrics,
            records: Records::default(),
            next_id: AtomicU64::new(1),
            id_tag,
            http_5xx_count: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
        })))
    }

    /// The current behaviour.
    pub fn config(&self) -> SimulatorConfig {
        self.0
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies a partial change (same field names as the config) to later requests.
    pub fn update(&self, patch: &Value) -> Result<SimulatorConfig, String> {
        let mut cfg = self.0.config.write().unwrap_or_else(|p| p.into_inner());
        let next = control::apply_patch(&cfg, patch)?;
        if patch.get("seed").is_some() {
            *self.rng() = rng_for(next.seed);
        }
        self.0.slots.set_limit(next.slots);
        self.0.metrics.touch(metrics_model(&next));
        *cfg = next.clone();
        let mut shown = patch.clone();
        if let Some(k) = shown.get_mut("api_key") {
            *k = Value::from("<redacted>");
        }
        tracing::info!(change = %shown, "Simulator behaviour changed.");
        Ok(next)
    }

    /// The recorded requests, oldest first.
    pub fn ground_truth(&self) -> Vec<RequestRecord> {
        self.0.records.snapshot()
    }

    /// Asks streams and waits in progress to end now.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.0.shutdown.subscribe();
        // An error means the sender is gone, which only happens with the state itself.
        let _ = rx.wait_for(|v| *v).await;
    }

    pub(crate) fn metrics(&self) -> &SimMetrics {
        &self.0.metrics
    }

    pub(crate) fn slots(&self) -> &Arc<Slots> {
        &self.0.slots
    }

    fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.0.rng.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `model_name` label: the served name.
fn metrics_model(cfg: &SimulatorConfig) -> &str {
    cfg.served_model.as_deref().unwrap_or(&cfg.model)
}

/// Every route of the simulator.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(messages))
        .route("/v1/responses", post(responses))
        // `{model}:{method}` is one path segment (the router has no suffix parameters).
        .route("/v1beta/models/{target}", post(gemini))
        // The stable version, which current google-genai SDKs call by default.
        .route("/v1/models/{target}", post(gemini))
        .route("/api/chat", post(ollama_chat))
        .route("/model/{model_id}/converse-stream", post(converse_stream))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/control", get(get_control).patch(patch_control))
        .route("/ground-truth", get(ground_truth))
        .route("/health", get(|| async { StatusCode::OK }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn chat(State(s): State<SimState>, h: HeaderMap, body: Bytes) -> Response {
    generate(s, Api::OpenaiChat, h, body).await
}

async fn completions(State(s): State<SimState>, h: HeaderMap, body: Bytes) -> Response {
    generate(s, Api::OpenaiCompletions, h, body).await
}

async fn messages(State(s): State<SimState>, h: HeaderMap, body: Bytes) -> Response {
    generate(s, Api::AnthropicMessages, h, body).await
}

async fn responses(State(s): State<SimState>, h: HeaderMap, body: Bytes) -> Response {
    generate(s, Api::OpenaiResponses, h, body).await
}

/// `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` streams, `:generateContent`
/// answers whole; the model comes from the path.
async fn gemini(
    State(s): State<SimState>,
    Path(target): Path<String>,
    RawQuery(query): RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let bad = |msg: &str| {
        error_response(
            Api::Gemini,
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidRequest,
            msg,
        )
    };
    let Some((model, method)) = super::dialects::gemini::model_and_method(&target) else {
        return bad("expected /v1beta/models/{model}:{method}");
    };
    let stream = match method {
        "streamGenerateContent" => true,
        "generateContent" => false,
        _ => return bad("unknown method; streamGenerateContent or generateContent"),
    };
    let sse = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    if stream && !sse {
        return bad("the simulator streams only with ?alt=sse");
    }
    let from_path = FromPath {
        model: model.to_string(),
        stream,
    };
    generate_with(s, Api::Gemini, h, body, Some(from_path)).await
}

async fn ollama_chat(State(s): State<SimState>, h: HeaderMap, body: Bytes) -> Response {
    generate(s, Api::Ollama, h, body).await
}

/// Bedrock names the model in the path: it is put in the body's `model` for [`generate`].
async fn converse_stream(
    State(s): State<SimState>,
    Path(model_id): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut o)) => {
            o.insert("model".into(), Value::from(model_id));
            Bytes::from(Value::Object(o).to_string())
        }
        // Not an object: `generate` answers 400 with the parse error.
        _ => body,
    };
    generate(s, Api::BedrockConverse, h, body).await
}

async fn models(State(s): State<SimState>, h: HeaderMap) -> Response {
    let cfg = s.config();
    if !authorized(&cfg, &h) {
        return unauthorized(Api::OpenaiChat);
    }
    let mut ids = vec![cfg.model.clone()];
    if let Some(m) = &cfg.served_model {
        if *m != cfg.model {
            ids.push(m.clone());
        }
    }
    let data: Vec<Value> = ids
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": unix_now(), "owned_by": "inferprobe"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn metrics(State(s): State<SimState>) -> Response {
    let cfg = s.config();
    let text = s.metrics().render(metrics_model(&cfg), s.slots());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn get_control(State(s): State<SimState>) -> Response {
    Json(s.config()).into_response()
}

async fn patch_control(State(s): State<SimState>, body: Bytes) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid JSON body: {e}")})),
            )
                .into_response()
        }
    };
    match s.update(&patch) {
        Ok(cfg) => Json(cfg).into_response(),
        Err(msg) => (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response(),
    }
}

async fn ground_truth(State(s): State<SimState>) -> Response {
    let recs: Vec<_> = s
        .ground_truth()
        .iter()
        .map(RequestRecord::to_json)
        .collect();
    Json(json!({"requests": recs})).into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// True when no key is configured or the request carries it in any of the usual headers; an
/// AWS SigV4 `Authorization` counts when its access key id is the key (the signature itself is
/// not checked: the simulator has no secret key).
fn authorized(cfg: &SimulatorConfig, h: &HeaderMap) -> bool {
    let Some(key) = &cfg.api_key else {
        return true;
    };
    let value = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let auth = value(header::AUTHORIZATION.as_str());
    let bearer = auth.and_then(|v| v.strip_prefix("Bearer "));
    let sigv4 = auth.and_then(super::dialects::bedrock_converse::sigv4_access_key);
    [
        bearer,
        sigv4,
        value("x-api-key"),
        value("api-key"),
        value("x-goog-api-key"),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.trim() == key.expose())
}

fn unauthorized(api: Api) -> Response {
    error_response(
        api,
        StatusCode::UNAUTHORIZED,
        ErrorKind::Authentication,
        "invalid or missing API key",
    )
}

fn error_response(api: Api, status: StatusCode, kind: ErrorKind, message: &str) -> Response {
    let mut resp = (status, Json(wire::error_json(api, kind, message))).into_response();
    if api == Api::BedrockConverse {
        let ty = super::dialects::bedrock_converse::error_type(kind);
        resp.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(ty));
    }
    resp
}

/// Sends an error reply and records it.
fn reply_error(
    record: &SharedRecord,
    api: Api,
    status: StatusCode,
    kind: ErrorKind,
    message: &str,
) -> Response {
    let mut resp = error_response(api, status, kind, message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let mut r = lock(record);
    if let Ok(v) = HeaderValue::from_str(&r.id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let now = Instant::now();
    r.status = status.as_u16();
    r.headers_sent = Some(now);
    r.end = Some(now);
    resp
}

/// Per-request overrides for tests and fire drills, so one simulator can serve targets that each
/// want a different behaviour: `x-sim-fault: KIND|none` forces (or suppresses) a fault,
/// `x-sim-fault-on: tools|tool-result|any` limits faults (forced or drawn) to requests that
/// offer tools or answer a tool call, `x-sim-ttft: DURATION` and `x-sim-itl: DURATION` replace
/// the drawn timings.
#[derive(Default)]
struct Overrides {
    fault: Option<Option<FaultKind>>,
    fault_on: Option<FaultOn>,
    ttft: Option<std::time::Duration>,
    itl: Option<std::time::Duration>,
}

impl Overrides {
    fn from_headers(headers: &HeaderMap) -> Result<Overrides, String> {
        let get = |name: &str| -> Result<Option<String>, String> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim().to_string()))
                    .map_err(|_| format!("header {name} is not valid text")),
            }
        };
        let duration = |name: &str| -> Result<Option<std::time::Duration>, String> {
            match get(name)? {
                None => Ok(None),
                Some(v) => humantime::parse_duration(&v)
                    .map(Some)
                    .map_err(|e| format!("header {name}: invalid duration {v:?} ({e})")),
            }
        };
        let fault = match get("x-sim-fault")? {
            None => None,
            Some(f) if f == "none" => Some(None),
            Some(f) => Some(Some(FaultKind::from_name(&f).ok_or_else(|| {
                format!(
                    "header x-sim-fault: unknown fault {f:?}; one of none, {}",
                    FaultKind::ALL.map(FaultKind::as_str).join(", ")
                )
            })?)),
        };
        let fault_on = match get("x-sim-fault-on")? {
            None => None,
            Some(v) => Some(FaultOn::parse(&v).ok_or_else(|| {
                format!(
                    "header x-sim-fault-on: unknown scope {:?}; one of tools, tool-result, any",
                    v.chars().take(40).collect::<String>()
                )
            })?),
        };
        Ok(Overrides {
            fault,
            fault_on,
            ttft: duration("x-sim-ttft")?,
            itl: duration("x-sim-itl")?,
        })
    }

    fn apply(&self, plan: &mut sample::Plan) {
        if let Some(t) = self.ttft {
            plan.ttft = t;
        }
        if let Some(itl) = self.itl {
            plan.itls.iter_mut().for_each(|d| *d = itl);
        }
    }
}

/// Whether a fault scoped to `on` may hit `req`.
fn fault_covers(on: FaultOn, req: &request::GenRequest) -> bool {
    {
        match on {
            FaultOn::Any => true,
            FaultOn::Tools => req.tool.is_some(),
            FaultOn::ToolResult => matches!(req.turn, request::Turn::ToolResult(_)),
        }
    }
}

/// Most pieces a tool call's arguments stream in.
const TOOL_PIECES: usize = 6;

/// The tool call to make for `req`: a streamed request that offers tools and ends with a user
/// turn calls the first tool offered, with arguments made up from its schema.
fn planned_tool_call(api: Api, req: &request::GenRequest, id: &str) -> Option<wire::SimToolCall> {
    let (name, schema) = req.tool.as_ref()?;
    if api == Api::OpenaiCompletions || !req.stream || req.turn != request::Turn::User {
        return None;
    }
    let arguments = super::tools::example(schema).to_string();
    // Gemini and Ollama send a call whole, in one event.
    let pieces = match api {
        Api::Gemini | Api::Ollama => vec![arguments.clone()],
        _ => super::tools::pieces(&arguments, TOOL_PIECES),
    };
    let prefix = match api {
        Api::AnthropicMessages => "toolu_",
        Api::BedrockConverse => "tooluse_",
        _ => "call_",
    };
    let tail: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail = &tail[tail.len().saturating_sub(16)..];
    Some(wire::SimToolCall {
        id: format!("{prefix}{tail}"),
        name: name.clone(),
        arguments,
        pieces,
    })
}

/// What an API says in the path rather than the body (Gemini: the model and whether to stream).
struct FromPath {
    model: String,
    stream: bool,
}

async fn generate(state: SimState, api: Api, headers: HeaderMap, body: Bytes) -> Response {
    generate_with(state, api, headers, body, None).await
}

async fn generate_with(
    state: SimState,
    api: Api,
    headers: HeaderMap,
    body: Bytes,
    from_path: Option<FromPath>,
) -> Response {
    let arrival = Instant::now();
    let cfg = state.config();
    let n = state.0.next_id.fetch_add(1, Ordering::Relaxed);
    let id = api.response_id(&state.0.id_tag, n);
    let record = state
        .0
        .records
        .push(RequestRecord::new(id.clone(), api, arrival));

    if !authorized(&cfg, &headers) {
        return reply_error(
            &record,
            api,
            StatusCode::UNAUTHORIZED,
            ErrorKind::Authentication,
            "invalid or missing API key",
        );
    }
    let mut req = match request::parse(api, &body) {
        Ok(r) => r,
        Err(msg) => {
            return reply_error(
                &record,
                api,
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidRequest,
                &msg,
            )
        }
    };
    if let Some(p) = from_path {
        req.model = p.model;
        req.stream = p.stream;
    }
    let overrides = match Overrides::from_headers(&headers) {
        Ok(o) => o,
        Err(msg) => {
            return reply_error(
                &record,
                api,
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidRequest,
                &msg,
            )
        }
    };
    let tool_call = planned_tool_call(api, &req, &id);
    let answer_prefix = match &req.turn {
        request::Turn::ToolResult(text) if api != Api::OpenaiCompletions => {
            super::tools::result_tokens(text)
        }
        _ => Vec::new(),
    };
    let length = match (&tool_call, answer_prefix.len()) {
        (Some(call), _) => sample::Length::Exactly(u32::try_from(call.pieces.len()).unwrap_or(1)),
        (None, 0) => sample::Length::Drawn,
        (None, n) => sample::Length::AtLeast(u32::try_from(n).unwrap_or(u32::MAX)),
    };
    // A fault scoped to other requests is suppressed (the draw still happens).
    let scope = overrides.fault_on.unwrap_or(cfg.fault_on);
    let forced = if fault_covers(scope, &req) {
        overrides.fault
    } else {
        Some(None)
    };
    let mut plan = {
        let mut rng = state.rng();
        sample::draw_shaped_plan(
            &cfg,
            req.max_tokens,
            api != Api::OpenaiCompletions,
            forced,
            length,
            &mut *rng,
        )
    };
    overrides.apply(&mut plan);
    let model = cfg.response_model(&req.model).to_string();
    let prompt_tokens = req.prompt_tokens();
    {
        let mut r = lock(&record);
        r.model = model.clone();
        r.stream = req.stream;
        r.fault = plan.fault;
        r.prompt_tokens = prompt_tokens;
        r.reasoning_tokens = plan.reasoning;
    }
    tracing::debug!(id = %id, api = api.as_str(), stream = req.stream,
        fault = plan.fault.map_or("none", FaultKind::as_str), "Simulated request.");

    if plan.fault == Some(FaultKind::SlowHeaders) {
        tokio::select! {
            () = tokio::time::sleep(cfg.slow_headers_delay) => {}
            () = state.shutting_down() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    match plan.fault {
        Some(FaultKind::RateLimited) => {
            return reply_error(
                &record,
                api,
                StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::RateLimit,
                "simulated rate limit; retry after 1 second",
            )
        }
        Some(FaultKind::Http4xx) => {
            return reply_error(
                &record,
                api,
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidRequest,
                "simulated invalid request",
            )
        }
        Some(FaultKind::Http5xx) => {
            let (status, kind, msg) = if state
                .0
                .http_5xx_count
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(2)
            {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorKind::Server,
                    "simulated internal server error",
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Overloaded,
                    "simulated overload; try again later",
                )
            };
            return reply_error(&record, api, status, kind, msg);
        }
        _ => {}
    }

    let model_label = metrics_model(&cfg).to_string();
    state
        .metrics()
        .prompt_tokens
        .with_label_values(&[&model_label])
        .inc_by(u64::from(prompt_tokens));
    let ctx = wire::Ctx {
        api,
        id,
        created: unix_now(),
        model,
        include_usage: req.include_usage,
        prompt_tokens,
        tool_call,
        answer_prefix,
    };
    let job = Job {
        state: state.clone(),
        record,
        plan,
        model_label,
        batch_factor: cfg.batch_itl_factor,
        stall: cfg.stall_duration,
    };
    if req.stream {
        stream::streaming(job, &ctx)
    } else {
        stream::whole(job, &ctx).await
    }
}
