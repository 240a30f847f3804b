"""`flink-autotune analyze` against a real cluster running the sample job with a known bottleneck."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FLINK_VERSIONS
from harness.flink import FlinkCluster

RATE = 1000  # records/s arriving at the source
COST_US = 1500  # CPU per record in Work
TARGET_UTILIZATION = 0.7


@pytest.fixture(scope="module")
def bottleneck_job(flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp("analyze-cluster")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2) as cluster:
        args = ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", "1", "--partitions", "4",
                "--job-name", "autotune-analyze"]
        job_id = cluster.submit(example_job(version), args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(20)  # let the bottleneck show: Work saturated, the backlog growing
        yield cluster, job_id


def analyze(cli: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "analyze", *args], capture_output=True, text=True, timeout=timeout)


def test_analyze_names_the_bottleneck_and_its_parallelism(cli, bottleneck_job):
    cluster, job_id = bottleneck_job
    run = analyze(cli, "--rest", cluster.rest_url, "--job", job_id, "--duration", "30 s", "--interval", "3 s", "--json")
    assert run.returncode == 0, run.stderr
    [document] = json.loads(run.stdout)
    vertices = {v["name"]: v for v in document["decision"]["vertices"]}
    work = next(v for name, v in vertices.items() if name.startswith("Work"))
    source = next(v for name, v in vertices.items() if name.startswith("Source"))
    # Work needs RATE * COST_US of CPU; at 70% busy that is ceil(2.14) = 3 subtasks.
    optimum = math.ceil(RATE * COST_US / 1e6 / TARGET_UTILIZATION)
    print(f'Work: {work["current"]} -> {work["recommended"]} (analytic optimum {optimum}); evidence {work["evidence"]}')
    assert abs(work["recommended"] - optimum) <= 1, (work, optimum)
    assert work["current"] == 1
    codes = [f["code"] for f in work["findings"]]
    assert "AT110" in codes, work["findings"]
    # The source is held back by Work, not short of capacity: left alone.
    assert source["recommended"] == source["current"] == 1, source
    overrides = f'{source["id"]}:1,{work["id"]}:{work["recommended"]}'
    assert sorted(document_overrides(document)) == sorted(overrides.split(","))


def document_overrides(document) -> list[str]:
    return [f'{v["id"]}:{v["recommended"]}' for v in document["decision"]["vertices"]]


def test_analyze_prints_autotune_lines_and_replay_repeats_them(cli, bottleneck_job, tmp_path):
    cluster, job_id = bottleneck_job
    recording = tmp_path / "window.jsonl"
    run = analyze(cli, "--rest", cluster.rest_url, "--duration", "10 s", "--interval", "2 s", "--record", str(recording))
    assert run.returncode == 0, run.stderr
    print(run.stdout)
    lines = run.stdout.splitlines()
    assert any(l.startswith("AUTOTUNE AT101 SCALE_UP job=\"autotune-analyze\"") and 'vertex="Work' in l and "parallelism=1->" in l
               for l in lines), run.stdout
    assert any(l.startswith("AUTOTUNE AT100 PLAN") and "pipeline.jobvertex-parallelism-overrides=" in l for l in lines)
    # The recording runs the same model to the same decisions, anywhere, any number of times.
    for _ in range(2):
        replay = subprocess.run([str(cli), "replay", str(recording)], capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout == run.stdout


def test_analyze_reports_a_missing_job_and_a_dead_endpoint(cli, bottleneck_job):
    cluster, _ = bottleneck_job
    run = analyze(cli, "--rest", cluster.rest_url, "--job", "0" * 32, "--duration", "2 s")
    assert run.returncode == 2
    assert "is not running (gone)" in run.stderr
    run = analyze(cli, "--rest", "http://127.0.0.1:9", "--duration", "2 s", "--timeout", "2 s")
    assert run.returncode == 2
    assert "not reachable" in run.stderr
