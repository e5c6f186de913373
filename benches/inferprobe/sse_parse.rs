//! Section 3: SSE events framed and decoded per second on one core.
//!
//! A recorded-style stream (OpenAI chat as vLLM sends it, and Anthropic messages) of 10,000
//! token events plus the surrounding events is cut into chunks, then fed through
//! `sse::frame` and the dialect's decoder exactly as the engine does, including one
//! `Instant::now()` per chunk. No network and no runtime: the chunk stream is always ready and is
//! polled directly.

use std::convert::Infallible;
use std::time::Instant;

use anyhow::{bail, ensure};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use inferprobe::probe::dialect::{DialectKind, Signal};
use inferprobe::probe::framing::sse;

use crate::stats::median;

/// Token events per stream.
pub const TOKEN_EVENTS: usize = 10_000;

/// How a stream is cut into chunks.
#[derive(Clone, Copy)]
pub enum Chunking {
    /// One chunk per SSE event, as a server that flushes every token sends it.
    PerEvent,
    /// Fixed-size chunks that split events anywhere, as a fast stream is read in bulk.
    Fixed(usize),
}

impl Chunking {
    /// For the table.
    pub fn label(self) -> String {
        match self {
            Chunking::PerEvent => "1 event per chunk".to_string(),
            Chunking::Fixed(n) => format!("{} KiB chunks", n / 1024),
        }
    }
}

/// One dialect × chunking result.
pub struct Row {
    /// Dialect.
    pub dialect: DialectKind,
    /// Chunking.
    pub chunking: Chunking,
    /// SSE events per pass.
    pub events: usize,
    /// Bytes per pass.
    pub bytes: usize,
    /// Chunks per pass.
    pub chunks: usize,
    /// Best events per second over the passes.
    pub best: f64,
    /// Median events per second over the passes.
    pub median: f64,
    /// Median MiB per second.
    pub median_mib: f64,
}

/// A vLLM-style OpenAI chat stream: role chunk, `n` content chunks, finish chunk, usage chunk,
/// `[DONE]`. Returns the text and its event count.
pub fn openai_stream(n: usize) -> (String, usize) {
    const WORDS: [&str; 8] = [
        " the", " capital", " of", " France", " is", " Paris", ".", "\\n",
    ];
    let head = r#"{"id":"chatcmpl-8f3c2a91b7d44e0c","object":"chat.completion.chunk","created":1745842101,"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"delta":{"#;
    let mut s = String::with_capacity(n * 230);
    s.push_str(&format!(
        "data: {head}\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    ));
    for i in 0..n {
        s.push_str(&format!(
            "data: {head}\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str(&format!(
        "data: {head}}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    s.push_str(&format!(
        "data: {{\"id\":\"chatcmpl-8f3c2a91b7d44e0c\",\"object\":\"chat.completion.chunk\",\"created\":1745842101,\"model\":\"Qwen/Qwen2.5-7B-Instruct\",\"choices\":[],\"usage\":{{\"prompt_tokens\":18,\"total_tokens\":{},\"completion_tokens\":{n}}}}}\n\n",
        n + 18
    ));
    s.push_str("data: [DONE]\n\n");
    (s, n + 4)
}

/// An Anthropic messages stream: message_start, content_block_start, ping, `n` text deltas,
/// content_block_stop, message_delta, message_stop. Returns the text and its event count.
pub fn anthropic_stream(n: usize) -> (String, usize) {
    const WORDS: [&str; 8] = [
        " the", " capital", " of", " France", " is", " Paris", ".", "\\n",
    ];
    let mut s = String::with_capacity(n * 150);
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    for i in 0..n {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            WORDS[i % WORDS.len()]
        ));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str(&format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{n}}}}}\n\n"));
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    (s, n + 6)
}

/// Cuts `text` into chunks.
pub fn chunks(text: &str, how: Chunking) -> Vec<Bytes> {
    let all = Bytes::copy_from_slice(text.as_bytes());
    match how {
        Chunking::PerEvent => {
            let mut out = Vec::new();
            let mut start = 0;
            while let Some(i) = text[start..].find("\n\n") {
                let end = start + i + 2;
                out.push(all.slice(start..end));
                start = end;
            }
            if start < all.len() {
                out.push(all.slice(start..));
            }
            out
        }
        Chunking::Fixed(size) => (0..all.len())
            .step_by(size)
            .map(|i| all.slice(i..(i + size).min(all.len())))
            .collect(),
    }
}

/// Frames and decodes `chunks` once; returns (events, output signals).
pub fn pass(dialect: DialectKind, chunks: &[Bytes]) -> anyhow::Result<(usize, usize)> {
    let input = futures_util::stream::iter(
        chunks
            .iter()
            .map(|b| Ok::<_, Infallible>((Instant::now(), b.clone()))),
    );
    let mut events = std::pin::pin!(sse::frame(input));
    let mut decoder = dialect.decoder();
    let mut signals = Vec::with_capacity(4);
    let (mut n, mut outputs) = (0usize, 0usize);
    loop {
        match events.next().now_or_never() {
            Some(Some(Ok(ev))) => {
                n += 1;
                signals.clear();
                decoder.decode(&ev.as_event(), &mut signals)?;
                outputs += signals
                    .iter()
                    .filter(|s| matches!(s, Signal::Output { .. }))
                    .count();
            }
            Some(Some(Err(e))) => bail!("framing failed: {e}"),
            Some(None) => return Ok((n, outputs)),
            None => bail!("an always-ready stream returned Pending"),
        }
    }
}

/// Runs `passes` timed passes of each dialect × chunking.
pub fn run(passes: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for dialect in [DialectKind::OpenaiChat, DialectKind::AnthropicMessages] {
        let (text, expected) = match dialect {
            DialectKind::AnthropicMessages => anthropic_stream(TOKEN_EVENTS),
            _ => openai_stream(TOKEN_EVENTS),
        };
        for how in [Chunking::PerEvent, Chunking::Fixed(4096)] {
            let cs = chunks(&text, how);
            // One untimed pass to check the stream and warm the caches.
            let (events, outputs) = pass(dialect, &cs)?;
            ensure!(
                events == expected && outputs == TOKEN_EVENTS,
                "{}: framed {events} events with {outputs} outputs, expected {expected} and {TOKEN_EVENTS}",
                dialect.as_str()
            );
            let mut rates = Vec::with_capacity(passes);
            for _ in 0..passes {
                let t0 = Instant::now();
                let (n, _) = pass(dialect, &cs)?;
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                rates.push(n as f64 / secs);
            }
            let best = rates.iter().copied().fold(0.0, f64::max);
            let med = median(&rates);
            rows.push(Row {
                dialect,
                chunking: how,
                events: expected,
                bytes: text.len(),
                chunks: cs.len(),
                best,
                median: med,
                median_mib: med / expected as f64 * text.len() as f64 / (1024.0 * 1024.0),
            });
        }
    }
    Ok(rows)
}

/// Sizes of the single long line in [`long_lines`]: up to just below `framing::MAX_EVENT_BYTES`.
pub const LONG_LINE_MIB: [usize; 3] = [1, 4, 15];
/// Chunk size for the long lines: what one socket read typically hands over.
pub const LONG_LINE_CHUNK: usize = 4096;

/// One long-line result.
pub struct LongRow {
    /// Bytes of the stream (one `data:` line of that size plus the blank line).
    pub bytes: usize,
    /// Chunks it arrived in.
    pub chunks: usize,
    /// Median seconds to frame it.
    pub median_s: f64,
    /// Fastest pass.
    pub best_s: f64,
}

/// Frames `chunks` (no decoding); returns the total data bytes of the events.
fn frame_only(chunks: &[Bytes]) -> anyhow::Result<usize> {
    let input = futures_util::stream::iter(
        chunks
            .iter()
            .map(|b| Ok::<_, Infallible>((Instant::now(), b.clone()))),
    );
    let mut events = std::pin::pin!(sse::frame(input));
    let mut data = 0;
    loop {
        match events.next().now_or_never() {
            Some(Some(Ok(ev))) => data += ev.data.len(),
            Some(Some(Err(e))) => bail!("framing failed: {e}"),
            Some(None) => return Ok(data),
            None => bail!("an always-ready stream returned Pending"),
        }
    }
}

/// A single event whose one `data:` line is `mib` MiB long, arriving in `LONG_LINE_CHUNK`-byte
/// chunks (a misbehaving server, or a huge tool-call argument): framing only, `passes` timed
/// passes per size.
pub fn long_lines(passes: usize) -> anyhow::Result<Vec<LongRow>> {
    let mut rows = Vec::new();
    for mib in LONG_LINE_MIB {
        let payload = mib * 1024 * 1024;
        let mut text = Vec::with_capacity(payload + 8);
        text.extend_from_slice(b"data: ");
        text.resize(6 + payload, b'x');
        text.extend_from_slice(b"\n\n");
        let all = Bytes::from(text);
        let cs: Vec<Bytes> = (0..all.len())
            .step_by(LONG_LINE_CHUNK)
            .map(|i| all.slice(i..(i + LONG_LINE_CHUNK).min(all.len())))
            .collect();
        let mut times = Vec::with_capacity(passes);
        for _ in 0..passes {
            let t0 = Instant::now();
            let data = frame_only(&cs)?;
            times.push(t0.elapsed().as_secs_f64());
            ensure!(
                data == payload,
                "framed {data} data bytes, expected {payload}"
            );
        }
        rows.push(LongRow {
            bytes: all.len(),
            chunks: cs.len(),
            median_s: median(&times),
            best_s: times.iter().copied().fold(f64::INFINITY, f64::min),
        });
    }
    Ok(rows)
}
