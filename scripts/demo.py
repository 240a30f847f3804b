"""The demo: a local standalone cluster with the plugin and the sample job with a known
bottleneck. It shows the plugin's AUTOTUNE lines as they appear in the Flink logs and ends
with the plugin's answer: the bottleneck, the parallelism it needs, the flame graph of the
bottleneck and the code that burns its time, the TaskManager memory plan, the recommended
config file, and the job's page (report.html) with the command that opens it. With --apply,
the plugin rescales the job in place and the demo shows the source's backlog draining.
Stops by itself."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.autotune_log import autotune_lines  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402

# The plugin's defaults wait a minute for a job to settle and watch it a minute per decision,
# as production needs; the demo decides sooner and says so.
DEMO_LOOP = {
    "stabilization": "20 s",
    "decision-window": "30 s",
    "decision-interval": "15 s",
    "poll-interval": "3 s",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flink", default="2.3.0", help="Flink release to run (installed from PyPI on first use)")
    parser.add_argument("--timeout", "--duration", type=int, default=300, dest="timeout",
                        help="seconds to wait for the plugin's answer at most")
    parser.add_argument("--apply", action="store_true",
                        help="rescale in place through the adaptive scheduler (Flink 1.18+) and show the backlog drain")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running at the end")
    parser.add_argument("--rate", default="1000", help="records per second arriving at the source")
    parser.add_argument("--cost-us", default="1500", help="CPU cost per record of the Work operator")
    args = parser.parse_args()

    version = (REPO / "Cargo.toml").read_text().split('version = "')[1].split('"')[0]
    jar = REPO / "build" / "libs" / f"flink-autotune-{version}.jar"
    workdir = REPO / ".work" / f"demo-{args.flink}"
    print(f"Flink {args.flink}: installing (first run only) and starting 1 JobManager + 2 TaskManagers in {workdir}")
    home = ensure_flink(args.flink)
    job_jar = build_example_job(home, REPO / ".work" / "jobs")
    prefix = "metrics.reporter.autotune."
    conf = {
        prefix + "factory.class": "dev.flinkautotune.AutotuneReporterFactory",
        prefix + "interval": "5 s",
        prefix + "summary-interval": "30 s",
        **{prefix + k: v for k, v in DEMO_LOOP.items()},
    }
    if args.apply:
        conf[prefix + "mode"] = "apply"
        conf["jobmanager.scheduler"] = "adaptive"
    cluster = FlinkCluster(home, workdir, taskmanagers=2, slots=2, conf=conf, plugin_jar=jar)
    started = time.monotonic()
    cluster.start()
    try:
        print(f"Flink web UI and REST API: {cluster.rest_url}")
        print("Demo settings, shorter than the plugin's production defaults (1 min each): "
              + ", ".join(f"{k}={v}" for k, v in DEMO_LOOP.items()))
        job_args = ["--rate", args.rate, "--cost-us", args.cost_us, "--work-parallelism", "1",
                    "--partitions", "4", "--job-name", "autotune-demo"]
        need = float(args.rate) * float(args.cost_us) / 1e6
        print(f"Submitting the sample job: {args.rate} records/s arrive, Work costs {args.cost_us} us a record "
              f"(needs {need:.1f} cores), Work parallelism 1")
        job_id = cluster.submit(job_jar, job_args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        print(f"Job {job_id} is running. AUTOTUNE lines from the Flink logs, until the plugin has answered:\n")
        follower = LogFollower(cluster)
        wanted = ["AT110", "AT100", "AT111", "AT200"] + (["AT103"] if args.apply else [])
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not follower.has_all(wanted, job_id):
            follower.show_new()
            time.sleep(2)
        follower.show_new()
        if not follower.has_all(wanted, job_id):
            print(f"\nNo complete answer within {args.timeout} s (missing: "
                  f"{', '.join(c for c in wanted if not follower.has(c, job_id))}); see {cluster.log_dir}")
            return 1
        if args.apply:
            show_backlog(cluster, job_id, seconds=60)
        page = wait_for_report(cluster, job_id, seconds=60)
        elapsed = time.monotonic() - started
    finally:
        if args.keep:
            bin_dir = cluster.home / "bin"
            print(f"\nCluster left running; stop it with:\n  export FLINK_CONF_DIR={cluster.conf_dir}; "
                  f"{bin_dir}/taskmanager.sh stop-all; {bin_dir}/jobmanager.sh stop-all")
        else:
            cluster.stop()
            print("\nCluster stopped; its logs and the plugin's files stay.")
    answer(cluster, job_id, follower, elapsed, page)
    return 0


def wait_for_report(cluster: FlinkCluster, job_id: str, seconds: int) -> Path | None:
    """The job's page, once it shows the flame graph (rewritten with each decision)."""
    page = cluster.log_dir / "autotune" / job_id / "report.html"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if page.is_file() and "data:image/svg+xml" in page.read_text():
            return page
        time.sleep(2)
    return page if page.is_file() else None


class LogFollower:
    """Prints each process's new AUTOTUNE lines (a process's STATUS lines only once)."""

    def __init__(self, cluster: FlinkCluster):
        self.cluster = cluster
        self.seen: dict[str, int] = {}
        self.status_shown: set[str] = set()
        self.jobmanager: list[str] = []

    def show_new(self) -> None:
        for name, text in sorted(self.cluster.logs().items()):
            if not name.endswith(".log") or "client" in name:
                continue
            lines = autotune_lines(text)
            index = re.search(r"taskexecutor-(\d+)", name)
            process = "jobmanager" if "standalonesession" in name else f"taskmanager-{index.group(1) if index else '?'}"
            if process == "jobmanager":
                self.jobmanager = lines
            for line in lines[self.seen.get(name, 0):]:
                if line.startswith("AUTOTUNE STATUS"):
                    if process in self.status_shown:
                        continue
                    self.status_shown.add(process)
                print(f"[{process}] {line}", flush=True)
            self.seen[name] = len(lines)

    def lines(self, code: str, job_id: str) -> list[str]:
        return [l for l in self.jobmanager if l.startswith(f"AUTOTUNE {code} ") and job_id in l]

    def has(self, code: str, job_id: str) -> bool:
        return bool(self.lines(code, job_id))

    def has_all(self, codes: list[str], job_id: str) -> bool:
        return all(self.has(c, job_id) for c in codes)


def source_backlog(cluster: FlinkCluster, job_id: str) -> float | None:
    source = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Source"))
    names = [m["id"] for m in cluster.rest(f"/jobs/{job_id}/vertices/{source['id']}/metrics")]
    pending = [n for n in names if n.endswith(".pendingRecords")]
    if not pending:
        return None
    values = cluster.rest(f"/jobs/{job_id}/vertices/{source['id']}/metrics?get={','.join(pending)}")
    return sum(float(v["value"]) for v in values)


def show_backlog(cluster: FlinkCluster, job_id: str, seconds: int) -> None:
    print(f"\nThe plugin rescaled the job in place. The source's backlog and Work's parallelism, for {seconds} s:")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        vertices = cluster.rest(f"/jobs/{job_id}")["vertices"]
        work = next(v for v in vertices if v["name"].startswith("Work"))
        backlog = source_backlog(cluster, job_id)
        shown = "n/a" if backlog is None else f"{backlog:,.0f} records"
        print(f"  Work parallelism {work['parallelism']}, source backlog {shown}", flush=True)
        time.sleep(10)


def answer(cluster: FlinkCluster, job_id: str, follower: LogFollower, elapsed: float, page: Path | None) -> None:
    rule = "=" * 100
    print(f"\n{rule}\nThe plugin's answer, {elapsed:.0f} s after the cluster started:\n")
    for code in ("AT110", "AT101", "AT100", "AT103", "AT200"):
        for line in follower.lines(code, job_id)[:1]:
            print(f"  {line}\n")
    for line in follower.lines("AT111", job_id)[-1:]:
        top = re.search(r"top-frames=\[([^\]]*)\]", line)
        svg = re.search(r" svg=(\S+)", line)
        print("Why the bottleneck is slow: the code that burns its time, from the TaskManagers' samples:")
        for frame in (top.group(1).split(", ") if top else []):
            print(f"  {frame}")
        if svg:
            print(f"Flame graph: {svg.group(1)}\n")
    config = cluster.log_dir / "autotune" / job_id / "recommended-config.yaml"
    if config.is_file():
        print(f"Recommended configuration ({config}):\n")
        for line in config.read_text().splitlines():
            print(f"  {line}")
    print(f"\nEvery line: grep AUTOTUNE {cluster.log_dir}/*.log")
    if page:
        print(f"The job's page: {page}\nOpen it with:  xdg-open {page}   (or: chromium {page})")
    print(rule)


if __name__ == "__main__":
    sys.exit(main())
