//! The inference-server collector: recorded `/metrics` pages of each server kind normalized to
//! exact values, parser robustness, the scrape loop against a local server, and promtool.

use std::time::{Duration, Instant};

use inferprobe::collect::server::{
    self, detect_kind, normalize, parse, HistogramSnapshot, ModelSnapshot, ServerMetrics,
    ServerSnapshot,
};
use inferprobe::config::servers::{ServerConfig, ServerKind};
use prometheus::{Encoder, Registry, TextEncoder};

const VLLM_V06: &str = include_str!("fixtures/server_metrics/vllm_v0.6.txt");
const VLLM_V011: &str = include_str!("fixtures/server_metrics/vllm_v0.11.txt");
const SGLANG: &str = include_str!("fixtures/server_metrics/sglang.txt");
const TGI: &str = include_str!("fixtures/server_metrics/tgi.txt");
const LLAMACPP: &str = include_str!("fixtures/server_metrics/llamacpp.txt");
const TRITON: &str = include_str!("fixtures/server_metrics/triton.txt");

const FIXTURES: [(&str, &str, ServerKind); 6] = [
    ("vllm_v0.6", VLLM_V06, ServerKind::Vllm),
    ("vllm_v0.11", VLLM_V011, ServerKind::Vllm),
    ("sglang", SGLANG, ServerKind::Sglang),
    ("tgi", TGI, ServerKind::Tgi),
    ("llamacpp", LLAMACPP, ServerKind::Llamacpp),
    ("triton", TRITON, ServerKind::Triton),
];

fn hist(bounds: &[f64], counts: &[u64], count: u64, sum: f64) -> HistogramSnapshot {
    assert_eq!(bounds.len(), counts.len());
    HistogramSnapshot {
        buckets: bounds.iter().copied().zip(counts.iter().copied()).collect(),
        count,
        sum,
    }
}

fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Normalizes a fixture in auto mode, after checking that detection and the explicit kind agree.
fn snapshot(text: &str, kind: ServerKind) -> ServerSnapshot {
    let families = parse(text).expect("fixture parses");
    assert_eq!(detect_kind(&families), Some(kind));
    let auto = normalize(ServerKind::Auto, &families);
    assert_eq!(auto, normalize(kind, &families));
    auto
}

#[test]
fn auto_detection_picks_each_kind() {
    for (name, text, kind) in FIXTURES {
        let families = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(detect_kind(&families), Some(kind), "{name}");
    }
}

#[test]
fn vllm_v0_6() {
    let snap = snapshot(VLLM_V06, ServerKind::Vllm);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![ModelSnapshot {
                model: Some("meta-llama/Meta-Llama-3.1-8B-Instruct".to_string()),
                requests_running: Some(7.0),
                requests_waiting: Some(3.0),
                kv_cache_usage_ratio: Some(0.4158),
                prompt_tokens_total: Some(1_482_936.0),
                generation_tokens_total: Some(398_211.0),
                preemptions_total: Some(12.0),
                time_to_first_token_seconds: Some(hist(
                    &[
                        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                        5.0, 7.5, 10.0
                    ],
                    &[
                        0, 0, 0, 3, 41, 118, 260, 501, 1620, 2244, 2390, 2431, 2460, 2467, 2469,
                        2469
                    ],
                    2470,
                    931.2788140773773
                )),
                // v0.6 named the per-step inter-token histogram time_per_output_token_seconds.
                inter_token_latency_seconds: Some(hist(
                    &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
                    &[
                        0, 51234, 287001, 389120, 395211, 395500, 395610, 395700, 395731, 395736,
                        395739, 395740, 395741
                    ],
                    395741,
                    13711.428612709045
                )),
            }]
        }
    );
}

#[test]
fn vllm_v0_11_sums_engines() {
    let ttft_bounds = [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    ];
    let ttft0 = [
        0, 0, 0, 0, 12, 60, 141, 230, 688, 1010, 1105, 1130, 1149, 1152, 1153, 1153, 1153, 1153,
        1153, 1153, 1153, 1153,
    ];
    let ttft1 = [
        0, 0, 0, 1, 15, 70, 150, 241, 700, 1021, 1110, 1141, 1160, 1165, 1166, 1167, 1167, 1167,
        1167, 1167, 1167, 1167,
    ];
    let itl_bounds = [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0,
    ];
    let mut itl0 = vec![
        0, 20412, 160201, 198100, 199800, 200100, 200190, 200230, 200240, 200244, 200246,
    ];
    itl0.resize(19, 200247);
    let mut itl1 = vec![
        0, 19870, 157302, 195500, 197001, 197300, 197390, 197420, 197428, 197431, 197432,
    ];
    itl1.resize(19, 197433);

    let snap = snapshot(VLLM_V011, ServerKind::Vllm);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![ModelSnapshot {
                model: Some("Qwen/Qwen3-8B".to_string()),
                requests_running: Some(10.0),
                requests_waiting: Some(2.0),
                // The fuller of the two engines' caches.
                kv_cache_usage_ratio: Some(0.5703125),
                prompt_tokens_total: Some(1_602_346.0),
                generation_tokens_total: Some(400_000.0),
                preemptions_total: Some(3.0),
                time_to_first_token_seconds: Some(hist(
                    &ttft_bounds,
                    &add(&ttft0, &ttft1),
                    2320,
                    402.1184015274048 + 418.5502052307129
                )),
                inter_token_latency_seconds: Some(hist(
                    &itl_bounds,
                    &add(&itl0, &itl1),
                    200_247 + 197_433,
                    7290.118340671062 + 7244.930981755257
                )),
            }]
        }
    );
}

#[test]
fn sglang() {
    let snap = snapshot(SGLANG, ServerKind::Sglang);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![ModelSnapshot {
                model: Some("meta-llama/Llama-3.1-8B-Instruct".to_string()),
                requests_running: Some(162.0),
                requests_waiting: Some(28.0),
                kv_cache_usage_ratio: Some(0.77),
                prompt_tokens_total: Some(8_128_902.0),
                generation_tokens_total: Some(7_557_572.0),
                preemptions_total: Some(5.0),
                time_to_first_token_seconds: Some(hist(
                    &[
                        0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0,
                        80.0, 100.0, 200.0, 400.0
                    ],
                    &[
                        310, 2210, 5540, 7801, 8902, 9540, 10710, 10950, 10990, 11001, 11005,
                        11008, 11008, 11008, 11008, 11008, 11008, 11008
                    ],
                    11008,
                    5731.086915254593
                )),
                inter_token_latency_seconds: Some(hist(
                    &[
                        0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04,
                        0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0
                    ],
                    &[
                        0, 0, 0, 12, 9301, 402110, 2510044, 5302210, 6890132, 7301104, 7450010,
                        7530102, 7541003, 7544210, 7546100, 7546480, 7546540, 7546555, 7546560,
                        7546564, 7546564, 7546564, 7546564
                    ],
                    7546564,
                    180519.40218377113
                )),
            }]
        }
    );
}

#[test]
fn tgi() {
    // TGI's duration buckets: 0.0001 × 1.5^i, i = 1..=35, computed the way TGI computes them.
    let mut bounds = Vec::new();
    let mut b = 0.0001_f64;
    for _ in 0..35 {
        b *= 1.5;
        bounds.push(b);
    }
    let mut counts = vec![0_u64; 12];
    counts.extend([120, 1650, 2210, 2290, 2299]);
    counts.resize(35, 2301);

    let snap = snapshot(TGI, ServerKind::Tgi);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![ModelSnapshot {
                model: None,
                requests_running: Some(12.0),
                requests_waiting: Some(4.0),
                kv_cache_usage_ratio: None,
                prompt_tokens_total: Some(1_204_587.0),
                generation_tokens_total: Some(589_321.0),
                preemptions_total: None,
                time_to_first_token_seconds: None,
                inter_token_latency_seconds: Some(hist(&bounds, &counts, 2301, 59.91473518500005)),
            }]
        }
    );
}

#[test]
fn llamacpp() {
    let snap = snapshot(LLAMACPP, ServerKind::Llamacpp);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![ModelSnapshot {
                model: None,
                requests_running: Some(2.0),
                requests_waiting: Some(1.0),
                kv_cache_usage_ratio: Some(0.231445),
                prompt_tokens_total: Some(48213.0),
                generation_tokens_total: Some(190_112.0),
                ..ModelSnapshot::default()
            }]
        }
    );
}

#[test]
fn triton_per_model() {
    let ms = |v: f64| v * 1e-3;
    let bounds = [ms(100.0), ms(500.0), ms(2000.0), ms(5000.0)];
    let snap = snapshot(TRITON, ServerKind::Triton);
    assert_eq!(
        snap,
        ServerSnapshot {
            models: vec![
                ModelSnapshot {
                    model: Some("ensemble".to_string()),
                    requests_waiting: Some(1.0),
                    time_to_first_token_seconds: Some(hist(
                        &bounds,
                        &[8, 1210, 1512, 1522],
                        1523,
                        ms(389_204.0)
                    )),
                    ..ModelSnapshot::default()
                },
                ModelSnapshot {
                    model: Some("postprocessing".to_string()),
                    requests_waiting: Some(0.0),
                    ..ModelSnapshot::default()
                },
                ModelSnapshot {
                    model: Some("preprocessing".to_string()),
                    requests_waiting: Some(0.0),
                    ..ModelSnapshot::default()
                },
                ModelSnapshot {
                    model: Some("tensorrt_llm".to_string()),
                    requests_running: Some(3.0),
                    // TensorRT-LLM's own queue, not Triton's (empty) scheduler queue.
                    requests_waiting: Some(2.0),
                    kv_cache_usage_ratio: Some(0.4711538461538461),
                    prompt_tokens_total: Some(512_893.0),
                    generation_tokens_total: Some(161_204.0),
                    preemptions_total: None,
                    time_to_first_token_seconds: Some(hist(
                        &bounds,
                        &[11, 1230, 1515, 1523],
                        1523,
                        ms(371_033.0)
                    )),
                    inter_token_latency_seconds: None,
                },
            ]
        }
    );
}

/// A tiny deterministic generator, so the robustness test is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn parser_never_panics_on_truncated_or_mutated_pages() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let specials = b"{}\",=\\\n #+-.eE:_ \t\r0123456789";
    for (name, text, _) in FIXTURES {
        // Truncated at every char boundary of the first 2 KiB and at a stride beyond.
        let offsets = (0..text.len().min(2048)).chain((2048..text.len()).step_by(397));
        for i in offsets.filter(|i| text.is_char_boundary(*i)) {
            if let Ok(families) = parse(&text[..i]) {
                let _ = normalize(ServerKind::Auto, &families);
            }
        }
        // Random byte mutations, half of them drawn from the characters the grammar cares about.
        for _ in 0..50 {
            let mut bytes = text.as_bytes().to_vec();
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = if rng.below(2) == 0 {
                    specials[rng.below(specials.len())]
                } else {
                    (rng.next() & 0xff) as u8
                };
            }
            let mutated = String::from_utf8_lossy(&bytes);
            if let Ok(families) = parse(&mutated) {
                let _ = normalize(ServerKind::Auto, &families);
            }
        }
        // Pure noise.
        for _ in 0..50 {
            let len = rng.below(512);
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
        assert!(parse(text).is_ok(), "{name}");
    }
}

fn encode(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encodes");
    String::from_utf8(buf).expect("utf-8")
}

/// Polls the registry until `done` holds for its text, for at most 15 s.
async fn wait_for(registry: &Registry, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = encode(registry);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn config(name: &str, url: &str, kind: ServerKind) -> ServerConfig {
    ServerConfig {
        name: name.to_string(),
        url: url.to_string(),
        kind,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
    }
}

fn client() -> reqwest::Client {
    // The runtime installs the process-wide provider at start; a test does it itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_live_server_then_reports_it_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(|| async { VLLM_V011 }))
        .route(
            "/broken",
            axum::routing::get(|| async { "<html>not metrics</html>" }),
        )
        .route(
            "/error",
            axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "") }),
        );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });

    let registry = Registry::new();
    let metrics = ServerMetrics::register(&registry).expect("registers");
    let base = format!("http://{addr}");
    let mut handle = server::start(
        vec![
            (
                config("gpu0", "simulator", ServerKind::Auto),
                format!("{base}/metrics"),
            ),
            (
                config("broken", "x", ServerKind::Sglang),
                format!("{base}/broken"),
            ),
            (
                config("erroring", "x", ServerKind::Auto),
                format!("{base}/error"),
            ),
        ],
        metrics.clone(),
        client(),
    );
    assert_eq!(handle.servers(), vec!["broken", "erroring", "gpu0"]);

    let text = wait_for(&registry, "the first scrape", |t| {
        t.contains("inferprobe_server_up{kind=\"vllm\",server=\"gpu0\"} 1")
            && t.contains(
                "inferprobe_server_scrape_duration_seconds{kind=\"sglang\",server=\"broken\"}",
            )
            && t.contains(
                "inferprobe_server_scrape_duration_seconds{kind=\"unknown\",server=\"erroring\"}",
            )
    })
    .await;
    for line in [
        "inferprobe_server_requests_running{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 10",
        "inferprobe_server_requests_waiting{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 2",
        "inferprobe_server_kv_cache_usage_ratio{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 0.5703125",
        "inferprobe_server_prompt_tokens_total{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 1602346",
        "inferprobe_server_generation_tokens_total{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 400000",
        "inferprobe_server_preemptions_total{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 3",
        "inferprobe_server_time_to_first_token_seconds_bucket{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\",le=\"0.1\"} 471",
        "inferprobe_server_time_to_first_token_seconds_count{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\"} 2320",
        "inferprobe_server_inter_token_latency_seconds_bucket{kind=\"vllm\",model=\"Qwen/Qwen3-8B\",server=\"gpu0\",le=\"+Inf\"} 397680",
        // An unparsable page and an HTTP error are failed scrapes.
        "inferprobe_server_up{kind=\"sglang\",server=\"broken\"} 0",
        "inferprobe_server_up{kind=\"unknown\",server=\"erroring\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }

    assert!(handle.remove("broken"));
    assert!(!handle.remove("broken"));
    let text = encode(&registry);
    assert!(!text.contains("server=\"broken\""), "{text}");

    stop_tx.send(()).expect("server still running");
    server
        .await
        .expect("server task")
        .expect("server shut down cleanly");
    let text = wait_for(&registry, "the server to be reported down", |t| {
        t.contains("inferprobe_server_up{kind=\"vllm\",server=\"gpu0\"} 0")
    })
    .await;
    // Down: the data series go, `up` and the scrape duration stay.
    assert!(
        !text.contains("inferprobe_server_requests_running"),
        "{text}"
    );
    assert!(
        text.contains("inferprobe_server_scrape_duration_seconds{kind=\"vllm\",server=\"gpu0\"}")
    );

    handle.shutdown();
    assert_eq!(encode(&registry), "");
    assert!(metrics.servers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_declared_down_with_its_configured_kind() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let registry = Registry::new();
    let metrics = ServerMetrics::register(&registry).expect("registers");
    let handle = server::start(
        vec![(
            config("cpu-box", "x", ServerKind::Llamacpp),
            format!("http://127.0.0.1:{port}/metrics"),
        )],
        metrics,
        client(),
    );
    // Declared before any scrape ends.
    assert!(
        encode(&registry).contains("inferprobe_server_up{kind=\"llamacpp\",server=\"cpu-box\"} 0")
    );
    wait_for(&registry, "a failed scrape", |t| {
        t.contains(
            "inferprobe_server_scrape_duration_seconds{kind=\"llamacpp\",server=\"cpu-box\"}",
        )
    })
    .await;
    drop(handle);
    assert_eq!(encode(&registry), "");
}

#[test]
fn promtool_accepts_the_server_families() {
    let registry = Registry::new();
    let metrics = ServerMetrics::register(&registry).expect("registers");
    for (name, text, kind) in FIXTURES {
        metrics.set_pending(name, kind.as_str());
        metrics.record_success(
            name,
            kind.as_str(),
            Duration::from_millis(12),
            normalize(ServerKind::Auto, &parse(text).expect("parses")),
        );
    }
    metrics.set_pending("not-yet", "unknown");
    metrics.set_pending("down", "vllm");
    metrics.record_failure("down", "vllm", Duration::from_secs(5));
    let text = encode(&registry);
    assert!(text.contains("# TYPE inferprobe_server_inter_token_latency_seconds histogram"));

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: promtool not runnable ({e}); install it with `apt-get install prometheus`");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{report}\n{text}");
    assert_eq!(report.trim(), "", "promtool is not silent:\n{report}");
}
