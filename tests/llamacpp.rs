//! Against a real llama.cpp `llama-server` (not the simulator): chat and completions probes,
//! output tokens and timings compared with the server's own accounting, a daemon probing it at
//! about the server's keep-alive timeout, and the server collector compared with the server's
//! own `/metrics`.
//!
//! `scripts/llama-server.sh` builds the server from the llama.cpp sources that the pinned
//! `llama-cpp-python` sdist vendors and writes a tiny random-weight model
//! (`scripts/tiny_gguf.py`); it prints `INFERPROBE_LLAMA_SERVER` and `INFERPROBE_LLAMA_MODEL`.
//! Without them the tests look in the script's cache; when nothing is there they are skipped
//! with a message, except under `CI=true`, where a missing server fails them.
//! `INFERPROBE_LLAMA_SOAK_SECS` shortens the daemon test (default 180 s) for local runs.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, get, sample};
use inferprobe::commands;
use inferprobe::config::BaseUrl;
use inferprobe::probe::engine;
use inferprobe::probe::trace::TokenSource;
use inferprobe::probe::Outcome;

/// Tokens each probe of the daemon test generates: `ignore_eos` makes the server generate
/// exactly `max_tokens`.
const MAX_TOKENS: u64 = 48;

/// Tokens of the single probes whose timings are compared with the server's: enough that the
/// generation window (`predicted_ms`) is long against the client's overhead, so a TTFT or E2E
/// stamped at the wrong event shows. Prompt plus output stay inside a slot's context (2048).
const LONG_MAX_TOKENS: u64 = 1024;

/// How much a client-side duration may exceed the server's own measure of the same span.
///
/// The server's `timings` cover the model's work only: `prompt_ms` runs from the start of prompt
/// processing to the logits of the first token, `predicted_ms` from there to the last token.
/// inferprobe's clock starts before the request is written and stops when the last event is
/// read, so its TTFT (E2E) is never below `prompt_ms` (`prompt_ms + predicted_ms`): those bounds
/// are exact. The difference is what lies outside the server's window: connection set-up, HTTP
/// parsing, chat template and tokenization, hand-off to a slot, writing and reading events on
/// loopback (and through the test's relay). None of it grows with the number of tokens; it
/// measured 5-15 ms on a 2-core machine with a load average of 13. 250 ms leaves room for a
/// thread that waits long for a busy core, and is still below half the generation window of
/// [`LONG_MAX_TOKENS`] (about 450 ms there), so a TTFT stamped at a later event shows.
const OVERHEAD_TOLERANCE: Duration = Duration::from_millis(250);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The cache root of `scripts/llama-server.sh`.
fn cache_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("INFERPROBE_LLAMA_CACHE") {
        return Some(PathBuf::from(d));
    }
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("inferprobe"))
}

/// The llama-cpp-python version the build script pins (one source of truth).
fn pinned_version() -> &'static str {
    include_str!("../scripts/llama-server.sh")
        .lines()
        .find_map(|l| l.strip_prefix("LLAMA_CPP_PYTHON_VERSION="))
        .expect("scripts/llama-server.sh pins LLAMA_CPP_PYTHON_VERSION")
        .trim()
}

/// The server binary and model, from the environment or the build script's cache. `None` (after
/// a message) when they are absent; under `CI=true` their absence fails the test.
fn locate() -> Option<(PathBuf, PathBuf)> {
    let root = cache_root();
    let from_env = |var: &str, cached: Option<PathBuf>| match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => cached,
    };
    let bin = from_env(
        "INFERPROBE_LLAMA_SERVER",
        root.as_ref().map(|r| {
            r.join(format!("llama-server-{}", pinned_version()))
                .join("bin/llama-server")
        }),
    );
    let model = from_env(
        "INFERPROBE_LLAMA_MODEL",
        root.as_ref().map(|r| r.join("tiny-llama.gguf")),
    );
    match (bin, model) {
        (Some(b), Some(m)) if b.is_file() && m.is_file() => Some((b, m)),
        (b, m) => {
            let msg = format!(
                "no llama-server to test against (binary {:?}, model {:?}); build it with \
                 `eval \"$(scripts/llama-server.sh)\"` (a build of about 11 CPU-minutes once, then cached)",
                b, m
            );
            if ci() {
                panic!("CI=true: {msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

/// A running `llama-server`, killed on drop.
struct Llama {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Llama {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The last lines of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The server's own `/metrics` page.
    async fn metrics(&self) -> String {
        let (status, text) = get(&self.url("/metrics")).await;
        assert_eq!(status, 200, "llama-server /metrics: {text}");
        text
    }
}

/// A free loopback port: bound, read, released. The server binds it a moment later (older
/// llama-server releases do not accept `--port 0`).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Starts `llama-server` on loopback with `--metrics` and waits until `/health` says the model
/// is loaded. `None` when the test is skipped.
async fn start_llama() -> Option<Llama> {
    let (bin, model) = locate()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("llama-server.log");
    let port = free_port();
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(&bin)
        .arg("--model")
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--metrics", "--ctx-size", "4096", "--parallel", "2"])
        // One thread each: the model is tiny, and CI machines are small and shared.
        .args([
            "--threads",
            "1",
            "--threads-batch",
            "1",
            "--threads-http",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut llama = Llama {
        child,
        port,
        log,
        _dir: dir,
    };
    let started = Instant::now();
    engine::install_crypto_provider();
    let client = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = llama.child.try_wait() {
            panic!(
                "llama-server exited ({status}) before it was ready:\n{}",
                llama.log_tail()
            );
        }
        // 503 while the model loads, 200 once it can serve.
        if let Ok(r) = client.get(llama.url("/health")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("llama-server not healthy after 60 s:\n{}", llama.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "llama-server {} ready on port {} in {:?}",
        bin.display(),
        llama.port,
        started.elapsed()
    );
    Some(llama)
}

/// A loopback TCP relay in front of the server that keeps a copy of every response byte, so a
/// test can read the `timings` object of the very response inferprobe measured.
async fn recording_relay(upstream: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let port = listener.local_addr().expect("relay addr").port();
    let record = Arc::new(Mutex::new(Vec::new()));
    let rec = record.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    rec.lock().unwrap().extend_from_slice(&buf[..n]);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
                up.abort();
            });
        }
    });
    (port, record)
}

/// The last `timings` object in recorded SSE bytes (llama.cpp puts it on the final event).
fn last_timings(recorded: &[u8]) -> Option<serde_json::Value> {
    String::from_utf8_lossy(recorded)
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .find_map(|v| v.get("timings").cloned())
}

fn ms_field(timings: &serde_json::Value, key: &str) -> Duration {
    let ms = timings
        .get(key)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("timings.{key} missing: {timings}"));
    Duration::from_secs_f64(ms / 1e3)
}

fn server_counter(page: &str, name: &str) -> f64 {
    sample(page, name, &[]).unwrap_or_else(|| panic!("llama-server /metrics has no {name}"))
}

fn config(base_url: &str, metrics_url: Option<&str>, max_tokens: u64) -> String {
    let servers = metrics_url
        .map(|u| {
            format!(
                "servers:\n  - {{name: llama, url: \"{u}\", kind: llamacpp, interval: 1s, timeout: 900ms}}\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"
global:
  schedule: {{every: 5s}}
  timeouts: {{connect: 5s, first_token: 30s, idle: 30s, total: 60s}}
scenarios:
  count:
    prompt: "Count to eight."
    max_tokens: {max_tokens}
    extra_body: {{ignore_eos: true}}
targets:
  - {{name: chat, dialect: openai-chat, base_url: "{base_url}/v1", model: tiny, scenarios: [count]}}
  - {{name: completions, dialect: openai-completions, base_url: "{base_url}/v1", model: tiny, scenarios: [count]}}
  - {{name: chat-3s, dialect: openai-chat, base_url: "{base_url}/v1", model: tiny, scenarios: [count], schedule: {{every: 3s, jitter: 0.2}}}}
{servers}"#
    )
}

async fn probe_once(loaded: &inferprobe::config::Loaded, target: &str) -> Outcome {
    let t = loaded
        .targets
        .iter()
        .find(|t| t.name == target)
        .expect("target in config");
    let BaseUrl::Url(base) = &t.base_url else {
        panic!("target {target} has no URL");
    };
    let client = engine::client_for(&t.timeouts).expect("client");
    engine::run_probe(&client, t, base, &t.scenarios[0].0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_agree_with_the_servers_own_accounting() {
    let Some(llama) = start_llama().await else {
        return;
    };
    let (relay_port, record) = recording_relay(llama.port).await;
    let loaded = common::load(&config(
        &format!("http://127.0.0.1:{relay_port}"),
        None,
        LONG_MAX_TOKENS,
    ));

    for target in ["chat", "completions"] {
        let before = llama.metrics().await;
        record.lock().unwrap().clear();
        let o = probe_once(&loaded, target).await;
        assert!(
            o.result.is_success(),
            "{target}: {} ({:?})\nserver log:\n{}",
            o.result.as_str(),
            o.error,
            llama.log_tail()
        );
        assert_eq!(o.token_source, TokenSource::Usage, "{target}");
        assert_eq!(
            o.output_tokens, LONG_MAX_TOKENS,
            "{target}: ignore_eos + max_tokens"
        );
        if target == "completions" {
            // Raw text: every token of this ASCII-only vocabulary is an event of its own. (Chat
            // content goes through the server's message parser, which may hold back whitespace.)
            assert_eq!(o.output_events, LONG_MAX_TOKENS, "{target}: output events");
        } else {
            assert!(
                (1..=LONG_MAX_TOKENS).contains(&o.output_events),
                "{target}: {o:?}"
            );
        }

        // Output tokens equal the server's own counter's delta; input tokens equal its
        // processed plus cached prompt tokens. The server adds prompt counts to /metrics once its
        // slots are idle, so the page is read until it has caught up (or 10 s passed).
        let counted = |page: &str| {
            let delta = |name: &str| server_counter(page, name) - server_counter(&before, name);
            (
                delta("llamacpp:tokens_predicted_total"),
                delta("llamacpp:prompt_tokens_total")
                    + delta("llamacpp:prompt_tokens_cached_total"),
            )
        };
        let expected = (
            o.output_tokens as f64,
            o.input_tokens.map(|n| n as f64).unwrap_or(f64::NAN),
        );
        let started = Instant::now();
        let mut server = counted(&llama.metrics().await);
        while server != expected && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            server = counted(&llama.metrics().await);
        }
        assert_eq!(
            server.0, expected.0,
            "{target}: output tokens vs the llamacpp:tokens_predicted_total delta"
        );
        assert_eq!(
            server.1, expected.1,
            "{target}: input tokens vs the llamacpp:prompt_tokens(_cached)_total deltas"
        );

        // Timings: the final event's `timings` of this very response.
        let timings = last_timings(&record.lock().unwrap())
            .unwrap_or_else(|| panic!("{target}: no timings in the response"));
        assert_eq!(
            timings.get("predicted_n").and_then(|v| v.as_u64()),
            Some(o.output_tokens),
            "{target}: {timings}"
        );
        let prompt_ms = ms_field(&timings, "prompt_ms");
        let predicted_ms = ms_field(&timings, "predicted_ms");
        let ttft = o.ttft.expect("TTFT of a successful probe");
        let e2e = o.e2e.expect("E2E of a successful probe");
        let report = format!(
            "{target}: client TTFT {ttft:?}, E2E {e2e:?}; server prompt_ms {prompt_ms:?}, \
             predicted_ms {predicted_ms:?}"
        );
        eprintln!("{report}");
        assert!(
            ttft >= prompt_ms,
            "TTFT below the server's prompt time: {report}"
        );
        assert!(
            ttft - prompt_ms <= OVERHEAD_TOLERANCE,
            "TTFT exceeds prompt_ms by more than {OVERHEAD_TOLERANCE:?}: {report}"
        );
        assert!(
            e2e >= prompt_ms + predicted_ms,
            "E2E below the server's prompt + generation time: {report}"
        );
        assert!(
            e2e - (prompt_ms + predicted_ms) <= OVERHEAD_TOLERANCE,
            "E2E exceeds prompt_ms + predicted_ms by more than {OVERHEAD_TOLERANCE:?}: {report}"
        );
        // TTFT is the first token, not a later one: between the client's first and last token
        // lies the server's whole generation window, less the first token's delivery delay
        // (bounded by the overhead above, far below half the window).
        assert!(
            e2e - ttft >= predicted_ms / 2,
            "the client saw less than half of the server's generation window between TTFT and \
             E2E: {report}"
        );
    }
}

/// Sums a counter over every series whose labels include `labels`.
fn sum_of(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_probing_every_5s_records_no_failure_and_collector_matches() {
    let Some(llama) = start_llama().await else {
        return;
    };
    let soak = std::env::var("INFERPROBE_LLAMA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(180));
    let base = format!("http://127.0.0.1:{}", llama.port);
    let loaded = common::load(&config(&base, Some(&llama.url("/metrics")), MAX_TOKENS));
    let running = commands::start(loaded, None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let ours = format!("http://{}/metrics", running.addr);

    // Every 5 s (± the default 10 % jitter) is about cpp-httplib's keep-alive timeout (5 s): a
    // pooled connection may be closed by the server just as the next probe reuses it, which must
    // not be a failure. The idle gaps fall on both sides of the engine's idle limit, so both
    // reused and new connections are exercised.
    tokio::time::sleep(soak).await;

    // The server collector's figures equal the server's own page. Probes keep running, so wait
    // for a scrape that follows the last probe (a quiet moment between two ticks).
    let (page, text) = eventually(
        Duration::from_secs(30),
        "collector matching /metrics",
        || {
            let (ours, llama_url) = (ours.clone(), llama.url("/metrics"));
            async move {
                let (_, page) = get(&llama_url).await;
                let (_, text) = get(&ours).await;
                let s = |name: &str| sample(&text, name, &[("server", "llama")]);
                let l = |name: &str| sample(&page, name, &[]);
                let tokens_out =
                    sum_of(&text, "inferprobe_tokens_total", &[("direction", "output")]);
                let same = s("inferprobe_server_up") == Some(1.0)
                && s("inferprobe_server_generation_tokens_total")
                    == l("llamacpp:tokens_predicted_total")
                && s("inferprobe_server_prompt_tokens_total") == l("llamacpp:prompt_tokens_total")
                && s("inferprobe_server_requests_running") == l("llamacpp:requests_processing")
                && s("inferprobe_server_requests_waiting") == l("llamacpp:requests_deferred")
                && s("inferprobe_server_kv_cache_usage_ratio")
                    == l("llamacpp:kv_cache_usage_ratio")
                // Nobody else uses this server: its generated tokens are our probes' tokens.
                && Some(tokens_out) == l("llamacpp:tokens_predicted_total");
                same.then_some((page, text))
            }
        },
    )
    .await;
    assert!(
        sample(
            &text,
            "inferprobe_server_up",
            &[("server", "llama"), ("kind", "llamacpp")]
        ) == Some(1.0),
        "kind label: {text}"
    );

    let mut failures = Vec::new();
    for (target, every) in [("chat", 5), ("completions", 5), ("chat-3s", 3)] {
        let expected = (soak.as_secs() / every).saturating_sub(3) as f64;
        let ok = sample(
            &text,
            "inferprobe_probes_total",
            &[("target", target), ("result", "success")],
        )
        .unwrap_or(0.0);
        let conn = |c: &str| {
            sum_of(
                &text,
                "inferprobe_probe_connections_total",
                &[("target", target), ("connection", c)],
            )
        };
        let retries = sum_of(
            &text,
            "inferprobe_probe_retries_total",
            &[("target", target)],
        );
        eprintln!(
            "{target}: {ok} successful probes in {soak:?}; connections new {}, reused {}; \
             retries {retries}",
            conn("new"),
            conn("reused")
        );
        assert!(
            ok >= expected,
            "{target}: {ok} successful probes in {soak:?}, expected at least {expected}"
        );
        // Every probe that got a response says which connection it came on. (This llama-server
        // closes the connection after each streamed response although it announces
        // `Keep-Alive: timeout=5`, so in practice they are all new: the client must notice the
        // close in time, which the 3 s target, inside the engine's idle limit, exercises.)
        assert_eq!(
            conn("new") + conn("reused"),
            ok,
            "{target}: connections recorded vs successful probes"
        );
        for r in inferprobe::probe::ProbeResult::ALL {
            if r.is_success() {
                continue;
            }
            let n = sample(
                &text,
                "inferprobe_probes_total",
                &[("target", target), ("result", r.as_str())],
            )
            .unwrap_or(0.0);
            if n > 0.0 {
                failures.push(format!("{target}: {n} × {}", r.as_str()));
            }
        }
    }
    running.stop().await;
    assert!(
        failures.is_empty(),
        "probes of a healthy llama-server failed: {}\nllama-server /metrics:\n{page}\nserver log:\n{}",
        failures.join(", "),
        llama.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_turn_journey_carries_its_context() {
    let Some(llama) = start_llama().await else {
        return;
    };
    let base = format!("http://127.0.0.1:{}", llama.port);
    // No tools: the tiny test model has no chat template for them. The second turn carries the
    // first prompt and the model's real answer, so its prompt is longer by both.
    let loaded = common::load(&format!(
        r#"
global:
  timeouts: {{connect: 5s, first_token: 30s, idle: 30s, total: 60s}}
journeys:
  chat:
    system: You are terse.
    max_tokens: 24
    extra_body: {{ignore_eos: true}}
    think_time: 200ms
    steps:
      - {{name: first, prompt: "Name three colours."}}
      - {{name: second, prompt: "Now name three animals.", checks: {{min_output_tokens: 24}}}}
targets:
  - {{name: chat, dialect: openai-chat, base_url: "{base}/v1", model: tiny, journeys: [chat]}}
"#
    ));
    let t = &loaded.targets[0];
    let journey = t.journeys[0].0.clone();
    let client = engine::client_for(&t.timeouts).expect("client");
    let o = inferprobe::journey::run_journey(&client, t, &format!("{base}/v1"), &journey).await;
    assert_eq!(
        o.result.as_str(),
        "success",
        "{:?} at {:?}",
        o.error,
        o.failed_step
    );
    let first = &o.steps[0].outcome;
    let second = &o.steps[1].outcome;
    assert_eq!(first.output_tokens, 24);
    assert_eq!(second.output_tokens, 24);
    let (i1, i2) = (
        first.input_tokens.expect("usage"),
        second.input_tokens.expect("usage"),
    );
    // The second prompt holds the first prompt, the 24-token answer and the new prompt.
    assert!(i2 >= i1 + 24, "input tokens {i1} then {i2}");
    let e2e = o.model_time().expect("both steps completed");
    assert!(
        o.duration >= e2e + Duration::from_millis(200),
        "duration {:?} covers the steps {e2e:?} and the think time",
        o.duration
    );
}
