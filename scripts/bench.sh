#!/usr/bin/env bash
# Benchmark of report() per metric: floor (a loop that only reads the values) vs the autotune
# reporter vs Flink's Slf4jReporter, measured in one run. Prints figures; never fails on timing.
#   scripts/bench.sh [SIZES] [FLINK_VERSION]     e.g. scripts/bench.sh 1000,10000,50000 2.3.0
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-1000,10000,50000}"
flink_version="${2:-2.3.0}"
scripts/bootstrap.sh
gradle jar -q --console=plain
flink_home=$(cd tests && python3 -c "from harness.flink import ensure_flink; print(ensure_flink('$flink_version'))")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cp="build/libs/flink-autotune-$(scripts/version.sh).jar:$flink_home/lib/*:$(ls "$flink_home"/plugins/metrics-slf4j/*.jar)"
# The benchmark reuses the tests' ScopedGroup (a metric group with variables and a logical scope).
javac -proc:none -implicit:class -d "$out" -cp "$cp" -sourcepath java-shim/src/test/java \
  java-shim/src/bench/java/dev/flinkautotune/ReportBenchmark.java
# Slf4jReporter's lines go to a real log4j file appender, as in a TaskManager.
cat > "$out/log4j2.properties" <<LOG
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = File
appender.file.type = File
appender.file.name = File
appender.file.fileName = $out/bench.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
LOG
echo "Flink $flink_version, $(java -version 2>&1 | head -1), $(nproc) cores"
java -Xms2g -Xmx2g -Dlog4j.configurationFile="$out/log4j2.properties" \
  -cp "$out:$cp" dev.flinkautotune.ReportBenchmark "$sizes"

echo
echo "== one coordinator decision, job of 100 vertices"
cargo run -q --release --locked -p autotune-coordinator --example decision_bench

echo
echo "== diagnosis: precision and top-1 accuracy over the fixtures and saved real-failure runs, throughput"
cargo build -q --release --locked -p flink-autotune
python3 benches/diagnosis_report.py --cli target/release/flink-autotune
