//! The simulator's wire formats for the APIs added after the first three, one file each: the
//! SSE frames of a streamed answer (open, a token, close with usage, an in-stream error, a
//! malformed event), the error body and the whole (non-streamed) answer. `super::wire` calls
//! them from its per-API `match` arms and keeps the pacing and fault logic shared.

pub mod gemini;
pub mod openai_responses;
