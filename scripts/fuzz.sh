#!/usr/bin/env bash
# The property tests of arbitrary input, longer than in the test command: any text into the
# diagnosis, any names and values into the tracker and into one-line names.
#   scripts/fuzz.sh [CASES]    (default 20000 per property; the test command runs 128)
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
time PROPTEST_CASES="$cases" cargo test --release --locked -q -p autotune-model --test arbitrary_input
