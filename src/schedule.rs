//! When probes start: interval with jitter (default) or cron, start times spread by target name,
//! never two probes of one target at once, a global concurrency cap, an hourly token budget and
//! holds after a rate limit with a time to retry.
//!
//! The loops know nothing of HTTP or metrics: they drive a [`Prober`] ("run a probe", "record a
//! skip"), which the daemon implements with the probe engine and the metrics registry and tests
//! implement with fakes, under tokio's paused clock. Every instant here is a
//! [`tokio::time::Instant`], so paused time moves them too.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, OwnedMutexGuard, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{GlobalConfig, ScenarioSelection, Target};
use crate::metrics::SkipReason;
use crate::probe::ratelimit::RateLimitInfo;
use crate::probe::{Outcome, ProbeResult};

/// How long a cron tick may wait for a concurrency permit: one minute, the finest granularity
/// most cron schedules use.
const CRON_PERMIT_WAIT: Duration = Duration::from_secs(60);

/// What a target's schedule needs from its config.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Target name, for the start offset and logs.
    pub target: String,
    /// Interval between starts (ignored with `cron`).
    pub every: Duration,
    /// Jitter as a fraction of `every`.
    pub jitter: f64,
    /// A cron expression with seconds, replacing the interval.
    pub cron: Option<String>,
    /// Weight of each scenario, in the target's order.
    pub weights: Vec<u32>,
    /// Pick scenarios by weight (else in turn).
    pub weighted: bool,
    /// Output-token budget per hour (0 = unlimited).
    pub max_output_tokens_per_hour: u64,
    /// Longest hold after a rate limit (0 = ignore Retry-After).
    pub max_retry_after: Duration,
}

impl Plan {
    /// The plan of a configured target.
    pub fn for_target(t: &Target, global: &GlobalConfig) -> Plan {
        Plan {
            target: t.name.clone(),
            every: t.schedule.every,
            jitter: t.schedule.jitter,
            cron: t.schedule.cron.clone(),
            weights: t
                .scenarios
                .iter()
                .map(|(_, w)| *w)
                .chain(t.journeys.iter().map(|(_, w)| *w))
                .collect(),
            weighted: t.scenario_selection == ScenarioSelection::Weighted,
            max_output_tokens_per_hour: global.max_output_tokens_per_hour,
            max_retry_after: global.max_retry_after,
        }
    }
}

/// What the schedule learns from a finished probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    /// Output tokens spent, for the budget.
    pub output_tokens: u64,
    /// How long the server asked to be left alone (only after a rate limit).
    pub retry_after: Option<Duration>,
}

impl ProbeReport {
    /// The report of a probe that ended in `result`: only a rate limit carries a wait.
    pub fn new(result: ProbeResult, output_tokens: u64, rate_limit: &RateLimitInfo) -> ProbeReport {
        ProbeReport {
            output_tokens,
            retry_after: if result == ProbeResult::RateLimited {
                rate_limit.hold_hint()
            } else {
                None
            },
        }
    }

    /// The report of an outcome.
    pub fn of(o: &Outcome) -> ProbeReport {
        ProbeReport::new(o.result, o.output_tokens, &o.rate_limit)
    }
}

/// Runs probes and records skips for one target. Scenarios are indices into the target's list.
pub trait Prober: Send + Sync + 'static {
    /// Runs one probe of scenario `scenario` to its end, records its outcome, and reports.
    fn probe(&self, scenario: usize) -> impl Future<Output = ProbeReport> + Send;
    /// Records a scheduled tick of `scenario` that did not run.
    fn skipped(&self, scenario: usize, reason: SkipReason);
}

/// One target's scheduling state, shared by its schedule and on-demand probes: the lock that
/// keeps its probes from overlapping, its scenario turn, its token budget and its rate-limit hold.
#[derive(Debug)]
pub struct TargetState {
    plan: Plan,
    busy: Arc<tokio::sync::Mutex<()>>,
    turn: AtomicUsize,
    budget: Mutex<TokenBudget>,
    hold_until: Mutex<Option<Instant>>,
}

impl TargetState {
    /// A fresh state: no probe running, budget unspent, no hold.
    pub fn new(plan: Plan) -> TargetState {
        TargetState {
            plan,
            busy: Arc::new(tokio::sync::Mutex::new(())),
            turn: AtomicUsize::new(0),
            budget: Mutex::new(TokenBudget::default()),
            hold_until: Mutex::new(None),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The next scenario index, in turn or by weight.
    pub fn next_scenario(&self) -> usize {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        pick_scenario(
            &self.plan.weights,
            self.plan.weighted,
            turn,
            &mut rand::rng(),
        )
    }

    /// The target's probe lock, if no probe holds it.
    pub fn try_lock(&self) -> Option<OwnedMutexGuard<()>> {
        self.busy.clone().try_lock_owned().ok()
    }

    /// The target's probe lock, waiting at most `wait` for a running probe to end.
    pub async fn lock_within(&self, wait: Duration) -> Option<OwnedMutexGuard<()>> {
        tokio::time::timeout(wait, self.busy.clone().lock_owned())
            .await
            .ok()
    }

    /// Takes over what an earlier state of the same target knew (on a reload): the tokens spent
    /// in the last hour and, with `hold`, a rate-limit hold still in force.
    pub fn inherit(&self, old: &TargetState, hold: bool) {
        if let (Ok(mut mine), Ok(theirs)) = (self.budget.lock(), old.budget.lock()) {
            *mine = theirs.clone();
        }
        if hold {
            let until = old.held_until(Instant::now());
            if let Ok(mut h) = self.hold_until.lock() {
                *h = until;
            }
        }
    }

    /// When the current rate-limit hold ends, if one is in force at `now`.
    pub fn held_until(&self, now: Instant) -> Option<Instant> {
        self.hold_until
            .lock()
            .ok()
            .and_then(|h| *h)
            .filter(|until| *until > now)
    }

    /// Why a tick at `now` may not start a probe (before the overlap and concurrency checks).
    fn admit(&self, now: Instant) -> Result<(), SkipReason> {
        if self.held_until(now).is_some() {
            return Err(SkipReason::RetryAfter);
        }
        let allowed = self
            .budget
            .lock()
            .map(|mut b| b.allows(now, self.plan.max_output_tokens_per_hour))
            .unwrap_or(true);
        if !allowed {
            return Err(SkipReason::TokenBudget);
        }
        Ok(())
    }

    /// Takes in a finished probe: spends its tokens and starts, replaces or ends the hold. The
    /// hold is capped by `max_retry_after`; a probe without a wait (a success, say) ends it.
    pub fn record(&self, report: &ProbeReport) {
        let now = Instant::now();
        if let Ok(mut b) = self.budget.lock() {
            b.spend(now, report.output_tokens);
        }
        let cap = self.plan.max_retry_after;
        let hold = report
            .retry_after
            .map(|asked| (asked, asked.min(cap)))
            .filter(|(_, d)| !d.is_zero());
        if let Ok(mut h) = self.hold_until.lock() {
            *h = hold.map(|(_, d)| now + d);
        }
        if let Some((asked, d)) = hold {
            info!(
                target = %self.plan.target,
                retry_after_seconds = asked.as_secs_f64(),
                hold_seconds = d.as_secs_f64(),
                "Rate limited; no probes of this target until the server's retry time."
            );
        }
    }
}

/// The schedules of one generation of targets: interval loops, cron jobs and the concurrency
/// permits they share. Stopping (or dropping) it stops every loop and cancels probes in flight.
pub struct Scheduler {
    tasks: Vec<JoinHandle<()>>,
    cron: Option<tokio_cron_scheduler::JobScheduler>,
    stop: watch::Sender<bool>,
    permits: Arc<Semaphore>,
}

/// Why a schedule could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A cron expression the scheduler refused.
    #[error("target {target:?}: invalid cron expression {expr:?}: {source}")]
    InvalidCron {
        /// The target.
        target: String,
        /// The expression.
        expr: String,
        /// What the cron library said.
        source: tokio_cron_scheduler::JobSchedulerError,
    },
    /// The cron scheduler failed to start or take a job.
    #[error("cron scheduler: {0}")]
    Cron(#[from] tokio_cron_scheduler::JobSchedulerError),
}

impl Scheduler {
    /// A scheduler with nothing to run.
    pub fn idle() -> Scheduler {
        let (stop, _) = watch::channel(true);
        Scheduler {
            tasks: Vec::new(),
            cron: None,
            stop,
            permits: Arc::new(Semaphore::new(1)),
        }
    }

    /// Starts every target's schedule, all sharing `max_concurrent` permits.
    pub async fn start<P: Prober>(
        targets: Vec<(Arc<TargetState>, Arc<P>)>,
        max_concurrent: usize,
    ) -> Result<Scheduler, ScheduleError> {
        let (stop, _) = watch::channel(false);
        let mut s = Scheduler {
            tasks: Vec::new(),
            cron: None,
            stop,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        };
        for (state, prober) in targets {
            if let Err(e) = s.add(state, prober).await {
                s.stop().await;
                return Err(e);
            }
        }
        if let Some(c) = &s.cron {
            if let Err(e) = c.start().await {
                s.stop().await;
                return Err(e.into());
            }
        }
        Ok(s)
    }

    async fn add<P: Prober>(
        &mut self,
        state: Arc<TargetState>,
        prober: Arc<P>,
    ) -> Result<(), ScheduleError> {
        let Some(expr) = state.plan.cron.clone() else {
            self.tasks.push(tokio::spawn(interval_loop(
                state,
                prober,
                self.permits.clone(),
                self.stop.subscribe(),
            )));
            return Ok(());
        };
        let permits = self.permits.clone();
        let stop = self.stop.subscribe();
        let target = state.plan.target.clone();
        let job = tokio_cron_scheduler::Job::new_async(expr.as_str(), move |_id, _sched| {
            let (state, prober, permits, stop) =
                (state.clone(), prober.clone(), permits.clone(), stop.clone());
            Box::pin(async move {
                if !*stop.borrow() {
                    fire(&state, &prober, &permits, CRON_PERMIT_WAIT, stop);
                }
            })
        })
        .map_err(|source| ScheduleError::InvalidCron {
            target,
            expr,
            source,
        })?;
        if self.cron.is_none() {
            self.cron = Some(tokio_cron_scheduler::JobScheduler::new().await?);
        }
        if let Some(c) = &self.cron {
            c.add(job).await?;
        }
        Ok(())
    }

    /// The concurrency permits, for probes run outside the schedule (`/probe`).
    pub fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    /// Stops every loop and cron job and cancels the probes in flight.
    pub async fn stop(mut self) {
        self.halt();
        if let Some(mut c) = self.cron.take() {
            if let Err(e) = c.shutdown().await {
                warn!(error = %e, "Cron scheduler did not shut down cleanly.");
            }
        }
    }

    fn halt(&mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Cron jobs still registered check the stop flag and do nothing.
        self.halt();
    }
}

/// Resolves when `stop` says stop, or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The interval schedule of one target: first start spread by name, then every interval ±
/// jitter. A probe runs in its own task, so a slow probe never delays the clock of the loop.
async fn interval_loop<P: Prober>(
    state: Arc<TargetState>,
    prober: Arc<P>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let every = state.plan.every;
    let jitter = state.plan.jitter;
    let mut next = Instant::now() + first_delay(&state.plan.target, every);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stopped(&mut stop) => return,
        }
        let interval = jittered(every, jitter, &mut rand::rng());
        fire(&state, &prober, &permits, interval, stop.clone());
        next += interval;
        let now = Instant::now();
        if next < now {
            // Fell behind (e.g. the machine was suspended): restart the clock rather than burst.
            next = now + interval;
        }
    }
}

/// One scheduled tick: picks a scenario; skips it during a rate-limit hold, over the token
/// budget, or while the previous probe runs; otherwise waits up to `permit_wait` for a
/// concurrency permit (skipping when none comes) and runs the probe in its own task.
fn fire<P: Prober>(
    state: &Arc<TargetState>,
    prober: &Arc<P>,
    permits: &Arc<Semaphore>,
    permit_wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let scenario = state.next_scenario();
    let target = &state.plan.target;
    if let Err(reason) = state.admit(Instant::now()) {
        prober.skipped(scenario, reason);
        debug!(target = %target, reason = reason.as_str(), "Probe skipped.");
        return;
    }
    let Some(guard) = state.try_lock() else {
        prober.skipped(scenario, SkipReason::Overlap);
        warn!(target = %target, reason = "overlap", "Probe skipped: the previous probe is still running.");
        return;
    };
    let state = state.clone();
    let prober = prober.clone();
    let permits = permits.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let permit = match tokio::time::timeout(permit_wait, permits.acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                prober.skipped(scenario, SkipReason::Concurrency);
                warn!(target = %state.plan.target, reason = "concurrency", "Probe skipped: concurrency cap reached.");
                return;
            }
        };
        tokio::select! {
            report = prober.probe(scenario) => state.record(&report),
            _ = stopped(&mut stop) => {}
        }
        drop(permit);
    });
}

/// A stable fraction in `[0, 1)` derived from a target's name (FNV-1a, then mixed), so that targets with the
/// same interval start at different offsets, the same offsets after every restart.
pub fn spread_fraction(name: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV alone leaves the high bits nearly equal for names that differ only at the end
    // (`target-1`, `target-2`): finish with the splitmix64 mixer so every bit avalanches.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Offset of a target's first probe within its interval.
pub fn first_delay(name: &str, every: Duration) -> Duration {
    every.mul_f64(spread_fraction(name))
}

/// One interval with jitter: drawn uniformly from `every × (1 ± jitter)`.
pub fn jittered(every: Duration, jitter: f64, rng: &mut impl Rng) -> Duration {
    let j = jitter.clamp(0.0, 0.5);
    if j == 0.0 {
        return every;
    }
    let factor = rng.random_range((1.0 - j)..=(1.0 + j));
    every.mul_f64(factor)
}

/// Picks the next scenario index: in turn (`rotate`) or by weight (`weighted`).
pub fn pick_scenario(weights: &[u32], weighted: bool, turn: usize, rng: &mut impl Rng) -> usize {
    if weights.len() <= 1 {
        return 0;
    }
    if !weighted {
        return turn % weights.len();
    }
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return turn % weights.len();
    }
    let mut x = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Output tokens spent in the last hour, for `global.max_output_tokens_per_hour`.
#[derive(Clone, Debug, Default)]
pub struct TokenBudget {
    spent: VecDeque<(Instant, u64)>,
    sum: u64,
}

impl TokenBudget {
    const WINDOW: Duration = Duration::from_secs(3600);

    /// Records tokens spent at `at`.
    pub fn spend(&mut self, at: Instant, tokens: u64) {
        self.spent.push_back((at, tokens));
        self.sum += tokens;
    }

    /// Tokens spent within the hour before `now`.
    pub fn spent_in_window(&mut self, now: Instant) -> u64 {
        while let Some((t, n)) = self.spent.front() {
            if now.saturating_duration_since(*t) < Self::WINDOW {
                break;
            }
            self.sum -= n;
            self.spent.pop_front();
        }
        self.sum
    }

    /// True when a probe may start under `limit` (0 = unlimited).
    pub fn allows(&mut self, now: Instant, limit: u64) -> bool {
        limit == 0 || self.spent_in_window(now) < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn spread_is_stable_in_range_and_differs_by_name() {
        let a = spread_fraction("vllm-eu");
        assert_eq!(a, spread_fraction("vllm-eu"));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, spread_fraction("vllm-us"));
        let d = first_delay("x", Duration::from_secs(10));
        assert!(d < Duration::from_secs(10));
        // 100 names spread over the interval: no tenth of it holds more than a third of them.
        let mut bins = [0; 10];
        for i in 0..100 {
            bins[(spread_fraction(&format!("target-{i}")) * 10.0) as usize] += 1;
        }
        assert!(bins.iter().all(|b| *b < 34), "{bins:?}");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let every = Duration::from_secs(30);
        assert_eq!(jittered(every, 0.0, &mut rng), every);
        for _ in 0..1000 {
            let d = jittered(every, 0.1, &mut rng);
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
        // Out-of-range jitter is clamped to 0.5.
        for _ in 0..100 {
            let d = jittered(every, 3.0, &mut rng);
            assert!(
                d >= Duration::from_secs(15) && d <= Duration::from_secs(45),
                "{d:?}"
            );
        }
    }

    #[test]
    fn rotate_and_weighted_selection() {
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..5)
            .map(|t| pick_scenario(&[1, 1, 1], false, t, &mut rng))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        let mut counts = [0u32; 2];
        for t in 0..4000 {
            counts[pick_scenario(&[3, 1], true, t, &mut rng)] += 1;
        }
        // Expect 3000 / 1000; allow a wide margin.
        assert!((2800..3200).contains(&counts[0]), "{counts:?}");
        assert_eq!(pick_scenario(&[5], true, 9, &mut rng), 0);
    }

    #[test]
    fn token_budget_window() {
        let mut b = TokenBudget::default();
        let t0 = Instant::now();
        assert!(b.allows(t0, 100));
        b.spend(t0, 60);
        b.spend(t0 + Duration::from_secs(10), 50);
        assert_eq!(b.spent_in_window(t0 + Duration::from_secs(20)), 110);
        assert!(!b.allows(t0 + Duration::from_secs(20), 100));
        assert!(b.allows(t0 + Duration::from_secs(20), 0));
        // The first spend leaves the window after an hour.
        assert_eq!(b.spent_in_window(t0 + Duration::from_secs(3600)), 50);
        assert!(b.allows(t0 + Duration::from_secs(3600), 100));
    }

    // ---- The loops, driven with a fake prober under tokio's paused clock. ----

    use std::sync::atomic::AtomicU64;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    type Script = Box<dyn Fn(usize) -> (Duration, ProbeReport) + Send + Sync>;

    /// Records when probes start and ticks are skipped; each probe takes and reports what the
    /// script says for its run number.
    struct Fake {
        runs: Mutex<Vec<Instant>>,
        skips: Mutex<Vec<(SkipReason, Instant)>>,
        script: Script,
        in_flight: Arc<AtomicU64>,
        max_in_flight: Arc<AtomicU64>,
    }

    impl Fake {
        fn new(
            script: impl Fn(usize) -> (Duration, ProbeReport) + Send + Sync + 'static,
        ) -> Arc<Fake> {
            Fake::sharing(script, Arc::default(), Arc::default())
        }

        fn sharing(
            script: impl Fn(usize) -> (Duration, ProbeReport) + Send + Sync + 'static,
            in_flight: Arc<AtomicU64>,
            max_in_flight: Arc<AtomicU64>,
        ) -> Arc<Fake> {
            Arc::new(Fake {
                runs: Mutex::default(),
                skips: Mutex::default(),
                script: Box::new(script),
                in_flight,
                max_in_flight,
            })
        }

        /// Probes that take no time and report nothing.
        fn instant() -> Arc<Fake> {
            Fake::new(|_| (Duration::ZERO, ProbeReport::default()))
        }

        fn runs(&self) -> Vec<Instant> {
            self.runs.lock().unwrap().clone()
        }

        fn skips(&self) -> Vec<(SkipReason, Instant)> {
            self.skips.lock().unwrap().clone()
        }
    }

    impl Prober for Fake {
        async fn probe(&self, _scenario: usize) -> ProbeReport {
            let n = {
                let mut runs = self.runs.lock().unwrap();
                runs.push(Instant::now());
                runs.len() - 1
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let (took, report) = (self.script)(n);
            tokio::time::sleep(took).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            report
        }

        fn skipped(&self, _scenario: usize, reason: SkipReason) {
            self.skips.lock().unwrap().push((reason, Instant::now()));
        }
    }

    fn plan(name: &str, every: Duration, jitter: f64) -> Plan {
        Plan {
            target: name.to_string(),
            every,
            jitter,
            cron: None,
            weights: vec![1],
            weighted: false,
            max_output_tokens_per_hour: 0,
            max_retry_after: secs(600),
        }
    }

    /// Runs one target's schedule for `run_for`, then stops it.
    async fn run_one(plan: Plan, fake: &Arc<Fake>, run_for: Duration) -> Arc<TargetState> {
        let state = Arc::new(TargetState::new(plan));
        let s = Scheduler::start(vec![(state.clone(), fake.clone())], 4)
            .await
            .unwrap();
        tokio::time::sleep(run_for).await;
        s.stop().await;
        state
    }

    /// Offsets from `t0`, for readable assertions.
    fn offsets(t0: Instant, at: &[Instant]) -> Vec<Duration> {
        at.iter().map(|t| t.duration_since(t0)).collect()
    }

    #[track_caller]
    fn assert_near(got: &[Duration], want: &[Duration]) {
        assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(want) {
            let d = if g > w { *g - *w } else { *w - *g };
            assert!(d < Duration::from_millis(1), "got {got:?}, want {want:?}");
        }
    }

    /// The tick times `f + k × every` for the given `k`s.
    fn ticks(f: Duration, every: Duration, ks: &[u32]) -> Vec<Duration> {
        ks.iter().map(|k| f + every * *k).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn interval_without_jitter_ticks_at_the_spread_offset_then_every_interval() {
        let every = secs(30);
        let f = first_delay("a", every);
        let fake = Fake::instant();
        let t0 = Instant::now();
        run_one(plan("a", every, 0.0), &fake, f + every * 4 + secs(1)).await;
        assert_near(
            &offsets(t0, &fake.runs()),
            &ticks(f, every, &[0, 1, 2, 3, 4]),
        );
        assert!(fake.skips().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_intervals_stay_within_bounds_and_vary() {
        let every = secs(30);
        let f = first_delay("j", every);
        let fake = Fake::instant();
        let t0 = Instant::now();
        run_one(plan("j", every, 0.2), &fake, f + every * 40).await;
        let at = offsets(t0, &fake.runs());
        // 40 intervals of at least 24 s fit at most 41 ticks in f + 1200 s.
        assert!((30..=50).contains(&at.len()), "{} runs", at.len());
        assert_near(&at[..1], &[f]);
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        for g in &gaps {
            assert!(*g >= secs(24) && *g <= secs(36), "{gaps:?}");
        }
        assert!(gaps.iter().any(|g| *g != gaps[0]), "no jitter: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_during_a_running_probe_is_skipped_as_overlap() {
        let every = secs(30);
        let f = first_delay("slow", every);
        // Each probe takes 45 s: the tick 30 s after a start finds it running.
        let fake = Fake::new(|_| (secs(45), ProbeReport::default()));
        let t0 = Instant::now();
        run_one(plan("slow", every, 0.0), &fake, f + every * 4 + secs(1)).await;
        assert_near(&offsets(t0, &fake.runs()), &ticks(f, every, &[0, 2, 4]));
        let skips = fake.skips();
        assert!(
            skips.iter().all(|(r, _)| *r == SkipReason::Overlap),
            "{skips:?}"
        );
        let at: Vec<Instant> = skips.iter().map(|(_, t)| *t).collect();
        assert_near(&offsets(t0, &at), &ticks(f, every, &[1, 3]));
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_beyond_the_hourly_token_budget_are_skipped_until_spends_age_out() {
        let every = secs(600);
        let f = first_delay("budget", every);
        let fake = Fake::new(|_| {
            (
                Duration::ZERO,
                ProbeReport {
                    output_tokens: 60,
                    retry_after: None,
                },
            )
        });
        let mut p = plan("budget", every, 0.0);
        p.max_output_tokens_per_hour = 100;
        let t0 = Instant::now();
        run_one(p, &fake, f + every * 6 + secs(1)).await;
        // 60 then 120 tokens spent: ticks 2 to 5 are over budget; at tick 6 (one hour after the
        // first probe) its 60 tokens leave the window and 60 < 100 again.
        assert_near(&offsets(t0, &fake.runs()), &ticks(f, every, &[0, 1, 6]));
        let skips = fake.skips();
        assert!(
            skips.iter().all(|(r, _)| *r == SkipReason::TokenBudget),
            "{skips:?}"
        );
        let at: Vec<Instant> = skips.iter().map(|(_, t)| *t).collect();
        assert_near(&offsets(t0, &at), &ticks(f, every, &[2, 3, 4, 5]));
    }

    fn rate_limited_once(wait: Duration) -> Arc<Fake> {
        Fake::new(move |n| {
            let report = ProbeReport {
                output_tokens: 0,
                retry_after: (n == 0).then_some(wait),
            };
            (Duration::ZERO, report)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_the_target_until_the_servers_time() {
        let every = secs(30);
        let f = first_delay("limited", every);
        let fake = rate_limited_once(secs(95));
        let t0 = Instant::now();
        run_one(plan("limited", every, 0.0), &fake, f + every * 5 + secs(1)).await;
        // Held until f + 95 s: ticks at f + 30, 60, 90 are skipped, f + 120 runs.
        assert_near(&offsets(t0, &fake.runs()), &ticks(f, every, &[0, 4, 5]));
        let skips = fake.skips();
        assert!(
            skips.iter().all(|(r, _)| *r == SkipReason::RetryAfter),
            "{skips:?}"
        );
        let at: Vec<Instant> = skips.iter().map(|(_, t)| *t).collect();
        assert_near(&offsets(t0, &at), &ticks(f, every, &[1, 2, 3]));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_capped_by_max_retry_after() {
        let every = secs(30);
        let f = first_delay("capped", every);
        // The server asks for an hour; the cap is 40 s: only the tick at f + 30 is skipped.
        let fake = rate_limited_once(secs(3600));
        let mut p = plan("capped", every, 0.0);
        p.max_retry_after = secs(40);
        let t0 = Instant::now();
        run_one(p, &fake, f + every * 3 + secs(1)).await;
        assert_near(&offsets(t0, &fake.runs()), &ticks(f, every, &[0, 2, 3]));
        let at: Vec<Instant> = fake.skips().iter().map(|(_, t)| *t).collect();
        assert_near(&offsets(t0, &at), &ticks(f, every, &[1]));
    }

    #[tokio::test(start_paused = true)]
    async fn max_retry_after_zero_ignores_retry_after() {
        let every = secs(30);
        let f = first_delay("ignore", every);
        let fake = rate_limited_once(secs(3600));
        let mut p = plan("ignore", every, 0.0);
        p.max_retry_after = Duration::ZERO;
        run_one(p, &fake, f + every * 2 + secs(1)).await;
        assert_eq!(fake.runs().len(), 3);
        assert!(fake.skips().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_without_a_permit_in_time_is_skipped_as_concurrency() {
        let state = Arc::new(TargetState::new(plan("c", secs(30), 0.0)));
        let fake = Fake::instant();
        let permits = Arc::new(Semaphore::new(0));
        let (_stop_tx, stop) = watch::channel(false);
        let t0 = Instant::now();
        fire(&state, &fake, &permits, secs(5), stop.clone());
        tokio::time::sleep(secs(4)).await;
        assert!(fake.skips().is_empty(), "still waiting for a permit");
        assert!(
            state.try_lock().is_none(),
            "the waiting tick holds the target"
        );
        tokio::time::sleep(secs(2)).await;
        let skips = fake.skips();
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].0, SkipReason::Concurrency);
        assert_near(&offsets(t0, &[skips[0].1]), &[secs(5)]);
        assert!(fake.runs().is_empty());
        assert!(
            state.try_lock().is_some(),
            "the skipped tick let go of the target"
        );
        // With a permit free, the next tick runs.
        permits.add_permits(1);
        fire(&state, &fake, &permits, secs(5), stop);
        tokio::time::sleep(secs(1)).await;
        assert_eq!(fake.runs().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_cap_bounds_probes_in_flight_across_targets() {
        let in_flight = Arc::new(AtomicU64::new(0));
        let max = Arc::new(AtomicU64::new(0));
        let mut targets = Vec::new();
        let mut fakes = Vec::new();
        for i in 0..4 {
            // Every 10 s, each probe 25 s: far more work than 2 permits allow.
            let fake = Fake::sharing(
                |_| (secs(25), ProbeReport::default()),
                in_flight.clone(),
                max.clone(),
            );
            let state = Arc::new(TargetState::new(plan(&format!("t{i}"), secs(10), 0.0)));
            targets.push((state, fake.clone()));
            fakes.push(fake);
        }
        let s = Scheduler::start(targets, 2).await.unwrap();
        tokio::time::sleep(secs(300)).await;
        s.stop().await;
        assert_eq!(max.load(Ordering::SeqCst), 2);
        let skips: Vec<SkipReason> = fakes
            .iter()
            .flat_map(|f| f.skips().into_iter().map(|(r, _)| r))
            .collect();
        assert!(skips.contains(&SkipReason::Concurrency), "{skips:?}");
        assert!(skips.contains(&SkipReason::Overlap), "{skips:?}");
        let runs: usize = fakes.iter().map(|f| f.runs().len()).sum();
        // Two permits, 25 s probes, 300 s: at most 2 × 12 starts (plus the ones cut by stop).
        assert!((10..=26).contains(&runs), "{runs} runs");
        // Every tick of every target either ran or was counted: 30 ticks each in 300 s.
        assert!(
            (115..=124).contains(&(runs + skips.len())),
            "{} ticks",
            runs + skips.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_cancels_probes_in_flight_and_ticks_to_come() {
        let every = secs(30);
        let f = first_delay("stopped", every);
        let fake = Fake::new(|_| {
            (
                secs(100),
                ProbeReport {
                    output_tokens: 50,
                    retry_after: None,
                },
            )
        });
        let mut p = plan("stopped", every, 0.0);
        p.max_output_tokens_per_hour = 1;
        let state = run_one(p, &fake, f + secs(10)).await;
        tokio::time::sleep(secs(300)).await;
        assert_eq!(fake.runs().len(), 1);
        assert!(fake.skips().is_empty());
        // The cancelled probe released the target and recorded nothing.
        assert!(state.try_lock().is_some());
        assert_eq!(
            state.budget.lock().unwrap().spent_in_window(Instant::now()),
            0
        );
    }

    #[test]
    fn only_a_rate_limit_carries_a_wait() {
        let headers = RateLimitInfo {
            retry_after: Some(secs(7)),
            ..RateLimitInfo::default()
        };
        let limited = ProbeReport::new(ProbeResult::RateLimited, 0, &headers);
        assert_eq!(limited.retry_after, Some(secs(7)));
        let ok = ProbeReport::new(ProbeResult::Success, 12, &headers);
        assert_eq!(
            ok,
            ProbeReport {
                output_tokens: 12,
                retry_after: None
            }
        );
        // An overload is the server's failure, not our rate limit.
        assert_eq!(
            ProbeReport::new(ProbeResult::Http5xx, 0, &headers).retry_after,
            None
        );
        let silent = ProbeReport::new(ProbeResult::RateLimited, 0, &RateLimitInfo::default());
        assert_eq!(silent.retry_after, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_without_a_wait_ends_the_hold() {
        let state = TargetState::new(plan("h", secs(30), 0.0));
        state.record(&ProbeReport {
            output_tokens: 0,
            retry_after: Some(secs(60)),
        });
        let now = Instant::now();
        assert_eq!(state.held_until(now), Some(now + secs(60)));
        assert_eq!(state.admit(now), Err(SkipReason::RetryAfter));
        // A zero wait is no hold.
        state.record(&ProbeReport {
            output_tokens: 0,
            retry_after: Some(Duration::ZERO),
        });
        assert_eq!(state.held_until(now), None);
        state.record(&ProbeReport {
            output_tokens: 0,
            retry_after: Some(secs(60)),
        });
        tokio::time::advance(secs(61)).await;
        assert_eq!(state.held_until(Instant::now()), None, "the hold expires");
        state.record(&ProbeReport {
            output_tokens: 0,
            retry_after: Some(secs(60)),
        });
        state.record(&ProbeReport::default());
        assert_eq!(state.admit(Instant::now()), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reloaded_target_keeps_its_budget_and_hold() {
        let mut p = plan("r", secs(30), 0.0);
        p.max_output_tokens_per_hour = 100;
        let old = TargetState::new(p.clone());
        old.record(&ProbeReport {
            output_tokens: 150,
            retry_after: Some(secs(60)),
        });
        tokio::time::advance(secs(10)).await;
        let now = Instant::now();
        let new = TargetState::new(p.clone());
        new.inherit(&old, true);
        assert_eq!(new.held_until(now), Some(now + secs(50)));
        tokio::time::advance(secs(60)).await;
        assert_eq!(
            new.admit(Instant::now()),
            Err(SkipReason::TokenBudget),
            "the hour's spend carried over"
        );
        // A changed endpoint starts without the hold, but the budget still counts.
        let other = TargetState::new(p);
        other.inherit(&old, false);
        assert_eq!(other.held_until(now), None);
        assert_eq!(other.admit(Instant::now()), Err(SkipReason::TokenBudget));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cron_schedule_fires_and_stops() {
        // Real time: the cron library reads the wall clock. Every second, for 3.5 s.
        let mut p = plan("cron", secs(30), 0.0);
        p.cron = Some("* * * * * *".to_string());
        let fake = Fake::instant();
        let state = Arc::new(TargetState::new(p));
        let s = Scheduler::start(vec![(state, fake.clone())], 1)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        s.stop().await;
        let fired = fake.runs().len();
        assert!((1..=5).contains(&fired), "{fired} cron probes in 3.5 s");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(fake.runs().len(), fired, "a cron tick fired after stop");
    }

    #[tokio::test]
    async fn an_invalid_cron_expression_names_the_target() {
        let mut p = plan("bad-cron", secs(30), 0.0);
        p.cron = Some("every tuesday".to_string());
        let state = Arc::new(TargetState::new(p));
        let err = Scheduler::start(vec![(state, Fake::instant())], 1)
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("bad-cron") && msg.contains("every tuesday"),
            "{msg}"
        );
    }
}
