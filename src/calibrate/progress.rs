//! The progress line on stderr: redrawn in place on a terminal, one line per stage otherwise.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::calibrate::format::CalibrateStage;
use crate::calibrate::ramp::Counters;

/// How often the terminal line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// Where progress goes.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
}

/// The stage being reported on.
#[derive(Clone, Debug)]
pub struct StageLabel {
    /// 1-based stage number.
    pub number: usize,
    /// Stages in the plan.
    pub of: usize,
    /// `concurrency 4` or `rate 2 req/s`.
    pub load: String,
}

impl Progress {
    /// Progress on stderr, redrawn in place when stderr is a terminal.
    pub fn stderr() -> Progress {
        Progress {
            enabled: true,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// No progress output (tests, library use).
    pub fn quiet() -> Progress {
        Progress {
            enabled: false,
            tty: false,
        }
    }

    /// Starts redrawing the line of a running stage (terminal only); abort the handle when the
    /// stage ends.
    pub fn start(
        &self,
        label: &StageLabel,
        span: Duration,
        counters: Arc<Counters>,
    ) -> Option<JoinHandle<()>> {
        if !(self.enabled && self.tty) {
            return None;
        }
        let label = label.clone();
        Some(tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let elapsed = started.elapsed();
                let clock = if elapsed < span {
                    format!("{:.1}s/{:.1}s", elapsed.as_secs_f64(), span.as_secs_f64())
                } else {
                    "draining in-flight requests".to_string()
                };
                let line = format!(
                    "\r\x1b[2Kstage {}/{} {}: {clock}, {} requests done, {} errors",
                    label.number,
                    label.of,
                    label.load,
                    counters.done.load(Ordering::Relaxed),
                    counters.errors.load(Ordering::Relaxed)
                );
                {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                }
                tokio::time::sleep(REDRAW).await;
            }
        }))
    }

    /// Ends a stage's line with its result.
    pub fn done(&self, label: &StageLabel, stage: &CalibrateStage, reasons: &[String]) {
        if !self.enabled {
            return;
        }
        let p95 = |v: Option<f64>| {
            v.map(|s| format!("{:.1} ms", s * 1e3))
                .unwrap_or_else(|| "–".to_string())
        };
        let verdict = if reasons.is_empty() {
            "ok".to_string()
        } else {
            format!("SLO breach: {}", reasons.join(", "))
        };
        let line = format!(
            "stage {}/{} {}: {} requests, {} errors, p95 TTFT {}, p95 ITL {}, {:.1} output tokens/s; {verdict}",
            label.number,
            label.of,
            label.load,
            stage.requests,
            stage.errors,
            p95(stage.ttft_seconds.p95),
            p95(stage.itl_seconds.p95),
            stage.output_tokens_per_second,
        );
        self.line(&line);
    }

    /// Prints a whole line, clearing a half-drawn progress line first.
    pub fn line(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{text}");
    }
}
