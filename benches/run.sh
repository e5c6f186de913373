#!/usr/bin/env bash
# Builds inferprobe in release mode and runs every benchmark section, writing the Markdown report
# to target/bench-results.md (and to stdout). Extra arguments pick sections:
#   benches/run.sh                 # accuracy, cpu, sse, rss
#   benches/run.sh sse rss         # just those
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/bench-results.md
mkdir -p target
# `cargo bench` builds the benchmark and the inferprobe binary with the release settings.
cargo bench --bench inferprobe --no-run
cargo bench --bench inferprobe -- "$@" | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "report written to $out" >&2
