#!/usr/bin/env bash
# Runs the plugin on a local Flink cluster with the sample job and shows what it logs.
#   scripts/demo.sh [--flink 2.3.0|1.20.3|...] [--duration 60] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec python3 scripts/demo.py "$@"
