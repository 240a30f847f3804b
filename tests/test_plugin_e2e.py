"""End to end: the built jar in plugins/autotune/ of real standalone clusters.

One JobManager and two TaskManagers on loopback per Flink release, the sample queue job
running on them, and assertions on what the plugin writes into the Flink logs.
"""

from __future__ import annotations

import math

import time
import zipfile
from pathlib import Path

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, parse_status, plugin_trouble, start_fields, wait_for
from harness.flink import FlinkCluster

REPORTER = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "2 s",
    "metrics.reporter.autotune.summary-interval": "4 s",
}
# 300 records/s at 1.5 ms each: 0.45 cores of work over 3 Work subtasks, ~150 ms/s busy each.
JOB_ARGS = ["--rate", "300", "--cost-us", "1500", "--source-parallelism", "1", "--work-parallelism", "3",
            "--partitions", "2", "--job-name", "autotune-e2e"]
def latest_status_per_taskmanager(cluster: FlinkCluster, job_id: str):
    """The newest STATUS line of each TaskManager that shows the job, or None if one has none yet."""
    statuses = {}
    for name, text in cluster.taskmanager_logs().items():
        lines = [parse_status(l) for l in autotune_lines(text, "STATUS")]
        with_job = [s for s in lines if job_id in s.jobs]
        if not with_job:
            return None
        statuses[name] = with_job[-1]
    return statuses


@pytest.fixture(scope="module", params=FLINK_VERSIONS)
def running_job(request, plugin_jar, flink_home, example_job, tmp_path_factory):
    version = request.param
    workdir = tmp_path_factory.mktemp(f"cluster-{version}")
    # -Xcheck:jni in the TaskManagers: the JVM checks every JNI call the plugin makes.
    conf = dict(REPORTER, **{"env.java.opts.taskmanager": "-Xcheck:jni"})
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(version), JOB_ARGS)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        vertices = cluster.rest(f"/jobs/{job_id}")["vertices"]
        statuses = wait_for(
            lambda: (s := latest_status_per_taskmanager(cluster, job_id)) and _all_subtasks_seen(s, job_id, vertices) and s,
            timeout=90, what="STATUS lines covering every subtask", cluster=cluster)
        yield cluster, job_id, vertices, statuses


def _all_subtasks_seen(statuses, job_id, vertices) -> bool:
    for v in vertices:
        seen = set()
        for status in statuses.values():
            if v["id"] in status.jobs[job_id]:
                seen |= status.jobs[job_id][v["id"]].subtasks
        if seen != set(range(v["parallelism"])):
            return False
    return True


def test_plugin_starts_in_the_jobmanager_and_every_taskmanager(running_job):
    cluster, _, _, _ = running_job
    jm_starts = autotune_lines(cluster.jobmanager_log(), "START")
    assert len(jm_starts) == 1, cluster.log_tail()
    jm = start_fields(jm_starts[0])
    assert jm["role"] == "jobmanager"
    assert jm["platform"] == "linux-x86_64"
    assert jm["plugin"] == jm["native"]
    assert jm["interval"] == "2s" and "summary-interval=4s" in jm_starts[0]
    tms = cluster.taskmanager_logs()
    assert len(tms) == 2
    for name, text in tms.items():
        starts = autotune_lines(text, "START")
        assert len(starts) == 1, f"{name}: {starts}"
        assert start_fields(starts[0])["role"] == "taskmanager"


def test_taskmanagers_track_every_vertex_and_subtask_by_name(running_job):
    cluster, job_id, vertices, statuses = running_job
    for v in vertices:
        subtasks_per_tm = {}
        for tm, status in statuses.items():
            tracked = status.jobs[job_id].get(v["id"])
            if tracked:
                assert tracked.name == v["name"], "the plugin must show the vertex as Flink names it"
                subtasks_per_tm[tm] = tracked.subtasks
        all_subtasks = [s for subtasks in subtasks_per_tm.values() for s in subtasks]
        assert sorted(all_subtasks) == list(range(v["parallelism"])), (v["name"], subtasks_per_tm)
    # Both TaskManagers run part of the job: each reports its own share.
    assert all(status.jobs[job_id] for status in statuses.values())
    assert all(int(s.fields["tracked"]) > 0 for s in statuses.values())


def test_values_read_in_the_taskmanagers_match_the_rest_api(running_job):
    cluster, job_id, vertices, _ = running_job
    work = next(v for v in vertices if v["name"].startswith("Work"))
    source = next(v for v in vertices if v["name"].startswith("Source"))

    def steady_busy():
        # Flink reports 1000 ms/s busy while tasks initialise, then 0 until records flow, and the
        # REST API knows no value until its metric fetcher has run: wait until both show the
        # steady state of ~150 ms/s.
        rest = cluster.rest(f"/jobs/{job_id}/vertices/{work['id']}/subtasks/metrics?get=busyTimeMsPerSecond")
        statuses = latest_status_per_taskmanager(cluster, job_id)
        busy = [s.jobs[job_id][work["id"]].busy for s in statuses.values() if work["id"] in s.jobs[job_id]]
        steady = range(50, 900)
        # A task that has just started reports NaN busy time over REST (seen on 2.3): not yet.
        rest_max = float(rest[0]["max"]) if rest else math.nan
        if math.isfinite(rest_max) and None not in busy and int(rest_max) in steady and int(max(busy)) in steady:
            return rest[0]["max"], max(busy), statuses
        return None

    rest_busy, plugin_busy, statuses = wait_for(steady_busy, timeout=120, what="steady busy time", cluster=cluster, interval=2)
    # Both read the same gauge, a few seconds apart: they must agree.
    assert abs(plugin_busy - rest_busy) <= max(75, 0.5 * rest_busy), (plugin_busy, rest_busy)
    # The FLIP-27 source's standard backlog metric reaches the plugin.
    pending = [s.jobs[job_id][source["id"]].pending for s in statuses.values() if source["id"] in s.jobs[job_id]]
    assert pending and all(p is not None for p in pending), pending


def test_status_reports_cost_and_native_memory(running_job):
    cluster, job_id, _, statuses = running_job
    for name, status in statuses.items():
        cost_us = int(status.fields["report-cost"].removesuffix("us"))
        heap_kib = int(status.fields["native-heap"].removesuffix("KiB"))
        # Every tracked metric is read each round; one Flink registers while a round runs is
        # counted as tracked at once and read from the next round.
        values, tracked = int(status.fields["values"]), int(status.fields["tracked"])
        assert tracked > 0 and values >= tracked - 2, f"{name}: {values} values read, {tracked} tracked"
        assert 0 <= cost_us < 100_000, f"{name}: report cost {cost_us} us"
        assert 0 < heap_kib < 64 * 1024, f"{name}: native heap {heap_kib} KiB"


def test_no_plugin_trouble_and_every_process_alive(running_job):
    cluster, job_id, _, _ = running_job
    assert plugin_trouble(cluster) == []
    assert all(cluster.alive().values()), cluster.alive()
    assert len(cluster.alive()) == 3
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"


def jar_without_native_library(jar: Path, out: Path) -> Path:
    """The plugin jar as a user would have it on a platform nobody built for."""
    with zipfile.ZipFile(jar) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if not item.filename.startswith("native/"):
                dst.writestr(item, src.read(item.filename))
    return out


@pytest.mark.parametrize("failure", ["missing", "corrupt"])
def test_a_missing_or_corrupt_library_is_one_clear_error_and_flink_keeps_running(
        failure, plugin_jar, flink_home, example_job, tmp_path):
    # Missing on the 1.x release, corrupt on the 2.x one: both config formats see a failure.
    version = FLINK_VERSIONS[0] if failure == "missing" else FLINK_VERSIONS[-1]
    conf = dict(REPORTER)
    if failure == "missing":
        jar = jar_without_native_library(plugin_jar, tmp_path / plugin_jar.name)
        expected = "this jar has no native library for platform linux-x86_64"
    else:
        jar = plugin_jar
        corrupt = tmp_path / "libflink_autotune.so"
        corrupt.write_bytes(b"\x7fELF this is not a shared library")
        conf["metrics.reporter.autotune.native-library"] = str(corrupt)
        expected = f"loading {corrupt} failed"
    with FlinkCluster(flink_home(version), tmp_path / "cluster", taskmanagers=2, slots=2, conf=conf,
                      plugin_jar=jar) as cluster:
        job_id = cluster.submit(example_job(version), JOB_ARGS)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(8)  # several report intervals
        # The JobManager's and the TaskManagers' logs (not the CLI client's).
        logs = {name: text for name, text in cluster.logs().items()
                if name.endswith(".log") and ("standalonesession" in name or "taskexecutor" in name)}
        assert len(logs) == 3
        for name, text in logs.items():
            errors = autotune_lines(text, "DISABLED")
            assert len(errors) == 1, f"{name}: {errors}"
            line = next(l for l in text.splitlines() if "AUTOTUNE DISABLED" in l)
            assert " ERROR " in line, line
            assert expected in line and "Fix: " in line, line
            assert autotune_lines(text, "START") == []
        assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
        assert all(cluster.alive().values()) and len(cluster.alive()) == 3
