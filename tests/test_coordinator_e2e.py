"""The coordinator inside the JobManager: with the plugin configured and nothing else, the
JobManager log names the bottleneck of the sample job and the parallelism it needs, and the
job's recommended config file and decision history appear beside the Flink logs."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, wait_for
from harness.flink import FlinkCluster

RATE = 1000
COST_US = 1500
OPTIMUM = math.ceil(RATE * COST_US / 1e6 / 0.7)  # Work at 70% busy: 3 subtasks

CONF = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "5 s",
    "metrics.reporter.autotune.stabilization": "15 s",
    "metrics.reporter.autotune.decision-window": "30 s",
    "metrics.reporter.autotune.decision-interval": "15 s",
    "metrics.reporter.autotune.poll-interval": "3 s",
}


@pytest.fixture(scope="module")
def coordinated(plugin_jar, flink_home, example_job, tmp_path_factory):
    # The 1.x release here: the analyze test runs on the 2.x one.
    version = FLINK_VERSIONS[0]
    workdir = tmp_path_factory.mktemp(f"coordinator-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=CONF, plugin_jar=plugin_jar) as cluster:
        args = ["--rate", str(RATE), "--cost-us", str(COST_US), "--work-parallelism", "1", "--partitions", "4",
                "--job-name", "autotune-coordinator"]
        job_id = cluster.submit(example_job(version), args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)

        def plan_logged():
            lines = autotune_lines(cluster.jobmanager_log())
            plans = [l for l in lines if l.startswith("AUTOTUNE AT100 PLAN") and job_id in l]
            return lines if plans else None

        lines = wait_for(plan_logged, timeout=240, what="the coordinator's first decision", cluster=cluster, interval=3)
        yield cluster, job_id, lines


def test_the_jobmanager_log_names_the_bottleneck_and_its_parallelism(coordinated):
    cluster, job_id, lines = coordinated
    print("\n".join(lines))
    assert any(l.startswith("AUTOTUNE COORDINATOR started rest=http://127.0.0.1:") for l in lines)
    work_up = [l for l in lines if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Work' in l]
    assert work_up, lines
    recommended = int(re.search(r"parallelism=1->(\d+)", work_up[0]).group(1))
    assert abs(recommended - OPTIMUM) <= 1, (recommended, OPTIMUM)
    assert any(l.startswith("AUTOTUNE AT110 BOTTLENECK") and 'vertex="Work' in l for l in lines)
    # Only Work changes: the source stays at 1.
    assert not any(l.startswith("AUTOTUNE AT10") and 'vertex="Source' in l for l in lines)
    # TaskManagers do not coordinate.
    for text in cluster.taskmanager_logs().values():
        assert autotune_lines(text, "COORDINATOR") == []


def test_the_recommended_config_and_history_are_written_beside_the_logs(coordinated):
    cluster, job_id, _ = coordinated
    job_dir = cluster.log_dir / "autotune" / job_id
    config = (job_dir / "recommended-config.yaml").read_text()
    [line] = [l for l in config.splitlines() if not l.startswith("#")]
    key, _, value = line.partition(": ")
    assert key == "pipeline.jobvertex-parallelism-overrides"
    overrides = dict(pair.split(":") for pair in value.split(","))
    vertices = {v["name"]: v["id"] for v in cluster.rest(f"/jobs/{job_id}")["vertices"]}
    assert set(overrides) == set(vertices.values()), "every vertex is covered"
    work = next(vid for name, vid in vertices.items() if name.startswith("Work"))
    assert abs(int(overrides[work]) - OPTIMUM) <= 1
    history = [json.loads(l) for l in (job_dir / "decisions.jsonl").read_text().splitlines()]
    assert history and history[0]["job_id"] == job_id
    assert any(v["recommended"] != v["current"] for v in history[0]["decision"]["vertices"])


def test_the_cluster_is_unharmed(coordinated):
    cluster, job_id, _ = coordinated
    assert plugin_trouble(cluster) == []
    assert all(cluster.alive().values()) and len(cluster.alive()) == 3
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
