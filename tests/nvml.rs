//! The NVML collector against a fake `libnvidia-ml.so` built from `tests/nvml/fake_nvml.c`
//! (two scripted GPUs; see that file for the script). Needs a C compiler (`cc`) on PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use inferprobe::collect::nvml::{start, GpuCollector, RefreshOutcome};
use inferprobe::config::gpus::{GpuEnabled, GpusConfig};
use inferprobe::metrics::gpu::{GpuFamily, GpuMetrics, GpuSnapshot};
use prometheus::{Encoder, Registry, TextEncoder};

const GIB: f64 = 1073741824.0;
const MIB: f64 = 1048576.0;

/// Builds the fake library once per test run.
fn built_fake() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-nvml");
        std::fs::create_dir_all(&dir).expect("create the fake NVML build directory");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nvml/fake_nvml.c");
        let out = dir.join("libnvidia-ml-fake.so");
        // Built under a private name, then renamed: another test run may have the old file loaded.
        let tmp = dir.join(format!("libnvidia-ml-fake.so.{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status();
        match status {
            Ok(s) if s.success() => {
                std::fs::rename(&tmp, &out).expect("move the fake NVML library into place");
                out
            }
            Ok(s) => panic!("cc failed to build the fake NVML library ({s})"),
            Err(e) => panic!(
                "these tests need a C compiler: running `cc` failed ({e}); install gcc or clang"
            ),
        }
    })
}

/// A private copy of the fake library: the fake keeps its script step in static state, and the
/// dynamic loader shares one instance per file, so each test loads its own file.
fn fake_lib(test: &str) -> String {
    let copy = built_fake().with_file_name(format!("libnvidia-ml-fake-{test}.so"));
    let tmp = copy.with_extension(format!("so.{}", std::process::id()));
    std::fs::copy(built_fake(), &tmp).expect("copy the fake NVML library");
    std::fs::rename(&tmp, &copy).expect("move the fake NVML library copy into place");
    copy.to_string_lossy().into_owned()
}

fn config(library_path: &str, top_n: usize) -> GpusConfig {
    GpusConfig {
        enabled: GpuEnabled::Required,
        library_path: Some(library_path.to_string()),
        interval: Duration::from_millis(100),
        process_top_n: top_n,
    }
}

fn setup(library_path: &str, top_n: usize) -> (Registry, GpuMetrics, GpuCollector) {
    let registry = Registry::new();
    let metrics = GpuMetrics::register(&registry).expect("register GPU metrics");
    let collector = GpuCollector::new(&config(library_path, top_n), metrics.clone())
        .expect("collector is enabled");
    (registry, metrics, collector)
}

fn scrape(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("encode metrics");
    String::from_utf8(buf).expect("metrics are UTF-8")
}

type Labels = BTreeMap<String, String>;

/// Parses the sample lines of the text format into (name, labels, value).
fn samples(text: &str) -> Vec<(String, Labels, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("a sample value is a float");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Labels::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                (name.to_string(), parse_labels(body))
            }
        };
        out.push((name, labels, value));
    }
    out
}

fn parse_labels(body: &str) -> Labels {
    let mut labels = Labels::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// The value of the one series of `name` whose labels are exactly `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
        .collect();
    assert!(found.len() <= 1, "{name}{labels:?} appears twice");
    found.first().copied()
}

fn count(text: &str, name: &str) -> usize {
    samples(text).iter().filter(|(n, _, _)| n == name).count()
}

/// Checks that the scrape is exactly the snapshot: every point is a series with its value, and
/// there is no other series.
fn assert_scrape_is_snapshot(text: &str, snapshot: &GpuSnapshot) {
    let mut points = 0;
    for (family, ps) in &snapshot.families {
        for p in ps {
            let labels: Vec<(&str, &str)> = family
                .label_names()
                .iter()
                .copied()
                .zip(p.labels.iter().map(String::as_str))
                .collect();
            assert_eq!(
                value(text, family.name(), &labels),
                Some(p.value),
                "{family:?} {labels:?}"
            );
            points += 1;
        }
    }
    assert_eq!(samples(text).len(), points, "{text}");
}

const GPU0: [(&str, &str); 2] = [("gpu", "0"), ("uuid", "GPU-fake-0000")];
const GPU1: [(&str, &str); 2] = [("gpu", "1"), ("uuid", "GPU-fake-0001")];

fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}

fn process(
    gpu: &[(&'static str, &'static str)],
    pid: &'static str,
    name: &'static str,
) -> Vec<(&'static str, &'static str)> {
    with(gpu, &[("pid", pid), ("process", name)])
}

#[test]
fn two_fake_gpus_export_exact_values() {
    let (registry, metrics, mut collector) = setup(&fake_lib("exact"), 5);
    assert_eq!(
        collector.refresh_once(),
        RefreshOutcome {
            nvml_up: true,
            gpus: 2,
            errors: 0
        }
    );
    let t = scrape(&registry);
    let snapshot = metrics.snapshot();
    assert_scrape_is_snapshot(&t, &snapshot);
    assert_eq!(snapshot.points(GpuFamily::NvmlUp)[0].value, 1.0);
    // The self-hosted cost reads GPU 0's power (GPU 1 does not report it) from the snapshot.
    assert_eq!(metrics.mean_power_usage_watts(), Some(250.5));

    assert_eq!(value(&t, "inferprobe_nvml_up", &[]), Some(1.0));
    assert_eq!(
        value(&t, "inferprobe_gpu_collector_last_refresh_success", &[]),
        Some(1.0)
    );
    let duration = value(&t, "inferprobe_gpu_collector_refresh_duration_seconds", &[]);
    assert!(matches!(duration, Some(d) if d >= 0.0), "{duration:?}");

    let info = |gpu: &[(&'static str, &'static str)], name: &'static str| {
        with(gpu, &[("name", name), ("driver_version", "550.54.15")])
    };
    assert_eq!(
        value(
            &t,
            "inferprobe_gpu_info",
            &info(&GPU0, "Fake NVIDIA H100 80GB HBM3")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&t, "inferprobe_gpu_info", &info(&GPU1, "Fake NVIDIA L4")),
        Some(1.0)
    );
    assert_eq!(count(&t, "inferprobe_gpu_info"), 2);

    // GPU 0 answers everything.
    let g0 = |name: &str| value(&t, name, &GPU0);
    assert_eq!(g0("inferprobe_gpu_utilization_ratio"), Some(0.75));
    assert_eq!(g0("inferprobe_gpu_memory_utilization_ratio"), Some(0.4));
    assert_eq!(g0("inferprobe_gpu_memory_used_bytes"), Some(4.294967296e9));
    assert_eq!(g0("inferprobe_gpu_memory_free_bytes"), Some(76.0 * GIB));
    assert_eq!(g0("inferprobe_gpu_memory_total_bytes"), Some(80.0 * GIB));
    assert_eq!(g0("inferprobe_gpu_temperature_celsius"), Some(65.0));
    assert_eq!(g0("inferprobe_gpu_power_usage_watts"), Some(250.5));
    assert_eq!(g0("inferprobe_gpu_power_limit_watts"), Some(700.0));
    assert_eq!(
        g0("inferprobe_gpu_energy_consumed_joules_total"),
        Some(123456.75)
    );
    assert_eq!(g0("inferprobe_gpu_sm_clock_hertz"), Some(1.98e9));
    assert_eq!(g0("inferprobe_gpu_memory_clock_hertz"), Some(2.619e9));
    assert_eq!(
        g0("inferprobe_gpu_pcie_rx_bytes_per_second"),
        Some(2_048_000.0)
    );
    assert_eq!(
        g0("inferprobe_gpu_pcie_tx_bytes_per_second"),
        Some(1_024_000.0)
    );
    // The volatile counters (the fake's aggregate ones are ten times larger).
    assert_eq!(g0("inferprobe_gpu_ecc_errors_corrected_total"), Some(7.0));
    assert_eq!(g0("inferprobe_gpu_ecc_errors_uncorrected_total"), Some(1.0));
    let fan = |n: &'static str| {
        value(
            &t,
            "inferprobe_gpu_fan_speed_ratio",
            &with(&GPU0, &[("fan", n)]),
        )
    };
    assert_eq!(fan("0"), Some(0.4));
    assert_eq!(fan("1"), Some(0.45));
    for (reason, active) in [
        ("gpu_idle", 0.0),
        ("applications_clocks_setting", 0.0),
        ("sw_power_cap", 1.0),
        ("hw_slowdown", 0.0),
        ("sync_boost", 0.0),
        ("sw_thermal_slowdown", 0.0),
        ("hw_thermal_slowdown", 1.0),
        ("hw_power_brake_slowdown", 0.0),
        ("display_clock_setting", 0.0),
    ] {
        let labels = with(&GPU0, &[("reason", reason)]);
        assert_eq!(
            value(&t, "inferprobe_gpu_clock_event_active", &labels),
            Some(active),
            "{reason}"
        );
    }
    let pm = "inferprobe_gpu_process_memory_used_bytes";
    assert_eq!(
        value(&t, pm, &process(&GPU0, "1002", "vllm")),
        Some(6.0 * GIB)
    );
    assert_eq!(
        value(&t, pm, &process(&GPU0, "1001", "python3")),
        Some(2.0 * GIB)
    );
    assert_eq!(
        value(&t, pm, &process(&GPU0, "1003", "Xorg")),
        Some(64.0 * MIB)
    );

    // GPU 1 answers the basics...
    let g1 = |name: &str| value(&t, name, &GPU1);
    assert_eq!(g1("inferprobe_gpu_utilization_ratio"), Some(0.1));
    assert_eq!(g1("inferprobe_gpu_memory_utilization_ratio"), Some(0.05));
    assert_eq!(g1("inferprobe_gpu_memory_used_bytes"), Some(GIB));
    assert_eq!(g1("inferprobe_gpu_memory_free_bytes"), Some(23.0 * GIB));
    assert_eq!(g1("inferprobe_gpu_memory_total_bytes"), Some(24.0 * GIB));
    assert_eq!(g1("inferprobe_gpu_temperature_celsius"), Some(40.0));
    assert_eq!(g1("inferprobe_gpu_power_limit_watts"), Some(72.0));
    assert_eq!(g1("inferprobe_gpu_sm_clock_hertz"), Some(1.41e9));
    assert_eq!(g1("inferprobe_gpu_memory_clock_hertz"), Some(6.251e9));
    assert_eq!(
        value(&t, pm, &process(&GPU1, "2001", "trainer")),
        Some(512.0 * MIB)
    );
    assert_eq!(count(&t, pm), 4);

    // ...and its unsupported readings have no series at all (GPU 0's are the only ones).
    for name in [
        "inferprobe_gpu_power_usage_watts",
        "inferprobe_gpu_energy_consumed_joules_total",
        "inferprobe_gpu_pcie_rx_bytes_per_second",
        "inferprobe_gpu_pcie_tx_bytes_per_second",
        "inferprobe_gpu_ecc_errors_corrected_total",
        "inferprobe_gpu_ecc_errors_uncorrected_total",
    ] {
        assert_eq!(g1(name), None, "{name}");
        assert_eq!(count(&t, name), 1, "{name}");
    }
    assert_eq!(count(&t, "inferprobe_gpu_fan_speed_ratio"), 2);
    assert_eq!(count(&t, "inferprobe_gpu_clock_event_active"), 9);
    assert!(!t.contains("GPU-fake-0001\",reason"));
    assert!(!t.contains("fan=\"0\",gpu=\"1\""));
}

#[test]
fn process_top_n_one_keeps_only_the_biggest_process() {
    let (registry, _metrics, mut collector) = setup(&fake_lib("top1"), 1);
    collector.refresh_once();
    let t = scrape(&registry);
    let pm = "inferprobe_gpu_process_memory_used_bytes";
    assert_eq!(
        value(&t, pm, &process(&GPU0, "1002", "vllm")),
        Some(6.0 * GIB)
    );
    assert_eq!(
        value(&t, pm, &process(&GPU1, "2001", "trainer")),
        Some(512.0 * MIB)
    );
    assert_eq!(count(&t, pm), 2);
}

#[test]
fn process_top_n_zero_exports_no_process_series() {
    let (registry, _metrics, mut collector) = setup(&fake_lib("top0"), 0);
    assert!(collector.refresh_once().nvml_up);
    let t = scrape(&registry);
    assert_eq!(count(&t, "inferprobe_gpu_process_memory_used_bytes"), 0);
    assert_eq!(count(&t, "inferprobe_gpu_memory_used_bytes"), 2);
}

#[test]
fn next_refresh_drops_exited_processes_and_failed_readings() {
    let (registry, metrics, mut collector) = setup(&fake_lib("step2"), 5);
    collector.refresh_once();
    let first = metrics.snapshot();
    let before = scrape(&registry);
    assert_eq!(
        value(&before, "inferprobe_gpu_temperature_celsius", &GPU1),
        Some(40.0)
    );

    // Step 2 of the fake: process 1002 exited, the energy counter grew, GPU 1's temperature
    // read fails with NVML_ERROR_UNKNOWN.
    assert_eq!(
        collector.refresh_once(),
        RefreshOutcome {
            nvml_up: true,
            gpus: 2,
            errors: 1
        }
    );
    let t = scrape(&registry);
    let second = metrics.snapshot();
    assert_scrape_is_snapshot(&t, &second);
    // The earlier snapshot a reader may still hold is untouched by the refresh.
    assert_scrape_is_snapshot(&before, &first);
    assert_eq!(
        second.points(GpuFamily::Temperature).len(),
        first.points(GpuFamily::Temperature).len() - 1
    );
    let pm = "inferprobe_gpu_process_memory_used_bytes";
    assert_eq!(value(&t, pm, &process(&GPU0, "1002", "vllm")), None);
    assert_eq!(
        value(&t, pm, &process(&GPU0, "1001", "python3")),
        Some(2.0 * GIB)
    );
    assert_eq!(count(&t, pm), 3);
    assert_eq!(
        value(&t, "inferprobe_gpu_energy_consumed_joules_total", &GPU0),
        Some(123556.5)
    );
    assert_eq!(value(&t, "inferprobe_gpu_temperature_celsius", &GPU1), None);
    assert_eq!(
        value(&t, "inferprobe_gpu_temperature_celsius", &GPU0),
        Some(65.0)
    );
    assert_eq!(value(&t, "inferprobe_nvml_up", &[]), Some(1.0));
    assert_eq!(
        value(&t, "inferprobe_gpu_collector_last_refresh_success", &[]),
        Some(0.0)
    );
}

#[test]
fn missing_library_means_nvml_down_and_no_gpu_series() {
    let missing = built_fake().with_file_name("no-such-libnvidia-ml.so");
    for enabled in [GpuEnabled::Auto, GpuEnabled::Required] {
        let registry = Registry::new();
        let metrics = GpuMetrics::register(&registry).unwrap();
        let mut cfg = config(&missing.to_string_lossy(), 5);
        cfg.enabled = enabled;
        let mut collector = GpuCollector::new(&cfg, metrics.clone()).expect("collector is enabled");
        assert_eq!(
            collector.refresh_once(),
            RefreshOutcome {
                nvml_up: false,
                gpus: 0,
                errors: 0
            }
        );
        // A second refresh inside the retry window does not try again, and still reports down.
        assert!(!collector.refresh_once().nvml_up);
        let t = scrape(&registry);
        assert_eq!(value(&t, "inferprobe_nvml_up", &[]), Some(0.0));
        assert_eq!(
            value(&t, "inferprobe_gpu_collector_last_refresh_success", &[]),
            Some(0.0)
        );
        assert!(!t.contains("inferprobe_gpu_info"));
        assert!(!t.contains("uuid="));
        // Only the collector's health is published, and the scrape renders exactly that.
        let snapshot = metrics.snapshot();
        let families: Vec<GpuFamily> = snapshot.families.keys().copied().collect();
        assert_eq!(
            families,
            [
                GpuFamily::NvmlUp,
                GpuFamily::RefreshDuration,
                GpuFamily::LastRefreshSuccess
            ]
        );
        assert_scrape_is_snapshot(&t, &snapshot);
        assert_eq!(metrics.mean_power_usage_watts(), None);
    }
}

#[test]
fn disabled_collector_is_not_started_and_exports_nothing() {
    let registry = Registry::new();
    let metrics = GpuMetrics::register(&registry).unwrap();
    let mut cfg = config(&fake_lib("disabled"), 5);
    cfg.enabled = GpuEnabled::Disabled;
    assert!(GpuCollector::new(&cfg, metrics.clone()).is_none());
    assert!(start(&cfg, metrics.clone()).is_none());
    assert_eq!(scrape(&registry), "");
    assert_eq!(*metrics.snapshot(), GpuSnapshot::default());
}

#[test]
fn background_thread_samples_until_shut_down() {
    let registry = Registry::new();
    let metrics = GpuMetrics::register(&registry).unwrap();
    let handle =
        start(&config(&fake_lib("thread"), 5), metrics.clone()).expect("collector started");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = scrape(&registry);
        // A refresh can fail a reading and still be up (the error is counted, the series left
        // out until the next refresh): wait for a refresh that read the memory.
        let memory = value(&t, "inferprobe_gpu_memory_total_bytes", &GPU0);
        if value(&t, "inferprobe_nvml_up", &[]) == Some(1.0) && memory.is_some() {
            assert_eq!(memory, Some(80.0 * GIB));
            break;
        }
        // Every scrape is one whole refresh: the health families come with the GPU ones.
        assert_eq!(
            value(&t, "inferprobe_nvml_up", &[]).is_some(),
            value(&t, "inferprobe_gpu_collector_refresh_duration_seconds", &[]).is_some(),
            "{t}"
        );
        assert!(Instant::now() < deadline, "no refresh within 20s:\n{t}");
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.shutdown();
}

#[test]
fn promtool_accepts_the_fake_gpu_output() {
    let (registry, _metrics, mut collector) = setup(&fake_lib("promtool"), 5);
    collector.refresh_once();
    let text = scrape(&registry);
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "note: promtool not runnable ({e}); skipping the lint (set CI to make this fail)"
            );
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool ran");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{report}");
    assert_eq!(report.trim(), "", "promtool lint findings:\n{report}");
}
