"""A real Kafka broker (a KRaft node on loopback) feeding the sample job through Flink's Kafka
source, with the plugin in the cluster: the plugin sees the topic's partitions and the
consumer's backlog (`pendingRecords`), decides on the job without blaming the source, says
when the backlog metric is partial (AT127), and names a source stalled when the broker stops
(AT126). The other Kafka scenarios of issue 11: `test_kafka_source_e2e.py` (the source as the
bottleneck), `test_kafka_1x_e2e.py` (recommend mode on Flink 1.x), and
`scripts/kafka_catch_up.py` (catch-up and back down in `mode: apply`, 20 minutes)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, recommended_config, wait_for
from harness.kafka_job import COST_US, PARTITIONS, RATE, kafka_job_running


FAIL_AT_S = 95  # seconds after Work's first record: stabilization 20 s + a 30 s window + 15 s pause + ...


@pytest.fixture(scope="module")
def kafka_job(plugin_jar, flink_home, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    # Small fetches, so that the reader runs dry soon after the broker stops (the last test);
    # Work fails once, after the first decision, most likely inside the second window.
    with kafka_job_running(plugin_jar, flink_home, tmp_path_factory.mktemp(f"kafka-{version}"), version,
                           name="autotune-kafka", cost_us=COST_US,
                           job_args=("--fetch-bytes", "16384", "--fail-at-s", str(FAIL_AT_S))) as running:
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
    print(f"source backlog over the first window: {backlog}; consumer group lag now {broker.lag('autotune-kafka')}")
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
          f"(produced: {RATE}/s); consumer group lag {broker.lag('autotune-kafka')}")
    # Under back-pressure the reader drains one partition at a time and its pendingRecords
    # leaves the partitions it has not read from out: the first decision says so (AT127)
    # instead of taking the backlog's climb for arrivals.
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"
    first = json.loads(recording.read_text().splitlines()[0])
    source = next(i for i, v in enumerate(first["shape"]["vertices"]) if v["name"].startswith("Source"))
    positions = [s["vertices"][source].get("positions") or [] for s in first["samples"]]
    assert any(len(ps) == PARTITIONS for ps in positions), positions  # every partition's read position
    unread = [sum(1 for p in ps if p is not None and p < 0) for ps in positions]
    partial = [l for l in lines if l.startswith("AUTOTUNE AT127 BACKLOG_PARTIAL") and job_id in l]
    print(f"partitions not read from yet, per poll of the first window: {unread}")
    if any(u for u in unread if u):
        assert partial and 'vertex="Source' in partial[0], lines
        assert "arrivals are taken as the" in partial[0], partial[0]
    assert plugin_trouble(cluster) == []


def test_a_task_failure_inside_a_window_gets_no_decision_from_it(kafka_job):
    """Work fails once (issue 11, scenario d): the job restarts from its checkpoint, and no
    recorded window, hence no decision, mixes the run before the failure with the one after."""
    cluster, broker, job_id, _ = kafka_job

    def failed_at():
        history = cluster.rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
        injected = [e["timestamp"] for e in history if "injected task failure" in e.get("stacktrace", "")]
        return min(injected) if injected else None

    failure_ms = wait_for(failed_at, timeout=240, what="the injected task failure", cluster=cluster, interval=3)
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"

    def windows():
        return [json.loads(l) for l in recording.read_text().splitlines()]

    def decided_after_restart():
        found = [w for w in windows() if w["samples"] and w["samples"][0]["at_ms"] > failure_ms]
        return found or None

    wait_for(decided_after_restart, timeout=240, what="a decision window after the restart", cluster=cluster,
             interval=3)
    spans = [(w["samples"][0]["at_ms"], w["samples"][-1]["at_ms"]) for w in windows() if w["samples"]]
    print(f"failure at {failure_ms}; recorded windows (ms from the failure): "
          f"{[(a - failure_ms, b - failure_ms) for a, b in spans]}")
    # Flink's REST API serves a job as its cache saw it up to `web.refresh-interval` (3 s)
    # earlier: a window may end that long after the failure on the old run's values alone.
    stale_ms = 3000
    assert not [s for s in spans if s[0] < failure_ms and s[1] > failure_ms + stale_ms], spans
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"


def test_a_stopped_broker_stalls_the_source_and_nothing_is_scaled_down(kafka_job):
    """The broker stops while records wait (issue 11, scenario d): the reader reads nothing
    and its backlog stays. The plugin names the source stalled (AT126), scales nothing down
    behind it, and the job keeps running. Runs last: it stops the module's broker."""
    cluster, broker, job_id, _ = kafka_job
    said_before = len(autotune_lines(cluster.jobmanager_log()))
    broker.stop()

    def stalled():
        lines = [l for l in autotune_lines(cluster.jobmanager_log())[said_before:] if job_id in l]
        return lines if any(l.startswith("AUTOTUNE AT126") for l in lines) else None

    lines = wait_for(stalled, timeout=180, what="the plugin to name the Kafka source stalled", cluster=cluster,
                     interval=3)
    print("\n".join(lines))
    named = next(l for l in lines if l.startswith("AUTOTUNE AT126"))
    assert 'vertex="Source' in named and "stalled" in named, named
    assert not any(l.startswith(("AUTOTUNE AT102", "AUTOTUNE AT125")) for l in lines), lines
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
    assert plugin_trouble(cluster) == []


def test_a_kafka_client_timeout_is_named_with_the_connectors_property(kafka_job):
    """After the broker stopped (issue 14): a second job starts against it with a short API
    timeout, and its source's enumerator (in the JobManager) cannot list the topic's
    partitions. The plugin names a Kafka client timeout with the key as the connector spells
    it, `properties.default.api.timeout.ms`, and writes it to the job's config file."""
    cluster, broker, _, _ = kafka_job
    broker.stop()  # a no-op after the stall test
    jar = next((cluster.workdir.parent / "jobs").glob("*.jar"))
    job_id = cluster.submit(jar, ["--bootstrap", broker.bootstrap, "--topic", "events", "--group", "timeout",
                                  "--job-name", "autotune-kafka-timeout",
                                  "--properties", "default.api.timeout.ms=5000,request.timeout.ms=2000"])

    def named():
        return [l for l in autotune_lines(cluster.jobmanager_log(), "AT356") if job_id in l]

    lines = wait_for(named, timeout=120, what="the Kafka client timeout finding", cluster=cluster, interval=2)
    print("\n".join(lines))
    line = lines[0]
    assert "org.apache.kafka.common.errors.TimeoutException" in line, line
    assert re.search(r"set properties\.default\.api\.timeout\.ms=\d+ ", line), line
    config = wait_for(lambda: recommended_config(cluster, job_id).get("properties.default.api.timeout.ms") and
                      recommended_config(cluster, job_id), timeout=30, what="the key in the job's config file",
                      cluster=cluster)
    assert int(config["properties.default.api.timeout.ms"]) > 5000, config
    assert plugin_trouble(cluster) == []
