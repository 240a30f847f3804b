"""The source as the bottleneck, on a real broker (issue 11, scenario b): a costly
deserializer makes Flink's Kafka reader the vertex that limits the job. It gets more
parallelism, never beyond the topic's partitions."""

from __future__ import annotations

import re

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, wait_for
from harness.kafka_job import PARTITIONS, kafka_job_running


# The source as the bottleneck: deserializing costs 2.5 ms a record (400 records/s per source
# subtask) and Work almost nothing. The reader falls behind the backlog on its own.
DESERIALIZE_US = 2500


@pytest.fixture(scope="module")
def kafka_source_bottleneck(plugin_jar, flink_home, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    with kafka_job_running(plugin_jar, flink_home, tmp_path_factory.mktemp(f"kafka-source-{version}"), version,
                           name="autotune-kafka-source", cost_us=50, deserialize_us=DESERIALIZE_US) as running:
        yield running


def test_a_costly_source_is_the_bottleneck_and_is_sized_within_its_partitions(kafka_source_bottleneck):
    cluster, broker, job_id, _ = kafka_source_bottleneck

    # The first window may mix the job's first seconds with its steady state: wait for the
    # decision that scales the source.
    def scaled_source():
        lines = [l for l in autotune_lines(cluster.jobmanager_log()) if job_id in l]
        found = any(l.startswith("AUTOTUNE AT101") and 'vertex="Source' in l for l in lines)
        return lines if found else None

    mine = wait_for(scaled_source, timeout=240, what="the plugin to scale the Kafka source", cluster=cluster,
                    interval=3)
    print("\n".join(mine))
    bottleneck = [l for l in mine if l.startswith("AUTOTUNE AT110 BOTTLENECK")]
    assert bottleneck and all('vertex="Source' in l for l in bottleneck), mine
    scaled = [l for l in mine if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Source' in l]
    assert scaled, mine
    wanted = int(re.search(r"parallelism=1->(\d+)", scaled[0]).group(1))
    assert 1 < wanted <= PARTITIONS, scaled[0]
    assert plugin_trouble(cluster) == []


def test_the_sources_flame_graph_names_the_costly_deserializer(kafka_source_bottleneck):
    cluster, _, job_id, _ = kafka_source_bottleneck

    def flame_line():
        lines = [l for l in autotune_lines(cluster.jobmanager_log())
                 if l.startswith("AUTOTUNE AT111 FLAMEGRAPH") and job_id in l and 'vertex="Source' in l]
        return lines[-1] if lines else None

    line = wait_for(flame_line, timeout=120, what="the Kafka source's flame graph (AT111)", cluster=cluster, interval=3)
    print(line)
    # Deserializing runs in the task thread (the fetcher thread only fetches), so the costliest
    # frame is the job's deserializer or the spin it calls. Which of the two depends on the JIT:
    # once the spin is inlined, samples taken at safepoints land in the deserializer itself.
    top = re.search(r"top-frames=\[([^\]]*)\]", line).group(1)
    costly = ("dev.flinkautotune.examples.QueueJob$BusyWork.spin ",
              "dev.flinkautotune.examples.KafkaJob$CostlyRecords.deserialize ")
    assert top.startswith(costly), top
    folded = re.search(r" folded=(\S+)", line).group(1)
    with open(folded) as f:
        assert "KafkaJob$CostlyRecords.deserialize" in f.read()
