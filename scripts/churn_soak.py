"""Churn soak (issue 13, item 5): a real cluster with the plugin runs job after job, each with
other vertices (a new Work name, another parallelism), submitted and cancelled over the REST
API, while every process's native heap (`native-heap` in STATUS), RSS and thread count and
the output folder are sampled. Prints first vs last and the slope per hour of each; never
fails on numbers. Stops by itself after --jobs submissions or --minutes, whichever is first.

    python3 scripts/churn_soak.py [--jobs 500] [--minutes 15] [--version 2.3.0] [--live 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benches")]

from harness.autotune_log import FAST_LOOP_CONF, autotune_lines, parse_status, plugin_trouble  # noqa: E402
from harness.flink import FlinkCluster, build_example_job, ensure_flink  # noqa: E402
from taskmanager_cost import proc_stats  # noqa: E402


def call(cluster: FlinkCluster, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/json") -> dict:
    request = urllib.request.Request(cluster.rest_url + path, data=body, method=method,
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else {}


def upload(cluster: FlinkCluster, jar: Path) -> str:
    """The jar uploaded once (multipart, as Flink's web UI does); its id for /jars/<id>/run."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{jar.name}\"\r\n"
            "Content-Type: application/x-java-archive\r\n\r\n").encode() + jar.read_bytes() \
        + f"\r\n--{boundary}--\r\n".encode()
    answer = call(cluster, "POST", "/jars/upload", body, f"multipart/form-data; boundary={boundary}")
    return Path(answer["filename"]).name


def submit(cluster: FlinkCluster, jar_id: str, i: int) -> str:
    args = ["--rate", "200", "--cost-us", "500", "--work-parallelism", str(1 + i % 3), "--partitions", "3",
            "--job-name", f"churn-{i}", "--work-name", f"Work-{i % 50}"]
    return call(cluster, "POST", f"/jars/{jar_id}/run", json.dumps({"programArgsList": args}).encode())["jobid"]


def sample(cluster: FlinkCluster) -> dict[str, dict[str, float]]:
    """Per process: RSS, threads, and the native heap of its newest STATUS line."""
    out: dict[str, dict[str, float]] = {}
    logs = {p.name: p for p in cluster.log_dir.glob("*.log")}
    for name, pid in cluster.pids().items():
        try:
            stats = proc_stats(pid)
        except FileNotFoundError:
            continue
        log = next((p for n, p in logs.items() if name.split("-")[0] in n and f"-{name.split('-')[1]}-" in n), None)
        statuses = autotune_lines(log.read_text(errors="replace"), "STATUS") if log else []
        heap = float(parse_status(statuses[-1]).fields["native-heap"].rstrip("KiB")) if statuses else float("nan")
        out[name] = {"rss_mib": stats["rss_mib"], "threads": stats["threads"], "native_heap_kib": heap}
    files = [p for p in (cluster.log_dir / "autotune").rglob("*") if p.is_file()]
    out["output folder"] = {"mib": sum(p.stat().st_size for p in files) / 2**20, "files": len(files)}
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600 if var else float("nan")


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
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with FlinkCluster(home, workdir / "cluster", taskmanagers=1, slots=2 * args.live, conf=conf,
                      plugin_jar=plugin) as cluster:
        jar_id = upload(cluster, job_jar)
        began = time.monotonic()
        deadline = began + args.minutes * 60
        pace = args.minutes * 60 / args.jobs
        live: list[str] = []
        submitted = cancelled = failed = 0
        next_sample = began
        while submitted < args.jobs and time.monotonic() < deadline:
            step = time.monotonic()
            try:
                live.append(submit(cluster, jar_id, submitted))
                submitted += 1
                if len(live) > args.live:
                    call(cluster, "PATCH", f"/jobs/{live.pop(0)}?mode=cancel")
                    cancelled += 1
            except OSError as e:
                failed += 1
                print(f"  submission {submitted}: {e}", flush=True)
            if time.monotonic() >= next_sample:
                now = time.monotonic() - began
                for proc, figures in sample(cluster).items():
                    for key, value in figures.items():
                        series.setdefault((proc, key), []).append((now, value))
                print(f"t={now:5.0f}s submitted={submitted} cancelled={cancelled}", flush=True)
                next_sample += 30
            time.sleep(max(0.0, pace - (time.monotonic() - step)))
        for job in live:
            try:
                call(cluster, "PATCH", f"/jobs/{job}?mode=cancel")
            except OSError as e:  # 409: it ended already
                print(f"  cancel {job}: {e}", flush=True)
        time.sleep(15)  # the coordinator's next rounds forget the jobs
        now = time.monotonic() - began
        for proc, figures in sample(cluster).items():
            for key, value in figures.items():
                series.setdefault((proc, key), []).append((now, value))
        trouble = plugin_trouble(cluster)
        coordinator_lines = len(autotune_lines(cluster.jobmanager_log(), "COORDINATOR"))

    print(f"\n{submitted} jobs submitted and cancelled in {now / 60:.1f} min ({failed} submissions failed), "
          f"{args.live} at a time, Flink {args.version}; plugin trouble lines: {len(trouble)}; "
          f"COORDINATOR lines: {coordinator_lines}")
    print(f"{'process':24} {'figure':16} {'first':>10} {'last':>10} {'slope/h':>10}")
    for (proc, key), points in sorted(series.items()):
        print(f"{proc:24} {key:16} {points[0][1]:10.1f} {points[-1][1]:10.1f} {slope_per_hour(points):10.1f}")
    print(f"(cluster files in {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
