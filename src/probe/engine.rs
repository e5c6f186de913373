//! The probe engine: sends one streaming request, stamps `Instant`s as bytes arrive, hands each
//! event to the dialect and turns the trace into an [`Outcome`].
//!
//! The engine owns the clock. Every chunk of the body is stamped with `Instant::now()` the moment
//! it is read from the socket, and each SSE event carries the stamp of the chunk that completed it
//! (see [`crate::probe::framing`]). Timeouts are deadlines on that same clock.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{Stream, StreamExt};
use rand::Rng;
use reqwest::header::{self, HeaderMap};
use reqwest::Url;

use crate::config::{ConnectionMode, Scenario, Target, Timeouts};
use crate::cost::{request_cost, TokenCounts};
use crate::probe::dialect::{self, Auth, Message, OutputKind, ProbeRequest, Signal, ToolCall};
use crate::probe::framing::{self, FrameError, StampedEvent};
use crate::probe::ratelimit::RateLimitInfo;
use crate::probe::result::{ErrorCondition, ProbeResult, Transport};
use crate::probe::trace::{
    ConnectionInfo, ConnectionUse, EventKind, Outcome, RetryReason, TokenSource, Trace, TraceEvent,
    UsageTotals, MAX_TRACE_EVENTS,
};
use crate::probe::{check, clip};

/// Most bytes of a non-2xx or non-SSE body read to find an error message.
const ERROR_BODY_CAP: usize = 8 * 1024;

/// Most redirects followed by a target with `follow_redirects: true`.
const MAX_REDIRECTS: u32 = 5;

/// Longest wait for the body's own end after the dialect's end marker. The probe's timings are
/// final at the marker; reading on lets the connection go back to the pool.
const DRAIN_MAX: Duration = Duration::from_secs(2);

/// A server's `Keep-Alive: timeout=N` is honoured with this margin: a connection idle for
/// longer than N minus the margin is not reused, since the server may be closing it.
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// Most idle pooled connections remembered (one per target and host in practice).
const MAX_TRACKED_CONNECTIONS: usize = 4096;

/// The HTTP clients probes are sent with, shared by targets with the same connect timeout.
///
/// A pooled client exists per idle timeout (the pool's own eviction does the "idle at most N"
/// rule), and one client never keeps a connection (`connection: fresh`, retries, and servers
/// whose `Keep-Alive` timeout is shorter than one second). No client follows redirects: the
/// engine does, when a target asks, so that no credential reaches another origin and the
/// method never changes.
#[derive(Clone)]
pub struct ProbeClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    connect_timeout: Duration,
    fresh: reqwest::Client,
    pooled: Mutex<HashMap<Duration, reqwest::Client>>,
    conns: Mutex<ConnTracker>,
}

impl std::fmt::Debug for ProbeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeClient")
            .field("connect_timeout", &self.inner.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP clients for targets with these timeouts: connect timeout, no overall timeout
/// (the engine keeps its own deadlines), rustls, HTTP/1.1 and HTTP/2 as the server offers.
pub fn client_for(timeouts: &Timeouts) -> Result<ProbeClient, reqwest::Error> {
    install_crypto_provider();
    let fresh = builder(timeouts.connect)
        .pool_max_idle_per_host(0)
        .build()?;
    Ok(ProbeClient {
        inner: Arc::new(ClientInner {
            connect_timeout: timeouts.connect,
            fresh,
            pooled: Mutex::new(HashMap::new()),
            conns: Mutex::new(ConnTracker::default()),
        }),
    })
}

fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("inferprobe/", env!("CARGO_PKG_VERSION")))
}

/// Which client a probe goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The pooled client whose idle timeout is this; `may_reuse` when a connection to the host
    /// was put back into that pool recently enough to still be there.
    Pooled { idle: Duration, may_reuse: bool },
    /// The client that never pools.
    Fresh,
}

impl ProbeClient {
    fn route(&self, authority: &str, mode: ConnectionMode, idle: Duration) -> Route {
        if mode == ConnectionMode::Fresh {
            return Route::Fresh;
        }
        let Ok(mut conns) = self.inner.conns.lock() else {
            return Route::Fresh;
        };
        let now = Instant::now();
        let idle = match conns.keep_alive.get(authority) {
            Some(hint) => {
                let usable = hint.saturating_sub(KEEP_ALIVE_MARGIN);
                if usable.is_zero() {
                    return Route::Fresh;
                }
                idle.min(usable)
            }
            None => idle,
        };
        // Whole milliseconds, so a few pools serve every target.
        let idle = Duration::from_millis(idle.as_millis().max(1) as u64);
        conns.prune(now);
        let may_reuse = conns
            .idle
            .values()
            .any(|c| c.authority == authority && c.pool == idle);
        Route::Pooled { idle, may_reuse }
    }

    fn http(&self, route: Route) -> Result<reqwest::Client, reqwest::Error> {
        let Route::Pooled { idle, .. } = route else {
            return Ok(self.inner.fresh.clone());
        };
        let mut pools = match self.inner.pooled.lock() {
            Ok(p) => p,
            Err(_) => return Ok(self.inner.fresh.clone()),
        };
        if let Some(c) = pools.get(&idle) {
            return Ok(c.clone());
        }
        let c = builder(self.inner.connect_timeout)
            .pool_idle_timeout(idle)
            .build()?;
        pools.insert(idle, c.clone());
        Ok(c)
    }

    /// Whether the response on local address `local` came over a pooled connection.
    fn took(&self, local: SocketAddr) -> ConnectionUse {
        let reused = self
            .inner
            .conns
            .lock()
            .map(|mut c| c.idle.remove(&local).is_some())
            .unwrap_or(false);
        if reused {
            ConnectionUse::Reused
        } else {
            ConnectionUse::New
        }
    }

    /// The connection on `local` went back to the pool of `route` after a complete body.
    fn released(
        &self,
        local: SocketAddr,
        authority: &str,
        route: Route,
        keep_alive: Option<Duration>,
    ) {
        let Ok(mut c) = self.inner.conns.lock() else {
            return;
        };
        match keep_alive {
            Some(k) => {
                c.keep_alive.insert(authority.to_string(), k);
            }
            None => {
                c.keep_alive.remove(authority);
            }
        }
        if let Route::Pooled { idle, .. } = route {
            let now = Instant::now();
            c.prune(now);
            if c.idle.len() < MAX_TRACKED_CONNECTIONS {
                c.idle.insert(
                    local,
                    IdleConn {
                        authority: authority.to_string(),
                        pool: idle,
                        released: now,
                    },
                );
            }
        }
    }
}

/// What the engine knows of pooled connections: the local address of each connection it put
/// back into a pool (a response on that address again came over a reused connection), and the
/// keep-alive timeout each server announced.
#[derive(Default)]
struct ConnTracker {
    idle: HashMap<SocketAddr, IdleConn>,
    keep_alive: HashMap<String, Duration>,
}

struct IdleConn {
    authority: String,
    pool: Duration,
    released: Instant,
}

impl ConnTracker {
    /// Forgets connections their pool has already evicted.
    fn prune(&mut self, now: Instant) {
        self.idle
            .retain(|_, c| now.saturating_duration_since(c.released) < c.pool);
        if self.keep_alive.len() > MAX_TRACKED_CONNECTIONS {
            self.keep_alive.clear();
        }
    }
}

/// Installs the process-wide rustls crypto provider (ring) once; later calls are no-ops.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs one probe of `scenario` against `target`, whose base URL has been resolved to
/// `base_url` (no trailing slash). Never panics and never returns an error: every failure is an
/// [`Outcome`] with a `result`.
///
/// A request that fails on a reused connection before any response byte arrived is sent once
/// more on a new connection; the outcome then has the retry's timings and says it was retried.
pub async fn run_probe(
    client: &ProbeClient,
    target: &Target,
    base_url: &str,
    scenario: &Scenario,
) -> Outcome {
    let messages = with_nonce(&scenario.messages, scenario.cache_bust);
    let body = target.dialect.build_body(&ProbeRequest {
        model: &target.model,
        messages: &messages,
        max_tokens: scenario.max_tokens,
        temperature: scenario.temperature,
        stop: &scenario.stop,
        extra_body: &scenario.extra_body,
        include_usage: target.include_usage,
        tools: if target.dialect.supports_tools() {
            &scenario.tools
        } else {
            &[]
        },
    });
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let url = match request_url(base_url, target) {
        Ok(u) => u,
        Err(e) => {
            let mut run = Run::new(target, scenario);
            run.trace.failed_at = Some(Instant::now());
            return run.finish(Err((ProbeResult::ConnectError, e)));
        }
    };
    let authority = authority(&url);
    let mut route = client.route(
        &authority,
        target.connection.mode,
        target.connection.idle_timeout,
    );
    let mut retried = None;
    loop {
        let mut run = Run::new(target, scenario);
        run.connection.retried = retried;
        let result = run.execute(client, route, &url, &body).await;
        if result.is_err() && run.stale_candidate && retried.is_none() {
            // The server closed an idle pooled connection as we reused it: nothing of this
            // request reached it. Once more, on a connection of its own.
            retried = Some(RetryReason::StaleConnection);
            route = Route::Fresh;
            continue;
        }
        if result.is_ok() && run.body_complete && run.connection.redirects == 0 {
            if let Some(local) = run.local_addr {
                client.released(local, &authority, route, run.keep_alive);
            }
        }
        return run.finish(result);
    }
}

/// [`run_probe`] with the target's total timeout cut to `limit` when that is shorter (an
/// on-demand probe within a scrape deadline, a journey's later steps).
pub async fn run_probe_within(
    client: &ProbeClient,
    target: &Target,
    base_url: &str,
    scenario: &Scenario,
    limit: Option<Duration>,
) -> Outcome {
    match limit.filter(|l| *l < target.timeouts.total) {
        None => run_probe(client, target, base_url, scenario).await,
        Some(l) => {
            let mut t = target.clone();
            // A zero total would be refused as a config; a millisecond ends it at once.
            t.timeouts.total = l.max(Duration::from_millis(1));
            run_probe(client, &t, base_url, scenario).await
        }
    }
}

/// The request URL: base URL, the dialect's path for the model, then the dialect's query
/// parameters and the target's, after any the base URL already carries.
fn request_url(base_url: &str, target: &Target) -> Result<Url, String> {
    let mut url = Url::parse(base_url).map_err(|e| format!("invalid base URL: {e}"))?;
    let dialect_path = target.dialect.path(&target.model);
    let (path, query) = match dialect_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (dialect_path.as_str(), None),
    };
    let path = format!("{}{}", url.path().trim_end_matches('/'), path);
    url.set_path(&path);
    if let Some(q) = query {
        // The dialect's own parameters (`alt=sse`): plain `k=v` pairs, no escapes.
        let mut qp = url.query_pairs_mut();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            qp.append_pair(k, v);
        }
    }
    if !target.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &target.query {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// `host:port` of a URL, the key of connection pools.
fn authority(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// One request of a probe. Credentials and custom headers go only to `credentials: true`
/// (the target's own origin); the dialect's fixed headers go everywhere.
fn request(
    http: &reqwest::Client,
    target: &Target,
    extra_headers: &BTreeMap<String, String>,
    url: Url,
    body: &bytes::Bytes,
    credentials: bool,
) -> Result<reqwest::RequestBuilder, (ProbeResult, String)> {
    let accept = target
        .dialect
        .content_types()
        .first()
        .copied()
        .unwrap_or("*/*");
    let signed_url = url.to_string();
    let mut req = http
        .post(url)
        .header(header::ACCEPT, accept)
        // Compressed event streams are not decoded: ask for none, and report one that comes.
        .header(header::ACCEPT_ENCODING, "identity")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.clone());
    for (k, v) in target.dialect.fixed_headers() {
        req = req.header(*k, *v);
    }
    if !credentials {
        return Ok(req);
    }
    match target.auth.auth() {
        Auth::Header { name, scheme } => {
            if let Some(key) = &target.api_key {
                req = match scheme {
                    Some(scheme) => req.header(name, format!("{scheme} {}", key.expose())),
                    None => req.header(name, key.expose()),
                };
            }
        }
        Auth::AwsSigV4 { service } => {
            let input = crate::probe::aws::SignInput {
                method: "POST",
                url: &signed_url,
                headers: &[("content-type", "application/json")],
                body,
            };
            let key = target.api_key.as_ref().map(|k| k.expose());
            match crate::probe::aws::authorize(&input, key, None, service, SystemTime::now()) {
                Ok(headers) => {
                    for (k, v) in headers {
                        req = req.header(k, v);
                    }
                }
                // Unsigned, the request would only be refused (HTTP 403): it is not sent, and
                // the reason says what is missing.
                Err(e) => {
                    return Err((
                        ProbeResult::Http4xx,
                        format!("request not sent: it cannot be authorized: {e}"),
                    ))
                }
            }
        }
    }
    for (k, v) in target.headers.iter().chain(extra_headers) {
        req = req.header(k.as_str(), v.as_str());
    }
    Ok(req)
}

/// Prefixes the first user message with a short random nonce so the server's prefix cache cannot
/// serve the prompt.
fn with_nonce(messages: &[Message], cache_bust: bool) -> Vec<Message> {
    let mut out = messages.to_vec();
    if !cache_bust {
        return out;
    }
    let nonce: u64 = rand::rng().random();
    if let Some(m) = out.iter_mut().find(|m| m.role == "user") {
        m.content = format!("[probe {nonce:016x}] {}", m.content);
    }
    out
}

/// Mutable state of one probe while it runs.
struct Run<'a> {
    target: &'a Target,
    scenario: &'a Scenario,
    trace: Trace,
    http_status: Option<u16>,
    answer: String,
    usage: UsageTotals,
    response_model: Option<String>,
    finish_reason: Option<String>,
    rate_limit: RateLimitInfo,
    connection: ConnectionInfo,
    /// Local address of the response's connection.
    local_addr: Option<SocketAddr>,
    /// The server's `Keep-Alive: timeout=N`.
    keep_alive: Option<Duration>,
    /// The body was read to its own end (the connection can go back to the pool).
    body_complete: bool,
    /// The request failed before any response byte on a connection that may have been reused.
    stale_candidate: bool,
    /// Durations the server reported about this request (phase, seconds).
    server_timings: Vec<(&'static str, f64)>,
    /// Why the server withheld the answer for its content, if it did.
    withheld: Option<String>,
    /// Tool calls the model made, arguments accumulated.
    tool_calls: Vec<ToolCall>,
}

/// How the request/stream phase ended.
type PhaseResult = Result<(), (ProbeResult, String)>;

impl<'a> Run<'a> {
    /// Stamps `t_start`: the caller sends the request right after, with nothing in between.
    fn new(target: &'a Target, scenario: &'a Scenario) -> Run<'a> {
        Run {
            target,
            scenario,
            trace: Trace::new(Instant::now()),
            http_status: None,
            answer: String::new(),
            usage: UsageTotals::default(),
            response_model: None,
            finish_reason: None,
            rate_limit: RateLimitInfo::default(),
            connection: ConnectionInfo::default(),
            local_addr: None,
            keep_alive: None,
            body_complete: false,
            stale_candidate: false,
            server_timings: Vec::new(),
            withheld: None,
            tool_calls: Vec::new(),
        }
    }

    fn first_token_deadline(&self) -> Instant {
        self.trace.start + self.target.timeouts.first_token
    }

    fn total_deadline(&self) -> Instant {
        self.trace.start + self.target.timeouts.total
    }

    /// Classifies an expired deadline, given the time the body was last read.
    fn deadline_result(&self, last_read: Option<Instant>) -> Option<(ProbeResult, String)> {
        let now = Instant::now();
        let t = &self.target.timeouts;
        if now >= self.total_deadline() {
            return Some((
                ProbeResult::TimeoutTotal,
                format!("no end of stream within total timeout {}", fmt_dur(t.total)),
            ));
        }
        if self.trace.outputs.is_empty() && now >= self.first_token_deadline() {
            return Some((
                ProbeResult::TimeoutFirstToken,
                format!(
                    "no output within first-token timeout {}",
                    fmt_dur(t.first_token)
                ),
            ));
        }
        if let Some(last) = last_read {
            if now >= last + t.idle {
                return Some((
                    ProbeResult::TimeoutIdle,
                    format!(
                        "stream silent for longer than idle timeout {}",
                        fmt_dur(t.idle)
                    ),
                ));
            }
        }
        None
    }

    /// Sends the request (following redirects when the target allows) and waits for headers.
    async fn send(
        &mut self,
        client: &ProbeClient,
        route: Route,
        url: &Url,
        body: &bytes::Bytes,
    ) -> Result<reqwest::Response, (ProbeResult, String)> {
        let http = client.http(route).map_err(|e| {
            (
                ProbeResult::ConnectError,
                format!("building the HTTP client failed: {}", e.without_url()),
            )
        })?;
        let header_deadline = self.first_token_deadline().min(self.total_deadline());
        let origin = url.origin();
        let mut current = url.clone();
        loop {
            let credentials = current.origin() == origin;
            let req = request(
                &http,
                self.target,
                &self.scenario.headers,
                current.clone(),
                body,
                credentials,
            )?;
            let resp = match tokio::time::timeout_at(header_deadline.into(), req.send()).await {
                Err(_) => {
                    return Err(self
                        .deadline_result(None)
                        .unwrap_or((ProbeResult::TimeoutFirstToken, "no response headers".into())))
                }
                Ok(Err(e)) => {
                    // Only the first hop can have taken a pooled connection to the target.
                    self.stale_candidate = self.connection.redirects == 0
                        && matches!(
                            route,
                            Route::Pooled {
                                may_reuse: true,
                                ..
                            }
                        )
                        && is_stale_connection(&e);
                    return Err(classify_send_error(&e));
                }
                Ok(Ok(r)) => r,
            };
            if !is_redirect(resp.status()) {
                return Ok(resp);
            }
            let status = resp.status().as_u16();
            let next = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| current.join(l).ok());
            // Host and port only: the rest of a location may carry tokens.
            let host = next
                .as_ref()
                .and_then(|u| {
                    let h = u.host_str()?;
                    Some(match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                })
                .unwrap_or_else(|| "an invalid location".to_string());
            self.http_status = Some(status);
            if !self.target.connection.follow_redirects {
                return Err((
                    ProbeResult::Http4xx,
                    format!(
                        "HTTP {status} redirect to {host} (redirects are not followed; set \
                         follow_redirects: true to follow them)"
                    ),
                ));
            }
            let next = match next {
                Some(u) if matches!(u.scheme(), "http" | "https") => u,
                _ => {
                    return Err((
                        ProbeResult::Http4xx,
                        format!("HTTP {status} redirect to {host}: not an http(s) URL"),
                    ))
                }
            };
            if self.connection.redirects >= MAX_REDIRECTS {
                return Err((
                    ProbeResult::Http4xx,
                    format!(
                        "HTTP {status} redirect to {host}: more than {MAX_REDIRECTS} redirects"
                    ),
                ));
            }
            self.connection.redirects += 1;
            current = next;
        }
    }

    async fn execute(
        &mut self,
        client: &ProbeClient,
        route: Route,
        url: &Url,
        body: &bytes::Bytes,
    ) -> PhaseResult {
        let resp = match self.send(client, route, url, body).await {
            Ok(r) => r,
            Err(e) => {
                self.trace.failed_at = Some(Instant::now());
                return Err(e);
            }
        };
        let headers_at = Instant::now();
        self.trace.headers = Some(headers_at);
        let status = resp.status();
        self.http_status = Some(status.as_u16());
        // Read on every response: a 429 and a rate-limit error inside a 200 stream alike.
        self.rate_limit = RateLimitInfo::from_headers(resp.headers(), std::time::SystemTime::now());
        self.local_addr = resp
            .extensions()
            .get::<hyper_util::client::legacy::connect::HttpInfo>()
            .map(|i| i.local_addr());
        self.connection.used = Some(match (route, self.local_addr) {
            (Route::Pooled { .. }, Some(local)) => client.took(local),
            _ => ConnectionUse::New,
        });
        self.keep_alive = keep_alive_timeout(resp.headers());
        let encoding = content_encoding(resp.headers());

        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.to_string());
            let body = read_capped(resp, ERROR_BODY_CAP, self.total_deadline()).await;
            self.trace.failed_at = Some(Instant::now());
            let detail = match &encoding {
                Some(enc) => format!("body in {enc} encoding, not decoded"),
                None => error_detail(&body),
            };
            let class = ErrorCondition::of_status(status.as_u16()).result(Transport::HttpStatus);
            let mut msg = format!("HTTP {}", status.as_u16());
            if let Some(ra) = retry_after {
                msg.push_str(&format!(" (Retry-After: {})", clip(&ra, 40)));
            }
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&detail);
            }
            return Err((class, msg));
        }

        if let Some(enc) = encoding {
            self.trace.failed_at = Some(Instant::now());
            return Err((
                ProbeResult::MalformedStream,
                format!(
                    "response has Content-Encoding {enc} although identity was asked for; \
                     the stream cannot be read"
                ),
            ));
        }
        let accepted = target_accepts(self.target, resp.headers());
        if !accepted {
            let ct = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|s| clip(s, 80))
                .unwrap_or_else(|| "none".to_string());
            let body = read_capped(resp, ERROR_BODY_CAP, self.total_deadline()).await;
            self.trace.failed_at = Some(Instant::now());
            let detail = error_detail(&body);
            if looks_like_error(&body) {
                // The same table as an error event in a stream: a rate limit stays one.
                let words = error_words(&body);
                let class = ErrorCondition::of_error_words(words.iter().map(String::as_str))
                    .result(Transport::InStream);
                return Err((class, format!("error body on HTTP 200: {detail}")));
            }
            return Err((
                ProbeResult::MalformedStream,
                format!(
                    "expected {}, got content type {ct:?}",
                    self.target.dialect.content_types().join(" or ")
                ),
            ));
        }

        self.read_stream(resp, headers_at).await
    }

    async fn read_stream(&mut self, resp: reqwest::Response, headers_at: Instant) -> PhaseResult {
        let cap = self.target.max_response_bytes;
        let read_bytes = Arc::new(AtomicU64::new(0));
        let over_cap = Arc::new(AtomicBool::new(false));
        // Arrival of the latest chunk; idle time is measured from here, not from the last event,
        // because keep-alive comments are reads too.
        let last_read = Arc::new(Mutex::new(headers_at));
        let chunks = {
            let read_bytes = read_bytes.clone();
            let over_cap = over_cap.clone();
            let last_read = last_read.clone();
            resp.bytes_stream().map(move |r| {
                let at = Instant::now();
                if let Ok(mut l) = last_read.lock() {
                    *l = at;
                }
                match r {
                    Ok(b) => {
                        let total = read_bytes.fetch_add(b.len() as u64, Ordering::Relaxed)
                            + b.len() as u64;
                        if total > cap {
                            over_cap.store(true, Ordering::Relaxed);
                            Err(format!("response exceeded {cap} bytes"))
                        } else {
                            Ok((at, b))
                        }
                    }
                    Err(e) => Err(e.without_url().to_string()),
                }
            })
        };
        let mut events = Box::pin(framing::frame(
            self.target.dialect.framing(),
            Box::pin(chunks),
        ));
        let mut decoder = self.target.dialect.decoder();
        let mut signals = Vec::with_capacity(4);
        // In dialects that allow it, a finish reason ends the stream when the body then ends
        // cleanly.
        let finish_ends = self.target.dialect.finish_reason_ends_stream();
        let mut finished = false;

        loop {
            let last = last_read.lock().map(|l| *l).unwrap_or(headers_at);
            let mut deadline = self.total_deadline().min(last + self.target.timeouts.idle);
            if self.trace.outputs.is_empty() {
                deadline = deadline.min(self.first_token_deadline());
            }
            let next = match tokio::time::timeout_at(deadline.into(), events.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let last = last_read.lock().map(|l| *l).unwrap_or(headers_at);
                    match self.deadline_result(Some(last)) {
                        Some(r) => {
                            self.trace.failed_at = Some(Instant::now());
                            return Err(r);
                        }
                        // A chunk arrived without completing an event: wait again.
                        None => continue,
                    }
                }
            };
            let ev = match next {
                None => {
                    // The body ended cleanly. Complete only if the dialect's end had arrived.
                    let end = last_read.lock().map(|l| *l).unwrap_or(headers_at);
                    self.body_complete = true;
                    if finish_ends && finished {
                        self.trace.end = Some(end);
                        return Ok(());
                    }
                    self.trace.failed_at = Some(end);
                    return Err((
                        ProbeResult::StreamAborted,
                        format!(
                            "body ended without {} after {} output events",
                            self.target.dialect.end_marker(),
                            self.trace.outputs.len()
                        ),
                    ));
                }
                Some(Err(e)) => {
                    self.trace.failed_at = Some(Instant::now());
                    return Err(self.stream_error(e, over_cap.load(Ordering::Relaxed), cap));
                }
                Some(Ok(ev)) => ev,
            };
            if self.trace.first_event.is_none() {
                self.trace.first_event = Some(ev.at);
            }
            signals.clear();
            if let Err(e) = decoder.decode(&ev.as_event(), &mut signals) {
                self.trace.failed_at = Some(ev.at);
                return Err((ProbeResult::MalformedStream, e.to_string()));
            }
            if self.trace.events.len() < MAX_TRACE_EVENTS {
                let bytes = u32::try_from(ev.event.len() + ev.data.len()).unwrap_or(u32::MAX);
                self.trace
                    .events
                    .push((ev.at, EventKind::of(&signals), bytes));
            }
            // One output instant per event: an event carrying reasoning and answer text together
            // is one arrival, not a zero-length gap. It counts as an answer if any part is one.
            let mut event_output: Option<OutputKind> = None;
            for s in signals.drain(..) {
                match s {
                    Signal::Output { kind, text } => {
                        match kind {
                            OutputKind::Answer => self.answer.push_str(&text),
                            OutputKind::ToolCall => add_tool_arguments(&mut self.tool_calls, &text),
                            OutputKind::Reasoning => {}
                        }
                        event_output = match event_output {
                            Some(OutputKind::Answer) => Some(OutputKind::Answer),
                            _ if kind == OutputKind::Answer => Some(OutputKind::Answer),
                            None => Some(kind),
                            other => other,
                        };
                    }
                    Signal::Usage(report) => self.usage.merge(&report),
                    Signal::Model(m) => self.response_model = Some(m),
                    Signal::FinishReason(r) => {
                        finished = true;
                        self.finish_reason = Some(r);
                    }
                    Signal::Done => {
                        if let Some(kind) = event_output.take() {
                            self.trace.outputs.push((ev.at, kind));
                        }
                        self.trace.end = Some(ev.at);
                        self.body_complete = drain(&mut events, self.total_deadline()).await;
                        return Ok(());
                    }
                    Signal::Withheld { field, reason } => {
                        self.withheld =
                            Some(format!("content withheld by the server ({field} {reason})"));
                    }
                    Signal::ToolCall {
                        id,
                        name,
                        signature,
                    } => start_tool_call(&mut self.tool_calls, id, name, signature),
                    Signal::ServerTiming { name, seconds } => {
                        if seconds.is_finite() && seconds >= 0.0 {
                            self.server_timings.push((name, seconds));
                        }
                    }
                    Signal::Error { kind, message } => {
                        self.trace.failed_at = Some(ev.at);
                        let class = kind.result(Transport::InStream);
                        return Err((class, format!("error in stream: {}", clip(&message, 200))));
                    }
                }
            }
            if let Some(kind) = event_output {
                self.trace.outputs.push((ev.at, kind));
            }
        }
    }

    /// The result of a body that could not be read to the dialect's end.
    fn stream_error(&self, e: FrameError, over_cap: bool, cap: u64) -> (ProbeResult, String) {
        let n = self.trace.outputs.len();
        match e {
            FrameError::Transport(_) if over_cap => (
                ProbeResult::StreamAborted,
                format!("response exceeded {cap} bytes after {n} output events"),
            ),
            FrameError::Transport(e) => (
                ProbeResult::StreamAborted,
                format!("stream broke after {n} output events: {e}"),
            ),
            FrameError::Malformed(e) => (ProbeResult::MalformedStream, e),
            e @ FrameError::Unterminated { .. } => (
                ProbeResult::StreamAborted,
                format!("{e} after {n} output events"),
            ),
        }
    }

    fn finish(mut self, phase: PhaseResult) -> Outcome {
        let trace = self.trace;
        let output_events = trace.outputs.len() as u64;
        let (mut result, mut error) = match phase {
            Ok(()) => (ProbeResult::Success, None),
            Err((r, e)) => (r, Some(e)),
        };
        // A reported output count far beyond the request's limit is a broken report: the stream
        // is malformed (unless it already failed otherwise), and the count is not used.
        let limit =
            dialect::requested_output_limit(self.scenario.max_tokens, &self.scenario.extra_body);
        if let Some((n, source)) = self.usage.output() {
            if dialect::output_count_is_implausible(n, limit) {
                self.usage.drop_output();
                if result.is_success() {
                    result = ProbeResult::MalformedStream;
                    error = Some(format!(
                        "implausible usage: {} reports {n} output tokens for a request limited \
                         to {} (more than 4 x limit + 64)",
                        source.as_str(),
                        limit.unwrap_or_default()
                    ));
                }
            }
        }
        let (output_tokens, token_source) = match self.usage.output() {
            Some((n, source)) => (n, source),
            None => (output_events, TokenSource::CountedEvents),
        };
        // A complete stream whose answer the server withheld (a content filter, a refusal): the
        // endpoint works, but the answer is not one a user can use.
        if let Some(w) = self.withheld.take() {
            if result.is_success() {
                result = ProbeResult::CheckFailed;
                error = Some(w);
            }
        }
        if result.is_success() && output_events == 0 {
            result = ProbeResult::EmptyResponse;
            error = Some("stream ended without any output".to_string());
        }
        if result.is_success() {
            let a = check::Answer {
                text: &self.answer,
                output_tokens,
                model: self.response_model.as_deref(),
                tool_calls: &self.tool_calls,
            };
            if let Err(e) = check::run(&self.scenario.checks, &a) {
                result = ProbeResult::CheckFailed;
                error = Some(e);
            }
        }
        let tokens = TokenCounts {
            input: self.usage.input(),
            cached_input: self.usage.cached(),
            output: output_tokens,
        };
        // A request that reported no tokens at all (refused, failed before output) has no token
        // cost; recording 0 would drag cost-per-request averages down during an outage.
        let cost_usd = match (&self.target.price, tokens.input, tokens.output) {
            (Some(p), input, output) if input.is_some() || output > 0 => {
                Some(request_cost(p, tokens))
            }
            _ => None,
        };
        let completed = trace.end.is_some();
        let mut outcome = Outcome {
            target: self.target.name.clone(),
            model: self.target.model.clone(),
            scenario: self.scenario.name.clone(),
            result,
            error,
            started_at: trace.start_wall,
            started: trace.start,
            http_status: self.http_status,
            ttfb: trace.ttfb(),
            time_to_first_event: trace.time_to_first_event(),
            ttft: trace.ttft(),
            time_to_first_answer_token: trace.time_to_first_answer_token(),
            inter_token_latencies: trace.inter_token_latencies(),
            tpot: if completed {
                trace.tpot(output_tokens)
            } else {
                None
            },
            e2e: trace.e2e(),
            elapsed: trace.elapsed(),
            output_tokens_per_second: trace.output_rate(output_tokens),
            input_tokens: self.usage.input(),
            cached_input_tokens: self.usage.cached(),
            reasoning_tokens: self.usage.reasoning(),
            output_tokens,
            token_source,
            output_events,
            cost_usd,
            response_model: self.response_model,
            finish_reason: self.finish_reason,
            answer: self.answer,
            events: trace
                .events
                .iter()
                .map(|(at, kind, bytes)| TraceEvent {
                    offset: at.saturating_duration_since(trace.start),
                    kind: *kind,
                    bytes: *bytes,
                })
                .collect(),
            tool_calls: self.tool_calls,
            rate_limit: self.rate_limit,
            connection: self.connection,
            server_timings: self.server_timings,
        };
        // The one place probe outcomes are redacted: everything that shows them reads this.
        crate::redact::redact_outcome(&mut outcome);
        outcome
    }
}

/// Most tool calls kept from one response: an agent turn rarely makes more than a few, and a
/// broken server must not grow the list without bound.
const MAX_TOOL_CALLS: usize = 16;

/// Most bytes of arguments kept per tool call (the rest is dropped; the schema check then fails
/// on the cut JSON, which is the honest result for arguments this large).
const MAX_TOOL_ARGUMENTS: usize = 64 * 1024;

/// A tool call starts ([`Signal::ToolCall`]). Calls without an id get `call_<n>`.
fn start_tool_call(
    calls: &mut Vec<ToolCall>,
    id: Option<String>,
    name: String,
    signature: Option<String>,
) {
    if calls.len() >= MAX_TOOL_CALLS {
        return;
    }
    let n = calls.len() + 1;
    calls.push(ToolCall {
        id: id
            .filter(|i| !i.is_empty())
            .map(|i| clip(&i, 200))
            .unwrap_or_else(|| format!("call_{n}")),
        name: clip(&name, 200),
        arguments: String::new(),
        signature: signature.filter(|s| s.len() <= MAX_TOOL_ARGUMENTS),
    });
}

/// Arguments of the latest tool call; arguments before any call started open a nameless one.
fn add_tool_arguments(calls: &mut Vec<ToolCall>, text: &str) {
    if calls.is_empty() {
        start_tool_call(calls, None, String::new(), None);
    }
    if let Some(call) = calls.last_mut() {
        if call.arguments.len() + text.len() <= MAX_TOOL_ARGUMENTS {
            call.arguments.push_str(text);
        }
    }
}

/// Reads on after the end marker until the body's own end (at most [`DRAIN_MAX`], never past
/// `deadline`), so the connection can be reused. True when the body ended cleanly.
async fn drain<S>(events: &mut S, deadline: Instant) -> bool
where
    S: Stream<Item = Result<StampedEvent, FrameError>> + Unpin,
{
    let until = deadline.min(Instant::now() + DRAIN_MAX);
    loop {
        match tokio::time::timeout_at(until.into(), events.next()).await {
            Ok(None) => return true,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// 301, 302, 303, 307 and 308: the statuses that carry a `Location` to follow.
/// Whether the response's media type is one the dialect streams.
fn target_accepts(target: &Target, headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = ct.split(';').next().unwrap_or("").trim();
    target
        .dialect
        .content_types()
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t))
}

fn is_redirect(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A `Content-Encoding` other than identity.
fn content_encoding(headers: &HeaderMap) -> Option<String> {
    let enc = headers
        .get(header::CONTENT_ENCODING)?
        .to_str()
        .unwrap_or("?");
    let enc = enc.trim();
    if enc.is_empty() || enc.eq_ignore_ascii_case("identity") {
        return None;
    }
    Some(clip(enc, 40))
}

/// The `timeout=N` of a `Keep-Alive` response header.
fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("keep-alive")?.to_str().ok()?;
    v.split(',').find_map(|part| {
        let (k, n) = part.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        let secs: u64 = n.trim().parse().ok()?;
        Some(Duration::from_secs(secs.min(86_400)))
    })
}

/// True when a request failed because the connection was closed or reset under it before any
/// response: what a server closing an idle keep-alive connection looks like to the client.
fn is_stale_connection(e: &reqwest::Error) -> bool {
    if e.is_connect() || e.is_timeout() {
        return false;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        depth += 1;
        if depth > 16 {
            break;
        }
        src = s.source();
    }
    false
}

/// Maps a failure to send the request (or to receive headers) to a result class. The message
/// never carries the URL (which may hold secrets in its query).
fn classify_send_error(e: &reqwest::Error) -> (ProbeResult, String) {
    let msg = chain_message(e);
    if is_tls_error(e) {
        return (ProbeResult::TlsError, msg);
    }
    if e.is_connect() {
        return (ProbeResult::ConnectError, msg);
    }
    if e.is_timeout() {
        return (ProbeResult::ConnectError, msg);
    }
    // The server closed the connection before sending headers, or sent garbage instead of HTTP.
    (ProbeResult::StreamAborted, msg)
}

/// True when a rustls error is anywhere in the error's source chain. The TLS stack nests it in
/// `io::Error`s (whose `source()` skips the wrapped error), so those are opened with `get_ref`.
fn is_tls_error(e: &reqwest::Error) -> bool {
    fn walk(e: &(dyn std::error::Error + 'static), depth: usize) -> bool {
        if depth > 16 {
            return false;
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if walk(inner, depth + 1) {
                return true;
            }
        }
        e.source().is_some_and(|s| walk(s, depth + 1))
    }
    walk(e, 0)
}

/// The error and its causes, joined, without the URL.
fn chain_message(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    parts.push(if e.is_connect() {
        "connect failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    });
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p == &t) {
            parts.push(t);
        }
        src = s.source();
    }
    clip(&parts.join(": "), 300)
}

/// Reads at most `cap` bytes of a body, giving up at `deadline`.
async fn read_capped(resp: reqwest::Response, cap: usize, deadline: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while out.len() < cap {
        match tokio::time::timeout_at(deadline.into(), stream.next()).await {
            Ok(Some(Ok(b))) => {
                let take = b.len().min(cap - out.len());
                out.extend_from_slice(&b[..take]);
            }
            _ => break,
        }
    }
    out
}

/// True when a body is a JSON object with an `error` member (OpenAI, Anthropic, Gemini and
/// Ollama shapes).
fn looks_like_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| {
            v.get("error").is_some() || v.get("type").and_then(|t| t.as_str()) == Some("error")
        })
}

/// The `type` and `code` values of an error body (`{"error": {...}}` or `{"type": "error",
/// "error": {...}}`), which say what kind of error it is; the free text is not read.
fn error_words(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let err = v.get("error").unwrap_or(&v);
    ["type", "code", "status"]
        .iter()
        .filter_map(|k| err.get(*k))
        .map(|w| match w {
            serde_json::Value::String(s) => clip(s, 80),
            other => clip(&other.to_string(), 80),
        })
        .collect()
}

/// A short message from an error body: `error.message` when present, else the start of the text.
fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let err = v.get("error").unwrap_or(&v);
        if let Some(m) = err.get("message").and_then(|m| m.as_str()) {
            return clip(m, 200);
        }
        if let Some(m) = err.as_str() {
            return clip(m, 200);
        }
    }
    clip(String::from_utf8_lossy(body).trim(), 200)
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_goes_on_first_user_message_only_when_busting() {
        let msgs = vec![
            Message {
                role: "system".into(),
                content: "be brief".into(),
                ..Default::default()
            },
            Message {
                role: "user".into(),
                content: "hi".into(),
                ..Default::default()
            },
        ];
        let same = with_nonce(&msgs, false);
        assert_eq!(same, msgs);
        let busted = with_nonce(&msgs, true);
        assert_eq!(busted[0], msgs[0]);
        assert!(
            busted[1].content.starts_with("[probe "),
            "{}",
            busted[1].content
        );
        assert!(busted[1].content.ends_with("] hi"));
        assert_ne!(with_nonce(&msgs, true)[1].content, busted[1].content);
    }

    #[test]
    fn error_detail_prefers_json_message() {
        assert_eq!(
            error_detail(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            error_detail(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            "Overloaded"
        );
        assert_eq!(error_detail(b"  upstream down \n"), "upstream down");
        assert!(looks_like_error(br#"{"error":"x"}"#));
        assert!(!looks_like_error(br#"{"choices":[]}"#));
    }
}
