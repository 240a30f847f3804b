"""Churn soak (issue 13, item 5): a real cluster with the plugin runs job after job, each with
other vertices (a new Work name, another parallelism), submitted and cancelled over the REST
API, while every process's native heap (`native-heap` in STATUS), RSS and thread count and
the output folder are sampled. Prints first vs last and the slope per hour of each; never
fails on numbers. Stops by itself after --jobs submissions or --minutes, whichever is first.

    python3 scripts/churn_soak.py [--jobs 500] [--minutes 15] [--version 2.3.0] [--live 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from harness.autotune_log import FAST_LOOP_CONF, autotune_lines, plugin_trouble  # noqa: E402
from harness.churn import churn, slope_per_hour  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--version", default="2.3.0")
    ap.add_argument("--live", type=int, default=3, help="jobs running at once")
    ap.add_argument("--jar", type=Path, help="the plugin jar (default: build/libs/flink-autotune-*.jar)")
    args = ap.parse_args()
    plugin = args.jar or next((REPO / "build" / "libs").glob("flink-autotune-*.jar"))
    workdir = Path(tempfile.mkdtemp(prefix="flink-autotune-churn-"))
    home = ensure_flink(args.version)
    job_jar = build_example_job(home, workdir / "jars")
    conf = dict(FAST_LOOP_CONF, **{"metrics.reporter.autotune.summary-interval": "10 s"})
    # A job takes up to 3 slots (Work at parallelism 1-3); one more live job is cancelled only
    # after the next one is submitted.
    with FlinkCluster(home, workdir / "cluster", taskmanagers=1, slots=3 * (args.live + 1), conf=conf,
                      plugin_jar=plugin) as cluster:
        run = churn(cluster, job_jar, cluster.log_dir / "autotune", args.jobs, args.minutes, args.live,
                    log=lambda line: print(line, flush=True))
        trouble = plugin_trouble(cluster)
        coordinator_lines = len(autotune_lines(cluster.jobmanager_log(), "COORDINATOR"))

    print(f"\n{run.submitted} jobs submitted and {run.cancelled} cancelled in {run.seconds / 60:.1f} min "
          f"({run.failed} refused by the REST API; ended by themselves: {dict(run.ended) or 0}), "
          f"{args.live} at a time, Flink {args.version}; plugin trouble lines: {len(trouble)}; "
          f"COORDINATOR lines: {coordinator_lines}")
    # The first sample is taken before the plugin compiled its diagnosis catalogue: the slope
    # is of the samples after it.
    print(f"{'process':24} {'figure':16} {'first':>10} {'second':>10} {'last':>10} {'slope/h':>10}")
    for (proc, key), points in sorted(run.series.items()):
        second = points[min(1, len(points) - 1)][1]
        print(f"{proc:24} {key:16} {points[0][1]:10.1f} {second:10.1f} {points[-1][1]:10.1f} "
              f"{slope_per_hour(points[1:]):10.1f}")
    print(f"(cluster files in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
