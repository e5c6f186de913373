//! Config loading: every fixture in `config/testdata/` and the shipped example configs.
//!
//! `NAME.bad.yml` must fail with exactly the text in `NAME.bad.yml.expected` (the `Display` of
//! the errors, with the file's base name as source name); `NAME.good.yml` must load. Set
//! `INFERPROBE_BLESS=1` to rewrite the `.expected` files after an intended message change, then
//! review the diff.

mod common;

use std::path::{Path, PathBuf};

use inferprobe::config::{self, Environment, Loaded};
use inferprobe::probe::dialect::DialectKind;

/// The environment the fixtures see, independent of the process environment.
fn fixture_var(name: &str) -> Option<String> {
    match name {
        "INFERPROBE_TEST_KEY" => Some("sk-fixture-0123456789".to_string()),
        "INFERPROBE_TEST_EMPTY" => Some("  ".to_string()),
        _ => None,
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/testdata")
}

fn load_fixture(path: &Path) -> Result<Loaded, config::ConfigErrors> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    config::load_str_with(
        &text,
        &name,
        &Environment {
            base_dir: &testdata(),
            var: &fixture_var,
            secrets_required: true,
        },
    )
}

fn fixtures(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn bad_fixtures_fail_with_the_expected_errors() {
    let files = fixtures(".bad.yml");
    assert!(files.len() >= 10, "fixtures missing: {files:?}");
    common::assert_golden(&files, |path| match load_fixture(path) {
        Ok(_) => format!("{} loaded without errors", path.display()),
        Err(e) => format!("{e}\n"),
    });
}

#[test]
fn good_fixtures_load() {
    let files = fixtures(".good.yml");
    assert!(!files.is_empty());
    for path in files {
        if let Err(e) = load_fixture(&path) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_bad_fixture_has_an_expected_file_and_vice_versa() {
    for path in fixtures(".bad.yml") {
        assert!(
            PathBuf::from(format!("{}.expected", path.display())).exists(),
            "{} has no .expected file",
            path.display()
        );
    }
    for path in fixtures(".bad.yml.expected") {
        let yml = path
            .to_string_lossy()
            .trim_end_matches(".expected")
            .to_string();
        assert!(Path::new(&yml).exists(), "{} has no .yml", path.display());
    }
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Loads `config/example.yml` from a temporary directory holding the files it references, with
/// the environment variables it references set.
fn load_example() -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_file("config/example.yml")).unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/azure-openai.key"),
        "azure-example-key-0123\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("prompts")).unwrap();
    std::fs::write(
        dir.path().join("prompts/summarize.txt"),
        "Summarize the text below in one sentence.\n",
    )
    .unwrap();
    let var = |name: &str| match name {
        "ANTHROPIC_API_KEY" => Some("sk-ant-example-key-0123".to_string()),
        "OPENAI_API_KEY" => Some("sk-openai-example-key-0123".to_string()),
        "GEMINI_API_KEY" => Some("gemini-example-key-0123".to_string()),
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("aws-example-secret-0123".to_string()),
        "OTLP_AUTHORIZATION" => Some("Bearer otlp-example-token-0123".to_string()),
        _ => None,
    };
    config::load_str_with(
        &text,
        "example.yml",
        &Environment {
            base_dir: dir.path(),
            var: &var,
            secrets_required: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn example_config_loads_and_resolves() {
    use inferprobe::config::{BaseUrl, ScenarioSelection};
    use inferprobe::probe::dialect::AuthStyle;
    use std::time::Duration;

    let loaded = load_example();
    assert_eq!(
        config::summary(&loaded),
        "OK: 9 targets, 5 scenarios, 2 journeys, simulator on, 0 warnings, OTLP export to http://otel-collector:4318"
    );
    let otlp = loaded.otlp.as_ref().expect("the otlp block");
    assert_eq!(otlp.metrics_url, "http://otel-collector:4318/v1/metrics");
    assert_eq!(otlp.interval, Duration::from_secs(15));
    let headers: Vec<(&str, &str)> = otlp
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [
            ("authorization", "Bearer otlp-example-token-0123"),
            ("x-scope-orgid", "team-llm")
        ]
    );
    assert_eq!(otlp.resource["cloud.region"], "eu-west-1");
    let names: Vec<&str> = loaded.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "vllm-local",
            "llama-cpp",
            "azure-gpt-4o",
            "openai-mini",
            "anthropic-sonnet",
            "openai-responses",
            "gemini-flash",
            "ollama-local",
            "bedrock-claude"
        ]
    );
    let [vllm, llama, azure, openai, anthropic, responses, gemini, ollama, bedrock] =
        &loaded.targets[..]
    else {
        panic!("nine targets expected");
    };
    // Every dialect appears, each with its default auth.
    let mut dialects: Vec<&str> = loaded.targets.iter().map(|t| t.dialect.as_str()).collect();
    dialects.sort();
    dialects.dedup();
    assert_eq!(dialects.len(), DialectKind::ALL.len());
    assert_eq!(responses.auth, AuthStyle::Bearer);
    assert_eq!(gemini.auth, AuthStyle::XGoogApiKey);
    assert_eq!(
        gemini.api_key.as_ref().map(|k| k.expose()),
        Some("gemini-example-key-0123")
    );
    assert_eq!(
        (ollama.auth, ollama.api_key.is_none()),
        (AuthStyle::Bearer, true)
    );
    assert_eq!(
        (bedrock.auth, bedrock.api_key.is_none()),
        (AuthStyle::AwsSigv4, true)
    );

    assert_eq!(vllm.scenario_selection, ScenarioSelection::Weighted);
    let sh = vllm
        .self_hosted
        .as_ref()
        .expect("vllm-local is self-hosted");
    assert_eq!(
        (sh.gpus, sh.gpu_hour_usd, sh.server.as_deref()),
        (1, 2.5, Some("local-vllm"))
    );
    assert_eq!(
        vllm.price, None,
        "token prices do not apply to a self-hosted target"
    );
    let weights: Vec<(&str, u32)> = vllm
        .scenarios
        .iter()
        .map(|(s, w)| (s.name.as_str(), *w))
        .collect();
    assert_eq!(
        weights,
        [
            ("short-chat", 1),
            ("long-context", 2),
            ("chat-with-system", 1)
        ]
    );
    assert_eq!(vllm.timeouts.first_token, Duration::from_secs(10));
    assert_eq!(vllm.timeouts.total, Duration::from_secs(120));
    assert_eq!(vllm.schedule.every, Duration::from_secs(15));
    assert_eq!(vllm.max_response_bytes, 1_048_576);
    assert_eq!(vllm.price, None);

    assert!(!llama.include_usage);
    assert_eq!(llama.schedule.cron.as_deref(), Some("0 */5 * * * *"));
    assert_eq!(llama.max_response_bytes, 4_194_304);
    let summarize = &llama.scenarios[1].0;
    assert_eq!(
        summarize.messages[0].content,
        "Summarize the text below in one sentence."
    );

    assert_eq!(azure.auth, AuthStyle::ApiKey);
    assert_eq!(
        azure.query.get("api-version").map(String::as_str),
        Some("2024-10-21")
    );
    assert_eq!(
        azure.api_key.as_ref().map(|k| k.expose()),
        Some("azure-example-key-0123")
    );
    assert_eq!(azure.price.as_ref().map(|p| p.input_per_million), Some(2.5));

    assert_eq!(openai.auth, AuthStyle::Bearer);
    assert_eq!(
        openai.base_url,
        BaseUrl::Url("https://api.openai.com/v1".to_string())
    );
    assert_eq!(
        openai
            .price
            .as_ref()
            .and_then(|p| p.cached_input_per_million),
        Some(0.075)
    );

    assert_eq!(anthropic.auth, AuthStyle::XApiKey);
    assert!(anthropic.production);
    assert_eq!(
        anthropic.api_key.as_ref().map(|k| k.expose()),
        Some("sk-ant-example-key-0123")
    );
    assert_eq!(
        anthropic.price.as_ref().map(|p| p.output_per_million),
        Some(15.0)
    );

    assert_eq!(loaded.global.max_output_tokens_per_hour, 20_000);
    assert_eq!(
        loaded.global.max_retry_after,
        std::time::Duration::from_secs(600)
    );
    assert_eq!(
        loaded.buckets.keys().collect::<Vec<_>>(),
        ["inter_token_latency_seconds", "time_to_first_token_seconds"]
    );

    let debug = format!("{loaded:?}");
    for secret in [
        "azure-example-key-0123",
        "sk-ant-example-key-0123",
        "sk-openai-example-key-0123",
        "gemini-example-key-0123",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked");
    }
}

#[test]
fn example_config_mentions_every_option() {
    let text = std::fs::read_to_string(repo_file("config/example.yml")).unwrap();
    let options = [
        // global
        "max_concurrent_probes",
        "schedule",
        "every",
        "jitter",
        "cron",
        "timeouts",
        "connect",
        "first_token",
        "idle",
        "total",
        "max_response_bytes",
        "max_output_tokens_per_hour",
        "max_retry_after",
        // scenarios
        "system",
        "messages",
        "role",
        "content",
        "prompt",
        "prompt_file",
        "context_tokens",
        "max_tokens",
        "temperature",
        "stop",
        "extra_body",
        "cache_bust",
        "checks",
        "min_output_tokens",
        "max_output_tokens",
        "must_contain",
        "regex",
        "valid_json",
        "expect_model",
        // journeys
        "journeys",
        "tools",
        "description",
        "parameters",
        "steps",
        "expect_tool",
        "tool_result",
        "think_time",
        // targets
        "name",
        "dialect",
        "base_url",
        "model",
        "api_key",
        "env",
        "file",
        "auth",
        "headers",
        "query",
        "include_usage",
        "scenarios",
        "weight",
        "scenario_selection",
        "price",
        "production",
        // prices and buckets
        "prices",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "buckets",
    ];
    for option in options {
        let used = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains(&format!("{option}:")));
        assert!(used, "config/example.yml does not use `{option}`");
    }
}

#[test]
fn demo_config_loads() {
    let loaded = config::load(&repo_file("config/demo.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config::summary(&loaded),
        "OK: 8 targets, 2 scenarios, 1 journey, simulator on, 0 warnings"
    );
    // One target per dialect, in table order, then the one running the journey.
    let dialects: Vec<&str> = loaded.targets.iter().map(|t| t.dialect.as_str()).collect();
    assert_eq!(dialects[..DialectKind::ALL.len()], DialectKind::names());
    let agent = &loaded.targets[DialectKind::ALL.len()];
    assert_eq!(agent.name, "sim-agent");
    assert!(agent.scenarios.is_empty(), "runs its journey only");
    assert_eq!(agent.journeys[0].0.name, "weather-agent");
    for t in &loaded.targets {
        assert_eq!(t.base_url, config::BaseUrl::Simulator);
        assert_eq!(t.schedule.every, std::time::Duration::from_secs(5));
        assert!(t.price.is_some());
    }
}

#[test]
fn unreadable_file_is_named() {
    let err = config::load(Path::new("does-not-exist/inferprobe.yml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "does-not-exist/inferprobe.yml: 1 error\n  cannot read config file: no such file"
    );
}

/// A Bedrock target that will sign its requests, where no AWS credentials can be found: a
/// warning naming what to set (probes are not sent until there are some), not an error.
#[test]
fn bedrock_without_credentials_warns_and_names_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "targets:\n  - name: b\n    dialect: bedrock-converse\n    base_url: https://bedrock-runtime.eu-west-1.amazonaws.com\n    model: m\n";
    let load = |var: &dyn Fn(&str) -> Option<String>| {
        config::load_str_with(
            yaml,
            "b.yml",
            &Environment {
                base_dir: dir.path(),
                var,
                secrets_required: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let none = load(&|_| None);
    assert_eq!(none.warnings.len(), 1, "{:?}", none.warnings);
    let w = none.warnings[0].to_string();
    assert!(
        w.starts_with(
            "targets[0].auth: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ),
        "{w}"
    );
    let keys = load(&|k| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
        _ => None,
    });
    assert!(keys.warnings.is_empty(), "{:?}", keys.warnings);
    let bearer = load(&|k| (k == "AWS_BEARER_TOKEN_BEDROCK").then(|| "bedrock-key".into()));
    assert!(bearer.warnings.is_empty(), "{:?}", bearer.warnings);
}

/// `expect_model` on a dialect whose responses never name their model would fail every probe:
/// a config error that says so, not a canary that pages for nothing.
#[test]
fn expect_model_needs_a_dialect_that_reports_the_model() {
    let yaml = |dialect: &str| {
        format!(
            "scenarios:\n  s:\n    prompt: hi\n    checks: {{expect_model: m}}\ntargets:\n  - name: t\n    dialect: {dialect}\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    api_key: k\n    scenarios: [s]\n"
        )
    };
    let err = config::load_str(&yaml("bedrock-converse"), "t.yml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("targets[0].scenarios (line 11): scenario \"s\" checks expect_model, but bedrock-converse responses never name their model"),
        "{err}"
    );
    assert!(config::load_str(&yaml("ollama"), "t.yml").is_ok());
}
