"""A TaskManager killed mid-window, then the JobManager restarted (issue 13, item 6).

A TaskManager dies (SIGKILL, as a machine that goes away): the job restarts on the one left,
the window it was in gets no decision, and the coordinator goes on deciding for the job, right.
Then the JobManager is stopped and started again, as an operator would: a session cluster
without HA loses its jobs, so the job is submitted again with the same id (as HA or a fixed
job id brings it back); the new JobManager's coordinator reads the job's scaling history back
from its folder and goes on deciding for it, and the job's files are whole (every history line
is JSON, the config file is complete YAML)."""

from __future__ import annotations

import json
import math
import time

import pytest
import yaml

from conftest import FLINK_VERSIONS
from harness.autotune_log import (FAST_LOOP_CONF, autotune_lines, decided_windows, no_temporary_files, plugin_trouble,
                                  recommended, wait_for, whole_lines)
from harness.flink import FlinkCluster

RATE, COST_US = 1000, 1500
OPTIMUM = math.ceil(RATE * COST_US / 1e6 / 0.7)
# One fewer when a short window reads Work less busy than it is, one more while it catches up.
RIGHT_FOR_WORK = {OPTIMUM - 1, OPTIMUM, OPTIMUM + 1}
CONF = dict(FAST_LOOP_CONF, **{
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "10",
    "restart-strategy.fixed-delay.delay": "2 s",
    # A killed TaskManager is noticed in seconds rather than the default 50 s.
    "heartbeat.interval": "2 s",
    "heartbeat.timeout": "10 s",
})
JOB_ARGS = ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", "1", "--partitions", "4"]


def taskmanager_running(cluster: FlinkCluster, job_id: str, vertex_prefix: str) -> str:
    """The daemon name (`taskexecutor-N`) of the TaskManager running the vertex's first subtask."""
    vertex = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith(vertex_prefix))
    [where] = cluster.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"][:1]
    tm_id = where["taskmanager-id"]
    for name, text in cluster.taskmanager_logs().items():
        if tm_id in text:
            return name.removeprefix("flink--").rsplit("-", 1)[0]  # flink--taskexecutor-0-vm.log
    raise AssertionError(f"no TaskManager log names {tm_id}")


@pytest.fixture(scope="module")
def failover(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[0]
    workdir = tmp_path_factory.mktemp(f"failover-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=CONF,
                      plugin_jar=plugin_jar) as cluster:
        first = cluster.submit(example_job(version), JOB_ARGS + ["--job-name", "autotune-failover"])
        cluster.wait_for_job_state(first, "RUNNING", timeout=120)
        wait_for(lambda: decided_windows(cluster, first), timeout=180, what="the first decision", cluster=cluster, interval=2)

        # Mid-window: the next window has begun polling by now.
        time.sleep(6)
        killed_at = time.time() * 1000
        cluster.kill_taskmanager(taskmanager_running(cluster, first, "Work"))

        def restarted():
            job = cluster.rest(f"/jobs/{first}")
            back = job["state"] == "RUNNING" and all(
                v["status"] == "RUNNING" and v["start-time"] > killed_at for v in job["vertices"])
            return back and len(cluster.rest("/taskmanagers")["taskmanagers"]) == 1 and job

        job = wait_for(restarted, timeout=180, what="the job running again on the TaskManager left",
                       cluster=cluster, interval=1)
        restarted_at = max(v["start-time"] for v in job["vertices"])
        after_restart = wait_for(lambda: [w for w in decided_windows(cluster, first) if w["at_ms"] > restarted_at],
                                 timeout=180, what="a decision after the job restarted", cluster=cluster, interval=2)
        print(f"Flink restarted the job {(restarted_at - killed_at) / 1000:.1f} s after the TaskManager died")
        survivors = len(cluster.rest("/taskmanagers")["taskmanagers"])
        before_restart = cluster.jobmanager_log()

        cluster.restart_jobmanager(taskmanagers=1)
        back_at = time.time() * 1000
        again = cluster.submit(example_job(version), JOB_ARGS + ["--job-name", "autotune-failover"],
                               conf={"$internal.pipeline.job-id": first})
        assert again == first, "the job came back with its id"
        cluster.wait_for_job_state(first, "RUNNING", timeout=120)
        wait_for(lambda: [w for w in decided_windows(cluster, first) if w["at_ms"] > back_at], timeout=180,
                 what="a decision by the restarted JobManager", cluster=cluster, interval=2)
        yield {"cluster": cluster, "first": first, "back_at": back_at, "killed_at": killed_at,
               "restarted_at": restarted_at, "after_restart": after_restart, "survivors": survivors,
               "before_restart": before_restart}


def test_the_coordinator_goes_on_deciding_right_when_a_taskmanager_dies(failover):
    first = failover["first"]
    assert failover["survivors"] == 1
    lines = autotune_lines(failover["before_restart"])
    # Until Flink notices the TaskManager gone, the REST API shows the job running with that
    # TaskManager's last values; every decision, before and after the restart, is right.
    decided = [w for w in decided_windows(failover["cluster"], first)]
    print(f"{len(decided)} windows decided, {len(failover['after_restart'])} after the restart: Work at "
          f"{[recommended(w, 'Work') for w in decided]}")
    assert failover["after_restart"]
    assert all(recommended(w, "Work") in RIGHT_FOR_WORK and recommended(w, "Source") == 1 for w in decided), decided
    # A window the restart fell into gets no decision, said at INFO; a dead TaskManager is no
    # trouble of the loop.
    spanning = [w for w in decided if w["at_ms"] - 15_000 < failover["restarted_at"] < w["at_ms"]]
    assert spanning == [], spanning
    assert not [l for l in lines if "trying again every" in l and first in l], lines


def test_after_a_jobmanager_restart_the_history_is_read_back_and_the_files_are_whole(failover):
    cluster, first = failover["cluster"], failover["first"]
    lines = autotune_lines(cluster.jobmanager_log())
    assert sum(l.startswith("AUTOTUNE COORDINATOR started") for l in lines) == 1, "the restarted JobManager's"
    read_back = [l for l in lines if f"job {first}: scaling history read back" in l]
    assert len(read_back) == 1 and "(2 vertices)" in read_back[0], lines
    windows = decided_windows(cluster, first)
    after = [w for w in windows if w["at_ms"] > failover["back_at"]]
    print(f"{len(windows)} windows in the job's history, {len(after)} by the restarted JobManager")
    assert after and all(recommended(w, "Work") in RIGHT_FOR_WORK for w in after), after
    folder = cluster.log_dir / "autotune" / first
    for line in whole_lines(folder / "decisions.jsonl"):
        json.loads(line)  # every line whole
    config = yaml.safe_load((folder / "recommended-config.yaml").read_text())
    overrides = dict(p.split(":") for p in config["pipeline.jobvertex-parallelism-overrides"].split(","))
    assert len(overrides) == 2, config
    assert json.loads((folder / "scaling-history.json").read_text())["vertices"], "the history kept"
    no_temporary_files(folder, cluster)
    assert plugin_trouble(cluster) == []
