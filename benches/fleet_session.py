"""A session cluster with many jobs on the plugin's production loop settings: one JobManager
and two TaskManagers, N light jobs submitted one after another, then a wait. Prints, per job,
when it was submitted, when its first decision came, how many windows were decided by the
mark and when its 4th came (the cluster runs 30 s past the mark); and the REST requests the
coordinator made (through a counting proxy on loopback) per poll, by kind. Stops by itself;
never fails on numbers.

    python3 benches/fleet_session.py [--jobs 8] [--minutes 8] [--version 2.2.1] [--jar build/libs/...jar]

Issue 22's figures before the loop read every job at once (2.2.1, 8 jobs, defaults): eight
minutes after the last submission, 6 jobs had 1 decided window and 2 had none.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.autotune_log import autotune_lines, decided_windows  # noqa: E402
from harness.faulty_rest import FaultyRest  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402

# The plugin's defaults: only the reporter and the proxy it reads the REST API through.
PLUGIN = {"metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory"}
POLL_S = 5  # the default poll-interval
LATER_S = 30  # kept running past the mark: enough for a window that closes just after it
JOB = ["--rate", "50", "--cost-us", "100", "--work-parallelism", "1", "--partitions", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=8, help="wait after the last submission")
    parser.add_argument("--version", default="2.2.1")
    parser.add_argument("--jar", type=Path, default=None)
    args = parser.parse_args()
    jar = args.jar or next((REPO / "build" / "libs").glob("flink-autotune-*.jar"))
    flink_home = ensure_flink(args.version)
    with tempfile.TemporaryDirectory() as tmp, FaultyRest() as proxy:
        job_jar = build_example_job(flink_home, Path(tmp))
        slots = (args.jobs + 1) // 2
        conf = dict(PLUGIN, **{"metrics.reporter.autotune.rest-url": proxy.url})
        with FlinkCluster(flink_home, Path(tmp) / "cluster", taskmanagers=2, slots=slots, conf=conf,
                          plugin_jar=jar) as cluster:
            proxy.upstream = cluster.rest_url
            submitted: dict[str, float] = {}
            for n in range(args.jobs):
                job_id = cluster.submit(job_jar, JOB + ["--job-name", f"fleet-{n}"])
                submitted[job_id] = time.time()
                cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
            last = max(submitted.values())
            deadline = last + args.minutes * 60
            # Requests once every job runs, over the last minutes (windows open and closing).
            time.sleep(min(120.0, args.minutes * 30))
            counted_from, requests_before, kinds_before = time.time(), proxy.requests, proxy.by_kind.copy()
            while time.time() < deadline:
                time.sleep(min(15, max(0.0, deadline - time.time())))
            polls = (time.time() - counted_from) / POLL_S
            per_poll = (proxy.requests - requests_before) / polls
            kinds = proxy.by_kind - kinds_before
            # A little past the mark, to see when each job's 4th decision came.
            time.sleep(LATER_S)
            windows = {j: decided_windows(cluster, j) for j in submitted}
            plans = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT200")]
    print(f"Flink {args.version}, {args.jobs} jobs ({' '.join(JOB)}), plugin defaults, "
          f"{args.minutes:g} min after the last submission")
    print(f"{'job':<10}{'submitted':>11}{'first decision after':>22}{'windows decided':>17}{'s between':>12}"
          f"{'4th decision after':>20}")
    firsts, counts, fourths = [], [], []
    for n, (job_id, at) in enumerate(submitted.items()):
        decided = [w["at_ms"] / 1000 for w in windows[job_id]]
        first = decided[0] - at if decided else None
        fourth = decided[3] - at if len(decided) > 3 else None
        gaps = [b - a for a, b in zip(decided, decided[1:])]
        firsts.append(first)
        fourths.append(fourth)
        counts.append(len([d for d in decided if d <= deadline]))
        print(f"fleet-{n:<4}{at - min(submitted.values()):>10.0f}s"
              f"{(f'{first:.0f} s' if first is not None else 'none'):>22}{counts[-1]:>17}"
              f"{(f'{statistics.median(gaps):.0f}' if gaps else '-'):>12}"
              f"{(f'{fourth:.0f} s' if fourth is not None else 'none'):>20}")
    known = [f for f in firsts if f is not None]
    print(f"every job decided: {all(c > 0 for c in counts)}; fewest windows {min(counts)}; "
          f"latest first decision {max(known):.0f} s after submission" if known else "no decision")
    if all(f is not None for f in fourths):
        print(f"every job's 4th decision within {max(fourths):.0f} s of its submission")
    print(f"REST requests per poll (every {POLL_S} s): {per_poll:.1f}, {per_poll / args.jobs:.1f} per job")
    for kind, n in kinds.most_common():
        print(f"  {n / polls:8.2f}/poll {kind}")
    print(f"memory plans: {len(plans)} line(s), {'all for the cluster' if all('cluster jobs=' in p for p in plans) else 'per job'}")


if __name__ == "__main__":
    main()
