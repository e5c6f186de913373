//! The OTLP exporter's HTTP side: our own reqwest client behind the OpenTelemetry exporter
//! (no redirects, a capped response body, error bodies never kept), and the accounting of
//! every export in `inferprobe_otlp_*`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use prost::Message;
use tracing::{info, warn};

use crate::metrics::otlp::{ExportResult, OtlpMetrics};

/// Largest response body read from the receiver (a partial-success message is a few hundred
/// bytes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// While exports keep failing, the failure is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(300);

/// What the last HTTP attempt of an export came to, for the export's `result`.
#[derive(Debug, Default)]
struct LastAttempt {
    result: Option<ExportResult>,
    attempts: u32,
}

/// How the exports have gone so far, for the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStatus {
    /// How the last export ended, once one did.
    pub last_result: Option<ExportResult>,
    /// When the last export ended.
    pub last_export: Option<SystemTime>,
    /// When the last successful export ended.
    pub last_success: Option<SystemTime>,
}

/// Shared between the HTTP client (one call per attempt) and the exporter wrapper (one call per
/// export).
#[derive(Debug)]
pub(crate) struct Accounting {
    metrics: OtlpMetrics,
    endpoint: String,
    last: Mutex<LastAttempt>,
    state: Mutex<State>,
}

/// How the exports have gone, and the rate limiting of their failure logs.
#[derive(Debug, Default)]
struct State {
    status: ExportStatus,
    /// When the current run of failures was last logged.
    last_logged: Option<Instant>,
    /// Failures since then that were not logged.
    suppressed: u64,
}

impl Accounting {
    pub(crate) fn new(metrics: OtlpMetrics, endpoint: String) -> Arc<Accounting> {
        Arc::new(Accounting {
            metrics,
            endpoint,
            last: Mutex::new(LastAttempt::default()),
            state: Mutex::new(State::default()),
        })
    }

    /// How the exports have gone so far.
    pub(crate) fn status(&self) -> ExportStatus {
        match self.state.lock() {
            Ok(s) => s.status.clone(),
            Err(poisoned) => poisoned.into_inner().status.clone(),
        }
    }

    fn attempt(&self, result: ExportResult) {
        if let Ok(mut l) = self.last.lock() {
            l.attempts += 1;
            l.result = Some(result);
        }
    }

    fn begin(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = LastAttempt::default();
        }
    }

    fn end(&self, ok: bool, took: Duration) {
        let (result, attempts) = match self.last.lock() {
            Ok(mut l) => (l.result.take(), std::mem::take(&mut l.attempts)),
            Err(_) => (None, 0),
        };
        let result = match (ok, result) {
            (true, _) => ExportResult::Success,
            // The exporter gave up before any attempt finished (its deadline passed).
            (false, None) => ExportResult::Timeout,
            (false, Some(ExportResult::Success)) => ExportResult::Error,
            (false, Some(r)) => r,
        };
        let now = SystemTime::now();
        self.metrics
            .export_done(result, attempts.saturating_sub(1), took, now);
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let was_failing = state
            .status
            .last_result
            .is_some_and(|r| r != ExportResult::Success);
        state.status.last_result = Some(result);
        state.status.last_export = Some(now);
        if result == ExportResult::Success {
            state.status.last_success = Some(now);
            if was_failing {
                info!(endpoint = %self.endpoint, "OTLP export recovered.");
            }
            state.last_logged = None;
            state.suppressed = 0;
        } else if state.last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            warn!(
                endpoint = %self.endpoint,
                result = result.as_str(),
                suppressed = state.suppressed,
                "OTLP export failed; probing and /metrics are not affected, the data is sent again with the next export."
            );
            state.last_logged = Some(Instant::now());
            state.suppressed = 0;
        } else {
            state.suppressed += 1;
        }
    }
}

/// The HTTP client handed to the OTLP exporter. The exporter calls it from its own thread;
/// each request runs on the daemon's Tokio runtime.
#[derive(Debug)]
pub(crate) struct ReqwestOnRuntime {
    pub(crate) client: reqwest::Client,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) accounting: Arc<Accounting>,
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let accounting = self.accounting.clone();
        let task = self.runtime.spawn(async move {
            let (result, response) = send(&client, request).await;
            if let Some(rejected) = response
                .as_ref()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| rejected_points(r.body()))
            {
                accounting.metrics.rejected(rejected);
            }
            accounting.attempt(result);
            response
        });
        match task.await {
            Ok(r) => r,
            Err(_) => Err("the export request was cancelled (shutting down)".into()),
        }
    }
}

/// Sends one request; the response keeps its status and `Retry-After`, and its body only on
/// success (an error body may echo what was sent, headers included, and is never kept).
async fn send(
    client: &reqwest::Client,
    request: http::Request<Bytes>,
) -> (ExportResult, Result<http::Response<Bytes>, HttpError>) {
    let request = match reqwest::Request::try_from(request) {
        Ok(r) => r,
        Err(_) => return (ExportResult::Error, Err("invalid export request".into())),
    };
    let mut response = match client.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            let result = if e.is_timeout() {
                ExportResult::Timeout
            } else if e.is_connect() {
                ExportResult::ConnectError
            } else {
                ExportResult::Error
            };
            // Without the URL: it is in the config, and the error may be logged by whoever
            // reads it.
            return (result, Err(Box::new(e.without_url())));
        }
    };
    let status = response.status();
    let mut builder = http::Response::builder().status(status.as_u16());
    if let Some(v) = response.headers().get(reqwest::header::RETRY_AFTER) {
        builder = builder.header(http::header::RETRY_AFTER, v.as_bytes());
    }
    let result = ExportResult::of_status(status.as_u16());
    let mut body = Vec::new();
    if status.is_success() {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        // The data was accepted; an oversized answer only loses its details.
                        body.clear();
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let r = if e.is_timeout() {
                        ExportResult::Timeout
                    } else {
                        ExportResult::Error
                    };
                    return (r, Err(Box::new(e.without_url())));
                }
            }
        }
    }
    match builder.body(Bytes::from(body)) {
        Ok(r) => (result, Ok(r)),
        Err(_) => (ExportResult::Error, Err("unreadable response".into())),
    }
}

/// Data points the receiver said it rejected in a partial-success answer.
fn rejected_points(body: &[u8]) -> Option<u64> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
    let r = ExportMetricsServiceResponse::decode(body).ok()?;
    let n = r.partial_success?.rejected_data_points;
    u64::try_from(n).ok().filter(|n| *n > 0)
}

/// Wraps the OTLP exporter to count each export (retries included) by how it ended.
#[derive(Debug)]
pub(crate) struct CountingExporter {
    pub(crate) inner: opentelemetry_otlp::MetricExporter,
    pub(crate) accounting: Arc<Accounting>,
}

impl PushMetricExporter for CountingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.accounting.begin();
        let started = Instant::now();
        let result = self.inner.export(metrics).await;
        self.accounting.end(result.is_ok(), started.elapsed());
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };

    #[test]
    fn partial_success_counts_rejected_points() {
        let body = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 7,
                error_message: "dropped".to_string(),
            }),
        }
        .encode_to_vec();
        assert_eq!(rejected_points(&body), Some(7));
        assert_eq!(rejected_points(&[]), None);
        assert_eq!(rejected_points(b"\xff\xff not protobuf"), None);
    }
}
