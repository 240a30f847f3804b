#!/usr/bin/env python3
"""Precision and top-1 accuracy of the diagnosis, benchmark-style (prints figures, never fails).

Runs `flink-autotune diagnose --json` over
- every fixture `rust-core/model/tests/fixtures/diagnosis/<CODE>-*.log` (real message texts);
- every clean log there (`clean-*.log`: healthy real clusters; any finding is a false alarm);
- every real-failure run the end-to-end tests saved under `target/diagnosis-runs/<CODE>-*/`
  (all the logs of one real cluster, diagnosed together).

For each case the expected code is in its name, and the configuration key a Flink expert
would change first is in EXPECTED_KEY below, written by hand, apart from the catalogue.

    python3 benches/diagnosis_report.py [--cli target/release/flink-autotune]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "rust-core/model/tests/fixtures/diagnosis"
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
    "AT320": "execution.checkpointing.timeout",
    "AT321": "execution.checkpointing.tolerable-failed-checkpoints",
    "AT322": "execution.checkpointing.checkpoints-after-tasks-finish",
    "AT323": "execution.state-recovery.ignore-unclaimed-state",
    "AT324": ("parallelism.default", "pipeline.max-parallelism"),
    "AT325": None,
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
    "AT390": None,
}
# Old spellings count as the same key (a finding on Flink 1.17 says akka.ask.timeout).
SAME_KEY = {
    "akka.ask.timeout": "pekko.ask.timeout",
    "akka.framesize": "pekko.framesize",
    "execution.checkpointing.checkpoints-after-tasks-finish.enabled": "execution.checkpointing.checkpoints-after-tasks-finish",
    "execution.savepoint.ignore-unclaimed-state": "execution.state-recovery.ignore-unclaimed-state",
    "restart-strategy": "restart-strategy.type",
}


def key_right(code: str, key: str | None) -> bool:
    expected = EXPECTED_KEY.get(code)
    return key in expected if isinstance(expected, tuple) else key == expected


def diagnose(cli: Path, files: list[Path]) -> dict:
    out = subprocess.run([str(cli), "diagnose", "--json", *map(str, files)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)


def cases() -> list[tuple[str, str, list[Path]]]:
    """(name, expected code or '' for clean, files)"""
    out = []
    for f in sorted(FIXTURES.glob("*.log")):
        if f.name.startswith("clean-"):
            out.append((f.name, "", [f]))
        elif f.name.startswith("AT"):
            out.append((f.name, f.name.split("-")[0], [f]))
    if RUNS.is_dir():
        for d in sorted(p for p in RUNS.iterdir() if p.is_dir()):
            logs = sorted(d.glob("*.log"))
            if logs:
                out.append((f"real:{d.name}", d.name.split("-")[0], logs))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", type=Path, default=REPO / "target/release/flink-autotune")
    args = parser.parse_args()
    if not args.cli.is_file():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "flink-autotune"], cwd=REPO, check=True)
    rows = []
    for name, code, files in cases():
        report = diagnose(args.cli, files)
        found = report["findings"]
        top = found[0] if found else None
        top_key = top["config"][0]["key"] if top and top["config"] else None
        others = sorted({f["code"] for f in found if f["code"] != code})
        rows.append((name, code, top["code"] if top else "-", SAME_KEY.get(top_key, top_key), len(found), report["lines"],
                     others))

    failures = [r for r in rows if r[1]]
    clean = [r for r in rows if not r[1]]
    for kind, subset in (("fixtures", [r for r in failures if not r[0].startswith("real:")]),
                         ("real-failure runs", [r for r in failures if r[0].startswith("real:")])):
        if not subset:
            print(f"{kind}: none")
            continue
        answered = [r for r in subset if r[2] != "-"]
        right = [r for r in answered if r[2] == r[1]]
        keyed = [r for r in subset if EXPECTED_KEY.get(r[1])]
        right_key = [r for r in keyed if key_right(r[1], r[3])]
        print(f"{kind}: {len(subset)} cases")
        print(f"  recall (any finding)          {len(answered)}/{len(subset)} = {len(answered) / len(subset):.1%}")
        print(f"  precision (top finding right) {len(right)}/{len(answered)} = {len(right) / max(len(answered), 1):.1%}")
        print(f"  top-1 code accuracy           {len(right)}/{len(subset)} = {len(right) / len(subset):.1%}")
        print(f"  top-1 key accuracy            {len(right_key)}/{len(keyed)} = {len(right_key) / max(len(keyed), 1):.1%}"
              f"  (cases whose fix is a key)")
        others = [f"{r[0]}: {', '.join(r[6])}" for r in subset if r[6]]
        print(f"  cases with other findings too   {len(others)}/{len(subset)}  (ranked below the expected one)")
        for o in others:
            print(f"    {o}")
        for r in subset:
            if r[2] != r[1] or (EXPECTED_KEY.get(r[1]) and not key_right(r[1], r[3])):
                print(f"    miss: {r[0]}: expected {r[1]} / {EXPECTED_KEY.get(r[1])}, got {r[2]} / {r[3]}")
    alarms = sum(r[4] for r in clean)
    lines = sum(r[5] for r in clean)
    print(f"clean logs: {len(clean)} files, {lines} lines, {alarms} false alarm(s)")
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
