#!/usr/bin/env python3
"""Fire drill with the real thing: Prometheus, the inferprobe daemon and its simulator.

Starts, on 127.0.0.1 and free ports, inferprobe probing its built-in simulator (six targets,
one probe each every 5 s) and a Prometheus scraping it every 5 s with the bundled rules
(alerts/*.rules.yml) and the rules `inferprobe thresholds` derives from the calibrate fixture.
After a healthy baseline it injects regressions with the simulator's `PATCH /control`, one
drill at a time (fault, then recovery), polls Prometheus' /api/v1/alerts every few seconds and
prints, per drill and alert, the time to fire (from the injection) and the time to resolve
(from the recovery). It flags any alert that fires on the healthy baseline, that fires for
the first time after recovery, that misses its target time, or that has not cleared within 5
minutes of the recovery. Everything it starts is stopped on exit.

The cost alert needs an expected cost per probe: after the first 3 healthy minutes the drill
sets each target's to its mean cost so far (what `inferprobe probe` would report), writes it
as `inferprobe:expected_cost_per_request_usd` rules and reloads Prometheus.

    scripts/alert-drill.py              # about 40 minutes
    scripts/alert-drill.py --quick      # about 25 minutes, shorter phases
    scripts/alert-drill.py --soak 60m   # healthy only, for an hour: does anything fire?

Needs `prometheus` (2.42 or later, for keep_firing_for) on PATH or --prometheus, and a built
inferprobe (default target/debug/inferprobe). Exit status: 0 when no drill was flagged, 1
otherwise, 2 for a setup failure.
"""

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests/fixtures/loadtest/inferprobe/calibrate-local-vllm.json")
PROBE_EVERY_S = 5
POLL_S = 5

# Healthy behaviour: TTFT with a realistic tail, steady ITL, no faults.
HEALTHY = {
    "ttft": {"dist": "lognormal", "median": "200ms", "p99": "320ms"},
    "itl": {"dist": "normal", "mean": "20ms", "stddev": "3ms"},
    "faults": {"http_5xx": 0.0, "rate_limited": 0.0},
    "output_tokens": 32,
}
# Seconds of the healthy baseline after which the expected costs are measured and set.
CALIBRATE_S = 180

# Each drill: the patch that injects it, the alerts it must fire with their target time (from
# the "fast where it must be"), and its (fault, recovery) durations in seconds, full
# and quick. Derived-rule names are filled in once the derived rule file is read.
DRILLS = [
    {
        "name": "outage (every probe 5xx)",
        "key": "outage",
        "patch": {"faults": {"http_5xx": 1.0}},
        "expect": {"InferprobeProbesFailing": 120},
        "full": (150, 240),
        "quick": (120, 90),
    },
    {
        "name": "TTFT 3x slower",
        "key": "ttft3x",
        "patch": {"ttft": {"dist": "lognormal", "median": "600ms", "p99": "960ms"}},
        "expect": {"@derived-ttft-warning": 300},
        "full": (240, 180),
        "quick": (150, 90),
    },
    {
        "name": "50% rate limited (429)",
        "key": "ratelimit",
        "patch": {"faults": {"rate_limited": 0.5}},
        "expect": {"InferprobeRateLimited": 300},
        "full": (270, 240),
        "quick": (210, 200),
    },
    {
        "name": "tokens per answer doubled (cost x2)",
        "key": "cost2x",
        "patch": {"output_tokens": 64},
        "expect": {"InferprobeCostPerRequestAboveBaseline": 600},
        "full": (480, 300),
        "quick": (420, 300),
    },
]
BASELINE_S = {"full": 240, "quick": 200}

CHILDREN = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stop_children():
    for p in reversed(CHILDREN):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in CHILDREN:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    CHILDREN.clear()


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, logfile):
    out = open(logfile, "wb")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    CHILDREN.append(p)
    return p


def http(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def wait_for(what, check, timeout, procs):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p, name in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with status {p.returncode} while waiting for {what}")
        try:
            if check():
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def derived_rules(binary, out_path):
    """Runs `inferprobe thresholds` on the calibrate fixture; returns the TTFT bucket bounds
    its header asks for and the names of its alerts."""
    res = subprocess.run(
        [binary, "thresholds", "--probe-interval", f"{PROBE_EVERY_S}s", "-o", out_path, FIXTURE],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"inferprobe thresholds failed ({res.returncode}): {res.stderr.strip()}")
    text = open(out_path).read()
    buckets = {}
    for line in text.splitlines():
        m = re.match(r"#\s*([a-z_]+_seconds):\s*\[(.*)\]", line)
        if m:
            buckets[m.group(1)] = [float(x) for x in m.group(2).split(",") if x.strip()]
    alerts = re.findall(r"^\s*-?\s*alert:\s*[\"']?([A-Za-z0-9_]+)", text, re.M)
    return buckets, alerts


# inferprobe's default buckets (src/metrics/buckets.rs), kept beside the boundaries the derived
# rules add, so that the bundled rules' quantiles keep their resolution.
DEFAULT_BUCKETS = {
    "time_to_first_token_seconds": [0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60],
    "time_to_first_event_seconds": [0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60],
    "inter_token_latency_seconds": [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5],
    "request_duration_seconds": [0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600],
}


def write_config(path, sim_port, derived_buckets):
    overrides = "".join(
        f"  {fam}: [{', '.join(f'{b:g}' for b in sorted(set(DEFAULT_BUCKETS.get(fam, []) + extra)))}]\n"
        for fam, extra in sorted(derived_buckets.items())
    ) or "  {}\n"
    dialects = ["openai-chat", "openai-completions", "anthropic-messages"]
    targets = "".join(
        f"  - name: drill-{i + 1}\n    dialect: {dialects[i % 3]}\n    base_url: simulator\n    model: drill-sim\n"
        for i in range(6)
    )
    h = HEALTHY
    cfg = f"""# Written by scripts/alert-drill.py.
simulator:
  listen: 127.0.0.1:{sim_port}
  model: drill-sim
  ttft: {{dist: lognormal, median: {h['ttft']['median']}, p99: {h['ttft']['p99']}}}
  itl: {{dist: normal, mean: {h['itl']['mean']}, stddev: {h['itl']['stddev']}}}
  output_tokens: {h['output_tokens']}
  slots: 16
global:
  schedule:
    every: {PROBE_EVERY_S}s
scenarios:
  short-chat:
    prompt: Count from one to twenty in words, separated by spaces.
    max_tokens: 64
targets:
{targets}buckets:
{overrides}prices:
  drill-sim:
    input_per_million: 0.50
    output_per_million: 1.50
gpus:
  enabled: false
"""
    with open(path, "w") as f:
        f.write(cfg)


def write_prometheus(path, web_port, rule_files):
    rules = "".join(f"  - {r}\n" for r in rule_files)
    with open(path, "w") as f:
        f.write(
            f"""global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
{rules}scrape_configs:
  - job_name: inferprobe
    static_configs:
      - targets: ["127.0.0.1:{web_port}"]
"""
        )


def parse_duration(text):
    m = re.fullmatch(r"(\d+)([smh])", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration such as 60m, 3600s or 1h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def set_expected_costs(promu, path):
    """Writes each target's mean cost per probe so far as its expected cost and reloads
    Prometheus; returns {target: cost}."""
    q = "sum by (target) (inferprobe_request_cost_usd_sum) / sum by (target) (inferprobe_request_cost_usd_count)"
    res = http("GET", f"{promu}/api/v1/query?query={urllib.parse.quote(q)}")["data"]["result"]
    costs = {r["metric"]["target"]: float(r["value"][1]) for r in res}
    if not costs:
        raise RuntimeError("no cost observed during the first healthy minutes")
    rules = "".join(
        f"      - record: inferprobe:expected_cost_per_request_usd\n        expr: vector({c:.9f})\n"
        f"        labels:\n          target: {t}\n"
        for t, c in sorted(costs.items())
    )
    with open(path, "w") as f:
        f.write(f"groups:\n  - name: inferprobe-drill-expected-cost\n    rules:\n{rules}")
    req = urllib.request.Request(f"{promu}/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
    return costs


def fmt(seconds):
    if seconds is None:
        return "–"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Recorder:
    """Polls /api/v1/alerts; keeps, per poll, which alert names fire and pend on how many series."""

    def __init__(self, prom):
        self.prom = prom
        self.polls = []  # (t, {alertname: (firing, pending, severity)})

    def poll(self):
        t = time.time()
        try:
            alerts = http("GET", f"{self.prom}/api/v1/alerts")["data"]["alerts"]
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            log(f"poll failed: {e}")
            return
        seen = {}
        for a in alerts:
            name = a["labels"].get("alertname", "?")
            f, p, sev = seen.get(name, (0, 0, a["labels"].get("severity", "")))
            if a.get("state") == "firing":
                f += 1
            else:
                p += 1
            seen[name] = (f, p, sev)
        self.polls.append((t, seen))

    def sleep_polling(self, seconds, label):
        end = time.time() + seconds
        last_report = set()
        while time.time() < end:
            self.poll()
            if self.polls:
                firing = {n for n, (f, _, _) in self.polls[-1][1].items() if f}
                if firing != last_report:
                    log(f"{label}: firing {sorted(firing) or 'nothing'}")
                    last_report = firing
            time.sleep(max(0, min(POLL_S, end - time.time())))

    def between(self, t0, t1):
        return [(t, s) for t, s in self.polls if t0 <= t < t1]


def analyse(rec, phases):
    """Rows of the result table, and whether anything was flagged."""
    rows = []
    flagged = False
    base_t0, base_t1 = phases["baseline"]
    firing_on_base = {}
    for t, s in rec.between(base_t0, base_t1):
        for name, (f, _, sev) in s.items():
            if f:
                n, _, first = firing_on_base.get(name, (0, "", t))
                firing_on_base[name] = (max(f, n), sev, first)
    for name, (n, sev, first) in sorted(firing_on_base.items()):
        # Time to fire: from the start of the baseline.
        rows.append(("healthy baseline", name, sev, n, first - base_t0, None, "FIRED ON HEALTHY BASELINE"))
        flagged = True
    if not firing_on_base:
        rows.append(("healthy baseline", "(none)", "", 0, None, None, "ok: nothing fired"))

    for i, d in enumerate(phases["drills"]):
        t0, t1, t2 = d["t0"], d["t1"], d["t2"]
        polls = rec.between(t0, t2)
        # Resolution is looked for up to the end of the run: an alert still firing when the next
        # drill starts belongs to this drill, not to the next one.
        after = rec.between(t1, float("inf"))
        at_start = {n for n, (f, _, _) in (polls[0][1].items() if polls else []) if f}
        names = set(d["expect"])
        for _, s in polls:
            names.update(n for n, (f, _, _) in s.items() if f)
        for name in sorted(names):
            sev, most, first, cleared_once = "", 0, None, name not in at_start
            for t, s in polls:
                f, _, sv = s.get(name, (0, 0, ""))
                sev = sev or sv
                if not f:
                    cleared_once = True
                elif cleared_once and first is None:
                    first = t  # a new firing, not one carried over from the drill before
                if first is not None:
                    most = max(most, f)
            if first is None and name in at_start and name not in d["expect"]:
                continue  # carried over from the drill before; reported there
            resolved, refired = None, False
            if first is not None:
                # The first poll without it after its last firing in this drill's recovery, so
                # that an alert that clears and fires again counts as not yet resolved.
                fired_in_recovery = [t for t, s in polls if t >= t1 and s.get(name, (0, 0, ""))[0]]
                since = fired_in_recovery[-1] if fired_in_recovery else first
                resolved = next((t for t, s in after if t >= since and not s.get(name, (0, 0, ""))[0]), None)
                early = next((t for t, s in after if t >= first and not s.get(name, (0, 0, ""))[0]), None)
                refired = early is not None and early < since
            notes = []
            fire_s = None if first is None else first - t0
            resolve_s = None if resolved is None else resolved - t1
            target = d["expect"].get(name)
            if first is None:
                notes.append(f"DID NOT FIRE (target {fmt(target)})")
                flagged = True
            else:
                if first >= t1:
                    notes.append("FIRST FIRED AFTER RECOVERY")
                    flagged = True
                if target is not None and fire_s > target:
                    notes.append(f"LATE (target {fmt(target)})")
                    flagged = True
                elif target is not None:
                    notes.append(f"ok (target {fmt(target)})")
                if resolved is None:
                    notes.append("NOT CLEARED by the end of the run")
                    flagged = True
                elif resolve_s > 300:
                    notes.append("CLEARED LATER THAN 5m")
                    flagged = True
                if refired:
                    notes.append("FLAPPED: cleared and fired again after recovery")
                    flagged = True
                if resolved is not None and resolved >= t2 and resolve_s <= 300 and i + 1 < len(phases["drills"]):
                    notes.append("cleared after the next drill began")
            rows.append((d["name"], name, sev, most, fire_s, resolve_s, "; ".join(notes)))
    return rows, flagged


def report(record):
    """Prints the table of a run's record; returns whether anything was flagged."""
    rec = Recorder(None)
    rec.polls = [(t, {n: tuple(v) for n, v in s.items()}) for t, s in record["polls"]]
    rows, flagged = analyse(rec, record["phases"])
    print(f"\n{record['header']}\n")
    print("| drill | alert | severity | targets firing | time to fire | time to resolve | verdict |")
    print("|---|---|---|---|---|---|---|")
    for drill, name, sev, n, fire_s, res_s, note in rows:
        print(f"| {drill} | {name} | {sev} | {n} | {fmt(fire_s)} | {fmt(res_s)} | {note} |")
    return flagged


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter phases (about 25 minutes)")
    ap.add_argument(
        "--soak",
        metavar="DURATION",
        type=parse_duration,
        help="no drill: keep the targets healthy this long (e.g. 60m) and report anything that fires",
    )
    ap.add_argument("--inferprobe", default=os.path.join(ROOT, "target/debug/inferprobe"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, TSDB)")
    ap.add_argument("--record", metavar="FILE", help="also write the polled alert states and phases as JSON")
    ap.add_argument("--from-record", metavar="FILE", help="print the table of a recorded run, start nothing")
    args = ap.parse_args()
    if args.from_record:
        with open(args.from_record) as f:
            return 1 if report(json.load(f)) else 0
    mode = "quick" if args.quick else "full"
    baseline_s = BASELINE_S[mode]
    if args.soak:
        mode, baseline_s = "soak", args.soak
        DRILLS.clear()
    if baseline_s < CALIBRATE_S + 60:
        print(f"error: --soak {baseline_s}s: at least {CALIBRATE_S + 60}s", file=sys.stderr)
        return 2

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(stop_children)
    if not os.access(args.inferprobe, os.X_OK):
        print(f"error: --inferprobe {args.inferprobe}: not an executable (run `cargo build`)", file=sys.stderr)
        return 2
    if not shutil.which(args.prometheus) and not os.access(args.prometheus, os.X_OK):
        print(f"error: --prometheus {args.prometheus}: not found (apt-get install prometheus)", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="alert-drill-")
    if not args.keep:
        atexit.register(shutil.rmtree, tmp, True)
    else:
        log(f"keeping {tmp}")
    try:
        derived_path = os.path.join(tmp, "derived.rules.yml")
        ttft_buckets, derived_alerts = derived_rules(args.inferprobe, derived_path)
        warn = [a for a in derived_alerts if "TTFT" in a and "NotABucket" not in a]
        warn = next((a for a in warn if "Warning" in a or "Baseline" in a), warn[0] if warn else None)
        for d in DRILLS:
            d["expect"] = {(warn if k == "@derived-ttft-warning" else k): v for k, v in d["expect"].items() if k != "@derived-ttft-warning" or warn}

        sim_port, web_port, prom_port = free_port(), free_port(), free_port()
        config = os.path.join(tmp, "inferprobe.yml")
        write_config(config, sim_port, ttft_buckets)
        rule_files = sorted(
            os.path.join(ROOT, "alerts", f) for f in os.listdir(os.path.join(ROOT, "alerts")) if f.endswith(".rules.yml")
        ) + [derived_path]
        expected_path = os.path.join(tmp, "expected-cost.rules.yml")
        with open(expected_path, "w") as f:
            f.write("groups: []\n")
        rule_files.append(expected_path)
        prom_cfg = os.path.join(tmp, "prometheus.yml")
        write_prometheus(prom_cfg, web_port, rule_files)
        check = subprocess.run(["promtool", "check", "config", prom_cfg], capture_output=True, text=True) if shutil.which("promtool") else None
        if check is not None and check.returncode != 0:
            raise RuntimeError(f"promtool check config: {check.stdout}{check.stderr}")

        ip = spawn(
            [args.inferprobe, "run", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{web_port}"],
            os.path.join(tmp, "inferprobe.log"),
        )
        prom = spawn(
            [
                args.prometheus,
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.enable-lifecycle",
            ],
            os.path.join(tmp, "prometheus.log"),
        )
        procs = [(ip, "inferprobe"), (prom, "prometheus")]
        sim = f"http://127.0.0.1:{sim_port}"
        promu = f"http://127.0.0.1:{prom_port}"
        wait_for("the simulator", lambda: http("GET", f"{sim}/control") is not None, 60, procs)
        wait_for("Prometheus", lambda: http("GET", f"{promu}/api/v1/rules")["status"] == "success", 60, procs)
        wait_for(
            "a first scrape of inferprobe",
            lambda: any(
                r["value"][1] == "1" for r in http("GET", f"{promu}/api/v1/query?query=up")["data"]["result"]
            ),
            60,
            procs,
        )
        groups = http("GET", f"{promu}/api/v1/rules")["data"]["groups"]
        n_alerts = sum(1 for g in groups for r in g["rules"] if r["type"] == "alerting")
        log(
            f"{mode} drill: inferprobe 127.0.0.1:{web_port}, simulator {sim}, Prometheus {promu}, "
            f"{len(groups)} rule groups, {n_alerts} alerts ({len(derived_alerts)} derived)"
        )
        http("PATCH", f"{sim}/control", HEALTHY)

        rec = Recorder(promu)
        phases = {"drills": []}
        t = time.time()
        rec.sleep_polling(CALIBRATE_S, "baseline")
        costs = set_expected_costs(promu, expected_path)
        log("expected cost per probe: " + ", ".join(f"{k} {v:.9f} USD" for k, v in sorted(costs.items())))
        rec.sleep_polling(baseline_s - CALIBRATE_S, "baseline")
        phases["baseline"] = (t, time.time())
        for d in DRILLS:
            fault_s, recover_s = d[mode]
            log(f"drill {d['name']}: PATCH /control {json.dumps(d['patch'])} for {fmt(fault_s)}")
            t0 = time.time()
            http("PATCH", f"{sim}/control", d["patch"])
            rec.sleep_polling(fault_s, d["key"])
            log(f"drill {d['name']}: recovery for {fmt(recover_s)}")
            t1 = time.time()
            http("PATCH", f"{sim}/control", HEALTHY)
            rec.sleep_polling(recover_s, d["key"] + " recovery")
            phases["drills"].append(
                {"name": d["name"], "expect": d["expect"], "t0": t0, "t1": t1, "t2": time.time()}
            )
            for p, name in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {p.returncode} during the drill")

        header = (
            f"alert drill ({mode}): 6 targets probed every {PROBE_EVERY_S}s, Prometheus scrape and "
            f"evaluation every 5s, alerts polled every {POLL_S}s; baseline {fmt(baseline_s)}"
            + "".join(f", {d['key']} {fmt(d[mode][0])} + {fmt(d[mode][1])} recovery" for d in DRILLS)
            + f"; {n_alerts} alerts ({len(derived_alerts)} derived), "
            + f"{len(rec.polls)} polls"
        )
        record = {"header": header, "phases": phases, "polls": rec.polls}
        if args.record:
            with open(args.record, "w") as f:
                json.dump(record, f)
        flagged = report(record)
        return 1 if flagged else 0
    except RuntimeError as e:
        print(f"error: {e} (logs in {tmp}; rerun with --keep to keep them)", file=sys.stderr)
        for name in ("inferprobe.log", "prometheus.log"):
            p = os.path.join(tmp, name)
            if os.path.exists(p):
                tail = open(p, errors="replace").read()[-1500:]
                print(f"--- last lines of {name}:\n{tail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
