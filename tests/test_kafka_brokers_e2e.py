"""The true Kafka backlog read from the brokers (issue 23), on a real broker with a SASL
listener and a real 2.3 cluster with the plugin, whose brokers are the SASL listener
(`kafka.bootstrap-servers`, the login as `kafka.properties.*`, spelled as the connector's):

- `known` reads the topic through SASL too. Its backlog agrees with the broker's own (its end
  offsets minus the reader's positions) and its arrivals with what the producer sends, while
  Work holds the reader back.
- `unreachable` names its own brokers (`autotune.kafka.bootstrap-servers`), a port nobody
  listens on: one AT131 line, its backlog from `pendingRecords`, the job decided and running.
- `flink-autotune watch` on the same cluster with a wrong password: one AT131 line, the
  fallback, and no password anywhere.

A job's own credentials cannot be read: Flink masks them among its parameters over REST."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, decided_windows, wait_for
from harness.flink import FlinkCluster, build_kafka_job
from harness.kafka import KafkaBroker, kafka_connector_jars
from harness.kafka_job import CONF, COST_US, PARTITIONS, RATE, reader_view, real_backlog

BACKLOG = 100_000  # records waiting at the start: large beside what a poll's delay can move
USERS = {"alice": "alice-secret"}
JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="{}";'
WRONG = "not-her-password"


def closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jobs(plugin_jar, flink_home, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"kafka-brokers-{version}")
    connector = kafka_connector_jars(version)
    job_jar = build_kafka_job(flink_home(version), workdir / "jobs", connector)
    with KafkaBroker(workdir / "kafka", sasl_users=USERS) as broker:
        broker.create_topic("events", PARTITIONS)
        broker.produce("events", BACKLOG)
        broker.produce("events", RATE * 360, rate=RATE, wait=False)  # stops by itself
        login = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                 "sasl.jaas.config": JAAS.format(USERS["alice"])}
        conf = dict(CONF, **{"metrics.reporter.autotune.kafka.bootstrap-servers": broker.sasl_bootstrap},
                    **{f"metrics.reporter.autotune.kafka.properties.{k}": v for k, v in login.items()})
        with FlinkCluster(flink_home(version), workdir / "flink", taskmanagers=2, slots=2, conf=conf,
                          plugin_jar=plugin_jar, lib_jars=connector) as cluster:
            unreachable = f"127.0.0.1:{closed_port()}"
            setups = {
                "known": (broker.sasl_bootstrap,
                          ("--properties", ",".join(f"{k}={v}" for k, v in login.items()))),
                "unreachable": (broker.bootstrap, ("--autotune.kafka.bootstrap-servers", unreachable)),
            }
            ids = {}
            for name, (bootstrap, extra) in setups.items():
                # Small fetches: a held-back reader moves between partitions within seconds, so
                # every partition has a position early.
                args = ["--bootstrap", bootstrap, "--topic", "events", "--group", f"autotune-{name}",
                        "--cost-us", str(COST_US), "--cost-kind", "wait", "--fetch-bytes", "16384",
                        "--job-name", f"autotune-{name}", *extra]
                ids[name] = cluster.submit(job_jar, args)
            for job_id in ids.values():
                cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
            yield cluster, broker, ids, unreachable


def lines_of(cluster: FlinkCluster, job_id: str, prefix: str) -> list[str]:
    return [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith(prefix) and job_id in l]


def test_the_backlog_and_arrivals_come_from_the_brokers(jobs):
    """Backlog within 5% of the broker's own (its end offsets, read by Kafka's GetOffsetShell,
    minus the reader's positions), arrivals within 10% of the producer's rate, in windows where
    the reader is back-pressured; read through the SASL listener with the cluster's login.
    The consumer group's lag is printed beside them: its offsets are committed at checkpoints,
    which take half a minute under this back-pressure, so it runs ahead of the backlog."""
    cluster, broker, ids, _ = jobs
    job_id = ids["known"]
    said = wait_for(lambda: lines_of(cluster, job_id, "AUTOTUNE AT130 BACKLOG_SOURCE"), timeout=240,
                    what="the backlog's source for the job", cluster=cluster, interval=2)
    print("\n".join(said))
    assert "from=brokers" in said[0] and f"partitions={PARTITIONS}" in said[0], said
    source_id = next(v["id"] for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Source"))

    def fresh_window():
        # The newest window, just decided: the broker is asked at once, so both figures are
        # of the same moment, give or take a poll.
        windows = decided_windows(cluster, job_id)
        if not windows or time.time() * 1000 - windows[-1]["at_ms"] > 8_000:
            return None
        source = next(v for v in windows[-1]["vertices"] if v["name"].startswith("Source"))
        _, positions = reader_view(cluster, job_id, source_id)
        if source["backpressure"] < 0.1 or not positions or min(positions) < 0:
            return None
        return source, real_backlog(broker, "events", positions), windows[-1]["at_ms"]

    # One window is checked (docs/PERFORMANCE.md has two in a row of an earlier run).
    source, own, at_ms = wait_for(fresh_window, timeout=150, what="a fresh, back-pressured window", cluster=cluster)
    print(f"window at {at_ms}: backlog {source['pending_records']:.0f} (the broker's own {own}, the group's lag "
          f"{broker.lag('autotune-known')}), arrivals {source['arrival_rate']:.1f}/s (produced {RATE}/s), "
          f"back-pressured {source['backpressure']:.0%}")
    assert own > BACKLOG / 2, own
    assert abs(source["pending_records"] - own) <= 0.05 * own, (source, own)
    assert abs(source["arrival_rate"] - RATE) <= 0.10 * RATE, source


def test_unreachable_brokers_are_one_line_and_the_job_is_decided_on_its_reader(jobs):
    cluster, broker, ids, unreachable = jobs
    job_id = ids["unreachable"]
    said = wait_for(lambda: lines_of(cluster, job_id, "AUTOTUNE AT130 BACKLOG_SOURCE"), timeout=240,
                    what="the backlog's source for the job", cluster=cluster, interval=2)
    assert "from=pendingRecords" in said[0] and "not read in every poll" in said[0], said
    wait_for(lambda: lines_of(cluster, job_id, "AUTOTUNE AT100 PLAN"), timeout=120,
             what="a decision on the job", cluster=cluster, interval=2)
    trouble = [l for l in autotune_lines(cluster.jobmanager_log())
               if l.startswith("AUTOTUNE AT131") and f'brokers="{unreachable}"' in l]
    print("\n".join(trouble))
    assert len(trouble) == 1 and "unreachable" in trouble[0], trouble
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
    # The other job's brokers are not held up by this one.
    assert "from=brokers" in lines_of(cluster, ids["known"], "AUTOTUNE AT130")[0]
    own = [l for l in autotune_lines(cluster.jobmanager_log()) if "sets its own" in l and job_id in l]
    assert own and f"kafka.bootstrap-servers={unreachable}" in own[0], own


def test_watch_with_a_wrong_password_is_one_line_and_a_fallback(jobs, cli, tmp_path):
    """The same loop outside the cluster (`watch`), its login on the command line, the password
    wrong: the brokers refuse it once, in one line; the job is decided on its reader."""
    cluster, broker, ids, _ = jobs
    job_id = ids["known"]
    out = tmp_path / "watch.stdout"
    with out.open("w") as stdout:
        watch = subprocess.Popen(
            [str(cli), "watch", "--rest", cluster.rest_url, "--job", job_id, "--output-dir", str(tmp_path / "autotune"),
             "--duration", "5 min", "--stabilization", "0s", "--decision-window", "10s", "--poll-interval", "2s",
             "--kafka.bootstrap-servers", broker.sasl_bootstrap,
             "--kafka.properties", "security.protocol=SASL_PLAINTEXT", "--kafka.properties", "sasl.mechanism=PLAIN",
             "--kafka.properties", f"sasl.jaas.config={JAAS.format(WRONG)}"],
            stdout=stdout, stderr=subprocess.STDOUT)
    try:
        said = wait_for(lambda: [l for l in out.read_text().splitlines() if l.startswith("AUTOTUNE AT130")],
                        timeout=180, what="watch's backlog line", cluster=cluster, interval=2)
    finally:
        watch.kill()
        watch.wait(timeout=10)
    text = out.read_text()
    print("\n".join(l for l in text.splitlines() if l.startswith("AUTOTUNE AT13")))
    assert "from=pendingRecords" in said[0], said
    refused = [l for l in text.splitlines() if l.startswith("AUTOTUNE AT131")]
    assert len(refused) == 1 and "refused the credentials" in refused[0], refused
    assert WRONG not in text and USERS["alice"] not in text, "a password in watch's output"
    plugin_lines = autotune_lines(cluster.jobmanager_log())
    assert not any(USERS["alice"] in l for l in plugin_lines), "a password in the plugin's lines"
