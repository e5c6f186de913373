//! NVML GPU collector.
//!
//! A dedicated thread samples NVML every `gpus.interval`, builds one complete [`GpuSnapshot`]
//! per refresh and publishes it into [`GpuMetrics`] at once; a scrape (or the OTLP exporter) only
//! renders the last snapshot and never waits on NVML (whose calls block, sometimes for seconds on
//! an unhealthy GPU). A machine without NVML or without GPUs is not an error: the collector
//! exports `inferprobe_nvml_up 0`, says so once in the log, tries to load NVML again every
//! minute, and everything else keeps running.

mod record;
mod sample;

use std::ffi::OsStr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use tracing::{debug, error, info, warn};

use crate::config::gpus::{GpuEnabled, GpusConfig};
use crate::metrics::gpu::{GpuFamily, GpuMetrics, GpuSnapshot};

/// How long after a failed NVML initialization the next attempt is made.
const INIT_RETRY_EVERY: Duration = Duration::from_secs(60);

/// Most GPUs sampled; a bound on what a confused driver could make one refresh do.
const MAX_GPUS: u32 = 256;

/// What one refresh found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// NVML was loaded and listed at least one GPU (`inferprobe_nvml_up`).
    pub nvml_up: bool,
    /// GPUs sampled.
    pub gpus: u32,
    /// Readings that failed for a reason other than "not supported".
    pub errors: u32,
}

/// Samples every GPU and publishes each refresh into [`GpuMetrics`]. [`start`] runs one on its
/// own thread; tests drive one directly with [`GpuCollector::refresh_once`].
pub struct GpuCollector {
    enabled: GpuEnabled,
    library_path: Option<String>,
    top_n: usize,
    metrics: GpuMetrics,
    recorder: record::Recorder,
    nvml: Option<Nvml>,
    driver_version: String,
    last_init_attempt: Option<Instant>,
    unavailable_logged: bool,
    /// NVML was loaded since the last refresh: the next one logs what it found.
    just_loaded: bool,
    no_gpus_logged: bool,
}

impl GpuCollector {
    /// A collector for `cfg`, or `None` when `gpus.enabled` is `false`. NVML is loaded by the
    /// first refresh, not here, so construction never blocks.
    pub fn new(cfg: &GpusConfig, metrics: GpuMetrics) -> Option<GpuCollector> {
        if cfg.enabled == GpuEnabled::Disabled {
            return None;
        }
        Some(GpuCollector {
            enabled: cfg.enabled,
            library_path: cfg.library_path.clone(),
            top_n: cfg.process_top_n,
            recorder: record::Recorder::new(),
            metrics,
            nvml: None,
            driver_version: String::new(),
            last_init_attempt: None,
            unavailable_logged: false,
            just_loaded: false,
            no_gpus_logged: false,
        })
    }

    /// Samples every GPU once and publishes the complete picture, the collector's own health
    /// included, as one snapshot. Blocks for as long as NVML takes.
    pub fn refresh_once(&mut self) -> RefreshOutcome {
        let started = Instant::now();
        let mut snapshot = GpuSnapshot::default();
        let outcome = self.refresh_inner(&mut snapshot);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        snapshot.push(GpuFamily::NvmlUp, Vec::new(), flag(outcome.nvml_up));
        let success = outcome.nvml_up && outcome.errors == 0;
        snapshot.push(GpuFamily::LastRefreshSuccess, Vec::new(), flag(success));
        snapshot.push(
            GpuFamily::RefreshDuration,
            Vec::new(),
            started.elapsed().as_secs_f64(),
        );
        self.metrics.publish(snapshot);
        outcome
    }

    /// Adds the per-GPU points of one refresh to `snapshot` (none when NVML is down).
    fn refresh_inner(&mut self, snapshot: &mut GpuSnapshot) -> RefreshOutcome {
        let down = RefreshOutcome {
            nvml_up: false,
            gpus: 0,
            errors: 0,
        };
        self.ensure_nvml();
        let Some(nvml) = &self.nvml else {
            return down;
        };
        let count = match nvml.device_count() {
            Ok(n) => n.min(MAX_GPUS),
            Err(e) => {
                // The driver went away or broke: reload NVML later rather than keep asking a
                // handle that no longer answers.
                warn!(error = %e, "NVML could not list GPUs; GPU series removed until it recovers.");
                self.nvml = None;
                return down;
            }
        };
        if self.just_loaded {
            self.just_loaded = false;
            info!(
                library = %self.library_label(),
                driver_version = %self.driver_version,
                gpus = count,
                "NVML loaded; sampling GPUs."
            );
        }
        if count == 0 {
            if !self.no_gpus_logged {
                self.no_gpus_logged = true;
                info!("NVML is loaded but lists no GPU; inferprobe_nvml_up is 0.");
            }
            return down;
        }
        self.no_gpus_logged = false;

        let mut samples = Vec::with_capacity(count as usize);
        let mut errors = 0;
        for index in 0..count {
            match sample::sample_device(nvml, index, self.top_n) {
                Ok(s) => samples.push(s),
                Err(e) => {
                    errors += 1;
                    self.recorder.note_device_error(index, &e);
                }
            }
        }
        errors += self
            .recorder
            .record(&samples, &self.driver_version, snapshot);
        RefreshOutcome {
            nvml_up: true,
            gpus: samples.len() as u32,
            errors,
        }
    }

    /// Loads NVML when it is not loaded and the last attempt is old enough.
    fn ensure_nvml(&mut self) {
        if self.nvml.is_some() {
            return;
        }
        if let Some(at) = self.last_init_attempt {
            if at.elapsed() < INIT_RETRY_EVERY {
                return;
            }
        }
        self.last_init_attempt = Some(Instant::now());
        match self.init_nvml() {
            Ok(nvml) => {
                self.driver_version = nvml
                    .sys_driver_version()
                    .unwrap_or_else(|_| "unknown".to_string());
                self.unavailable_logged = false;
                self.just_loaded = true;
                self.nvml = Some(nvml);
            }
            Err(e) => self.log_unavailable(&e),
        }
    }

    fn init_nvml(&self) -> Result<Nvml, NvmlError> {
        let mut builder = Nvml::builder();
        if let Some(path) = &self.library_path {
            builder.lib_path(OsStr::new(path));
        }
        builder.init()
    }

    fn library_label(&self) -> &str {
        self.library_path.as_deref().unwrap_or("libnvidia-ml.so.1")
    }

    fn log_unavailable(&mut self, e: &NvmlError) {
        let library = self.library_label().to_string();
        if self.unavailable_logged {
            debug!(library = %library, error = %e, "NVML still not available.");
            return;
        }
        self.unavailable_logged = true;
        match self.enabled {
            GpuEnabled::Required => error!(
                library = %library,
                error = %e,
                "NVML is not available although gpus.enabled is true; GPU metrics are off (inferprobe_nvml_up 0), retried every 60s."
            ),
            _ => info!(
                library = %library,
                error = %e,
                "NVML not available; GPU metrics are off (inferprobe_nvml_up 0), retried every 60s."
            ),
        }
    }
}

/// Keeps the collector thread alive. Dropping it asks the thread to stop after its current
/// refresh; [`GpuCollectorHandle::shutdown`] also waits for it.
#[derive(Debug)]
pub struct GpuCollectorHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GpuCollectorHandle {
    /// Stops the thread and waits for it (at most one refresh).
    pub fn shutdown(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("The GPU collector thread panicked.");
            }
        }
    }
}

impl Drop for GpuCollectorHandle {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which then exits on its own.
        self.stop.take();
    }
}

/// Starts sampling on a dedicated thread, the first refresh at once. Returns `None` when
/// `gpus.enabled` is `false` (nothing GPU-related is exported then) or when the thread cannot be
/// created (logged); a missing NVML still returns a handle, whose thread exports
/// `inferprobe_nvml_up 0` and retries.
pub fn start(cfg: &GpusConfig, metrics: GpuMetrics) -> Option<GpuCollectorHandle> {
    let Some(mut collector) = GpuCollector::new(cfg, metrics) else {
        info!("GPU collector disabled (gpus.enabled: false).");
        return None;
    };
    let interval = cfg.interval;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let spawned = thread::Builder::new()
        .name("inferprobe-nvml".to_string())
        .spawn(move || loop {
            let started = Instant::now();
            collector.refresh_once();
            let wait = interval.saturating_sub(started.elapsed());
            match stop_rx.recv_timeout(wait) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // A message or a closed channel: the handle asked us to stop.
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        });
    match spawned {
        Ok(t) => Some(GpuCollectorHandle {
            stop: Some(stop_tx),
            thread: Some(t),
        }),
        Err(e) => {
            error!(error = %e, "Could not start the GPU collector thread; GPU metrics are off.");
            None
        }
    }
}
