//! Secrets never leave, whatever an upstream echoes: one test per output channel (logs, the
//! status page, `/probe`, `probe` table and JSON, CLI errors, panics) against a hostile local
//! server that echoes the request's credentials back.
//!
//! The hostile server's shapes follow OpenAI's published API reference: the error object
//! `{"error": {"message", "type", "param", "code"}}` of a non-2xx answer, and
//! `chat.completion.chunk` events (with an `error` object in place of a chunk for a failure
//! inside a 200 stream, as OpenAI-compatible servers such as vLLM send it). A real OpenAI 401
//! (as quoted in user reports, 2023 to 2026) is `{"error": {"message": "Incorrect API key
//! provided: sk-ab***…wxyz. …", "type": "invalid_request_error", "param": null, "code":
//! "invalid_api_key"}}`: OpenAI masks all but the first five and last four characters. This
//! server echoes the key whole, as a careless proxy or gateway does.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::{eventually, get, sample};
use inferprobe::config::{self, Environment, Loaded};
use inferprobe::logging::{self, LogFormat};
use inferprobe::redact::{self, Redactor};

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

/// The API key, configured as `{env: REDACTION_TEST_KEY}`.
const KEY: &str = "sk-echo-SECRET-1a2b3c4d5e6f";
/// A secret custom header value.
const HDR: &str = "hdr-SECRET-9f8e7d6c5b";
const KEY_VAR: &str = "REDACTION_TEST_KEY";
/// Every failing mode of the hostile server and the result it gives.
const FAILING: &[(&str, &str)] = &[
    ("e401", "http_4xx"),
    ("e500", "http_5xx"),
    ("sse", "api_error"),
];

/// Fails if any secret (or a piece of one long enough to hold the marker) is in `text`.
fn assert_clean(what: &str, text: &str) {
    for secret in [KEY, HDR, "SECRET"] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}:\n{text}");
    }
}

/// What the server saw, in the order a careless error handler dumps it.
fn echo_of(headers: &HeaderMap, body: &str) -> String {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let all: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    format!(
        "authorization: {}; x-upstream-token: {}; headers: {}; body: {body}",
        h("authorization"),
        h("x-upstream-token"),
        all.join(", ")
    )
}

async fn hostile(UrlPath(mode): UrlPath<String>, headers: HeaderMap, body: String) -> Response {
    let echo = echo_of(&headers, &body);
    match mode.as_str() {
        "e401" => (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            serde_json::json!({"error": {
                "message": format!("Incorrect API key provided: {echo}"),
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"
            }})
            .to_string(),
        )
            .into_response(),
        "e500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("upstream failure for request {echo}\n"),
        )
            .into_response(),
        "sse" => {
            let event = serde_json::json!({"error": {
                "message": format!("rejected credentials {echo}"),
                "type": "server_error", "param": null, "code": "upstream"
            }});
            (
                StatusCode::OK,
                [("content-type", "text/event-stream")],
                format!("data: {event}\n\n"),
            )
                .into_response()
        }
        // A 200 stream whose model and answer echo the credentials.
        _ => {
            let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
                serde_json::json!({
                    "id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0,
                    "model": headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or(""),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                })
            };
            let first = chunk(
                serde_json::json!({"role": "assistant", "content": format!("you sent {echo}")}),
                serde_json::Value::Null,
            );
            let last = chunk(serde_json::json!({}), serde_json::json!("stop"));
            (
                StatusCode::OK,
                [("content-type", "text/event-stream")],
                format!("data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n"),
            )
                .into_response()
        }
    }
}

/// Starts the hostile server on 127.0.0.1:0 and returns its address.
async fn start_hostile() -> String {
    let app = Router::new().route("/{mode}/v1/chat/completions", post(hostile));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

/// A config with one target per hostile mode, each sending the key and the secret header.
fn config_text(addr: &str) -> String {
    let mut s = String::from(
        "global: {schedule: {every: 1s, jitter: 0}, timeouts: {first_token: 5s, total: 5s}}\ntargets:\n",
    );
    for mode in ["e401", "e500", "sse", "ok"] {
        s.push_str(&format!(
            "  - {{name: {mode}, dialect: openai-chat, base_url: \"http://{addr}/{mode}/v1\", model: m, \
             api_key: {{env: {KEY_VAR}}}, headers: {{X-Upstream-Token: \"{HDR}\"}}}}\n"
        ));
    }
    s
}

fn load(addr: &str) -> Loaded {
    let var = |name: &str| (name == KEY_VAR).then(|| KEY.to_string());
    let env = Environment {
        base_dir: Path::new("."),
        var: &var,
        secrets_required: true,
    };
    config::load_str_with(&config_text(addr), "redaction.yml", &env)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Writes the config to a temporary directory for the binary.
fn config_file(addr: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redaction.yml");
    std::fs::write(&path, config_text(addr)).unwrap();
    let p = path.to_str().unwrap().to_string();
    (dir, p)
}

/// The raw, unredacted echo a probe of `mode` gets back (what the redactor is up against).
async fn raw_echo(addr: &str, mode: &str) -> String {
    inferprobe::probe::engine::install_crypto_provider();
    reqwest::Client::new()
        .post(format!("http://{addr}/{mode}/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-upstream-token", HDR)
        .body("{}")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn logs_at_every_level_in_both_formats_never_carry_the_key() {
    let addr = start_hostile().await;
    for format in [LogFormat::Logfmt, LogFormat::Json] {
        let capture = Capture::default();
        let sub = logging::subscriber(format, "trace", capture.clone()).unwrap();
        let _guard = tracing::subscriber::set_default(sub);
        // The daemon installs the config's secrets; its probe failures are logged (current-
        // thread runtime: every task logs through this thread's subscriber).
        let running = inferprobe::commands::start(load(&addr), None, "127.0.0.1:0")
            .await
            .unwrap();
        let metrics = format!("http://{}/metrics", running.addr);
        eventually(
            Duration::from_secs(15),
            "every failing target probed",
            || {
                let url = metrics.clone();
                async move {
                    let (_, t) = get(&url).await;
                    FAILING
                        .iter()
                        .all(|(m, r)| {
                            sample(
                                &t,
                                "inferprobe_probes_total",
                                &[("target", m), ("result", r)],
                            )
                            .unwrap_or(0.0)
                                >= 1.0
                        })
                        .then_some(())
                }
            },
        )
        .await;
        running.stop().await;
        // The raw echoes, logged at every level as a careless call site would.
        for (mode, _) in FAILING {
            let raw = raw_echo(&addr, mode).await;
            assert!(raw.contains(KEY) && raw.contains(HDR), "{raw}");
            tracing::trace!(body = %raw, "upstream said {raw}");
            tracing::debug!(body = %raw, "upstream said {raw}");
            tracing::info!(body = %raw, "upstream said {raw}");
            tracing::warn!(body = ?raw, "upstream said {raw}");
            tracing::error!(body = %raw, "upstream said {raw}");
        }
        let logs = capture.text();
        assert!(logs.contains("Probe failed."), "{format:?}:\n{logs}");
        for level in ["trace", "debug", "info", "warn", "error"] {
            let needle = match format {
                LogFormat::Logfmt => format!("level={level}"),
                LogFormat::Json => format!("\"level\":\"{}\"", level.to_uppercase()),
            };
            assert!(logs.contains(&needle), "no {needle} line:\n{logs}");
        }
        // The echoes are there, with the secrets cut out (15 raw echoes at least).
        assert!(logs.matches("<redacted>").count() >= 30, "{logs}");
        assert!(logs.contains("x-upstream-token"), "{logs}");
        assert_clean(&format!("{format:?} logs"), &logs);
    }
}

/// Starts the daemon on the hostile targets and waits until each has a result.
async fn daemon_with_results(addr: &str) -> inferprobe::commands::Running {
    let running = inferprobe::commands::start(load(addr), None, "127.0.0.1:0")
        .await
        .unwrap();
    let metrics = format!("http://{}/metrics", running.addr);
    eventually(Duration::from_secs(15), "every target probed", || {
        let url = metrics.clone();
        async move {
            let (_, t) = get(&url).await;
            FAILING
                .iter()
                .chain([("ok", "success")].iter())
                .all(|(m, r)| {
                    sample(
                        &t,
                        "inferprobe_probes_total",
                        &[("target", m), ("result", r)],
                    )
                    .unwrap_or(0.0)
                        >= 1.0
                })
                .then_some(())
        }
    })
    .await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_upstream_errors_without_the_key() {
    let addr = start_hostile().await;
    let running = daemon_with_results(&addr).await;
    let (status, page) = get(&format!("http://{}/", running.addr)).await;
    running.stop().await;
    assert_eq!(status, 200);
    for (mode, result) in FAILING {
        assert!(page.contains(mode) && page.contains(result), "{page}");
    }
    // The echoed errors are shown, secrets replaced (escaped as HTML).
    assert!(page.matches("&lt;redacted&gt;").count() >= 3, "{page}");
    assert!(page.contains("Incorrect API key provided"), "{page}");
    assert_clean("status page", &page);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_output_never_carries_the_key() {
    let addr = start_hostile().await;
    let running = daemon_with_results(&addr).await;
    for (mode, result) in FAILING.iter().chain([("ok", "success")].iter()) {
        let (status, body) = get(&format!("http://{}/probe?target={mode}", running.addr)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            sample(
                &body,
                "inferprobe_probes_total",
                &[("target", mode), ("result", result)]
            ),
            Some(1.0),
            "{body}"
        );
        assert_clean(&format!("/probe?target={mode}"), &body);
    }
    running.stop().await;
}

fn run_bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env(KEY_VAR, KEY)
        .output()
        .expect("run inferprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_command_table_and_json_never_carry_the_key() {
    let addr = start_hostile().await;
    let (_dir, cfg) = config_file(&addr);
    // The binary blocks; the hostile server needs this runtime's workers meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (mode, result) in FAILING.iter().chain([("ok", "success")].iter()) {
            let table = run_bin(&["probe", "--config.file", &cfg, "--target", mode]);
            let json = run_bin(&["probe", "--config.file", &cfg, "--target", mode, "--json"]);
            out.push((*mode, *result, table, json));
        }
        out
    })
    .await
    .unwrap();
    for (mode, result, (tcode, tout, terr), (jcode, jout, jerr)) in out {
        let expected_code = if result == "success" { 0 } else { 1 };
        assert_eq!(tcode, expected_code, "{mode}: {tout}\n{terr}");
        assert_eq!(jcode, expected_code, "{mode}: {jout}\n{jerr}");
        assert!(tout.contains(result), "{mode}: {tout}");
        assert!(tout.contains("<redacted>"), "{mode}: {tout}");
        let v: serde_json::Value = serde_json::from_str(&jout).unwrap();
        assert_eq!(v["result"], result, "{jout}");
        if result == "success" {
            // The answer and the reported model echo the credentials.
            assert_eq!(v["response_model"], "Bearer <redacted>", "{jout}");
            let answer = v["answer"].as_str().unwrap();
            assert!(
                answer.starts_with(
                    "you sent authorization: Bearer <redacted>; x-upstream-token: <redacted>;"
                ),
                "{answer}"
            );
        } else {
            let error = v["error"].as_str().unwrap();
            assert!(error.contains("<redacted>"), "{mode}: {error}");
        }
        for (what, text) in [
            ("table", &tout),
            ("table stderr", &terr),
            ("json", &jout),
            ("json stderr", &jerr),
        ] {
            assert_clean(&format!("probe --target {mode} ({what})"), text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_never_carry_the_key() {
    let addr = start_hostile().await;
    let (_dir, cfg) = config_file(&addr);
    // A key pasted where a target name belongs is echoed by the error, then redacted.
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_bin(&["probe", "--config.file", &cfg, "--target", KEY])
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("--target=<redacted>: no such target; configured: e401, e500, sse, ok"),
        "{err}"
    );
    assert_clean("probe error", &format!("{out}{err}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_logs_in_both_formats_never_carry_the_key() {
    let addr = start_hostile().await;
    let (_dir, cfg) = config_file(&addr);
    for format in ["logfmt", "json"] {
        let cfg = cfg.clone();
        let logs = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(BIN)
                .args([
                    "run",
                    "--config.file",
                    &cfg,
                    "--web.listen-address",
                    "127.0.0.1:0",
                    "--log.level",
                    "trace",
                    "--log.format",
                    format,
                ])
                .env(KEY_VAR, KEY)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            // Every failing target logged at least once.
            while std::time::Instant::now() < deadline {
                if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                    seen.push(l);
                }
                let failed = |t: &str| {
                    seen.iter().any(|l| {
                        l.contains("Probe failed.")
                            && (l.contains(&format!("target={t} "))
                                || l.contains(&format!("\"target\":\"{t}\"")))
                    })
                };
                if FAILING.iter().all(|(m, _)| failed(m)) {
                    break;
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
            seen.join("\n")
        })
        .await
        .unwrap();
        assert!(
            logs.matches("Probe failed.").count() >= 3,
            "{format}:\n{logs}"
        );
        assert!(logs.contains("<redacted>"), "{format}:\n{logs}");
        assert_clean(&format!("{format} daemon logs"), &logs);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_replaces_the_secrets_matched() {
    const OLD: &str = "sk-rotated-out-0a1b2c3d4e";
    const NEW: &str = "sk-rotated-in-5f6a7b8c9d";
    let addr = start_hostile().await;
    // The shared key and header stay in both configs, so tests running beside this one keep
    // theirs redacted.
    let with = |extra: &str| {
        let var = |name: &str| match name {
            KEY_VAR => Some(KEY.to_string()),
            "REDACTION_EXTRA" => Some(extra.to_string()),
            _ => None,
        };
        let text = format!(
            "{}  - {{name: extra, dialect: openai-chat, base_url: \"http://{addr}/e401/v1\", model: m, api_key: {{env: REDACTION_EXTRA}}}}\n",
            config_text(&addr)
        );
        let env = Environment {
            base_dir: Path::new("."),
            var: &var,
            secrets_required: true,
        };
        config::load_str_with(&text, "r.yml", &env).unwrap_or_else(|e| panic!("{e}"))
    };
    let running = inferprobe::commands::start(with(OLD), None, "127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(redact::redact(OLD), "<redacted>");
    assert_eq!(redact::redact(NEW), NEW);
    running.daemon.swap(with(NEW)).await.unwrap();
    assert_eq!(redact::redact(OLD), OLD);
    assert_eq!(redact::redact(NEW), "<redacted>");
    assert_eq!(redact::redact(KEY), "<redacted>");
    running.stop().await;
}

/// Set in the child process of [`panic_messages_are_redacted`].
const PANIC_CHILD: &str = "INFERPROBE_REDACTION_PANIC_CHILD";

#[test]
fn panic_messages_are_redacted() {
    if std::env::var_os(PANIC_CHILD).is_some() {
        // The child: panic with an echo of the key, through the installed hook.
        redact::install(Redactor::new([KEY, HDR]));
        redact::install_panic_hook();
        let echo = format!("upstream said: Bearer {KEY} ({HDR})");
        panic!("{echo}");
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "panic_messages_are_redacted",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PANIC_CHILD, "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "the child must fail:\n{all}");
    assert!(
        err.contains("panicked at tests/redaction.rs:")
            && err.contains("upstream said: Bearer <redacted> (<redacted>)"),
        "{all}"
    );
    assert_clean("panic output", &all);
}
