"""What sampling the bottleneck's task threads costs a TaskManager: the sample job with a
saturated Work vertex on a one-TaskManager cluster, once with `flamegraph: false` and once with
it on (sampling every decision: 30 s here). Prints the sampler thread's own CPU time (from
/proc, by its name), the longest and total time of the stack reads (what a sampled task thread
spends stopped at a safepoint, as each profile reports it), and the TaskManager's CPU with and
without; never fails on numbers.

    python3 benches/sampling_cost.py [--version 2.3.0] [--seconds 180] [--jar build/libs/...jar]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benches"))

from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402
from taskmanager_cost import TICK, proc_stats  # noqa: E402

PREFIX = "metrics.reporter.autotune."
PLUGIN = {
    PREFIX + "factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    PREFIX + "interval": "5 s",
    PREFIX + "stabilization": "20 s",
    PREFIX + "decision-window": "30 s",
    PREFIX + "decision-interval": "15 s",
}
# Work needs 1.5 cores at parallelism 1: saturated, so its TaskManager samples it.
JOB = ["--rate", "1000", "--cost-us", "1500", "--work-parallelism", "1", "--partitions", "2",
       "--job-name", "autotune-sampling-cost"]
SAMPLER_THREAD = "autotune-sample"
EVERY_S = 30  # max(decision-window, decision-interval)


def thread_cpu_s(pid: int, name: str) -> float:
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            continue  # the thread ended
    return total


def run(flink_home: Path, job_jar: Path, jar: Path, seconds: int, workdir: Path, sampling: bool) -> dict:
    conf = dict(PLUGIN, **{PREFIX + "flamegraph": "true" if sampling else "false"})
    with FlinkCluster(flink_home, workdir, taskmanagers=1, slots=2, conf=conf, plugin_jar=jar) as cluster:
        job_id = cluster.submit(job_jar, JOB)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(40)  # warm-up: Work saturated for several report rounds, a first sampling done
        pid = next(p for name, p in cluster.pids().items() if name.startswith("taskexecutor"))
        before, sampler_before = proc_stats(pid), thread_cpu_s(pid, SAMPLER_THREAD)
        time.sleep(seconds)
        after, sampler_after = proc_stats(pid), thread_cpu_s(pid, SAMPLER_THREAD)
        tm = cluster.rest("/taskmanagers")["taskmanagers"][0]["id"]
        gauge = cluster.rest(f"/taskmanagers/{tm}/metrics?get=Status.JVM.Memory.Heap.AutotuneProfiles")
        profiles = json.loads(gauge[0]["value"]) if gauge and gauge[0]["value"] else []
        return {
            "cpu_ms_per_s": (after["cpu_s"] - before["cpu_s"]) * 1000 / seconds,
            "sampler_ms_per_s": (sampler_after - sampler_before) * 1000 / seconds,
            "profiles": profiles,
            "gauge_bytes": len(gauge[0]["value"]) if gauge else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2.3.0")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--jar", type=Path, default=None)
    args = parser.parse_args()
    jar = args.jar or next((REPO / "build" / "libs").glob("flink-autotune-*.jar"))
    flink_home = ensure_flink(args.version)
    with tempfile.TemporaryDirectory() as tmp:
        job_jar = build_example_job(flink_home, Path(tmp))
        off = run(flink_home, job_jar, jar, args.seconds, Path(tmp) / "off", sampling=False)
        on = run(flink_home, job_jar, jar, args.seconds, Path(tmp) / "on", sampling=True)
    print(f"Flink {args.version}, {os.cpu_count()} cores, {args.seconds} s measured after 40 s warm-up, "
          f"sampling every {EVERY_S} s; job: {' '.join(JOB)}")
    print(f"{'TaskManager':<34}{'flamegraph off':>16}{'flamegraph on':>16}")
    print(f"{'CPU ms/s (whole process)':<34}{off['cpu_ms_per_s']:>16.1f}{on['cpu_ms_per_s']:>16.1f}")
    print(f"{'sampler thread CPU ms/s':<34}{off['sampler_ms_per_s']:>16.2f}{on['sampler_ms_per_s']:>16.2f}")
    share = on["sampler_ms_per_s"] / 1000 * 100
    print(f"sampler thread: {share:.3f}% of one core averaged over the run "
          f"({on['sampler_ms_per_s'] * EVERY_S:.0f} ms of CPU per {EVERY_S} s decision)")
    for p in on["profiles"]:
        rounds = max(p["samples"] // max(p["threads"], 1), 1)
        print(f"profile of \"{p['vertex_name']}\": {p['samples']} samples of {p['threads']} thread(s); stack reads "
              f"{p['sampling_us'] / 1000:.1f} ms in total, {p['sampling_us'] / rounds:.0f} us on average, "
              f"longest {p['sampling_max_us']} us (the task thread's pause at a safepoint, at most)")
    print(f"gauge AutotuneProfiles: {on['gauge_bytes']:,} bytes")


if __name__ == "__main__":
    main()
