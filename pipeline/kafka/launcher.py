"""A real single-node Apache Kafka 4.x (KRaft broker+controller on 127.0.0.1) from Maven Central jars.

Why not a container or a tarball: a developer laptop or a CI machine has Java and Maven far more often than a Docker
daemon, and the jars are resolved once into a cache. The broker runs detached (own session, pid file) so it
survives the command that started it; ``down()`` stops it. Everything it writes lives under one directory:
``server.properties``, ``log4j2.properties``, ``data/`` (the log dirs), ``logs/server.log`` and ``broker.pid``.

Several processes may share one broker directory (two pytest sessions, say): each holds a shared lock on
``users.lock`` while it uses the broker, and ``release()`` stops the broker only when nobody else holds it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings, get_settings
from pipeline.logging import get_logger

log = get_logger(__name__)

HOST = "127.0.0.1"
READY_LINE = "Kafka Server started"
MIN_JAVA = 17
JVM_FLAGS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")


class KafkaLaunchError(RuntimeError):
    """The local broker could not be provided; the message says what is missing and what to do."""


class ForeignKafkaError(KafkaLaunchError):
    """A Kafka broker this launcher did not start already listens on the port: usable, but not ours to manage."""


@dataclass(frozen=True)
class KafkaStatus:
    """What ``status()`` found."""

    running: bool
    bootstrap_servers: str
    pid: int | None
    managed: bool  # True: launched from this directory; False: some other broker answers on the port
    root: Path
    log_file: Path

    def __str__(self) -> str:
        if not self.running:
            return f"not running (would listen on {self.bootstrap_servers}; directory {self.root})"
        if not self.managed:
            return f"a Kafka broker not launched by leadpipe answers on {self.bootstrap_servers}"
        return f"running at {self.bootstrap_servers} (pid {self.pid}); log {self.log_file}"


# ---- prerequisites ----------------------------------------------------------------------------------------------


def java_major_version(java: str) -> int:
    """Major version of a ``java`` executable (``1.8.0_x`` -> 8, ``17.0.15`` -> 17)."""
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise KafkaLaunchError(f"cannot tell the version of {java}: {(result.stderr or result.stdout).strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaLaunchError(
            f"java not found on PATH: Kafka 4.x needs a Java {MIN_JAVA}+ runtime "
            "(Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless)"
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaLaunchError(f"{java} is Java {major}; Kafka 4.x needs Java {MIN_JAVA} or newer")
    return java


def resolve_jars(cache_dir: Path, kafka_version: str, log4j_version: str) -> Path:
    """The broker's runtime jars under ``<cache>/kafka-<version>/libs``, resolved with Maven once and reused."""
    home = cache_dir / f"kafka-{kafka_version}"
    libs = home / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLaunchError(
            f"mvn not found on PATH: it fetches the Kafka {kafka_version} jars from Maven Central into {libs} "
            "(Debian/Ubuntu: apt-get install -y maven)"
        )
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / ".resolve.lock"):
        if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):  # another process was faster
            return libs
        template = resources.files("pipeline.kafka").joinpath("kafka-pom.xml").read_text()
        pom = template.replace("@KAFKA_VERSION@", kafka_version).replace("@LOG4J_VERSION@", log4j_version)
        with tempfile.TemporaryDirectory(dir=home) as work:
            (Path(work) / "pom.xml").write_text(pom)
            staging = Path(work) / "libs"
            log.info("resolving kafka jars", version=kafka_version, into=str(libs))
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
                raise KafkaLaunchError(
                    f"mvn could not resolve Kafka {kafka_version} (exit {result.returncode}):\n{tail}"
                )
            staging.rename(libs)  # atomic: a half-finished download never looks like a cache hit
    return libs


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Where a test service keeps the ports it picked (free on first use), so a later session finds it again.
PORTS_FILE = "ports.json"


def remembered_ports(root: Path) -> dict[str, int]:
    """The ports a service under ``root`` picked earlier; empty when there are none or the file is unreadable."""
    with contextlib.suppress(ValueError, OSError):
        found = json.loads((root / PORTS_FILE).read_text())
        if isinstance(found, dict):
            return {str(k): int(v) for k, v in found.items()}
    return {}


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now (the launcher's, and tests' servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def kafka_answers(bootstrap_servers: str, timeout_s: float = 3.0) -> bool:
    """True when a Kafka broker returns cluster metadata at ``bootstrap_servers``."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _cluster_id() -> str:
    """URL-safe base64 of 16 random bytes, no padding, not starting with '-' (what StorageTool accepts)."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def process_alive(pid: int) -> bool:
    """Alive and not a zombie (a broker stopped by another process stays a zombie until its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22), or None without ``/proc``: with
    the pid it names one process for good, whatever it later renames itself to or wherever it ``chdir``s."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


class SharedUse:
    """Which processes use a daemon of one directory: each holds a shared lock on ``users.lock`` while it does, so
    the last one to let go can tell that it is the last (the spam engine's launcher shares this)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handle: IO[str] | None = None

    def hold(self) -> None:
        if self._handle is None:
            handle = (self.root / "users.lock").open("a")
            fcntl.flock(handle, fcntl.LOCK_SH)
            self._handle = handle

    def drop(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def alone(self) -> Iterator[bool]:
        """Under the directory's launcher lock: True while no other process holds a claim (then none can take one)."""
        self.drop()
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".launcher.lock"), (self.root / "users.lock").open("a") as users:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(users, fcntl.LOCK_UN)

    def stop(self, stop: Callable[[], bool]) -> bool:
        """Stop the daemon whoever started it (``down``): drop this claim, then ``stop`` under the launcher lock."""
        self.drop()
        with locked(self.root / ".launcher.lock"):
            return stop()

    def release(self, stop: Callable[[], bool], what: str, **where: str) -> bool:
        """Let go of the daemon; ``stop`` it only when no other process still uses it. True when it was stopped."""
        with self.alone() as alone:
            if not alone:
                log.info(f"{what} still in use by another process; leaving it running", **where)
                return False
            return stop()


def terminate(pid: int, timeout_s: float, name: str, reap: Callable[[], object] = lambda: None) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns once the process is gone (``reap`` collects our child)."""
    log.info("stopping", process=name, pid=pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_alive(pid):
        reap()
        time.sleep(0.05)
    if process_alive(pid):
        log.warning("did not stop in time; killing it", process=name, pid=pid)
        os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            reap()
            time.sleep(0.05)
    reap()


# ---- the broker -------------------------------------------------------------------------------------------------


class LocalKafka:
    """One local broker in one directory. ``up()`` is idempotent; ``down()`` stops it; ``release()`` shares it."""

    def __init__(
        self,
        root: Path,
        *,
        cache_dir: Path,
        kafka_version: str,
        log4j_version: str,
        port: int,
        controller_port: int,
        start_timeout_s: float = 120.0,
        sasl_port: int | None = None,
        sasl_users: Mapping[str, str] | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError("the broker port and the controller port must differ")
        if (sasl_port is None) != (not sasl_users):
            raise ValueError("a SASL listener needs its port and at least one user")
        self.root = root
        self.cache_dir = cache_dir
        self.kafka_version = kafka_version
        self.log4j_version = log4j_version
        self.port = port
        self.controller_port = controller_port
        self.start_timeout_s = start_timeout_s
        self.sasl_port = sasl_port
        self.sasl_users = dict(sasl_users or {})
        self.started_here = False
        self._process: subprocess.Popen[bytes] | None = None
        self._users = SharedUse(root)

    # -- construction --

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        """The developer's broker (``leadpipe kafka up``): ports from settings, data under ``settings.home``."""
        return cls(
            settings.home / "kafka",
            cache_dir=settings.cache_dir,
            kafka_version=settings.kafka_version,
            log4j_version=settings.kafka_log4j_version,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
        )

    @classmethod
    def for_tests(cls, settings: Settings | None = None, cache_dir: Path | None = None) -> LocalKafka:
        """The test suite's broker: its own directory under the cache and its own ports (kept in ``ports.json``).

        Ports are picked free on first use and remembered, so a broker left by an earlier session is found and
        reused; a developer's ``leadpipe kafka up`` (other directory, other ports) is never touched.
        """
        settings = settings or get_settings()
        cache = cache_dir or settings.cache_dir
        root = cache / f"kafka-{settings.kafka_version}-test-broker"
        root.mkdir(parents=True, exist_ok=True)
        with locked(root / ".launcher.lock"):
            ports = remembered_ports(root)
            port, controller = ports.get("port"), ports.get("controller_port")
            if port and controller:
                broker = cls._test_broker(root, cache, settings, port, controller)
                if broker._our_pid() or (port_free(port) and port_free(controller)):
                    return broker
                # our broker is gone and something else took a port: pick new ones
            port, controller = free_port(), free_port()
            while controller == port:
                controller = free_port()
            (root / PORTS_FILE).write_text(json.dumps({"port": port, "controller_port": controller}))
            return cls._test_broker(root, cache, settings, port, controller)

    @classmethod
    def _test_broker(cls, root: Path, cache: Path, settings: Settings, port: int, controller: int) -> LocalKafka:
        return cls(
            root,
            cache_dir=cache,
            kafka_version=settings.kafka_version,
            log4j_version=settings.kafka_log4j_version,
            port=port,
            controller_port=controller,
        )

    # -- paths --

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The SASL/PLAIN listener (only when the broker was given ``sasl_port`` and ``sasl_users``)."""
        if self.sasl_port is None:
            raise KafkaLaunchError("this broker has no SASL listener")
        return f"{HOST}:{self.sasl_port}"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.root / "logs" / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.root / "server.properties"

    # -- lifecycle --

    def up(self) -> KafkaStatus:
        """Start the broker, or adopt the one already running from this directory; wait until it serves metadata."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".launcher.lock"):
            pid = self._our_pid()
            if pid is not None:
                self._wait_ready(pid, log_offset=None)
                self.started_here = False
                log.info("kafka already running", bootstrap=self.bootstrap_servers, pid=pid, log=str(self.log_file))
            else:
                self._check_ports()
                java = find_java()
                libs = resolve_jars(self.cache_dir, self.kafka_version, self.log4j_version)
                self._write_config()
                self._format(java, libs)
                pid = self._start(java, libs)
                self.started_here = True
            self._users.hold()
        return self.status()

    def down(self, timeout_s: float = 60.0) -> bool:
        """Stop the broker launched from this directory, whoever started it. False when none was running."""
        return self._users.stop(lambda: self._stop(timeout_s))

    def release(self) -> bool:
        """Let go of the broker; stop it only when no other process still uses it. True when it was stopped."""
        return self._users.release(lambda: self._stop(60.0), "kafka", bootstrap=self.bootstrap_servers)

    def status(self) -> KafkaStatus:
        pid = self._our_pid()
        if pid is not None:
            return KafkaStatus(True, self.bootstrap_servers, pid, True, self.root, self.log_file)
        foreign = not port_free(self.port) and kafka_answers(self.bootstrap_servers)
        return KafkaStatus(foreign, self.bootstrap_servers, None, False, self.root, self.log_file)

    # -- internals --

    def _our_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is the broker of this directory."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not process_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return pid  # no /proc (not Linux): trust the pid file
        if b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline:
            return pid
        return None  # the pid was reused by an unrelated process

    def _check_ports(self) -> None:
        ports = [(self.port, "broker"), (self.controller_port, "controller")]
        ports += [(self.sasl_port, "SASL listener")] if self.sasl_port is not None else []
        for port, role in ports:
            if port_free(port):
                continue
            if kafka_answers(f"{HOST}:{port}"):
                raise ForeignKafkaError(
                    f"port {port} ({role}) is used by a Kafka broker that was not launched from {self.root}; "
                    f"use it (LEADPIPE_KAFKA_BOOTSTRAP_SERVERS={HOST}:{port}) or choose other ports "
                    "(LEADPIPE_KAFKA_PORT, LEADPIPE_KAFKA_CONTROLLER_PORT)"
                )
            raise KafkaLaunchError(
                f"port {port} ({role}) is busy and what listens there is not Kafka; free it or set "
                f"{'LEADPIPE_KAFKA_PORT' if role == 'broker' else 'LEADPIPE_KAFKA_CONTROLLER_PORT'}"
            )

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "16777216",
        }
        if self.sasl_port is not None:  # a second listener that asks for a user and a password (SASL/PLAIN)
            users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users.items())
            properties["listeners"] += f",SASL_PLAINTEXT://{HOST}:{self.sasl_port}"
            properties["advertised.listeners"] += f",SASL_PLAINTEXT://{HOST}:{self.sasl_port}"
            properties["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            properties["sasl.enabled.mechanisms"] = "PLAIN"
            properties["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};"
            )
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        log4j = [
            "status = warn",
            "appender.file.type = RollingFile",  # a long-lived test broker logs every topic of every test
            "appender.file.name = FILE",
            f"appender.file.fileName = {self.log_file}",
            f"appender.file.filePattern = {self.log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            "logger.kafka.name = kafka",
            "logger.kafka.level = INFO",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
        ]
        (self.root / "log4j2.properties").write_text("\n".join(log4j) + "\n")

    def _format(self, java: str, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            [
                java,
                *JVM_FLAGS,
                f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.log_file.parent}",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(self.properties_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaLaunchError(f"formatting {self.data_dir} failed:\n{(result.stdout + result.stderr).strip()}")

    def _start(self, java: str, libs: Path) -> int:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        command = [
            java,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.stdout_file.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        pid = self._process.pid
        self.pid_file.write_text(f"{pid}\n")
        log.info("kafka starting", bootstrap=self.bootstrap_servers, pid=pid, log=str(self.log_file))
        try:
            self._wait_ready(pid, log_offset=offset)
        except KafkaLaunchError:
            self._stop(10.0)
            raise
        log.info("kafka started", bootstrap=self.bootstrap_servers, pid=pid, log=str(self.log_file))
        return pid

    def _wait_ready(self, pid: int, log_offset: int | None) -> None:
        """Wait for the ready line (when we just started it) and a successful metadata call."""
        deadline = time.monotonic() + self.start_timeout_s
        saw_line = log_offset is None
        while time.monotonic() < deadline:
            if not process_alive(pid):
                raise KafkaLaunchError(f"the Kafka process exited during start-up.\n{self._tail()}")
            if not saw_line and self.log_file.exists():
                with self.log_file.open("rb") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    handle.seek(log_offset if log_offset and log_offset <= size else 0)  # 0: the log rolled over
                    saw_line = READY_LINE.encode() in handle.read()
            if saw_line and kafka_answers(self.bootstrap_servers, timeout_s=2.0):
                return
            time.sleep(0.25)
        raise KafkaLaunchError(f"Kafka did not become ready within {self.start_timeout_s:.0f}s.\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.log_file, self.stdout_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last lines of {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or f"(no log written under {self.log_file.parent})"

    def _stop(self, timeout_s: float) -> bool:
        pid = self._our_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid, timeout_s, "kafka", self._reap)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None


__all__ = [
    "ForeignKafkaError",
    "KafkaLaunchError",
    "KafkaStatus",
    "LocalKafka",
    "SharedUse",
    "find_java",
    "kafka_answers",
    "locked",
    "port_free",
    "process_alive",
    "process_start_time",
    "resolve_jars",
    "terminate",
]
