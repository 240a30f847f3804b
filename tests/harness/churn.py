"""Job churn on a real cluster (issue 13, item 5): jobs submitted and cancelled over the REST API
(`/jars/upload`, `/jars/<id>/run`, `PATCH /jobs/<id>?mode=cancel`), each with other vertices
(a new Work name, another parallelism), a few live at a time, while every process's figures
are sampled: the plugin's native heap (`native-heap` of its newest STATUS line), its own
threads, the process's RSS and threads, and the output folder.

Used by `tests/test_churn_e2e.py` (a short run in the test command) and
`scripts/churn_soak.py` (the long one, which prints the figures)."""

from __future__ import annotations

import json
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.autotune_log import autotune_lines, parse_status
from harness.flink import FlinkCluster


def submit(cluster: FlinkCluster, jar_id: str, i: int) -> str:
    args = ["--rate", "200", "--cost-us", "500", "--cost-kind", "wait", "--work-parallelism", str(1 + i % 3), "--partitions", "3",
            "--job-name", f"churn-{i}", "--work-name", f"Work-{i % 50}"]
    return cluster.call("POST", f"/jars/{jar_id}/run", json.dumps({"programArgsList": args}).encode())["jobid"]


def _proc(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    # The plugin's own threads: the coordinator, the webhook's post, the sampler.
    own = sum("autotune" in p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/comm"))
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "plugin_threads": own}


def sample(cluster: FlinkCluster, output_dir: Path) -> dict[str, dict[str, float]]:
    """Per process (`standalonesession-0`, `taskexecutor-0`, ...): RSS, threads, the plugin's
    threads and native heap; and the output folder's size, files and job folders."""
    out: dict[str, dict[str, float]] = {}
    logs = list(cluster.log_dir.glob("*.log"))
    for name, pid in cluster.pids().items():
        try:
            figures = _proc(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        kind, n = name.rsplit("-", 1)
        log = next((p for p in logs if kind in p.name and f"-{n}-" in p.name), None)
        statuses = autotune_lines(log.read_text(errors="replace"), "STATUS") if log else []
        figures["native_heap_kib"] = (float(parse_status(statuses[-1]).fields["native-heap"].rstrip("KiB"))
                                      if statuses else float("nan"))
        out[name] = figures
    sizes = []
    folders = 0
    try:
        for p in output_dir.rglob("*"):
            try:
                if p.is_dir() and p.parent == output_dir:
                    folders += 1
                elif p.is_file() and not p.name.endswith(".tmp"):
                    sizes.append(p.stat().st_size)
            except FileNotFoundError:  # replaced or pruned since the listing
                pass
    except FileNotFoundError:  # a folder pruned while it was listed
        pass
    out["output folder"] = {"mib": sum(sizes) / 2**20, "files": len(sizes), "job_folders": folders}
    return out


@dataclass
class Churn:
    submitted: int = 0
    cancelled: int = 0
    # Submissions or cancellations the REST API refused.
    failed: int = 0
    # Jobs that had ended by themselves when they were to be cancelled, by how they ended.
    ended: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    # (process or "output folder", figure) -> [(seconds since the start, value)]
    series: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)

    def record(self, at_s: float, figures: dict[str, dict[str, float]]) -> None:
        for proc, values in figures.items():
            for key, value in values.items():
                self.series.setdefault((proc, key), []).append((at_s, value))


def churn(cluster: FlinkCluster, job_jar: Path, output_dir: Path, jobs: int, minutes: float, live: int,
          sample_every_s: float = 30, settle_s: float = 15, log=print) -> Churn:
    """Submits up to `jobs` jobs at an even pace over `minutes`, cancelling the oldest beyond
    `live`; then cancels the rest and lets the coordinator's next rounds forget them for
    `settle_s` before the last sample."""
    jar_id = cluster.upload_jar(job_jar)
    result = Churn()
    began = time.monotonic()
    pace = minutes * 60 / jobs
    # Paced over `minutes`; a loaded machine's slower submissions get as long again.
    deadline = began + 2 * minutes * 60
    running: list[str] = []
    next_sample = began
    while result.submitted < jobs and time.monotonic() < deadline:
        step = time.monotonic()
        try:
            running.append(submit(cluster, jar_id, result.submitted))
            result.submitted += 1
        except OSError as e:
            result.failed += 1
            log(f"  submission {result.submitted}: {e}")
        if len(running) > live:
            cancel(cluster, running.pop(0), result, log)
        if time.monotonic() >= next_sample:
            result.record(time.monotonic() - began, sample(cluster, output_dir))
            log(f"t={time.monotonic() - began:5.0f}s submitted={result.submitted} cancelled={result.cancelled}")
            next_sample += sample_every_s
        time.sleep(max(0.0, pace - (time.monotonic() - step)))
    for job in running:
        cancel(cluster, job, result, log)
    time.sleep(settle_s)
    result.seconds = time.monotonic() - began
    result.record(result.seconds, sample(cluster, output_dir))
    return result


def cancel(cluster: FlinkCluster, job_id: str, result: Churn, log) -> None:
    try:
        cluster.call("PATCH", f"/jobs/{job_id}?mode=cancel")
        result.cancelled += 1
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
        # 409: the job ended by itself (Flink failed it, say); it is counted, with why.
        result.ended[_end_of(cluster, job_id)] += 1
    except OSError as e:
        result.failed += 1
        log(f"  cancel {job_id}: {e}")


def _end_of(cluster: FlinkCluster, job_id: str) -> str:
    """A job's end in a few words: its state and the root exception's first line."""
    try:
        state = cluster.rest(f"/jobs/{job_id}")["state"]
        root = cluster.rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
        cause = root[0].get("exceptionName", "") if root else ""
        return f"{state} {cause}".strip()
    except (OSError, ValueError, KeyError):
        return "ended"


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600 if var else float("nan")
