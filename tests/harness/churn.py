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
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from harness.autotune_log import autotune_lines, parse_status
from harness.flink import FlinkCluster


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
    files = [p for p in output_dir.rglob("*") if p.is_file()] if output_dir.is_dir() else []
    folders = [p for p in output_dir.iterdir() if p.is_dir()] if output_dir.is_dir() else []
    out["output folder"] = {"mib": sum(p.stat().st_size for p in files) / 2**20, "files": len(files),
                            "job_folders": len(folders)}
    return out


@dataclass
class Churn:
    submitted: int = 0
    cancelled: int = 0
    failed: int = 0
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
    jar_id = upload(cluster, job_jar)
    result = Churn()
    began = time.monotonic()
    deadline = began + minutes * 60
    pace = minutes * 60 / jobs
    running: list[str] = []
    next_sample = began
    while result.submitted < jobs and time.monotonic() < deadline:
        step = time.monotonic()
        try:
            running.append(submit(cluster, jar_id, result.submitted))
            result.submitted += 1
            if len(running) > live:
                call(cluster, "PATCH", f"/jobs/{running.pop(0)}?mode=cancel")
                result.cancelled += 1
        except OSError as e:
            result.failed += 1
            log(f"  submission {result.submitted}: {e}")
        if time.monotonic() >= next_sample:
            result.record(time.monotonic() - began, sample(cluster, output_dir))
            log(f"t={time.monotonic() - began:5.0f}s submitted={result.submitted} cancelled={result.cancelled}")
            next_sample += sample_every_s
        time.sleep(max(0.0, pace - (time.monotonic() - step)))
    for job in running:
        try:
            call(cluster, "PATCH", f"/jobs/{job}?mode=cancel")
            result.cancelled += 1
        except OSError as e:  # 409: it ended already
            log(f"  cancel {job}: {e}")
    time.sleep(settle_s)
    result.seconds = time.monotonic() - began
    result.record(result.seconds, sample(cluster, output_dir))
    return result


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600 if var else float("nan")
