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
    /// The server answered 429, or reported a rate-limit error in the stream (see
    /// [`CONDITIONS`]).
    RateLimited,
    /// The server answered 5xx (529 and 503 "overloaded" included).
    Http5xx,
    /// The server answered 200 but the stream carried an error object other than a rate limit
    /// (an overload included).
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

/// What an error means, whatever transport carried it: the rows of [`CONDITIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCondition {
    /// The client is sending too much: a rate limit or an exhausted quota.
    RateLimited,
    /// The server is out of capacity (Anthropic `overloaded_error`, HTTP 529, 503). A server
    /// failure, not the client's rate limit.
    Overloaded,
    /// Any other server failure (HTTP 5xx).
    ServerError,
    /// The request was refused (HTTP 4xx other than 429, and any other non-2xx status).
    ClientError,
    /// Any other error object inside a 200 stream.
    Other,
}

/// How an error reached the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The response status line (a non-2xx status).
    HttpStatus,
    /// An error event or error object inside a 200 event stream.
    InStream,
}

/// One row of the error table: a condition, how it shows in each transport, and the `result` it
/// gets there.
#[derive(Clone, Copy, Debug)]
pub struct ConditionRow {
    /// The condition.
    pub condition: ErrorCondition,
    /// Its name in the table of docs/measurement.md.
    pub name: &'static str,
    /// The statuses that mean it (documentation).
    pub status: &'static str,
    /// Its `result` when it comes as an HTTP status.
    pub as_status: ProbeResult,
    /// The error `type`/`code` values that mean it inside a stream (documentation).
    pub in_stream: &'static str,
    /// Its `result` when it comes inside a 200 stream.
    pub as_stream_error: ProbeResult,
}

/// The one mapping from error conditions to results, used by the engine for statuses and by
/// every dialect decoder for in-stream errors; the "Results" section of docs/measurement.md shows the same
/// table. One condition gets one result whatever the transport, except that a server failure
/// inside a 200 stream is `api_error` (the status already said "200").
pub const CONDITIONS: [ConditionRow; 5] = [
    ConditionRow {
        condition: ErrorCondition::RateLimited,
        name: "rate limit",
        status: "429",
        as_status: ProbeResult::RateLimited,
        in_stream: "type or code containing `rate_limit`, `rate limit`, `ratelimit`, \
                    `too_many_requests`, `resource_exhausted`, `quota` or `throttl` (OpenAI \
                    `rate_limit_exceeded`, Anthropic `rate_limit_error`, Bedrock \
                    `throttlingException`, Ollama's `rate limit exceeded` text), or code 429",
        as_stream_error: ProbeResult::RateLimited,
    },
    ConditionRow {
        condition: ErrorCondition::Overloaded,
        name: "overload",
        status: "529, 503",
        as_status: ProbeResult::Http5xx,
        in_stream: "type or code containing `overload` or `unavailable` (Anthropic \
                    `overloaded_error`, `service_unavailable`), or code 529 or 503",
        as_stream_error: ProbeResult::ApiError,
    },
    ConditionRow {
        condition: ErrorCondition::ServerError,
        name: "server error",
        status: "any other 5xx",
        as_status: ProbeResult::Http5xx,
        in_stream: "-",
        as_stream_error: ProbeResult::ApiError,
    },
    ConditionRow {
        condition: ErrorCondition::ClientError,
        name: "client error",
        status: "4xx other than 429, any other non-2xx",
        as_status: ProbeResult::Http4xx,
        in_stream: "-",
        as_stream_error: ProbeResult::ApiError,
    },
    ConditionRow {
        condition: ErrorCondition::Other,
        name: "other",
        status: "-",
        as_status: ProbeResult::Http5xx,
        in_stream: "any other error object or error event",
        as_stream_error: ProbeResult::ApiError,
    },
];

impl ErrorCondition {
    /// The condition a non-2xx status means.
    pub fn of_status(status: u16) -> ErrorCondition {
        match status {
            429 => ErrorCondition::RateLimited,
            503 | 529 => ErrorCondition::Overloaded,
            500..=599 => ErrorCondition::ServerError,
            _ => ErrorCondition::ClientError,
        }
    }

    /// The condition an in-stream error means, from its `type`, `code` (or `error_type`)
    /// values; the free-text message is never read. A rate-limit word wins over an overload one.
    pub fn of_error_words<'a>(words: impl IntoIterator<Item = &'a str>) -> ErrorCondition {
        let mut found = ErrorCondition::Other;
        for w in words {
            let w = w.trim().to_ascii_lowercase();
            if w == "429"
                || [
                    "rate_limit",
                    "rate limit",
                    "ratelimit",
                    "too_many_requests",
                    "too many requests",
                    "resource_exhausted",
                    "quota",
                    "throttl",
                ]
                .iter()
                .any(|k| w.contains(k))
            {
                return ErrorCondition::RateLimited;
            }
            if w == "503" || w == "529" || w.contains("overload") || w.contains("unavailable") {
                found = ErrorCondition::Overloaded;
            }
        }
        found
    }

    /// The `result` of this condition when it arrives by `transport`: a lookup in
    /// [`CONDITIONS`].
    pub fn result(self, transport: Transport) -> ProbeResult {
        let row = CONDITIONS
            .iter()
            .find(|r| r.condition == self)
            .unwrap_or(&CONDITIONS[CONDITIONS.len() - 1]);
        match transport {
            Transport::HttpStatus => row.as_status,
            Transport::InStream => row.as_stream_error,
        }
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

    #[test]
    fn every_condition_has_exactly_one_row() {
        for c in [
            ErrorCondition::RateLimited,
            ErrorCondition::Overloaded,
            ErrorCondition::ServerError,
            ErrorCondition::ClientError,
            ErrorCondition::Other,
        ] {
            assert_eq!(CONDITIONS.iter().filter(|r| r.condition == c).count(), 1);
        }
    }

    /// The table in docs/measurement.md ("One condition, one result") says what this one does.
    #[test]
    fn readme_shows_the_same_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/measurement.md");
        let readme = std::fs::read_to_string(path).unwrap_or_default();
        let section = readme
            .split("### One condition, one result, whatever the transport")
            .nth(1)
            .unwrap_or_default();
        let dash = |s: &str| {
            if s == "-" {
                "–".to_string()
            } else {
                s.to_string()
            }
        };
        for row in CONDITIONS {
            let line = section
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", row.name)))
                .unwrap_or_else(|| panic!("docs/measurement.md has no row for {:?}", row.name));
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "{line}");
            assert_eq!(cells[1], dash(row.status), "{line}");
            if row.status != "-" {
                assert_eq!(cells[2], format!("`{}`", row.as_status), "{line}");
            }
            assert_eq!(cells[4], format!("`{}`", row.as_stream_error), "{line}");
        }
    }

    #[test]
    fn statuses_follow_the_table() {
        use ProbeResult::*;
        let cases = [
            (429, RateLimited),
            (529, Http5xx),
            (503, Http5xx),
            (500, Http5xx),
            (502, Http5xx),
            (400, Http4xx),
            (401, Http4xx),
            (404, Http4xx),
            (302, Http4xx),
        ];
        for (status, want) in cases {
            assert_eq!(
                ErrorCondition::of_status(status).result(Transport::HttpStatus),
                want,
                "{status}"
            );
        }
        assert_eq!(ErrorCondition::of_status(529), ErrorCondition::Overloaded);
        assert_eq!(ErrorCondition::of_status(503), ErrorCondition::Overloaded);
    }

    #[test]
    fn in_stream_words_follow_the_table() {
        use ErrorCondition::*;
        let cases: [(&[&str], ErrorCondition); 17] = [
            (&["throttlingException"], RateLimited),
            (&["ThrottlingException"], RateLimited),
            (&["rate limit exceeded"], RateLimited),
            (&["serviceUnavailableException"], Overloaded),
            (&["requests", "rate_limit_exceeded"], RateLimited),
            (&["rate_limit_error"], RateLimited),
            (&["429"], RateLimited),
            (&["RESOURCE_EXHAUSTED"], RateLimited),
            (&["insufficient_quota"], RateLimited),
            (&["overloaded_error"], Overloaded),
            (&["server_error", "service_unavailable"], Overloaded),
            (&["529"], Overloaded),
            (&["UNAVAILABLE", "503"], Overloaded),
            (&["overloaded", "429"], RateLimited),
            (&["api_error"], Other),
            (&["BadRequestError", "400"], Other),
            (&[], Other),
        ];
        for (words, want) in cases {
            let got = ErrorCondition::of_error_words(words.iter().copied());
            assert_eq!(got, want, "{words:?}");
        }
        assert_eq!(
            RateLimited.result(Transport::InStream),
            ProbeResult::RateLimited
        );
        assert_eq!(
            Overloaded.result(Transport::InStream),
            ProbeResult::ApiError
        );
        assert_eq!(Other.result(Transport::InStream), ProbeResult::ApiError);
        assert_eq!(
            ServerError.result(Transport::InStream),
            ProbeResult::ApiError
        );
    }
}
