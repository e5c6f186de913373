//! Sending the gate's probes: candidate and reference interleaved (candidate, reference,
//! candidate, ...), so that drift of network or provider during the run hits both alike; a set
//! number of workers; a spending cap checked before each probe.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::baseline::ProbeSample;
use crate::config::{Scenario, Target};
use crate::probe::engine::{self, ProbeClient};

/// One endpoint the gate probes.
#[derive(Clone, Debug)]
pub struct Side {
    /// The target.
    pub target: Target,
    /// Its resolved base URL.
    pub base_url: String,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The candidate.
    pub candidate: Side,
    /// The live reference, probed interleaved with the candidate.
    pub reference: Option<Side>,
    /// Scenarios sent in turn (the same one to both sides of a pair); never empty unless a
    /// journey is run instead.
    pub scenarios: Vec<Scenario>,
    /// A journey run as each probe instead of the scenarios.
    pub journey: Option<std::sync::Arc<crate::config::Journey>>,
    /// Probes per side.
    pub probes: usize,
    /// No probe starts after this much time.
    pub duration: Option<Duration>,
    /// Probes in flight at once, both sides together.
    pub concurrency: usize,
    /// Stop before a probe that could take the summed cost past this, USD.
    pub max_cost_usd: Option<f64>,
}

/// What the probes gave.
#[derive(Clone, Debug, Default)]
pub struct Probed {
    /// The candidate's probes, in the order they were sent.
    pub candidate: Vec<ProbeSample>,
    /// The reference's probes.
    pub reference: Vec<ProbeSample>,
    /// USD spent over both sides (priced probes only).
    pub spent_usd: f64,
    /// Why the run stopped before its plan, if it did.
    pub stopped: Option<String>,
    /// How long the probes took.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Spend {
    spent: f64,
    reserved: f64,
    most: f64,
}

struct Shared {
    plan: Plan,
    next: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
    spend: Mutex<Spend>,
    results: Mutex<Vec<(usize, bool, ProbeSample)>>,
    stopped: Mutex<Option<String>>,
    started: Instant,
}

/// Progress on stderr, redrawn in place only when stderr is a terminal.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    tty: bool,
}

impl Progress {
    /// A progress line on stderr when it is a terminal; nothing otherwise.
    pub fn stderr() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// No progress output.
    pub fn quiet() -> Progress {
        Progress { tty: false }
    }
}

/// Sends the plan's probes and collects them. Never fails: a failed probe is data.
pub async fn run(plan: Plan, client: ProbeClient, progress: Progress) -> Probed {
    let sides = if plan.reference.is_some() { 2 } else { 1 };
    let total = plan.probes * sides;
    let workers = plan.concurrency.clamp(1, total.max(1));
    let shared = Arc::new(Shared {
        plan,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        spend: Mutex::new(Spend::default()),
        results: Mutex::new(Vec::new()),
        stopped: Mutex::new(None),
        started: Instant::now(),
    });
    let ticker = progress.tty.then(|| {
        let s = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                draw(&s, total);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    });
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let s = Arc::clone(&shared);
        let c = client.clone();
        tasks.push(tokio::spawn(
            async move { worker(s, c, total, sides).await },
        ));
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(t) = ticker {
        t.abort();
        draw(&shared, total);
        let _ = writeln!(std::io::stderr());
    }
    let mut results = std::mem::take(&mut *lock(&shared.results));
    results.sort_by_key(|(i, _, _)| *i);
    let mut out = Probed {
        elapsed: shared.started.elapsed(),
        spent_usd: lock(&shared.spend).spent,
        stopped: lock(&shared.stopped).clone(),
        ..Probed::default()
    };
    for (_, is_ref, p) in results {
        if is_ref {
            out.reference.push(p);
        } else {
            out.candidate.push(p);
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn draw(s: &Shared, total: usize) {
    let spent = lock(&s.spend).spent;
    let done = s.done.load(Ordering::Relaxed);
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(0).min(width);
    let cost = if s.plan.max_cost_usd.is_some() || spent > 0.0 {
        format!(", ${spent:.4} spent")
    } else {
        String::new()
    };
    let line = format!(
        "\r\x1b[2Kgate [{}{}] {done}/{total} probes, {} failed{cost}, {:.0}s",
        "#".repeat(filled),
        "-".repeat(width - filled),
        s.failed.load(Ordering::Relaxed),
        s.started.elapsed().as_secs_f64()
    );
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

async fn worker(s: Arc<Shared>, client: ProbeClient, total: usize, sides: usize) {
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(d) = s.plan.duration {
            if s.started.elapsed() >= d {
                return;
            }
        }
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let pair = i / sides;
        let is_ref = sides == 2 && i % 2 == 1;
        let side = match (&s.plan.reference, is_ref) {
            (Some(r), true) => r,
            _ => &s.plan.candidate,
        };
        let estimate = match reserve(&s) {
            Some(e) => e,
            None => return,
        };
        // Probes alone on the endpoint: a self-hosted target is charged the whole GPU rate (an
        // upper bound).
        let self_hosted = |o: &crate::probe::Outcome| {
            side.target.self_hosted.as_ref().map(|sh| {
                crate::cost::self_hosted_request_cost(
                    crate::cost::self_hosted_hourly_usd(sh, None),
                    o.e2e.unwrap_or(o.elapsed),
                    None,
                )
            })
        };
        let (cost, sample) = match &s.plan.journey {
            Some(j) => {
                let o = crate::journey::run_journey(&client, &side.target, &side.base_url, j).await;
                let cost = match side.target.self_hosted {
                    Some(_) => Some(
                        o.steps
                            .iter()
                            .filter_map(|st| self_hosted(&st.outcome))
                            .sum(),
                    ),
                    None => o.cost_usd(),
                };
                (cost, ProbeSample::from_journey(&o, cost))
            }
            None => {
                let scenario = &s.plan.scenarios[pair % s.plan.scenarios.len()];
                let outcome =
                    engine::run_probe(&client, &side.target, &side.base_url, scenario).await;
                let cost = self_hosted(&outcome).or(outcome.cost_usd);
                (cost, ProbeSample::from_outcome(&outcome, cost))
            }
        };
        {
            let mut sp = lock(&s.spend);
            sp.reserved -= estimate;
            if let Some(c) = cost.filter(|c| crate::probe::trace::is_countable_cost(*c)) {
                sp.spent += c;
                sp.most = sp.most.max(c);
            }
        }
        if !sample.is_success() {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        s.done.fetch_add(1, Ordering::Relaxed);
        lock(&s.results).push((i, is_ref, sample));
    }
}

/// Books the expected cost of the next probe (the dearest one so far) against the cap; `None`
/// (and the run stops) when it could take the total past the cap.
fn reserve(s: &Shared) -> Option<f64> {
    let mut sp = lock(&s.spend);
    let Some(max) = s.plan.max_cost_usd else {
        return Some(0.0);
    };
    let est = sp.most;
    if sp.spent + sp.reserved + est > max {
        s.stop.store(true, Ordering::Relaxed);
        let mut stopped = lock(&s.stopped);
        if stopped.is_none() {
            *stopped = Some(format!(
                "spending cap: the next probe could take the cost past --max-cost-usd {max} \
                 (${:.6} spent)",
                sp.spent + sp.reserved
            ));
        }
        return None;
    }
    sp.reserved += est;
    Some(est)
}
