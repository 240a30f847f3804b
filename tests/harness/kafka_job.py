"""The Kafka end-to-end setup the tests share: a KRaft broker on loopback with a topic that has
a backlog and steady arrivals, a Flink cluster with the plugin and Flink's Kafka connector, the
sample job on the topic, and the plugin's first decision on it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from harness.autotune_log import autotune_lines, wait_for
from harness.flink import FlinkCluster, build_kafka_job
from harness.kafka import KafkaBroker, kafka_connector_jars

PARTITIONS = 8
BACKLOG = 30_000  # records waiting before the job starts
RATE = 300  # records/s arriving while it runs
COST_US = 4000  # Work: 250 records/s per subtask, below the arrivals: the bottleneck whatever the backlog
CONF = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "5 s",
    "metrics.reporter.autotune.stabilization": "20 s",
    "metrics.reporter.autotune.decision-window": "30 s",
    "metrics.reporter.autotune.decision-interval": "15 s",
    "metrics.reporter.autotune.poll-interval": "3 s",
    "metrics.reporter.autotune.record": "true",
}


@contextmanager
def kafka_job_running(plugin_jar, flink_home, workdir: Path, version: str, *, name: str, cost_us: int,
                      deserialize_us: int = 0, job_args: tuple[str, ...] = ()):
    """A broker with a backlog and steady arrivals, a cluster with the plugin, the Kafka job
    running, and the plugin's first decision on it: (cluster, broker, job id, lines)."""
    connector = kafka_connector_jars(version)
    job_jar = build_kafka_job(flink_home(version), workdir / "jobs", connector)
    with KafkaBroker(workdir / "kafka") as broker:
        broker.create_topic("events", PARTITIONS)
        broker.produce("events", BACKLOG)
        # Arrivals for at most 6 minutes: the producer stops by itself.
        broker.produce("events", RATE * 360, rate=RATE, wait=False)
        with FlinkCluster(flink_home(version), workdir / "flink", taskmanagers=2, slots=2, conf=CONF,
                          plugin_jar=plugin_jar, lib_jars=connector) as cluster:
            args = ["--bootstrap", broker.bootstrap, "--topic", "events", "--group", name,
                    "--cost-us", str(cost_us), "--cost-kind", "wait", "--deserialize-cost-us", str(deserialize_us), "--job-name", name,
                    *job_args]
            job_id = cluster.submit(job_jar, args)
            cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)

            def planned():
                lines = autotune_lines(cluster.jobmanager_log())
                return lines if any(l.startswith("AUTOTUNE AT100 PLAN") and job_id in l for l in lines) else None

            lines = wait_for(planned, timeout=300, what=f"the plugin's first decision on {name}",
                             cluster=cluster, interval=3)
            yield cluster, broker, job_id, lines


def reader_view(cluster: FlinkCluster, job_id: str, source_id: str) -> tuple[float | None, list[int]]:
    """The Kafka reader's `pendingRecords` (summed over subtasks; None before it reports) and
    its position in each partition (`currentOffset`: the last offset read, -1 before any)."""
    base = f"/jobs/{job_id}/vertices/{source_id}/metrics"
    names = [m["id"] for m in cluster.rest(base)]
    wanted = [n for n in names if n.endswith(".pendingRecords") or
              (".KafkaSourceReader.topic." in n and n.endswith(".currentOffset"))]
    values = {m["id"]: float(m["value"]) for m in cluster.rest(f"{base}?get={','.join(wanted)}")} if wanted else {}
    pending = [v for n, v in values.items() if n.endswith(".pendingRecords")]
    positions = [int(v) for n, v in sorted(values.items()) if n.endswith(".currentOffset")]
    return (sum(pending) if pending else None), positions


def real_backlog(broker: KafkaBroker, topic: str, positions: list[int]) -> int:
    """Records waiting: the topic's end offsets minus what the reader has read (a position of
    -1: nothing read from that partition)."""
    return sum(broker.end_offsets(topic).values()) - sum(p + 1 for p in positions)
