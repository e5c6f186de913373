//! PLACEHOLDER: the dialect owner replaces this file.

use super::{DecodeError, ProbeRequest, Signal, SseEvent, StreamDecoder};

/// Headers every Anthropic request carries.
pub const FIXED_HEADERS: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];
/// Builds the streaming request body.
pub fn build_body(_req: &ProbeRequest<'_>) -> serde_json::Value {
    serde_json::Value::Null
}

/// Per-probe decoding state.
#[derive(Default)]
pub struct Decoder;

impl StreamDecoder for Decoder {
    fn decode(&mut self, _event: &SseEvent<'_>, _out: &mut Vec<Signal>) -> Result<(), DecodeError> {
        Ok(())
    }
}
