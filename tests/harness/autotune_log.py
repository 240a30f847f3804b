"""Reads what the plugin writes into Flink's logs: the `AUTOTUNE ...` lines."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.flink import REST_TRANSIENT

if TYPE_CHECKING:
    from harness.flink import FlinkCluster

_VERTEX = re.compile(
    r'vertex "(?P<name>.*?)" \((?P<id>[0-9a-f]+)\) subtasks=\[(?P<subtasks>[0-9,\-]*)\]'
    r'(?: busy=(?P<busy>[0-9.]+)ms/s)?(?: pending=(?P<pending>[0-9.]+))?'
)
_JOB = re.compile(r'job "(?P<name>.*?)" \((?P<id>[0-9a-f]+)\):(?P<vertices>.*)')


@dataclass
class Vertex:
    name: str
    id: str
    subtasks: set[int]
    busy: float | None
    pending: float | None


@dataclass
class Status:
    """One `AUTOTUNE STATUS` line."""

    fields: dict[str, str]
    jobs: dict[str, dict[str, Vertex]] = field(default_factory=dict)  # job id -> vertex id -> vertex


def autotune_lines(log_text: str, kind: str | None = None) -> list[str]:
    """The `AUTOTUNE ...` part of every plugin line, optionally only one kind (START, STATUS, ...)."""
    out = []
    for line in log_text.splitlines():
        i = line.find("AUTOTUNE ")
        if i < 0:
            continue
        text = line[i:]
        if kind is None or text.startswith(f"AUTOTUNE {kind}"):
            out.append(text)
    return out


def expand_ranges(text: str) -> set[int]:
    """`0-2,5` -> {0, 1, 2, 5}"""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def parse_status(line: str) -> Status:
    head, *jobs = line.split(" | ")
    fields = dict(kv.split("=", 1) for kv in head.split() if "=" in kv)
    status = Status(fields=fields)
    for job_text in jobs:
        m = _JOB.match(job_text)
        if not m:
            raise ValueError(f"unreadable job in STATUS line: {job_text!r}")
        vertices = {}
        for v in _VERTEX.finditer(m.group("vertices")):
            vertices[v.group("id")] = Vertex(
                name=v.group("name"),
                id=v.group("id"),
                subtasks=expand_ranges(v.group("subtasks")),
                busy=float(v.group("busy")) if v.group("busy") else None,
                pending=float(v.group("pending")) if v.group("pending") else None,
            )
        status.jobs[m.group("id")] = vertices
    return status


def start_fields(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


# Signs that the plugin threw, panicked or broke a JNI rule somewhere in a Flink process
# (the sample job's own exceptions, thrown on purpose, are not the plugin's).
PLUGIN_TROUBLE = re.compile(
    r"AUTOTUNE DISABLED|AUTOTUNE native call failed|native panic|at dev\.flinkautotune\.(?!examples\.)"
    r"|WARNING in native method|FATAL ERROR in native method|UnsatisfiedLinkError"
)


def plugin_trouble(cluster: FlinkCluster) -> list[str]:
    """Lines where the plugin failed: its own failure lines, and the plugin's frames in a stack
    trace. Two traces are no failure of the plugin's: a thread dump (Flink logs one of every
    thread when a process dies of an OutOfMemoryError, and the metric reporter's thread may be in
    the plugin's code then), and a heap that ran out while the reporter's thread allocated
    (CI: a Flink gauge boxing its value for the plugin, the heap full of the job's state)."""
    found = []
    for name, text in cluster.logs().items():
        not_ours = False
        for line in text.splitlines():
            if (line.startswith('"') and " Id=" in line) or line.startswith("java.lang.OutOfMemoryError"):
                not_ours = True  # `"thread name" ... Id=36 RUNNABLE`: one thread of a dump
            elif not line.startswith("\t"):
                not_ours = False
            if not_ours and line.startswith("\tat "):
                continue
            if PLUGIN_TROUBLE.search(line):
                found.append(f"{name}: {line}")
    return found


def wait_for(condition, timeout: float, what: str, cluster: FlinkCluster, interval: float = 1.0):
    """Polls `condition` until it gives something truthy, which it returns. A REST call that
    fails or a file read half-written while the condition looks is "not yet": a JobManager
    that is busy, restarting or rescaling answers again a moment later."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except REST_TRANSIENT as e:
            result, last_error = None, e
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         f"{f' (last error: {last_error!r})' if last_error else ''}\n{cluster.log_tail()}")


def no_temporary_files(folder: Path, cluster: FlinkCluster) -> None:
    """No `.tmp` file stays: the plugin writes files beside and renames them over, so one may
    be there for a moment, but not for seconds."""
    def lingering() -> list[Path]:
        return [p for p in folder.rglob("*.tmp") if p.exists()]
    if lingering():
        wait_for(lambda: not lingering(), timeout=10, what=f"temporary files to go: {lingering()}", cluster=cluster,
                 interval=0.5)


# The reporter with the shortest loop the options allow that still holds a steady state of
# the sample job: a first decision about 30 s after the job runs.
FAST_LOOP_CONF = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "2 s",
    "metrics.reporter.autotune.summary-interval": "4 s",
    "metrics.reporter.autotune.stabilization": "10 s",
    "metrics.reporter.autotune.decision-window": "15 s",
    "metrics.reporter.autotune.decision-interval": "5 s",
    "metrics.reporter.autotune.poll-interval": "2 s",
}


# The shortest loop the options allow, for tests about the plugin's files, threads and memory
# rather than its figures: a first decision about 10 s after the job runs, one every ~7 s.
SHORTEST_LOOP_CONF = {
    **FAST_LOOP_CONF,
    "metrics.reporter.autotune.summary-interval": "2 s",
    "metrics.reporter.autotune.stabilization": "2 s",
    "metrics.reporter.autotune.decision-window": "5 s",
    "metrics.reporter.autotune.decision-interval": "2 s",
    "metrics.reporter.autotune.poll-interval": "1 s",
}


def whole_lines(path: Path) -> list[str]:
    """The lines of a file the plugin appends to, but a last one it may be writing."""
    return path.read_text().split("\n")[:-1]


def decided_windows(cluster: FlinkCluster, job_id: str, output_dir: Path | None = None) -> list[dict]:
    """Every window the coordinator decided on (`{"window": ...}` lines of the job's
    decisions.jsonl under the output folder, the cluster's log folder's by default), each
    with its `at_ms`."""
    path = (output_dir or cluster.log_dir / "autotune") / job_id / "decisions.jsonl"
    lines = whole_lines(path) if path.is_file() else []
    return [dict(h["window"], at_ms=h["at_ms"]) for h in map(json.loads, lines) if "window" in h]


def recommended(window: dict, vertex_prefix: str) -> int:
    """The parallelism a decided window recommends for the vertex named `vertex_prefix...`."""
    return next(v["recommended"] for v in window["vertices"] if v["name"].startswith(vertex_prefix))


def recommended_config(cluster: "FlinkCluster", job_id: str) -> dict[str, str]:
    """The keys of the job's `recommended-config.yaml` ({} before it is written)."""
    path = cluster.log_dir / "autotune" / job_id / "recommended-config.yaml"
    if not path.is_file():
        return {}
    pairs = (l.partition(": ") for l in path.read_text().splitlines() if l and not l.startswith("#"))
    return {k: v for k, _, v in pairs}
