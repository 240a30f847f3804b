"""Diagnosis on real clusters: real failures are produced and the plugin names them.

- a user exception exhausts the restart strategy: the finding names the user's exception
  and frame, not the wrapper, once with a count; the webhook (a local HTTP server) gets it
  and its URL appears in no log;
- checkpoints expire: the timeout key, doubled from what the cluster runs with;
- the job asks for more slots than the cluster has: no resources, with the slots key;
- a TaskManager without enough network buffers for the job;
- a heap too small for the job's state: java heap space, with the heap key;
- the JobManager's own heap (a job graph too big for it) and direct memory (a source
  enumerator's buffers): the JobManager's keys, with values from its own configuration.
Every finding must also reach the job's recommended config file where it has keys.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, recommended_config, wait_for
from harness.flink import FlinkCluster
from harness.webhook import SECRET, WebhookServer

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent

PLUGIN = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "2 s",
    "metrics.reporter.autotune.stabilization": "10 s",
    "metrics.reporter.autotune.decision-window": "20 s",
    "metrics.reporter.autotune.decision-interval": "5 s",
    "metrics.reporter.autotune.poll-interval": "2 s",
}
NEWEST = FLINK_VERSIONS[-1]


def save_run(cluster: FlinkCluster, name: str) -> None:
    """Keeps the cluster's logs for `benches/diagnosis_report.py` (real-failure runs)."""
    target = REPO / "target" / "diagnosis-runs" / f"{name}.{cluster.version}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in cluster.log_files():
        if f.name.endswith(".log"):
            shutil.copy(f, target / f.name)


def size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([bkmg]?)", text)
    assert m, text
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


def findings(text: str, code: str) -> list[str]:
    return [l for l in autotune_lines(text) if l.startswith(f"AUTOTUNE {code} ")]


@pytest.fixture
def webhook_server():
    with WebhookServer() as hook:
        yield hook


@pytest.mark.parametrize("version", FLINK_VERSIONS)
def test_a_user_exception_that_exhausts_restarts_is_named_not_the_wrapper(
        version, plugin_jar, flink_home, example_job, tmp_path, webhook_server):
    conf = {**PLUGIN,
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "2",
            "restart-strategy.fixed-delay.delay": "1 s",
            "metrics.reporter.autotune.webhook-secret-url": webhook_server.url,
            "metrics.reporter.autotune.webhook-interval": "1 s"}
    with FlinkCluster(flink_home(version), tmp_path, taskmanagers=1, slots=2, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(version), ["--rate", "200", "--fail-after-records", "400",
                                                       "--job-name", "autotune-user-failure"])
        cluster.wait_for_job_state(job_id, "FAILED", timeout=180)
        lines = wait_for(lambda: [l for l in findings(cluster.jobmanager_log(), "AT390") if "AT338" in l],
                         timeout=60, what="the user-code finding with the job's end", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        # Said when first seen, and once more when the job failed for good, with the count.
        assert len(findings(cluster.jobmanager_log(), "AT390")) <= 2, "one finding with a count, not a line per failure"
        line = lines[-1]
        assert f"({job_id})" in line
        assert "java.lang.IllegalStateException: no price for order" in line
        assert "at dev.flinkautotune.examples.QueueJob$Pricing.map(" in line, "the user's frame"
        assert "AT338 RESTART_EXHAUSTED" in line, "the wrapper is context, not the finding"
        count = int(re.search(r"count=(\d+)", line).group(1))
        assert count >= 2, f"the failures the exception history holds: {line}"
        assert not findings(cluster.jobmanager_log(), "AT338"), "the wrapper is not a finding of its own"
        # The webhook got it; its URL appears in no log.
        wait_for(lambda: any("AT390" in t for t in webhook_server.texts()), timeout=30, what="a webhook post",
                 cluster=cluster)
        assert all(isinstance(p, dict) and "username" in p for _, p in webhook_server.posts)
        for name, text in cluster.logs().items():
            assert SECRET not in text, name
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT390-user-code-restarts-exhausted")


def test_expired_checkpoints_get_a_longer_timeout(plugin_jar, flink_home, example_job, tmp_path):
    conf = {**PLUGIN,
            "execution.checkpointing.timeout": "2 s",
            "execution.checkpointing.tolerable-failed-checkpoints": "0",
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1000",
            "restart-strategy.fixed-delay.delay": "2 s"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=2, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(NEWEST), ["--rate", "100", "--checkpoint-interval-ms", "3000",
                                                      "--snapshot-ms", "5000", "--job-name", "autotune-slow-checkpoints"])
        lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT320"), timeout=150,
                         what="the expired-checkpoint finding", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        assert f"({job_id})" in lines[0] and "Checkpoint expired before completing" in lines[0], lines[0]
        assert "execution.checkpointing.timeout=4s (was 2 s, current x2)" in lines[0], lines[0]
        config = wait_for(lambda: recommended_config(cluster, job_id).get("execution.checkpointing.timeout") and
                          recommended_config(cluster, job_id), timeout=30, what="the key in the config file", cluster=cluster)
        assert config["execution.checkpointing.timeout"] == "4s"
        assert not findings(cluster.jobmanager_log(), "AT321"), "the tolerable-failure wrapper is not the finding"
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT320-checkpoint-expired")


def test_more_parallelism_than_slots_is_no_resources(plugin_jar, flink_home, example_job, tmp_path):
    conf = {**PLUGIN, "slot.request.timeout": "10 s"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=1, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(NEWEST), ["--rate", "100", "--work-parallelism", "3",
                                                      "--job-name", "autotune-no-slots"])
        lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT335"), timeout=150,
                         what="the no-resources finding", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        assert f"({job_id})" in lines[0] and "NoResourceAvailableException" in lines[0], lines[0]
        assert "taskmanager.numberOfTaskSlots=3 (was 1, measured)" in lines[0], "the slots the job needs on the one TaskManager"
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT335-no-resources")


def test_too_few_network_buffers_are_named(plugin_jar, flink_home, example_job, tmp_path):
    conf = {**PLUGIN, "taskmanager.memory.network.min": "96k", "taskmanager.memory.network.max": "96k"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=4, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(NEWEST), ["--rate", "100", "--work-parallelism", "3",
                                                      "--job-name", "autotune-few-buffers"])
        lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT305"), timeout=150,
                         what="the network-buffers finding", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        assert f"({job_id})" in lines[0] and "Insufficient number of network buffers" in lines[0], lines[0]
        assert "taskmanager.memory.network.max=" in lines[0], lines[0]
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT305-network-buffers")


def test_a_heap_too_small_for_the_state_is_java_heap_space(plugin_jar, flink_home, example_job, tmp_path):
    conf = {**PLUGIN,
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1000",
            "restart-strategy.fixed-delay.delay": "2 s",
            "taskmanager.memory.managed.size": "0m",
            "taskmanager.memory.network.min": "64m",
            "taskmanager.memory.network.max": "64m"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=1, conf=conf, plugin_jar=plugin_jar,
                      tm_process_size="900m") as cluster:
        cluster.submit(example_job(NEWEST), ["--rate", "40", "--keys", "2000", "--state-bytes-per-key",
                                             str(128 * 1024), "--partitions", "1", "--job-name", "autotune-oom"])
        # On a shared CPU the TaskManager can thrash in GC for minutes (its heartbeat times out,
        # AT330) before the OutOfMemoryError: the finding comes with the error.
        found = wait_for(lambda: [l for text in cluster.logs().values() for l in findings(text, "AT300")],
                         timeout=300, what="the heap finding in some process's log", cluster=cluster)
        for name, text in cluster.logs().items():
            print(name, "\n".join(autotune_lines(text)))
        line = found[0]
        # Flink stops a TaskManager whose threads hit OutOfMemoryError, and the trace goes with
        # it: the JobManager concludes it from the TaskManager's last measurements.
        assert ("java.lang.OutOfMemoryError: Java heap space" in line
                or re.search(r"left while its heap was full: live data \S+ of 260m max", line)), line
        m = re.search(r"taskmanager\.memory\.task\.heap\.size=(\w+) \(was (\w+),", line)
        assert m and size(m.group(1)) > size(m.group(2)), f"a bigger task heap than the one it had: {line}"
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT300-heap-oom")


def diagnose_logs(cli, cluster: FlinkCluster) -> dict:
    """`flink-autotune diagnose --json` over the cluster's logs, as a user runs it afterwards."""
    logs = [str(f) for f in cluster.log_files() if f.name.endswith(".log")]
    out = subprocess.run([str(cli), "diagnose", "--json", *logs], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_jobmanager_heap_too_small_for_the_job_graph_names_the_jobmanager_heap(
        plugin_jar, flink_home, example_job, cli, tmp_path):
    """The JobManager's own OOM (issue 14): its heap, not a TaskManager's, with the value from
    the JobManager's own configuration."""
    conf = {**PLUGIN, "jobmanager.memory.heap.size": "64m"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=1, conf=conf, plugin_jar=plugin_jar) as cluster:
        # The job graph carries 96 MiB: more than the JobManager's heap holds while it accepts it.
        with pytest.raises(RuntimeError):
            cluster.submit(example_job(NEWEST), ["--rate", "100", "--ballast-mb", "96",
                                                 "--job-name", "autotune-big-graph"], timeout=120, via="cli")
        lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT300"), timeout=60,
                         what="the JobManager's heap finding", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        line = lines[0]
        assert "process=jobmanager" in line and "Flink Master" in line, line
        assert "set jobmanager.memory.heap.size=96m (was 64m, current x1.5)" in line, line
        said = line.split(" | set ")[1]
        assert "taskmanager.memory" not in said and "jobmanager.memory.heap.size" in said.split(" | ")[1], \
            "the keys and the fix are the JobManager's"
        assert cluster.alive()["standalonesession-0"], "the JobManager survives a job it could not accept"
        top = diagnose_logs(cli, cluster)["findings"][0]
        assert (top["code"], top["process"], top["config"][0]["key"]) == \
            ("AT300", "jobmanager", "jobmanager.memory.heap.size"), top
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT300-jobmanager-heap")


def test_a_jobmanager_direct_memory_too_small_for_an_enumerator_names_the_jobmanager_off_heap(
        plugin_jar, flink_home, example_job, cli, tmp_path):
    """A source enumerator runs in the JobManager: its direct memory OOM fails the job, and the
    job's exception (read over REST) and the JobManager's log both name the JobManager's
    off-heap size."""
    conf = {**PLUGIN,
            "jobmanager.memory.off-heap.size": "16m",
            "jobmanager.memory.enable-jvm-direct-memory-limit": "true"}
    with FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=1, slots=1, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(NEWEST), ["--rate", "100", "--enumerator-direct-mb", "32",
                                                      "--job-name", "autotune-enumerator-direct"])
        # The JobManager's log is read as it grows, the job's exceptions over REST at the next
        # diagnosis: the process's finding may come first.
        def for_the_job():
            found = findings(cluster.jobmanager_log(), "AT302")
            return found if any(f"({job_id})" in l for l in found) else None

        lines = wait_for(for_the_job, timeout=90, what="the job's direct-memory finding", cluster=cluster)
        print("\n".join(autotune_lines(cluster.jobmanager_log())))
        for line in lines:
            assert "Cannot reserve" in line and "direct buffer memory" in line, line
            # The value it replaces is the JobManager's own (REST gives it in bytes, its log as set).
            assert re.search(r"set jobmanager\.memory\.off-heap\.size=\w+ \(was (16m|16777216b),", line), line
            assert "taskmanager.memory" not in line.split(" | set ")[1], "the keys and the fix are the JobManager's"
        config = wait_for(lambda: recommended_config(cluster, job_id).get("jobmanager.memory.off-heap.size") and
                          recommended_config(cluster, job_id), timeout=30, what="the key in the config file", cluster=cluster)
        assert not any(k.startswith("taskmanager.memory.") for k in config), config
        top = diagnose_logs(cli, cluster)["findings"][0]
        assert (top["code"], top["process"], top["config"][0]["key"]) == \
            ("AT302", "jobmanager", "jobmanager.memory.off-heap.size"), top
        assert plugin_trouble(cluster) == []
        save_run(cluster, "AT302-jobmanager-direct")
