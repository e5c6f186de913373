//! The fixed set of probe outcomes, exported as the `result` label.

use std::fmt;

/// How a probe ended. Every probe ends in exactly one of these; the set is fixed so that every
/// series can be pre-created before its first occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeResult {
    /// The stream completed and every configured check passed.
    Success,
    /// TCP connect failed, was refused, or DNS resolution failed.
    ConnectError,
    /// The TLS handshake failed (bad certificate, protocol mismatch).
    TlsError,
    /// No output-bearing event arrived within the first-token timeout.
    TimeoutFirstToken,
    /// The gap between two stream reads exceeded the idle timeout.
    TimeoutIdle,
    /// The whole request exceeded the total timeout.
    TimeoutTotal,
    /// The server answered 4xx other than 429 (bad key, unknown model, bad request).
    Http4xx,
    /// The server answered 429, or reported a rate-limit / overload error in the stream.
    RateLimited,
    /// The server answered 5xx.
    Http5xx,
    /// The server answered 200 but the stream carried an error object.
    ApiError,
    /// The connection closed before the stream's end marker, or the body exceeded its byte cap.
    StreamAborted,
    /// The stream was not valid SSE or an event was not the JSON the dialect expects.
    MalformedStream,
    /// The stream ended cleanly but carried no output at all.
    EmptyResponse,
    /// The response was complete but a scenario check (length, content, JSON, model) failed.
    CheckFailed,
}

impl ProbeResult {
    /// Every value, in the order used for pre-creating series and for documentation.
    pub const ALL: [ProbeResult; 14] = [
        ProbeResult::Success,
        ProbeResult::ConnectError,
        ProbeResult::TlsError,
        ProbeResult::TimeoutFirstToken,
        ProbeResult::TimeoutIdle,
        ProbeResult::TimeoutTotal,
        ProbeResult::Http4xx,
        ProbeResult::RateLimited,
        ProbeResult::Http5xx,
        ProbeResult::ApiError,
        ProbeResult::StreamAborted,
        ProbeResult::MalformedStream,
        ProbeResult::EmptyResponse,
        ProbeResult::CheckFailed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeResult::Success => "success",
            ProbeResult::ConnectError => "connect_error",
            ProbeResult::TlsError => "tls_error",
            ProbeResult::TimeoutFirstToken => "timeout_first_token",
            ProbeResult::TimeoutIdle => "timeout_idle",
            ProbeResult::TimeoutTotal => "timeout_total",
            ProbeResult::Http4xx => "http_4xx",
            ProbeResult::RateLimited => "rate_limited",
            ProbeResult::Http5xx => "http_5xx",
            ProbeResult::ApiError => "api_error",
            ProbeResult::StreamAborted => "stream_aborted",
            ProbeResult::MalformedStream => "malformed_stream",
            ProbeResult::EmptyResponse => "empty_response",
            ProbeResult::CheckFailed => "check_failed",
        }
    }

    /// Parses a label value back into a result.
    pub fn parse(s: &str) -> Option<ProbeResult> {
        ProbeResult::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True only for [`ProbeResult::Success`].
    pub fn is_success(self) -> bool {
        self == ProbeResult::Success
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ProbeResult::ALL {
            assert!(seen.insert(r.as_str()));
            assert_eq!(ProbeResult::parse(r.as_str()), Some(r));
        }
        assert_eq!(seen.len(), 14);
        assert_eq!(ProbeResult::parse("nope"), None);
    }
}
