//! The HTTP face of the daemon: `/metrics`, `/probe`, `/-/healthy`, `/-/ready`, `/-/reload` and a
//! small status page at `/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

mod status;

use crate::metrics::journey::JourneyMetrics;
use crate::metrics::{self, ProbeMetrics};
use crate::probe::show::ms;
use crate::runtime::{Daemon, ProbeNowError};

/// The router over a running daemon.
pub fn app(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(status::status_page))
        .route("/waterfall", get(status::waterfall_page).head(get_only))
        .route("/metrics", get(metrics_page))
        // GET only: axum would otherwise run the GET handler for HEAD, a real probe whose
        // answer nobody reads.
        .route("/probe", get(probe).head(get_only))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(daemon)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn metrics_page(State(d): State<Arc<Daemon>>) -> Response {
    let body = metrics::encode(d.registry());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::TEXT_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn healthy() -> Response {
    text(StatusCode::OK, "Healthy\n".to_string())
}

async fn ready(State(d): State<Arc<Daemon>>) -> Response {
    if d.is_ready() {
        text(StatusCode::OK, "Ready\n".to_string())
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "Not ready\n".to_string())
    }
}

async fn reload(State(d): State<Arc<Daemon>>) -> Response {
    match d.reload().await {
        Ok(summary) => text(StatusCode::OK, format!("Reloaded: {summary}\n")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Reload failed; the running config is kept.\n{e}\n"),
        ),
    }
}

async fn get_only() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::ALLOW, "GET"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "Method Not Allowed: /probe answers GET only.\n",
    )
        .into_response()
}

/// The scrape timeout Prometheus sends with every scrape.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// How much of the scrape timeout a probe leaves unused, so that Prometheus reads the failed
/// probe's answer instead of giving up on the scrape (blackbox_exporter's `--timeout-offset`
/// default).
const SCRAPE_TIMEOUT_OFFSET: Duration = Duration::from_millis(500);

/// The longest a target or scenario name is echoed back in an error.
const ECHO_CHARS: usize = 100;

/// The deadline a scrape timeout (seconds, as Prometheus sends it) leaves a probe: the timeout
/// less [`SCRAPE_TIMEOUT_OFFSET`], but never less than half of it (blackbox_exporter falls back
/// to the module's own timeout there, which would outlast the scrape).
fn probe_deadline(header: &str) -> Option<Duration> {
    let secs: f64 = header.trim().parse().ok()?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e6 {
        return None;
    }
    let timeout = Duration::from_secs_f64(secs);
    Some(
        timeout
            .saturating_sub(SCRAPE_TIMEOUT_OFFSET)
            .max(timeout / 2),
    )
}

/// `GET /probe?target=NAME[&scenario=S | &journey=J]`: runs one probe (or one journey) now and
/// answers with its metrics from a fresh registry (blackbox_exporter style). The status code is
/// 200 whether it succeeded or not: a failure is data (`inferprobe_probe_success 0`,
/// `inferprobe_journey_success 0`). The probe takes one of the
/// global probe permits (`global.max_concurrent_probes`) like a scheduled one; when none frees
/// up in time the answer is 503. With `X-Prometheus-Scrape-Timeout-Seconds`, waiting and
/// probing end half a second before Prometheus would give up.
async fn probe(
    State(d): State<Arc<Daemon>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(target) = q.get("target") else {
        return text(
            StatusCode::BAD_REQUEST,
            "missing query parameter: target\n".to_string(),
        );
    };
    let deadline =
        match headers.get(SCRAPE_TIMEOUT_HEADER) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(probe_deadline) {
                Some(d) => Some(d),
                None => return text(
                    StatusCode::BAD_REQUEST,
                    "X-Prometheus-Scrape-Timeout-Seconds: expected a positive number of seconds\n"
                        .to_string(),
                ),
            },
        };
    let registry = prometheus::Registry::new();
    let recorded = match q.get("journey") {
        Some(journey) => d
            .journey_now(target, journey, deadline)
            .await
            .and_then(|o| {
                let m = JourneyMetrics::register(&registry)
                    .map_err(|e| ProbeNowError::Metrics(e.to_string()))?;
                m.observe(&o);
                Ok(())
            }),
        None => {
            let buckets = d.buckets().await;
            d.probe_now(target, q.get("scenario").map(String::as_str), deadline)
                .await
                .and_then(|o| {
                    let m = ProbeMetrics::register(&registry, &buckets)
                        .map_err(|e| ProbeNowError::Metrics(e.to_string()))?;
                    m.observe(&o);
                    Ok(())
                })
        }
    };
    if let Err(e) = recorded {
        return probe_error(e);
    }
    let body = metrics::encode(&registry);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, metrics::TEXT_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// The answer to a `/probe` that ran nothing: 400 for a name that does not exist (echoing at
/// most [`ECHO_CHARS`] of it), 503 when the target or the permits stayed busy.
fn probe_error(e: ProbeNowError) -> Response {
    let clip = |s: &str| crate::probe::clip(s, ECHO_CHARS);
    match e {
        ProbeNowError::UnknownTarget { name } => text(
            StatusCode::BAD_REQUEST,
            format!("unknown target {:?}\n", clip(&name)),
        ),
        ProbeNowError::UnknownScenario { target, name } => text(
            StatusCode::BAD_REQUEST,
            format!(
                "target {:?} has no scenario {:?}\n",
                clip(&target),
                clip(&name)
            ),
        ),
        ProbeNowError::UnknownJourney { target, name } => text(
            StatusCode::BAD_REQUEST,
            format!(
                "target {:?} has no journey {:?}\n",
                clip(&target),
                clip(&name)
            ),
        ),
        e @ (ProbeNowError::Busy(_) | ProbeNowError::NoPermit(_)) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
        }
        e @ ProbeNowError::Metrics(_) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping() {
        assert_eq!(
            crate::redact::html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(ms(Some(Duration::from_micros(12_345))), "12.3 ms");
        assert_eq!(ms(None), "–");
    }

    #[test]
    fn scrape_timeout_leaves_half_a_second() {
        assert_eq!(probe_deadline("10"), Some(Duration::from_millis(9500)));
        assert_eq!(probe_deadline(" 2.5 "), Some(Duration::from_secs(2)));
        // Short timeouts keep at least half.
        assert_eq!(probe_deadline("0.6"), Some(Duration::from_millis(300)));
        for bad in ["", "x", "0", "-1", "NaN", "inf", "1e9"] {
            assert_eq!(probe_deadline(bad), None, "{bad}");
        }
    }
}
