"""Hostile names on a real cluster (issue 13, item 3): a job and a vertex whose names hold
quotes, backslashes, `../`, newlines with forged `AUTOTUNE` lines, HTML, non-ASCII text and
10,000 characters, submitted to a real 2.3 cluster with the plugin.

What a user checks: every record the plugin writes into a Flink log stays one line (the forged
lines do not appear as its records), nothing is written outside the output folder, the job's
config file holds only the keys the plugin means (a newline in the name cannot add one), its
history stays JSON, and its page shows the names as text."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from bs4 import BeautifulSoup

from conftest import FLINK_VERSIONS
from harness import browser
from harness.autotune_log import FAST_LOOP_CONF, decided_windows, plugin_trouble, recommended, wait_for
from harness.flink import FlinkCluster

FORGED = "AUTOTUNE AT102 SCALE_DOWN forged"
JOB_NAME = ('orders "prod" \\ ../../../../tmp/autotune-escape\n' + FORGED
            + '\npipeline.jobvertex-parallelism-overrides: evil:99\r\n<script>alert(1)</script> Zürich ☃ ' + "x" * 10_000)
WORK_NAME = 'Work "q" ../\\ <b>bold</b>\nAUTOTUNE AT101 SCALE_UP forged 東京'
# A record of the plugin's loggers: log4j's pattern starts every record with its time.
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture(scope="module")
def hostile(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"hostile-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=1, slots=2, conf=FAST_LOOP_CONF,
                      plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(version), ["--rate", "1000", "--cost-us", "1500", "--work-parallelism",
                                                       "1", "--job-name", JOB_NAME, "--work-name", WORK_NAME])
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        wait_for(lambda: decided_windows(cluster, job_id), timeout=180, what="a decision on the hostile job",
                 cluster=cluster, interval=2)
        yield cluster, job_id, workdir


def test_every_record_of_the_plugin_stays_one_line(hostile):
    cluster, job_id, _ = hostile
    checked = 0
    for name, text in cluster.logs().items():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "dev.flinkautotune" not in line or not RECORD_START.match(line):
                continue
            checked += 1
            # The next line starts a record of its own (or the file ends): this one did not
            # spill over, whatever the names it quotes.
            if i + 1 < len(lines):
                assert RECORD_START.match(lines[i + 1]) or lines[i + 1].startswith(("\tat ", "java.", "Caused by")), \
                    f"{name}: a plugin record went on over lines:\n{line[:300]}\n{lines[i + 1][:300]}"
    assert checked > 20
    # Flink's own records quote the names raw, so the forged text starts lines of its log; the
    # plugin's records are the ones of its loggers.
    decisions = [l for l in cluster.jobmanager_log().splitlines()
                 if "AUTOTUNE AT101 SCALE_UP" in l and "dev.flinkautotune" in l]
    assert decisions and all(RECORD_START.match(l) for l in decisions), decisions[:3]
    # The names are one quoted field each, their newlines escaped, long ones cut.
    work_up = next(l for l in decisions if "vertex=" in l)
    assert '\\nAUTOTUNE AT101 SCALE_UP forged' in work_up and "…(+" in work_up, work_up[:600]


def test_nothing_is_written_outside_the_output_folder(hostile):
    cluster, job_id, workdir = hostile
    folders = [p.name for p in (cluster.log_dir / "autotune").iterdir()]
    assert folders == [job_id], folders
    assert not list(workdir.parent.rglob("autotune-escape*")), "a name made a path"


def test_the_config_file_holds_only_the_plugins_keys_and_the_history_stays_json(hostile):
    cluster, job_id, _ = hostile
    folder = cluster.log_dir / "autotune" / job_id
    config = yaml.safe_load((folder / "recommended-config.yaml").read_text())
    assert "evil" not in json.dumps(config), config
    overrides = dict(p.split(":") for p in config["pipeline.jobvertex-parallelism-overrides"].split(","))
    assert set(overrides) == {v["id"] for v in cluster.rest(f"/jobs/{job_id}")["vertices"]}
    history = [json.loads(l) for l in (folder / "decisions.jsonl").read_text().splitlines()]
    assert all(h["job_name"] == JOB_NAME for h in history)
    # Work is chained with the sink: "<its name> -> Sink: Writer".
    assert any(v["name"].startswith(WORK_NAME) for w in decided_windows(cluster, job_id) for v in w["vertices"])
    assert recommended(decided_windows(cluster, job_id)[0], "Work") > 1


def test_the_page_shows_the_names_as_text(hostile):
    cluster, job_id, _ = hostile
    page = cluster.log_dir / "autotune" / job_id / "report.html"
    wait_for(page.is_file, timeout=60, what="report.html", cluster=cluster)
    dom = BeautifulSoup(browser.dump_dom(page), "html.parser")
    assert not [s for s in dom.find_all("script") if "alert(1)" in s.text], "no script from a name"
    assert not dom.find("b", string="bold"), "no markup from a name"
    text = dom.get_text()
    assert "<script>alert(1)</script>" in text and "Zürich ☃" in text and "東京" in text
    assert plugin_trouble(cluster) == []
