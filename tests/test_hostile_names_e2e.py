"""Hostile names and a troubled webhook on a real cluster (issue 13, items 3 and 7): a job and a
vertex whose names hold quotes, backslashes, `../`, newlines with forged `AUTOTUNE` lines, HTML,
non-ASCII text and 10,000 characters, submitted to a real 2.3 cluster with the plugin; then
jobs with hostile names that fail with a hostile exception text, whose findings go to a
webhook that first hangs, then answers 500, then closes the connection, then works.

What a user checks: every record the plugin writes into a Flink log stays one line (the forged
lines do not appear as its records), nothing is written outside the output folder, the job's
config file holds only the keys the plugin means (a newline in the name cannot add one), its
history stays JSON, and its page shows the names as text. The webhook gets valid JSON that
cannot ping a channel; its trouble holds up neither the diagnosis nor Flink's metric thread,
each kind is said once, and its secret URL is in no log."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml
from bs4 import BeautifulSoup

from conftest import FLINK_VERSIONS
from harness import browser
from harness.autotune_log import (FAST_LOOP_CONF, autotune_lines, decided_windows, parse_status, plugin_trouble,
                                  recommended, wait_for, whole_lines)
from harness.flink import FlinkCluster
from harness.webhook import SECRET, WebhookServer

FORGED = "AUTOTUNE AT102 SCALE_DOWN forged"
JOB_NAME = ('orders "prod" \\ ../../../../tmp/autotune-escape\n' + FORGED
            + '\npipeline.jobvertex-parallelism-overrides: evil:99\r\n<script>alert(1)</script> Zürich ☃ ' + "x" * 10_000)
WORK_NAME = 'Work "q" ../\\ <b>bold</b>\nAUTOTUNE AT101 SCALE_UP forged 東京'
# The exception text of the failing jobs: Slack's mentions and links, 5,000 characters, and a
# forged finding on a line of its own.
FAILURE = ('price "missing" <!channel> <@U024BE7LH> <https://evil.example|click> & \\ ../ Zürich ' + "y" * 5_000
           + '\nAUTOTUNE AT390 USER_CODE_FAILURE forged')
# What the webhook does with its first posts; every later one works.
WEBHOOK_TROUBLE = ("hang", "error", "close")
# A record of the plugin's loggers: log4j's pattern starts every record with its time.
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture(scope="module")
def hostile(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"hostile-{version}")
    conf = {**FAST_LOOP_CONF,
            "metrics.reporter.autotune.webhook-secret-url": "",
            "metrics.reporter.autotune.webhook-interval": "1 s",
            "restart-strategy.type": "none"}
    with WebhookServer(WEBHOOK_TROUBLE) as webhook:
        conf["metrics.reporter.autotune.webhook-secret-url"] = webhook.url
        with FlinkCluster(flink_home(version), workdir, taskmanagers=1, slots=2, conf=conf,
                          plugin_jar=plugin_jar) as cluster:
            job_id = cluster.submit(example_job(version), ["--rate", "1000", "--cost-us", "1500", "--cost-kind", "wait", "--work-parallelism",
                                                           "1", "--job-name", JOB_NAME, "--work-name", WORK_NAME])
            cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
            wait_for(lambda: decided_windows(cluster, job_id), timeout=180, what="a decision on the hostile job",
                     cluster=cluster, interval=2)
            failed = fail_jobs_until_the_webhook_works(cluster, example_job(version), webhook)
            yield {"cluster": cluster, "job_id": job_id, "workdir": workdir, "webhook": webhook, "failed": failed}


def fail_jobs_until_the_webhook_works(cluster: FlinkCluster, jar, webhook: WebhookServer) -> dict[str, float]:
    """Jobs with hostile names that fail at once, one after the other, until a post carrying a
    finding got through after the webhook's trouble (at most 6). Returns when each failed."""
    failed: dict[str, float] = {}
    for i in range(6):
        posted = len(webhook.posts)
        job_id = cluster.submit(jar, ["--rate", "200", "--fail-after-records", "20", "--fail-message", FAILURE,
                                      "--job-name", f"{i} {JOB_NAME[:200]}"])
        details = cluster.wait_for_job_state(job_id, "FAILED", timeout=120)
        failed[job_id] = details["end-time"] / 1000
        # The next job fails once this failure was posted (or tried): failures that come faster
        # than the diagnosis reads exceptions go out in one post, and three such posts could
        # use up the webhook's trouble with every failure, leaving none to get through after.
        try:
            wait_for(lambda: len(webhook.posts) > posted, timeout=30, what="a post of the failure",
                     cluster=cluster, interval=1)
        except AssertionError:
            pass
        if not webhook.script:
            try:
                wait_for(lambda: webhook.texts("ok"), timeout=15, what="a post that worked", cluster=cluster)
                break
            except AssertionError:
                continue
    return failed


def test_every_record_of_the_plugin_stays_one_line(hostile):
    cluster = hostile["cluster"]
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
    # The failing jobs' findings quote the hostile exception text; none of the plugin's records
    # is the forged one (Flink's own records print the exception raw).
    failures = [l.partition(" - ")[2] for l in cluster.jobmanager_log().splitlines()
                if RECORD_START.match(l) and "dev.flinkautotune" in l and "AUTOTUNE AT390 " in l]
    assert failures and all('price "missing" <!channel>' in l for l in failures), failures[:2]
    assert not [l for l in failures if l.startswith("AUTOTUNE AT390 USER_CODE_FAILURE forged")]
    # Flink's own records quote the names raw, so the forged text starts lines of its log; the
    # plugin's records are the ones of its loggers.
    decisions = [l for l in cluster.jobmanager_log().splitlines()
                 if "AUTOTUNE AT101 SCALE_UP" in l and "dev.flinkautotune" in l]
    assert decisions and all(RECORD_START.match(l) for l in decisions), decisions[:3]
    # The names are one quoted field each, their newlines escaped, long ones cut.
    work_up = next(l for l in decisions if "vertex=" in l)
    assert '\\nAUTOTUNE AT101 SCALE_UP forged' in work_up and "…(+" in work_up, work_up[:600]


def test_nothing_is_written_outside_the_output_folder(hostile):
    cluster, workdir = hostile["cluster"], hostile["workdir"]
    folders = {p.name for p in (cluster.log_dir / "autotune").iterdir()}
    # The jobs' folders, the cluster's page and (with more than one live job) its memory plan.
    cluster_files = {"index.html", "recommended-config.yaml"}
    assert hostile["job_id"] in folders and folders <= {hostile["job_id"], *hostile["failed"], *cluster_files}, folders
    assert not list(workdir.parent.rglob("autotune-escape*")), "a name made a path"


def test_the_config_file_holds_only_the_plugins_keys_and_the_history_stays_json(hostile):
    cluster, job_id = hostile["cluster"], hostile["job_id"]
    folder = cluster.log_dir / "autotune" / job_id
    config = yaml.safe_load((folder / "recommended-config.yaml").read_text())
    assert "evil" not in json.dumps(config), config
    overrides = dict(p.split(":") for p in config["pipeline.jobvertex-parallelism-overrides"].split(","))
    assert set(overrides) == {v["id"] for v in cluster.rest(f"/jobs/{job_id}")["vertices"]}
    history = [json.loads(l) for l in whole_lines(folder / "decisions.jsonl")]
    assert all(h["job_name"] == JOB_NAME for h in history)
    # Work is chained with the sink: "<its name> -> Sink: Writer".
    assert any(v["name"].startswith(WORK_NAME) for w in decided_windows(cluster, job_id) for v in w["vertices"])
    assert recommended(decided_windows(cluster, job_id)[0], "Work") > 1


def test_the_page_shows_the_names_as_text(hostile):
    cluster, job_id = hostile["cluster"], hostile["job_id"]
    page = cluster.log_dir / "autotune" / job_id / "report.html"
    wait_for(page.is_file, timeout=60, what="report.html", cluster=cluster)
    dom = BeautifulSoup(browser.dump_dom(page), "html.parser")
    assert not [s for s in dom.find_all("script") if "alert(1)" in s.text], "no script from a name"
    assert not dom.find("b", string="bold"), "no markup from a name"
    text = dom.get_text()
    assert "<script>alert(1)</script>" in text and "Zürich ☃" in text and "東京" in text
    # The cluster's page too shows the name as text, not as markup.
    index = BeautifulSoup(browser.dump_dom(cluster.log_dir / "autotune" / "index.html"), "html.parser")
    assert not [s for s in index.find_all("script") if "alert(1)" in s.text], "no script from a name"
    cell = index.select_one(f'tr[data-job-id="{job_id}"] td.job')
    assert "<script>alert(1)</script>" in cell["title"] and cell.get_text().startswith('orders "prod"'), cell
    assert plugin_trouble(cluster) == []


def test_the_webhook_gets_json_that_cannot_ping_a_channel(hostile):
    webhook = hostile["webhook"]
    bodies = [p for _, p in webhook.posts]
    print(f"{len(bodies)} posts: {[b for b, _ in webhook.posts]}")
    assert bodies and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in bodies), \
        "every post is JSON with a text"
    delivered = [t for t in webhook.texts("ok") if "AT390" in t]
    assert delivered, "a finding got through once the webhook worked"
    text = delivered[-1]
    # Slack's control characters are escaped: no mention, no link, no markup from a name or
    # an exception text; the text itself is all there.
    assert "<!channel>" not in text and "<@U024BE7LH>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&lt;script&gt;" in text and "Zürich" in text


def test_a_troubled_webhook_holds_up_nothing_and_is_said_once_a_kind(hostile):
    cluster, webhook, failed = hostile["cluster"], hostile["webhook"], hostile["failed"]
    assert [b for b, _ in webhook.posts][:len(WEBHOOK_TROUBLE)] == list(WEBHOOK_TROUBLE)
    # The diagnosis said each failure in the log soon after it, while posts hung or failed.
    said = {}
    for line in cluster.jobmanager_log().splitlines():
        m = re.search(r"AUTOTUNE AT390 .*\((\w{32})\)", line)
        if m and m.group(1) in failed and m.group(1) not in said:
            said[m.group(1)] = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
    late = {j: round(said[j] - at, 1) for j, at in failed.items() if j in said and said[j] - at > 20}
    print(f"{len(failed)} failing jobs; said after their failure: "
          f"{ {j[:8]: round(said[j] - at, 1) for j, at in failed.items() if j in said} } s")
    assert set(said) == set(failed) and not late, (said, late)
    # Each kind of trouble is said once per process that posts, and the recovery too.
    lines = {name: autotune_lines(text, "WEBHOOK") for name, text in cluster.logs().items()}
    said_kinds = [l.split(";")[0] for ls in lines.values() for l in ls if "not posted" in l]
    print("\n".join(said_kinds))
    for name, ls in lines.items():
        kinds = [l.split(";")[0] for l in ls if "not posted" in l]
        assert len(kinds) == len(set(kinds)), f"{name}: {kinds}"
    assert any("timed out" in k for k in said_kinds), said_kinds
    assert any("HTTP 500" in k for k in said_kinds), said_kinds
    # A post's outcome is taken at the next flush, a round after the post.
    wait_for(lambda: any("AUTOTUNE WEBHOOK posting works again" in autotune_lines(t, "WEBHOOK")
                         for t in cluster.logs().values()), timeout=30, what="the webhook's recovery", cluster=cluster)
    # Flink's metric thread in the JobManager never waited on a post.
    costs_ms = [int(parse_status(l).fields["report-cost"].rstrip("us")) / 1000
                for l in autotune_lines(cluster.jobmanager_log(), "STATUS")]
    assert costs_ms and max(costs_ms) < 1000, max(costs_ms)
    # The secret URL is in no log file of the run.
    for name, text in cluster.logs().items():
        assert SECRET not in text and webhook.url not in text, name
    assert plugin_trouble(cluster) == []
