//! The OpenTelemetry GenAI semantic conventions that inferprobe's probe measurements map onto:
//! metric names, units, bucket advice and attributes, for the current conventions and for
//! v1.41 (the last release of the main semantic-conventions repository that carried them).
//!
//! Sources (checked by hand; the facts, not the text):
//! - v1.41: `open-telemetry/semantic-conventions` tag v1.41.1, `model/gen-ai/metrics.yaml` and
//!   `model/gen-ai/registry.yaml`: `gen_ai.client.operation.duration` (s),
//!   `gen_ai.client.operation.time_to_first_chunk` and `time_per_output_chunk` (s, added in
//!   v1.41.0), `gen_ai.client.token.usage` ({token} histogram, `gen_ai.token.type` input|output).
//! - latest: `open-telemetry/semantic-conventions-genai` main (the conventions moved there in
//!   semantic-conventions v1.42.0): `docs/gen-ai/client-inference.md` and
//!   `model/gen-ai/token-metrics.yaml`: the `gen_ai.client.inference.*` histograms and the
//!   `gen_ai.client.inference.usage.*` counters with `gen_ai.token.modality`. That repository
//!   had no release when this was written, so no schema URL is set for it.

use opentelemetry::KeyValue;

use crate::config::otlp::Semconv;
use crate::config::servers::ServerKind;
use crate::config::Target;
use crate::probe::dialect::DialectKind;

/// Bucket advice of the GenAI duration and chunk histograms (seconds).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Bucket advice of the GenAI token histograms.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The GenAI metric names of one convention version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    /// End-to-end duration of an inference call (every call; failures carry `error.type`).
    pub duration: &'static str,
    /// Time to the first chunk of the stream.
    pub time_to_first_chunk: &'static str,
    /// Gap between two chunks, one observation per gap.
    pub time_per_output_chunk: &'static str,
    /// Schema URL of the instrumentation scope, for a released version.
    pub schema_url: Option<&'static str>,
}

/// Names of the current conventions.
pub const LATEST: Names = Names {
    duration: "gen_ai.client.inference.duration",
    time_to_first_chunk: "gen_ai.client.inference.time_to_first_chunk",
    time_per_output_chunk: "gen_ai.client.inference.time_per_output_chunk",
    schema_url: None,
};

/// Names of semantic conventions v1.41.
pub const V1_41: Names = Names {
    duration: "gen_ai.client.operation.duration",
    time_to_first_chunk: "gen_ai.client.operation.time_to_first_chunk",
    time_per_output_chunk: "gen_ai.client.operation.time_per_output_chunk",
    schema_url: Some("https://opentelemetry.io/schemas/1.41.0"),
};

/// Token counters of the current conventions (monotonic sums, unit `{token}`).
pub const USAGE_INPUT: &str = "gen_ai.client.inference.usage.input_tokens";
/// Output tokens, reasoning included.
pub const USAGE_OUTPUT: &str = "gen_ai.client.inference.usage.output_tokens";
/// Input tokens served from the provider's prompt cache (a subset of input).
pub const USAGE_CACHE_READ: &str = "gen_ai.client.inference.usage.cache_read.input_tokens";
/// Reasoning tokens (a subset of output).
pub const USAGE_REASONING: &str = "gen_ai.client.inference.usage.reasoning.output_tokens";
/// Per-call input tokens, for percentiles (current conventions).
pub const OPERATION_INPUT: &str = "gen_ai.client.inference.operation.input_tokens";
/// Per-call output tokens, for percentiles (current conventions).
pub const OPERATION_OUTPUT: &str = "gen_ai.client.inference.operation.output_tokens";
/// The v1.41 token histogram, by `gen_ai.token.type`.
pub const TOKEN_USAGE_V1_41: &str = "gen_ai.client.token.usage";

/// Attribute keys.
pub mod key {
    /// `chat`, `text_completion`, `generate_content`.
    pub const OPERATION: &str = "gen_ai.operation.name";
    /// Well-known provider value or a custom one.
    pub const PROVIDER: &str = "gen_ai.provider.name";
    /// The model asked for.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// The model that answered, when the stream named one.
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Host of the endpoint.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// Port of the endpoint.
    pub const SERVER_PORT: &str = "server.port";
    /// How the call failed (our `result`).
    pub const ERROR_TYPE: &str = "error.type";
    /// v1.41: `input` or `output`.
    pub const TOKEN_TYPE: &str = "gen_ai.token.type";
    /// Current: `text` (or `unknown` when the server reported no usage).
    pub const TOKEN_MODALITY: &str = "gen_ai.token.modality";
    /// inferprobe's target name, so that two targets of one model stay apart.
    pub const TARGET: &str = "inferprobe.target";
    /// inferprobe's scenario name.
    pub const SCENARIO: &str = "inferprobe.scenario";
}

impl Semconv {
    /// The metric names of this version.
    pub fn names(self) -> &'static Names {
        match self {
            Semconv::Latest => &LATEST,
            Semconv::V1_41 => &V1_41,
        }
    }
}

/// `gen_ai.operation.name` of a dialect's streaming call.
pub fn operation_name(dialect: DialectKind) -> &'static str {
    match dialect {
        DialectKind::OpenaiCompletions => "text_completion",
        DialectKind::Gemini => "generate_content",
        DialectKind::OpenaiChat
        | DialectKind::AnthropicMessages
        | DialectKind::OpenaiResponses
        | DialectKind::Ollama
        | DialectKind::BedrockConverse => "chat",
    }
}

/// `gen_ai.provider.name`: a well-known value where the dialect or the host says which provider
/// it is; for a self-hosted target whose server kind is known, that kind (`vllm`, `sglang`, ...,
/// custom values the conventions allow); `ollama` for the Ollama dialect; else `_OTHER`.
pub fn provider_name(dialect: DialectKind, host: &str, server_kind: Option<ServerKind>) -> String {
    let host = host.to_ascii_lowercase();
    let by_host = [
        ("api.openai.com", "openai"),
        (".openai.azure.com", "azure.ai.openai"),
        (".services.ai.azure.com", "azure.ai.inference"),
        (".models.ai.azure.com", "azure.ai.inference"),
        ("api.anthropic.com", "anthropic"),
        ("generativelanguage.googleapis.com", "gcp.gemini"),
        ("aiplatform.googleapis.com", "gcp.vertex_ai"),
        ("api.deepseek.com", "deepseek"),
        ("api.groq.com", "groq"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.x.ai", "x_ai"),
        ("api.perplexity.ai", "perplexity"),
        ("api.cohere.com", "cohere"),
        ("api.cohere.ai", "cohere"),
        ("api.moonshot.ai", "moonshot_ai"),
    ];
    for (suffix, name) in by_host {
        if host == suffix.trim_start_matches('.') || host.ends_with(suffix) {
            return name.to_string();
        }
    }
    match dialect {
        DialectKind::AnthropicMessages => return "anthropic".to_string(),
        DialectKind::BedrockConverse => return "aws.bedrock".to_string(),
        DialectKind::Gemini => return "gcp.gemini".to_string(),
        DialectKind::Ollama => return "ollama".to_string(),
        _ => {}
    }
    match server_kind {
        Some(k) if k != ServerKind::Auto => k.as_str().to_string(),
        _ => "_OTHER".to_string(),
    }
}

/// The attributes every GenAI measurement of a target carries (scenario and the per-call ones
/// are added when recording).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetAttrs {
    /// `gen_ai.operation.name`.
    pub operation: &'static str,
    /// `gen_ai.provider.name`.
    pub provider: String,
    /// `server.address`.
    pub server_address: String,
    /// `server.port`.
    pub server_port: u16,
}

impl TargetAttrs {
    /// The attributes of `target` whose requests go to `base_url` (already resolved: the
    /// simulator's address for `base_url: simulator`). `server_kind` is the kind of the server
    /// a self-hosted target names, when configured.
    pub fn of(target: &Target, base_url: &str, server_kind: Option<ServerKind>) -> TargetAttrs {
        let url = reqwest::Url::parse(base_url).ok();
        let host = url
            .as_ref()
            .and_then(|u| u.host_str())
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .as_ref()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(0);
        TargetAttrs {
            operation: operation_name(target.dialect),
            provider: provider_name(target.dialect, &host, server_kind),
            server_address: host,
            server_port: port,
        }
    }

    /// The attribute set shared by every GenAI measurement of one probe.
    pub fn common(
        &self,
        target: &str,
        scenario: &str,
        request_model: &str,
        response_model: Option<&str>,
    ) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new(key::OPERATION, self.operation),
            KeyValue::new(key::PROVIDER, self.provider.clone()),
            KeyValue::new(key::REQUEST_MODEL, request_model.to_string()),
            KeyValue::new(key::SERVER_ADDRESS, self.server_address.clone()),
            KeyValue::new(key::SERVER_PORT, i64::from(self.server_port)),
            KeyValue::new(key::TARGET, target.to_string()),
            KeyValue::new(key::SCENARIO, scenario.to_string()),
        ];
        if let Some(m) = response_model.filter(|m| !m.is_empty()) {
            kv.push(KeyValue::new(key::RESPONSE_MODEL, m.to_string()));
        }
        kv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_from_host_dialect_and_server_kind() {
        let p = |d, h: &str, k| provider_name(d, h, k);
        assert_eq!(p(DialectKind::OpenaiChat, "api.openai.com", None), "openai");
        assert_eq!(
            p(DialectKind::OpenaiChat, "myres.openai.azure.com", None),
            "azure.ai.openai"
        );
        assert_eq!(p(DialectKind::OpenaiChat, "API.GROQ.COM", None), "groq");
        assert_eq!(
            p(DialectKind::AnthropicMessages, "127.0.0.1", None),
            "anthropic"
        );
        assert_eq!(
            p(
                DialectKind::Gemini,
                "us-central1-aiplatform.googleapis.com",
                None
            ),
            "gcp.vertex_ai"
        );
        assert_eq!(p(DialectKind::Gemini, "127.0.0.1", None), "gcp.gemini");
        assert_eq!(
            p(
                DialectKind::BedrockConverse,
                "bedrock-runtime.eu-west-1.amazonaws.com",
                None
            ),
            "aws.bedrock"
        );
        assert_eq!(p(DialectKind::Ollama, "127.0.0.1", None), "ollama");
        assert_eq!(
            p(DialectKind::OpenaiChat, "10.0.0.5", Some(ServerKind::Vllm)),
            "vllm"
        );
        assert_eq!(p(DialectKind::OpenaiChat, "10.0.0.5", None), "_OTHER");
        // A look-alike host does not borrow a provider's name.
        assert_eq!(
            p(DialectKind::OpenaiChat, "api.openai.com.example.net", None),
            "_OTHER"
        );
    }

    #[test]
    fn operations_follow_the_dialect() {
        assert_eq!(operation_name(DialectKind::OpenaiChat), "chat");
        assert_eq!(
            operation_name(DialectKind::OpenaiCompletions),
            "text_completion"
        );
        assert_eq!(operation_name(DialectKind::Gemini), "generate_content");
    }

    #[test]
    fn names_differ_between_versions_and_buckets_are_increasing() {
        assert_ne!(LATEST.duration, V1_41.duration);
        assert!(LATEST.schema_url.is_none());
        for b in [&DURATION_BUCKETS[..], &TOKEN_BUCKETS[..]] {
            assert!(b.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
