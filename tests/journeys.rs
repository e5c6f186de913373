//! Journeys end to end against the in-process simulator: a tool-calling journey in every
//! dialect with tools, how a journey's duration relates to its steps, a fault in one step, the
//! schedule's treatment of a journey as one probe, `probe --journey` and config errors.

mod common;

use std::time::Duration;

use common::{eventually, get, sample};
use inferprobe::commands;
use inferprobe::config::{BaseUrl, Loaded};
use inferprobe::journey::{run_journey, JourneyOutcome};
use inferprobe::probe::dialect::DialectKind;
use inferprobe::probe::engine;
use inferprobe::runtime::simulator_base_url;

/// Think time before the second step of the tool journey.
const THINK: Duration = Duration::from_millis(300);

fn tool_config() -> String {
    let mut targets = String::new();
    for d in DialectKind::ALL.iter().filter(|d| d.supports_tools()) {
        let name = d.as_str();
        // Bedrock's signer is not needed against the simulator.
        let auth = if *d == DialectKind::BedrockConverse {
            ", auth: bearer"
        } else {
            ""
        };
        targets.push_str(&format!(
            "  - {{name: {name}, dialect: {name}, base_url: simulator, model: sim-llm, journeys: [weather]{auth}}}\n"
        ));
    }
    format!(
        r#"
simulator:
  ttft: 40ms
  itl: 5ms
  output_tokens: 12
journeys:
  weather:
    system: You are a weather assistant. Use the tools.
    tools:
      get_weather:
        description: Current weather in a city.
        parameters:
          type: object
          properties:
            city: {{type: string, minLength: 1}}
            unit: {{type: string, enum: [celsius, fahrenheit]}}
          required: [city]
          additionalProperties: false
    steps:
      - name: ask
        prompt: What is the weather in Lisbon right now?
        expect_tool: get_weather
        tool_result: {{city: Lisbon, temp_c: 21, sky: clear}}
      - name: answer
        think_time: {think}ms
        checks: {{must_contain: ["temp_c"]}}
targets:
{targets}prices:
  sim-llm: {{input_per_million: 1.0, output_per_million: 2.0}}
"#,
        think = THINK.as_millis()
    )
}

async fn run(loaded: &Loaded, sim_root: &str, target: &str, journey: &str) -> JourneyOutcome {
    let t = loaded
        .targets
        .iter()
        .find(|t| t.name == target)
        .expect("target");
    let base = match &t.base_url {
        BaseUrl::Simulator => simulator_base_url(sim_root, t.dialect),
        BaseUrl::Url(u) => u.clone(),
    };
    let j = t
        .journeys
        .iter()
        .find(|(j, _)| j.name == journey)
        .expect("journey")
        .0
        .clone();
    let client = engine::client_for(&t.timeouts).expect("client");
    run_journey(&client, t, &base, &j).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_calling_journey_succeeds_in_every_dialect_with_tools() {
    engine::install_crypto_provider();
    let loaded = common::load(&tool_config());
    let sim = inferprobe::sim::start(loaded.simulator.clone().expect("simulator"))
        .await
        .expect("simulator starts");
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 1},
                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"], "additionalProperties": false
    });
    let mut checked = 0;
    for t in &loaded.targets {
        let o = run(&loaded, &sim.base_url(), &t.name, "weather").await;
        let d = t.dialect.as_str();
        assert_eq!(
            o.result.as_str(),
            "success",
            "{d}: {:?} at {:?}",
            o.error,
            o.failed_step
        );
        assert_eq!(o.model_calls(), 2, "{d}");
        let ask = &o.steps[0].outcome;
        assert_eq!(ask.tool_calls.len(), 1, "{d}: {:?}", ask.tool_calls);
        let call = &ask.tool_calls[0];
        assert_eq!(call.name, "get_weather", "{d}");
        assert!(!call.id.is_empty(), "{d}");
        let args: serde_json::Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|e| panic!("{d}: arguments {:?}: {e}", call.arguments));
        inferprobe::journey::schema::validate(&schema, &args)
            .unwrap_or_else(|e| panic!("{d}: {e}"));
        let answer = &o.steps[1].outcome;
        assert!(
            answer.answer.contains("temp_c"),
            "{d}: the answer is built from the tool result: {:?}",
            answer.answer
        );
        // The second request carries the first turn, the call and its result.
        let (i1, i2) = (ask.input_tokens, answer.input_tokens);
        assert!(
            matches!((i1, i2), (Some(a), Some(b)) if b > a),
            "{d}: input tokens {i1:?} -> {i2:?}"
        );
        // Duration = steps' E2E + think time + what runs between the two requests (reading the
        // end of the first body, building the second request; under a millisecond here). The
        // bound allows 150 ms of scheduling noise on a shared two-core machine.
        let e2e: Duration = o
            .model_time()
            .unwrap_or_else(|| panic!("{d}: every step completed"));
        let lower = e2e + THINK;
        assert!(
            o.duration >= lower && o.duration <= lower + Duration::from_millis(150),
            "{d}: duration {:?}, steps' E2E {e2e:?} + think {THINK:?}",
            o.duration
        );
        assert!(o.think >= THINK, "{d}: slept {:?}", o.think);
        let cost = o.cost_usd().expect("priced");
        let steps_cost: f64 = o.steps.iter().filter_map(|s| s.outcome.cost_usd).sum();
        assert!((cost - steps_cost).abs() < 1e-12, "{d}");
        checked += 1;
    }
    assert_eq!(checked, 6, "every dialect with tools ran");
    sim.shutdown().await;
}

const DAEMON: &str = r#"
global:
  max_concurrent_probes: 8
  schedule: {every: 1s, jitter: 0}
  timeouts: {connect: 1s, first_token: 2s, idle: 1s, total: 4s}
simulator:
  ttft: 30ms
  itl: 5ms
  output_tokens: 6
journeys:
  two-turns:
    steps:
      - {name: first, prompt: Say hello.}
      - {name: second, prompt: Say goodbye.}
  fails-second:
    steps:
      - {name: first, prompt: Say hello.}
      - {name: second, prompt: Say goodbye., headers: {x-sim-fault: http_5xx}}
  slow:
    think_time: 1500ms
    steps:
      - {name: one, prompt: Hi.}
      - {name: two, prompt: Again.}
scenarios:
  short: {prompt: Count to three., max_tokens: 8}
targets:
  - {name: ok, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [two-turns]}
  - {name: broken, dialect: anthropic-messages, base_url: simulator, model: sim-llm, journeys: [fails-second]}
  - {name: slow, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [slow]}
  - {name: mixed, dialect: openai-chat, base_url: simulator, model: sim-llm, scenarios: [short], journeys: [two-turns]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_records_journeys_steps_and_the_failing_step() {
    let running = commands::start(common::load(DAEMON), None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let base = format!("http://{}", running.addr);
    let text = eventually(
        Duration::from_secs(20),
        "journeys of every target",
        || async {
            let (_, text) = get(&format!("{base}/metrics")).await;
            let done = |target: &str, result: &str, step: &str| {
                sample(
                    &text,
                    "inferprobe_journeys_total",
                    &[("target", target), ("result", result), ("step", step)],
                )
                .is_some_and(|v| v >= 1.0)
            };
            let ready = done("ok", "success", "")
                && done("broken", "http_5xx", "second")
                && done("mixed", "success", "")
                && sample(
                    &text,
                    "inferprobe_journeys_skipped_total",
                    &[("target", "slow"), ("reason", "overlap")],
                )
                .is_some_and(|v| v >= 1.0);
            ready.then_some(text)
        },
    )
    .await;
    let value = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);

    // The failing step is named; the step before it was observed, the failing one has no TTFT.
    let broken = [("target", "broken"), ("journey", "fails-second")];
    assert_eq!(
        value(
            "inferprobe_journeys_total",
            &[broken[0], ("result", "success")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value("inferprobe_journey_success", &broken),
        Some(0.0),
        "last journey failed"
    );
    let first_ttft = value(
        "inferprobe_journey_step_time_to_first_token_seconds_count",
        &[broken[0], ("step", "first")],
    )
    .unwrap_or(0.0);
    assert!(first_ttft >= 1.0, "step 1 observed: {first_ttft}");
    assert_eq!(
        value(
            "inferprobe_journey_step_time_to_first_token_seconds_count",
            &[broken[0], ("step", "second")]
        ),
        None,
        "a 5xx step has no TTFT"
    );
    assert!(
        value(
            "inferprobe_journey_step_requests_total",
            &[broken[0], ("step", "second"), ("result", "http_5xx")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        value("inferprobe_journey_duration_seconds_count", &broken),
        None,
        "failed journeys are not in the duration histogram"
    );

    // A successful journey: duration, calls, tokens growing step to step.
    let ok = [("target", "ok"), ("journey", "two-turns")];
    let runs = value("inferprobe_journeys_total", &[ok[0], ("result", "success")]).unwrap();
    assert_eq!(
        value("inferprobe_journey_duration_seconds_count", &ok),
        Some(runs)
    );
    let calls = value("inferprobe_journey_model_calls_total", &ok).unwrap();
    assert_eq!(calls, 2.0 * runs, "two model calls per journey");
    let input = |step| {
        value(
            "inferprobe_journey_step_tokens_total",
            &[ok[0], ("step", step), ("direction", "input")],
        )
        .unwrap()
    };
    assert!(
        input("second") > input("first"),
        "context grows: {} then {}",
        input("first"),
        input("second")
    );
    // Steps of journeys are not single probes: no scenario series under the journey's name.
    assert_eq!(
        value("inferprobe_probes_total", &[("scenario", "two-turns")]),
        None
    );
    // A target with a scenario and a journey runs both in turn.
    assert!(
        value(
            "inferprobe_probes_total",
            &[
                ("target", "mixed"),
                ("scenario", "short"),
                ("result", "success")
            ]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    // On demand, blackbox style: one journey into a fresh registry.
    let (status, body) = get(&format!("{base}/probe?target=ok&journey=two-turns")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(
            &body,
            "inferprobe_journey_success",
            &[("journey", "two-turns")]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "inferprobe_journey_model_calls_total", &[]),
        Some(2.0)
    );
    let (status, body) = get(&format!("{base}/probe?target=ok&journey=nope")).await;
    assert_eq!(status, 400);
    assert_eq!(body, "target \"ok\" has no journey \"nope\"\n");

    // The status page lists each journey with its latest result and failing step.
    let (_, page) = get(&format!("{base}/")).await;
    assert!(page.contains("<h2>Journeys</h2>"), "{page}");
    assert!(
        page.contains(
            "<tr><td>broken</td><td>fails-second</td><td class=\"n\">2</td><td class=\"bad\">http_5xx</td><td>second</td>"
        ),
        "{page}"
    );
    running.stop().await;
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inferprobe"))
        .args(args)
        .output()
        .expect("inferprobe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_journey_prints_steps_and_exits_by_result() {
    let f =
        write_config(&DAEMON.replace("schedule: {every: 1s, jitter: 0}", "schedule: {every: 1m}"));
    let path = f.path().to_str().unwrap();
    let (code, out, err) = cli(&[
        "probe",
        "--config.file",
        path,
        "--target",
        "ok",
        "--journey",
        "two-turns",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["result"], "success");
    assert_eq!(v["model_calls"], 2);
    assert_eq!(v["steps"][0]["step"], "first");
    assert_eq!(v["steps"][1]["step"], "second");
    assert!(v["steps"][1]["input_tokens"].as_u64() > v["steps"][0]["input_tokens"].as_u64());

    let (code, out, _) = cli(&[
        "probe",
        "--config.file",
        path,
        "--target",
        "broken",
        "--journey",
        "fails-second",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("journey    fails-second: http_5xx at step second"),
        "{out}"
    );

    let (code, _, err) = cli(&[
        "probe",
        "--config.file",
        path,
        "--target",
        "ok",
        "--journey",
        "nope",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--journey=nope: target \"ok\" runs no such journey; its journeys: two-turns"),
        "{err}"
    );
}

fn errors_of(yaml: &str) -> String {
    match inferprobe::config::load_str(yaml, "test.yml") {
        Ok(_) => panic!("config loaded:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn journey_config_errors_name_the_place() {
    let base = "targets:\n  - {name: t, dialect: DIALECT, base_url: \"http://127.0.0.1:1/v1\", model: m, journeys: [j]}\n";
    let with = |journeys: &str, dialect: &str| {
        format!("journeys:\n{journeys}{}", base.replace("DIALECT", dialect))
    };
    let tools = "  j:\n    tools:\n      f: {parameters: {type: object, properties: {a: {type: string}}}}\n";
    let e = errors_of(&with(
        &format!("{tools}    steps:\n      - {{name: s, prompt: hi, expect_tool: f}}\n"),
        "openai-completions",
    ));
    assert!(
        e.contains("targets[0].journeys[0]")
            && e.contains(
                "journey \"j\" offers tools, but the openai-completions API has no tool calls"
            ),
        "{e}"
    );
    let e = errors_of(&with(
        &format!("{tools}    steps:\n      - {{name: s, prompt: hi, expect_tool: g}}\n"),
        "openai-chat",
    ));
    assert!(
        e.contains("journeys.j.steps[0].expect_tool")
            && e.contains("unknown tool \"g\", expected one of `f`"),
        "{e}"
    );
    let e = errors_of(&with(
        &format!("{tools}    steps:\n      - {{name: s, prompt: hi, expect_tool: f}}\n      - {{name: t, prompt: again}}\n"),
        "openai-chat",
    ));
    assert!(
        e.contains("journeys.j.steps[0].tool_result")
            && e.contains("required: the next step answers from the tool's result"),
        "{e}"
    );
    let e = errors_of(&with(
        &format!("{tools}    steps:\n      - {{name: s, prompt: hi, expect_tool: f, tool_result: ok}}\n      - {{name: t, prompt: again}}\n"),
        "openai-chat",
    ));
    assert!(
        e.contains("journeys.j.steps[1].prompt") && e.contains("must be left out"),
        "{e}"
    );
    let e = errors_of(&with(
        "  j:\n    steps:\n      - {name: s, prompt: hi}\n      - {name: s}\n",
        "openai-chat",
    ));
    assert!(
        e.contains("journeys.j.steps[1].name") && e.contains("used twice"),
        "{e}"
    );
    assert!(
        e.contains("journeys.j.steps[1].prompt") && e.contains("required"),
        "{e}"
    );
    let e = errors_of(&with(
        "  j:\n    tools:\n      f: {parameters: {type: object, properties: {a: {type: string, oneOf: []}}}}\n    steps:\n      - {name: s, prompt: hi, expect_tool: f}\n",
        "openai-chat",
    ));
    assert!(
        e.contains("journeys.j.tools.f.parameters")
            && e.contains("/properties/a/oneOf: keyword \"oneOf\" is not checked"),
        "{e}"
    );
    let e = errors_of("journeys:\n  j:\n    steps: []\ntargets: []\n");
    assert!(
        e.contains("journeys.j.steps") && e.contains("at least one step"),
        "{e}"
    );
    let e = errors_of(&base.replace("DIALECT", "openai-chat"));
    assert!(
        e.contains("unknown journey \"j\"; the file defines no journeys"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_budget_counts_every_step_of_a_journey() {
    // 2 steps of 6 output tokens: 12 per journey. With a budget of 20 an hour, the first journey
    // leaves 8 and the second spends past it, so exactly two run. Were only one step counted (6
    // per journey), four would.
    let yaml = r#"
global:
  schedule: {every: 1s, jitter: 0}
  max_output_tokens_per_hour: 20
simulator: {ttft: 10ms, itl: 2ms, output_tokens: 6}
journeys:
  two:
    steps:
      - {name: a, prompt: One.}
      - {name: b, prompt: Two.}
targets:
  - {name: t, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [two]}
"#;
    let running = commands::start(common::load(yaml), None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let base = format!("http://{}", running.addr);
    let text = eventually(Duration::from_secs(20), "budget skips", || async {
        let (_, text) = get(&format!("{base}/metrics")).await;
        sample(
            &text,
            "inferprobe_journeys_skipped_total",
            &[("reason", "token_budget")],
        )
        .is_some_and(|v| v >= 2.0)
        .then_some(text)
    })
    .await;
    assert_eq!(
        sample(&text, "inferprobe_journeys_total", &[("result", "success")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "inferprobe_journey_tokens_total",
            &[("direction", "output")]
        ),
        Some(24.0)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_scoped_to_tool_results_fails_only_the_step_after_the_tool_call() {
    engine::install_crypto_provider();
    // Every request would fail, but only those answering a tool call may.
    let yaml = tool_config().replace(
        "  output_tokens: 12\n",
        "  output_tokens: 12\n  faults: {http_5xx: 1.0}\n  fault_on: tool-result\n",
    );
    let loaded = common::load(&yaml);
    let sim = inferprobe::sim::start(loaded.simulator.clone().expect("simulator"))
        .await
        .expect("simulator starts");
    let o = run(&loaded, &sim.base_url(), "openai-chat", "weather").await;
    assert_eq!(o.result.as_str(), "http_5xx", "{:?}", o.error);
    assert_eq!(o.failed_step.as_deref(), Some("answer"));
    assert_eq!(o.steps[0].outcome.result.as_str(), "success");
    assert_eq!(o.steps[0].outcome.tool_calls[0].name, "get_weather");
    sim.shutdown().await;
}
