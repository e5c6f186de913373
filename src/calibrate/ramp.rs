//! Generating the load of one stage: closed-loop workers or an open-loop launch schedule.
//!
//! Every request goes through the probe engine ([`engine::run_probe`]), so a calibration
//! measures exactly what the daemon's probes measure.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::calibrate::stats::Sample;
use crate::config::{Scenario, Target};
use crate::probe::engine;

/// How long a closed-loop worker pauses after a failed request, so that an endpoint that fails
/// at once (connection refused, 429) is not hit in a tight loop.
pub const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How open-loop launches are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// Evenly: one launch every 1/rate seconds.
    #[default]
    Constant,
    /// A Poisson process: exponential gaps with mean 1/rate.
    Poisson,
}

/// Start offsets of an open-loop stage: every launch in `[0, span)` at `rate` per second.
pub fn launch_offsets<R: Rng>(
    rate: f64,
    span: Duration,
    arrival: Arrival,
    rng: &mut R,
) -> Vec<Duration> {
    let span = span.as_secs_f64();
    if !(rate.is_finite() && rate > 0.0) {
        return Vec::new();
    }
    let mut out = Vec::new();
    match arrival {
        Arrival::Constant => {
            // Multiplying (not summing gaps) keeps rounding from drifting over long holds.
            let mut i = 0u64;
            loop {
                let t = i as f64 / rate;
                if t >= span {
                    break;
                }
                out.push(Duration::from_secs_f64(t));
                i += 1;
            }
        }
        Arrival::Poisson => {
            let mut t = 0.0;
            while t < span {
                out.push(Duration::from_secs_f64(t));
                let u: f64 = rng.random();
                t += -(1.0 - u).ln() / rate;
            }
        }
    }
    out
}

/// Live counts of the running stage, for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests finished (any result).
    pub done: AtomicU64,
    /// Requests finished with a result other than `success`, plus refused launches.
    pub errors: AtomicU64,
}

impl Counters {
    /// Zeroes both counts for the next stage.
    pub fn reset(&self) {
        self.done.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
    }
}

/// Everything needed to send one request; cheap to clone into tasks.
#[derive(Clone)]
pub struct Shooter {
    client: engine::ProbeClient,
    target: Arc<Target>,
    base_url: Arc<str>,
    scenarios: Arc<Vec<Scenario>>,
    next: Arc<AtomicUsize>,
    counters: Arc<Counters>,
}

impl Shooter {
    /// A shooter rotating through `scenarios` (never empty).
    pub fn new(
        client: engine::ProbeClient,
        target: Target,
        base_url: String,
        scenarios: Vec<Scenario>,
        counters: Arc<Counters>,
    ) -> Shooter {
        Shooter {
            client,
            target: Arc::new(target),
            base_url: base_url.into(),
            scenarios: Arc::new(scenarios),
            next: Arc::new(AtomicUsize::new(0)),
            counters,
        }
    }

    /// Sends one request with the next scenario in turn; times are relative to `stage_start`.
    async fn fire(&self, stage_start: Instant) -> Sample {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let scenario = &self.scenarios[i % self.scenarios.len()];
        let sent = Instant::now();
        let o = engine::run_probe(&self.client, &self.target, &self.base_url, scenario).await;
        let started = sent.saturating_duration_since(stage_start);
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        if !o.result.is_success() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        Sample {
            started,
            ended: started + o.elapsed,
            result: o.result,
            ttft: o.ttft,
            itl: o.inter_token_latencies,
            e2e: o.e2e,
            output_tokens: o.output_tokens,
        }
    }
}

/// The raw record of one stage.
#[derive(Debug, Default)]
pub struct StageRun {
    /// Every request sent, in completion order.
    pub samples: Vec<Sample>,
    /// Start offsets of launches refused by the in-flight limit.
    pub skipped: Vec<Duration>,
    /// The stage was cut short by a stop request.
    pub interrupted: bool,
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can ask to stop any more.
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Closed loop: `workers` tasks each send requests back to back until `span` has passed.
/// Requests in flight at the end are waited for (each is bounded by the target's timeouts).
pub async fn closed_loop(
    shooter: &Shooter,
    workers: u32,
    span: Duration,
    stop: &watch::Receiver<bool>,
) -> StageRun {
    let start = Instant::now();
    let end = start + span;
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let shooter = shooter.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < end && !stopped(&stop) {
                let s = shooter.fire(start).await;
                let failed = !s.result.is_success();
                out.push(s);
                if failed {
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
            out
        });
    }
    let mut run = StageRun::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => run.samples.extend(v),
            Err(e) => tracing::warn!(error = %e, "A load worker ended abnormally."),
        }
    }
    run.interrupted = stopped(stop);
    run
}

/// Open loop: a request at each offset, whatever is in flight, up to `max_in_flight`; launches
/// beyond it are refused and recorded. In-flight requests are waited for at the end.
pub async fn open_loop(
    shooter: &Shooter,
    offsets: &[Duration],
    max_in_flight: usize,
    stop: &watch::Receiver<bool>,
) -> StageRun {
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut set = JoinSet::new();
    let mut run = StageRun::default();
    for off in offsets {
        tokio::select! {
            _ = tokio::time::sleep_until((start + *off).into()) => {}
            _ = wait_stop(stop.clone()) => break,
        }
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shooter = shooter.clone();
                set.spawn(async move {
                    let s = shooter.fire(start).await;
                    drop(permit);
                    s
                });
            }
            Err(_) => {
                shooter.counters.done.fetch_add(1, Ordering::Relaxed);
                shooter.counters.errors.fetch_add(1, Ordering::Relaxed);
                run.skipped.push(*off);
            }
        }
        // Reap finished requests as we go so memory follows what is in flight.
        while let Some(r) = set.try_join_next() {
            collect(&mut run, r);
        }
    }
    while let Some(r) = set.join_next().await {
        collect(&mut run, r);
    }
    run.interrupted = stopped(stop);
    run
}

fn collect(run: &mut StageRun, r: Result<Sample, tokio::task::JoinError>) {
    match r {
        Ok(s) => run.samples.push(s),
        Err(e) => tracing::warn!(error = %e, "A load request ended abnormally."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn constant_launches_are_evenly_spaced() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let v = launch_offsets(4.0, Duration::from_secs(2), Arrival::Constant, &mut rng);
        let ms: Vec<u128> = v.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 250, 500, 750, 1000, 1250, 1500, 1750]);
        let half = launch_offsets(0.5, Duration::from_secs(5), Arrival::Constant, &mut rng);
        assert_eq!(
            half,
            vec![
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
        // 3 per second for 10 s: exactly 30, the last at 9.667 s, gaps all 1/3 s.
        let v = launch_offsets(3.0, Duration::from_secs(10), Arrival::Constant, &mut rng);
        assert_eq!(v.len(), 30);
        for w in v.windows(2) {
            let gap = (w[1] - w[0]).as_secs_f64();
            assert!((gap - 1.0 / 3.0).abs() < 1e-6, "{gap}");
        }
        assert!(
            launch_offsets(0.0, Duration::from_secs(1), Arrival::Constant, &mut rng).is_empty()
        );
    }

    #[test]
    fn poisson_launches_keep_the_mean_rate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let v = launch_offsets(50.0, Duration::from_secs(100), Arrival::Poisson, &mut rng);
        // 5000 expected; the standard deviation is about 71.
        assert!((4700..=5300).contains(&v.len()), "{}", v.len());
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert!(v.iter().all(|d| *d < Duration::from_secs(100)));
        assert_eq!(v[0], Duration::ZERO);
    }
}
