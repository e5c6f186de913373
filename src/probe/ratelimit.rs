//! Rate-limit response headers: how long a server asks us to wait, and how much quota is left.
//!
//! Pure parsing, no I/O: [`RateLimitInfo::from_headers`] reads a response's headers once, when they
//! arrive, so a 429 status and a rate-limit error inside a 200 stream are read the same way.
//!
//! Formats, as the providers document and their SDKs read them:
//! - `retry-after`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Like the OpenAI and Anthropic
//!   Python SDKs, a fractional number of seconds is accepted too.
//! - `retry-after-ms`: milliseconds, possibly fractional; the OpenAI and Anthropic Python SDKs
//!   (`_parse_retry_after_header` in their `_base_client.py`) prefer it over `retry-after`.
//! - OpenAI (and Groq, which copies it) `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`:
//!   counts, and resets as Go-style durations (`1s`, `6m0s`, `12ms`, `2m59.56s`) that say when the
//!   window is back to its full size (OpenAI "Rate limits" guide). Azure OpenAI sends plain seconds
//!   (`0`) and `-1` for "unknown".
//! - Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
//!   reset}`: counts (tokens rounded to the nearest thousand) and resets as RFC 3339 timestamps
//!   (Anthropic "Rate limits" page).
//!
//! Every value is bounded: garbage is ignored, a negative number is ignored, and a delay beyond
//! [`MAX_PARSED_DELAY`] is clamped to it, so nothing a server sends can overflow or panic. The
//! configured `global.max_retry_after` caps what the scheduler actually honours.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// Longest delay any header is read as; longer values are clamped to it.
pub const MAX_PARSED_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// Header values longer than this are ignored (the longest valid one, an HTTP-date, has 29).
const MAX_VALUE_LEN: usize = 64;

/// A quota a provider reports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Requests per window.
    Requests,
    /// Tokens per window (Anthropic: the most restrictive token limit in effect).
    Tokens,
    /// Input tokens per window (Anthropic).
    InputTokens,
    /// Output tokens per window (Anthropic).
    OutputTokens,
}

impl Resource {
    /// Every resource, in label order.
    pub const ALL: [Resource; 4] = [
        Resource::Requests,
        Resource::Tokens,
        Resource::InputTokens,
        Resource::OutputTokens,
    ];

    /// The `resource` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Requests => "requests",
            Resource::Tokens => "tokens",
            Resource::InputTokens => "input_tokens",
            Resource::OutputTokens => "output_tokens",
        }
    }

    /// The infix in header names (`x-ratelimit-remaining-<it>`, `anthropic-ratelimit-<it>-...`).
    fn header_part(self) -> &'static str {
        match self {
            Resource::Requests => "requests",
            Resource::Tokens => "tokens",
            Resource::InputTokens => "input-tokens",
            Resource::OutputTokens => "output-tokens",
        }
    }
}

/// What a response said about one quota; `None` where it said nothing usable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Size of the window.
    pub limit: Option<u64>,
    /// What is left of it.
    pub remaining: Option<u64>,
    /// Time from the response until the quota is full again.
    pub reset: Option<Duration>,
}

impl Quota {
    fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// Rate-limit information from one response's headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// How long the server asked us to wait: `retry-after-ms`, else `retry-after`.
    pub retry_after: Option<Duration>,
    /// Request quota.
    pub requests: Quota,
    /// Token quota.
    pub tokens: Quota,
    /// Input-token quota (Anthropic).
    pub input_tokens: Quota,
    /// Output-token quota (Anthropic).
    pub output_tokens: Quota,
}

impl RateLimitInfo {
    /// Reads every rate-limit header of a response received at wall-clock time `now` (which turns
    /// absolute times into delays).
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> RateLimitInfo {
        let get = |name: &str| -> Option<&str> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= MAX_VALUE_LEN)
        };
        let retry_after = get("retry-after-ms")
            .and_then(parse_retry_after_ms)
            .or_else(|| get("retry-after").and_then(|v| parse_retry_after(v, now)));
        let mut info = RateLimitInfo {
            retry_after,
            ..RateLimitInfo::default()
        };
        for r in Resource::ALL {
            let part = r.header_part();
            let anthropic = |what: &str| get(&format!("anthropic-ratelimit-{part}-{what}"));
            let openai = |what: &str| get(&format!("x-ratelimit-{what}-{part}"));
            let q = Quota {
                limit: anthropic("limit")
                    .or_else(|| openai("limit"))
                    .and_then(parse_count),
                remaining: anthropic("remaining")
                    .or_else(|| openai("remaining"))
                    .and_then(parse_count),
                reset: anthropic("reset")
                    .and_then(|v| parse_rfc3339_delay(v, now))
                    .or_else(|| openai("reset").and_then(parse_go_duration)),
            };
            *info.quota_mut(r) = q;
        }
        info
    }

    /// The quota of one resource.
    pub fn quota(&self, r: Resource) -> &Quota {
        match r {
            Resource::Requests => &self.requests,
            Resource::Tokens => &self.tokens,
            Resource::InputTokens => &self.input_tokens,
            Resource::OutputTokens => &self.output_tokens,
        }
    }

    fn quota_mut(&mut self, r: Resource) -> &mut Quota {
        match r {
            Resource::Requests => &mut self.requests,
            Resource::Tokens => &mut self.tokens,
            Resource::InputTokens => &mut self.input_tokens,
            Resource::OutputTokens => &mut self.output_tokens,
        }
    }

    /// True when no header said anything.
    pub fn is_empty(&self) -> bool {
        self.retry_after.is_none() && Resource::ALL.iter().all(|r| self.quota(*r).is_empty())
    }

    /// How long to leave the target alone after a rate limit: the server's `retry-after`, else the
    /// latest reset among the quotas that are used up (`remaining: 0`). A reset of a quota that is
    /// not used up says when the window is full again, not when a request may pass, so it is not
    /// a reason to wait. `None` when the headers give no wait.
    pub fn hold_hint(&self) -> Option<Duration> {
        if self.retry_after.is_some() {
            return self.retry_after;
        }
        Resource::ALL
            .iter()
            .map(|r| self.quota(*r))
            .filter(|q| q.remaining == Some(0))
            .filter_map(|q| q.reset)
            .max()
    }
}

/// Clamps a number of seconds into a `Duration`: negative, NaN and infinite values are `None`,
/// values beyond [`MAX_PARSED_DELAY`] are clamped to it.
fn seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs >= MAX_PARSED_DELAY.as_secs_f64() {
        return Some(MAX_PARSED_DELAY);
    }
    Some(Duration::from_secs_f64(secs))
}

/// A plain non-negative decimal number (no sign, exponent, `inf` or `nan`, which `f64::from_str`
/// would accept).
fn parse_plain_number(v: &str) -> Option<f64> {
    let mut dot = false;
    let mut digits = false;
    for c in v.chars() {
        match c {
            '0'..='9' => digits = true,
            '.' if !dot => dot = true,
            _ => return None,
        }
    }
    if !digits {
        return None;
    }
    v.parse::<f64>().ok()
}

/// `retry-after-ms`: milliseconds, possibly fractional.
pub fn parse_retry_after_ms(v: &str) -> Option<Duration> {
    parse_plain_number(v.trim()).and_then(|ms| seconds(ms / 1000.0))
}

/// `retry-after`: delay-seconds (fractions accepted) or an HTTP-date, relative to `now`. A date in
/// the past means "now" (zero).
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Some(n) = parse_plain_number(v) {
        return seconds(n);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(until(at, now))
}

/// Time from `now` until `at`, zero when `at` has passed, clamped to [`MAX_PARSED_DELAY`].
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(MAX_PARSED_DELAY)
}

/// An RFC 3339 timestamp (Anthropic's `...-reset`), as the delay from `now`.
pub fn parse_rfc3339_delay(v: &str, now: SystemTime) -> Option<Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(v.trim()).ok()?;
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    let delta = t.signed_duration_since(now);
    // Negative (already passed) is zero; a huge one saturates in to_std's range check.
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_PARSED_DELAY),
    )
}

/// A Go `time.Duration` string as OpenAI sends it (`1s`, `6m0s`, `12ms`, `1h2m3.5s`, `500µs`), or
/// a plain number of seconds (Azure OpenAI's `0`).
pub fn parse_go_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Some(n) = parse_plain_number(v) {
        return seconds(n);
    }
    let mut total = 0.0_f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n = parse_plain_number(&rest[..num_len])?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        // Clamped at each step so that no sum of terms becomes infinite.
        total = (total + n * scale).min(MAX_PARSED_DELAY.as_secs_f64());
    }
    seconds(total)
}

/// A count (`x-ratelimit-remaining-tokens: 149984`); negative (Azure's `-1` = unknown), fractional
/// or garbage values are `None`.
pub fn parse_count(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only overflow can fail, and a count that large is clamped.
    Some(v.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn now() -> SystemTime {
        // 2025-08-21T12:40:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retry_after_seconds_and_fractions() {
        assert_eq!(parse_retry_after("120", now()), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now()), Some(ms(1500)));
        assert_eq!(parse_retry_after("-1", now()), None);
        assert_eq!(parse_retry_after("+5", now()), None);
        assert_eq!(parse_retry_after("1e3", now()), None);
        assert_eq!(parse_retry_after("inf", now()), None);
        assert_eq!(parse_retry_after("NaN", now()), None);
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
        assert_eq!(parse_retry_after(".", now()), None);
        assert_eq!(parse_retry_after("1.2.3", now()), None);
    }

    #[test]
    fn retry_after_http_dates_in_all_three_formats() {
        // 20 s after now() in IMF-fixdate, RFC 850 and asctime (RFC 9110 §5.6.7).
        for v in [
            "Thu, 21 Aug 2025 12:40:20 GMT",
            "Thursday, 21-Aug-25 12:40:20 GMT",
            "Thu Aug 21 12:40:20 2025",
        ] {
            assert_eq!(parse_retry_after(v, now()), Some(secs(20)), "{v}");
        }
        // A date in the past means retry now.
        assert_eq!(
            parse_retry_after("Thu, 21 Aug 2025 12:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        // A date in 9999 is clamped, not overflowed.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(MAX_PARSED_DELAY)
        );
        assert_eq!(
            parse_retry_after("Thu, 32 Aug 2025 12:40:20 GMT", now()),
            None
        );
    }

    #[test]
    fn retry_after_ms() {
        assert_eq!(parse_retry_after_ms("250"), Some(ms(250)));
        assert_eq!(
            parse_retry_after_ms("1500.5"),
            Some(Duration::from_micros(1_500_500))
        );
        assert_eq!(parse_retry_after_ms("-3"), None);
        assert_eq!(parse_retry_after_ms("Thu, 21 Aug 2025 12:40:20 GMT"), None);
    }

    #[test]
    fn absurd_numbers_are_clamped_not_overflowed() {
        let huge = "9".repeat(60);
        assert_eq!(parse_retry_after(&huge, now()), Some(MAX_PARSED_DELAY));
        assert_eq!(parse_retry_after_ms(&huge), Some(MAX_PARSED_DELAY));
        assert_eq!(
            parse_go_duration(&format!("{huge}h")),
            Some(MAX_PARSED_DELAY)
        );
        assert_eq!(parse_count(&huge), Some(u64::MAX));
        // Values longer than any valid header are ignored as a whole.
        let h = headers(&[("retry-after", &"9".repeat(100))]);
        assert_eq!(RateLimitInfo::from_headers(&h, now()).retry_after, None);
    }

    #[test]
    fn go_durations_as_openai_sends_them() {
        assert_eq!(parse_go_duration("1s"), Some(secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(secs(360)));
        assert_eq!(parse_go_duration("12ms"), Some(ms(12)));
        assert_eq!(parse_go_duration("2m59.56s"), Some(ms(179_560)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(secs(3723)));
        assert_eq!(parse_go_duration("500µs"), Some(Duration::from_micros(500)));
        assert_eq!(parse_go_duration("500us"), Some(Duration::from_micros(500)));
        assert_eq!(parse_go_duration("7ns"), Some(Duration::from_nanos(7)));
        // Azure OpenAI: plain seconds.
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("20"), Some(secs(20)));
        for bad in ["", "s", "1x", "1.5.2s", "-1s", "1s-", "m5", "1 s", "1d"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_resets() {
        assert_eq!(
            parse_rfc3339_delay("2025-08-21T12:40:59Z", now()),
            Some(secs(59))
        );
        assert_eq!(
            parse_rfc3339_delay("2025-08-21T14:41:00.5+02:00", now()),
            Some(ms(60_500))
        );
        assert_eq!(
            parse_rfc3339_delay("2025-08-21T12:00:00Z", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_rfc3339_delay("9999-12-31T23:59:59Z", now()),
            Some(MAX_PARSED_DELAY)
        );
        for bad in ["2025-08-21", "12:40:59", "2025-13-01T00:00:00Z", "tomorrow"] {
            assert_eq!(parse_rfc3339_delay(bad, now()), None, "{bad:?}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("149984"), Some(149_984));
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("1.5"), None);
        assert_eq!(parse_count("lots"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn openai_headers() {
        // The sample values of OpenAI's "Rate limits in headers" table.
        let h = headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "149984"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let info = RateLimitInfo::from_headers(&h, now());
        assert_eq!(
            info.requests,
            Quota {
                limit: Some(60),
                remaining: Some(59),
                reset: Some(secs(1)),
            }
        );
        assert_eq!(
            info.tokens,
            Quota {
                limit: Some(150_000),
                remaining: Some(149_984),
                reset: Some(secs(360)),
            }
        );
        assert_eq!(info.input_tokens, Quota::default());
        assert_eq!(info.retry_after, None);
        assert_eq!(info.hold_hint(), None, "nothing is used up");
        assert!(!info.is_empty());
    }

    #[test]
    fn anthropic_headers() {
        let h = headers(&[
            ("retry-after", "17"),
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            ("anthropic-ratelimit-tokens-limit", "96000"),
            ("anthropic-ratelimit-tokens-remaining", "96000"),
            ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:59Z"),
            ("anthropic-ratelimit-input-tokens-limit", "80000"),
            ("anthropic-ratelimit-input-tokens-remaining", "80000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2025-08-21T12:40:59Z",
            ),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "15000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2025-08-21T12:41:00Z",
            ),
        ]);
        let info = RateLimitInfo::from_headers(&h, now());
        assert_eq!(info.retry_after, Some(secs(17)));
        assert_eq!(info.requests.remaining, Some(0));
        assert_eq!(info.requests.reset, Some(secs(59)));
        assert_eq!(info.tokens.limit, Some(96_000));
        assert_eq!(info.input_tokens.remaining, Some(80_000));
        assert_eq!(
            info.output_tokens,
            Quota {
                limit: Some(16_000),
                remaining: Some(15_000),
                reset: Some(secs(60)),
            }
        );
        assert_eq!(info.hold_hint(), Some(secs(17)), "retry-after wins");
    }

    #[test]
    fn retry_after_ms_is_preferred_and_garbage_falls_through() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "2")]);
        assert_eq!(
            RateLimitInfo::from_headers(&h, now()).retry_after,
            Some(ms(1500))
        );
        let h = headers(&[("retry-after-ms", "soon"), ("retry-after", "2")]);
        assert_eq!(
            RateLimitInfo::from_headers(&h, now()).retry_after,
            Some(secs(2))
        );
        // Header names are case-insensitive on the wire.
        let h = headers(&[("Retry-After", "Thu, 21 Aug 2025 12:41:00 GMT")]);
        assert_eq!(
            RateLimitInfo::from_headers(&h, now()).retry_after,
            Some(secs(60))
        );
        // A value that is not visible ASCII is ignored.
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(RateLimitInfo::from_headers(&h, now()).retry_after, None);
    }

    #[test]
    fn hold_hint_without_retry_after_uses_the_exhausted_quota() {
        // OpenAI 429 without retry-after: requests used up, tokens not.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "20s"),
            ("x-ratelimit-remaining-tokens", "5000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            RateLimitInfo::from_headers(&h, now()).hold_hint(),
            Some(secs(20))
        );
        // Both used up: the later reset.
        let h = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:10Z"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:45Z"),
        ]);
        assert_eq!(
            RateLimitInfo::from_headers(&h, now()).hold_hint(),
            Some(secs(45))
        );
        // Used up but no reset given: no hint.
        let h = headers(&[("x-ratelimit-remaining-requests", "0")]);
        assert_eq!(RateLimitInfo::from_headers(&h, now()).hold_hint(), None);
    }

    #[test]
    fn no_headers_no_info() {
        let info = RateLimitInfo::from_headers(&HeaderMap::new(), now());
        assert!(info.is_empty());
        assert_eq!(info.hold_hint(), None);
        let h = headers(&[("x-ratelimit-remaining-tokens", "-1")]);
        assert!(RateLimitInfo::from_headers(&h, now()).is_empty());
    }

    #[test]
    fn resource_labels() {
        let l: Vec<&str> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(l, ["requests", "tokens", "input_tokens", "output_tokens"]);
    }
}
