#!/usr/bin/env bash
# Build the QueueJob jar against a Flink distribution: build.sh FLINK_HOME OUT_JAR
# Plain javac (no Maven) so tests can build it offline for every Flink version they run.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 FLINK_HOME OUT_JAR" >&2
    exit 2
fi
flink_home=$1
out_jar=$2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! compgen -G "$flink_home/lib/flink-dist*.jar" >/dev/null; then
    echo "error: $flink_home/lib has no flink-dist jar; is FLINK_HOME right?" >&2
    exit 1
fi

tmp=$(mktemp -d)
partial="$out_jar.partial.$$"
trap 'rm -rf "$tmp" "$partial"' EXIT

# The sink: Sink V2's DiscardingSink where the release has it (1.18+), else the SinkFunction one.
sink=sink-function
if jar tf "$(compgen -G "$flink_home/lib/flink-dist*.jar" | head -1)" \
        | grep -q '^org/apache/flink/streaming/api/functions/sink/v2/DiscardingSink.class$'; then
    sink=sink-v2
fi
mapfile -t sources < <(find "$here/src/main/java" "$here/src/$sink/java" -name '*.java' | sort)
javac --release 11 -Xlint:-options -encoding UTF-8 -cp "$flink_home/lib/*" -d "$tmp/classes" "${sources[@]}"

mkdir -p "$(dirname "$out_jar")"
# Write next to the target and rename, so a concurrent reader never sees a half-written jar.
jar --create --file "$partial" --main-class dev.flinkautotune.examples.QueueJob -C "$tmp/classes" .
mv -f "$partial" "$out_jar"
echo "built $out_jar"
