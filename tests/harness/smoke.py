"""Smoke check of the harness and the sample job on one Flink version.

    python -m tests.harness.smoke 1.20.3        (from the repo root)
    python tests/harness/smoke.py 2.3.0 --workdir /tmp/smoke

Starts a 2-TaskManager cluster, runs QueueJob with a Work bottleneck (rate 1000/s, 2 ms per
record, parallelism 1 => Work can do 500/s), and checks over REST that Work is ~100% busy and
the source's pendingRecords grows; then stops the cluster and checks nothing is left running.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.harness` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.flink import FlinkCluster, build_example_job, ensure_flink

RATE, COST_US = 1000, 2000


def vertex_id(job: dict, prefix: str) -> tuple[str, str]:
    for v in job["vertices"]:
        if v["name"].startswith(prefix):
            return v["id"], v["name"]
    raise AssertionError(f"no vertex starting with {prefix!r} in {[v['name'] for v in job['vertices']]}")


def source_pending(cluster: FlinkCluster, job_id: str, vid: str, timeout: float = 60) -> tuple[str, float]:
    """(metric id, summed value) of the vertex metric ending in pendingRecords.

    The JobManager fetches metrics lazily (a request triggers an async refresh at most every
    10 s), so the metric can be missing on the first calls: poll until it shows up.
    """
    deadline = time.monotonic() + timeout
    while True:
        ids = [m["id"] for m in cluster.rest(f"/jobs/{job_id}/vertices/{vid}/metrics")]
        names = [i for i in ids if i.endswith("pendingRecords")]
        if names:
            values = cluster.rest(f"/jobs/{job_id}/vertices/{vid}/metrics?get={','.join(names)}")
            # One metric per source subtask ("<subtask>.<operator>.pendingRecords"); sum them.
            return ",".join(names), sum(float(m["value"]) for m in values)
        if time.monotonic() > deadline:
            return "", float("nan")
        time.sleep(1)


def work_busy(cluster: FlinkCluster, job_id: str, vid: str) -> dict:
    agg = cluster.rest(f"/jobs/{job_id}/vertices/{vid}/subtasks/metrics?get=busyTimeMsPerSecond")
    return agg[0] if agg else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("version", help="Flink version, e.g. 1.20.3 or 2.3.0")
    ap.add_argument("--workdir", type=Path, help="default: a fresh temp dir, removed afterwards")
    ap.add_argument("--seconds", type=float, default=30, help="wait before the first pendingRecords sample")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flink-autotune-smoke-"))
    home = ensure_flink(args.version)
    jar = build_example_job(home, workdir / "jars")
    conf_format = "flink-conf" if args.version.startswith("1.") else "config"
    failures = []

    cluster = FlinkCluster(home, workdir / "cluster", taskmanagers=2, slots=2, conf_format=conf_format)
    with cluster:
        job_id = cluster.submit(jar, ["--rate", RATE, "--cost-us", COST_US, "--cost-kind", "wait", "--work-parallelism", 1,
                                      "--partitions", 2, "--job-name", f"smoke-{args.version}"])
        job = cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        src_vid, src_name = vertex_id(job, "Source")
        work_vid, work_name = vertex_id(job, "Work")
        print(f"job {job_id} RUNNING; vertices: {src_name!r}, {work_name!r}")

        # Network buffers first absorb ~15-20k of these small records (~30 s at +500/s), so
        # pendingRecords only starts growing after that; sample from --seconds on, every 12 s
        # (the REST metric cache refreshes at most every 10 s), until it clearly grows.
        running_at = time.monotonic()
        source_pending(cluster, job_id, src_vid)  # starts the lazy metric fetcher early
        time.sleep(args.seconds)
        name, prev = source_pending(cluster, job_id, src_vid)
        print(f"t={time.monotonic() - running_at:.0f}s  {name} = {prev}")
        grew = False
        for _ in range(6):
            time.sleep(12)
            name, now = source_pending(cluster, job_id, src_vid)
            print(f"t={time.monotonic() - running_at:.0f}s  {name} = {now}")
            # Backlog grows by RATE - 1e6/COST_US = 500 records/s; demand a clear fraction.
            if now - prev > 0.3 * 500 * 12:
                grew = True
                break
            prev = now
        busy = work_busy(cluster, job_id, work_vid)
        print(f"t={time.monotonic() - running_at:.0f}s  Work busyTimeMsPerSecond = {busy}")

        if not name:
            failures.append("source vertex has no *pendingRecords metric")
        elif not grew:
            failures.append(f"pendingRecords did not grow: last value {now}")
        if not float(busy.get("max", 0)) >= 900:
            failures.append(f"Work is not saturated: busyTimeMsPerSecond {busy}")
        job_state = cluster.rest(f"/jobs/{job_id}")["state"]
        if job_state != "RUNNING":
            failures.append(f"job is {job_state}")

    leftovers = {n: a for n, a in cluster.alive().items() if a}
    if leftovers:
        failures.append(f"processes still alive after stop: {leftovers}")
    else:
        print(f"cluster stopped; no process left ({sorted(cluster.alive())})")

    if args.workdir is None and not failures:
        shutil.rmtree(workdir, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print("OK" if not failures else f"FAILED (logs in {workdir})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
