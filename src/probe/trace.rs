//! A probe's raw timeline ([`Trace`]) and what it means ([`Outcome`]).
//!
//! The engine records `Instant`s as bytes arrive; an unreached phase is `None`. Every duration in
//! an [`Outcome`] is a pure function of the trace, so the timing definitions are unit-tested on
//! hand-built traces.

use std::time::{Duration, Instant, SystemTime};

use crate::probe::dialect::OutputKind;
use crate::probe::ratelimit::RateLimitInfo;
use crate::probe::result::ProbeResult;

/// Timestamps and counts collected while one probe runs.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Just before the request was sent.
    pub start: Instant,
    /// Wall-clock time of `start`, for `inferprobe_last_probe_timestamp_seconds`.
    pub start_wall: SystemTime,
    /// Response headers received.
    pub headers: Option<Instant>,
    /// First SSE event of any kind.
    pub first_event: Option<Instant>,
    /// Arrival of each output-bearing event, in order, with its kind.
    pub outputs: Vec<(Instant, OutputKind)>,
    /// Every event of the stream (at most [`MAX_TRACE_EVENTS`]), for `probe --trace`.
    pub events: Vec<(Instant, EventKind, u32)>,
    /// End of the stream (end marker or clean EOF after the last event).
    pub end: Option<Instant>,
    /// When the probe gave up or failed, if it did not reach `end`.
    pub failed_at: Option<Instant>,
}

impl Trace {
    /// A trace that starts now.
    pub fn new(start: Instant) -> Trace {
        Trace {
            start,
            start_wall: SystemTime::now(),
            headers: None,
            first_event: None,
            outputs: Vec::new(),
            events: Vec::new(),
            end: None,
            failed_at: None,
        }
    }

    /// Time to first byte: response headers.
    pub fn ttfb(&self) -> Option<Duration> {
        self.since_start(self.headers)
    }

    /// Time to first SSE event of any kind.
    pub fn time_to_first_event(&self) -> Option<Duration> {
        self.since_start(self.first_event)
    }

    /// Time to first output-bearing event (answer, reasoning or tool-call arguments).
    pub fn ttft(&self) -> Option<Duration> {
        self.since_start(self.outputs.first().map(|(t, _)| *t))
    }

    /// Time to first answer-text event.
    pub fn time_to_first_answer_token(&self) -> Option<Duration> {
        self.since_start(
            self.outputs
                .iter()
                .find(|(_, k)| *k == OutputKind::Answer)
                .map(|(t, _)| *t),
        )
    }

    /// Gaps between consecutive output-bearing events, one per gap.
    pub fn inter_token_latencies(&self) -> Vec<Duration> {
        self.outputs
            .windows(2)
            .map(|w| w[1].0.saturating_duration_since(w[0].0))
            .collect()
    }

    /// Start to end of stream; `None` when the stream did not complete.
    pub fn e2e(&self) -> Option<Duration> {
        self.since_start(self.end)
    }

    /// Start to the moment the probe ended, completed or not.
    pub fn elapsed(&self) -> Duration {
        let last = self.end.or(self.failed_at).unwrap_or(self.start);
        last.saturating_duration_since(self.start)
    }

    /// TPOT = (t_last_output − t_first_output) / (output_tokens − 1); `None` below 2 tokens.
    pub fn tpot(&self, output_tokens: u64) -> Option<Duration> {
        if output_tokens < 2 {
            return None;
        }
        let first = self.outputs.first()?.0;
        let last = self.outputs.last()?.0;
        let span = last.saturating_duration_since(first);
        Some(span.div_f64((output_tokens - 1) as f64))
    }

    /// Output tokens per second of E2E; `None` when the stream did not complete.
    pub fn output_rate(&self, output_tokens: u64) -> Option<f64> {
        let e2e = self.e2e()?.as_secs_f64();
        if e2e <= 0.0 {
            return None;
        }
        Some(output_tokens as f64 / e2e)
    }

    fn since_start(&self, t: Option<Instant>) -> Option<Duration> {
        t.map(|t| t.saturating_duration_since(self.start))
    }
}

/// Where the output-token count came from: the field the server reported it in, or the
/// fallback of counting events. The label (`probe --json` `token_source`) names the field.
/// Most events a trace keeps: a probe's answer is tens to hundreds of events; a stream of
/// thousands is still measured, but only its first events are listed.
pub const MAX_TRACE_EVENTS: usize = 4096;

/// What one event of a stream carried, for `probe --trace`. An event carrying several things is
/// listed under the first kind of this order that it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An in-stream error.
    Error,
    /// Answer text.
    Answer,
    /// Reasoning text.
    Reasoning,
    /// A tool call or its arguments.
    ToolCall,
    /// Token usage.
    Usage,
    /// The end marker (`[DONE]`, `message_stop`, ...).
    End,
    /// A finish reason without output.
    Finish,
    /// Anything else: a role-only delta, metadata, a ping.
    Metadata,
}

impl EventKind {
    /// The name `probe --trace` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Error => "error",
            EventKind::Answer => "answer",
            EventKind::Reasoning => "reasoning",
            EventKind::ToolCall => "tool_call",
            EventKind::Usage => "usage",
            EventKind::End => "end",
            EventKind::Finish => "finish",
            EventKind::Metadata => "metadata",
        }
    }

    /// Whether the event carried generated output (answer, reasoning or tool-call text).
    pub fn is_output(self) -> bool {
        matches!(
            self,
            EventKind::Answer | EventKind::Reasoning | EventKind::ToolCall
        )
    }

    /// The kind of an event from the signals it produced.
    pub fn of(signals: &[crate::probe::dialect::Signal]) -> EventKind {
        use crate::probe::dialect::Signal;
        let has = |f: &dyn Fn(&Signal) -> bool| signals.iter().any(f);
        let output = |k: OutputKind| move |s: &Signal| matches!(s, Signal::Output { kind, .. } if *kind == k);
        if has(&|s| matches!(s, Signal::Error { .. })) {
            EventKind::Error
        } else if has(&output(OutputKind::Answer)) {
            EventKind::Answer
        } else if has(&output(OutputKind::Reasoning)) {
            EventKind::Reasoning
        } else if has(&output(OutputKind::ToolCall))
            || has(&|s| matches!(s, Signal::ToolCall { .. }))
        {
            EventKind::ToolCall
        } else if has(&|s| matches!(s, Signal::Usage(_))) {
            EventKind::Usage
        } else if has(&|s| matches!(s, Signal::Done)) {
            EventKind::End
        } else if has(&|s| matches!(s, Signal::FinishReason(_))) {
            EventKind::Finish
        } else {
            EventKind::Metadata
        }
    }
}

/// One event of a probe's stream: its arrival offset from `t_start`, its kind and its size
/// (name plus payload bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Arrival, from `t_start`.
    pub offset: Duration,
    /// What it carried.
    pub kind: EventKind,
    /// Bytes of the event's name and payload.
    pub bytes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// OpenAI-style top-level `usage` (`completion_tokens`): OpenAI, vLLM, SGLang, TGI,
    /// llama.cpp with `include_usage`, Ollama, LiteLLM, OpenRouter, DeepSeek, Mistral, Gemini.
    Usage,
    /// Groq's `x_groq.usage`, sent in the final chunk when `usage` is not.
    XGroqUsage,
    /// llama.cpp's `timings.predicted_n`, sent in the final chunk when no `usage` is.
    Timings,
    /// Anthropic's cumulative `message_delta.usage.output_tokens`.
    MessageDeltaUsage,
    /// Gemini's `usageMetadata` (`candidatesTokenCount` + `thoughtsTokenCount`), a running
    /// total on every chunk.
    UsageMetadata,
    /// Ollama's final `eval_count` (the `done: true` line of `/api/chat`).
    EvalCount,
    /// Bedrock ConverseStream's `metadata.usage.outputTokens`.
    MetadataUsage,
    /// Counted as one token per output-bearing event (the server reported no usage).
    CountedEvents,
}

impl TokenSource {
    /// For logs and probe output (`token_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::XGroqUsage => "x_groq.usage",
            TokenSource::Timings => "timings",
            TokenSource::MessageDeltaUsage => "message_delta.usage",
            TokenSource::UsageMetadata => "usageMetadata",
            TokenSource::EvalCount => "eval_count",
            TokenSource::MetadataUsage => "metadata.usage",
            TokenSource::CountedEvents => "counted_events",
        }
    }

    /// True when the count came from the server rather than from counting events.
    pub fn is_reported(self) -> bool {
        self != TokenSource::CountedEvents
    }

    /// Which report wins when one stream carries several: the standard `usage` over a
    /// provider extension over server timings.
    fn rank(self) -> u8 {
        match self {
            TokenSource::Usage
            | TokenSource::MessageDeltaUsage
            | TokenSource::UsageMetadata
            | TokenSource::EvalCount
            | TokenSource::MetadataUsage => 3,
            TokenSource::XGroqUsage => 2,
            TokenSource::Timings => 1,
            TokenSource::CountedEvents => 0,
        }
    }
}

/// One usage report of a stream, from one field. Counts the report does not carry are `None`.
/// `input_tokens` is the whole prompt, cached part included; `cached_input_tokens` is the part
/// served from the prompt cache; `reasoning_tokens` is the part of the output spent reasoning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageReport {
    /// The field the report came from.
    pub source: TokenSource,
    /// Prompt tokens, cached ones included.
    pub input_tokens: Option<u64>,
    /// Generated tokens.
    pub output_tokens: Option<u64>,
    /// Prompt tokens served from the prompt cache.
    pub cached_input_tokens: Option<u64>,
    /// Generated tokens spent on reasoning (part of `output_tokens`).
    pub reasoning_tokens: Option<u64>,
}

/// The usage of one probe, merged from every report of its stream. Per count, a report from a
/// better-ranked field ([`TokenSource::Usage`] > `x_groq.usage` > `timings`) replaces a worse
/// one, and among equals the later report wins (reports are cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageTotals {
    input: Option<(u64, TokenSource)>,
    output: Option<(u64, TokenSource)>,
    cached: Option<(u64, TokenSource)>,
    reasoning: Option<(u64, TokenSource)>,
}

impl UsageTotals {
    /// Merges one report.
    pub fn merge(&mut self, r: &UsageReport) {
        fn put(slot: &mut Option<(u64, TokenSource)>, v: Option<u64>, src: TokenSource) {
            if let Some(v) = v {
                if slot.is_none_or(|(_, s)| src.rank() >= s.rank()) {
                    *slot = Some((v, src));
                }
            }
        }
        put(&mut self.input, r.input_tokens, r.source);
        put(&mut self.output, r.output_tokens, r.source);
        put(&mut self.cached, r.cached_input_tokens, r.source);
        put(&mut self.reasoning, r.reasoning_tokens, r.source);
    }

    /// Reported input tokens.
    pub fn input(&self) -> Option<u64> {
        self.input.map(|(n, _)| n)
    }

    /// Reported output tokens and the field they came from.
    pub fn output(&self) -> Option<(u64, TokenSource)> {
        self.output
    }

    /// Reported cached input tokens.
    pub fn cached(&self) -> Option<u64> {
        self.cached.map(|(n, _)| n)
    }

    /// Reported reasoning tokens.
    pub fn reasoning(&self) -> Option<u64> {
        self.reasoning.map(|(n, _)| n)
    }

    /// Forgets the reported output count (after it was found implausible).
    pub fn drop_output(&mut self) {
        self.output = None;
        self.reasoning = None;
    }
}

/// Percentile summary of a probe's inter-token latencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ItlSummary {
    /// Median gap.
    pub p50: Duration,
    /// 95th percentile gap (nearest rank).
    pub p95: Duration,
    /// Largest gap.
    pub max: Duration,
}

impl ItlSummary {
    /// Summarizes gaps; `None` when there are none.
    pub fn of(gaps: &[Duration]) -> Option<ItlSummary> {
        if gaps.is_empty() {
            return None;
        }
        let mut v = gaps.to_vec();
        v.sort_unstable();
        let rank = |q: f64| {
            let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[idx]
        };
        Some(ItlSummary {
            p50: rank(0.50),
            p95: rank(0.95),
            max: v[v.len() - 1],
        })
    }
}

/// Everything one probe measured, ready for metrics, the status page and `probe` output.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Target name.
    pub target: String,
    /// Configured model name.
    pub model: String,
    /// Scenario name.
    pub scenario: String,
    /// How the probe ended.
    pub result: ProbeResult,
    /// A short, secret-free description of what went wrong.
    pub error: Option<String>,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Monotonic instant just before the request was sent (`t_start`): the origin of every
    /// duration above, for placing probes on one clock (journeys).
    pub started: Instant,
    /// HTTP status, when headers arrived.
    pub http_status: Option<u16>,
    /// Time to response headers.
    pub ttfb: Option<Duration>,
    /// Time to first SSE event.
    pub time_to_first_event: Option<Duration>,
    /// Time to first output-bearing event.
    pub ttft: Option<Duration>,
    /// Time to first answer-text event.
    pub time_to_first_answer_token: Option<Duration>,
    /// Gaps between output-bearing events.
    pub inter_token_latencies: Vec<Duration>,
    /// TPOT, when the stream completed with at least 2 output tokens.
    pub tpot: Option<Duration>,
    /// Start to end of stream, when it completed.
    pub e2e: Option<Duration>,
    /// How long the probe ran, completed or not.
    pub elapsed: Duration,
    /// Output tokens per second of E2E.
    pub output_tokens_per_second: Option<f64>,
    /// Input tokens (usage only; `None` when not reported).
    pub input_tokens: Option<u64>,
    /// Cached input tokens, where reported.
    pub cached_input_tokens: Option<u64>,
    /// Reasoning tokens (part of `output_tokens`), where reported.
    pub reasoning_tokens: Option<u64>,
    /// Output tokens (usage, else counted events).
    pub output_tokens: u64,
    /// Where `output_tokens` came from.
    pub token_source: TokenSource,
    /// Output-bearing events seen.
    pub output_events: u64,
    /// Cost of this request in USD, when a price is configured.
    pub cost_usd: Option<f64>,
    /// The model name the server reported.
    pub response_model: Option<String>,
    /// Why generation stopped, as the server said.
    pub finish_reason: Option<String>,
    /// The answer text (kept for checks and `probe` output; bounded by the response byte cap).
    pub answer: String,
    /// Every event of the stream (at most [`MAX_TRACE_EVENTS`]), in order.
    pub events: Vec<TraceEvent>,
    /// Tool calls the model made (arguments as streamed), for journeys and `expect_tool`.
    pub tool_calls: Vec<crate::probe::dialect::ToolCall>,
    /// Rate-limit headers of the response (retry-after, remaining quota), when any came.
    pub rate_limit: RateLimitInfo,
    /// Which connection the probe used and whether it was retried.
    pub connection: ConnectionInfo,
    /// Durations the server itself reported about this request, as (phase, seconds): Ollama's
    /// `load`, `prompt_eval`, `eval`, `total`; Bedrock's `latency`. Empty for other servers.
    pub server_timings: Vec<(&'static str, f64)>,
}

/// Whether the response came over a new connection or one kept from an earlier probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionUse {
    /// Opened for this request: TCP (and TLS) set-up is inside TTFB and every later milestone.
    New,
    /// Taken from the pool: no set-up time.
    Reused,
}

impl ConnectionUse {
    /// Both values, for pre-creating series.
    pub const ALL: [ConnectionUse; 2] = [ConnectionUse::New, ConnectionUse::Reused];

    /// The `connection` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionUse::New => "new",
            ConnectionUse::Reused => "reused",
        }
    }
}

/// Why a probe was sent a second time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// The request failed on a pooled connection before any response byte arrived: the server
    /// had closed the idle connection as it was reused. Retried once on a new connection.
    StaleConnection,
}

impl RetryReason {
    /// Every value, for pre-creating series.
    pub const ALL: [RetryReason; 1] = [RetryReason::StaleConnection];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::StaleConnection => "stale_connection",
        }
    }
}

/// How a probe used the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection the response came on; `None` when no response arrived (or the transport
    /// does not say).
    pub used: Option<ConnectionUse>,
    /// Set when the probe was retried; its timings are those of the retry.
    pub retried: Option<RetryReason>,
    /// Redirects followed (only with `follow_redirects: true`).
    pub redirects: u32,
}

impl Outcome {
    /// ITL percentiles of this probe.
    pub fn itl_summary(&self) -> Option<ItlSummary> {
        ItlSummary::of(&self.inter_token_latencies)
    }

    /// The output rate to record: only a completed stream's, and only a finite one (a NaN would
    /// poison a histogram's sum for good).
    pub fn recordable_output_rate(&self) -> Option<f64> {
        self.output_tokens_per_second
            .filter(|r| r.is_finite() && self.e2e.is_some())
    }

    /// The cost to record: counters only go up, so a negative or NaN cost (a bad price config)
    /// is dropped, not counted.
    pub fn recordable_cost(&self) -> Option<f64> {
        self.cost_usd.filter(|c| is_countable_cost(*c))
    }

    /// True when the server reported fewer output tokens than output-bearing events arrived: a
    /// tokenizer or usage bug on the server, since every such event carries at least one token
    /// (an event carrying several is fine, so only "reported < events" counts).
    pub fn token_count_mismatch(&self) -> bool {
        self.token_source.is_reported() && self.output_tokens < self.output_events
    }
}

/// Outcomes for unit tests elsewhere in the crate.
/// True for a cost that may be added to a counter: finite and not negative.
pub fn is_countable_cost(c: f64) -> bool {
    c.is_finite() && c >= 0.0
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::probe::ProbeResult;
    use std::time::UNIX_EPOCH;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A completed, successful probe with every field set; timings are binary fractions so sums
    /// print exactly.
    pub fn outcome() -> Outcome {
        Outcome {
            target: "t".to_string(),
            model: "m".to_string(),
            scenario: "s".to_string(),
            result: ProbeResult::Success,
            error: None,
            started_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            started: std::time::Instant::now(),
            http_status: Some(200),
            ttfb: Some(ms(125)),
            time_to_first_event: Some(ms(250)),
            ttft: Some(ms(500)),
            time_to_first_answer_token: Some(ms(750)),
            inter_token_latencies: vec![ms(250), ms(125), Duration::from_micros(62_500)],
            tpot: Some(ms(125)),
            e2e: Some(ms(1500)),
            elapsed: ms(1500),
            output_tokens_per_second: Some(2.5),
            input_tokens: Some(12),
            cached_input_tokens: Some(0),
            reasoning_tokens: None,
            output_tokens: 4,
            token_source: TokenSource::Usage,
            output_events: 4,
            cost_usd: Some(0.25),
            response_model: Some("m".to_string()),
            finish_reason: Some("stop".to_string()),
            answer: "a b c d".to_string(),
            tool_calls: Vec::new(),
            events: Vec::new(),
            rate_limit: Default::default(),
            connection: Default::default(),
            server_timings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A hand-built trace: headers at 10 ms, a role-only event at 12 ms, two reasoning events at
    /// 100 and 120 ms, answer events at 150, 170, 200 ms, end at 210 ms.
    fn trace() -> Trace {
        let t0 = Instant::now();
        let mut t = Trace::new(t0);
        t.headers = Some(t0 + ms(10));
        t.first_event = Some(t0 + ms(12));
        for (at, kind) in [
            (100, OutputKind::Reasoning),
            (120, OutputKind::Reasoning),
            (150, OutputKind::Answer),
            (170, OutputKind::Answer),
            (200, OutputKind::Answer),
        ] {
            t.outputs.push((t0 + ms(at), kind));
        }
        t.end = Some(t0 + ms(210));
        t
    }

    #[test]
    fn milestones_follow_the_design_definitions() {
        let t = trace();
        assert_eq!(t.ttfb(), Some(ms(10)));
        assert_eq!(t.time_to_first_event(), Some(ms(12)));
        assert_eq!(t.ttft(), Some(ms(100)), "reasoning output counts for TTFT");
        assert_eq!(t.time_to_first_answer_token(), Some(ms(150)));
        assert_eq!(t.e2e(), Some(ms(210)));
        assert_eq!(t.elapsed(), ms(210));
        assert_eq!(
            t.inter_token_latencies(),
            vec![ms(20), ms(30), ms(20), ms(30)]
        );
    }

    #[test]
    fn tpot_and_rate_use_the_token_count() {
        let t = trace();
        // (200 − 100) ms over (5 − 1) tokens.
        assert_eq!(t.tpot(5), Some(ms(25)));
        // With usage reporting 11 tokens over the same span: 100 ms / 10.
        assert_eq!(t.tpot(11), Some(ms(10)));
        assert_eq!(t.tpot(1), None);
        let rate = t.output_rate(5).unwrap();
        assert!((rate - 5.0 / 0.210).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn unreached_phases_are_none() {
        let t0 = Instant::now();
        let mut t = Trace::new(t0);
        t.failed_at = Some(t0 + ms(40));
        assert_eq!(t.ttfb(), None);
        assert_eq!(t.ttft(), None);
        assert_eq!(t.time_to_first_answer_token(), None);
        assert_eq!(t.e2e(), None);
        assert_eq!(t.output_rate(3), None);
        assert_eq!(t.tpot(3), None);
        assert!(t.inter_token_latencies().is_empty());
        assert_eq!(t.elapsed(), ms(40));
    }

    fn report(source: TokenSource, input: Option<u64>, output: Option<u64>) -> UsageReport {
        UsageReport {
            source,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: None,
            reasoning_tokens: None,
        }
    }

    #[test]
    fn usage_prefers_the_standard_field_then_the_latest_report() {
        let mut u = UsageTotals::default();
        // llama.cpp: timings in one chunk, usage in a later one; usage wins whatever the order.
        u.merge(&report(TokenSource::Usage, Some(17), Some(4)));
        u.merge(&report(TokenSource::Timings, Some(99), Some(99)));
        assert_eq!(u.output(), Some((4, TokenSource::Usage)));
        assert_eq!(u.input(), Some(17));
        // A later report of the same rank overwrites (cumulative counts).
        u.merge(&report(TokenSource::Usage, None, Some(5)));
        assert_eq!(u.output(), Some((5, TokenSource::Usage)));
        assert_eq!(u.input(), Some(17), "a count the report lacks is kept");
        // A worse-ranked field fills a count nobody else reported.
        let mut g = UsageTotals::default();
        g.merge(&report(TokenSource::Timings, Some(3), Some(8)));
        g.merge(&report(TokenSource::XGroqUsage, None, Some(9)));
        assert_eq!(g.output(), Some((9, TokenSource::XGroqUsage)));
        assert_eq!(g.input(), Some(3));
        g.drop_output();
        assert_eq!(g.output(), None);
    }

    #[test]
    fn token_source_labels_name_the_field() {
        let labels: Vec<&str> = [
            TokenSource::Usage,
            TokenSource::XGroqUsage,
            TokenSource::Timings,
            TokenSource::MessageDeltaUsage,
            TokenSource::CountedEvents,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(
            labels,
            [
                "usage",
                "x_groq.usage",
                "timings",
                "message_delta.usage",
                "counted_events"
            ]
        );
        assert!(!TokenSource::CountedEvents.is_reported());
        assert!(TokenSource::Timings.is_reported());
    }

    #[test]
    fn itl_summary_uses_nearest_rank() {
        let gaps: Vec<Duration> = (1..=20).map(ms).collect();
        let s = ItlSummary::of(&gaps).unwrap();
        assert_eq!(s.p50, ms(10));
        assert_eq!(s.p95, ms(19));
        assert_eq!(s.max, ms(20));
        let one = ItlSummary::of(&[ms(7)]).unwrap();
        assert_eq!((one.p50, one.p95, one.max), (ms(7), ms(7), ms(7)));
        assert_eq!(ItlSummary::of(&[]), None);
    }
}
