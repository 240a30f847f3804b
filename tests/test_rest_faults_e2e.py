"""REST faults (issue 13, item 1): a fault-injecting proxy (tests/harness/faulty_rest.py) sits
in front of a real JobManager's REST API, and the plugin's coordinator (`rest-url`),
`flink-autotune watch` and `analyze` (`--rest`) all go through it. Faults: delays beyond the
timeout, 500s, truncated and malformed answers, NaN and words for metric values, a job that
vanishes mid-window, connection resets.

What a user checks: no decision is wrong (every window decided names Work and sizes it as the
clean window did; the source is never touched), each kind of trouble is said once, Flink's
metric thread is never held up, and the loop works again when the API does."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import (FAST_LOOP_CONF, autotune_lines, decided_windows, parse_status, plugin_trouble,
                                  recommended, wait_for)
from harness.faulty_rest import KINDS, FaultyRest
from harness.flink import FlinkCluster
from test_watch_e2e import Watch

RATE, COST_US = 1000, 1500
# Work needs ceil(1.5 cores / 0.7) = 3 subtasks; a short first window can read it less busy
# than it is (one fewer), catching up on a backlog asks one more. 1 would be no scale-up.
RIGHT_FOR_WORK = {2, 3, 4}
# Faults that break a window (it is given up), and the one that only spoils values.
BREAKING = tuple(k for k in KINDS if k != "nan")
BREAKING_SECONDS, NAN_SECONDS = 60, 50



def trouble_kind(line: str) -> str:
    """The kind of trouble a coordinator warning names, as RestError::kind spells it."""
    if m := re.search(r"answered (\d+)", line):
        return f"answered {m.group(1)}"
    if "unreadable answer" in line:
        return "unreadable answer"
    if "not reachable" in line:
        return "not reachable (timed out)" if "timed out" in line.lower() else "not reachable (other)"
    return line


@pytest.fixture(scope="module")
def faulted(plugin_jar, flink_home, example_job, cli, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"rest-faults-{version}")
    with FaultyRest() as proxy:
        conf = dict(FAST_LOOP_CONF, **{"metrics.reporter.autotune.rest-url": proxy.url})
        with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=conf,
                          plugin_jar=plugin_jar) as cluster:
            proxy.upstream = cluster.rest_url
            job_id = cluster.submit(example_job(version), ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait",
                                                           "--work-parallelism", "1", "--partitions", "4",
                                                           "--job-name", "autotune-rest-faults"])
            cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
            clean = wait_for(lambda: decided_windows(cluster, job_id), timeout=180,
                             what="a decision through the proxy before any fault", cluster=cluster, interval=2)[0]
            watch = Watch(cli, proxy.url, workdir, "--timeout", "3 s")
            try:
                phases = {"faults_from": time.time() * 1000}
                proxy.inject(BREAKING, rate=0.1)
                time.sleep(5)
                # One round of analyze while everything breaks: bounded, and one clear line.
                began = time.monotonic()
                analyze = subprocess.run([str(cli), "analyze", "--rest", proxy.url, "--job", job_id, "--duration",
                                          "10 s", "--interval", "2 s", "--timeout", "3 s"],
                                         capture_output=True, text=True, timeout=120)
                analyze_seconds = time.monotonic() - began
                time.sleep(max(0.0, BREAKING_SECONDS - 5 - analyze_seconds))
                breaking_counts = Counter(proxy.counts)
                proxy.inject(("nan",), rate=0.3)
                time.sleep(NAN_SECONDS)
                proxy.heal()
                phases["healed_at"] = time.time() * 1000
                wait_for(lambda: any(w["at_ms"] > phases["healed_at"] + 15_000 for w in decided_windows(cluster, job_id)),
                         timeout=120, what="a window decided after the API healed", cluster=cluster, interval=2)
                wait_for(lambda: any(l.startswith("AUTOTUNE AT100") for l in watch.lines()) or None, timeout=60,
                         what="watch's decision", cluster=cluster, interval=2)
                watch_exit = watch.interrupt()
            finally:
                watch.kill()
            print(f"faults injected: {dict(proxy.counts)} in {proxy.requests} requests "
                  f"(breaking phase: {dict(breaking_counts)})")
            for at, request, kind in proxy.injected:
                print(f"  {time.strftime('%H:%M:%S', time.localtime(at))} {kind:9} {request[:120]}")
            yield {"cluster": cluster, "job_id": job_id, "proxy": proxy, "clean": clean, "phases": phases,
                   "analyze": analyze, "analyze_seconds": analyze_seconds, "watch": watch,
                   "watch_exit": watch_exit}


def test_every_kind_of_fault_was_injected(faulted):
    counts = faulted["proxy"].counts
    assert set(counts) == set(KINDS), counts
    assert sum(counts.values()) >= 50, counts


def test_no_decision_is_wrong(faulted):
    cluster, job_id, clean = faulted["cluster"], faulted["job_id"], faulted["clean"]
    assert recommended(clean, "Work") in RIGHT_FOR_WORK, clean
    windows = decided_windows(cluster, job_id)
    during = [w for w in windows if faulted["phases"]["faults_from"] < w["at_ms"] < faulted["phases"]["healed_at"]]
    wrong = [w for w in windows if recommended(w, "Work") not in RIGHT_FOR_WORK or recommended(w, "Source") != 1]
    print(f"{len(windows)} windows decided, {len(during)} of them while faults were injected; {len(wrong)} wrong "
          f"(Work at {[recommended(w, 'Work') for w in windows]})")
    assert during, "values spoiled as NaN do not stop decisions"
    assert wrong == []
    lines = autotune_lines(cluster.jobmanager_log())
    assert not [l for l in lines if re.match(r"AUTOTUNE AT10\d ", l) and 'vertex="Source' in l]
    assert not [l for l in lines if l.startswith("AUTOTUNE AT102")], "never scaled down"


def test_each_kind_of_trouble_is_said_once_and_its_end_too(faulted):
    cluster = faulted["cluster"]
    lines = autotune_lines(cluster.jobmanager_log(), "COORDINATOR")
    trouble = [l for l in lines if "trying again every" in l]
    kinds = Counter(trouble_kind(l) for l in trouble)
    print("\n".join(l[:200] for l in trouble))
    assert trouble and all(n == 1 for n in kinds.values()), kinds
    # A job that vanishes mid-window is no trouble: that window gets no decision (INFO).
    assert "answered 404" not in kinds and len(kinds) <= 5, kinds
    # A window's read of a vertex that vanishes ends that window, said by whichever client read
    # it (the plugin, or watch and analyze, which read through the same proxy); the diagnosis's
    # read of checkpoint delays just has nothing to say that time.
    if any(kind == "vanish" and "/vertices/" in request and "checkpointStartDelayNanos" not in request
           for _, request, kind in faulted["proxy"].injected):
        analyze = faulted["analyze"]
        said = lines + faulted["watch"].lines() + analyze.stdout.splitlines() + analyze.stderr.splitlines()
        assert any(re.search(r"no decision for job .*: job \w+ is not running \(gone\)", l) for l in said), said
    assert any(l == "AUTOTUNE COORDINATOR working again" for l in lines)
    # Nothing said twice in a row, and not the JobManager's start as trouble (its REST server
    # comes up after the plugin).
    assert not any("Connection refused" in l for l in trouble), trouble


def test_flinks_metric_thread_is_never_held_up(faulted):
    cluster = faulted["cluster"]
    statuses = [parse_status(l) for l in autotune_lines(cluster.jobmanager_log(), "STATUS")]
    costs_ms = [int(s.fields["report-cost"].rstrip("us")) / 1000 for s in statuses]
    print(f"JobManager report(): {len(costs_ms)} sampled, longest {max(costs_ms):.1f} ms "
          f"(a fault delays REST answers by {faulted['proxy'].delay_s} s)")
    assert max(costs_ms) < 1000
    assert plugin_trouble(cluster) == []
    assert all(cluster.alive().values())
    assert cluster.rest(f"/jobs/{faulted['job_id']}")["state"] == "RUNNING"


def test_analyze_under_faults_ends_in_bounded_time_with_one_clear_line(faulted):
    run = faulted["analyze"]
    print(f"analyze: exit {run.returncode} after {faulted['analyze_seconds']:.1f} s; stderr: {run.stderr.strip()[:300]}")
    assert faulted["analyze_seconds"] < 60
    if run.returncode == 0:
        assert any(l.startswith("AUTOTUNE AT100") for l in run.stdout.splitlines()), run.stdout
    else:
        assert run.returncode == 2, run
        errors = [l for l in run.stderr.splitlines() if l.startswith("flink-autotune analyze: ")]
        assert len(errors) == 1, run.stderr
        assert "panicked" not in run.stderr


def test_watch_through_the_faults_decides_right_and_says_each_kind_once(faulted):
    watch = faulted["watch"]
    assert faulted["watch_exit"] == 0
    lines = watch.lines()
    work = [int(m.group(1)) for l in lines if l.startswith("AUTOTUNE AT10") and 'vertex="Work' in l
            for m in [re.search(r"parallelism=\d+->(\d+)", l)] if m]
    assert work and set(work) <= RIGHT_FOR_WORK, work
    assert not [l for l in lines if re.match(r"AUTOTUNE AT10\d ", l) and 'vertex="Source' in l]
    trouble = Counter(trouble_kind(l) for l in lines if "trying again every" in l)
    assert trouble and all(n == 1 for n in trouble.values()), trouble
    assert "panicked" not in watch.stderr_path.read_text()
