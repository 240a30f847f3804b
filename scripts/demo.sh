#!/usr/bin/env bash
# Runs the plugin on a local Flink cluster with the sample job, shows what it logs, and ends
# with its answer (bottleneck, parallelism, memory plan, recommended config file).
#   scripts/demo.sh [--flink 2.3.0|1.20.3|...] [--apply] [--timeout 300] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec python3 scripts/demo.py "$@"
