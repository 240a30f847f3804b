"""What the plugin costs inside a TaskManager: the same job on the same cluster shape, once
without the plugin and once with it, each for the same time. Prints RSS, heap after GC, CPU
time and threads of the TaskManager process, read from /proc and the REST API; never fails on
numbers.

    python3 benches/taskmanager_cost.py [--version 2.3.0] [--seconds 120] [--jar build/libs/...jar]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402

PLUGIN = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "10 s",
}
JOB = ["--rate", "2000", "--cost-us", "50", "--keys", "10000", "--state-bytes-per-key", "256",
       "--work-parallelism", "2", "--partitions", "2", "--job-name", "autotune-cost"]
TICK = os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> dict[str, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / TICK,  # utime + stime
        "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
    }


def run(flink_home: Path, job_jar: Path, jar: Path | None, seconds: int, workdir: Path) -> dict[str, float]:
    conf = PLUGIN if jar else {}
    with FlinkCluster(flink_home, workdir, taskmanagers=1, slots=2, conf=conf, plugin_jar=jar) as cluster:
        job_id = cluster.submit(job_jar, JOB)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(20)  # warm-up: classes loaded, state built
        pid = next(p for name, p in cluster.pids().items() if name.startswith("taskexecutor"))
        before = proc_stats(pid)
        time.sleep(seconds)
        after = proc_stats(pid)
        tm = cluster.rest("/taskmanagers")["taskmanagers"][0]["id"]
        heap = {m["id"]: float(m["value"]) for m in cluster.rest(
            f"/taskmanagers/{tm}/metrics?get=Status.JVM.Memory.Heap.Used,Status.JVM.Memory.Metaspace.Used")}
        return {
            "cpu_ms_per_s": (after["cpu_s"] - before["cpu_s"]) * 1000 / seconds,
            "rss_mib": after["rss_mib"],
            "threads": after["threads"],
            "heap_used_mib": heap["Status.JVM.Memory.Heap.Used"] / 2**20,
            "metaspace_mib": heap["Status.JVM.Memory.Metaspace.Used"] / 2**20,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2.3.0")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--jar", type=Path, default=None)
    args = parser.parse_args()
    jar = args.jar or next((REPO / "build" / "libs").glob("flink-autotune-*.jar"))
    flink_home = ensure_flink(args.version)
    with tempfile.TemporaryDirectory() as tmp:
        job_jar = build_example_job(flink_home, Path(tmp))
        without = run(flink_home, job_jar, None, args.seconds, Path(tmp) / "without")
        with_plugin = run(flink_home, job_jar, jar, args.seconds, Path(tmp) / "with")
    print(f"Flink {args.version}, {os.cpu_count()} cores, {args.seconds} s measured after 20 s warm-up, "
          f"job: {' '.join(JOB)}")
    print(f"{'TaskManager':<22}{'without':>12}{'with plugin':>14}{'difference':>12}")
    for key, label in [("cpu_ms_per_s", "CPU ms/s"), ("rss_mib", "RSS MiB"), ("heap_used_mib", "heap used MiB"),
                       ("metaspace_mib", "metaspace MiB"), ("threads", "threads")]:
        a, b = without[key], with_plugin[key]
        print(f"{label:<22}{a:>12.1f}{b:>14.1f}{b - a:>+12.1f}")


if __name__ == "__main__":
    main()
