//! The OTLP exporter's own health (`inferprobe_otlp_*`), on `/metrics` only: a receiver that
//! is down cannot be told over OTLP that it is down.

use std::time::{Duration, SystemTime};

use prometheus::{Gauge, IntCounter, IntCounterVec, Registry};

use super::{opts, register, unix_seconds, MetricsError};

/// How one export (one collection pushed, retries included) ended: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportResult {
    /// The receiver answered 2xx.
    Success,
    /// 429 until the exporter gave up.
    RateLimited,
    /// A 4xx other than 429 (bad data, bad credentials): not retried.
    Http4xx,
    /// A 5xx until the exporter gave up.
    Http5xx,
    /// The receiver did not answer within `otlp.timeout`.
    Timeout,
    /// No connection (refused, DNS, TLS handshake).
    ConnectError,
    /// Anything else.
    Error,
}

impl ExportResult {
    /// Every value, for pre-creating series.
    pub const ALL: [ExportResult; 7] = [
        ExportResult::Success,
        ExportResult::RateLimited,
        ExportResult::Http4xx,
        ExportResult::Http5xx,
        ExportResult::Timeout,
        ExportResult::ConnectError,
        ExportResult::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportResult::Success => "success",
            ExportResult::RateLimited => "rate_limited",
            ExportResult::Http4xx => "http_4xx",
            ExportResult::Http5xx => "http_5xx",
            ExportResult::Timeout => "timeout",
            ExportResult::ConnectError => "connect_error",
            ExportResult::Error => "error",
        }
    }

    /// The result an HTTP status stands for.
    pub fn of_status(status: u16) -> ExportResult {
        match status {
            200..=299 => ExportResult::Success,
            429 => ExportResult::RateLimited,
            400..=499 => ExportResult::Http4xx,
            500..=599 => ExportResult::Http5xx,
            _ => ExportResult::Error,
        }
    }
}

/// The exporter's health families. Registered once; they stay at their last values while no
/// `otlp:` block is configured.
#[derive(Clone, Debug)]
pub struct OtlpMetrics {
    exports: IntCounterVec,
    retries: IntCounter,
    rejected: IntCounter,
    duration: Gauge,
    last_success: Gauge,
}

impl OtlpMetrics {
    /// Registers the families in `registry`, every `result` pre-created at 0.
    pub fn register(registry: &Registry) -> Result<OtlpMetrics, MetricsError> {
        let exports = register(
            registry,
            "otlp_exports_total",
            IntCounterVec::new(
                opts(
                    "otlp_exports_total",
                    "OTLP exports (one collection pushed, retries included) by how they ended: \
                     success, rate_limited, http_4xx, http_5xx, timeout, connect_error or error.",
                ),
                &["result"],
            ),
        )?;
        for r in ExportResult::ALL {
            exports.with_label_values(&[r.as_str()]);
        }
        Ok(OtlpMetrics {
            exports,
            retries: register(
                registry,
                "otlp_export_retries_total",
                IntCounter::with_opts(opts(
                    "otlp_export_retries_total",
                    "Requests sent again after a retryable failure (429, 502, 503, 504, no \
                     connection), with exponential backoff.",
                )),
            )?,
            rejected: register(
                registry,
                "otlp_rejected_data_points_total",
                IntCounter::with_opts(opts(
                    "otlp_rejected_data_points_total",
                    "Data points the receiver accepted the export of but rejected (OTLP partial \
                     success).",
                )),
            )?,
            duration: register(
                registry,
                "otlp_last_export_duration_seconds",
                Gauge::with_opts(opts(
                    "otlp_last_export_duration_seconds",
                    "Wall time of the last OTLP export, retries included, in seconds.",
                )),
            )?,
            last_success: register(
                registry,
                "otlp_last_success_timestamp_seconds",
                Gauge::with_opts(opts(
                    "otlp_last_success_timestamp_seconds",
                    "Wall-clock time of the last successful OTLP export, in seconds since the \
                     Unix epoch; 0 before the first.",
                )),
            )?,
        })
    }

    /// Records one export.
    pub fn export_done(&self, result: ExportResult, retries: u32, took: Duration, at: SystemTime) {
        self.exports.with_label_values(&[result.as_str()]).inc();
        self.retries.inc_by(u64::from(retries));
        self.duration.set(took.as_secs_f64());
        if result == ExportResult::Success {
            self.last_success.set(unix_seconds(at));
        }
    }

    /// Records data points rejected by a partial-success answer.
    pub fn rejected(&self, points: u64) {
        self.rejected.inc_by(points);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_results() {
        assert_eq!(ExportResult::of_status(200), ExportResult::Success);
        assert_eq!(ExportResult::of_status(429), ExportResult::RateLimited);
        assert_eq!(ExportResult::of_status(401), ExportResult::Http4xx);
        assert_eq!(ExportResult::of_status(503), ExportResult::Http5xx);
        assert_eq!(ExportResult::of_status(302), ExportResult::Error);
    }

    #[test]
    fn every_result_is_precreated() {
        let r = Registry::new();
        let m = OtlpMetrics::register(&r).unwrap();
        m.export_done(
            ExportResult::Http5xx,
            3,
            Duration::from_millis(1500),
            SystemTime::now(),
        );
        let text = crate::metrics::encode(&r);
        for res in ExportResult::ALL {
            assert!(text.contains(&format!(
                "inferprobe_otlp_exports_total{{result=\"{}\"}}",
                res.as_str()
            )));
        }
        assert!(text.contains("inferprobe_otlp_exports_total{result=\"http_5xx\"} 1"));
        assert!(text.contains("inferprobe_otlp_export_retries_total 3"));
        assert!(text.contains("inferprobe_otlp_last_export_duration_seconds 1.5"));
        assert!(text.contains("inferprobe_otlp_last_success_timestamp_seconds 0"));
    }
}
