#!/usr/bin/env bash
# Builds the release native library and the plugin jar with it inside:
#   build/libs/flink-autotune-<version>.jar
# Extra arguments go to Gradle, e.g. `scripts/build.sh --offline -PflinkHome=/opt/flink`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
gradle jar --console=plain -q "$@"
echo "built build/libs/flink-autotune-$(scripts/version.sh).jar"
