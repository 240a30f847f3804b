"""Real standalone Flink clusters on 127.0.0.1 for end-to-end tests.

Each cluster lives entirely inside its own workdir (hard-linked copy of the distribution, its
own conf, logs, pid files and free ports), so several clusters or test runs never collide and
the cached distribution is never modified.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml

# What a REST call to a busy, restarting or failing JobManager can raise: "not yet", not a
# failure (a connection cut mid-answer is an http.client.IncompleteRead, not an OSError).
REST_TRANSIENT = (urllib.error.URLError, OSError, ValueError, http.client.HTTPException)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "examples" / "queue-job" / "build.sh"

# Terminal job states: waiting for anything else after one of these is pointless.
_TERMINAL = {"FAILED", "CANCELED", "FINISHED", "SUSPENDED"}


def default_cache_dir() -> Path:
    env = os.environ.get("FLINK_AUTOTUNE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "flink-autotune"


def _is_flink_home(path: Path) -> bool:
    return (path / "bin" / "jobmanager.sh").is_file() and any((path / "lib").glob("flink-dist*.jar"))


def ensure_flink(version: str, cache_dir: Path | None = None) -> Path:
    """Return FLINK_HOME for `version`, pip-installing the PyFlink distribution if needed."""
    root = Path(cache_dir or default_cache_dir()) / "flink"
    home = root / version / "pyflink"
    if _is_flink_home(home):
        return home
    root.mkdir(parents=True, exist_ok=True)
    # Install into a private temp dir and rename it into place: the rename is atomic, so a
    # concurrent run sees either nothing or a complete install.
    tmp = Path(tempfile.mkdtemp(prefix=f".install-{version}-", dir=root))
    try:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
               "--target", str(tmp), f"apache-flink=={version}", f"apache-flink-libraries=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"pip install of Flink {version} failed:\n{_tail(proc.stdout + proc.stderr)}")
        if not _is_flink_home(tmp / "pyflink"):
            raise RuntimeError(f"pip install of Flink {version} did not produce a FLINK_HOME in {tmp}/pyflink")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(tmp, root / version)
        except OSError:
            # Lost the race to another installer (target exists and is not empty); use theirs.
            if not _is_flink_home(home):
                raise RuntimeError(f"{root / version} exists but holds no usable Flink; remove it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return home


def flink_version(flink_home: Path) -> str:
    """Version from lib/flink-dist-<version>.jar (the one file every distribution has)."""
    for jar in Path(flink_home, "lib").glob("flink-dist*.jar"):
        m = re.match(r"flink-dist(?:_[\d.]+)?-(.+)\.jar$", jar.name)
        if m:
            return m.group(1)
    raise RuntimeError(f"no flink-dist jar in {flink_home}/lib")


def build_example_job(flink_home: Path, out_dir: Path) -> Path:
    """Build examples/queue-job against `flink_home`; reuses the jar while sources are unchanged."""
    out_dir = Path(out_dir)
    jar = out_dir / f"queue-job-{flink_version(flink_home)}.jar"
    sources = [BUILD_SCRIPT, *BUILD_SCRIPT.parent.joinpath("src").rglob("*.java")]
    if jar.is_file() and jar.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), str(flink_home), str(jar)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the queue job failed:\n{_tail(proc.stdout + proc.stderr)}")
    return jar


KAFKA_BUILD_SCRIPT = REPO_ROOT / "examples" / "kafka-job" / "build.sh"


def build_kafka_job(flink_home: Path, out_dir: Path, connector_jars: list[Path]) -> Path:
    """Build examples/kafka-job against `flink_home` and the Kafka connector's jars."""
    out_dir = Path(out_dir)
    jar = out_dir / f"kafka-job-{flink_version(flink_home)}.jar"
    sources = [KAFKA_BUILD_SCRIPT, *REPO_ROOT.joinpath("examples").rglob("*.java")]
    if jar.is_file() and jar.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return jar
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", str(KAFKA_BUILD_SCRIPT), str(flink_home), str(jar), *map(str, connector_jars)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the Kafka job failed:\n{_tail(proc.stdout + proc.stderr)}")
    return jar


def _flatten(tree, prefix: str = "") -> dict:
    """Nested config.yaml -> flat dotted keys (Flink treats both forms the same)."""
    flat = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _flat_value(value) -> str:
    """Render a value for the legacy flink-conf.yaml parser, which takes the rest of the line verbatim."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_flat_value(v) for v in value)  # legacy list syntax
    return str(value)


def _free_ports(n: int) -> list[int]:
    # Hold all sockets open while picking so the ports differ from each other.
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


# What Flink 1.18+ sets in env.java.opts.all to run on Java 17 (conf/flink-conf.yaml).
JAVA_17_MODULE_FLAGS = " ".join(
    [f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/sun.net.util", "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api",
        "jdk.compiler/com.sun.tools.javac.file", "jdk.compiler/com.sun.tools.javac.parser",
        "jdk.compiler/com.sun.tools.javac.tree", "jdk.compiler/com.sun.tools.javac.util",
        "java.security.jgss/sun.security.krb5")]
    + [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect", "java.text",
        "java.time", "java.util", "java.util.concurrent", "java.util.concurrent.atomic",
        "java.util.concurrent.locks")])


class FlinkCluster:
    """A standalone session cluster (1 JobManager + N TaskManagers) running from `workdir`."""

    def __init__(self, flink_home: Path, workdir: Path, *, taskmanagers: int = 2, slots: int = 2,
                 conf_format: str = "auto", conf: dict[str, str] | None = None,
                 plugin_jar: Path | None = None, tm_process_size: str = "1024m",
                 jm_process_size: str = "1024m", lib_jars: list[Path] | None = None):
        self.dist = Path(flink_home).resolve()
        self.workdir = Path(workdir).resolve()
        self.version = flink_version(self.dist)
        if conf_format == "auto":
            conf_format = "flink-conf" if self.version.startswith("1.") else "config"
        if conf_format not in ("flink-conf", "config"):
            raise ValueError(f"conf_format must be auto, flink-conf or config, not {conf_format!r}")
        if conf_format == "flink-conf" and not self.version.startswith("1."):
            # Flink 2.x only reads conf/config.yaml; a flink-conf.yaml would be silently ignored.
            raise ValueError(f"Flink {self.version} does not support flink-conf.yaml; use conf_format='config'")
        self.conf_format = conf_format
        self.taskmanagers = taskmanagers
        self.slots = slots
        self.extra_conf = dict(conf or {})
        self.plugin_jar = Path(plugin_jar) if plugin_jar else None
        # Jars added to the cluster's lib/ (a connector the job uses, say).
        self.lib_jars = [Path(j) for j in lib_jars or []]
        self.tm_process_size = tm_process_size
        self.jm_process_size = jm_process_size
        self.home = self.workdir / "flink"
        self.conf_dir = self.home / "conf"
        self.log_dir = self.workdir / "log"
        self.pid_dir = self.workdir / "pid"
        self.rest_port: int | None = None
        self.rpc_port: int | None = None
        self.config: dict = {}
        # Every pid ever seen, so stop() can still kill processes the scripts forgot about.
        self._known_pids: dict[str, int] = {}
        # Jars uploaded to this cluster's REST API: their ids.
        self._jar_ids: dict[Path, str] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "FlinkCluster":
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
        if any(self.alive().values()):
            raise RuntimeError(f"a cluster from {self.workdir} is still running")
        for d in (self.home, self.log_dir, self.pid_dir):
            shutil.rmtree(d, ignore_errors=True)
        # Hard links make the copy cheap; files are only ever replaced, never edited in place.
        self._run(["cp", "-al", str(self.dist), str(self.home)], timeout=120)
        self.log_dir.mkdir()
        self.pid_dir.mkdir()
        self._write_config()
        if self.plugin_jar:
            plugin_dir = self.home / "plugins" / "autotune"
            plugin_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.plugin_jar, plugin_dir / self.plugin_jar.name)
        for jar in self.lib_jars:
            shutil.copy(jar, self.home / "lib" / jar.name)

        self._script("jobmanager.sh", "start")
        for _ in range(self.taskmanagers):
            self._script("taskmanager.sh", "start")
        self._known_pids.update(self.pids())
        self._wait_for_taskmanagers(timeout=120)

    def stop(self) -> None:
        """Stop via the scripts, then SIGKILL leftovers. Safe to call repeatedly."""
        self._known_pids.update(self.pids())
        if not any(self.alive().values()):
            return
        if self.home.is_dir():
            # stop-all kills every instance in the pid file; each may take up to 10 s.
            for script in ("taskmanager.sh", "jobmanager.sh"):
                try:
                    self._script(script, "stop-all", timeout=30 + 12 * max(1, self.taskmanagers), check=False)
                except subprocess.TimeoutExpired:
                    pass
        if not self._wait_dead(timeout=20):
            for pid in self._live_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not self._wait_dead(timeout=10):
                raise RuntimeError(f"Flink processes survived SIGKILL: {self._live_pids()}")

    # ---- config ----------------------------------------------------------------------------

    def _write_config(self) -> None:
        base: dict = {}
        default_yaml = self.dist / "conf" / "config.yaml"
        legacy = self.dist / "conf" / "flink-conf.yaml"
        if default_yaml.is_file():
            # Keeps env.java.opts.all with the --add-opens Flink needs on Java 17.
            base = _flatten(yaml.safe_load(default_yaml.read_text()))
        elif legacy.is_file():
            for line in legacy.read_text().splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.lstrip().startswith("#"):
                    base[key.strip()] = value.strip()
        base.pop("rest.bind-port", None)  # would override rest.port for the server side
        if not any("--add-opens" in str(v) for k, v in base.items() if k.startswith("env.java.opts")):
            # Releases before 1.18 do not ship the module flags Java 17 needs (their JDKs were
            # 8 and 11; this machine has 17): give them the ones 1.18 ships.
            base["env.java.opts"] = JAVA_17_MODULE_FLAGS

        self.rpc_port, self.rest_port = _free_ports(2)
        loopback = "127.0.0.1"
        base.update({
            "jobmanager.rpc.address": loopback,
            "jobmanager.bind-host": loopback,
            "taskmanager.bind-host": loopback,
            "taskmanager.host": loopback,
            "rest.address": loopback,
            "rest.bind-address": loopback,
            "jobmanager.rpc.port": str(self.rpc_port),
            "rest.port": str(self.rest_port),
            "taskmanager.numberOfTaskSlots": str(self.slots),
            "taskmanager.memory.process.size": self.tm_process_size,
            "jobmanager.memory.process.size": self.jm_process_size,
            "env.pid.dir": str(self.pid_dir),
            "env.log.dir": str(self.log_dir),
        })
        base.update(self.extra_conf)
        self.config = base

        # Unlink first: both names may be hard links into the cached distribution.
        for name in ("config.yaml", "flink-conf.yaml"):
            (self.conf_dir / name).unlink(missing_ok=True)
        if self.conf_format == "flink-conf":
            text = "".join(f"{k}: {_flat_value(v)}\n" for k, v in base.items())
            (self.conf_dir / "flink-conf.yaml").write_text(text)
        else:
            (self.conf_dir / "config.yaml").write_text(
                yaml.safe_dump(base, default_flow_style=False, sort_keys=False, width=1 << 20))

    # ---- processes -------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # Drop inherited FLINK_* settings (FLINK_HOME, FLINK_CONF_DIR, _FLINK_HOME_DETERMINED...)
        # that would point the scripts at another installation.
        env = {k: v for k, v in os.environ.items() if not k.lstrip("_").startswith("FLINK_")}
        env.update(FLINK_CONF_DIR=str(self.conf_dir), FLINK_LOG_DIR=str(self.log_dir),
                   FLINK_PID_DIR=str(self.pid_dir))
        return env

    def _run(self, cmd: list[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self._env(),
                              cwd=self.workdir, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                               f"{_tail(proc.stdout + proc.stderr)}\n{self.log_tail()}")
        return proc

    def _script(self, name: str, *args: str, timeout: float = 120, check: bool = True):
        return self._run(["bash", str(self.home / "bin" / name), *args], timeout=timeout, check=check)

    def pids(self) -> dict[str, int]:
        """{"standalonesession-0": pid, "taskexecutor-0": pid, ...} from the pid files."""
        result = {}
        for pid_file in sorted(self.pid_dir.glob("flink-*.pid")):
            daemon = pid_file.stem.rsplit("-", 1)[-1]
            try:
                lines = pid_file.read_text().split()
            except FileNotFoundError:  # removed by a concurrent stop
                continue
            for i, pid in enumerate(lines):
                if pid.isdigit():
                    result[f"{daemon}-{i}"] = int(pid)
        return result

    def _is_ours(self, pid: int) -> bool:
        # The pid must still be a live process started from this workdir (pids get reused).
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        # Trailing slash: /tmp/a must not match a process of /tmp/ab.
        return state not in ("Z", "X") and f"{self.workdir}/" in cmdline

    def alive(self) -> dict[str, bool]:
        every = {**self._known_pids, **self.pids()}
        return {name: self._is_ours(pid) for name, pid in every.items()}

    def _live_pids(self) -> list[int]:
        every = {**self._known_pids, **self.pids()}
        return sorted({pid for pid in every.values() if self._is_ours(pid)})

    def _wait_dead(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._live_pids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    # ---- REST ------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        if self.rest_port is None:
            raise RuntimeError("cluster not started")
        return f"http://127.0.0.1:{self.rest_port}"

    def rest(self, path: str, timeout: float = 10):
        url = self.rest_url + "/" + path.lstrip("/")
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.load(resp)

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json", timeout: float = 60) -> dict:
        """A REST call with a method and a body (the JSON answer, {} when empty)."""
        request = urllib.request.Request(self.rest_url + path, data=body, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def upload_jar(self, jar: Path) -> str:
        """The jar uploaded once (multipart, as Flink's web UI does); its id for /jars/<id>/run."""
        jar = Path(jar)
        if jar not in self._jar_ids:
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{jar.name}\"\r\n"
                    "Content-Type: application/x-java-archive\r\n\r\n").encode() + jar.read_bytes() \
                + f"\r\n--{boundary}--\r\n".encode()
            answer = self.call("POST", "/jars/upload", body, f"multipart/form-data; boundary={boundary}")
            self._jar_ids[jar] = Path(answer["filename"]).name
        return self._jar_ids[jar]

    def _wait_for_taskmanagers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen, last_error = 0, None
        while time.monotonic() < deadline:
            try:
                seen = len(self.rest("/taskmanagers", timeout=5).get("taskmanagers", []))
                if seen >= self.taskmanagers:
                    return
            except REST_TRANSIENT as e:
                last_error = e
            dead = [name for name, ok in self.alive().items() if not ok]
            if dead:
                # Look twice: a loaded machine once reported a starting TaskManager as gone.
                time.sleep(2)
                dead = [name for name, ok in self.alive().items() if not ok]
            if dead:
                raise RuntimeError(f"Flink process(es) {dead} died during startup\n{self.log_tail()}")
            time.sleep(0.5)
        raise TimeoutError(f"{seen}/{self.taskmanagers} TaskManagers registered after {timeout} s "
                           f"(last REST error: {last_error})\n{self.log_tail()}")

    def kill_taskmanager(self, name: str) -> None:
        """SIGKILL one TaskManager (`taskexecutor-0`, ...), as a machine that dies would."""
        pid = self.pids()[name]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self._is_ours(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart_jobmanager(self, taskmanagers: int, timeout: float = 120) -> None:
        """Stops the JobManager and starts it again, as an operator would. A session cluster
        without HA loses its jobs; returns once `taskmanagers` TaskManagers registered again."""
        old = self.pids().get("standalonesession-0")
        self._script("jobmanager.sh", "stop", timeout=60, check=False)
        deadline = time.monotonic() + 30
        while old and self._is_ours(old) and time.monotonic() < deadline:
            time.sleep(0.2)
        if old and self._is_ours(old):
            os.kill(old, signal.SIGKILL)
            # It holds the ports until it is gone; the new one could not bind them.
            deadline = time.monotonic() + 10
            while self._is_ours(old) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._is_ours(old):
                raise RuntimeError(f"the old JobManager (pid {old}) survived SIGKILL")
        self._script("jobmanager.sh", "start")
        self._known_pids.update(self.pids())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if len(self.rest("/taskmanagers", timeout=5).get("taskmanagers", [])) >= taskmanagers:
                    return
            except REST_TRANSIENT:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the restarted JobManager has fewer than {taskmanagers} TaskManagers\n{self.log_tail()}")

    # ---- jobs ------------------------------------------------------------------------------

    def submit(self, jar: Path, args: list[str], detached: bool = True, timeout: float = 180,
               conf: dict[str, str] | None = None, via: str = "rest") -> str:
        """Submits the jar with the job's arguments; the job id.

        Over the REST API (`/jars/<id>/run`: the job's main runs in the JobManager, no client
        JVM to start), unless `via="cli"`, the job runs attached, or `conf` goes to the job as
        `-D` options: then `flink run`, the client building the job graph."""
        if via == "rest" and detached and not conf:
            body = json.dumps({"programArgsList": [str(a) for a in args]}).encode()
            jar_id = self.upload_jar(jar)
            posted_ms = time.time() * 1000
            try:
                return self.call("POST", f"/jars/{jar_id}/run", body, timeout=timeout)["jobid"]
            except urllib.error.HTTPError as e:
                raise RuntimeError(f"the REST API refused the job ({e.code}):\n"
                                   f"{_tail(e.read().decode(errors='replace'))}\n{self.log_tail()}") from e
            except REST_TRANSIENT:
                # The answer was lost, not the job: a JobManager short of direct memory (the
                # job's own enumerator took it) cuts its answer after accepting the job.
                return self._job_started_since(posted_ms)
        cmd = ["bash", str(self.home / "bin" / "flink"), "run"]
        if detached:
            cmd.append("-d")
        for key, value in (conf or {}).items():
            cmd.append(f"-D{key}={value}")
        cmd += ["-m", f"127.0.0.1:{self.rest_port}", str(jar), *map(str, args)]
        proc = self._run(cmd, timeout=timeout)
        m = re.search(r"JobID\s+([0-9a-f]{32})", proc.stdout + proc.stderr)
        if not m:
            raise RuntimeError(f"no JobID in `flink run` output:\n{_tail(proc.stdout + proc.stderr)}")
        return m.group(1)

    def _job_started_since(self, since_ms: float, timeout: float = 30) -> str:
        """The one job that started since `since_ms` (this host's clock), once it is listed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                jobs = self.rest("/jobs/overview").get("jobs", [])
            except REST_TRANSIENT:
                jobs = []
            new = [j["jid"] for j in jobs if j.get("start-time", 0) >= since_ms - 1000]
            if len(new) == 1:
                return new[0]
            if len(new) > 1:
                raise RuntimeError(f"more than one job started during one submission: {new}")
            time.sleep(0.5)
        raise RuntimeError(f"the submission's answer was lost and no new job is listed\n{self.log_tail()}")

    def wait_for_job_state(self, job_id: str, state: str = "RUNNING", timeout: float = 120) -> dict:
        """Wait until the job is in `state`; for RUNNING, also every subtask of every vertex."""
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            try:
                job = self.rest(f"/jobs/{job_id}")
            except REST_TRANSIENT:
                time.sleep(0.5)
                continue
            current = job.get("state")
            if current == state:
                if state != "RUNNING" or all(
                        v.get("tasks", {}).get("RUNNING", 0) == v.get("parallelism")
                        for v in job.get("vertices", [])):
                    return job
            elif current in _TERMINAL:
                raise RuntimeError(f"job {job_id} is {current}, expected {state}\n"
                                   f"{self._job_exceptions(job_id)}\n{self.log_tail()}")
            time.sleep(0.5)
        summary = {v.get("name"): v.get("tasks") for v in job.get("vertices", [])}
        raise TimeoutError(f"job {job_id} not {state} after {timeout} s (state {job.get('state')}, "
                           f"tasks {summary})\n{self.log_tail()}")

    def _job_exceptions(self, job_id: str) -> str:
        try:
            return json.dumps(self.rest(f"/jobs/{job_id}/exceptions"), indent=1)[:8000]
        except Exception as e:  # best effort: only used to enrich an error message
            return f"(no exceptions: {e})"

    # ---- logs ------------------------------------------------------------------------------

    def log_files(self) -> list[Path]:
        return sorted([*self.log_dir.glob("*.log"), *self.log_dir.glob("*.out")])

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in self.log_files()}

    def jobmanager_log(self) -> str:
        """The running JobManager's log (a restarted one's earlier logs are `.log.1`, ...)."""
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*standalonesession*.log"))

    def taskmanager_logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*taskexecutor*.log"))}

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for p in self.log_files():
            text = _tail(p.read_text(errors="replace"), lines)
            if text.strip():
                parts.append(f"----- {p.name} (last {lines} lines) -----\n{text}")
        return "\n".join(parts) or f"(no logs in {self.log_dir})"
