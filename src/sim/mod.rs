//! The built-in simulated LLM endpoint: OpenAI chat, completions and responses, Anthropic
//! messages and the Gemini API, streaming or not, with configurable timing and length, fault
//! injection, a capacity model, a live control endpoint, vLLM-style `/metrics` and a
//! ground-truth record of when each token's bytes were really handed to the HTTP layer.
//!
//! It knows nothing of the prober and shares no SSE or timing code with it, so a bug in one
//! cannot hide in the other.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/messages`,
//! `POST /v1/responses`, `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (and
//! `:generateContent`), `POST /api/chat` (Ollama, NDJSON), `POST /model/{model_id}/converse-stream`
//! (Bedrock, AWS event-stream), `GET /v1/models`, `GET /metrics`, `GET`/`PATCH /control`,
//! `GET /ground-truth`, `GET /health`.
//!
//! Model of one request: it arrives, draws its fault and timings, waits for a decode slot (FIFO
//! when `slots` are all busy), then sends its first event at once and token `i` at
//! `decode_start + ttft + Σ itl` (each ITL scaled by `1 + batch_itl_factor × (running − 1)`).
//! A stream's headers go out on arrival, before any queueing, as vLLM does; a non-streamed
//! answer's headers go out with the whole body. Input tokens are the prompt's characters / 4,
//! rounded up, at least 1.

mod args;
mod capacity;
mod control;
mod dialects;
mod metrics;
mod record;
mod request;
mod sample;
mod server;
mod stream;
mod tools;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

pub use args::SimArgs;
pub use record::{RecordJson, RequestRecord, RECORD_CAPACITY};
pub use server::{router, SimState};
pub use wire::{answer_token, reasoning_token, ANSWER_WORDS, FAULT_TOKENS, REASONING_WORDS};

use crate::config::simulator::SimulatorConfig;

/// How long `shutdown` waits for open connections before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The APIs the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenaiChat,
    /// `POST /v1/completions`.
    OpenaiCompletions,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// `POST /v1/responses`.
    OpenaiResponses,
    /// `POST /v1beta/models/{model}:streamGenerateContent` (and `:generateContent`).
    Gemini,
    /// `POST /api/chat` (Ollama's native API, NDJSON).
    Ollama,
    /// `POST /model/{model_id}/converse-stream` (Bedrock, AWS event-stream).
    BedrockConverse,
}

impl Api {
    /// The name used in ground truth (the dialect names of the config).
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenaiChat => "openai-chat",
            Api::OpenaiCompletions => "openai-completions",
            Api::AnthropicMessages => "anthropic-messages",
            Api::OpenaiResponses => "openai-responses",
            Api::Gemini => "gemini",
            Api::Ollama => "ollama",
            Api::BedrockConverse => "bedrock-converse",
        }
    }

    /// A response id in the API's own style.
    fn response_id(self, tag: &str, n: u64) -> String {
        match self {
            Api::OpenaiChat => format!("chatcmpl-sim{tag}{n:06}"),
            Api::OpenaiCompletions => format!("cmpl-sim{tag}{n:06}"),
            Api::AnthropicMessages => format!("msg_sim{tag}{n:06}"),
            Api::OpenaiResponses => format!("resp_sim{tag}{n:06}"),
            Api::Gemini => format!("sim{tag}{n:06}"),
            // Neither API has a response id in its body; this one is the x-request-id.
            Api::Ollama => format!("ollama-sim{tag}{n:06}"),
            Api::BedrockConverse => format!("bedrock-sim{tag}{n:06}"),
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is invalid.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] asks it to stop too.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    state: SimState,
    task: Option<JoinHandle<()>>,
}

/// Binds `cfg.listen` and serves in a background task.
pub async fn start(cfg: SimulatorConfig) -> Result<SimHandle, SimError> {
    let listen = cfg.listen.clone();
    let state = SimState::new(cfg)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen.clone(),
        source,
    })?;
    let app = router(state.clone());
    let stop = state.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.shutting_down().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "Simulator server stopped with an error.");
        }
    });
    Ok(SimHandle {
        addr,
        state,
        task: Some(task),
    })
}

impl SimHandle {
    /// The bound address (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without `/v1` (append it for OpenAI dialects).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The recorded requests, oldest first (at most [`RECORD_CAPACITY`]).
    pub fn ground_truth(&self) -> Vec<RequestRecord> {
        self.state.ground_truth()
    }

    /// The current live behaviour.
    pub fn config(&self) -> SimulatorConfig {
        self.state.config()
    }

    /// Changes the behaviour of later requests, like `PATCH /control`.
    pub fn update(&self, patch: serde_json::Value) -> Result<SimulatorConfig, String> {
        self.state.update(&patch)
    }

    /// The shared state, e.g. to mount [`router`] elsewhere.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting, ends open streams, and waits briefly for connections to close.
    pub async fn shutdown(mut self) {
        self.state.begin_shutdown();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.state.begin_shutdown();
        }
    }
}

/// `inferprobe sim`: serves until ctrl-c or SIGTERM.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let cfg = args.into_config().map_err(anyhow::Error::msg)?;
    // The key the simulator checks is a secret like any other: never in its output.
    if let Some(k) = &cfg.api_key {
        crate::redact::extend(&crate::redact::Redactor::new([k.expose()]));
    }
    let handle = start(cfg).await?;
    let base = handle.base_url();
    tracing::info!(
        listen = %handle.addr(),
        openai_chat_base_url = %format!("{base}/v1"),
        openai_completions_base_url = %format!("{base}/v1"),
        anthropic_base_url = %base,
        control_url = %format!("{base}/control"),
        metrics_url = %format!("{base}/metrics"),
        "Simulator listening."
    );
    wait_for_signal().await;
    tracing::info!("Simulator shutting down.");
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "Cannot listen for SIGTERM; stop with ctrl-c."),
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::warn!(error = %e, "Cannot listen for ctrl-c; serving until killed.");
        std::future::pending::<()>().await;
    }
}
