//! OTLP export end to end: the daemon against the simulator, pushing to an OTLP/HTTP receiver
//! that runs in the test and decodes every request with the OpenTelemetry protobuf definitions
//! (`opentelemetry-proto`). What arrives is compared with what `/metrics` shows for the same
//! probes; a receiver that is down, hangs, fails or redirects must not touch probing or
//! `/metrics`, nor lose data, nor see or leak a secret.

mod common;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{eventually, get, sample};
use inferprobe::commands;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use prost::Message;

/// What the receiver saw and how it answers.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<ExportMetricsServiceRequest>>,
    headers: Mutex<Vec<HeaderMap>>,
    /// Status to answer with; 0 means 200.
    status: AtomicU16,
    /// Extra answer header (Location for a redirect).
    location: Mutex<Option<String>>,
    /// Requests that arrived, decodable or not.
    hits: AtomicUsize,
}

async fn export(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    r.hits.fetch_add(1, Ordering::SeqCst);
    let status = match r.status.load(Ordering::SeqCst) {
        0 => StatusCode::OK,
        s => StatusCode::from_u16(s).unwrap(),
    };
    let mut out = HeaderMap::new();
    if let Some(l) = r.location.lock().unwrap().clone() {
        out.insert("location", l.parse().unwrap());
    }
    if status != StatusCode::OK {
        // A hostile receiver echoes what it was sent, credentials included.
        let echo = format!("{headers:?}");
        return (status, out, echo.into_bytes());
    }
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/x-protobuf")
    );
    let req = ExportMetricsServiceRequest::decode(body).expect("a valid OTLP protobuf body");
    r.requests.lock().unwrap().push(req);
    r.headers.lock().unwrap().push(headers);
    (
        StatusCode::OK,
        out,
        ExportMetricsServiceResponse::default().encode_to_vec(),
    )
}

/// A fresh receiver's state, its routes and a loopback listener for them.
async fn receiver_parts() -> (Arc<Receiver>, axum::Router, tokio::net::TcpListener) {
    let state = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/v1/metrics", post(export))
        .with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (state, app, l)
}

/// Starts a receiver on loopback; returns its base URL (the exporter appends `/v1/metrics`).
async fn receiver() -> (String, Arc<Receiver>) {
    let (state, app, l) = receiver_parts().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}"), state)
}

/// A listener that accepts connections and never answers.
async fn black_hole() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    format!("http://{addr}")
}

fn config(endpoint: &str, otlp_extra: &str) -> String {
    format!(
        r#"
global:
  schedule: {{every: 1s, jitter: 0}}
  timeouts: {{connect: 1s, first_token: 2s, idle: 1s, total: 4s}}
simulator:
  ttft: 30ms
  itl: 5ms
  output_tokens: 6
prices:
  sim-llm: {{input_per_million: 1.0, output_per_million: 2.0}}
scenarios:
  short: {{prompt: "Count to six.", max_tokens: 16}}
targets:
  - {{name: chat, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short]}}
  - {{name: claude, dialect: anthropic-messages, base_url: simulator, model: sim-llm, scenarios: [short]}}
servers:
  - {{name: sim, url: simulator, interval: 1s, timeout: 500ms}}
otlp:
  endpoint: {endpoint}
  interval: 1s
  timeout: 1s
  resource: {{deployment.environment.name: test, service.instance.id: canary-1}}
{otlp_extra}
"#
    )
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn has(attrs: &[KeyValue], want: &[(&str, &str)]) -> bool {
    want.iter().all(|(k, v)| text(attrs, k) == Some(*v))
}

fn metrics_of(req: &ExportMetricsServiceRequest) -> Vec<&Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics.iter())
        .flat_map(|sm| sm.metrics.iter())
        .collect()
}

fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    metrics_of(req)
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in the export"))
}

/// Count and sum of a histogram's (explicit or exponential) points matching `want`.
fn hist(m: &Metric, want: &[(&str, &str)]) -> (u64, f64) {
    match m.data.as_ref().unwrap() {
        metric::Data::Histogram(h) => h
            .data_points
            .iter()
            .filter(|p| has(&p.attributes, want))
            .fold((0, 0.0), |(c, s), p| {
                (c + p.count, s + p.sum.unwrap_or(0.0))
            }),
        metric::Data::ExponentialHistogram(h) => h
            .data_points
            .iter()
            .filter(|p| has(&p.attributes, want))
            .fold((0, 0.0), |(c, s), p| {
                (c + p.count, s + p.sum.unwrap_or(0.0))
            }),
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}

fn number(p: &Option<number_data_point::Value>) -> f64 {
    match p {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// Sum over the points of a sum or gauge that match `want`.
fn total(m: &Metric, want: &[(&str, &str)]) -> f64 {
    let points = match m.data.as_ref().unwrap() {
        metric::Data::Sum(s) => &s.data_points,
        metric::Data::Gauge(g) => &g.data_points,
        other => panic!("{} is not a sum or gauge: {other:?}", m.name),
    };
    points
        .iter()
        .filter(|p| has(&p.attributes, want))
        .map(|p| number(&p.value))
        .sum()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn last(r: &Receiver) -> ExportMetricsServiceRequest {
    r.requests
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("an export arrived")
}

/// Waits until both targets have `n` successful probes on `/metrics`.
async fn probes_done(base: &str, n: f64) {
    eventually(Duration::from_secs(30), "successful probes", || async {
        let (_, m) = get(&format!("{base}/metrics")).await;
        let ok = ["chat", "claude"].iter().all(|t| {
            sample(
                &m,
                "inferprobe_probes_total",
                &[("target", t), ("result", "success")],
            )
            .unwrap_or(0.0)
                >= n
        });
        ok.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_names_attributes_and_values_match_metrics() {
    let (endpoint, rx) = receiver().await;
    let yaml = config(
        &endpoint,
        "  headers: {authorization: {env: OTLP_TEST_TOKEN}, x-scope-orgid: team-a}",
    );
    let loaded = inferprobe::config::load_str_with(
        &yaml,
        "otlp.yml",
        &inferprobe::config::Environment {
            base_dir: std::path::Path::new("."),
            var: &|name: &str| {
                (name == "OTLP_TEST_TOKEN").then(|| "Bearer otlp-secret-7f3a9c".to_string())
            },
            secrets_required: true,
        },
    )
    .expect("config loads");
    let running = commands::start(loaded, None, "127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", running.addr);
    let sim_port = running
        .daemon
        .simulator()
        .unwrap()
        .addr()
        .port()
        .to_string();
    probes_done(&base, 3.0).await;
    let (_, before) = get(&format!("{base}/metrics")).await;
    // Stops probing, then exports a last time: that export holds every probe.
    running.daemon.shutdown().await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    let req = last(&rx);

    // Resource: defaults overridden by the config, service.name kept.
    let res = req.resource_metrics[0].resource.as_ref().unwrap();
    assert!(has(
        &res.attributes,
        &[
            ("service.name", "inferprobe"),
            ("service.instance.id", "canary-1"),
            ("deployment.environment.name", "test"),
        ]
    ));
    // The headers reached the receiver as configured.
    let h = rx.headers.lock().unwrap().last().cloned().unwrap();
    assert_eq!(h["authorization"], "Bearer otlp-secret-7f3a9c");
    assert_eq!(h["x-scope-orgid"], "team-a");

    for (target, provider) in [("chat", "_OTHER"), ("claude", "anthropic")] {
        let genai = [
            ("inferprobe.target", target),
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", provider),
            ("gen_ai.request.model", "sim-llm"),
            ("server.address", "127.0.0.1"),
        ];
        let prom = [("target", target)];
        let duration = find(&req, "gen_ai.client.inference.duration");
        assert_eq!(duration.unit, "s");
        // Every probe succeeded, so no point carries error.type.
        let pts = match duration.data.as_ref().unwrap() {
            metric::Data::ExponentialHistogram(h) => &h.data_points,
            other => panic!("latency families are exponential by default, got {other:?}"),
        };
        for p in pts.iter().filter(|p| has(&p.attributes, &genai)) {
            assert!(attr(&p.attributes, "error.type").is_none());
            assert_eq!(
                attr(&p.attributes, "server.port"),
                Some(&any_value::Value::IntValue(sim_port.parse().unwrap()))
            );
            assert_eq!(
                text(&p.attributes, "gen_ai.response.model"),
                Some("sim-llm")
            );
        }
        let pairs = [
            (
                "gen_ai.client.inference.duration",
                "inferprobe_request_duration_seconds",
            ),
            (
                "gen_ai.client.inference.time_to_first_chunk",
                "inferprobe_time_to_first_token_seconds",
            ),
            (
                "gen_ai.client.inference.time_per_output_chunk",
                "inferprobe_inter_token_latency_seconds",
            ),
        ];
        for (otel, prom_name) in pairs {
            let (count, sum) = hist(find(&req, otel), &genai);
            let want_count = sample(&m, &format!("{prom_name}_count"), &prom).unwrap();
            let want_sum = sample(&m, &format!("{prom_name}_sum"), &prom).unwrap();
            assert!(count >= 3, "{otel} {target}: {count} observations");
            assert_eq!(count as f64, want_count, "{otel} count of {target}");
            assert!(
                close(sum, want_sum),
                "{otel} sum of {target}: {sum} vs {want_sum}"
            );
        }
        let tokens = [
            ("gen_ai.client.inference.usage.input_tokens", "input"),
            ("gen_ai.client.inference.usage.output_tokens", "output"),
        ];
        for (otel, direction) in tokens {
            let metric = find(&req, otel);
            assert_eq!(metric.unit, "{token}");
            let mut want = genai.to_vec();
            want.push(("gen_ai.token.modality", "text"));
            let got = total(metric, &want);
            let expect = sample(
                &m,
                "inferprobe_tokens_total",
                &[("target", target), ("direction", direction)],
            )
            .unwrap();
            assert!(got > 0.0);
            assert_eq!(got, expect, "{otel} of {target}");
        }
        // inferprobe's own families keep their Prometheus labels and values.
        let probes = total(
            find(&req, "inferprobe_probes"),
            &[("target", target), ("result", "success")],
        );
        assert_eq!(
            probes,
            sample(
                &m,
                "inferprobe_probes_total",
                &[("target", target), ("result", "success")]
            )
            .unwrap()
        );
        let ttfb = find(&req, "inferprobe_time_to_first_byte");
        assert_eq!(ttfb.unit, "s");
        let (count, sum) = hist(ttfb, &prom);
        assert_eq!(
            count as f64,
            sample(&m, "inferprobe_time_to_first_byte_seconds_count", &prom).unwrap()
        );
        assert!(close(
            sum,
            sample(&m, "inferprobe_time_to_first_byte_seconds_sum", &prom).unwrap()
        ));
        let cost = total(find(&req, "inferprobe_cost_usd"), &prom);
        let want_cost = sample(&m, "inferprobe_cost_usd_total", &prom).unwrap();
        assert!(
            want_cost > 0.0 && close(cost, want_cost),
            "{cost} vs {want_cost}"
        );
    }
    // The inference-server families come from the collector's snapshot.
    let up = total(find(&req, "inferprobe_server_up"), &[("server", "sim")]);
    // (The collectors stop with the daemon, so /metrics is read from before the stop.)
    assert_eq!(
        up,
        sample(&before, "inferprobe_server_up", &[("server", "sim")]).unwrap()
    );
    let prompt = total(
        find(&req, "inferprobe_server_prompt_tokens"),
        &[("server", "sim")],
    );
    assert!(
        prompt > 0.0,
        "the simulator's prompt-token counter is exported"
    );
    assert_eq!(up, 1.0);
    // The exporter's own health is on /metrics.
    assert!(
        sample(
            &m,
            "inferprobe_otlp_exports_total",
            &[("result", "success")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&m, "inferprobe_otlp_last_success_timestamp_seconds", &[]).unwrap() > 0.0);
    // The header secret is on no page.
    for page in ["/metrics", "/"] {
        let (_, body) = get(&format!("{base}{page}")).await;
        assert!(
            !body.contains("otlp-secret-7f3a9c"),
            "{page} shows the OTLP header secret"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_41_names_and_explicit_buckets() {
    let (endpoint, rx) = receiver().await;
    let yaml = config(&endpoint, "  semconv: v1.41\n  histograms: explicit");
    let running = commands::start(common::load(&yaml), None, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    probes_done(&base, 2.0).await;
    running.daemon.shutdown().await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    let req = last(&rx);
    let scope = &req.resource_metrics[0].scope_metrics[0];
    assert_eq!(scope.schema_url, "https://opentelemetry.io/schemas/1.41.0");
    let names: Vec<&str> = metrics_of(&req).iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"gen_ai.client.operation.duration"));
    assert!(names.contains(&"gen_ai.client.operation.time_to_first_chunk"));
    assert!(names.contains(&"gen_ai.client.token.usage"));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("gen_ai.client.inference")));

    // GenAI histograms carry the conventions' bucket advice.
    let duration = find(&req, "gen_ai.client.operation.duration");
    let metric::Data::Histogram(h) = duration.data.as_ref().unwrap() else {
        panic!("explicit histograms asked for");
    };
    assert_eq!(
        h.data_points[0].explicit_bounds,
        inferprobe::otlp::semconv::DURATION_BUCKETS.to_vec()
    );
    // Tokens by gen_ai.token.type, equal to /metrics.
    let usage = find(&req, "gen_ai.client.token.usage");
    assert_eq!(usage.unit, "{token}");
    let (_, out_sum) = hist(
        usage,
        &[
            ("inferprobe.target", "chat"),
            ("gen_ai.token.type", "output"),
        ],
    );
    assert_eq!(
        out_sum,
        sample(
            &m,
            "inferprobe_tokens_total",
            &[("target", "chat"), ("direction", "output")]
        )
        .unwrap()
    );
    // inferprobe's own histogram: the same buckets and the same count in each as /metrics.
    let ttfb = find(&req, "inferprobe_time_to_first_byte");
    let metric::Data::Histogram(h) = ttfb.data.as_ref().unwrap() else {
        panic!("explicit histograms asked for");
    };
    let p = h
        .data_points
        .iter()
        .find(|p| has(&p.attributes, &[("target", "chat")]))
        .unwrap();
    let mut cumulative = 0;
    for (i, le) in p.explicit_bounds.iter().enumerate() {
        cumulative += p.bucket_counts[i];
        let le_text = format!("{le}");
        let want = sample(
            &m,
            "inferprobe_time_to_first_byte_seconds_bucket",
            &[("target", "chat"), ("le", &le_text)],
        )
        .unwrap_or_else(|| panic!("no /metrics bucket le={le_text}"));
        assert_eq!(cumulative as f64, want, "bucket le={le}");
    }
    running.stop().await;
}

/// Reads `inferprobe_otlp_exports_total{result}` off `/metrics`.
async fn exports(base: &str, result: &str) -> f64 {
    let (_, m) = get(&format!("{base}/metrics")).await;
    sample(&m, "inferprobe_otlp_exports_total", &[("result", result)]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hanging_collector_leaves_probing_and_metrics_unaffected() {
    let hole = black_hole().await;
    let running = commands::start(common::load(&config(&hole, "")), None, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let started = Instant::now();
    // Probes keep their schedule (every second) while every export hangs until its timeout.
    probes_done(&base, 4.0).await;
    let waited = started.elapsed();
    eventually(Duration::from_secs(20), "timed-out exports", || async {
        (exports(&base, "timeout").await >= 2.0).then_some(())
    })
    .await;
    assert_eq!(exports(&base, "success").await, 0.0);
    let (_, m) = get(&format!("{base}/metrics")).await;
    // Each probe is as fast as without OTLP (the simulator answers in tens of milliseconds).
    let e2e = sample(
        &m,
        "inferprobe_request_duration_seconds_sum",
        &[("target", "chat")],
    )
    .unwrap()
        / sample(
            &m,
            "inferprobe_request_duration_seconds_count",
            &[("target", "chat")],
        )
        .unwrap();
    assert!(e2e < 1.0, "mean probe duration {e2e}s");
    assert!(waited < Duration::from_secs(20), "4 probes took {waited:?}");
    // Stopping waits for at most one export timeout (1s) plus a margin, not for the receiver.
    let stop = Instant::now();
    running.stop().await;
    assert!(
        stop.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        stop.elapsed()
    );

    // A port where nothing listens: connect errors, probing unaffected.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let running = commands::start(common::load(&config(&closed, "")), None, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    probes_done(&base, 2.0).await;
    eventually(Duration::from_secs(20), "connect errors", || async {
        (exports(&base, "connect_error").await >= 1.0).then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_counted_and_lose_nothing_and_redirects_are_not_followed() {
    let (endpoint, rx) = receiver().await;
    rx.status.store(503, Ordering::SeqCst);
    let yaml = config(
        &endpoint,
        "  headers: {authorization: Bearer otlp-secret-51c2}",
    );
    let running = commands::start(common::load(&yaml), None, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    eventually(Duration::from_secs(20), "failed exports", || async {
        (exports(&base, "http_5xx").await >= 1.0).then_some(())
    })
    .await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    assert!(sample(&m, "inferprobe_otlp_export_retries_total", &[]).unwrap() >= 1.0);
    assert!(rx.requests.lock().unwrap().is_empty());
    // The status page says where the export goes and that it fails.
    let (_, page) = get(&format!("{base}/")).await;
    assert!(
        page.contains(&format!("OTLP export to {endpoint}")),
        "{page}"
    );
    assert!(page.contains("last export failed (http_5xx)"), "{page}");
    assert!(page.contains("last success never"), "{page}");

    // A redirect is not followed: the other receiver never sees the request or its headers.
    let (elsewhere, other) = receiver().await;
    *rx.location.lock().unwrap() = Some(format!("{elsewhere}/v1/metrics"));
    rx.status.store(307, Ordering::SeqCst);
    eventually(Duration::from_secs(20), "refused redirects", || async {
        (exports(&base, "error").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(other.hits.load(Ordering::SeqCst), 0);

    // The receiver recovers: the next export carries every probe so far (cumulative), so the
    // failed ones lost nothing.
    *rx.location.lock().unwrap() = None;
    rx.status.store(0, Ordering::SeqCst);
    probes_done(&base, 3.0).await;
    eventually(Duration::from_secs(20), "a successful export", || async {
        (exports(&base, "success").await >= 1.0).then_some(())
    })
    .await;
    let (_, page) = get(&format!("{base}/")).await;
    assert!(page.contains("last export ok"), "{page}");
    running.daemon.shutdown().await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    let req = last(&rx);
    let got = total(
        find(&req, "inferprobe_probes"),
        &[("target", "chat"), ("result", "success")],
    );
    let want = sample(
        &m,
        "inferprobe_probes_total",
        &[("target", "chat"), ("result", "success")],
    )
    .unwrap();
    assert_eq!(got, want);
    assert!(!m.contains("otlp-secret-51c2"));
    running.stop().await;
}

#[test]
fn config_errors_name_the_yaml_path() {
    let bad = r#"
otlp:
  endpoint: "http://user:hunter2@collector:4318/v1/metrics"
  protocol: grpc
  interval: 100ms
  timeout: 0s
  headers: {content-type: text/plain}
  tls: {cert_file: client.pem}
targets: []
"#;
    let err = inferprobe::config::load_str(bad, "bad.yml").unwrap_err();
    let text = err.to_string();
    for want in [
        "otlp.endpoint",
        "otlp.protocol",
        "otlp.interval",
        "otlp.timeout",
        "otlp.headers.content-type",
        "otlp.tls.key_file",
    ] {
        assert!(text.contains(want), "no error at {want}:\n{text}");
    }
    assert!(
        !text.contains("hunter2"),
        "the URL's password is echoed:\n{text}"
    );
    let unknown = inferprobe::config::load_str(
        "otlp:\n  endpoint: http://127.0.0.1:4318\n  semconv: v2\ntargets: []\n",
        "u.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("otlp.semconv"), "{unknown}");
    let ok = common::load("otlp: {endpoint: \"http://127.0.0.1:4318/\"}\ntargets: []\n");
    let s = ok.otlp.unwrap();
    assert_eq!(s.metrics_url, "http://127.0.0.1:4318/v1/metrics");
    assert_eq!(s.interval, Duration::from_secs(15));
}

/// The GPU families over OTLP come from the same snapshot `/metrics` renders: every point of a
/// published snapshot arrives under the OpenTelemetry name with the same labels and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_snapshot_reaches_both_exporters() {
    use inferprobe::metrics::gpu::{GpuFamily, GpuMetrics, GpuSnapshot};
    let (endpoint, rx) = receiver().await;
    let loaded = common::load(&format!(
        "otlp: {{endpoint: \"{endpoint}\", interval: 1h, timeout: 2s}}\ntargets: []\n"
    ));
    let registry = prometheus::Registry::new();
    let gpu = GpuMetrics::register(&registry).unwrap();
    let mut snap = GpuSnapshot::default();
    let ids = |g: &str| vec![g.to_string(), format!("GPU-{g}")];
    for (i, g) in ["0", "1"].iter().enumerate() {
        let i = i as f64;
        snap.push(GpuFamily::Utilization, ids(g), 0.25 + i / 2.0);
        snap.push(GpuFamily::PowerUsage, ids(g), 310.5 + i);
        snap.push(GpuFamily::MemoryUsed, ids(g), 4.0e9 + i);
        snap.push(GpuFamily::Energy, ids(g), 123456.75 + i);
        snap.push(GpuFamily::PcieRx, ids(g), 2048.0 * (i + 1.0));
    }
    snap.push(GpuFamily::NvmlUp, vec![], 1.0);
    gpu.publish(snap);
    let health = inferprobe::metrics::otlp::OtlpMetrics::register(&registry).unwrap();
    let exporter = inferprobe::otlp::OtlpExporter::start(
        loaded.otlp.as_ref().unwrap(),
        inferprobe::otlp::Sources {
            health,
            gpu: gpu.clone(),
            servers: inferprobe::metrics::server::ServerMetrics::new(),
        },
        &Default::default(),
    )
    .unwrap();
    let exporter = Arc::new(exporter);
    let x = exporter.clone();
    assert!(tokio::task::spawn_blocking(move || x.flush())
        .await
        .unwrap());
    let req = last(&rx);
    let page = inferprobe::metrics::encode(&registry);
    let cases = [
        (GpuFamily::Utilization, "inferprobe_gpu_utilization", "1"),
        (GpuFamily::PowerUsage, "inferprobe_gpu_power_usage", "W"),
        (GpuFamily::MemoryUsed, "inferprobe_gpu_memory_used", "By"),
        (GpuFamily::Energy, "inferprobe_gpu_energy_consumed", "J"),
        (GpuFamily::PcieRx, "inferprobe_gpu_pcie_rx", "By/s"),
    ];
    for (family, otel, unit) in cases {
        let m = find(&req, otel);
        assert_eq!(m.unit, unit, "{otel}");
        if family.is_counter() {
            let metric::Data::Sum(s) = m.data.as_ref().unwrap() else {
                panic!("{otel} is a counter");
            };
            assert!(s.is_monotonic);
        }
        for g in ["0", "1"] {
            let want = sample(&page, family.name(), &[("gpu", g)]).unwrap();
            let got = total(m, &[("gpu", g), ("uuid", &format!("GPU-{g}"))]);
            assert_eq!(got, want, "{otel} gpu {g}");
        }
    }
    assert_eq!(total(find(&req, "inferprobe_nvml_up"), &[]), 1.0);
    // A later snapshot replaces the picture in both.
    let mut snap = GpuSnapshot::default();
    snap.push(GpuFamily::PowerUsage, ids("0"), 99.0);
    gpu.publish(snap);
    let x = exporter.clone();
    assert!(tokio::task::spawn_blocking(move || x.flush())
        .await
        .unwrap());
    let req = last(&rx);
    assert_eq!(
        total(find(&req, "inferprobe_gpu_power_usage"), &[("gpu", "0")]),
        99.0
    );
    // GPU 1 left the snapshot: no point for it any more, in either exporter.
    let power = find(&req, "inferprobe_gpu_power_usage");
    let metric::Data::Gauge(g) = power.data.as_ref().unwrap() else {
        panic!("power is a gauge");
    };
    assert!(g
        .data_points
        .iter()
        .all(|p| text(&p.attributes, "gpu") == Some("0")));
    assert!(!metrics_of(&req)
        .iter()
        .any(|m| m.name == "inferprobe_gpu_utilization" && total(m, &[]) > 0.0));
    assert_eq!(
        sample(
            &inferprobe::metrics::encode(&registry),
            "inferprobe_gpu_power_usage_watts",
            &[("gpu", "0")]
        ),
        Some(99.0)
    );
    tokio::task::spawn_blocking(move || exporter.shutdown())
        .await
        .unwrap();
}

/// A reload that changes the `otlp:` block restarts the exporter on the new settings; one that
/// removes it stops exporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_and_stops_the_export() {
    let (a, rx_a) = receiver().await;
    let (b, rx_b) = receiver().await;
    let running = commands::start(common::load(&config(&a, "")), None, "127.0.0.1:0")
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "exports to A", || async {
        (!rx_a.requests.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    running
        .daemon
        .swap(common::load(&config(&b, "")))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "exports to B", || async {
        (!rx_b.requests.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // A got its last export when the old exporter stopped (allowed 1.5 s), and nothing after;
    // a running exporter would have sent two more within the 2.5 s watched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a_final = rx_a.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx_a.hits.load(Ordering::SeqCst), a_final);

    let without = config(&b, "").split("otlp:").next().unwrap().to_string();
    running.daemon.swap(common::load(&without)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b_final = rx_b.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx_b.hits.load(Ordering::SeqCst), b_final);
    running.stop().await;
}

/// A self-signed CA and a certificate it signed for `names`, PEM.
fn ca_and_leaf(ca_name: &str, names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, ca_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    (ca_pem, leaf, key.serialize_pem())
}

/// The receiver behind TLS: its certificate is `cert`; with `client_ca`, a client certificate
/// signed by it is required.
async fn tls_receiver(cert: &str, key: &str, client_ca: Option<&str>) -> (String, Arc<Receiver>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    }
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (state, app, l) = receiver_parts().await;
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A client that fails the handshake is simply dropped.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (format!("https://{addr}"), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_private_ca_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf("otlp test server CA", &["127.0.0.1"]);
    let (client_ca, client_cert, client_key) = ca_and_leaf("otlp test client CA", &["canary"]);
    for (name, pem) in [
        ("ca.pem", &ca),
        ("client.pem", &client_cert),
        ("client-key.pem", &client_key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let load = |endpoint: &str, tls: &str| {
        let yaml = config(endpoint, &format!("  tls: {tls}"));
        inferprobe::config::load_str_with(
            &yaml,
            "tls.yml",
            &inferprobe::config::Environment {
                base_dir: dir.path(),
                var: &|_: &str| None,
                secrets_required: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };

    // A receiver signed by a private CA: trusted through ca_file, refused without it.
    let (endpoint, rx) = tls_receiver(&cert, &key, None).await;
    for (tls, trusted) in [("{ca_file: ca.pem}", true), ("{}", false)] {
        let running = commands::start(load(&endpoint, tls), None, "127.0.0.1:0")
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        let want = if trusted { "success" } else { "connect_error" };
        eventually(Duration::from_secs(20), want, || async {
            (exports(&base, want).await >= 1.0).then_some(())
        })
        .await;
        if !trusted {
            assert_eq!(exports(&base, "success").await, 0.0);
        }
        running.stop().await;
    }
    assert!(!rx.requests.lock().unwrap().is_empty());

    // Mutual TLS: the client certificate gets the data in, its absence does not.
    let (endpoint, rx) = tls_receiver(&cert, &key, Some(&client_ca)).await;
    for (tls, admitted) in [
        ("{ca_file: ca.pem}", false),
        (
            "{ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}",
            true,
        ),
    ] {
        let running = commands::start(load(&endpoint, tls), None, "127.0.0.1:0")
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        eventually(Duration::from_secs(20), "an export", || async {
            let done = exports(&base, "success").await
                + exports(&base, "connect_error").await
                + exports(&base, "error").await;
            (done >= 1.0).then_some(())
        })
        .await;
        assert_eq!(exports(&base, "success").await >= 1.0, admitted, "{tls}");
        running.stop().await;
    }
    assert!(!rx.requests.lock().unwrap().is_empty());
}

/// A receiver that accepts the export and then answers with an endless body: the exporter reads
/// at most 64 KiB of it, so each export still ends (as a success) instead of reading forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_cut_short() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // The request (headers and a small body) fits one read or two.
                let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
                while s.write_all(chunk.as_bytes()).await.is_ok() {
                    w.fetch_add(4096, Ordering::SeqCst);
                }
            });
        }
    });
    let running = commands::start(common::load(&config(&endpoint, "")), None, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    eventually(Duration::from_secs(20), "exports that end", || async {
        (exports(&base, "success").await >= 2.0).then_some(())
    })
    .await;
    probes_done(&base, 2.0).await;
    running.stop().await;
    // Each export stopped reading after 64 KiB; socket buffers let the server write more, but
    // nowhere near what an unbounded read of a few seconds would take in.
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes were pushed");
}
