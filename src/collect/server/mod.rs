//! Inference-server collector: scrapes each configured server's `/metrics` page on its own
//! interval, normalizes what it finds (vLLM, SGLang, TGI, llama.cpp, Triton) into the
//! `inferprobe_server_*` families, and reports `inferprobe_server_up`.
//!
//! Parsing ([`parse()`]) and normalization ([`normalize()`]) are pure functions over text; this
//! module only does the I/O. A failed scrape is data (`up` 0), never an error that stops the
//! collector; failures are logged once, then at most every [`LOG_EVERY`] while they last.

pub mod normalize;
pub mod parse;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::normalize::{detect_kind, normalize};
pub use self::parse::{parse, Family, MetricType, ParseError, Sample};
pub use crate::metrics::server::{
    HistogramSnapshot, ModelSnapshot, ServerMetrics, ServerSnapshot, UNKNOWN_KIND,
};

use crate::config::servers::{ServerConfig, ServerKind};

/// Largest metrics page read; a bigger one is a failed scrape (a vLLM page is ~100 KiB).
pub const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// While a server keeps failing, its failure is logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(300);

/// Why one scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connection, TLS, timeout or body error. The URL is stripped (it may carry credentials).
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The server answered with a non-success status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The page exceeded [`MAX_PAGE_BYTES`].
    #[error("metrics page larger than {MAX_PAGE_BYTES} bytes")]
    TooLarge,
    /// The page is not in the Prometheus text format.
    #[error("unparsable metrics page: {0}")]
    Parse(#[from] ParseError),
}

impl ScrapeError {
    /// A short, fixed word for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(e) if e.is_timeout() => "timeout",
            ScrapeError::Http(e) if e.is_connect() => "connect_error",
            ScrapeError::Http(_) => "http_error",
            ScrapeError::Status(_) => "http_status",
            ScrapeError::TooLarge => "too_large",
            ScrapeError::Parse(_) => "parse_error",
        }
    }
}

/// Fetches and parses one metrics page, within `timeout` (connection, headers and body).
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Vec<Family>, ScrapeError> {
    let mut response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ScrapeError::Http(e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ScrapeError::Status(status.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ScrapeError::Http(e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(ScrapeError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(parse(&String::from_utf8_lossy(&body))?)
}

/// Scrapes every server in the background until the handle is dropped or shut down.
#[derive(Debug)]
pub struct ServerCollectorHandle {
    client: reqwest::Client,
    metrics: ServerMetrics,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

/// Starts one background task per server; each scrapes its URL (`servers[i].1`, already
/// resolved from `simulator` by the caller) right away and then every `interval`, with
/// `timeout` per scrape. Must be called inside a Tokio runtime. A server is declared with
/// `inferprobe_server_up 0` at once, so its series exists before the first scrape ends.
pub fn start(
    servers: Vec<(ServerConfig, String)>,
    metrics: ServerMetrics,
    client: reqwest::Client,
) -> ServerCollectorHandle {
    let mut handle = ServerCollectorHandle {
        client,
        metrics,
        tasks: BTreeMap::new(),
    };
    for (config, url) in servers {
        handle.add(config, url);
    }
    handle
}

impl ServerCollectorHandle {
    /// Starts scraping one more server (after a reload); replaces a server of the same name.
    pub fn add(&mut self, config: ServerConfig, url: String) {
        self.remove(&config.name);
        let name = config.name.clone();
        let kind_label = match config.kind {
            ServerKind::Auto => UNKNOWN_KIND,
            k => k.as_str(),
        };
        self.metrics.set_pending(&name, kind_label);
        let task = tokio::spawn(run(config, url, self.metrics.clone(), self.client.clone()));
        self.tasks.insert(name, task);
    }

    /// Stops scraping a server and removes its series. Returns whether it was scraped.
    pub fn remove(&mut self, server: &str) -> bool {
        let task = self.tasks.remove(server);
        if let Some(task) = &task {
            task.abort();
        }
        self.metrics.remove(server);
        task.is_some()
    }

    /// The servers being scraped, sorted by name.
    pub fn servers(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Stops every task and removes every server's series (same as dropping the handle).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for ServerCollectorHandle {
    fn drop(&mut self) {
        for (server, task) in std::mem::take(&mut self.tasks) {
            task.abort();
            self.metrics.remove(&server);
        }
    }
}

/// One server's scrape loop.
async fn run(config: ServerConfig, url: String, metrics: ServerMetrics, client: reqwest::Client) {
    let mut ticker = tokio::time::interval(config.interval.max(Duration::from_millis(1)));
    // A slow scrape delays the next one rather than causing a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = FailureLog::default();
    // The kind label of the last successful scrape, kept on failures in auto mode.
    let mut kind_label: &'static str = match config.kind {
        ServerKind::Auto => UNKNOWN_KIND,
        k => k.as_str(),
    };
    loop {
        ticker.tick().await;
        let started = Instant::now();
        match fetch(&client, &url, config.timeout).await {
            Ok(families) => {
                let kind = match config.kind {
                    ServerKind::Auto => detect_kind(&families),
                    k => Some(k),
                };
                let snapshot = kind.map(|k| normalize(k, &families)).unwrap_or_default();
                if let Some(k) = kind {
                    kind_label = k.as_str();
                } else if failures.unrecognized_due() {
                    warn!(
                        server = %config.name,
                        "Metrics page has no vLLM, SGLang, TGI, llama.cpp or Triton metrics; set `kind` or check `url`."
                    );
                }
                metrics.record_success(&config.name, kind_label, started.elapsed(), snapshot);
                failures.recovered(&config.name);
            }
            Err(e) => {
                metrics.record_failure(&config.name, kind_label, started.elapsed());
                failures.failed(&config.name, &e);
            }
        }
    }
}

/// Rate limiting of one server's failure logs.
#[derive(Debug, Default)]
struct FailureLog {
    /// When the current run of failures was last logged, if one is going on.
    last_logged: Option<Instant>,
    /// Failures since then that were not logged.
    suppressed: u64,
    /// When an unrecognized page was last reported.
    last_unrecognized: Option<Instant>,
}

impl FailureLog {
    fn failed(&mut self, server: &str, e: &ScrapeError) {
        let due = self.last_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            warn!(
                server = %server,
                reason = e.reason(),
                error = %e,
                suppressed = self.suppressed,
                "Inference server scrape failed."
            );
            self.last_logged = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }

    fn recovered(&mut self, server: &str) {
        if self.last_logged.take().is_some() {
            info!(server = %server, "Inference server scrape recovered.");
            self.suppressed = 0;
        }
    }

    fn unrecognized_due(&mut self) -> bool {
        let due = self
            .last_unrecognized
            .is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            self.last_unrecognized = Some(Instant::now());
        }
        due
    }
}
