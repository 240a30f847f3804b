"""For the people who run the cluster (issue 26), on one real Flink 2.3 session cluster with the
adaptive scheduler, `mode: apply`, and Flink's own Prometheus reporter beside the plugin:

- a job whose sink takes at most 2 writers, scaled 2 -> 3, fails over; the plugin rolls it back
  to 2 (AT135), the job runs again, and 3 is not tried again within the hold;
- a job in a quiet window is decided on but not rescaled, said once (AT136);
- a job with a slot quota gets a recommendation capped at it (AT137);
- the recommended parallelism and the bottleneck flag of each vertex, scraped from Prometheus
  over loopback, are the AUTOTUNE lines'.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import FAST_LOOP_CONF, autotune_lines, plugin_trouble, wait_for
from harness.flink import FlinkCluster, _free_ports

# Work waits 8 ms a record: 125 records/s a subtask. At 300/s, 2 subtasks fall behind.
COST_US = 8000
PROM_PORTS = _free_ports(3)  # the JobManager's and two TaskManagers' reporters
CONF = dict(FAST_LOOP_CONF, **{
    "metrics.reporter.autotune.mode": "apply",
    "jobmanager.scheduler": "adaptive",
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "1000",
    "restart-strategy.fixed-delay.delay": "2 s",
    "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
    "metrics.reporter.prom.port": ",".join(map(str, PROM_PORTS)),
})


def job_args(name: str, rate: int, work: int, *extra: str) -> list[str]:
    return ["--rate", str(rate), "--cost-us", str(COST_US), "--cost-kind", "wait", "--partitions", "4",
            "--work-parallelism", str(work), "--job-name", name, *extra]


@pytest.fixture(scope="module")
def operated(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"operations-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=2, slots=3, conf=CONF, plugin_jar=plugin_jar) as cluster:
        jar = example_job(version)
        jobs = {
            # Its recommendation is well above 3; a step of 1.5 times makes it 2 -> 3.
            "rollback": cluster.submit(jar, job_args("autotune-writers", 300, 2, "--max-writers", "2",
                                                     "--autotune.apply-max-step", "1.5")),
            "quiet": cluster.submit(jar, job_args("autotune-quiet", 200, 1, "--autotune.quiet-windows", "* * * * * ?")),
            "quota": cluster.submit(jar, job_args("autotune-quota", 200, 1, "--autotune.max-slots", "1")),
        }
        for job_id in jobs.values():
            cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        yield cluster, jobs


def lines_of(cluster: FlinkCluster, job_id: str, code: str) -> list[str]:
    return [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith(f"AUTOTUNE {code} ") and job_id in l]


def work_of(cluster: FlinkCluster, job_id: str) -> dict:
    details = cluster.rest(f"/jobs/{job_id}")
    return dict(next(v for v in details["vertices"] if v["name"].startswith("Work")), job_state=details["state"])


def test_a_rescale_the_sink_cannot_take_is_rolled_back_and_not_tried_again_within_the_hold(operated):
    cluster, jobs = operated
    job_id = jobs["rollback"]
    applied = wait_for(lambda: lines_of(cluster, job_id, "AT103"), timeout=180,
                       what="the scale-up of Work to be applied", cluster=cluster, interval=3)
    print(applied[0])
    assert ":3" in applied[0] and "2->3 of 2->" in applied[0], applied[0]

    rolled_back = wait_for(lambda: lines_of(cluster, job_id, "AT135"), timeout=180,
                           what="the failing rescale to be rolled back (AT135)", cluster=cluster, interval=3)
    print(rolled_back[0])
    assert "failed over" in rolled_back[0] and "the sink takes at most 2 writers" in rolled_back[0], rolled_back[0]
    assert re.search(r'"Work[^"]*" 3->2', rolled_back[0]), rolled_back[0]

    # The job runs again, at 2.
    work = wait_for(lambda: (w := work_of(cluster, job_id))["job_state"] == "RUNNING" and w["status"] == "RUNNING"
                    and w["parallelism"] == 2 and w, timeout=120,
                    what="the job running again with Work at 2", cluster=cluster, interval=3)
    assert work["parallelism"] == 2

    # Work still falls behind at 2; within the hold its next decisions say why it stays there,
    # and nothing is applied again.
    held = wait_for(lambda: [l for l in lines_of(cluster, job_id, "AT135") if "would suffice by its rate" in l],
                    timeout=180, what="a decision held by the rollback", cluster=cluster, interval=3)
    print(held[0])
    assert "its rescale to 3 was rolled back to 2" in held[0], held[0]
    plans_before = len(lines_of(cluster, job_id, "AT100"))
    decisions = cluster.log_dir / "autotune" / job_id / "decisions.jsonl"
    windows_before = decisions.read_text().count('"window"')
    wait_for(lambda: decisions.read_text().count('"window"') >= windows_before + 2, timeout=120,
             what="two more decisions on the job", cluster=cluster, interval=3)
    assert len(lines_of(cluster, job_id, "AT103")) == 1, lines_of(cluster, job_id, "AT103")
    assert len(lines_of(cluster, job_id, "AT135")) == 2, "the rollback and the held decision, each said once"
    assert len(lines_of(cluster, job_id, "AT100")) == plans_before
    assert work_of(cluster, job_id)["parallelism"] == 2
    assert '"rollback"' in decisions.read_text()
    # The job's page says it too, with why.
    page = cluster.log_dir / "autotune" / job_id / "report.html"
    wait_for(lambda: page.is_file() and "rolled back, the job failed over" in page.read_text(), timeout=120,
             what="the rollback on the job's page", cluster=cluster, interval=3)


def test_a_quiet_window_holds_the_apply_back_with_one_line(operated):
    cluster, jobs = operated
    job_id = jobs["quiet"]
    held = wait_for(lambda: lines_of(cluster, job_id, "AT136"), timeout=180,
                    what="the quiet window to hold the apply back (AT136)", cluster=cluster, interval=3)
    print(held[0])
    assert 'window="* * * * * ?"' in held[0], held[0]
    decisions = cluster.log_dir / "autotune" / job_id / "decisions.jsonl"
    windows = decisions.read_text().count('"window"')
    wait_for(lambda: decisions.read_text().count('"window"') >= windows + 2, timeout=120,
             what="two more decisions on the job", cluster=cluster, interval=3)
    assert len(lines_of(cluster, job_id, "AT136")) == 1, "said once"
    assert lines_of(cluster, job_id, "AT103") == []
    assert work_of(cluster, job_id)["parallelism"] == 1


def test_a_slot_quota_caps_the_recommendation_with_its_line(operated):
    cluster, jobs = operated
    job_id = jobs["quota"]
    capped = wait_for(lambda: lines_of(cluster, job_id, "AT137"), timeout=180,
                      what="the job's slot quota to cap its recommendation (AT137)", cluster=cluster, interval=3)
    print(capped[0])
    assert 'vertex="Work' in capped[0] and "at most 1 task slots (max-slots): capped at 1" in capped[0], capped[0]
    assert lines_of(cluster, job_id, "AT103") == []


def scrape() -> str:
    texts = []
    for port in PROM_PORTS:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                texts.append(r.read().decode())
        except OSError:
            pass  # a port the reporters did not take
    return "\n".join(texts)


def series(text: str, name: str, job_id: str) -> dict[str, float]:
    """vertex id -> value of `flink_jobmanager_job_autotune_vertex_<name>` for the job."""
    found = {}
    for line in text.splitlines():
        if line.startswith(f"flink_jobmanager_job_autotune_vertex_{name}{{") and f'job_id="{job_id}"' in line:
            vertex = re.search(r'vertex="([0-9a-f]{32})"', line).group(1)
            found[vertex] = float(line.rsplit(" ", 1)[1])
    return found


def test_prometheus_serves_each_vertexs_recommendation_and_bottleneck_as_the_log_says(operated):
    cluster, jobs = operated
    job_id = jobs["quiet"]  # decided on, never rescaled: a recommendation above what it runs

    def agreeing():
        plans = lines_of(cluster, job_id, "AT100")
        bottlenecks = lines_of(cluster, job_id, "AT110")
        text = scrape()
        if not plans or not bottlenecks or lines_of(cluster, job_id, "AT100") != plans:
            return None
        logged = {v: int(p) for v, p in re.findall(r"([0-9a-f]{32}):(\d+)", plans[-1].split("overrides=")[1])}
        bottleneck = re.search(r'vertex="[^"]*" \(([0-9a-f]{32})\)', bottlenecks[-1]).group(1)
        served = series(text, "recommendedParallelism", job_id)
        flags = series(text, "bottleneck", job_id)
        print(f"log: {logged}, bottleneck {bottleneck}\nprometheus: {served}, {flags}")
        return served == logged and flags == {v: float(v == bottleneck) for v in logged} and (logged, bottleneck, text)

    logged, bottleneck, text = wait_for(agreeing, timeout=180, what="Prometheus to serve what the log says",
                                        cluster=cluster, interval=3)
    work = work_of(cluster, job_id)
    assert bottleneck == work["id"] and logged[work["id"]] > 1, (logged, work)
    # The rest of a job's figures are served too.
    for name in ("flink_jobmanager_job_autotune_vertex_trueProcessingRate", "flink_jobmanager_job_autotune_vertex_targetRate",
                 "flink_jobmanager_job_autotune_vertex_utilization", "flink_jobmanager_job_autotune_rescalesApplied",
                 "flink_jobmanager_job_autotune_rescalesRolledBack", 'flink_jobmanager_job_autotune_severity_findings{'):
        assert name in text, name
    assert plugin_trouble(cluster) == []
