//! The probe engine: sends one streaming request, stamps `Instant`s as bytes arrive, hands each
//! event to the dialect and turns the trace into an [`Outcome`].
//!
//! The engine owns the clock. Every chunk of the body is stamped with `Instant::now()` the moment
//! it is read from the socket, and each SSE event carries the stamp of the chunk that completed it
//! (see [`crate::probe::sse`]). Timeouts are deadlines on that same clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::Rng;

use crate::config::{Scenario, Target, Timeouts};
use crate::cost::{request_cost, TokenCounts};
use crate::probe::dialect::{
    AuthStyle, Message, OutputKind, ProbeRequest, Signal, StreamErrorKind,
};
use crate::probe::result::ProbeResult;
use crate::probe::sse::{self, SseError};
use crate::probe::trace::{Outcome, TokenSource, Trace};
use crate::probe::{check, clip};

/// Most bytes of a non-2xx or non-SSE body read to find an error message.
const ERROR_BODY_CAP: usize = 8 * 1024;

/// Builds the HTTP client for one target: connect timeout, no overall timeout (the engine keeps
/// its own deadlines), rustls, HTTP/1.1 and HTTP/2 as the server offers.
pub fn client_for(timeouts: &Timeouts) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("inferprobe/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Installs the process-wide rustls crypto provider (ring) once; later calls are no-ops.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs one probe of `scenario` against `target`, whose base URL has been resolved to
/// `base_url` (no trailing slash). Never panics and never returns an error: every failure is an
/// [`Outcome`] with a `result`.
pub async fn run_probe(
    client: &reqwest::Client,
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
    });
    let url = format!(
        "{}{}",
        base_url.trim_end_matches('/'),
        target.dialect.path()
    );
    let mut req = client
        .post(&url)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(&body);
    if !target.query.is_empty() {
        req = req.query(&target.query);
    }
    for (k, v) in target.dialect.fixed_headers() {
        req = req.header(*k, *v);
    }
    if let Some(key) = &target.api_key {
        req = match target.auth {
            AuthStyle::Bearer => req.bearer_auth(key.expose()),
            AuthStyle::XApiKey => req.header("x-api-key", key.expose()),
            AuthStyle::ApiKey => req.header("api-key", key.expose()),
        };
    }
    for (k, v) in &target.headers {
        req = req.header(k.as_str(), v.as_str());
    }

    let mut run = Run::new(target, scenario);
    let result = run.execute(req).await;
    run.finish(result)
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
    usage_input: Option<u64>,
    usage_output: Option<u64>,
    usage_cached: Option<u64>,
    response_model: Option<String>,
    finish_reason: Option<String>,
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
            usage_input: None,
            usage_output: None,
            usage_cached: None,
            response_model: None,
            finish_reason: None,
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

    async fn execute(&mut self, req: reqwest::RequestBuilder) -> PhaseResult {
        let header_deadline = self.first_token_deadline().min(self.total_deadline());
        let resp = match tokio::time::timeout_at(header_deadline.into(), req.send()).await {
            Err(_) => {
                self.trace.failed_at = Some(Instant::now());
                return Err(self
                    .deadline_result(None)
                    .unwrap_or((ProbeResult::TimeoutFirstToken, "no response headers".into())));
            }
            Ok(Err(e)) => {
                self.trace.failed_at = Some(Instant::now());
                return Err(classify_send_error(&e));
            }
            Ok(Ok(r)) => r,
        };
        let headers_at = Instant::now();
        self.trace.headers = Some(headers_at);
        let status = resp.status();
        self.http_status = Some(status.as_u16());

        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.to_string());
            let body = read_capped(resp, ERROR_BODY_CAP, self.total_deadline()).await;
            self.trace.failed_at = Some(Instant::now());
            let detail = error_detail(&body);
            let class = match status.as_u16() {
                429 => ProbeResult::RateLimited,
                500..=599 => ProbeResult::Http5xx,
                _ => ProbeResult::Http4xx,
            };
            let mut msg = format!("HTTP {}", status.as_u16());
            if let Some(ra) = retry_after {
                msg.push_str(&format!(" (Retry-After: {ra})"));
            }
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&detail);
            }
            return Err((class, msg));
        }

        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
        if !is_sse {
            let ct = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let body = read_capped(resp, ERROR_BODY_CAP, self.total_deadline()).await;
            self.trace.failed_at = Some(Instant::now());
            let detail = error_detail(&body);
            if looks_like_error(&body) {
                return Err((
                    ProbeResult::ApiError,
                    format!("error body on HTTP 200: {detail}"),
                ));
            }
            return Err((
                ProbeResult::MalformedStream,
                format!("expected text/event-stream, got content type {ct:?}"),
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
        let mut events = Box::pin(sse::frame(Box::pin(chunks)));
        let mut decoder = self.target.dialect.decoder();
        let mut signals = Vec::with_capacity(4);

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
                    // Clean EOF: the stream ends at the last read.
                    let end = last_read.lock().map(|l| *l).unwrap_or(headers_at);
                    self.trace.end = Some(end);
                    return Ok(());
                }
                Some(Err(SseError::Transport(e))) => {
                    self.trace.failed_at = Some(Instant::now());
                    if over_cap.load(Ordering::Relaxed) {
                        return Err((
                            ProbeResult::StreamAborted,
                            format!("response exceeded {cap} bytes"),
                        ));
                    }
                    return Err((ProbeResult::StreamAborted, format!("stream broke: {e}")));
                }
                Some(Err(SseError::Malformed(e))) => {
                    self.trace.failed_at = Some(Instant::now());
                    return Err((ProbeResult::MalformedStream, e));
                }
                Some(Err(e @ SseError::Unterminated { .. })) => {
                    self.trace.failed_at = Some(Instant::now());
                    return Err((ProbeResult::StreamAborted, e.to_string()));
                }
                Some(Ok(ev)) => ev,
            };
            if self.trace.first_event.is_none() {
                self.trace.first_event = Some(ev.at);
            }
            signals.clear();
            if let Err(e) = decoder.decode(&sse::as_sse_event(&ev), &mut signals) {
                self.trace.failed_at = Some(ev.at);
                return Err((ProbeResult::MalformedStream, e.to_string()));
            }
            // One output instant per event: an event carrying reasoning and answer text together
            // is one arrival, not a zero-length gap. It counts as an answer if any part is one.
            let mut event_output: Option<OutputKind> = None;
            for s in signals.drain(..) {
                match s {
                    Signal::Output { kind, text } => {
                        if kind == OutputKind::Answer {
                            self.answer.push_str(&text);
                        }
                        event_output = match event_output {
                            Some(OutputKind::Answer) => Some(OutputKind::Answer),
                            _ if kind == OutputKind::Answer => Some(OutputKind::Answer),
                            None => Some(kind),
                            other => other,
                        };
                    }
                    Signal::Usage {
                        input_tokens,
                        output_tokens,
                        cached_input_tokens,
                    } => {
                        self.usage_input = input_tokens.or(self.usage_input);
                        self.usage_output = output_tokens.or(self.usage_output);
                        self.usage_cached = cached_input_tokens.or(self.usage_cached);
                    }
                    Signal::Model(m) => self.response_model = Some(m),
                    Signal::FinishReason(r) => self.finish_reason = Some(r),
                    Signal::Done => {
                        if let Some(kind) = event_output.take() {
                            self.trace.outputs.push((ev.at, kind));
                        }
                        self.trace.end = Some(ev.at);
                        return Ok(());
                    }
                    Signal::Error { kind, message } => {
                        self.trace.failed_at = Some(ev.at);
                        let class = match kind {
                            StreamErrorKind::RateLimited => ProbeResult::RateLimited,
                            StreamErrorKind::Other => ProbeResult::ApiError,
                        };
                        return Err((class, format!("error in stream: {}", clip(&message, 200))));
                    }
                }
            }
            if let Some(kind) = event_output {
                self.trace.outputs.push((ev.at, kind));
            }
        }
    }

    fn finish(self, phase: PhaseResult) -> Outcome {
        let trace = self.trace;
        let output_events = trace.outputs.len() as u64;
        let (output_tokens, token_source) = match self.usage_output {
            Some(n) => (n, TokenSource::Usage),
            None => (output_events, TokenSource::CountedEvents),
        };
        let (mut result, mut error) = match phase {
            Ok(()) => (ProbeResult::Success, None),
            Err((r, e)) => (r, Some(e)),
        };
        if result.is_success() && output_events == 0 {
            result = ProbeResult::EmptyResponse;
            error = Some("stream ended without any output".to_string());
        }
        if result.is_success() {
            let a = check::Answer {
                text: &self.answer,
                output_tokens,
                model: self.response_model.as_deref(),
            };
            if let Err(e) = check::run(&self.scenario.checks, &a) {
                result = ProbeResult::CheckFailed;
                error = Some(e);
            }
        }
        let tokens = TokenCounts {
            input: self.usage_input,
            cached_input: self.usage_cached,
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
        Outcome {
            target: self.target.name.clone(),
            model: self.target.model.clone(),
            scenario: self.scenario.name.clone(),
            result,
            error,
            started_at: trace.start_wall,
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
            input_tokens: self.usage_input,
            cached_input_tokens: self.usage_cached,
            output_tokens,
            token_source,
            output_events,
            cost_usd,
            response_model: self.response_model,
            finish_reason: self.finish_reason,
            answer: self.answer,
        }
    }
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

/// True when a body is a JSON object with an `error` member (OpenAI and Anthropic shapes).
fn looks_like_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| {
            v.get("error").is_some() || v.get("type").and_then(|t| t.as_str()) == Some("error")
        })
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
            },
            Message {
                role: "user".into(),
                content: "hi".into(),
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
