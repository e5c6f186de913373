//! PLACEHOLDER: the dialect owner replaces this file.
use std::time::Instant;

use crate::probe::dialect::SseEvent;

/// An SSE event stamped with the arrival of the chunk that completed it.
pub struct StampedEvent {
    /// Arrival of the completing chunk.
    pub at: Instant,
    /// `event:` field.
    pub event: String,
    /// Joined `data:` lines.
    pub data: String,
}

/// Framing failure.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The body failed.
    #[error("transport: {0}")]
    Transport(String),
    /// Not SSE.
    #[error("malformed: {0}")]
    Malformed(String),
}

/// Frames stamped chunks into stamped events.
pub fn frame<S, E>(_chunks: S) -> impl futures_util::Stream<Item = Result<StampedEvent, SseError>> + Send
where
    S: futures_util::Stream<Item = Result<(Instant, bytes::Bytes), E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    futures_util::stream::empty()
}

/// Borrowed view.
pub fn as_sse_event(e: &StampedEvent) -> SseEvent<'_> {
    SseEvent { event: &e.event, data: &e.data }
}
