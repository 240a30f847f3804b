"""The output folder in trouble on a real cluster (issue 13, item 2).

The plugin writes to a small tmpfs of its own (root mounts it; elsewhere the test is skipped
with the reason). The folder is missing at the start; then the disk fills up while a second
job starts, then it turns read-only, then a file stands where a job's folder should be. After
each, the disk is fixed.

What a user checks: each trouble is one clear line, said once; the jobs keep running and the
second job's plan is in the log although no file could take it; when the disk is fixed the
plugin says so and every job's config file is written anew; no file is ever half-written (every
history line is whole JSON, every config file whole YAML, no temporary file is left)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import FLINK_VERSIONS
from harness.autotune_log import (SHORTEST_LOOP_CONF, autotune_lines, decided_windows, no_temporary_files,
                                  plugin_trouble, wait_for, whole_lines)
from harness.flink import FlinkCluster

TROUBLE = "cannot write under"
AGAIN = "writing under"


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs: room for the plugin's files, and quick to fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Writes a file until the disk is full; returns it."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def remount(disk: Path, mode: str) -> None:
    """Remounts the disk; a file open for writing makes a read-only remount busy for a moment."""
    for _ in range(50):
        if subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"cannot remount {disk} {mode}")


def block_folder(folder: Path) -> None:
    """Puts a file where the folder is (the plugin may make it again between the two steps)."""
    for _ in range(50):
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.write_text("not a folder")
            return
        except (IsADirectoryError, FileExistsError):
            time.sleep(0.1)
    raise AssertionError(f"cannot put a file at {folder}")


def said(cluster: FlinkCluster, text: str) -> list[str]:
    return [l for l in autotune_lines(cluster.jobmanager_log(), "COORDINATOR") if text in l]


def trouble_then_recovery(cluster: FlinkCluster, n: int, why: str) -> str:
    """Waits for the n-th trouble line (which must give `why`) and returns it."""
    lines = wait_for(lambda: said(cluster, TROUBLE)[n - 1:], timeout=90, what=f"trouble line {n} ({why})",
                     cluster=cluster)
    assert why in lines[0], lines[0]
    return lines[0]


def recovered(cluster: FlinkCluster, n: int) -> None:
    wait_for(lambda: said(cluster, AGAIN)[n - 1:], timeout=90, what=f"recovery line {n}", cluster=cluster)


def assert_whole_files(out: Path, cluster: FlinkCluster) -> None:
    no_temporary_files(out, cluster)
    for history in out.rglob("decisions.jsonl"):
        for i, line in enumerate(whole_lines(history)):
            try:
                json.loads(line)
            except ValueError:
                pytest.fail(f"{history}:{i + 1} is not whole JSON: {line[:200]}")
    for config in out.rglob("recommended-config.yaml"):
        assert isinstance(yaml.safe_load(config.read_text()), dict), config


def test_a_full_read_only_or_blocked_disk_costs_one_line_and_no_decision(
        plugin_jar, flink_home, example_job, small_disk):
    version = FLINK_VERSIONS[-1]
    out = small_disk / "autotune"  # missing: the plugin makes it
    conf = {**SHORTEST_LOOP_CONF, "metrics.reporter.autotune.output-dir": str(out),
            "metrics.reporter.autotune.record": "true"}
    load = ["--rate", "300", "--cost-us", "500", "--cost-kind", "wait", "--work-parallelism", "1"]
    with FlinkCluster(flink_home(version), small_disk.parent / "cluster", taskmanagers=1, slots=4, conf=conf,
                      plugin_jar=plugin_jar) as cluster:
        first = cluster.submit(example_job(version), [*load, "--job-name", "autotune-disk-first"])
        cluster.wait_for_job_state(first, "RUNNING")
        wait_for(lambda: decided_windows(cluster, first, out), timeout=120, what="a decision written to the new folder",
                 cluster=cluster)

        # Full: a second job starts; its plan is in the log though no file can take it.
        filler = fill(small_disk)
        second = cluster.submit(example_job(version), [*load, "--job-name", "autotune-disk-second"])
        line = trouble_then_recovery(cluster, 1, "No space left on device")
        print(line)
        wait_for(lambda: [l for l in autotune_lines(cluster.jobmanager_log(), "AT100") if second in l],
                 timeout=120, what="the second job's plan while the disk is full", cluster=cluster)
        assert not (out / second / "recommended-config.yaml").exists()
        assert_whole_files(out, cluster)
        filler.unlink()
        recovered(cluster, 1)
        wait_for(lambda: (out / second / "recommended-config.yaml").is_file(), timeout=60,
                 what="the second job's config file once the disk has room", cluster=cluster)
        # The coordinator reads one job's window after the other: one job left, quicker rounds.
        cluster.call("PATCH", f"/jobs/{second}?mode=cancel")

        # Read-only.
        remount(small_disk, "ro")
        print(trouble_then_recovery(cluster, 2, "Read-only file system"))
        remount(small_disk, "rw")
        recovered(cluster, 2)

        # A file where the first job's folder should be.
        written = decided_windows(cluster, first, out)
        block_folder(out / first)
        print(trouble_then_recovery(cluster, 3, str(out)))
        (out / first).unlink()
        recovered(cluster, 3)
        wait_for(lambda: (out / first / "recommended-config.yaml").is_file(), timeout=60,
                 what="the first job's config file written anew", cluster=cluster)

        assert len(said(cluster, TROUBLE)) == 3, "each trouble said once"
        assert_whole_files(out, cluster)
        assert cluster.rest(f"/jobs/{first}")["state"] == "RUNNING"
        for job in (first, second):
            config = yaml.safe_load((out / job / "recommended-config.yaml").read_text())
            assert "pipeline.jobvertex-parallelism-overrides" in config, config
        assert written, "decisions were written before the folder was taken away"
        assert plugin_trouble(cluster) == []
        assert all(cluster.alive().values())

