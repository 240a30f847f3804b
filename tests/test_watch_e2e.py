"""`flink-autotune watch`: the plugin's loop as a process beside a cluster that does not have
the plugin. On Flink 2.3 it names the sample job's
bottleneck, writes the recommended config with the parallelism and the memory keys, stops
cleanly on Ctrl-C, and with --mode apply and the adaptive scheduler rescales the job in place."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import FLINK_VERSIONS
from harness.autotune_log import wait_for
from harness.flink import FlinkCluster

RATE = 800
COST_US = 1500
OPTIMUM = math.ceil(RATE * COST_US / 1e6 / 0.7)  # Work at 70% busy: 2 subtasks
# The in-cluster tests' loop (harness FAST_LOOP_CONF): a first decision about 30 s after the job runs.
FAST_LOOP = ["--stabilization", "10 s", "--decision-window", "15 s", "--decision-interval", "5 s",
             "--poll-interval", "2 s"]


class Watch:
    """`flink-autotune watch` running in the background, its standard output in a file."""

    def __init__(self, cli: Path, rest_url: str, out_dir: Path, *args: str):
        self.stdout_path = out_dir / "watch.stdout"
        self.stderr_path = out_dir / "watch.stderr"
        self.proc = subprocess.Popen(
            [str(cli), "watch", "--rest", rest_url, "--output-dir", str(out_dir / "autotune"),
             "--duration", "10 min", *FAST_LOOP, *args],
            stdout=self.stdout_path.open("w"), stderr=self.stderr_path.open("w"))

    def lines(self) -> list[str]:
        return self.stdout_path.read_text().splitlines()

    def interrupt(self) -> int:
        """Ctrl-C, as a user at a terminal would press it; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def bottleneck_job(cluster: FlinkCluster, example_job, version: str, name: str) -> str:
    args = ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", "1", "--partitions", "4",
            "--job-name", name]
    job_id = cluster.submit(example_job(version), args)
    cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
    return job_id


def plan_said(watch: Watch, job_id: str):
    lines = watch.lines()
    planned = any(l.startswith("AUTOTUNE AT100 PLAN") and job_id in l for l in lines)
    memory = any(l.startswith("AUTOTUNE AT200 MEMORY_PLAN") and job_id in l for l in lines)
    return lines if planned and memory else None


def work_vertex(cluster: FlinkCluster, job_id: str) -> dict:
    return next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Work"))


def test_watch_names_the_bottleneck_of_a_cluster_without_the_plugin(cli, flink_home, example_job, tmp_path):
    # The newest release only: watch runs the coordinator the plugin runs in the JobManager,
    # which the 1.20 tests (test_coordinator_e2e.py, test_kafka_1x_e2e.py) run against 1.20's API.
    version = FLINK_VERSIONS[-1]
    with FlinkCluster(flink_home(version), tmp_path / "cluster", taskmanagers=2, slots=2) as cluster:
        assert not (cluster.home / "plugins" / "autotune").exists(), "this cluster has no plugin"
        job_id = bottleneck_job(cluster, example_job, version, "autotune-watch")
        watch = Watch(cli, cluster.rest_url, tmp_path)
        try:
            lines = wait_for(lambda: plan_said(watch, job_id), timeout=240, what="watch's first decision",
                             cluster=cluster, interval=3)
        finally:
            code = watch.interrupt() if watch.proc.poll() is None else watch.proc.returncode
            watch.kill()
        print("\n".join(lines))
        assert code == 0, watch.stderr_path.read_text()
        assert lines[0].startswith(f"AUTOTUNE COORDINATOR started rest={cluster.rest_url}")
        assert watch.lines()[-1] == "AUTOTUNE COORDINATOR stopped", "Ctrl-C stops it cleanly"
        bottleneck = [l for l in lines if l.startswith("AUTOTUNE AT110 BOTTLENECK")]
        assert bottleneck and 'vertex="Work' in bottleneck[0], lines
        work_up = next(l for l in lines if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Work' in l)
        recommended = int(re.search(r"parallelism=1->(\d+)", work_up).group(1))
        assert abs(recommended - OPTIMUM) <= 1, (recommended, OPTIMUM)
        # No plugin in the TaskManagers: memory comes from Flink's own metrics, said once.
        assert len([l for l in lines if l.startswith("AUTOTUNE AT207 ")]) == 1, lines

        config = (tmp_path / "autotune" / job_id / "recommended-config.yaml").read_text()
        keys = dict(l.partition(": ")[::2] for l in config.splitlines() if l and not l.startswith("#"))
        overrides = dict(p.split(":") for p in keys["pipeline.jobvertex-parallelism-overrides"].split(","))
        assert int(overrides[work_vertex(cluster, job_id)["id"]]) == recommended
        for key in ("taskmanager.memory.process.size", "taskmanager.memory.task.heap.size",
                    "taskmanager.memory.network.max", "taskmanager.memory.managed.size"):
            assert key in keys, config
        # The TaskManagers' heap is kept: without the plugin its live data is not measured.
        task_heap = cluster.rest("/taskmanagers")["taskmanagers"][0]["memoryConfiguration"]["taskHeap"]
        task_heap_mib = math.ceil(task_heap / 2**20)  # written keys are whole mebibytes
        assert keys["taskmanager.memory.task.heap.size"] == f"{task_heap_mib}m", (config, task_heap_mib)
        assert (tmp_path / "autotune" / job_id / "decisions.jsonl").is_file()
        # Watching changed nothing.
        assert work_vertex(cluster, job_id)["parallelism"] == 1


def test_watch_applies_the_plan_through_the_adaptive_scheduler(cli, flink_home, example_job, tmp_path):
    version = FLINK_VERSIONS[-1]
    conf = {"jobmanager.scheduler": "adaptive"}
    with FlinkCluster(flink_home(version), tmp_path / "cluster", taskmanagers=2, slots=2, conf=conf) as cluster:
        job_id = bottleneck_job(cluster, example_job, version, "autotune-watch-apply")
        watch = Watch(cli, cluster.rest_url, tmp_path, "--mode", "apply", "--job", job_id)

        def rescaled():
            vertices = cluster.rest(f"/jobs/{job_id}")["vertices"]
            work = next(v for v in vertices if v["name"].startswith("Work"))
            return work if work["parallelism"] > 1 and all(v["status"] == "RUNNING" for v in vertices) else None

        try:
            work = wait_for(rescaled, timeout=300, what="watch to rescale Work in place", cluster=cluster, interval=3)
            time.sleep(5)
        finally:
            code = watch.interrupt() if watch.proc.poll() is None else watch.proc.returncode
            watch.kill()
        lines = watch.lines()
        print("\n".join(lines))
        assert code == 0, watch.stderr_path.read_text()
        assert abs(work["parallelism"] - OPTIMUM) <= 1, work
        applied = [l for l in lines if l.startswith("AUTOTUNE AT103 APPLIED")]
        assert len(applied) == 1 and job_id in applied[0], lines
        assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"


def test_replay_refuses_a_broken_recording_in_one_line(cli, tmp_path):
    cases = {
        "not-json.jsonl": "this is not json\n",
        "short-sample.jsonl": ('{"format":1,"rest":"r","shape":{"job_id":"j","job_name":"n","vertices":'
                               '[{"id":"a","name":"A","parallelism":1,"max_parallelism":128},'
                               '{"id":"b","name":"B","parallelism":1,"max_parallelism":128}],"edges":[]},'
                               '"samples":[{"at_ms":0,"vertices":[]},{"at_ms":1000,"vertices":[]}],'
                               '"available_slots":null,"slots_per_taskmanager":null}\n'),
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        run = subprocess.run([str(cli), "replay", str(path)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 2, (name, run)
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "panicked" not in run.stderr
        assert f"{path} line 1:" in run.stderr, run.stderr
    assert "sample 1 has 0 vertices, the job has 2" in run.stderr
