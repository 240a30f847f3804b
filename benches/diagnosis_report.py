#!/usr/bin/env python3
"""Precision and top-1 accuracy of the diagnosis, benchmark-style (prints figures, never fails).

Runs `flink-autotune diagnose --json` over
- every fixture `rust-core/model/tests/fixtures/diagnosis/<CODE>-*.log` (real message texts,
  written together with the catalogue's patterns: they measure coverage);
- every harvested fixture `.../diagnosis/harvested/*.log` (issue 14): texts read out of each
  release's sources, labelled in `harvested/index.toml` with release, source, the expected code,
  process and key, and a split: `train` (the patterns were written against them) and `held-out`
  (never looked at when writing patterns: they measure generalisation);
- every clean log there (`clean-*.log`: healthy real clusters; any finding is a false alarm);
- every real-failure run the end-to-end tests saved under `target/diagnosis-runs/<CODE>-*/`
  (all the logs of one real cluster, diagnosed together; held out by nature).

For the first and last kind the expected code is in the name, and the configuration key a
Flink expert would change first is in EXPECTED_KEY below, written by hand, apart from the
catalogue.

    python3 benches/diagnosis_report.py [--cli target/release/flink-autotune]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "rust-core/model/tests/fixtures/diagnosis"
HARVESTED = FIXTURES / "harvested"
RUNS = REPO / "target/diagnosis-runs"

# The key to change first, per code (None: the fix is not a Flink key: code, jars, the OS). A
# tuple where two keys are equally right (network min and max go together; a restore that
# exceeds the max parallelism is fixed by lowering the parallelism or, for a new state, the max).
EXPECTED_KEY = {
    "AT300": "taskmanager.memory.task.heap.size",
    "AT301": "taskmanager.memory.task.heap.size",
    "AT302": "taskmanager.memory.task.off-heap.size",
    "AT303": "taskmanager.memory.jvm-metaspace.size",
    "AT304": None,
    "AT305": ("taskmanager.memory.network.min", "taskmanager.memory.network.max"),
    "AT306": "taskmanager.memory.framework.off-heap.size",
    "AT307": "taskmanager.memory.managed.size",
    "AT308": "taskmanager.memory.process.size",
    "AT309": "taskmanager.memory.jvm-overhead.fraction",
    "AT310": "state.backend.rocksdb.files.open",
    "AT311": None,
    "AT314": "taskmanager.memory.managed.consumer-weights",
    "AT315": "taskmanager.memory.process.size",
    "AT316": "state.backend.rocksdb.localdir",
    "AT320": "execution.checkpointing.timeout",
    "AT321": "execution.checkpointing.tolerable-failed-checkpoints",
    "AT322": "execution.checkpointing.checkpoints-after-tasks-finish",
    "AT323": "execution.state-recovery.ignore-unclaimed-state",
    "AT324": ("parallelism.default", "pipeline.max-parallelism"),
    "AT325": None,
    "AT327": "execution.checkpointing.storage",
    "AT328": "execution.checkpointing.dir",
    "AT329": None,
    "AT330": "heartbeat.timeout",
    "AT331": "heartbeat.rpc-failure-threshold",
    "AT332": None,
    "AT333": "pekko.ask.timeout",
    "AT334": "pekko.framesize",
    "AT335": "taskmanager.numberOfTaskSlots",
    "AT336": "slot.request.timeout",
    "AT337": "task.cancellation.timeout",
    "AT338": "restart-strategy.type",
    "AT339": None,
    "AT340": None,
    "AT341": "classloader.check-leaked-classloader",
    "AT342": "classloader.resolve-order",
    "AT343": None,
    "AT344": None,
    "AT345": None,
    "AT350": "properties.transaction.timeout.ms",
    "AT351": "execution.checkpointing.max-concurrent-checkpoints",
    # A running job's offsets come from its checkpoint: scan.startup.mode does not apply.
    "AT352": "properties.auto.offset.reset",
    "AT353": "properties.delivery.timeout.ms",
    "AT354": None,
    "AT355": "table.exec.state.ttl",
    # A request the JobManager refused, or an answer too large for the client.
    "AT370": ("rest.server.max-content-length", "rest.client.max-content-length"),
    "AT371": "blob.fetch.num-concurrent",
    "AT390": None,
}
# Old spellings count as the same key (a finding on Flink 1.17 says akka.ask.timeout).
SAME_KEY = {
    "akka.ask.timeout": "pekko.ask.timeout",
    "akka.framesize": "pekko.framesize",
    "execution.checkpointing.checkpoints-after-tasks-finish.enabled": "execution.checkpointing.checkpoints-after-tasks-finish",
    "execution.savepoint.ignore-unclaimed-state": "execution.state-recovery.ignore-unclaimed-state",
    "restart-strategy": "restart-strategy.type",
    "state.checkpoint-storage": "execution.checkpointing.storage",
    "state.checkpoints.dir": "execution.checkpointing.dir",
}


# A JobManager's own failure (a fixture or real run named `jobmanager`): its key is the JobManager's.
JOBMANAGER_KEY = {
    "AT300": "jobmanager.memory.heap.size",
    "AT301": "jobmanager.memory.heap.size",
    "AT302": "jobmanager.memory.off-heap.size",
    "AT303": "jobmanager.memory.jvm-metaspace.size",
    "AT315": "jobmanager.memory.process.size",
}


def expected_for(name: str, code: str) -> tuple[tuple, str | None]:
    """(keys, process) of a fixture or real run, from its code and name."""
    if "jobmanager" in name and code in JOBMANAGER_KEY:
        return (JOBMANAGER_KEY[code],), "jobmanager"
    return expected_keys(code), None


@dataclass
class Case:
    name: str
    group: str
    code: str  # '' for a clean log, 'none' for a healthy excerpt among harvested texts
    files: list[Path]
    keys: tuple = ()  # any of them is right; () when the fix is not a key
    process: str | None = None  # checked when known
    found: list = field(default_factory=list)
    lines: int = 0
    release: str = ""
    family: str = ""

    @property
    def top(self) -> dict | None:
        return self.found[0] if self.found else None

    @property
    def top_key(self) -> str | None:
        top = self.top
        key = top["config"][0]["key"] if top and top["config"] else None
        return SAME_KEY.get(key, key)


def expected_keys(code: str) -> tuple:
    expected = EXPECTED_KEY.get(code)
    return expected if isinstance(expected, tuple) else (expected,) if expected else ()


def diagnose(cli: Path, files: list[Path]) -> dict:
    out = subprocess.run([str(cli), "diagnose", "--json", *map(str, files)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)


def cases() -> list[Case]:
    out = []
    for f in sorted(FIXTURES.glob("*.log")):
        if f.name.startswith("clean-"):
            out.append(Case(f.name, "clean logs", "", [f]))
        elif f.name.startswith("AT"):
            code = f.name.split("-")[0]
            out.append(Case(f.name, "fixtures (written with the patterns)", code, [f], *expected_for(f.name, code)))
    index = tomllib.loads((HARVESTED / "index.toml").read_text())
    for c in index["case"]:
        group = f"harvested, {c['split']}" + (f" (round {c['round']})" if c["split"] == "held-out" else "")
        # A label's old spelling is the same key as the finding's (both are read through SAME_KEY).
        keys = tuple(SAME_KEY.get(k, k) for k in c.get("key", ()))
        out.append(Case(c["file"], group, c["code"], [HARVESTED / c["file"]], keys, c["process"],
                        release=c.get("release", ""), family=c.get("family", "")))
    if RUNS.is_dir():
        for d in sorted(p for p in RUNS.iterdir() if p.is_dir()):
            logs = sorted(d.glob("*.log"))
            if logs:
                code = d.name.split("-")[0]
                out.append(Case(f"real:{d.name}", "real-failure runs (held out)", code, logs, *expected_for(d.name, code)))
    return out


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} = {part / max(whole, 1):.1%}"


def summarise(group: str, cases_of_group: list[Case]) -> None:
    healthy = [c for c in cases_of_group if c.code == "none"]
    subset = [c for c in cases_of_group if c.code != "none"]
    answered = [c for c in subset if c.top]
    right = [c for c in answered if c.top["code"] == c.code]
    keyed = [c for c in subset if c.keys]
    right_key = [c for c in keyed if c.top_key in c.keys]
    placed = [c for c in subset if c.process]
    right_process = [c for c in placed if c.top and c.top.get("process") == c.process]
    print(f"{group}: {len(subset)} cases")
    print(f"  recall (any finding)          {share(len(answered), len(subset))}")
    print(f"  precision (top finding right) {share(len(right), len(answered))}")
    print(f"  top-1 code accuracy           {share(len(right), len(subset))}")
    print(f"  top-1 key accuracy            {share(len(right_key), len(keyed))}  (cases whose fix is a key)")
    if placed:
        print(f"  process of the top finding    {share(len(right_process), len(placed))}")
    print(f"  silent misses (no finding)    {len(subset) - len(answered)}")
    if healthy:
        alarms = [f"{c.name}: {c.top['code']}" for c in healthy if c.top]
        print(f"  healthy excerpts              {len(healthy)}, false alarms {len(alarms)} {alarms or ''}")
    if any(c.family for c in subset):
        by_part(subset, "release", lambda c: release_line(c.release))
        by_part(subset, "family", lambda c: c.family)
        by_part(subset, "process", lambda c: c.process or "-")
    others = [f"{c.name}: {', '.join(sorted({f['code'] for f in c.found if f['code'] != c.code}))}"
              for c in subset if any(f["code"] != c.code for f in c.found)]
    print(f"  cases with other findings too   {len(others)}/{len(subset)}  (ranked below the expected one)")
    for o in others:
        print(f"    {o}")
    for c in subset:
        got_process = c.top.get("process") if c.top else None
        if (not c.top or c.top["code"] != c.code or (c.keys and c.top_key not in c.keys)
                or (c.process and got_process != c.process)):
            print(f"    miss: {c.name}: expected {c.code} / {c.process or '-'} / {' or '.join(c.keys) or '-'}, "
                  f"got {c.top['code'] if c.top else '-'} / {got_process or '-'} / {c.top_key or '-'}")


def release_line(release: str) -> str:
    """1.15.2 -> 1.15; 'unknown' stays."""
    return ".".join(release.split(".")[:2]) if release[:1].isdigit() else release or "unknown"


def by_part(subset: list[Case], what: str, part_of) -> None:
    """Top-1 code right, per release line, family or process."""
    parts: dict[str, list[Case]] = {}
    for c in subset:
        parts.setdefault(part_of(c), []).append(c)
    cells = [f"{p} {sum(1 for c in cs if c.top and c.top['code'] == c.code)}/{len(cs)}" for p, cs in sorted(parts.items())]
    print(f"  by {what:<8} (code right)  {', '.join(cells)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", type=Path, default=REPO / "target/release/flink-autotune")
    args = parser.parse_args()
    if not args.cli.is_file():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "flink-autotune"], cwd=REPO, check=True)
    all_cases = cases()
    for c in all_cases:
        report = diagnose(args.cli, c.files)
        c.found, c.lines = report["findings"], report["lines"]
    groups = ["fixtures (written with the patterns)", "harvested, train",
              *sorted({c.group for c in all_cases if c.group.startswith("harvested, held-out")}),
              "real-failure runs (held out)"]
    for group in groups:
        subset = [c for c in all_cases if c.group == group]
        if subset:
            summarise(group, subset)
        else:
            print(f"{group}: none")
    clean = [c for c in all_cases if c.group == "clean logs"]
    # clean-<process>.<release>.log
    releases = sorted({".".join(c.name.split(".")[1:-1]) for c in clean})
    alarms = [f"{c.name}: {f['code']} {f['evidence'][:120]}" for c in clean for f in c.found]
    print(f"clean logs: {len(clean)} files of {len(releases)} releases ({', '.join(releases)}), "
          f"{sum(c.lines for c in clean)} lines, {len(alarms)} false alarm(s)")
    for a in alarms:
        print(f"    {a}")
    throughput(args.cli)
    return 0


def throughput(cli: Path) -> None:
    """Lines per second through `diagnose`: healthy logs with every fixture mixed in, ~40 MB."""
    parts = [f.read_text(errors="replace") for f in sorted(FIXTURES.glob("*.log"))]
    blob = "".join(parts)
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        while f.tell() < 40 << 20:
            f.write(blob)
        path = Path(f.name)
    try:
        start = time.perf_counter()
        report = diagnose(cli, [path])
        took = time.perf_counter() - start
        mb = path.stat().st_size / (1 << 20)
        print(f"throughput: {report['lines']} lines ({mb:.0f} MiB) in {took:.2f} s = "
              f"{report['lines'] / took:,.0f} lines/s, {mb / took:.0f} MiB/s, {len(report['findings'])} distinct findings")
    finally:
        path.unlink()


if __name__ == "__main__":
    sys.exit(main())
