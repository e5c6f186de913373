//! The probe engine: HTTP, the clock, framing, dialects, trace → outcome, checks.

pub mod aws;
pub mod check;
pub mod dialect;
pub mod engine;
pub mod framing;
pub mod ratelimit;
pub mod result;
pub mod show;
pub mod trace;

pub use result::ProbeResult;
pub use trace::{Outcome, Trace};

/// Cuts text to at most `n` characters, marking the cut with `…`; for error messages and output
/// that must stay short whatever a server sends.
pub fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(super::clip("héllo wörld", 5), "héllo…");
        assert_eq!(super::clip("short", 5), "short");
        assert_eq!(super::clip("", 0), "");
    }
}
