#!/usr/bin/env bash
# Build the KafkaJob jar (with the queue job's classes it reuses) against a Flink distribution
# and Flink's Kafka connector jars: build.sh FLINK_HOME OUT_JAR CONNECTOR_JAR...
# The connector is not bundled: the tests put it into the cluster's lib/.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 FLINK_HOME OUT_JAR CONNECTOR_JAR..." >&2
    exit 2
fi
flink_home=$1
out_jar=$2
shift 2
classpath="$flink_home/lib/*$(printf ':%s' "$@")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

tmp=$(mktemp -d)
partial="$out_jar.partial.$$"
trap 'rm -rf "$tmp" "$partial"' EXIT

# The Kafka connectors this job is built with need Flink 1.18+: the queue job's Sink V2 sink.
mapfile -t sources < <(find "$here/src/main/java" "$here/../queue-job/src/main/java" \
    "$here/../queue-job/src/sink-v2/java" -name '*.java' | sort)
javac --release 11 -Xlint:-options -encoding UTF-8 -cp "$classpath" -d "$tmp/classes" "${sources[@]}"

mkdir -p "$(dirname "$out_jar")"
jar --create --file "$partial" --main-class dev.flinkautotune.examples.KafkaJob -C "$tmp/classes" .
mv -f "$partial" "$out_jar"
echo "built $out_jar"
