"""A real Kafka broker on 127.0.0.1 for end-to-end tests, and Flink's Kafka connector.

The broker is Apache Kafka's own Java program from Maven Central (`kafka_2.13` 4.x), run as a
single KRaft node (broker and controller in one process) with its storage in the test's
workdir. Jars are fetched once with Maven into the cache, like the Flink distributions.
Producing uses Kafka's own `ProducerPerformance` tool, bounded in records and rate.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness.flink import _free_ports, _tail, default_cache_dir

KAFKA_VERSION = "4.1.1"

# Flink's Kafka connector per Flink line (Maven Central coordinates' version).
CONNECTORS = {
    "1.18": "3.2.0-1.18",
    "1.19": "3.3.0-1.19",
    "1.20": "3.3.0-1.20",
    "2.0": "4.0.1-2.0",
    "2.1": "5.0.0-2.1",
    "2.2": "5.0.0-2.2",
    "2.3": "5.0.0-2.2",
}
# What the connector needs beside Flink on the classpath (the rest of its dependencies,
# logging and JSON, Flink already has or the connector does not use at run time).
_CONNECTOR_RUNTIME = ("flink-connector-kafka-", "kafka-clients-", "lz4-java-", "snappy-java-", "zstd-jni-",
                      "guava-", "failureaccess-")


def _maven_fetch(dependencies: list[tuple[str, str, str]], dest: Path, what: str) -> Path:
    """Copy `dependencies` (group, artifact, version) and what they need into `dest` (once)."""
    if dest.is_dir() and any(dest.glob("*.jar")):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest.parent))
    try:
        deps = "".join(f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>"
                       "</dependency>" for g, a, v in dependencies)
        (tmp / "pom.xml").write_text(
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>dev.flinkautotune</groupId><artifactId>fetch</artifactId><version>1</version>"
            f"<packaging>pom</packaging><dependencies>{deps}</dependencies></project>")
        proc = subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
                               f"-DoutputDirectory={tmp / 'libs'}"], cwd=tmp, capture_output=True, text=True,
                              timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(f"fetching {what} with Maven failed:\n{_tail(proc.stdout + proc.stderr)}")
        try:
            os.rename(tmp / "libs", dest)
        except OSError:
            if not any(dest.glob("*.jar")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_kafka(version: str = KAFKA_VERSION) -> Path:
    """The broker's and its tools' jars, fetched from Maven Central on first use."""
    return _maven_fetch([("org.apache.kafka", "kafka_2.13", version), ("org.apache.kafka", "kafka-tools", version)],
                        default_cache_dir() / "kafka" / version / "libs", f"Kafka {version}")


def kafka_connector_jars(flink_version: str) -> list[Path]:
    """Flink's Kafka connector for this Flink release and what it needs at run time."""
    line = ".".join(flink_version.split(".")[:2])
    connector = CONNECTORS.get(line)
    if connector is None:
        raise RuntimeError(f"no Kafka connector known for Flink {flink_version}")
    libs = _maven_fetch([("org.apache.flink", "flink-connector-kafka", connector)],
                        default_cache_dir() / "kafka-connector" / connector / "libs",
                        f"flink-connector-kafka {connector}")
    return sorted(j for j in libs.glob("*.jar") if j.name.startswith(_CONNECTOR_RUNTIME))


class KafkaBroker:
    """One KRaft node (broker + controller) on loopback, its data and log in `workdir`."""

    def __init__(self, workdir: Path, version: str = KAFKA_VERSION, sasl_users: dict[str, str] | None = None):
        """`sasl_users` (user -> password): a second client listener, SASL_PLAINTEXT with PLAIN,
        that takes them (`sasl_bootstrap`); the plain one stays for the tools."""
        self.libs = ensure_kafka(version)
        self.workdir = Path(workdir).resolve()
        self.sasl_users = sasl_users or {}
        self.sasl_port: int | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._producers: list[subprocess.Popen] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def _java(self, main: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["java", "-Xmx256m", "-cp", f"{self.libs}/*", main, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.workdir)
        if proc.returncode != 0:
            raise RuntimeError(f"{main} {' '.join(args)} failed:\n{_tail(proc.stdout + proc.stderr)}")
        return proc

    def __enter__(self) -> "KafkaBroker":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, controller, self.sasl_port = _free_ports(3)
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        sasl = []
        if self.sasl_users:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
            sasl = ["sasl.enabled.mechanisms=PLAIN",
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"]
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners={','.join(listeners)}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            *sasl,
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
        ]) + "\n")
        if not (data / "meta.properties").is_file():
            cluster_id = self._java("kafka.tools.StorageTool", "random-uuid").stdout.strip().splitlines()[-1]
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props))
        log = (self.workdir / "broker.log").open("ab")
        self.proc = subprocess.Popen(["java", "-Xmx512m", "-cp", f"{self.libs}/*", "kafka.Kafka", str(props)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the Kafka broker did not listen on {self.bootstrap} within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        for producer in self._producers:
            _kill_group(producer)
        self._producers.clear()
        if self.proc is not None:
            _kill_group(self.proc, graceful=True)
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "broker.log"
        return _tail(path.read_text(errors="replace"), lines) if path.is_file() else "(no broker log)"

    def create_topic(self, topic: str, partitions: int) -> None:
        self._java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", self.bootstrap, "--create",
                   "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1")

    def produce(self, topic: str, records: int, rate: int = -1, record_size: int = 100,
                wait: bool = True) -> subprocess.Popen | None:
        """`records` records at `rate` per second (-1: as fast as it goes). Bounded by its count:
        it stops by itself; with wait=False it runs in the background until then (or stop())."""
        cmd = ["java", "-Xmx256m", "-cp", f"{self.libs}/*", "org.apache.kafka.tools.ProducerPerformance",
               "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
               "--throughput", str(rate), "--producer-props", f"bootstrap.servers={self.bootstrap}",
               "linger.ms=5"]
        out = (self.workdir / f"producer-{topic}-{len(self._producers)}.log").open("ab")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        if not wait:
            self._producers.append(proc)
            return proc
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"producing {records} records to {topic} failed; see {out.name}")
        return None

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition's end offset (the next offset to be written)."""
        out = self._java("org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server", self.bootstrap,
                         "--topic", topic, "--time", "-1").stdout
        ends = {}
        for line in out.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] == topic and parts[1].isdigit() and parts[2].isdigit():
                ends[int(parts[1])] = int(parts[2])
        return ends

    def lag(self, group: str) -> int:
        """Records the consumer group has yet to read, over all partitions (its committed offsets)."""
        out = self._java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server",
                         self.bootstrap, "--describe", "--group", group).stdout
        total = 0
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[0] == group and fields[5].isdigit():
                total += int(fields[5])
        return total


def _kill_group(proc: subprocess.Popen, graceful: bool = False) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
