//! The `inferprobe` binary as a user runs it: `--version`, `check-config`, `probe` against
//! `inferprobe sim`, `run` on the demo config, and secrets kept out of every output.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{get, sample};

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

/// A child process whose stderr is collected line by line; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn inferprobe");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` and returns the first `127.0.0.1:PORT` in it.
    fn wait_for_address(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    if let Some(i) = line.find("127.0.0.1:") {
                        let addr: String = line[i..]
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                            .collect();
                        return addr;
                    }
                }
            }
        }
        panic!(
            "no log line with {needle:?} and an address; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// Stops the process and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run inferprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn probe_json(args: &[&str]) -> (i32, serde_json::Value) {
    let (code, out, err) = run(args, &[]);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("probe --json output is not JSON ({e}):\n{out}\n{err}"));
    (code, v)
}

#[test]
fn version_names_version_and_revision() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("inferprobe {} (revision ", inferprobe::VERSION)),
        "{out}"
    );
}

#[test]
fn check_config_exit_codes() {
    let (code, out, err) = run(
        &["check-config", "config/example.yml"],
        &[
            ("OPENAI_API_KEY", "x"),
            ("ANTHROPIC_API_KEY", "y"),
            ("AZURE_OPENAI_API_KEY", "z"),
            ("GEMINI_API_KEY", "g"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("OTLP_AUTHORIZATION", "Bearer t"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK"), "{out}");
    let (code, out, _) = run(&["check-config", "config/demo.yml"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("OK"), "{out}");
    let (code, _, err) = run(&["check-config", "config/testdata/does-not-exist.yml"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("does-not-exist.yml"), "{err}");
}

#[test]
fn ad_hoc_probe_against_the_sim_binary_in_every_dialect() {
    let mut sim = Proc::spawn(
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--ttft",
            "300ms",
            "--itl",
            "20ms",
            "--output-tokens",
            "50",
        ],
        &[],
    );
    let addr = sim.wait_for_address("127.0.0.1:");
    for (dialect, base) in [
        ("openai-chat", format!("http://{addr}/v1")),
        ("openai-completions", format!("http://{addr}/v1")),
        ("anthropic-messages", format!("http://{addr}")),
    ] {
        let (code, v) = probe_json(&[
            "probe",
            "--url",
            &base,
            "--dialect",
            dialect,
            "--model",
            "sim-llm",
            "--json",
        ]);
        assert_eq!(code, 0, "{dialect}: {v}");
        assert_eq!(v["result"], "success", "{dialect}: {v}");
        assert_eq!(v["output_tokens"], 50, "{dialect}");
        // Generous bounds: the exact accuracy is measured by the benchmark, not by tests.
        let ttft = v["time_to_first_token_seconds"].as_f64().unwrap();
        assert!((0.29..0.6).contains(&ttft), "{dialect}: ttft {ttft}");
        let p50 = v["inter_token_latency_seconds"]["p50"].as_f64().unwrap();
        assert!((0.015..0.06).contains(&p50), "{dialect}: itl p50 {p50}");
        for key in [
            "time_to_first_byte_seconds",
            "time_to_first_event_seconds",
            "time_per_output_token_seconds",
            "request_duration_seconds",
            "input_tokens",
        ] {
            assert!(v[key].is_number(), "{dialect}: {key} missing in {v}");
        }
        assert!(v.get("cost_usd").is_some());
    }
    // The table form is readable and exits 0 too.
    let (code, out, _) = run(
        &[
            "probe",
            "--url",
            &format!("http://{addr}/v1"),
            "--dialect",
            "openai-chat",
            "--model",
            "m",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("result               success"), "{out}");
    assert!(out.contains("inter-token latency  p50"), "{out}");
    drop(sim);
}

#[test]
fn each_sim_fault_gives_the_probe_result_it_is_named_after() {
    for kind in [
        "rate_limited",
        "http_4xx",
        "http_5xx",
        "api_error",
        "stream_aborted",
        "timeout_idle",
        "malformed_stream",
        "empty_response",
    ] {
        let fault = format!("{kind}=1");
        let mut sim = Proc::spawn(
            &[
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--ttft",
                "20ms",
                "--itl",
                "5ms",
                "--output-tokens",
                "10",
                "--fault",
                &fault,
            ],
            &[],
        );
        let addr = sim.wait_for_address("127.0.0.1:");
        let (code, v) = probe_json(&[
            "probe",
            "--url",
            &format!("http://{addr}/v1"),
            "--dialect",
            "openai-chat",
            "--model",
            "m",
            "--idle-timeout",
            "500ms",
            "--json",
        ]);
        assert_eq!(v["result"], kind, "{v}");
        assert_eq!(code, 1, "a failed probe exits 1");
        drop(sim);
    }
    // slow_headers is not a failure: it shows in TTFB.
    let mut sim = Proc::spawn(
        &[
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--ttft",
            "10ms",
            "--fault",
            "slow_headers=1",
            "--slow-headers-delay",
            "400ms",
        ],
        &[],
    );
    let addr = sim.wait_for_address("127.0.0.1:");
    let (code, v) = probe_json(&[
        "probe",
        "--url",
        &format!("http://{addr}/v1"),
        "--dialect",
        "openai-chat",
        "--model",
        "m",
        "--json",
    ]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["time_to_first_byte_seconds"].as_f64().unwrap() >= 0.4,
        "{v}"
    );
}

#[test]
fn probe_usage_errors_exit_2_with_the_flag_named() {
    let (code, _, err) = run(
        &[
            "probe",
            "--url",
            "http://127.0.0.1:1/v1",
            "--dialect",
            "grpc",
            "--model",
            "m",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--dialect: unknown dialect \"grpc\", expected one of: openai-chat, "),
        "{err}"
    );
    let (code, _, err) = run(
        &[
            "probe",
            "--url",
            "http://127.0.0.1:1/v1",
            "--dialect",
            "openai-chat",
            "--model",
            "m",
            "--api-key-env",
            "INFERPROBE_TEST_UNSET_VAR",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("INFERPROBE_TEST_UNSET_VAR"), "{err}");
    let (code, out, _) = run(
        &[
            "probe",
            "--url",
            "http://127.0.0.1:1/v1",
            "--dialect",
            "openai-chat",
            "--model",
            "m",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(out.contains("\"connect_error\""), "{out}");
}

/// Runs an ad-hoc `probe` with `args` after `--dialect openai-chat --model m` and returns
/// (exit code, stdout, stderr).
fn adhoc(url: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "probe",
        "--url",
        url,
        "--dialect",
        "openai-chat",
        "--model",
        "m",
    ];
    args.extend_from_slice(extra);
    run(&args, &[])
}

#[test]
fn ad_hoc_url_credentials_are_rejected_like_in_a_config() {
    const PASSWORD: &str = "pa55-w0rd-adhoc";
    let url = format!("http://user:{PASSWORD}@127.0.0.1:1/v1");
    let (code, out, err) = adhoc(&url, &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(
        err.trim(),
        "error: --url: must not contain credentials; use --api-key-env NAME"
    );
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    // The config rule, same message but for the hint.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!("targets:\n  - {{name: t, dialect: openai-chat, base_url: \"{url}\", model: m}}\n"),
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("targets[0].base_url (line 2): must not contain credentials; use `api_key` with {env: NAME}"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    // A URL that does not even parse is not echoed with its password either.
    let (code, _, err) = adhoc(&format!("http://user:{PASSWORD}@[::1/v1"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--url: \"http://<redacted>@[::1/v1\" is not a URL"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn ad_hoc_flag_errors_name_the_flag_and_are_all_reported() {
    let (code, _, err) = adhoc(
        "http://127.0.0.1:1/v1#frag",
        &[
            "--max-tokens",
            "0",
            "--connect-timeout",
            "0s",
            "--header",
            "Bad Name: x",
            "--header",
            "no-colon-value",
            "--first-token-timeout",
            "9s",
            "--total-timeout",
            "3s",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("no-colon-value"), "{err}");
    for line in [
        "--url: \"http://127.0.0.1:1/v1#frag\" must not carry a #fragment",
        "--max-tokens: must be at least 1",
        "--connect-timeout: must be greater than 0",
        "--header Bad Name: \"Bad Name\" is not a valid HTTP header name",
        "--first-token-timeout/--total-timeout: first_token (9s) is longer than total (3s)",
        "--header (#2): expected \"NAME: VALUE\" (the value is not shown: it may be a credential)",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    let (code, _, err) = adhoc("ftp://127.0.0.1/v1", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--url: \"ftp://127.0.0.1/v1\" is not an http:// or https:// URL"),
        "{err}"
    );
    let (code, _, err) = adhoc("http://127.0.0.1:1/v1?a=1&a=2", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--url: query parameter \"a\" is given twice"),
        "{err}"
    );
}

/// A server that records each request's path and query and answers with a short valid stream
/// (OpenAI `chat.completion.chunk` events, `[DONE]`).
async fn recorder() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::Uri;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(uri.to_string());
            let chunk = |delta: &str, finish: &str| {
                format!(
                    "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
                )
            };
            let body = format!(
                "{}{}data: [DONE]\n\n",
                chunk(r#"{"role":"assistant","content":"one two"}"#, "null"),
                chunk("{}", r#""stop""#)
            );
            ([("content-type", "text/event-stream")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_url_query_is_sent_as_query_parameters_after_the_dialect_path() {
    let (addr, seen) = recorder().await;
    let url = format!("http://{addr}/openai/deployments/d1?api-version=2024-10-21&x=a%20b");
    let (code, out, err) = tokio::task::spawn_blocking(move || adhoc(&url, &["--json"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["/openai/deployments/d1/chat/completions?api-version=2024-10-21&x=a+b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_config_serves_ttft_within_15_seconds() {
    let mut daemon = Proc::spawn(
        &[
            "run",
            "--config.file",
            "config/demo.yml",
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        &[],
    );
    let addr = daemon.wait_for_address("Listening");
    let url = format!("http://{addr}/metrics");
    common::eventually(Duration::from_secs(15), "a TTFT observation", || {
        let url = url.clone();
        async move {
            let (_, t) = get(&url).await;
            let n: f64 = t
                .lines()
                .filter(|l| l.starts_with("inferprobe_time_to_first_token_seconds_count"))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                .sum();
            (n > 0.0).then_some(())
        }
    })
    .await;
    let (_, text) = get(&url).await;
    if let Some((ok, out)) = common::promtool_check_metrics(&text) {
        assert!(
            ok && out.trim().is_empty(),
            "promtool check metrics on the demo:\n{out}"
        );
    }
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_appear_in_logs_metrics_pages_or_probe_output() {
    const KEY: &str = "sk-live-SECRET-7f3a9c1e";
    const WRONG: &str = "sk-wrong-SECRET-0b2d4f6a";
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("anthropic.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let cfg = format!(
        r#"
global: {{schedule: {{every: 1s, jitter: 0}}}}
simulator: {{ttft: 10ms, itl: 2ms, output_tokens: 4, api_key: "{KEY}"}}
targets:
  - {{name: good, dialect: openai-chat, base_url: simulator, model: sim-llm, api_key: {{env: TEST_GOOD_KEY}}}}
  - {{name: anth, dialect: anthropic-messages, base_url: simulator, model: sim-llm, api_key: {{file: "{}"}}}}
  - {{name: bad, dialect: openai-chat, base_url: simulator, model: sim-llm, api_key: {{env: TEST_WRONG_KEY}}}}
"#,
        key_file.display()
    );
    let cfg_path = dir.path().join("c.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let cfg_arg = cfg_path.to_str().unwrap();
    let envs = [("TEST_GOOD_KEY", KEY), ("TEST_WRONG_KEY", WRONG)];

    let mut daemon = Proc::spawn(
        &[
            "run",
            "--config.file",
            cfg_arg,
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.level",
            "debug",
        ],
        &envs,
    );
    let addr = daemon.wait_for_address("Listening");
    let url = format!("http://{addr}/metrics");
    let metrics = common::eventually(Duration::from_secs(10), "good, anth and bad probed", || {
        let url = url.clone();
        async move {
            let (_, t) = get(&url).await;
            let good = sample(
                &t,
                "inferprobe_probes_total",
                &[("target", "good"), ("result", "success")],
            )
            .unwrap_or(0.0);
            let anth = sample(
                &t,
                "inferprobe_probes_total",
                &[("target", "anth"), ("result", "success")],
            )
            .unwrap_or(0.0);
            let bad = sample(
                &t,
                "inferprobe_probes_total",
                &[("target", "bad"), ("result", "http_4xx")],
            )
            .unwrap_or(0.0);
            (good >= 1.0 && anth >= 1.0 && bad >= 1.0).then_some(t)
        }
    })
    .await;
    let (_, page) = get(&format!("http://{addr}/")).await;
    let (_, probe_page) = get(&format!("http://{addr}/probe?target=bad")).await;
    let logs = daemon.stop();
    let (_, probe_out, probe_err) = run(
        &[
            "probe",
            "--config.file",
            cfg_arg,
            "--target",
            "bad",
            "--json",
        ],
        &envs,
    );
    let (_, table_out, table_err) = run(
        &[
            "probe",
            "--config.file",
            cfg_arg,
            "--target",
            "good",
            "--log.level",
            "debug",
        ],
        &envs,
    );
    let (_, check_out, check_err) = run(&["check-config", cfg_arg], &envs);
    assert!(
        logs.contains("Probe failed."),
        "the wrong key's failures are logged:\n{logs}"
    );
    assert!(probe_out.contains("http_4xx"), "{probe_out}");
    for (what, text) in [
        ("logs", &logs),
        ("metrics", &metrics),
        ("status page", &page),
        ("/probe", &probe_page),
        ("probe --json", &probe_out),
        ("probe stderr", &probe_err),
        ("probe table", &table_out),
        ("probe table stderr", &table_err),
        ("check-config", &check_out),
        ("check-config stderr", &check_err),
    ] {
        for secret in [KEY, WRONG, "SECRET"] {
            assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
        }
    }
}
