//! `cargo bench --bench inferprobe [-- SECTION...]`: inferprobe's benchmark command.
//!
//! Sections (all by default): `accuracy` (TTFT and ITL error against the simulator's ground
//! truth), `cpu` (engine CPU time per 1,000 streamed tokens), `sse` (SSE events framed and decoded
//! per second on one core), `rss` (resident memory of an idle daemon with 1 and 100 targets),
//! `gate` (the release gate's verdicts on synthetic samples with a known change), `journey` (what
//! a journey adds between its steps), `otlp` (recording a probe into the OpenTelemetry
//! instruments, and one export's size and time).
//! Prints a Markdown report on stdout; progress goes to stderr. Loopback only, port 0, bounded
//! in count and time (about two and a half minutes in all).

mod accuracy;
mod cpu;
mod gate;
mod journey;
mod otlp;
mod procs;
mod rss;
mod sse_parse;
mod stats;

use std::time::Instant;

use anyhow::Context;
use inferprobe::probe::dialect::DialectKind;

use stats::{us, Table};

/// Probes of the accuracy section, for each dialect of the table.
const ACCURACY_PROBES: usize = 200;
/// Probes per pacing of the CPU section.
const CPU_PROBES: usize = 50;
/// Journeys per dialect of the journey section.
const JOURNEYS: usize = 100;
/// Timed passes per row of the SSE section.
const SSE_PASSES: usize = 30;
/// Timed passes per size of the SSE section's long-line rows.
const LONG_LINE_PASSES: usize = 5;

const SECTIONS: [&str; 7] = ["accuracy", "cpu", "sse", "rss", "gate", "journey", "otlp"];

fn main() {
    // `cargo bench` passes `--bench`; other flags are libtest's and do not apply here.
    let mut chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(bad) = chosen.iter().find(|a| !SECTIONS.contains(&a.as_str())) {
        eprintln!(
            "unknown section {bad:?}; choose from {}",
            SECTIONS.join(", ")
        );
        std::process::exit(2);
    }
    if chosen.is_empty() {
        chosen = SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    if let Err(e) = run(&chosen) {
        eprintln!("benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

fn run(sections: &[String]) -> anyhow::Result<()> {
    inferprobe::probe::engine::install_crypto_provider();
    // The daemon's own runtime: multi-threaded, one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let t0 = Instant::now();
    let has = |s: &str| sections.iter().any(|x| x == s);
    // Measured first, while the heap is fresh: freed memory from later sections would be reused
    // and hide the growth.
    let clients = if has("rss") {
        let n = 100;
        let (before, after) = rt.block_on(rss::clients_cost(n))?;
        Some((n, before, after))
    } else {
        None
    };

    let mut machine = Table::new(&["machine", "value"]);
    for (k, v) in procs::machine() {
        machine.row(vec![k, v]);
    }
    println!("## Results\n\n{}", machine.render());

    if has("accuracy") {
        println!(
            "\n### 1. Timing error against the simulator's ground truth\n\n\
             In-process simulator: TTFT {} ms, ITL {} ms, {} tokens; one probe at a time. Signed \
             error in µs (positive: the probe measured later / longer than the truth).\n",
            accuracy::TTFT.as_millis(),
            accuracy::ITL.as_millis(),
            accuracy::TOKENS
        );
        for (dialect, probes) in DialectKind::ALL.map(|d| (d, ACCURACY_PROBES)) {
            eprintln!("accuracy: {probes} probes of {}...", dialect.as_str());
            let r = rt.block_on(accuracy::run(dialect, probes))?;
            let mut t = Table::new(&[
                &format!("{} ({} probes)", r.dialect.as_str(), r.probes),
                "samples",
                "p50 µs",
                "p99 µs",
                "abs p99 µs",
                "abs max µs",
            ]);
            for m in &r.measures {
                let s = m.summary;
                t.row(vec![
                    m.name.to_string(),
                    s.n.to_string(),
                    us(s.p50),
                    us(s.p99),
                    us(s.abs_p99),
                    us(s.abs_max),
                ]);
            }
            println!("{}", t.render());
        }
    }

    if has("cpu") {
        eprintln!(
            "cpu: {CPU_PROBES} probes × {} tokens per pacing...",
            cpu::TOKENS
        );
        let rows = rt.block_on(cpu::run(CPU_PROBES))?;
        println!(
            "\n### 2. Engine CPU time per 1,000 streamed tokens\n\n\
             openai-chat against an `inferprobe sim` process (its CPU not counted); {} tokens \
             per response, probes one at a time.\n",
            cpu::TOKENS
        );
        let mut t = Table::new(&[
            "simulated ITL",
            "probes",
            "tokens",
            "wall s",
            "user ms",
            "system ms",
            "CPU ms / 1,000 tokens",
            "share of one core",
        ]);
        for r in &rows {
            t.row(vec![
                r.itl.to_string(),
                r.probes.to_string(),
                r.tokens.to_string(),
                format!("{:.2}", r.wall.as_secs_f64()),
                format!("{:.1}", r.user.as_secs_f64() * 1e3),
                format!("{:.1}", r.system.as_secs_f64() * 1e3),
                format!("{:.2}", r.per_1000().as_secs_f64() * 1e3),
                format!("{:.1} %", r.core_share() * 100.0),
            ]);
        }
        println!("{}", t.render());
    }

    if has("sse") {
        eprintln!("sse: {SSE_PASSES} passes per row...");
        let rows = sse_parse::run(SSE_PASSES)?;
        println!(
            "\n### 3. SSE events framed and decoded per second, one core\n\n\
             `sse::frame` + the dialect decoder over a {}-token stream, best and median of {} \
             passes.\n",
            sse_parse::TOKEN_EVENTS,
            SSE_PASSES
        );
        let mut t = Table::new(&[
            "stream",
            "chunking",
            "events",
            "KiB",
            "chunks",
            "best events/s",
            "median events/s",
            "median MiB/s",
        ]);
        for r in &rows {
            t.row(vec![
                r.dialect.as_str().to_string(),
                r.chunking.label(),
                r.events.to_string(),
                (r.bytes / 1024).to_string(),
                r.chunks.to_string(),
                format!("{:.0}", r.best),
                format!("{:.0}", r.median),
                format!("{:.1}", r.median_mib),
            ]);
        }
        println!("{}", t.render());

        eprintln!("sse: long lines, {LONG_LINE_PASSES} passes per size...");
        let rows = sse_parse::long_lines(LONG_LINE_PASSES)?;
        println!(
            "One event whose single `data:` line is long, arriving in {} KiB chunks (framing \
             only, no decoding), best and median of {LONG_LINE_PASSES} passes.\n",
            sse_parse::LONG_LINE_CHUNK / 1024
        );
        let mut t = Table::new(&["line MiB", "chunks", "best ms", "median ms", "median MiB/s"]);
        for r in &rows {
            t.row(vec![
                format!("{:.0}", r.bytes as f64 / (1024.0 * 1024.0)),
                r.chunks.to_string(),
                format!("{:.1}", r.best_s * 1e3),
                format!("{:.1}", r.median_s * 1e3),
                format!(
                    "{:.1}",
                    r.bytes as f64 / (1024.0 * 1024.0) / r.median_s.max(1e-9)
                ),
            ]);
        }
        println!("{}", t.render());
    }

    if has("rss") {
        eprintln!("rss: idle daemons...");
        let sim = procs::spawn_sim(&[])?;
        let cases = [
            (1, ""),
            (100, ""),
            (100, "MALLOC_ARENA_MAX=2"),
            (100, "TOKIO_WORKER_THREADS=1"),
        ];
        let rows = rss::run(&sim.addr, &cases)?;
        drop(sim);
        println!(
            "\n### 4. Resident memory of an idle daemon\n\n\
             `inferprobe run`, targets every 1h (none due during the measurement), no GPU \
             library on this machine. MiB from /proc/PID/status.\n"
        );
        let mut t = Table::new(&[
            "targets",
            "extra environment",
            "RSS at ready",
            &format!("RSS after {} s idle", rss::IDLE.as_secs()),
            "RSS after a scrape",
            "of which anon",
            "of which file",
            "peak (VmHWM)",
            "threads",
            "/metrics samples",
        ]);
        let mib = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
        for r in &rows {
            t.row(vec![
                r.targets.to_string(),
                if r.env.is_empty() { "-" } else { r.env }.to_string(),
                mib(r.ready.rss_kb),
                mib(r.idle.rss_kb),
                mib(r.scraped.rss_kb),
                mib(r.scraped.anon_kb),
                mib(r.scraped.file_kb),
                mib(r.scraped.hwm_kb),
                r.scraped.threads.to_string(),
                r.series.to_string(),
            ]);
        }
        println!("{}", t.render());
        if let Some((n, before, after)) = clients {
            println!(
                "Contributor check: building {n} HTTP clients as the daemon does (one per target, \
                 `engine::client_for`) grows this benchmark's own RSS by {:.1} MiB \
                 ({:.0} KiB per client).\n",
                after.saturating_sub(before) as f64 / 1024.0,
                after.saturating_sub(before) as f64 / n as f64
            );
        }
    }

    if has("journey") {
        eprintln!("journey: {JOURNEYS} journeys per dialect...");
        let rows = rt.block_on(journey::run(JOURNEYS))?;
        println!(
            "\n### Journeys: time between steps that is neither E2E nor think time\n\n\
             A {}-step journey (a tool call, the answer from its result, a follow-up) against the \
             in-process simulator, {} ms think time before steps 2 and 3. Overhead = next step's \
             `t_start` − previous step's end of stream − the think time slept; oversleep = think \
             time slept − configured. µs.\n",
            journey::STEPS,
            journey::THINK.as_millis()
        );
        let mut t = Table::new(&[
            "dialect",
            "journeys",
            "step boundaries",
            "overhead p50",
            "p99",
            "max",
            "oversleep p50",
            "p99",
            "max",
        ]);
        for r in &rows {
            let [o50, o99, omax] = journey::Row::summary(&r.overhead);
            let [s50, s99, smax] = journey::Row::summary(&r.oversleep);
            t.row(vec![
                r.dialect.to_string(),
                r.journeys.to_string(),
                r.overhead.len().to_string(),
                o50,
                o99,
                omax,
                s50,
                s99,
                smax,
            ]);
        }
        println!("{}", t.render());
    }

    if has("otlp") {
        eprintln!("otlp: recording and exporting...");
        let (records, exports) = rt.block_on(otlp::run())?;
        println!(
            "\n### 9. OTLP export: recording and exporting\n\n\
             Outcomes of real openai-chat probes against the in-process simulator ({} output \
             tokens, so {} gaps each), recorded {} times per pass; median of 5 passes.\n",
            otlp::TOKENS,
            otlp::TOKENS - 1,
            otlp::RECORDS
        );
        let mut t = Table::new(&["recorded into", "µs per probe outcome"]);
        for r in &records {
            t.row(vec![
                r.sink.to_string(),
                format!("{:.1}", r.per_outcome.as_secs_f64() * 1e6),
            ]);
        }
        println!("{}", t.render());
        println!(
            "One export (a flush) to a loopback OTLP/HTTP receiver, after every target recorded 20 \
             probes (one scenario each; GenAI and inferprobe families; no GPU or server series); \
             median of 5 exports.\n"
        );
        let mut t = Table::new(&["targets", "histograms", "request KiB", "export ms"]);
        for r in &exports {
            t.row(vec![
                r.targets.to_string(),
                r.histograms.to_string(),
                format!("{:.1}", r.bytes as f64 / 1024.0),
                format!("{:.2}", r.wall.as_secs_f64() * 1e3),
            ]);
        }
        println!("{}", t.render());
    }

    if has("gate") {
        eprintln!("gate: {} trials per row...", gate::TRIALS);
        println!(
            "\n### Release gate verdicts on synthetic samples\n\n\
             A 15% limit, A/B; log-normal TTFT (median 300 ms, σ of the log 0.25); {} trials per \
             row. Share of runs per verdict.\n",
            gate::TRIALS
        );
        for metric in ["ttft_p95", "ttft_p50"] {
            let mut t = Table::new(&[
                &format!("{metric}: probes per side"),
                "true change",
                "pass",
                "not enough evidence",
                "fail",
            ]);
            for r in gate::run(metric) {
                t.row(vec![
                    r.probes.to_string(),
                    format!("{:+.0}%", r.change * 100.0),
                    format!("{:.1}%", r.pass * 100.0),
                    format!("{:.1}%", r.inconclusive * 100.0),
                    format!("{:.1}%", r.fail * 100.0),
                ]);
            }
            println!("{}", t.render());
        }
    }

    eprintln!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
