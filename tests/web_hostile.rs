//! The web endpoints against hostile clients, on 127.0.0.1 only: a slowloris flood while
//! Prometheus scrapes and the probes go on, SIGTERM with requests in flight (the real binary),
//! and a flood of `/probe` requests against an upstream that counts how many it serves at once.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sample;
use inferprobe::commands;
use inferprobe::webconfig::{WebOptions, WebSecurity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_inferprobe");

/// Slowloris connections held open at once.
const SLOWLORIS_CONNECTIONS: usize = 1000;
/// How long they are held.
const SLOWLORIS_SECONDS: u64 = 30;
/// The latency `/metrics` must keep meanwhile (median of the scrapes; the maximum is reported).
const SCRAPE_LATENCY_LIMIT: Duration = Duration::from_millis(100);

/// The real binary, running until dropped (then killed).
struct Proc {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `inferprobe run` with `config` and `flags`, and waits for its listen address.
    fn start(dir: &Path, config: &str, flags: &[&str]) -> Proc {
        let path = dir.join("config.yml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg(format!("--config.file={}", path.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("inferprobe starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Listening") {
                    if let Some(a) = line
                        .split_whitespace()
                        .find_map(|kv| kv.strip_prefix("address="))
                    {
                        let _ = tx.send(a.trim_matches('"').to_string());
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no listen address; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Proc { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a pid this test spawned.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits up to `limit` for the process to exit; its exit code and how long it took.
    fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            if start.elapsed() > limit {
                panic!(
                    "still running {limit:?} after SIGTERM; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Open file descriptors of the process (Linux).
    fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .ok()
            .map(|d| d.count())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of `inferprobe_probes_total` samples whose result is (not) `success`.
fn probes(text: &str, success: bool) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("inferprobe_probes_total{"))
        .filter(|l| l.contains("result=\"success\"") == success)
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn client() -> reqwest::Client {
    inferprobe::probe::engine::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        // A fresh connection per scrape: the worst case under a connection flood.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Lets this test process hold the attacker's sockets.
fn raise_own_fd_limit(needed: u64) {
    let got = inferprobe::webconfig::raise_fd_limit().unwrap_or(0);
    assert!(
        got >= needed,
        "this test needs {needed} open files; the hard limit allows {got}"
    );
}

/// One slowloris client: sends a request head a line at a time, never finishing it; when the
/// server closes the connection, waits a second and starts again.
async fn slowloris(addr: SocketAddr, until: Instant, closed: Arc<AtomicUsize>) {
    while Instant::now() < until {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut ok = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .is_ok();
        let mut buf = [0u8; 512];
        while ok && Instant::now() < until {
            tokio::select! {
                r = s.read(&mut buf) => ok = matches!(r, Ok(n) if n > 0),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    ok = s.write_all(b"X-Slow: 1\r\n").await.is_ok();
                }
            }
        }
        if !ok {
            closed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_flood_leaves_metrics_fast_and_probes_running() {
    raise_own_fd_limit(SLOWLORIS_CONNECTIONS as u64 + 256);
    let dir = tempfile::tempdir().unwrap();
    let config = "global:\n  schedule: {every: 1s, jitter: 0}\n\
                  simulator: {ttft: 5ms, itl: 1ms, output_tokens: 4}\n\
                  targets:\n  - {name: sim, dialect: openai-chat, base_url: simulator, model: m}\n";
    let daemon = Proc::start(dir.path(), config, &["--web.read-header-timeout=5s"]);
    let http = client();
    let metrics = daemon.url("/metrics");
    let scrape = |http: reqwest::Client, url: String| async move {
        let t0 = Instant::now();
        let r = http.get(&url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        let text = r.text().await.ok()?;
        Some((t0.elapsed(), text))
    };
    // Probing works before the attack.
    let before = common::eventually(Duration::from_secs(15), "a first probe", || {
        let s = scrape(http.clone(), metrics.clone());
        async move {
            let (_, t) = s.await?;
            (probes(&t, true) >= 1.0).then_some(t)
        }
    })
    .await;
    let failed_before = probes(&before, false);
    let ok_before = probes(&before, true);

    let until = Instant::now() + Duration::from_secs(SLOWLORIS_SECONDS);
    let closed = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..SLOWLORIS_CONNECTIONS)
        .map(|_| tokio::spawn(slowloris(daemon.addr, until, closed.clone())))
        .collect();
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut max_fds = 0;
    let mut last = String::new();
    while Instant::now() < until {
        match scrape(http.clone(), metrics.clone()).await {
            Some((took, text)) => {
                latencies.push(took);
                last = text;
            }
            None => failures += 1,
        }
        max_fds = max_fds.max(daemon.open_fds().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for a in attackers {
        a.await.unwrap();
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let p95 = latencies[latencies.len() * 95 / 100];
    let max = *latencies.last().unwrap();
    eprintln!(
        "slowloris: {SLOWLORIS_CONNECTIONS} connections for {SLOWLORIS_SECONDS}s, {} closed by \
         the server; /metrics over {} scrapes: median {median:?}, p95 {p95:?}, max {max:?}; \
         {failures} failed; daemon held at most {max_fds} descriptors",
        closed.load(Ordering::Relaxed),
        latencies.len()
    );
    assert_eq!(failures, 0, "every scrape during the flood is answered");
    assert!(latencies.len() >= 40, "{} scrapes", latencies.len());
    assert!(
        median < SCRAPE_LATENCY_LIMIT,
        "median /metrics latency {median:?} (max {max:?})"
    );
    // The connection cap (512 by default) holds, so descriptors are left for the probes.
    if cfg!(target_os = "linux") {
        assert!(max_fds > 0 && max_fds < 512 + 128, "{max_fds} descriptors");
    }
    // The server closed connections (displaced at the cap, or out of header-read time).
    assert!(closed.load(Ordering::Relaxed) >= SLOWLORIS_CONNECTIONS / 2);
    // Probes went on, every one of them succeeded.
    assert!(
        probes(&last, true) >= ok_before + (SLOWLORIS_SECONDS as f64) / 2.0,
        "{} successful probes before, {} after",
        ok_before,
        probes(&last, true)
    );
    assert_eq!(probes(&last, false), failed_before, "no probe failed");
}

/// A config whose target answers only after a minute: a `/probe` of it stays in flight.
const SLOW_TARGET: &str = "global:\n  schedule: {every: 1h}\n\
    simulator: {ttft: 60s, itl: 1ms, output_tokens: 4}\n\
    targets:\n  - name: slow\n    dialect: openai-chat\n    base_url: simulator\n    model: m\n\
    \x20   timeouts: {first_token: 120s, total: 120s, idle: 120s}\n";

/// Grace given on shutdown in these tests, and the margin allowed beyond it.
const GRACE: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_secs(6);

#[test]
fn sigterm_when_idle_exits_at_once_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Proc::start(dir.path(), SLOW_TARGET, &["--web.shutdown-grace=2s"]);
    d.sigterm();
    let (code, took) = d.wait_exit(GRACE + MARGIN);
    assert_eq!(code, Some(0));
    assert!(took < GRACE + MARGIN, "{took:?}");
}

#[test]
fn sigterm_with_a_half_sent_request_exits_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Proc::start(
        dir.path(),
        SLOW_TARGET,
        // A header-read timeout far beyond the grace: the grace must end it.
        &["--web.shutdown-grace=2s", "--web.read-header-timeout=5m"],
    );
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d.sigterm();
    let (code, took) = d.wait_exit(GRACE + MARGIN);
    assert_eq!(code, Some(0));
    assert!(took < GRACE + MARGIN, "{took:?}");
    drop(s);
}

#[test]
fn sigterm_with_a_long_probe_in_flight_exits_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Proc::start(dir.path(), SLOW_TARGET, &["--web.shutdown-grace=2s"]);
    let url = d.url("/probe?target=slow");
    inferprobe::probe::engine::install_crypto_provider();
    let probe = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let c = reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap();
            c.get(url).send().await.map(|r| r.status())
        })
    });
    // The probe waits for the simulator's first token (a minute away).
    std::thread::sleep(Duration::from_millis(700));
    d.sigterm();
    let (code, took) = d.wait_exit(GRACE + MARGIN);
    assert_eq!(code, Some(0));
    // The request in flight had its grace, and no more.
    assert!(
        took >= GRACE - Duration::from_millis(300) && took < GRACE + MARGIN,
        "{took:?}"
    );
    // The request was cut off rather than answered after a minute.
    assert!(probe.join().unwrap().is_err());
}

/// An OpenAI-style upstream that answers after `delay` and counts requests in flight.
#[derive(Default)]
struct Counting {
    now: AtomicUsize,
    max: AtomicUsize,
    total: AtomicUsize,
}

struct InFlight(Arc<Counting>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn counting_upstream(delay: Duration) -> (SocketAddr, Arc<Counting>) {
    use axum::routing::post;
    let c = Arc::new(Counting::default());
    let state = c.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let c = state.clone();
            async move {
                let n = c.now.fetch_add(1, Ordering::SeqCst) + 1;
                c.max.fetch_max(n, Ordering::SeqCst);
                c.total.fetch_add(1, Ordering::SeqCst);
                // Counted out however the request ends: a probe cut off by its deadline drops
                // the connection, and this future with it.
                let _out = InFlight(c.clone());
                tokio::time::sleep(delay).await;
                // The shape of an OpenAI chat stream (platform.openai.com streaming reference):
                // content deltas, a finish_reason, a usage chunk, then [DONE].
                let body = concat!(
                    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
                    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
                    "data: [DONE]\n\n"
                );
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, c)
}

const PROBE_FLOOD: usize = 1000;
const MAX_CONCURRENT_PROBES: usize = 2;
const FLOOD_TARGETS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_flood_never_exceeds_the_probe_permits() {
    raise_own_fd_limit(2 * PROBE_FLOOD as u64 + 256);
    let (up, counts) = counting_upstream(Duration::from_millis(100)).await;
    let mut yaml = format!(
        "global:\n  max_concurrent_probes: {MAX_CONCURRENT_PROBES}\n  schedule: {{every: 1h}}\ntargets:\n"
    );
    for i in 0..FLOOD_TARGETS {
        yaml.push_str(&format!(
            "  - {{name: t{i}, dialect: openai-chat, base_url: 'http://{up}/v1', model: m}}\n"
        ));
    }
    let web = WebSecurity::new(WebOptions {
        max_connections: 4 * PROBE_FLOOD,
        ..WebOptions::default()
    })
    .unwrap();
    let running = commands::start_with_web(
        common::load(&yaml),
        None,
        "127.0.0.1:0",
        web,
        inferprobe::shard::Shard::single(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // HEAD and POST run nothing; an unknown target's 400 names only what was asked.
    let head = http
        .head(format!("{base}/probe?target=t0"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 405);
    assert_eq!(head.headers()["allow"], "GET");
    let post = http
        .post(format!("{base}/probe?target=t0"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let unknown = http
        .get(format!("{base}/probe?target=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
    let body = unknown.text().await.unwrap();
    assert_eq!(body, "unknown target \"nope\"\n");
    let bad = http
        .get(format!("{base}/probe?target=t0"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(counts.total.load(Ordering::SeqCst), 0, "nothing probed yet");

    // The flood: Prometheus' scrape timeout of 3 s bounds every wait.
    let started = Instant::now();
    let flood: Vec<_> = (0..PROBE_FLOOD)
        .map(|i| {
            let http = http.clone();
            let url = format!("{base}/probe?target=t{}", i % FLOOD_TARGETS);
            tokio::spawn(async move {
                let r = http
                    .get(url)
                    .header("X-Prometheus-Scrape-Timeout-Seconds", "3")
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        (status, body)
                    }
                    Err(e) => (0, e.to_string()),
                }
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut success = 0;
    for f in flood {
        let (status, body) = f.await.unwrap();
        *by_status.entry(status).or_default() += 1;
        if status == 200 && sample(&body, "inferprobe_probe_success", &[]) == Some(1.0) {
            success += 1;
        }
        if status == 503 {
            assert!(body.contains("busy"), "{body}");
        }
    }
    let took = started.elapsed();
    let max = counts.max.load(Ordering::SeqCst);
    let total = counts.total.load(Ordering::SeqCst);
    eprintln!(
        "probe flood: {PROBE_FLOOD} requests in {took:?}: {by_status:?}; {success} probes \
         succeeded; upstream saw {total} requests, at most {max} at once"
    );
    assert!(
        max <= MAX_CONCURRENT_PROBES,
        "{max} upstream requests at once"
    );
    assert!(max >= 1 && success >= 1, "some probes ran");
    // Only answers, no dropped connections: 200 for probes that ran, 503 when no permit came.
    assert_eq!(
        by_status.keys().copied().collect::<Vec<_>>(),
        vec![200, 503],
        "{by_status:?}"
    );
    // 2.5 s of deadline, 100 ms per probe, 2 at once: a few dozen upstream requests, not 1,000.
    assert!(total < 200, "{total} upstream requests");
    running.stop().await;
}

/// The packaged unit leaves the daemon enough descriptors for the default connection cap and
/// its probes.
#[test]
fn systemd_unit_sets_a_file_limit_above_twice_the_connection_cap() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/inferprobe.service"),
    )
    .unwrap();
    let limit: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in the unit")
        .parse()
        .unwrap();
    let cap = inferprobe::webconfig::DEFAULT_MAX_CONNECTIONS as u64;
    assert!(limit >= 2 * cap, "LimitNOFILE={limit}");
    assert_eq!(inferprobe::webconfig::connection_cap(512, Some(limit)), 512);
}
