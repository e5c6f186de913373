//! Response framing with arrival stamps: the bytes of a streaming body become events.
//!
//! The engine stamps each body chunk with the `Instant` it arrived; [`frame`] turns those chunks
//! into [`StampedEvent`]s, each stamped with the arrival of the chunk that completed it. Events
//! are parsed lazily: buffered events are handed out before the next chunk is read, so the stamp
//! of the latest chunk is always the one that completed them. This holds whatever the framing;
//! a [`Deframer`] only says where one event ends:
//!
//! | framing | content type | one event | module |
//! |---|---|---|---|
//! | [`Framing::Sse`] | `text/event-stream` | the `event:` field and the `data:` lines up to a blank line | [`sse`] |
//! | [`Framing::Ndjson`] | `application/x-ndjson` | one non-blank line | [`ndjson`] |
//! | [`Framing::AwsEventStream`] | `application/vnd.amazon.eventstream` | one binary message (prelude, headers, payload, CRCs) | [`aws_eventstream`] |
//!
//! Every framer bounds what it buffers by [`MAX_EVENT_BYTES`] and reports a body that ends
//! inside an event as [`FrameError::Unterminated`]: for a probe, a body cut inside an event is a
//! dropped stream, not a clean end.

pub mod aws_eventstream;
pub mod ndjson;
pub mod sse;

use std::fmt::Display;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use crate::probe::dialect::{FramedEvent, Framing};

/// Upper bound on one unterminated line, one event's data or one binary message, so a
/// misbehaving server cannot make a probe buffer without limit.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One event, stamped with the arrival of the chunk that completed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StampedEvent {
    /// Arrival of the chunk that carried the event's last byte.
    pub at: Instant,
    /// The event's name: the SSE `event:` field, the event-stream `:event-type` (or
    /// `:exception-type`) header; empty when the framing has none.
    pub event: String,
    /// The event's payload: the SSE `data:` lines joined by `\n`, one NDJSON line, an
    /// event-stream message's payload.
    pub data: String,
}

impl StampedEvent {
    /// The dialect-facing view of the event.
    pub fn as_event(&self) -> FramedEvent<'_> {
        FramedEvent {
            event: &self.event,
            data: &self.data,
        }
    }
}

/// Why the body could not be read as a stream of events.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The underlying body stream failed (connection reset, decode error, ...).
    #[error("reading the response body failed: {0}")]
    Transport(String),
    /// The bytes are not a valid stream of this framing (invalid UTF-8, an over-long line or
    /// event, a bad checksum).
    #[error("malformed event stream: {0}")]
    Malformed(String),
    /// The body ended inside an event: mid-line, after a `data:` line without the blank line
    /// that dispatches the event, or inside a binary message.
    #[error(
        "the stream ended inside an event: the last event was cut off {} ({bytes} bytes pending)",
        if *mid_line { "mid-line" } else { "without its blank line" }
    )]
    Unterminated {
        /// Bytes of the unfinished event.
        bytes: usize,
        /// The last line (or message) itself was cut.
        mid_line: bool,
    },
}

/// An incremental parser of one framing: bytes in, complete events out.
pub trait Deframer: Send {
    /// Appends the bytes of one chunk. Called only once [`Deframer::next_event`] has returned
    /// `Ok(None)`, so an implementation may compact its buffer here.
    fn push(&mut self, bytes: &[u8]);
    /// The next complete event in the buffer, if any, as (name, payload).
    fn next_event(&mut self) -> Result<Option<(String, String)>, FrameError>;
    /// At end of input: a last event the end of input completes (an NDJSON line without its
    /// line end), or an error if the input stopped inside an event.
    fn finish(&mut self) -> Result<Option<(String, String)>, FrameError>;
}

/// Frames a stream of (arrival instant, chunk) into events of `framing`, stamped with the
/// arrival of the chunk that completed each event.
///
/// The returned stream ends after the first error or when the input ends.
pub fn frame<S, E>(
    framing: Framing,
    chunks: S,
) -> impl Stream<Item = Result<StampedEvent, FrameError>> + Send
where
    S: Stream<Item = Result<(Instant, Bytes), E>> + Send + Unpin,
    E: Display,
{
    let parser: Box<dyn Deframer> = match framing {
        Framing::Sse => Box::<sse::Parser>::default(),
        Framing::Ndjson => Box::<ndjson::Parser>::default(),
        Framing::AwsEventStream => Box::<aws_eventstream::Parser>::default(),
    };
    with_parser(parser, chunks)
}

/// [`frame`] with a given parser.
fn with_parser<S, E, P>(parser: P, chunks: S) -> Framer<S, P>
where
    S: Stream<Item = Result<(Instant, Bytes), E>> + Send + Unpin,
    E: Display,
    P: Deframer,
{
    Framer {
        inner: chunks,
        parser,
        at: None,
        done: false,
    }
}

impl<T: Deframer + ?Sized> Deframer for Box<T> {
    fn push(&mut self, bytes: &[u8]) {
        (**self).push(bytes)
    }
    fn next_event(&mut self) -> Result<Option<(String, String)>, FrameError> {
        (**self).next_event()
    }
    fn finish(&mut self) -> Result<Option<(String, String)>, FrameError> {
        (**self).finish()
    }
}

struct Framer<S, P> {
    inner: S,
    parser: P,
    /// Arrival of the latest chunk; `None` until the first one.
    at: Option<Instant>,
    done: bool,
}

impl<S, E, P> Stream for Framer<S, P>
where
    S: Stream<Item = Result<(Instant, Bytes), E>> + Unpin,
    E: Display,
    P: Deframer + Unpin,
{
    type Item = Result<StampedEvent, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(at) = this.at {
                match this.parser.next_event() {
                    Ok(Some((event, data))) => {
                        return Poll::Ready(Some(Ok(StampedEvent { at, event, data })));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok((at, bytes)))) => {
                    this.at = Some(at);
                    this.parser.push(&bytes);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(FrameError::Transport(e.to_string()))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(match this.parser.finish() {
                        Ok(None) => None,
                        Ok(Some((event, data))) => {
                            let at = this.at.unwrap_or_else(Instant::now);
                            Some(Ok(StampedEvent { at, event, data }))
                        }
                        Err(e) => Some(Err(e)),
                    });
                }
            }
        }
    }
}
