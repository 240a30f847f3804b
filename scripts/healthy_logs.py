"""Healthy logs for the diagnosis's false-alarm count (issue 14): on each release, a real cluster
with the plugin in every process runs the sample job with checkpoints for a few minutes, is
stopped cleanly, and its logs (JobManager, each TaskManager, the client) are kept as fixtures
`rust-core/model/tests/fixtures/diagnosis/clean-<process>.<version>.log`. Any finding on them
is a false alarm (`cargo test -p flink-autotune-model --test diagnosis_fixtures`,
`benches/diagnosis_report.py`).

    python3 scripts/healthy_logs.py [--versions 1.17.2,1.18.1,...] [--minutes 4]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from harness.autotune_log import FAST_LOOP_CONF  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402

FIXTURES = REPO / "rust-core/model/tests/fixtures/diagnosis"
DEFAULT_VERSIONS = "1.17.2,1.18.1,1.19.3,2.0.2,2.1.3,2.2.1"
# A job that keeps up (no back pressure), checkpointing every 5 s: what a healthy cluster logs.
JOB_ARGS = ["--rate", "500", "--cost-us", "200", "--work-parallelism", "2", "--partitions", "2",
            "--checkpoint-interval-ms", "5000", "--job-name", "healthy"]


def process_of(log: Path) -> str | None:
    """`jobmanager`, `taskmanager-N` or `client`, from Flink's log file name."""
    name = log.name
    if "-standalonesession-" in name:
        return "jobmanager"
    if m := re.search(r"-taskexecutor-(\d+)-", name):
        return f"taskmanager-{m.group(1)}"
    if "-client-" in name:
        return "client"
    return None


def run(version: str, minutes: float, plugin: Path) -> list[Path]:
    workdir = Path(tempfile.mkdtemp(prefix=f"flink-autotune-healthy-{version}-"))
    home = ensure_flink(version)
    job_jar = build_example_job(home, workdir / "jars")
    with FlinkCluster(home, workdir / "cluster", taskmanagers=2, slots=2, conf=FAST_LOOP_CONF,
                      plugin_jar=plugin) as cluster:
        # By `flink run`: the client's own log is one of the healthy logs kept.
        job_id = cluster.submit(job_jar, JOB_ARGS, via="cli")
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(minutes * 60)
        done = cluster.rest(f"/jobs/{job_id}/checkpoints")["counts"]
        print(f"Flink {version}: {done['completed']} checkpoints completed, {done['failed']} failed", flush=True)
        # Cancelled before the cluster stops: TaskManagers that leave under a running job fail it.
        cluster.call("PATCH", f"/jobs/{job_id}?mode=cancel")
        cluster.wait_for_job_state(job_id, "CANCELED", timeout=60)
        log_dir = cluster.log_dir
    kept = []
    for log in sorted(log_dir.glob("*.log")):
        process = process_of(log)
        if process:
            target = FIXTURES / f"clean-{process}.{version}.log"
            shutil.copy(log, target)
            kept.append(target)
    shutil.rmtree(workdir, ignore_errors=True)
    return kept


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", default=DEFAULT_VERSIONS)
    ap.add_argument("--minutes", type=float, default=4)
    ap.add_argument("--jar", type=Path, help="the plugin jar (default: build/libs/flink-autotune-*.jar)")
    args = ap.parse_args()
    plugin = args.jar or next((REPO / "build" / "libs").glob("flink-autotune-*.jar"))
    for version in filter(None, args.versions.split(",")):
        for path in run(version, args.minutes, plugin):
            print(f"  kept {path.relative_to(REPO)} ({path.stat().st_size // 1024} KiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
