//! `probe --trace` and `probe --count` as a user runs them (the binary), against an in-process
//! simulator whose ground truth says when it wrote each token.

mod common;

use std::process::Command;
use std::time::Duration;

const TOKENS: usize = 20;

fn probe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_inferprobe"))
        .arg("probe")
        .args(args)
        .output()
        .expect("inferprobe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Worst distance, in seconds, between the output events' offsets and the simulator's token
/// writes once the constant between the two clocks' origins is removed (the client's `t_start`
/// comes before the request reaches the server: connection set-up and sending).
fn worst_error(client: &[f64], truth: &[f64]) -> f64 {
    let d: Vec<f64> = client.iter().zip(truth).map(|(c, t)| c - t).collect();
    let shift = median(d.clone());
    assert!(
        (0.0..0.5).contains(&shift),
        "client offsets start before the server's: shift {shift}"
    );
    d.iter().map(|x| (x - shift).abs()).fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_lists_every_event_and_matches_the_ground_truth() {
    let sim = common::sim(&format!(
        "{{ttft: 60ms, itl: 15ms, output_tokens: {TOKENS}}}"
    ))
    .await;
    let url = format!("{}/v1", sim.base_url());
    // The machine is shared: three tries, the best one must be within 2 ms.
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let (code, out, err) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                probe(&[
                    "--url",
                    &url,
                    "--dialect",
                    "openai-chat",
                    "--model",
                    "sim-llm",
                    "--max-tokens",
                    "64",
                    "--trace",
                    "--json",
                ])
            }
        })
        .await
        .expect("joins");
        assert_eq!(code, 0, "{out}{err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let (events, probes): (Vec<_>, Vec<_>) = lines.iter().partition(|v| v["type"] == "event");
        assert_eq!(probes.len(), 1, "one probe line last");
        assert_eq!(lines.last().unwrap()["type"], "probe");
        // One line per event of the stream: the role chunk, one chunk per token, the finish
        // reason, the usage chunk and [DONE].
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        let mut want = vec!["metadata"];
        want.extend(std::iter::repeat_n("answer", TOKENS));
        want.extend(["finish", "usage", "end"]);
        assert_eq!(kinds, want);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["index"], i + 1);
            assert!(e["bytes"].as_u64().unwrap() > 0);
        }
        assert_eq!(probes[0]["output_events"], TOKENS);

        let record = sim
            .ground_truth()
            .last()
            .cloned()
            .expect("the simulator recorded the request");
        let truth: Vec<f64> = record
            .tokens
            .iter()
            .map(|t| t.saturating_duration_since(record.arrival).as_secs_f64())
            .collect();
        assert_eq!(truth.len(), TOKENS);
        let client: Vec<f64> = events
            .iter()
            .filter(|e| e["kind"] == "answer")
            .map(|e| e["offset_seconds"].as_f64().unwrap())
            .collect();
        best = best.min(worst_error(&client, &truth));
        if best <= 0.002 {
            break;
        }
    }
    assert!(
        best <= 0.002,
        "output events within 2 ms of the ground truth: worst {:.2} ms",
        best * 1e3
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_runs_probes_in_a_row_and_summarizes_them() {
    let sim = common::sim("{ttft: 20ms, itl: 5ms, output_tokens: 4}").await;
    let url = format!("{}/v1", sim.base_url());
    let started = std::time::Instant::now();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        probe(&[
            "--url",
            &url,
            "--dialect",
            "openai-chat",
            "--model",
            "sim-llm",
            "--count",
            "5",
            "--interval",
            "200ms",
            "--json",
        ])
    })
    .await
    .expect("joins");
    assert_eq!(code, 0, "{out}{err}");
    // Five starts 200 ms apart: at least 800 ms.
    assert!(started.elapsed() >= Duration::from_millis(800));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for (i, p) in lines[..5].iter().enumerate() {
        assert_eq!(p["type"], "probe");
        assert_eq!(p["probe"], i + 1);
        assert_eq!(p["result"], "success");
    }
    let s = &lines[5];
    assert_eq!(s["type"], "summary");
    assert_eq!(s["probes"], 5);
    assert_eq!(s["results"]["success"], 5);
    let ttft = &s["milestones"]["time_to_first_token"];
    assert_eq!(ttft["count"], 5);
    let p50 = ttft["p50_seconds"].as_f64().unwrap();
    assert!((0.02..0.5).contains(&p50), "TTFT p50 {p50}");
    assert!(ttft["max_seconds"].as_f64().unwrap() >= p50);
    assert_eq!(s["milestones"]["inter_token_latency"]["count"], 15);

    // A failing probe among them makes the exit code 1 and shows in the results.
    sim.shutdown().await;
    let sim =
        common::sim("{ttft: 20ms, itl: 5ms, output_tokens: 4, faults: {http_5xx: 1.0}}").await;
    let url = format!("{}/v1", sim.base_url());
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        probe(&[
            "--url",
            &url,
            "--dialect",
            "openai-chat",
            "--model",
            "sim-llm",
            "--count",
            "2",
        ])
    })
    .await
    .expect("joins");
    assert_eq!(code, 1);
    assert!(out.contains("2 probes: http_5xx 2"), "{out}");
    sim.shutdown().await;
}
