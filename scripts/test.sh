#!/usr/bin/env bash
# The project's tests, as CI runs them: the lint gate, Rust (models, the loop against a fake REST
# API, JNI from a JVM under -Xcheck:jni), the Java shim with the real library, and end to end on
# real Flink clusters (1.20.x and 2.3.x, a smoke test on every other release from 1.17).
#
#   scripts/test.sh           every test (CI runs this)
#   scripts/test.sh --quick   the inner loop: the lint gate, every Rust and Java test, and one
#                             end-to-end module (the plugin in every process of a real 2.3 cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac
scripts/bootstrap.sh

echo "== Lint: rustfmt, clippy (warnings are errors), no import circle and no function over 100 lines"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 scripts/code_shape.py

echo "== Rust: models, the loop and the JNI boundary"
cargo test --workspace --locked

echo "== Java shim (builds the release library and the plugin jar)"
gradle test jar --console=plain -q

jar="build/libs/flink-autotune-$(scripts/version.sh).jar"
if $quick; then
  echo "== End to end, quick: the plugin on a real Flink 2.3 cluster with $jar"
  AUTOTUNE_FLINK_VERSIONS=2.3.0 AUTOTUNE_PLUGIN_JAR="$PWD/$jar" \
    python3 -m pytest tests/test_plugin_e2e.py -v -rA
else
  # Four workers (groups in tests/conftest.py) on these 2 cores: the clusters mostly wait out
  # their windows (the suite used 30% of the CPU on two workers). The tests that check an exact
  # parallelism wait out Work's cost instead of burning it (--cost-kind wait), so the other
  # workers' clusters do not move their figures. AUTOTUNE_TEST_WORKERS=1 runs them one after another.
  workers="${AUTOTUNE_TEST_WORKERS:-4}"
  echo "== End to end on real Flink clusters with $jar ($workers worker(s); see tests/conftest.py)"
  cargo build --release --locked -q -p flink-autotune  # the CLI the tests run, built once for every worker
  AUTOTUNE_PLUGIN_JAR="$PWD/$jar" python3 -m pytest tests -n "$workers" --dist loadgroup -v -rA --durations=15
fi
