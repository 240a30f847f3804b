"""The demo: a local standalone cluster with the plugin, the sample job with a known bottleneck,
and the plugin's AUTOTUNE lines as they appear in the Flink logs. Stops by itself."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.autotune_log import autotune_lines  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flink", default="2.3.0", help="Flink release to run (installed from PyPI on first use)")
    parser.add_argument("--duration", type=int, default=60, help="seconds to watch the job")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    parser.add_argument("--rate", default="1000", help="records per second arriving at the source")
    parser.add_argument("--cost-us", default="2000", help="CPU cost per record of the Work operator")
    args = parser.parse_args()

    version = (REPO / "Cargo.toml").read_text().split('version = "')[1].split('"')[0]
    jar = REPO / "build" / "libs" / f"flink-autotune-{version}.jar"
    workdir = REPO / ".work" / f"demo-{args.flink}"
    print(f"Flink {args.flink}: installing (first run only) and starting 1 JobManager + 2 TaskManagers in {workdir}")
    home = ensure_flink(args.flink)
    job_jar = build_example_job(home, REPO / ".work" / "jobs")
    conf = {
        "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
        "metrics.reporter.autotune.interval": "5 s",
        "metrics.reporter.autotune.summary-interval": "15 s",
    }
    cluster = FlinkCluster(home, workdir, taskmanagers=2, slots=2, conf=conf, plugin_jar=jar)
    cluster.start()
    try:
        print(f"Flink web UI and REST API: {cluster.rest_url}")
        job_args = ["--rate", args.rate, "--cost-us", args.cost_us, "--work-parallelism", "1",
                    "--partitions", "4", "--job-name", "autotune-demo"]
        need = float(args.rate) * float(args.cost_us) / 1e6
        print(f"Submitting the sample job: {args.rate} records/s arrive, Work costs {args.cost_us} us a record "
              f"(needs {need:.1f} cores), Work parallelism 1")
        job_id = cluster.submit(job_jar, job_args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        print(f"Job {job_id} is running; AUTOTUNE lines from the Flink logs for {args.duration} s:\n")
        seen: dict[str, int] = {}
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            for name, text in sorted(cluster.logs().items()):
                if not name.endswith(".log") or "client" in name:
                    continue
                lines = autotune_lines(text)
                for line in lines[seen.get(name, 0):]:
                    process = "jobmanager" if "standalonesession" in name else name.split("-vm")[0].split("--")[-1]
                    print(f"[{process}] {line}", flush=True)
                seen[name] = len(lines)
            time.sleep(2)
        print(f"\nFull logs: {cluster.log_dir}   (grep AUTOTUNE)")
    finally:
        if args.keep:
            bin_dir = cluster.home / "bin"
            print(f"Cluster left running; stop it with:\n  export FLINK_CONF_DIR={cluster.conf_dir}; "
                  f"{bin_dir}/taskmanager.sh stop-all; {bin_dir}/jobmanager.sh stop-all")
        else:
            cluster.stop()
            print("Cluster stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
