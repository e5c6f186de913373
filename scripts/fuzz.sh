#!/usr/bin/env bash
# The property tests of tests/fuzz.rs with many more cases than `cargo test` runs: every parser
# that reads outside bytes (SSE framing, dialect decoders, the /metrics parser, the config and
# web config loaders, the load-test importers) against random and mutated recorded inputs.
#
#   scripts/fuzz.sh                    # 20000 cases per property
#   PROPTEST_CASES=200000 scripts/fuzz.sh
#   scripts/fuzz.sh sse_               # only the properties whose name contains sse_
#
# It runs the debug build on purpose: integer overflow panics there, so it is found, where a
# release build would wrap silently. A failure prints the smallest input proptest could reduce
# it to; turn it into a named test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."

export PROPTEST_CASES="${PROPTEST_CASES:-20000}"
cargo test --test fuzz --no-run
start=$(date +%s)
cargo test --test fuzz -- "$@"
echo "fuzz: ${PROPTEST_CASES} cases per property in $(( $(date +%s) - start )) s" >&2
