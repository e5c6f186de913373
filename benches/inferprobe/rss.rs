//! Section 4: resident memory of an idle daemon.
//!
//! `inferprobe run` is started on a generated config whose targets probe every hour. Target names
//! are chosen so that none has its first probe in the first minutes (the first probe of a target
//! falls at a stable, name-derived offset within its interval), so the daemon is idle while it is
//! measured. The targets point at a simulator process anyway, should one fire.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use inferprobe::schedule::first_delay;

use crate::procs::{http_get, proc_status, spawn_announcing, wait_ready, ProcStatus, INFERPROBE};

/// The probe interval of every generated target.
const EVERY: Duration = Duration::from_secs(3600);
/// No target's first probe comes sooner than this after start.
const QUIET: Duration = Duration::from_secs(300);
/// How long the daemon idles before the second reading.
pub const IDLE: Duration = Duration::from_secs(5);

/// One configuration's readings.
pub struct Row {
    /// Targets in the config.
    pub targets: usize,
    /// Extra environment of the daemon, for the table.
    pub env: &'static str,
    /// When `/-/ready` first answered 200.
    pub ready: ProcStatus,
    /// After `IDLE` more seconds.
    pub idle: ProcStatus,
    /// After one `/metrics` scrape.
    pub scraped: ProcStatus,
    /// Samples on the `/metrics` page.
    pub series: usize,
}

/// `n` target names whose first probe is at least `QUIET` away.
fn quiet_names(n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("endpoint-{i:03}"))
        .filter(|name| first_delay(name, EVERY) >= QUIET)
        .take(n)
        .collect()
}

/// A config with `n` idle targets pointing at `sim_addr`.
pub fn config(n: usize, sim_addr: &str) -> String {
    let mut s = String::from("global:\n  schedule:\n    every: 1h\n    jitter: 0\ntargets:\n");
    for name in quiet_names(n) {
        let _ = write!(
            s,
            "  - name: {name}\n    dialect: openai-chat\n    base_url: http://{sim_addr}/v1\n    model: sim-llm\n"
        );
    }
    s
}

/// Starts the daemon for each target count (and environment) and reads its memory.
pub fn run(sim_addr: &str, cases: &[(usize, &'static str)]) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut rows = Vec::new();
    for &(n, env) in cases {
        let path = dir.path().join(format!("targets-{n}.yml"));
        std::fs::write(&path, config(n, sim_addr))?;
        let mut cmd = Command::new(INFERPROBE);
        cmd.arg("run")
            .arg("--config.file")
            .arg(&path)
            .args(["--web.listen-address", "127.0.0.1:0"]);
        if let Some((k, v)) = env.split_once('=') {
            cmd.env(k, v);
        }
        let daemon = spawn_announcing(cmd, "address")?;
        wait_ready(&daemon.addr, Duration::from_secs(20))?;
        let ready = proc_status(daemon.pid())?;
        std::thread::sleep(IDLE);
        let idle = proc_status(daemon.pid())?;
        let (status, body) = http_get(&daemon.addr, "/metrics")?;
        ensure!(status == 200, "/metrics answered {status}");
        let series = body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        let probes_fired = body
            .lines()
            .filter(|l| l.starts_with("inferprobe_probes_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
        ensure!(
            probes_fired == 0.0,
            "{probes_fired} probes ran; the daemon was not idle"
        );
        let scraped = proc_status(daemon.pid())?;
        rows.push(Row {
            targets: n,
            env,
            ready,
            idle,
            scraped,
            series,
        });
    }
    Ok(rows)
}

/// Resident memory (kB) of this process before and after building `n` HTTP clients the way the
/// daemon builds one per target, all kept alive.
pub async fn clients_cost(n: usize) -> anyhow::Result<(u64, u64)> {
    let timeouts = crate::accuracy::bench_target(
        inferprobe::probe::dialect::DialectKind::OpenaiChat,
        "http://127.0.0.1:9/v1",
    )
    .timeouts;
    let before = proc_status(std::process::id())?.rss_kb;
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(inferprobe::probe::engine::client_for(&timeouts)?);
    }
    let after = proc_status(std::process::id())?.rss_kb;
    drop(clients);
    Ok((before, after))
}
