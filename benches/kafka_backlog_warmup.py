"""What a Kafka reader's `pendingRecords` says against the real backlog, poll by poll.

A KRaft broker on loopback, an 8-partition topic pre-filled with 30,000 records and fed 300/s,
Flink 2.3 with the sample job on Flink's Kafka source and Work at 4 ms a record (the job is
back-pressured). Every few seconds it prints the real backlog (end offsets minus the reader's
positions), the reader's `pendingRecords`, and how many partitions it has not read from yet
(`currentOffset` -1): the plugin's AT127 rests on that last column.

    python3 benches/kafka_backlog_warmup.py [--seconds 150] [--flink 2.3.0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.flink import FlinkCluster, build_kafka_job, ensure_flink  # noqa: E402
from harness.kafka import KafkaBroker, kafka_connector_jars  # noqa: E402
from harness.kafka_job import reader_view, real_backlog  # noqa: E402

TOPIC, PARTITIONS, BACKLOG, RATE = "events", 8, 30_000, 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--flink", default="2.3.0")
    args = parser.parse_args()
    home = ensure_flink(args.flink)
    connector = kafka_connector_jars(args.flink)
    with TemporaryDirectory(prefix="kafka-warmup-") as tmp:
        work = Path(tmp)
        job_jar = build_kafka_job(home, work / "jobs", connector)
        with KafkaBroker(work / "kafka") as broker:
            broker.create_topic(TOPIC, PARTITIONS)
            broker.produce(TOPIC, BACKLOG)
            broker.produce(TOPIC, int(RATE * (args.seconds + 120)), rate=RATE, wait=False)
            conf = {"metrics.fetcher.update-interval": "2000"}
            with FlinkCluster(home, work / "flink", taskmanagers=1, slots=2, conf=conf, lib_jars=connector) as cluster:
                job_id = cluster.submit(job_jar, ["--bootstrap", broker.bootstrap, "--topic", TOPIC,
                                                  "--group", "warmup", "--cost-us", "4000", "--job-name", "warmup"])
                cluster.wait_for_job_state(job_id, "RUNNING", timeout=120)
                source_id = cluster.rest(f"/jobs/{job_id}")["vertices"][0]["id"]
                print("seconds  real backlog  pendingRecords  pendingRecords/real  unread partitions")
                start = time.time()
                while time.time() - start < args.seconds:
                    pending, positions = reader_view(cluster, job_id, source_id)
                    real = real_backlog(broker, TOPIC, positions)
                    unread = sum(1 for p in positions if p < 0)
                    ratio = f"{pending / real:.2f}" if pending is not None and real > 0 else "n/a"
                    shown = f"{pending:.0f}" if pending is not None else "none"
                    print(f"{time.time() - start:7.0f}  {real:12d}  {shown:>14}  {ratio:>19}  {unread:>17}", flush=True)
                    time.sleep(5)


if __name__ == "__main__":
    main()
