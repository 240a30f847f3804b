#!/usr/bin/env bash
# The project's tests, as CI runs them: Rust (models, JNI from a JVM under -Xcheck:jni), the Java
# shim with the real library, and end to end on real Flink clusters (1.20.x and 2.3.x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

echo "== Lint: rustfmt and clippy (warnings are errors)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== Rust: models and the JNI boundary"
cargo test --workspace --locked

echo "== Java shim (builds the release library and the plugin jar)"
gradle test jar --console=plain -q

jar="build/libs/flink-autotune-$(scripts/version.sh).jar"
echo "== End to end on real Flink clusters with $jar"
AUTOTUNE_PLUGIN_JAR="$PWD/$jar" python3 -m pytest tests -v -rA
