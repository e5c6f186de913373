//! The shipped dashboards and rules against a real Prometheus scraping a real inferprobe.
//!
//! inferprobe runs in-process against its simulator (healthy, failing and rate-limited targets,
//! and two that run a two-step journey, one failing at its second step),
//! scrapes the simulator's vLLM-style metrics and samples two fake GPUs (`tests/nvml/fake_nvml.c`).
//! A `prometheus` server scrapes it every second with every `alerts/*.rules.yml` loaded. Then every
//! query of every dashboard panel and variable must return data, every recording rule must
//! produce series, every rule must evaluate without error, and the probe alerts must be pending
//! or firing for the faulty targets only.
//!
//! Skipped with a note when `prometheus` is not installed, except under CI (env `CI` set), where
//! its absence fails the test. Without a C compiler (outside CI) the fake GPUs are left out and
//! the GPU dashboard's queries are only checked to be valid.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inferprobe::commands;
use serde::Deserialize;
use serde_json::Value;

/// Probes every second: two healthy targets, one answered with 5xx, one rate limited, and two
/// that run a two-step journey (the dashboard's Journeys row and the journey rules), healthy or
/// answered with 5xx at its second step.
const CONFIG: &str = r#"
global:
  schedule: {every: 1s, jitter: 0}
  timeouts: {first_token: 2s, idle: 1s, total: 4s}
simulator:
  model: sim-llm
  ttft: 50ms
  itl: 5ms
  output_tokens: 8
scenarios:
  short:
    prompt: "Count to eight."
    max_tokens: 16
journeys:
  two-turns:
    steps:
      - {name: ask, prompt: Say hello.}
      - {name: follow-up, prompt: Say goodbye.}
  fails-second:
    steps:
      - {name: ask, prompt: Say hello.}
      - {name: follow-up, prompt: Say goodbye., headers: {x-sim-fault: http_5xx}}
prices:
  sim-llm: {input_per_million: 1.0, output_per_million: 2.0}
targets:
  - {name: chat, dialect: openai-chat, base_url: simulator, model: sim-llm}
  - {name: messages, dialect: anthropic-messages, base_url: simulator, model: sim-llm}
  - {name: broken, dialect: openai-chat, base_url: simulator, model: sim-llm, headers: {x-sim-fault: http_5xx}}
  - {name: throttled, dialect: openai-chat, base_url: simulator, model: sim-llm, headers: {x-sim-fault: rate_limited}}
  - {name: agent, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [two-turns]}
  - {name: stuck-agent, dialect: openai-chat, base_url: simulator, model: sim-llm, journeys: [fails-second]}
servers:
  - {name: simulator, url: simulator, kind: vllm, interval: 1s, timeout: 900ms}
"#;

/// How long to wait for Prometheus to hold every series the checks need.
const DATA_DEADLINE: Duration = Duration::from_secs(45);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

// ------------------------------------------------------------------------------------------
// Dashboards

/// One query of a dashboard: where it is and its PromQL.
#[derive(Debug)]
struct PanelQuery {
    dashboard: String,
    panel: String,
    expr: String,
}

fn dashboards() -> Vec<(String, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested panels included, rows themselves left out.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

fn variable_names(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("variable name").to_string())
        .collect()
}

/// Grafana's built-in interval variables become fixed durations; every dashboard variable
/// becomes `.*` (all values), as its matchers are all `=~`.
fn substitute(expr: &str, variables: &[String]) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m");
    for v in variables {
        e = e
            .replace(&format!("${{{v}}}"), ".*")
            .replace(&format!("${v}"), ".*");
    }
    assert!(!e.contains('$'), "unknown variable left in {e}");
    e
}

/// `label_values(SELECTOR, LABEL)` as a PromQL query returning one series per value.
fn variable_query(query: &str) -> String {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a label_values() query: {query}"));
    let (selector, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    format!("group by ({}) ({selector})", label.trim())
}

fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (name, d) in dashboards() {
        let vars = variable_names(&d);
        for p in panels(&d) {
            for t in p["targets"].as_array().expect("targets") {
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: format!("{} / {}", p["title"], t["refId"]),
                    expr: substitute(t["expr"].as_str().expect("expr"), &vars),
                });
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: format!("variable {}", v["name"]),
                    expr: substitute(
                        &variable_query(v["query"]["query"].as_str().expect("query")),
                        &vars,
                    ),
                });
            }
        }
    }
    out
}

#[test]
fn dashboards_are_well_formed() {
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "inferprobe-canary.json",
            "inferprobe-gpu.json",
            "inferprobe-server.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(d["schemaVersion"].as_u64().unwrap() >= 39, "{name}");
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{name}"
        );
        assert!(d["title"].as_str().unwrap().starts_with("inferprobe / "));
        let vars = d["templating"]["list"].as_array().unwrap();
        assert_eq!(vars[0]["name"], "datasource", "{name}");
        assert_eq!(vars[0]["type"], "datasource", "{name}");
        assert_eq!(vars[0]["query"], "prometheus", "{name}");
        let names = variable_names(d);
        for required in ["job", "instance"] {
            assert!(
                names.iter().any(|n| n == required),
                "{name}: no ${required}"
            );
        }
        for v in &vars[1..] {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "{name}: {}",
                v["name"]
            );
            assert!(v["description"].as_str().is_some_and(|s| !s.is_empty()));
        }

        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: id {}",
                p["id"]
            );
            // No two panels cover the same grid cell.
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24, "{name}: {} is too wide", p["title"]);
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), p["title"].to_string()) {
                        panic!("{name}: {} overlaps {other}", p["title"]);
                    }
                }
            }
        }
        for p in panels(d) {
            let title = p["title"].as_str().unwrap();
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{name}: {title} has no unit");
            let desc = p["description"].as_str().unwrap_or("");
            assert!(desc.len() > 40, "{name}: {title} has no description");
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title}");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}: {title}");
                let expr = t["expr"].as_str().unwrap();
                assert!(expr.contains("inferprobe"), "{name}: {title}: {expr}");
            }
        }
    }
}

#[test]
fn provisioning_points_at_a_folder() {
    let text = std::fs::read_to_string(root().join("dashboards/provisioning.yml")).unwrap();
    #[derive(Deserialize)]
    struct Provisioning {
        #[serde(rename = "apiVersion")]
        api_version: u32,
        providers: Vec<Provider>,
    }
    #[derive(Deserialize)]
    struct Provider {
        name: String,
        r#type: String,
        options: BTreeMap<String, Value>,
    }
    let p: Provisioning = serde_saphyr::from_str(&text).expect("provisioning.yml");
    assert_eq!(p.api_version, 1);
    assert_eq!(p.providers.len(), 1);
    assert_eq!(p.providers[0].name, "inferprobe");
    assert_eq!(p.providers[0].r#type, "file");
    assert!(p.providers[0].options["path"].is_string());
}

#[test]
fn substitution_covers_variables_and_intervals() {
    let vars = vec!["job".to_string(), "target".to_string()];
    assert_eq!(
        substitute(
            r#"rate(x{job=~"$job", target=~"${target}"}[$__rate_interval]) / y[$__range]"#,
            &vars
        ),
        r#"rate(x{job=~".*", target=~".*"}[1m]) / y[5m]"#
    );
    assert_eq!(
        variable_query(r#"label_values(inferprobe_probes_total{job=~"$job"}, target)"#),
        r#"group by (target) (inferprobe_probes_total{job=~"$job"})"#
    );
}

// ------------------------------------------------------------------------------------------
// Rules

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    record: Option<String>,
}

fn rule_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("alerts"))
        .expect("alerts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    out.sort();
    out
}

/// (number of rules, recorded names) over every shipped rule file.
fn shipped_rules() -> (usize, BTreeSet<String>) {
    let mut count = 0;
    let mut records = BTreeSet::new();
    for path in rule_files() {
        let f: RuleFile = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for rule in f.groups.into_iter().flat_map(|g| g.rules) {
            count += 1;
            records.extend(rule.record);
        }
    }
    (count, records)
}

// ------------------------------------------------------------------------------------------
// Processes

/// A Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

fn prometheus_installed() -> bool {
    match Command::new("prometheus").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => format!("exit status {}", out.status),
                Err(e) => e.to_string(),
            };
            if in_ci() {
                panic!("prometheus is required in CI (Debian/Ubuntu: apt-get install prometheus): {why}");
            }
            eprintln!("note: prometheus not runnable ({why}); skipping the live Prometheus test");
            false
        }
    }
}

/// A loopback port free a moment ago. Prometheus does not report the port it bound, so it gets
/// one picked here; a lost race shows as an early exit and a retry with another port.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

async fn start_prometheus(scrape: SocketAddr) -> Prometheus {
    let mut last_log = String::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let rule_files: String = rule_files()
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rule_files}\
             scrape_configs:\n  - job_name: inferprobe\n    static_configs:\n      - targets: ['{scrape}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut prom = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = prom.child.try_wait() {
                break;
            }
            if let Ok(r) = reqwest::get(format!("{}/-/ready", prom.base)).await {
                if r.status().is_success() {
                    return prom;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last_log = prom.log();
    }
    panic!("prometheus did not become ready; its log:\n{last_log}");
}

/// Builds the fake NVML library; `None` (after a note) without a C compiler outside CI.
fn fake_nvml() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-nvml-prometheus");
    std::fs::create_dir_all(&dir).expect("create the fake NVML build directory");
    // Each test run builds its own file: the fake keeps its state per loaded file.
    let out = dir.join(format!("libnvidia-ml-fake.{}.so", std::process::id()));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(root().join("tests/nvml/fake_nvml.c"))
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => {
            if in_ci() {
                panic!("building the fake NVML library with cc failed in CI: {other:?}");
            }
            eprintln!("note: cannot build the fake NVML library ({other:?}); GPU queries are only checked for validity");
            None
        }
    }
}

/// Prometheus's answer to an instant query: Err(message) for a failed query, else the result.
async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Result<Vec<Value>, String> {
    let resp = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The single value of a query with one series.
async fn single(client: &reqwest::Client, base: &str, expr: &str) -> f64 {
    let result = query(client, base, expr).await.unwrap();
    assert_eq!(result.len(), 1, "{expr}: {result:?}");
    result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{expr}: {result:?}"))
}

/// Alerts (pending or firing) by name, with the targets they are about.
async fn active_alerts(client: &reqwest::Client, base: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(resp) = client.get(format!("{base}/api/v1/alerts")).send().await else {
        return out;
    };
    let Ok(body) = resp.json::<Value>().await else {
        return out;
    };
    for a in body["data"]["alerts"].as_array().into_iter().flatten() {
        let name = a["labels"]["alertname"].as_str().unwrap_or("").to_string();
        let target = a["labels"]["target"].as_str().unwrap_or("").to_string();
        out.entry(name).or_default().insert(target);
    }
    out
}

/// What is still missing: dashboard queries that failed or returned nothing, recording rules
/// without series, expected alerts not active yet.
async fn missing(
    client: &reqwest::Client,
    base: &str,
    queries: &[PanelQuery],
    records: &BTreeSet<String>,
    gpus: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        match query(client, base, &q.expr).await {
            Err(e) => out.push(format!("{} {}: {e}\n  {}", q.dashboard, q.panel, q.expr)),
            Ok(r) if r.is_empty() && (gpus || q.dashboard != "inferprobe-gpu.json") => out.push(
                format!("{} {}: no data\n  {}", q.dashboard, q.panel, q.expr),
            ),
            Ok(_) => {}
        }
    }
    for name in records {
        match query(client, base, name).await {
            Ok(r) if !r.is_empty() => {}
            other => out.push(format!("recording rule {name}: {other:?}")),
        }
    }
    let alerts = active_alerts(client, base).await;
    for (alert, target) in [
        ("InferprobeProbesFailing", "broken"),
        ("InferprobeProbesFailing", "throttled"),
        ("InferprobeErrorRatioHigh", "broken"),
        ("InferprobeRateLimited", "throttled"),
        ("InferprobeJourneyFailing", "stuck-agent"),
        // Not the burn-rate alerts: they need an hour of history before they may page.
    ] {
        if !alerts.get(alert).is_some_and(|t| t.contains(target)) {
            out.push(format!("alert {alert} not active for {target}"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_against_a_live_prometheus() {
    if !prometheus_installed() {
        return;
    }
    inferprobe::probe::engine::install_crypto_provider();
    let lib = fake_nvml();
    let config = match &lib {
        Some(path) => format!(
            "{CONFIG}gpus:\n  enabled: true\n  library_path: {}\n  interval: 1s\n",
            path.display()
        ),
        None => format!("{CONFIG}gpus:\n  enabled: false\n"),
    };
    let running = commands::start(common::load(&config), None, "127.0.0.1:0")
        .await
        .expect("inferprobe starts");
    let prom = start_prometheus(running.addr).await;
    let client = reqwest::Client::new();

    let queries = panel_queries();
    let (rule_count, records) = shipped_rules();
    assert!(queries.len() > 40, "{}", queries.len());

    let start = Instant::now();
    let mut left = missing(&client, &prom.base, &queries, &records, lib.is_some()).await;
    while !left.is_empty() && start.elapsed() < DATA_DEADLINE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        left = missing(&client, &prom.base, &queries, &records, lib.is_some()).await;
    }
    assert!(
        left.is_empty(),
        "after {:?}:\n{}\n\nprometheus log:\n{}",
        start.elapsed(),
        left.join("\n"),
        prom.log()
    );

    // Every shipped rule is loaded and evaluates without error.
    let rules: Value = client
        .get(format!("{}/api/v1/rules", prom.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), rule_count);
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{}: {}", r["name"], r["lastError"]);
    }

    // The healthy targets raise none of the probe alerts.
    let alerts = active_alerts(&client, &prom.base).await;
    for (alert, targets) in &alerts {
        for healthy in ["chat", "messages", "agent"] {
            assert!(
                !targets.contains(healthy),
                "{alert} is active for {healthy}"
            );
        }
    }

    // Values, not only presence.
    let p95 = single(
        &client,
        &prom.base,
        r#"target:inferprobe_time_to_first_token_seconds:p95_rate5m{target="chat"}"#,
    )
    .await;
    assert!((0.05..=1.0).contains(&p95), "TTFT p95 {p95}");
    let task = single(
        &client,
        &prom.base,
        r#"journey:inferprobe_journey_duration_seconds:p95_rate30m{target="agent"}"#,
    )
    .await;
    assert!((0.1..=2.0).contains(&task), "journey task time p95 {task}");
    // The failing journey's alert names the step that fails, and only that one.
    let failing = query(
        &client,
        &prom.base,
        r#"ALERTS{alertname="InferprobeJourneyFailing"}"#,
    )
    .await
    .expect("ALERTS");
    let steps: BTreeSet<(String, String)> = failing
        .iter()
        .map(|r| {
            let label = |k: &str| r["metric"][k].as_str().unwrap_or("").to_string();
            (label("target"), label("step"))
        })
        .collect();
    assert_eq!(
        steps,
        BTreeSet::from([("stuck-agent".to_string(), "follow-up".to_string())])
    );
    for (target, ratio) in [("chat", 0.0), ("broken", 1.0), ("throttled", 1.0)] {
        let expr = format!(
            r#"target:inferprobe_probes_failed_per_probes:ratio_rate5m{{target="{target}"}}"#
        );
        assert_eq!(single(&client, &prom.base, &expr).await, ratio, "{target}");
    }
    assert_eq!(
        single(
            &client,
            &prom.base,
            r#"target:inferprobe_threshold_ttft_p95_seconds:resolved{target="chat"}"#
        )
        .await,
        1.0
    );
    if lib.is_some() {
        assert_eq!(
            single(
                &client,
                &prom.base,
                r#"inferprobe_gpu_memory_total_bytes{gpu="0"}"#
            )
            .await,
            85899345920.0
        );
    }

    drop(prom);
    running.stop().await;
    if let Some(path) = lib {
        let _ = std::fs::remove_file(path);
    }
}
