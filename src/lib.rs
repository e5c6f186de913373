//! inferprobe: a streaming canary prober for LLM endpoints.
//!
//! `main` parses flags and maps errors to exit codes; everything else lives here so tests drive
//! the real code in-process.

pub mod calibrate;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod cost;
pub mod fsutil;
pub mod gate;
pub mod journey;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod probe;
pub mod redact;
pub mod runtime;
pub mod schedule;
pub mod shard;
pub mod sim;
pub mod thresholds;
pub mod web;
pub mod webconfig;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("INFERPROBE_GIT_REVISION");
