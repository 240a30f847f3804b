"""Diagnosis on real clusters, for the families issue 25 added and for what is no failure:

- a class conflict (the job jar also in lib/, an object of one class loader used as the other's):
  AT342 with `classloader.resolve-order`, and that key, applied as the finding gives it, lets the
  same job run;
- a state too large for the JobManager's checkpoint storage (no checkpoint directory set): AT327
  with `execution.checkpointing.storage`;
- a failure the catalogue does not know, in a TaskManager's log: the plugin's AT399 line there
  names the root cause, the task and where it was thrown, and `flink-autotune diagnose` says the
  same of the log;
- a cluster stopped under its running job, as an operator stops it: no finding, neither in the
  plugin's lines nor in `flink-autotune diagnose` over every log afterwards.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import SHORTEST_LOOP_CONF, autotune_lines, decided_windows, plugin_trouble, \
    recommended_config, wait_for
from harness.flink import FlinkCluster

NEWEST = FLINK_VERSIONS[-1]
NO_RESTARTS = {**SHORTEST_LOOP_CONF, "restart-strategy.type": "none"}


def findings(text: str, code: str) -> list[str]:
    return [l for l in autotune_lines(text) if l.startswith(f"AUTOTUNE {code} ")]


def diagnose(cli, logs: list) -> list[dict]:
    """`flink-autotune diagnose --json` over logs, as a user runs it afterwards."""
    out = subprocess.run([str(cli), "diagnose", "--json", *map(str, logs)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["findings"]


@pytest.fixture(scope="module")
def shared(plugin_jar, flink_home, tmp_path_factory):
    """One cluster for the failures one job at a time can show (each job fails for good)."""
    with FlinkCluster(flink_home(NEWEST), tmp_path_factory.mktemp("repros"), taskmanagers=1, slots=2,
                      conf=NO_RESTARTS, plugin_jar=plugin_jar) as cluster:
        yield cluster


def taskmanager_log(cluster: FlinkCluster) -> str:
    [text] = [t for name, t in cluster.logs().items() if "taskexecutor" in name and name.endswith(".log")]
    return text


def test_a_class_conflict_names_the_resolve_order_and_the_key_it_gives_lets_the_job_run(
        plugin_jar, flink_home, example_job, tmp_path):
    job = example_job(NEWEST)
    args = ["--rate", "100", "--codec-from-lib", "true", "--job-name", "autotune-class-conflict"]
    with FlinkCluster(flink_home(NEWEST), tmp_path / "conflict", taskmanagers=1, slots=2, conf=NO_RESTARTS,
                      plugin_jar=plugin_jar, lib_jars=[job]) as cluster:
        job_id = cluster.submit(job, args)
        cluster.wait_for_job_state(job_id, "FAILED", timeout=120)
        lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT342"), timeout=60,
                         what="the class conflict's finding", cluster=cluster)
        print("\n".join(lines))
        line = lines[0]
        assert "SharedCodec cannot be cast to class" in line and "ChildFirstClassLoader" in line, line
        fix = line.split(" | set ")[1].split(" ")[0]
        assert fix == "classloader.resolve-order=parent-first", line
        config = wait_for(lambda: recommended_config(cluster, job_id).get("classloader.resolve-order") and
                          recommended_config(cluster, job_id), timeout=30, what="the key in the config file",
                          cluster=cluster)
        assert config["classloader.resolve-order"] == "parent-first", config
        assert plugin_trouble(cluster) == []

    key, value = fix.split("=")
    with FlinkCluster(flink_home(NEWEST), tmp_path / "fixed", taskmanagers=1, slots=2, conf={**NO_RESTARTS, key: value},
                      plugin_jar=plugin_jar, lib_jars=[job]) as cluster:
        job_id = cluster.submit(job, args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        # Records went through the codec, and the job is still running.
        codec = lambda: next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if "Codec" in v["name"])
        wait_for(lambda: codec()["metrics"]["read-records"] > 0, timeout=60, what="records through the codec",
                 cluster=cluster)
        assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
        assert findings(cluster.jobmanager_log(), "AT342") == []


def test_state_too_large_for_the_jobmanagers_checkpoint_storage_names_the_storage(shared, example_job):
    # No checkpoint directory: the JobManager's storage, at most 5 MiB of state per task. Work
    # holds 1024 keys x 8 KiB = 8 MiB once every key was seen.
    cluster = shared
    job_id = cluster.submit(example_job(NEWEST), [
        "--rate", "400", "--keys", "1024", "--state-bytes-per-key", str(8 * 1024), "--partitions", "1",
        "--checkpoint-interval-ms", "3000", "--job-name", "autotune-state-too-large"])
    lines = wait_for(lambda: findings(cluster.jobmanager_log(), "AT327"), timeout=120,
                     what="the state-size finding", cluster=cluster)
    print("\n".join(lines))
    line = lines[0]
    assert "maximum permitted memory-backed state" in line and "maxSize=5242880" in line, line
    assert " | set execution.checkpointing.storage=filesystem" in line, line
    config = wait_for(lambda: recommended_config(cluster, job_id).get("execution.checkpointing.storage") and
                      recommended_config(cluster, job_id), timeout=30, what="the key in the config file",
                      cluster=cluster)
    assert config["execution.checkpointing.storage"] == "filesystem", config
    assert plugin_trouble(cluster) == []


def test_a_failure_nobody_catalogued_is_named_in_the_taskmanagers_log(shared, example_job, cli):
    cluster = shared
    job_id = cluster.submit(example_job(NEWEST), ["--rate", "100", "--state-outside-keyby", "true",
                                                  "--job-name", "autotune-unknown-failure"])
    cluster.wait_for_job_state(job_id, "FAILED", timeout=120)
    # The TaskManager's plugin reads its own log: the task's failure, in its words.
    lines = wait_for(lambda: findings(taskmanager_log(cluster), "AT399"), timeout=60,
                     what="AT399 in the TaskManager's log", cluster=cluster)
    print("\n".join(lines))
    line = lines[0]
    assert "UNRECOGNIZED_FAILURE" in line and "can only be used on a 'keyed stream'" in line, line
    assert "LastSeen" in line and "thrown at org.apache.flink." in line, "the task and where it was thrown"
    assert "called from dev.flinkautotune.examples.QueueJob$LastSeen.map" in line, "the operator that asked"
    assert "No known fix applies" in line, line
    assert " | set " not in line, "no key is invented"
    # The same log read afterwards, as a user runs the tool on it.
    [top] = [f for f in diagnose(cli, [p for p in cluster.log_files() if "taskexecutor" in p.name
                                      and p.name.endswith(".log")])
             if f["code"] == "AT399"][:1]
    assert "can only be used on a 'keyed stream'" in top["evidence"] and top["process"] == "taskmanager", top
    assert plugin_trouble(cluster) == []


def test_a_cluster_stopped_under_its_running_job_is_no_failure(plugin_jar, flink_home, example_job, cli, tmp_path):
    cluster = FlinkCluster(flink_home(NEWEST), tmp_path, taskmanagers=2, slots=2, conf=SHORTEST_LOOP_CONF,
                           plugin_jar=plugin_jar)
    with cluster:
        job_id = cluster.submit(example_job(NEWEST), ["--rate", "200", "--checkpoint-interval-ms", "2000",
                                                      "--work-parallelism", "2", "--job-name", "autotune-stopped"])
        wait_for(lambda: decided_windows(cluster, job_id), timeout=120, what="a decision: the plugin at work",
                 cluster=cluster, interval=2)
    # Stopped by the scripts as an operator stops it: the TaskManagers first, under the running job.
    logs = [p for p in cluster.log_files() if p.name.endswith(".log")]
    said = [l for p in logs for l in autotune_lines(p.read_text(errors="replace")) if l.startswith("AUTOTUNE AT3")]
    assert said == [], said
    found = diagnose(cli, logs)
    assert found == [], [(f["code"], f["evidence"]) for f in found]
