//! Pacing: sends a script's steps at their scheduled instants and stamps the ground truth.
//!
//! Token `i` is due at `decode_start + ttft + Σ gaps`, each gap being the drawn ITL scaled by
//! the batch size at that moment. Deadlines are absolute (`sleep_until`), so a late wake-up does
//! not push the later tokens back.

use std::io;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use super::capacity::SlotGuard;
use super::record::{lock, SharedRecord};
use super::sample::Plan;
use super::server::SimState;
use super::wire::{self, FinishReason, Step, Whole, FAULT_TOKENS};
use crate::config::simulator::FaultKind;

/// Longest single wait the pacer schedules, so instant arithmetic cannot overflow.
const MAX_WAIT: Duration = Duration::from_secs(86_400 * 365);

/// Pause before an injected abort, so the bytes before it leave first.
const FLUSH_PAUSE: Duration = Duration::from_millis(5);

/// What a generation needs besides its script.
pub struct Job {
    /// The simulator.
    pub state: SimState,
    /// Its ground-truth record.
    pub record: SharedRecord,
    /// Its random draws.
    pub plan: Plan,
    /// The `model_name` label.
    pub model_label: String,
    /// `batch_itl_factor` at arrival.
    pub batch_factor: f64,
    /// `stall_duration` at arrival.
    pub stall: Duration,
}

/// Token deadlines of one request.
struct Pacer {
    next: Instant,
    sent: usize,
    ttft: Duration,
    itls: Vec<Duration>,
    factor: f64,
}

impl Pacer {
    fn new(start: Instant, plan: &Plan, factor: f64) -> Pacer {
        Pacer {
            next: start,
            sent: 0,
            ttft: plan.ttft,
            itls: plan.itls.clone(),
            factor,
        }
    }

    /// The next token's deadline, with the ITL scaled for `running` requests in the batch.
    fn next_deadline(&mut self, running: u32) -> Instant {
        let wait = if self.sent == 0 {
            self.ttft
        } else {
            let base = self.itls.get(self.sent - 1).copied().unwrap_or_default();
            let scale = 1.0 + self.factor * f64::from(running.saturating_sub(1));
            Duration::try_from_secs_f64(base.as_secs_f64() * scale).unwrap_or(MAX_WAIT)
        };
        self.sent += 1;
        self.next = self
            .next
            .checked_add(wait.min(MAX_WAIT))
            .unwrap_or(self.next);
        self.next
    }

    /// After a stall, later tokens are paced from now instead of bursting out.
    fn resume(&mut self, now: Instant) {
        self.next = self.next.max(now);
    }
}

/// Ends a request's accounting once: explicitly, or as an abort when dropped early (the client
/// went away, or the simulator shut down).
struct Finisher {
    state: SimState,
    record: SharedRecord,
    model_label: String,
    done: bool,
}

impl Finisher {
    fn finish(&mut self, reason: FinishReason, at: Instant) {
        if self.done {
            return;
        }
        self.done = true;
        let arrival = {
            let mut r = lock(&self.record);
            r.end = Some(at);
            r.finish = Some(reason.as_str());
            r.arrival
        };
        let m = self.state.metrics();
        m.finished(&self.model_label, reason);
        if reason != FinishReason::Abort {
            m.e2e
                .with_label_values(&[&self.model_label])
                .observe(at.saturating_duration_since(arrival).as_secs_f64());
        }
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        self.finish(FinishReason::Abort, Instant::now());
    }
}

/// Per-token bookkeeping shared by both answer forms.
struct TokenClock {
    arrival: Instant,
    last: Option<Instant>,
}

impl TokenClock {
    fn observe(&mut self, state: &SimState, model_label: &str, at: Instant) {
        let m = state.metrics();
        let l = [model_label];
        match self.last {
            None => m
                .ttft
                .with_label_values(&l)
                .observe(at.saturating_duration_since(self.arrival).as_secs_f64()),
            Some(prev) => m
                .itl
                .with_label_values(&l)
                .observe(at.saturating_duration_since(prev).as_secs_f64()),
        }
        m.generation_tokens.with_label_values(&l).inc();
        self.last = Some(at);
    }
}

/// Waits for a decode slot, counting as waiting meanwhile; `None` on shutdown.
async fn admit(state: &SimState, record: &SharedRecord) -> Option<(SlotGuard, Instant)> {
    let slots = state.slots();
    let slot = tokio::select! {
        s = slots.acquire() => s,
        () = state.shutting_down() => return None,
    };
    let now = Instant::now();
    lock(record).decode_start = Some(now);
    Some((slot, now))
}

struct Gen {
    steps: std::vec::IntoIter<Step>,
    state: SimState,
    record: SharedRecord,
    plan: Plan,
    model_label: String,
    factor: f64,
    stall: Duration,
    slot: Option<SlotGuard>,
    pacer: Option<Pacer>,
    clock: TokenClock,
    finisher: Finisher,
}

impl Gen {
    /// Stamps bytes about to be handed to the body.
    fn stamp_event(&self, at: Instant) {
        let mut r = lock(&self.record);
        r.first_event.get_or_insert(at);
    }

    fn abort(mut self, what: &str) -> Option<(Result<Bytes, io::Error>, Gen)> {
        self.finisher.finish(FinishReason::Abort, Instant::now());
        self.steps = Vec::new().into_iter();
        self.slot = None;
        Some((Err(io::Error::other(what.to_string())), self))
    }

    async fn next_chunk(mut self) -> Option<(Result<Bytes, io::Error>, Gen)> {
        if self.pacer.is_none() {
            let Some((slot, start)) = admit(&self.state, &self.record).await else {
                return self.abort("simulator shutting down");
            };
            self.slot = Some(slot);
            self.pacer = Some(Pacer::new(start, &self.plan, self.factor));
        }
        loop {
            let step = self.steps.next()?;
            match step {
                Step::Event(b) => {
                    self.stamp_event(Instant::now());
                    return Some((Ok(b), self));
                }
                Step::Token(b) => {
                    let running = self.slot.as_ref().map_or(1, SlotGuard::running);
                    let Some(deadline) = self.pacer.as_mut().map(|p| p.next_deadline(running))
                    else {
                        return self.abort("no pacer");
                    };
                    let state = self.state.clone();
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline.into()) => {}
                        () = state.shutting_down() => return self.abort("simulator shutting down"),
                    }
                    let now = Instant::now();
                    {
                        let mut r = lock(&self.record);
                        r.first_event.get_or_insert(now);
                        r.tokens.push(now);
                    }
                    self.clock.observe(&self.state, &self.model_label, now);
                    return Some((Ok(b), self));
                }
                Step::Stall => {
                    let state = self.state.clone();
                    tokio::select! {
                        () = tokio::time::sleep(self.stall) => {}
                        () = state.shutting_down() => return self.abort("simulator shutting down"),
                    }
                    if let Some(p) = self.pacer.as_mut() {
                        p.resume(Instant::now());
                    }
                }
                Step::End(b, reason) => {
                    let now = Instant::now();
                    self.stamp_event(now);
                    let b = super::dialects::stamp_end(&lock(&self.record), b, now);
                    self.finisher.finish(reason, now);
                    self.slot = None;
                    return Some((Ok(b), self));
                }
                Step::Abort => {
                    // Cut where the next token would have come, and never at once: an error
                    // returned right after a chunk makes hyper drop that chunk unsent.
                    let running = self.slot.as_ref().map_or(1, SlotGuard::running);
                    let due = self.pacer.as_mut().map(|p| p.next_deadline(running));
                    let deadline = due
                        .unwrap_or_else(Instant::now)
                        .max(Instant::now() + FLUSH_PAUSE);
                    let state = self.state.clone();
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline.into()) => {}
                        () = state.shutting_down() => {}
                    }
                    return self.abort("simulated stream abort");
                }
            }
        }
    }
}

fn with_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A streamed answer: headers now, then the script's steps at their instants.
pub fn streaming(job: Job, ctx: &wire::Ctx) -> Response {
    let steps = wire::script(ctx, &job.plan);
    let arrival = lock(&job.record).arrival;
    let g = Gen {
        steps: steps.into_iter(),
        finisher: Finisher {
            state: job.state.clone(),
            record: job.record.clone(),
            model_label: job.model_label.clone(),
            done: false,
        },
        state: job.state,
        record: job.record,
        plan: job.plan,
        model_label: job.model_label,
        factor: job.batch_factor,
        stall: job.stall,
        slot: None,
        pacer: None,
        clock: TokenClock {
            arrival,
            last: None,
        },
    };
    let record = g.record.clone();
    let body = Body::from_stream(futures_util::stream::unfold(g, Gen::next_chunk));
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            super::dialects::stream_content_type(ctx.api),
        )
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    {
        let mut r = lock(&record);
        r.status = 200;
        r.headers_sent = Some(Instant::now());
    }
    with_request_id(resp, &ctx.id)
}

/// A non-streamed answer: decode in the background of the open request, then one body.
pub async fn whole(job: Job, ctx: &wire::Ctx) -> Response {
    let mut finisher = Finisher {
        state: job.state.clone(),
        record: job.record.clone(),
        model_label: job.model_label.clone(),
        done: false,
    };
    let Some((slot, start)) = admit(&job.state, &job.record).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let arrival = lock(&job.record).arrival;
    let mut clock = TokenClock {
        arrival,
        last: None,
    };
    let mut pacer = Pacer::new(start, &job.plan, job.batch_factor);
    let total = job.plan.total();
    let stall_at =
        (job.plan.fault == Some(FaultKind::TimeoutIdle)).then(|| FAULT_TOKENS.min(total));
    for t in 0..=total {
        if Some(t) == stall_at {
            tokio::select! {
                () = tokio::time::sleep(job.stall) => {}
                () = job.state.shutting_down() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
            pacer.resume(Instant::now());
        }
        if t == total {
            break;
        }
        let deadline = pacer.next_deadline(slot.running());
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = job.state.shutting_down() => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
        clock.observe(&job.state, &job.model_label, Instant::now());
    }
    drop(slot);

    let answer = wire::whole(ctx, &job.plan);
    let now = Instant::now();
    {
        let mut r = lock(&job.record);
        r.status = 200;
        r.headers_sent = Some(now);
    }
    let json = HeaderValue::from_static("application/json");
    let resp = match answer {
        Whole::Json(mut v, reason) => {
            super::dialects::stamp_whole(&lock(&job.record), &mut v, now);
            finisher.finish(reason, now);
            ([(header::CONTENT_TYPE, json)], v.to_string()).into_response()
        }
        Whole::Partial {
            text,
            then_abort: false,
        } => {
            finisher.finish(FinishReason::Abort, now);
            ([(header::CONTENT_TYPE, json)], text).into_response()
        }
        Whole::Partial {
            text,
            then_abort: true,
        } => {
            finisher.finish(FinishReason::Abort, now);
            let head = futures_util::stream::iter([Ok::<_, io::Error>(Bytes::from(text))]);
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(FLUSH_PAUSE).await;
                Err(io::Error::other("simulated stream abort"))
            });
            let body = Body::from_stream(head.chain(cut));
            ([(header::CONTENT_TYPE, json)], body).into_response()
        }
    };
    with_request_id(resp, &ctx.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_schedules_absolute_deadlines_scaled_by_batch() {
        let t0 = Instant::now();
        let plan = Plan {
            fault: None,
            ttft: Duration::from_millis(100),
            itls: vec![Duration::from_millis(10); 3],
            reasoning: 0,
            answer: 4,
            truncated: false,
        };
        let mut p = Pacer::new(t0, &plan, 0.5);
        assert_eq!(p.next_deadline(1), t0 + Duration::from_millis(100));
        assert_eq!(p.next_deadline(1), t0 + Duration::from_millis(110));
        // Three running: 10 ms × (1 + 0.5 × 2).
        assert_eq!(p.next_deadline(3), t0 + Duration::from_millis(130));
        p.resume(t0 + Duration::from_secs(1));
        assert_eq!(p.next_deadline(1), t0 + Duration::from_millis(1010));
    }
}
