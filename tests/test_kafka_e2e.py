"""A real Kafka broker (a KRaft node on loopback) feeding the sample job through Flink's Kafka
source, with the plugin in the cluster: the plugin sees the topic's partitions and the
consumer's backlog (`pendingRecords`) and decides on the job without blaming the source.

The source-sizing scenarios of issue 11 (catch-up and back down, the source as the
bottleneck, restarts, a stalled broker) build on this harness."""

from __future__ import annotations

import json
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, wait_for
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
                      deserialize_us: int = 0):
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
                    "--cost-us", str(cost_us), "--deserialize-cost-us", str(deserialize_us), "--job-name", name]
            job_id = cluster.submit(job_jar, args)
            cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)

            def planned():
                lines = autotune_lines(cluster.jobmanager_log())
                return lines if any(l.startswith("AUTOTUNE AT100 PLAN") and job_id in l for l in lines) else None

            lines = wait_for(planned, timeout=300, what=f"the plugin's first decision on {name}",
                             cluster=cluster, interval=3)
            yield cluster, broker, job_id, lines


@pytest.fixture(scope="module")
def kafka_job(plugin_jar, flink_home, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    with kafka_job_running(plugin_jar, flink_home, tmp_path_factory.mktemp(f"kafka-{version}"), version,
                           name="autotune-kafka", cost_us=COST_US) as running:
        yield running


def test_the_plugin_sees_the_topics_partitions_and_backlog(kafka_job):
    cluster, broker, job_id, lines = kafka_job
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"
    window = json.loads(recording.read_text().splitlines()[0])
    vertices = window["shape"]["vertices"]
    source = next(i for i, v in enumerate(vertices) if v["name"].startswith("Source"))
    found = window["shape"]["source_metrics"][str(source)]
    assert found["splits"] == PARTITIONS, found
    assert found["pending"], "the Kafka reader's pendingRecords"
    backlog = [s["vertices"][source]["pending"] for s in window["samples"]]
    print(f"source backlog over the first window: {backlog}; consumer group lag now {broker.lag('autotune-e2e')}")
    # The JobManager serves a reader's metrics only once its metric fetcher has run: the
    # first polls may have none.
    seen = [b for b in backlog if b is not None]
    assert len(seen) >= len(backlog) // 2, backlog
    assert all(b >= 0 for b in seen) and max(seen) > 0, backlog


def test_the_first_decision_on_the_kafka_job(kafka_job):
    """The plugin decides on the Kafka job, never names the back-pressured source as the
    bottleneck and never asks for more source subtasks than partitions.

    Whether Work is scaled at this first decision depends on the reader's `pendingRecords`,
    which misreads the backlog while the reader warms up (issue 11: measured 1.5x the real
    arrivals in one run and 0.07x in another); the scenarios of issue 11 assert the sizing
    once the backlog metric is cross-checked."""
    cluster, broker, job_id, lines = kafka_job
    print("\n".join(l for l in lines if job_id in l))
    plan = next(l for l in lines if l.startswith("AUTOTUNE AT100 PLAN") and job_id in l)
    bottleneck = [l for l in lines if l.startswith("AUTOTUNE AT110 BOTTLENECK") and job_id in l]
    assert all('vertex="Work' in l for l in bottleneck), bottleneck
    for line in (l for l in lines if l.startswith("AUTOTUNE AT10") and 'vertex="Source' in l):
        wanted = re.search(r"parallelism=\d+->(\d+)", line)
        assert wanted is None or int(wanted.group(1)) <= PARTITIONS, line
    work = [l for l in lines if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Work' in l]
    arrival = re.search(r"arrival=([\d.]+)/s", work[0]).group(1) if work else "n/a"
    print(f"first decision: {plan.split(' pipeline')[0]}; Work scaled: {bool(work)}, arrival read as {arrival}/s "
          f"(produced: {RATE}/s); consumer group lag {broker.lag('autotune-e2e')}")
    # Under back-pressure the reader drains one partition at a time and its pendingRecords
    # leaves the partitions it has not read from out: the first decision says so (AT127)
    # instead of taking the backlog's climb for arrivals.
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"
    first = json.loads(recording.read_text().splitlines()[0])
    source = next(i for i, v in enumerate(first["shape"]["vertices"]) if v["name"].startswith("Source"))
    unread = [s["vertices"][source].get("unread_partitions") for s in first["samples"]]
    partial = [l for l in lines if l.startswith("AUTOTUNE AT127 BACKLOG_PARTIAL") and job_id in l]
    print(f"partitions not read from yet, per poll of the first window: {unread}")
    if any(u for u in unread if u):
        assert partial and 'vertex="Source' in partial[0], lines
        assert "arrivals are taken as the" in partial[0], partial[0]
    assert plugin_trouble(cluster) == []


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
    cluster, broker, job_id, lines = kafka_source_bottleneck
    mine = [l for l in lines if job_id in l]
    print("\n".join(mine))
    bottleneck = [l for l in mine if l.startswith("AUTOTUNE AT110 BOTTLENECK")]
    assert bottleneck and all('vertex="Source' in l for l in bottleneck), mine
    scaled = [l for l in mine if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Source' in l]
    assert scaled, mine
    wanted = int(re.search(r"parallelism=1->(\d+)", scaled[0]).group(1))
    assert 1 < wanted <= PARTITIONS, scaled[0]
    if wanted == PARTITIONS:
        assert any(l.startswith("AUTOTUNE AT123") for l in mine), mine
    assert plugin_trouble(cluster) == []


@pytest.fixture(scope="module")
def kafka_recommend_1x(plugin_jar, flink_home, tmp_path_factory):
    version = FLINK_VERSIONS[0]
    with kafka_job_running(plugin_jar, flink_home, tmp_path_factory.mktemp(f"kafka-{version}"), version,
                           name="autotune-kafka-1x", cost_us=COST_US) as running:
        yield running


def test_recommend_mode_on_flink_1x_from_the_log_and_from_analyze(kafka_recommend_1x, cli):
    """Flink 1.x, `flink-conf.yaml`, the plugin in its default mode: the recommendation for the
    Kafka job is in the JobManager's log, and `flink-autotune analyze` gives the same one."""
    cluster, broker, job_id, lines = kafka_recommend_1x
    assert (cluster.conf_dir / "flink-conf.yaml").exists()
    mine = [l for l in lines if job_id in l]
    assert any(l.startswith("AUTOTUNE AT110 BOTTLENECK") and 'vertex="Work' in l for l in mine), mine
    assert not any(l.startswith("AUTOTUNE AT103") for l in lines), "recommend mode never applies"
    run = subprocess.run([str(cli), "analyze", "--rest", cluster.rest_url, "--job", job_id, "--duration", "30 s",
                          "--interval", "3 s", "--json"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    [document] = json.loads(run.stdout)
    vertices = {v["name"]: v for v in document["decision"]["vertices"]}
    source = next(v for name, v in vertices.items() if name.startswith("Source"))
    work = next(v for name, v in vertices.items() if name.startswith("Work"))
    print(f"analyze: Source {source['current']} -> {source['recommended']}, Work {work['current']} -> "
          f"{work['recommended']}; findings {[f['code'] for v in vertices.values() for f in v['findings']]}")
    assert source["recommended"] <= PARTITIONS
    assert work["recommended"] >= work["current"] == 1
    assert "AT110" in [f["code"] for f in work["findings"]], work
    assert plugin_trouble(cluster) == []
