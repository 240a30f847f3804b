"""Issue 11, scenario (a): catch-up, then back down, with no runaway, on a real broker.

A KRaft broker on loopback; a topic pre-filled with several minutes of input plus a steady
producer; Flink 2.x with the adaptive scheduler and the plugin in `mode: apply`; the sample
job on Flink's Kafka source with Work (a known CPU cost per record) as the bottleneck. Every
15 s it prints the real backlog (the topic's end offsets minus the reader's positions) and
every vertex's parallelism; at the end, the figures docs/PERFORMANCE.md quotes: time to drain
against `catch-up`, the largest parallelism used, slot-minutes against the analytic optimum,
and the parallelism changes once the backlog was gone (oscillation).

The loop runs with shortened windows and scale-down delay (printed at the start), so a
scenario fits in about 25 minutes; the plugin's defaults stay what production needs.

    python3 scripts/kafka_catch_up.py [--minutes 25] [--rate 150] [--backlog-minutes 5] [--cost-us 4000]
                                      [--cost-kind cpu|wait|cores] [--brokers]

`--brokers` gives the plugin the broker (`kafka.bootstrap-servers`): the backlog and arrivals
then come from its end offsets instead of the reader's `pendingRecords`. `--cost-kind wait`
makes Work wait out its cost instead of burning it, so two scenarios can run side by side on
these 2 cores without changing each other's figures.

`--restore-s 90` makes Work take 90 s to restore its state at every start, so each rescale
stops the job that long; with a short catch-up, small steps and short windows (`--restore-s 90
--catch-up-minutes 0.5 --apply-max-step 2 --stabilization-s 10 --window-s 15 --rate 200
--backlog-minutes 0.25 --cost-kind wait --brokers`) the second step of the climb is refused: its downtime, and what
arrives in it, would drain the backlog later than staying (AT133).

Stops by itself: the producer is bounded in count, the loop in time.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.autotune_log import autotune_lines  # noqa: E402
from harness.flink import FlinkCluster, build_kafka_job, ensure_flink  # noqa: E402
from harness.kafka import KafkaBroker, kafka_connector_jars  # noqa: E402
from harness.kafka_job import reader_view, real_backlog  # noqa: E402

TOPIC = "events"
TARGET_UTILIZATION = 0.7  # the plugin's default


def loop_options(args) -> dict[str, str]:
    return {
        "mode": "apply",
        "stabilization": f"{args.stabilization_s} s",
        "decision-window": f"{args.window_s} s",
        "decision-interval": "15 s",
        "poll-interval": "3 s",
        "scale-down-delay": "3 min",
        "catch-up": f"{args.catch_up_minutes * 60:g} s",  # durations take whole numbers
        "apply-max-step": str(args.apply_max_step),
        "record": "true",
    }


def plugin_jar() -> Path:
    version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text()).group(1)
    jar = REPO / "build" / "libs" / f"flink-autotune-{version}.jar"
    if not jar.exists():
        sys.exit(f"{jar} is missing: run scripts/build.sh first")
    return jar


def analytic_optimum(rate: float, backlog: float, capacity: float, catch_up_s: float, run_s: float):
    """The fewest slot-seconds that drain the backlog within catch-up at the target
    utilization and then carry the arrivals: (slot-seconds, drain seconds, parallelisms)."""
    catching = math.ceil((rate + backlog / catch_up_s) / (capacity * TARGET_UTILIZATION))
    steady = max(1, math.ceil(rate / (capacity * TARGET_UTILIZATION)))
    drain = backlog / (catching * capacity - rate)
    return catching * min(drain, run_s) + steady * max(0.0, run_s - drain), drain, (catching, steady)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flink", default="2.3.0")
    parser.add_argument("--minutes", type=float, default=25, help="how long the job runs")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rate", type=int, default=150, help="records/s arriving")
    parser.add_argument("--backlog-minutes", type=float, default=5, help="minutes of input waiting at the start")
    parser.add_argument("--cost-us", type=int, default=4000, help="Work's CPU per record")
    parser.add_argument("--catch-up-minutes", type=float, default=5)
    parser.add_argument("--cost-kind", choices=["cpu", "wait", "cores"], default="cpu")
    parser.add_argument("--brokers", action="store_true", help="the plugin reads the broker's end offsets")
    parser.add_argument("--restore-s", type=int, default=0,
                        help="seconds Work takes to restore its state at each start (a rescale's downtime)")
    parser.add_argument("--apply-max-step", type=float, default=4)
    parser.add_argument("--stabilization-s", type=int, default=30)
    parser.add_argument("--window-s", type=int, default=45)
    args = parser.parse_args()

    home = ensure_flink(args.flink)
    connector = kafka_connector_jars(args.flink)
    options = loop_options(args)
    prefix = "metrics.reporter.autotune."
    conf = {prefix + "factory.class": "dev.flinkautotune.AutotuneReporterFactory", prefix + "interval": "5 s",
            **{prefix + k: v for k, v in options.items()}, "jobmanager.scheduler": "adaptive"}
    backlog = int(args.rate * args.backlog_minutes * 60)
    run_s = args.minutes * 60
    print(f"loop options (shortened for a scenario that fits in {args.minutes:.0f} min): "
          + ", ".join(f"{k}={v}" for k, v in options.items()))
    print(f"topic: {args.partitions} partitions, {backlog} records waiting, {args.rate}/s arriving; "
          f"Work: {args.cost_us} us a record ({1e6 / args.cost_us:.0f}/s per subtask)")

    with TemporaryDirectory(prefix="kafka-catch-up-") as tmp:
        work = Path(tmp)
        job_jar = build_kafka_job(home, work / "jobs", connector)
        with KafkaBroker(work / "kafka") as broker:
            broker.create_topic(TOPIC, args.partitions)
            broker.produce(TOPIC, backlog)
            broker.produce(TOPIC, int(args.rate * (run_s + 180)), rate=args.rate, wait=False)
            if args.brokers:
                conf[prefix + "kafka.bootstrap-servers"] = broker.bootstrap
            print(f"backlog from: {'the broker at ' + broker.bootstrap if args.brokers else 'pendingRecords'}")
            with FlinkCluster(home, work / "flink", taskmanagers=2, slots=4, conf=conf,
                              plugin_jar=plugin_jar(), lib_jars=connector) as cluster:
                job_id = cluster.submit(job_jar, ["--bootstrap", broker.bootstrap, "--topic", TOPIC,
                                                  "--group", "catch-up", "--cost-us", str(args.cost_us),
                                                  "--cost-kind", args.cost_kind,
                                                  *(["--restore-s", str(args.restore_s)] if args.restore_s else []),
                                                  "--job-name", "kafka-catch-up"])
                cluster.wait_for_job_state(job_id, "RUNNING", timeout=120 + args.restore_s)
                timeline = follow(cluster, broker, job_id, run_s, args.partitions)
                lines = [l for l in autotune_lines(cluster.jobmanager_log()) if job_id in l]
        report(args, timeline, lines, backlog, run_s)
    return 0


def follow(cluster: FlinkCluster, broker: KafkaBroker, job_id: str, run_s: float, partitions: int):
    """(seconds, real backlog, {vertex name: parallelism}) every 15 s until run_s."""
    start = time.monotonic()
    timeline = []
    print(f"{'s':>6} {'backlog':>8}  parallelism")
    while (elapsed := time.monotonic() - start) < run_s:
        job = cluster.rest(f"/jobs/{job_id}")
        vertices = {v["name"].split(" ->")[0][:24]: v["parallelism"] for v in job["vertices"]}
        source_id = job["vertices"][0]["id"]
        try:
            _, positions = reader_view(cluster, job_id, source_id)
        except Exception:  # a restarting job may not answer for a moment
            positions = []
        # Only a reading of every partition: while the job restarts, some report none.
        real = real_backlog(broker, TOPIC, positions) if len(positions) == partitions else None
        timeline.append((elapsed, real, vertices))
        shown = f"{real:8d}" if real is not None else f"{'-':>8}"
        print(f"{elapsed:6.0f} {shown}  " + ", ".join(f"{k}={v}" for k, v in vertices.items()), flush=True)
        time.sleep(15)
    return timeline


def report(args, timeline, lines, backlog: int, run_s: float) -> None:
    capacity = 1e6 / args.cost_us
    catch_up_s = args.catch_up_minutes * 60
    _, optimum_drain, (catching, steady) = analytic_optimum(args.rate, backlog, capacity, catch_up_s, run_s)
    drained_at = next((t for t, real, _ in timeline if real is not None and real <= args.rate * 10), None)
    slots = [(t, max(v.values())) for t, _, v in timeline]
    slot_seconds = sum((t2 - t1) * p for (t1, p), (t2, _) in zip(slots, slots[1:]))
    largest = max(p for _, p in slots)
    # After the drain: the scale-down (once, after its delay), then nothing should change.
    after = [(t, p) for t, p in slots if drained_at is not None and t >= drained_at]
    changes = [(t2, a, b) for (_, a), (t2, b) in zip(after, after[1:]) if a != b]
    first_down = next((t for t, a, b in changes if b < a), None)
    settled = [(t, a, b) for t, a, b in changes if first_down is not None and t > first_down]
    print("\nAUTOTUNE decisions on the job:")
    for line in lines:
        if re.match(r"AUTOTUNE AT1(0[1-4]|2\d|3[0-4]) ", line):
            print("  " + line[:260])
    print("\nfigures:")
    drained = (f"drained (under 10 s of arrivals) after {drained_at:.0f} s ({drained_at / catch_up_s:.2f}x catch-up)"
               if drained_at else "not drained within the run")
    print(f"  backlog {drained}; analytic optimum {optimum_drain:.0f} s at parallelism {catching} "
          f"({optimum_drain / catch_up_s:.2f}x)")
    print(f"  largest parallelism used: {largest} (optimum while catching up: {catching}, then {steady})")
    measured_over = slots[-1][0] if slots else 0.0
    optimum_same_span = analytic_optimum(args.rate, backlog, capacity, catch_up_s, measured_over)[0]
    print(f"  slot-minutes: {slot_seconds / 60:.1f} over {measured_over / 60:.1f} min "
          f"(analytic optimum {optimum_same_span / 60:.1f}, {slot_seconds / max(optimum_same_span, 1):.2f}x)")
    given_back = [m.groups() for l in lines if (m := re.search(r"AT134 .*from (\d+) to (\d+).*?; (\d+) would do", l))]
    print("  after an ineffective scale-up: " + (", ".join(f"{a}->{b} given back to {c}" for a, b, c in given_back)
                                                  or "none was ineffective"))
    print("  after the drain: " + (", ".join(f"{a}->{b} at {t:.0f} s" for t, a, b in changes) or "no change"))
    if first_down is not None:
        print(f"  changes after the scale-down: {len(settled)} over {(measured_over - first_down) / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
