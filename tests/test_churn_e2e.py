"""Job churn, short (issue 13, item 5): 100 jobs submitted and cancelled over the REST API in
about 1.5 minutes on a real 2.3 cluster with the plugin, each with other vertices, 6 live at a
time, with windows short enough that many get decisions. The 15-minute, 500-job soak is
`scripts/churn_soak.py`; its figures are in docs/RELIABILITY.md.

What a user checks: no plugin trouble and no process lost; once the jobs are gone, the plugin
tracks no more metrics than before the first job and the coordinator no job; its own threads
and native heap did not grow with the jobs; every file it wrote is whole."""

from __future__ import annotations

import json

from conftest import FLINK_VERSIONS
from harness.autotune_log import (SHORTEST_LOOP_CONF, autotune_lines, parse_status, plugin_trouble, wait_for,
                                  whole_lines)
from harness.churn import churn, slope_per_hour
from harness.flink import FlinkCluster

JOBS, MINUTES, LIVE = 100, 1.5, 6



def newest_status(text: str):
    statuses = autotune_lines(text, "STATUS")
    return parse_status(statuses[-1]) if statuses else None


def test_a_hundred_jobs_come_and_go_and_the_plugin_keeps_nothing_of_them(
        plugin_jar, flink_home, example_job, tmp_path):
    version = FLINK_VERSIONS[-1]
    with FlinkCluster(flink_home(version), tmp_path, taskmanagers=1, slots=3 * (LIVE + 1), conf=SHORTEST_LOOP_CONF,
                      plugin_jar=plugin_jar) as cluster:
        out = cluster.log_dir / "autotune"
        (tm_log,) = cluster.taskmanager_logs()
        idle = wait_for(lambda: newest_status(cluster.taskmanager_logs()[tm_log]), timeout=60,
                        what="a TaskManager STATUS line before any job", cluster=cluster)
        run = churn(cluster, example_job(version), out, JOBS, MINUTES, LIVE, sample_every_s=15, settle_s=5)
        for (proc, key), points in sorted(run.series.items()):
            print(f"{proc:22} {key:16} first {points[0][1]:9.1f}  second {points[min(1, len(points) - 1)][1]:9.1f}"
                  f"  last {points[-1][1]:9.1f}  slope/h {slope_per_hour(points):9.1f}")
        print(f"{run.submitted} submitted, {run.cancelled} cancelled, {run.failed} failed in {run.seconds:.0f} s")
        assert run.submitted == JOBS and run.failed == 0 and not run.ended, run

        # Gone jobs are forgotten: the TaskManager tracks what it tracked before the first job
        # (give its next STATUS lines a moment), the coordinator no job.
        wait_for(lambda: (lambda s: s and s.fields["tracked"] == idle.fields["tracked"])(
            newest_status(cluster.taskmanager_logs()[tm_log])), timeout=30,
            what=f"the TaskManager back to tracked={idle.fields['tracked']}", cluster=cluster)
        wait_for(lambda: (lambda s: s and s.fields["jobs"] == "0")(newest_status(cluster.jobmanager_log())),
                 timeout=30, what="the coordinator with jobs=0", cluster=cluster)

        # Nothing grew with the jobs: the plugin's threads, and its native heap from the second
        # sample on (the first is before the diagnosis catalogue is compiled).
        for (proc, key), points in run.series.items():
            if key == "plugin_threads":
                assert points[-1][1] <= points[0][1] + 1, (proc, points)
            if key == "native_heap_kib":
                assert points[-1][1] <= points[1][1] + 4096, (proc, points)

        decided = [p for p in out.iterdir()] if out.is_dir() else []
        print(f"{len(decided)} job folders written")
        for history in out.rglob("decisions.jsonl"):
            for line in whole_lines(history):
                json.loads(line)
        assert plugin_trouble(cluster) == []
        assert all(cluster.alive().values())
