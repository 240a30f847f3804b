"""TaskManager memory on real clusters: the recommendation the plugin writes is fed back to
Flink, which must start with it and keep the job running.

(a) an over-provisioned 4 GB TaskManager running a small heap-state job: the recommendation
    saves at least 30% of process memory, and the same job then runs without a restart;
(b) a TaskManager whose heap is too small for the job's state (the job dies of
    OutOfMemoryError in a loop): the recommended heap lets the same job run;
(c) a parallelism increase that needs more network buffers than the TaskManager has: the
    plan comes with the network memory, and the job starts with it.
"""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from conftest import FLINK_VERSIONS
from harness.autotune_log import autotune_lines, plugin_trouble, recommended_config, wait_for
from harness.flink import FlinkCluster

PLUGIN = {
    "metrics.reporter.autotune.factory.class": "dev.flinkautotune.AutotuneReporterFactory",
    "metrics.reporter.autotune.interval": "2 s",
    "metrics.reporter.autotune.stabilization": "10 s",
    "metrics.reporter.autotune.decision-window": "30 s",
    "metrics.reporter.autotune.decision-interval": "10 s",
    "metrics.reporter.autotune.poll-interval": "3 s",
}
# A job that keeps failing restarts (the out-of-memory loop of (b)) instead of ending.
RESTARTS = {
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "1000",
    "restart-strategy.fixed-delay.delay": "2 s",
}
MIB = 1 << 20


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([bkmg]?)", text.strip())
    assert m, text
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


def memory_keys(config: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in config.items() if k.startswith("taskmanager.memory.")}


def memory_plan(cluster: FlinkCluster, job_id: str, condition=lambda line: True):
    plans = [l for l in autotune_lines(cluster.jobmanager_log())
             if l.startswith("AUTOTUNE AT200 MEMORY_PLAN") and job_id in l]
    lines = [l for l in plans if condition(l)]
    written = memory_keys(recommended_config(cluster, job_id))
    if not lines or not written:
        return None
    # A plan is said first, then written: when it is the newest, the file must hold it.
    said = dict(re.findall(r"(taskmanager\.memory\.[\w.-]+)=(\S+)", lines[-1]))
    newest = lines[-1] == plans[-1]
    return lines[-1] if not newest or all(written[k] == v for k, v in said.items() if k in written) else None


def tm_process_memory(cluster: FlinkCluster) -> list[int]:
    return [tm["memoryConfiguration"]["totalProcessMemory"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]]


def restarts(cluster: FlinkCluster, job_id: str) -> int:
    [metric] = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(metric["value"]))


def out_of_memory(cluster: FlinkCluster) -> list[str]:
    return [f"{name}: {line}" for name, text in cluster.logs().items()
            for line in text.splitlines() if "OutOfMemoryError" in line]


def assert_keys_consistent(keys: dict[str, str]):
    """The totals are the sums of the pools, so no default or fraction can contradict them."""
    size = {k: parse_size(v) for k, v in keys.items()}
    pools = ["framework.heap.size", "task.heap.size", "framework.off-heap.size", "task.off-heap.size",
             "managed.size", "network.max"]
    flink = sum(size[f"taskmanager.memory.{p}"] for p in pools)
    assert size["taskmanager.memory.network.min"] == size["taskmanager.memory.network.max"]
    assert size["taskmanager.memory.flink.size"] == flink
    assert size["taskmanager.memory.process.size"] == (
        flink + size["taskmanager.memory.jvm-metaspace.size"] + size["taskmanager.memory.jvm-overhead.max"])


# ---- (a) over-provisioned -----------------------------------------------------------------

SMALL_STATE_JOB = ["--rate", "300", "--keys", "1000", "--state-bytes-per-key", "1024", "--work-parallelism", "1",
                   "--partitions", "2", "--job-name", "autotune-memory-small"]


@pytest.fixture(scope="module")
def over_provisioned(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[0]
    workdir = tmp_path_factory.mktemp(f"memory-over-{version}")
    with FlinkCluster(flink_home(version), workdir, taskmanagers=1, slots=2, conf=PLUGIN, plugin_jar=plugin_jar,
                      tm_process_size="4096m") as cluster:
        job_id = cluster.submit(example_job(version), SMALL_STATE_JOB)
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        plan = wait_for(lambda: memory_plan(cluster, job_id), timeout=240, what="a memory plan", cluster=cluster,
                        interval=3)
        yield cluster, job_id, plan, recommended_config(cluster, job_id), version, workdir


def test_an_over_provisioned_taskmanager_is_told_to_shrink_by_at_least_30_percent(over_provisioned):
    cluster, job_id, plan, config, _, _ = over_provisioned
    lines = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT20")]
    print("\n".join(lines))
    m = re.search(r"process=([\d.]+[gmk])->([\d.]+[gmk]) \(saves (\d+)%.* window=(\d+)s", plan)
    assert m, plan
    assert int(m.group(3)) >= 30, plan
    assert int(m.group(4)) >= 27, "planned on a window as long as the decision window"
    keys = memory_keys(config)
    assert parse_size(keys["taskmanager.memory.process.size"]) <= 0.7 * 4096 * MIB, keys
    assert_keys_consistent(keys)
    # Nothing used managed memory (heap state backend): it goes.
    assert keys["taskmanager.memory.managed.size"] == "0m"
    assert any(l.startswith("AUTOTUNE AT205 MANAGED_UNUSED") for l in lines)
    # Per-pool lines with current -> recommended and their evidence.
    for pool in ("heap", "managed", "network", "metaspace", "off-heap", "jvm-overhead"):
        assert any("AT201 MEMORY_POOL" in l and f"pool={pool} " in l for l in lines), pool
    # The TaskManager publishes its window; its own log has no pressure finding.
    [window] = cluster.rest(f"/taskmanagers/{cluster.rest('/taskmanagers')['taskmanagers'][0]['id']}"
                            "/metrics?get=Status.JVM.Memory.Heap.AutotunePools")
    assert '"heap_used_peak"' in window["value"], window
    for text in cluster.taskmanager_logs().values():
        assert not autotune_lines(text, "AT202"), "no heap pressure in a 4 GB TaskManager"
    assert plugin_trouble(cluster) == []


def test_flink_starts_with_the_recommendation_and_the_job_holds(over_provisioned, plugin_jar, flink_home, example_job):
    cluster, _, _, config, version, workdir = over_provisioned
    keys = memory_keys(config)
    cluster.stop()
    with FlinkCluster(flink_home(version), workdir / "again", taskmanagers=1, slots=2, conf={**PLUGIN, **keys},
                      plugin_jar=plugin_jar) as again:
        assert tm_process_memory(again) == [parse_size(keys["taskmanager.memory.process.size"])]
        job_id = again.submit(example_job(version), SMALL_STATE_JOB)
        again.wait_for_job_state(job_id, "RUNNING", timeout=120)
        # Twice the 30 s windows the plan was measured over; the job's state is whole after 4 s.
        time.sleep(60)
        assert again.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
        assert restarts(again, job_id) == 0
        assert out_of_memory(again) == []
        assert plugin_trouble(again) == []
        assert all(again.alive().values())


# ---- (b) under-provisioned heap -----------------------------------------------------------

# 2000 keys x 128 KiB = 250 MiB of heap state, in a TaskManager with 260 MiB of heap,
# filled over about 50 s: the TaskManager dies of OutOfMemoryError (Flink stops a process
# whose non-task threads hit it) after the plugin has watched the heap fill.
BIG_STATE_JOB = ["--rate", "40", "--keys", "2000", "--state-bytes-per-key", str(128 * 1024),
                 "--work-parallelism", "1", "--partitions", "1", "--job-name", "autotune-memory-oom"]
SMALL_HEAP = {
    "taskmanager.memory.managed.size": "0m",
    "taskmanager.memory.network.min": "64m",
    "taskmanager.memory.network.max": "64m",
}


@pytest.fixture(scope="module")
def under_provisioned(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"memory-oom-{version}")
    # The heap is over 90% full only for the last seconds before the OutOfMemoryError: the
    # JobManager's REST view of the TaskManager refreshes every second instead of 10, and
    # the coordinator plans every few seconds, so a plan falls into them.
    conf = {**PLUGIN, **RESTARTS, **SMALL_HEAP, "metrics.fetcher.update-interval": "1000",
            "metrics.reporter.autotune.decision-window": "15 s",
            "metrics.reporter.autotune.decision-interval": "2 s",
            "metrics.reporter.autotune.poll-interval": "1 s"}
    with FlinkCluster(flink_home(version), workdir, taskmanagers=1, slots=1, conf=conf, plugin_jar=plugin_jar,
                      tm_process_size="900m") as cluster:
        # Read while the TaskManager lives: the OutOfMemoryError below may take it down.
        memory = cluster.rest("/taskmanagers")["taskmanagers"][0]["memoryConfiguration"]
        job_id = cluster.submit(example_job(version), BIG_STATE_JOB)
        wait_for(lambda: out_of_memory(cluster), timeout=120, what="the job to run out of heap", cluster=cluster)
        plan = wait_for(lambda: memory_plan(cluster, job_id, lambda l: True) and
                        any(l.startswith("AUTOTUNE AT202") for l in autotune_lines(cluster.jobmanager_log())) and
                        memory_plan(cluster, job_id),
                        timeout=240, what="a memory plan with heap pressure", cluster=cluster, interval=3)
        yield cluster, job_id, plan, recommended_config(cluster, job_id), version, workdir, memory


def test_heap_pressure_is_found_where_it_happens_and_in_the_plan(under_provisioned):
    cluster, job_id, plan, config, _, _, current = under_provisioned
    jm = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith("AUTOTUNE AT20")]
    print("\n".join(jm))
    [tm_log] = cluster.taskmanager_logs().values()
    tm = autotune_lines(tm_log, "AT202")
    assert tm and "the JVM heap needs" in tm[0], tm
    pressure = [l for l in jm if l.startswith("AUTOTUNE AT202 HEAP_PRESSURE")]
    assert pressure and "set taskmanager.memory.task.heap.size:" in pressure[0]
    keys = memory_keys(config)
    assert_keys_consistent(keys)
    heap = parse_size(keys["taskmanager.memory.framework.heap.size"]) + parse_size(keys["taskmanager.memory.task.heap.size"])
    assert heap >= 1.5 * (current["frameworkHeap"] + current["taskHeap"]), (heap, current)
    # The process total may still shrink: metaspace and network were oversized by defaults.
    assert f"taskmanager.memory.task.heap.size={keys['taskmanager.memory.task.heap.size']}" in plan


def test_the_recommended_heap_lets_the_same_job_run(under_provisioned, plugin_jar, flink_home, example_job):
    cluster, _, _, config, version, workdir, _ = under_provisioned
    keys = memory_keys(config)
    cluster.stop()
    conf = {**PLUGIN, **RESTARTS, **SMALL_HEAP, **keys}
    with FlinkCluster(flink_home(version), workdir / "again", taskmanagers=1, slots=1, conf=conf,
                      plugin_jar=plugin_jar) as again:
        job_id = again.submit(example_job(version), BIG_STATE_JOB)
        again.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(60)  # every key's state is in place after a second; then it holds
        assert again.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
        assert restarts(again, job_id) == 0
        assert out_of_memory(again) == []
        assert plugin_trouble(again) == []


# ---- (c) network memory for a parallelism increase ----------------------------------------

RATE, COST_US = 1000, 1500  # Work needs 3 subtasks at 70% busy
# 3 buffers of 32k: the least Work at 1 runs with, not enough for any wider Work.
TIGHT_NETWORK = {"taskmanager.memory.network.min": "96k", "taskmanager.memory.network.max": "96k"}


def job_args(work_parallelism: int) -> list[str]:
    return ["--rate", str(RATE), "--cost-us", str(COST_US), "--cost-kind", "wait", "--work-parallelism", str(work_parallelism),
            "--partitions", "4", "--job-name", "autotune-memory-network"]


@pytest.fixture(scope="module")
def network_short(plugin_jar, flink_home, example_job, tmp_path_factory):
    version = FLINK_VERSIONS[-1]
    workdir = tmp_path_factory.mktemp(f"memory-network-{version}")
    conf = {**PLUGIN, **TIGHT_NETWORK}
    with FlinkCluster(flink_home(version), workdir, taskmanagers=1, slots=4, conf=conf, plugin_jar=plugin_jar) as cluster:
        job_id = cluster.submit(example_job(version), job_args(1))
        cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
        plan = wait_for(lambda: memory_plan(cluster, job_id, lambda l: True) and
                        any(l.startswith("AUTOTUNE AT204") for l in autotune_lines(cluster.jobmanager_log())) and
                        memory_plan(cluster, job_id),
                        timeout=240, what="a plan with the network memory for the new parallelism", cluster=cluster,
                        interval=3)
        yield cluster, job_id, plan, recommended_config(cluster, job_id), version, workdir


def test_a_wider_plan_comes_with_its_network_memory(network_short, example_job):
    cluster, job_id, _, config, version, _ = network_short
    lines = [l for l in autotune_lines(cluster.jobmanager_log()) if l.startswith(("AUTOTUNE AT1", "AUTOTUNE AT20"))]
    print("\n".join(lines))
    [finding] = [l for l in lines if l.startswith("AUTOTUNE AT204 NETWORK_FOR_PARALLELISM")][:1]
    assert "Insufficient number of network buffers" in finding
    keys = memory_keys(config)
    assert_keys_consistent(keys)
    assert parse_size(keys["taskmanager.memory.network.max"]) > 96 * 1024
    work = next(v for v in cluster.rest(f"/jobs/{job_id}")["vertices"] if v["name"].startswith("Work"))
    overrides = dict(p.split(":") for p in config["pipeline.jobvertex-parallelism-overrides"].split(","))
    wider = int(overrides[work["id"]])
    # 1000 records/s at 1.5 ms need 3 subtasks; a loaded 2-core machine may measure 2.
    assert wider >= 2, overrides
    # Without the network keys, the wider job cannot start on this TaskManager.
    urllib.request.urlopen(urllib.request.Request(f"{cluster.rest_url}/jobs/{job_id}?mode=cancel", method="PATCH"),
                           timeout=10).read()
    cluster.wait_for_job_state(job_id, "CANCELED", timeout=60)
    short = cluster.submit(example_job(version), job_args(wider))

    def failed_for_buffers():
        history = cluster.rest(f"/jobs/{short}/exceptions")
        text = str(history)
        return "Insufficient number of network buffers" in text
    wait_for(failed_for_buffers, timeout=120, what="the wider job to fail for network buffers", cluster=cluster,
             interval=2)


def test_the_wider_job_starts_with_the_recommended_network(network_short, plugin_jar, flink_home, example_job):
    cluster, _, _, config, version, workdir = network_short
    keys = memory_keys(config)
    work_p = max(int(p.split(":")[1]) for p in config["pipeline.jobvertex-parallelism-overrides"].split(","))
    cluster.stop()
    with FlinkCluster(flink_home(version), workdir / "again", taskmanagers=1, slots=4,
                      conf={**PLUGIN, **TIGHT_NETWORK, **keys}, plugin_jar=plugin_jar) as again:
        job_id = again.submit(example_job(version), job_args(work_p))
        again.wait_for_job_state(job_id, "RUNNING", timeout=120)
        time.sleep(20)
        assert again.rest(f"/jobs/{job_id}")["state"] == "RUNNING"
        assert restarts(again, job_id) == 0
        assert plugin_trouble(again) == []
