//! The probe engine: HTTP, the clock, SSE framing, dialects, trace → outcome, checks.

pub mod check;
pub mod dialect;
pub mod engine;
pub mod result;
pub mod sse;
pub mod trace;

pub use result::ProbeResult;
pub use trace::{Outcome, Trace};
