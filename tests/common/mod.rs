//! Shared helpers for integration tests: an in-process simulator, config from text, /metrics
//! parsing. Everything binds 127.0.0.1 port 0.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use inferprobe::config::simulator::SimulatorConfig;
use inferprobe::sim::{self, SimHandle};

/// Starts a simulator from a YAML `simulator:` block body.
pub async fn sim(yaml: &str) -> SimHandle {
    let cfg: SimulatorConfig = serde_saphyr::from_str(yaml).expect("simulator yaml");
    sim::start(cfg).await.expect("simulator starts")
}

/// Loads config text (with `{SIM}` replaced by `sim_root`), panicking with every error.
pub fn load(yaml: &str) -> inferprobe::config::Loaded {
    match inferprobe::config::load_str(yaml, "test.yml") {
        Ok(l) => l,
        Err(e) => panic!("config does not load:\n{e}"),
    }
}

/// GETs a URL on loopback and returns (status, body).
pub async fn get(url: &str) -> (u16, String) {
    inferprobe::probe::engine::install_crypto_provider();
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// The value of the first sample whose line starts with `prefix` (name plus labels as printed).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        for (k, v) in labels {
            if !rest.contains(&format!("{k}=\"{v}\"")) {
                return None;
            }
        }
        value.parse().ok()
    })
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs promtool on text, returning its combined output; `None` when promtool is missing and
/// this is not CI (where its absence fails the test).
pub fn promtool_check_metrics(text: &str) -> Option<(bool, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("promtool is required in CI: {e}");
            }
            eprintln!("note: promtool not found ({e}); skipping the promtool check");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool runs");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), s))
}

/// Compares what `render` makes of each fixture with the fixture's `.expected` file, reporting
/// every mismatch at once. With `INFERPROBE_BLESS` set it rewrites the `.expected` files instead
/// (review the diff).
pub fn assert_golden(files: &[std::path::PathBuf], render: impl Fn(&std::path::Path) -> String) {
    let bless = std::env::var_os("INFERPROBE_BLESS").is_some();
    let mut failures = Vec::new();
    for path in files {
        let expected_path = std::path::PathBuf::from(format!("{}.expected", path.display()));
        let actual = render(path);
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Frames `body` split into `size`-byte chunks (the whole body when `None`), each stamped one
/// millisecond after the previous one, with `dialect`'s framer.
pub fn frame_events(
    dialect: inferprobe::probe::dialect::DialectKind,
    body: &[u8],
    size: Option<usize>,
) -> Vec<Result<inferprobe::probe::framing::StampedEvent, inferprobe::probe::framing::FrameError>> {
    use futures_util::{stream, FutureExt, StreamExt};
    let base = Instant::now();
    let parts: Vec<&[u8]> = match size {
        Some(n) => body.chunks(n).collect(),
        None => vec![body],
    };
    let chunks: Vec<Result<(Instant, bytes::Bytes), String>> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok((
                base + Duration::from_millis(i as u64),
                bytes::Bytes::copy_from_slice(p),
            ))
        })
        .collect();
    inferprobe::probe::framing::frame(dialect.framing(), stream::iter(chunks))
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap_or_default()
}

/// Frames (see [`frame_events`]) and decodes with a fresh decoder; the first framing or decoding
/// error ends the run. Stamps never go backwards.
pub fn decode(
    dialect: inferprobe::probe::dialect::DialectKind,
    body: &[u8],
    size: Option<usize>,
) -> Result<Vec<inferprobe::probe::dialect::Signal>, String> {
    let mut decoder = dialect.decoder();
    let mut out = Vec::new();
    let mut last_at = None;
    for ev in frame_events(dialect, body, size) {
        let ev = ev.map_err(|e| e.to_string())?;
        assert!(last_at <= Some(ev.at), "stamps go backwards");
        last_at = Some(ev.at);
        decoder
            .decode(&ev.as_event(), &mut out)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A loopback server that answers every request with one recorded response (after reading the
/// whole request) and keeps each request's head (request line and headers). `base_url` is its
/// root, `http://127.0.0.1:PORT`. Stops when dropped.
pub struct Replay {
    pub base_url: String,
    pub heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`Replay`] answering `HTTP/1.1 {status}` (e.g. `200 OK`) with `body`.
pub async fn replay(status: &str, content_type: &str, body: String) -> Replay {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    let response: std::sync::Arc<[u8]> = [head.as_bytes(), body.as_bytes()].concat().into();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let response = response.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            if let Ok(mut h) = seen.lock() {
                                h.push(text[..end].to_string());
                            }
                            break;
                        }
                    }
                }
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Replay {
        base_url: format!("http://{addr}"),
        heads,
        task,
    }
}

/// GitHub's anchors for the Markdown headings of `text`: lower case, punctuation other than `-`
/// and `_` dropped, spaces as `-`, a repeated heading suffixed `-1`, `-2`, ...; headings inside
/// fenced code blocks do not count.
pub fn heading_anchors(text: &str) -> std::collections::BTreeSet<String> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = std::collections::BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base: String = line
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// An ad-hoc target of `dialect` at `base_url` (the simulator), built by the config's resolver as
/// `probe --url` builds one: short timeouts, a 1 MiB response cap, and for Bedrock a bearer API
/// key so tests never depend on the machine's AWS credentials (signing has its own tests).
pub fn sim_target(
    dialect: inferprobe::probe::dialect::DialectKind,
    base_url: String,
) -> inferprobe::config::Target {
    let (mut t, _) = inferprobe::commands::adhoc_target(&inferprobe::commands::AdHoc {
        url: Some(&base_url),
        dialect: Some(dialect.as_str()),
        model: Some("sim-llm"),
        prompt: None,
        max_tokens: 64,
        api_key_env: None,
        headers: &[],
        no_usage: false,
        timeouts: inferprobe::config::Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(10),
        },
    })
    .expect("a valid ad-hoc target");
    t.name = format!("t-{}", dialect.as_str());
    if dialect.default_auth() == inferprobe::probe::dialect::AuthStyle::AwsSigv4 {
        t.api_key = Some(inferprobe::config::Secret::new(
            "bedrock-api-key-for-tests".to_string(),
        ));
    }
    t.max_response_bytes = 1 << 20;
    t
}

/// Runs the Python `script` with `job` as JSON on its standard input and returns the JSON it
/// prints; `None` (after a message) when python3 with botocore is not available.
pub fn botocore(script: &str, job: &serde_json::Value) -> Option<serde_json::Value> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let probe = Command::new("python3")
        .args(["-c", "import botocore"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: python3 with botocore is not available");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("write job");
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "botocore script failed");
    Some(serde_json::from_slice(&out.stdout).expect("JSON from botocore"))
}
