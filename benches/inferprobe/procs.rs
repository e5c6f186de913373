//! Child processes (the `inferprobe` binary as simulator or daemon), a tiny blocking HTTP GET,
//! `/proc` readings and process CPU time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The release binary cargo built next to this benchmark.
pub const INFERPROBE: &str = env!("CARGO_BIN_EXE_inferprobe");

/// A child process, killed when dropped.
pub struct Spawned {
    child: Child,
    /// The address its start-up log line announced.
    pub addr: String,
}

impl Spawned {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with stderr captured and waits (at most 20 s) for a logfmt line carrying
/// `key=ADDR`. The rest of stderr is drained in the background so the child never blocks on a
/// full pipe.
pub fn spawn_announcing(mut cmd: Command, key: &str) -> anyhow::Result<Spawned> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    let stderr = child.stderr.take().context("child stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    let needle = format!(" {key}=");
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(v) = logfmt_value(&line, &needle) {
                    sent = tx.send(v).is_ok();
                }
            }
        }
    });
    // Wrapped at once so that the child is killed on the error path too.
    let mut spawned = Spawned {
        child,
        addr: String::new(),
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => {
            spawned.addr = addr;
            Ok(spawned)
        }
        Err(_) => bail!("{cmd:?} did not log `{key}=` within 20 s"),
    }
}

fn logfmt_value(line: &str, needle: &str) -> Option<String> {
    let at = line.find(needle)? + needle.len();
    let v: String = line[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(v.trim_matches('"').to_string())
}

/// Starts `inferprobe sim` on a free loopback port with these extra flags.
pub fn spawn_sim(flags: &[&str]) -> anyhow::Result<Spawned> {
    let mut cmd = Command::new(INFERPROBE);
    cmd.args(["--log.level", "info"])
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(flags);
    spawn_announcing(cmd, "listen")
}

/// `GET http://ADDR/PATH` over HTTP/1.1 with `Connection: close`: (status, body).
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status from {addr}{path}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `GET /-/ready` until it answers 200, for at most `limit`.
pub fn wait_ready(addr: &str, limit: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(addr, "/-/ready") {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!("{addr}/-/ready did not answer 200 within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Memory and thread figures of a process, from `/proc/PID/status` (kB).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStatus {
    /// Resident set size.
    pub rss_kb: u64,
    /// Resident anonymous memory (heap, stacks).
    pub anon_kb: u64,
    /// Resident file-backed memory (the mapped binary and shared libraries).
    pub file_kb: u64,
    /// Peak resident set size.
    pub hwm_kb: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/PID/status`.
pub fn proc_status(pid: u32) -> anyhow::Result<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStatus {
        rss_kb: field("VmRSS"),
        anon_kb: field("RssAnon"),
        file_kb: field("RssFile"),
        hwm_kb: field("VmHWM"),
        threads: field("Threads"),
    })
}

/// User and system CPU time consumed so far by this process, all threads.
pub fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// A one-line description of this machine: CPU model, cores, kernel and rustc.
pub fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    vec![
        ("CPU".to_string(), model),
        ("cores available".to_string(), cores),
        ("kernel".to_string(), kernel),
        ("rustc".to_string(), rustc),
        ("load average at start (1/5/15 min)".to_string(), load),
    ]
}
