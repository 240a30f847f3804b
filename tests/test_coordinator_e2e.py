"""The coordinator inside the JobManager: with the plugin configured and nothing else, the
JobManager log names the bottleneck of the sample job and the parallelism it needs, and the
job's recommended config file and decision history appear beside the Flink logs."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup

from conftest import FLINK_VERSIONS, REPO
from harness import browser
from harness.autotune_log import autotune_lines, plugin_trouble, wait_for, whole_lines
from harness.flink import FlinkCluster

RATE = 1000
COST_US = 1500  # waited, not burnt (--cost-kind wait): the figures hold on a shared 2-core machine
WORK_FRAME = "QueueJob$BusyWork.park"  # where Work waits out its cost
OPTIMUM = math.ceil(RATE * COST_US / 1e6 / 0.7)  # Work at 70% busy: 3 subtasks

CONF = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "5 s",
    "metrics.reporter.autotune.stabilization": "15 s",
    "metrics.reporter.autotune.decision-window": "30 s",
    "metrics.reporter.autotune.decision-interval": "15 s",
    "metrics.reporter.autotune.poll-interval": "3 s",
    "metrics.reporter.autotune.mode": "apply",
    "metrics.reporter.autotune.record": "true",
}
JOB_ARGS = ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", "1", "--partitions", "4"]


def first_plan(cluster: FlinkCluster, job_id: str):
    lines = autotune_lines(cluster.jobmanager_log())
    return lines if any(l.startswith("AUTOTUNE AT100 PLAN") and job_id in l for l in lines) else None


@pytest.fixture(scope="module")
def coordinated(plugin_jar, flink_home, example_job, tmp_path_factory):
    # The 1.x release here: the analyze test runs on the 2.x one.
    version = FLINK_VERSIONS[0]
    workdir = tmp_path_factory.mktemp(f"coordinator-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=CONF, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(version), JOB_ARGS + ["--job-name", "autotune-coordinator"])
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        lines = wait_for(lambda: first_plan(cluster, job_id), timeout=240, what="the coordinator's first decision",
                         cluster=cluster, interval=3)
        # The decision is said first, then written.
        wait_for(lambda: any("decision" in json.loads(l)
                             for l in whole_lines(cluster.log_dir / "autotune" / job_id / "decisions.jsonl")),
                 timeout=30, what="the first decision in decisions.jsonl", cluster=cluster)
        yield cluster, job_id, lines


def test_the_jobmanager_log_names_the_bottleneck_and_its_parallelism(coordinated):
    cluster, job_id, lines = coordinated
    print("\n".join(lines))
    assert any(l.startswith("AUTOTUNE COORDINATOR started rest=http://127.0.0.1:") for l in lines)
    work_up = [l for l in lines if l.startswith("AUTOTUNE AT101 SCALE_UP") and 'vertex="Work' in l]
    assert work_up, lines
    recommended = int(re.search(r"parallelism=1->(\d+)", work_up[0]).group(1))
    assert abs(recommended - OPTIMUM) <= 1, (recommended, OPTIMUM)
    assert any(l.startswith("AUTOTUNE AT110 BOTTLENECK") and 'vertex="Work' in l for l in lines)
    # Only Work changes: the source stays at 1.
    assert not any(l.startswith("AUTOTUNE AT10") and 'vertex="Source' in l for l in lines)
    # TaskManagers do not coordinate.
    for text in cluster.taskmanager_logs().values():
        assert autotune_lines(text, "COORDINATOR") == []


def test_the_recommended_config_and_history_are_written_beside_the_logs(coordinated):
    cluster, job_id, _ = coordinated
    job_dir = cluster.log_dir / "autotune" / job_id
    config = (job_dir / "recommended-config.yaml").read_text()
    keys = dict(l.partition(": ")[::2] for l in config.splitlines() if l and not l.startswith("#"))
    # The parallelism plan, and the memory plan beside it (tests/test_memory_e2e.py checks those keys).
    assert set(keys) - {"pipeline.jobvertex-parallelism-overrides"} <= {k for k in keys if k.startswith("taskmanager.memory.")}
    value = keys["pipeline.jobvertex-parallelism-overrides"]
    overrides = dict(pair.split(":") for pair in value.split(","))
    vertices = {v["name"]: v["id"] for v in cluster.rest(f"/jobs/{job_id}")["vertices"]}
    assert set(overrides) == set(vertices.values()), "every vertex is covered"
    work = next(vid for name, vid in vertices.items() if name.startswith("Work"))
    assert abs(int(overrides[work]) - OPTIMUM) <= 1
    history = [json.loads(l) for l in whole_lines(job_dir / "decisions.jsonl")]
    assert history and all(h["job_id"] == job_id for h in history)
    decisions = [h["decision"] for h in history if "decision" in h]
    assert any(v["recommended"] != v["current"] for v in decisions[0]["vertices"])
    # Every window's figures too, for the report.
    windows = [h["window"] for h in history if "window" in h]
    assert len(windows) >= len(decisions) and windows[0]["vertices"][0]["parallelism"] >= 1


def test_the_bottleneck_gets_a_flame_graph_that_names_the_costly_code(coordinated, cli, tmp_path):
    cluster, job_id, lines = coordinated
    work = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Work"))
    # Flink's own flame graphs stay off (rest.flamegraph.enabled: false, the default).
    try:
        url = f"{cluster.rest_url}/jobs/{job_id}/vertices/{work['id']}/flamegraph"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert not body.get("data"), body
    except urllib.error.HTTPError:
        pass

    def flame_line():
        found = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT111 FLAMEGRAPH")]
        return found[0] if found else None

    # Within one decision after the AT110 line (window 30 s + interval 15 s, and some slack).
    line = wait_for(flame_line, timeout=90, what="the bottleneck's flame graph (AT111)", cluster=cluster, interval=3)
    print(line)
    assert f'vertex="{work["name"]}" ({work["id"]})' in line
    # The job's function that takes the time is named first, before the JDK's park under it.
    top = re.search(r"top-frames=\[([^\]]*)\]", line).group(1)
    assert top.startswith(f"dev.flinkautotune.examples.{WORK_FRAME} "), top
    share = int(re.match(r"\S+ (\d+)%", top).group(1))
    assert share >= 50, top
    svg = Path(re.search(r" svg=(\S+)", line).group(1))
    folded = Path(re.search(r" folded=(\S+)", line).group(1))
    assert svg.parent == cluster.log_dir / "autotune" / job_id / "flamegraphs"
    assert svg.name.startswith(work["id"] + "-")
    # The SVG is well-formed XML with the frame in it; the folded file is Brendan Gregg's format.
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert WORK_FRAME in svg.read_text()
    samples = int(re.search(r" samples=(\d+)", line).group(1))
    counted = 0
    for stack in folded.read_text().splitlines():
        frames, count = re.fullmatch(r"(.+) (\d+)", stack).groups()
        assert all(frames.split(";")), stack
        counted += int(count)
    assert counted == samples > 0
    # The folded file renders again, as a user would re-render it.
    again = subprocess.run([str(cli), "flamegraph", "--folded", str(folded), "--out", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    rendered = list(tmp_path.glob("*.svg"))
    assert len(rendered) == 1 and WORK_FRAME in rendered[0].read_text()
    ElementTree.parse(rendered[0])
    # From outside, Flink's own endpoint is off here: one line says how to turn it on.
    off = subprocess.run([str(cli), "flamegraph", "--rest", cluster.rest_url, "--job", job_id, "--vertex", "Work"],
                         capture_output=True, text=True, timeout=60)
    assert off.returncode == 2 and "rest.flamegraph.enabled: true" in off.stderr, off.stderr
    assert len(off.stderr.strip().splitlines()) == 1


def test_the_report_shows_the_job_in_a_real_browser_without_network(coordinated):
    cluster, job_id, _ = coordinated
    job_dir = cluster.log_dir / "autotune" / job_id
    page = job_dir / "report.html"

    def report_with_flame_graph():
        return page.is_file() and "data:image/svg+xml;base64," in page.read_text()

    wait_for(report_with_flame_graph, timeout=120, what="report.html with the flame graph", cluster=cluster, interval=3)
    html = page.read_text()
    # Self-contained: nothing is fetched (the only URL is the SVG namespace).
    assert re.findall(r"(?:src|href)=\"https?://", html) == [], "no network resources"
    dom = BeautifulSoup(browser.dump_dom(page), "html.parser")
    vertices = {v["name"]: v for v in cluster.rest(f"/jobs/{job_id}")["vertices"]}
    boxes = {g["data-vertex-id"]: g for g in dom.select("g.vertex")}
    assert set(boxes) == {v["id"] for v in vertices.values()}
    work = next(v for name, v in vertices.items() if name.startswith("Work"))
    assert "bottleneck" in boxes[work["id"]]["class"]
    recommended = re.search(r"parallelism 1 → (\d+)", boxes[work["id"]].select_one("text.parallelism").text)
    assert recommended and int(recommended.group(1)) > 1
    codes = [c.text for c in dom.select("#findings code")]
    assert "AT110" in codes, codes
    assert dom.select("#decisions tr") and dom.select("#memory tr")
    flame = dom.select_one("iframe#flamegraph")["src"]
    svg = base64.b64decode(flame.split("base64,", 1)[1]).decode()
    assert WORK_FRAME in svg
    ElementTree.fromstring(svg)
    shot = browser.screenshot(page, REPO / "build" / "test-artifacts" / f"report-{cluster.version}.png")
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 20_000


def test_the_cluster_is_unharmed(coordinated):
    cluster, job_id, _ = coordinated
    assert plugin_trouble(cluster) == []
    assert all(cluster.alive().values()) and len(cluster.alive()) == 3
    assert cluster.rest(f"/jobs/{job_id}")["state"] == "RUNNING"


def test_without_the_adaptive_scheduler_one_line_says_it_only_recommends(coordinated):
    cluster, job_id, _ = coordinated
    time.sleep(20)  # at least one more decision round
    lines = autotune_lines(cluster.jobmanager_log())
    unavailable = [l for l in lines if l.startswith("AUTOTUNE AT104 APPLY_UNAVAILABLE")]
    assert len(unavailable) == 1, unavailable
    assert "jobmanager.scheduler: adaptive" in unavailable[0]
    work = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Work"))
    assert work["parallelism"] == 1


# Lighter load for the in-place rescale: 2 subtasks fit the 2 TaskManagers' slots with room.
APPLY_RATE = 800
APPLY_OPTIMUM = math.ceil(APPLY_RATE * COST_US / 1e6 / 0.7)  # 1.2 cores at 70% busy: 2 subtasks


@pytest.fixture(scope="module")
def applied(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"apply-{version}")
    # Flink's own flame graphs on, for `flink-autotune flamegraph` from outside.
    conf = dict(CONF, **{"jobmanager.scheduler": "adaptive", "rest.flamegraph.enabled": "true"})
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=2, conf=conf, plugin_jar=plugin_jar) as cluster:
        args = ["--rate", str(APPLY_RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", "1", "--partitions", "4",
                "--job-name", "autotune-apply"]
        job_id = cluster.submit(example_job(version), args)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)

        def work_rescaled():
            vertices = cluster.rest(f"/jobs/{job_id}")["vertices"]
            work = next(v for v in vertices if v["name"].startswith("Work"))
            running = all(v["status"] == "RUNNING" for v in vertices)
            return work if running and work["parallelism"] > 1 else None

        work = wait_for(work_rescaled, timeout=300, what="the adaptive scheduler to rescale Work", cluster=cluster, interval=3)
        yield cluster, job_id, work


def source_backlog(cluster: FlinkCluster, job_id: str) -> float:
    source = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Source"))
    names = [m["id"] for m in cluster.rest(f"/jobs/{job_id}/vertices/{source['id']}/metrics")]
    pending = [n for n in names if n.endswith(".pendingRecords")]
    values = cluster.rest(f"/jobs/{job_id}/vertices/{source['id']}/metrics?get={','.join(pending)}") if pending else []
    return sum(float(v["value"]) for v in values)


def test_apply_rescales_the_bottleneck_in_place_and_the_backlog_drains(applied):
    cluster, job_id, work = applied
    assert abs(work["parallelism"] - APPLY_OPTIMUM) <= 1, work
    lines = autotune_lines(cluster.jobmanager_log())
    assert any(l.startswith("AUTOTUNE AT103 APPLIED") and job_id in l for l in lines), lines
    # Back-pressure and backlog growth are gone: the backlog shrinks (or stays empty).
    time.sleep(30)  # the restarted job settles and the REST metrics refresh
    before = source_backlog(cluster, job_id)
    time.sleep(25)
    after = source_backlog(cluster, job_id)
    print(f"Work at {work['parallelism']}; source backlog {before:.0f} -> {after:.0f}")
    assert after <= before or after < 1000, (before, after)
    busy = cluster.rest(f"/jobs/{job_id}/vertices/{work['id']}/subtasks/metrics?get=busyTimeMsPerSecond")[0]["max"]
    assert busy < 950, busy
    # Applied once: the next decisions hold (no oscillation).
    assert len([l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT103")]) == 1
    # What the rescale cost, said once and on the job's page (rendered again at its next decision).
    said = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT132") and job_id in l]
    print("\n".join(said))
    assert len(said) == 1 and '"Work' in said[0], said
    downtime = float(re.search(r"downtime=([\d.]+)s", said[0]).group(1))
    assert 0 < downtime < 120, said[0]
    page = cluster.log_dir / "autotune" / job_id / "report.html"
    wait_for(lambda: f"<td>{downtime:.1f} s</td>" in page.read_text(), timeout=120,
             what="the rescale's downtime on the job's page", cluster=cluster, interval=3)
    assert plugin_trouble(cluster) == []
    assert all(cluster.alive().values())


def test_the_cli_captures_flinks_own_flame_graph_when_it_is_enabled(applied, cli, tmp_path):
    cluster, job_id, work = applied
    run = subprocess.run([str(cli), "flamegraph", "--rest", cluster.rest_url, "--job", job_id, "--vertex", "Work",
                          "--type", "off_cpu", "--out", str(tmp_path)], capture_output=True, text=True, timeout=180)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr
    svg = next(tmp_path.glob(f"{work['id']}-*.svg"))
    folded = svg.with_suffix(".folded")
    ElementTree.parse(svg)
    assert WORK_FRAME in folded.read_text()
    assert f"top frames [dev.flinkautotune.examples.{WORK_FRAME}" in run.stdout


def test_the_recorded_window_replays_to_the_same_first_decision(coordinated, cli, tmp_path):
    cluster, job_id, lines = coordinated
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"
    first = tmp_path / "first.jsonl"
    first.write_text(recording.read_text().splitlines()[0] + "\n")
    replay = subprocess.run([str(cli), "replay", str(first)], capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    # The coordinator's first decision, as logged: its AT1xx lines up to the first PLAN.
    decision = scaling_lines(lines)
    first_decision = decision[: next(i for i, l in enumerate(decision) if l.startswith("AUTOTUNE AT100")) + 1]
    # The memory plan the window carries is replayed too (AT2xx); the scaling lines are these.
    assert scaling_lines(replay.stdout.splitlines()) == first_decision


def scaling_lines(lines: list[str]) -> list[str]:
    """The scaling model's lines; applying (AT103/AT104) and flame graphs (AT111) happen only
    in a live cluster."""
    return [l for l in lines if re.match(r"AUTOTUNE AT1\d\d ", l) and not re.match(r"AUTOTUNE AT(10[34]|111) ", l)]


def test_the_whole_recording_replays_to_the_decisions_the_plugin_logged(coordinated, cli):
    cluster, job_id, _ = coordinated
    time.sleep(30)  # a few more windows
    logged = scaling_lines(autotune_lines(cluster.jobmanager_log()))
    recording = cluster.log_dir / "autotune" / job_id / "recording.jsonl"
    windows = recording.read_text().splitlines()
    replay = subprocess.run([str(cli), "replay", str(recording)], capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    replayed = scaling_lines(replay.stdout.splitlines())
    print(f"{len(windows)} windows recorded; {len(logged)} scaling lines logged, {len(replayed)} replayed")
    assert len(windows) >= 2, "several windows"
    # The log was read first: the recording may hold a window decided after that.
    assert replayed[: len(logged)] == logged
