"""The launcher's failure messages name what is missing: java, a recent java, mvn, a free port, a ready broker.

A stand-in ``java`` (a small Python script on a private PATH) plays the JVM; no broker is started here.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from pipeline.kafka.launcher import (
    KafkaLaunchError,
    LocalKafka,
    find_java,
    free_port,
    java_major_version,
    resolve_jars,
)

FAKE_JAVA = """#!{python}
import sys, time
args = sys.argv[1:]
if args == ["-version"]:
    sys.stderr.write('openjdk version "{version}" 2025-04-15\\n')
    sys.exit(0)
if "kafka.tools.StorageTool" in args:
    sys.exit(0)
if "kafka.Kafka" in args:
    print("{start_output}", flush=True)
    if {exit_at_start}:
        sys.exit(1)
    time.sleep(60)
"""


def fake_java(bin_dir: Path, version: str = "17.0.15", start_output: str = "", exit_at_start: bool = False) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    java = bin_dir / "java"
    java.write_text(
        FAKE_JAVA.format(python=sys.executable, version=version, start_output=start_output, exit_at_start=exit_at_start)
    )
    java.chmod(0o755)
    return java


def cached_jars(cache: Path, version: str = "4.1.1") -> Path:
    libs = cache / f"kafka-{version}" / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{version}.jar").write_bytes(b"")
    return libs


def broker(tmp_path: Path, port: int | None = None, timeout_s: float = 3.0) -> LocalKafka:
    return LocalKafka(
        tmp_path / "broker",
        cache_dir=tmp_path / "cache",
        kafka_version="4.1.1",
        log4j_version="2.24.3",
        port=port or free_port(),
        controller_port=free_port(),
        start_timeout_s=timeout_s,
    )


def test_java_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KafkaLaunchError, match=r"java not found on PATH: Kafka 4\.x needs a Java 17"):
        find_java()


@pytest.mark.parametrize(("printed", "major"), [("1.8.0_392", 8), ("11.0.2", 11), ("17.0.15", 17), ("21", 21)])
def test_java_version_parsing(tmp_path: Path, printed: str, major: int) -> None:
    assert java_major_version(str(fake_java(tmp_path / "bin", version=printed))) == major


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(tmp_path / "bin", version="11.0.2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(KafkaLaunchError, match=r"is Java 11; Kafka 4\.x needs Java 17 or newer"):
        find_java()


def test_mvn_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KafkaLaunchError, match="mvn not found on PATH"):
        resolve_jars(tmp_path / "cache", "4.1.1", "2.24.3")


def test_cached_jars_need_no_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = cached_jars(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve_jars(tmp_path / "cache", "4.1.1", "2.24.3") == libs


def test_port_busy_with_something_that_is_not_kafka(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(KafkaLaunchError, match=f"port {port} \\(broker\\) is busy and what listens there is not"):
            broker(tmp_path, port=port).up()


def test_start_timeout_shows_the_last_log_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(tmp_path / "bin", start_output="still warming up the coffee")
    cached_jars(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    local = broker(tmp_path, timeout_s=5.0)  # long enough for the fake java (a Python script) to start under load
    with pytest.raises(KafkaLaunchError) as info:
        local.up()
    message = str(info.value)
    assert "did not become ready within 5s" in message
    assert "still warming up the coffee" in message
    assert not local.status().running  # the half-started process was stopped, not left behind
    assert not local.pid_file.exists()


def test_process_that_dies_at_start_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(tmp_path / "bin", start_output="Error: Could not find or load main class kafka.Kafka", exit_at_start=True)
    cached_jars(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(KafkaLaunchError, match=r"exited during start-up(.|\n)*Could not find or load main class"):
        broker(tmp_path, timeout_s=30.0).up()


def test_server_properties_are_single_node_kraft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_java(tmp_path / "bin", exit_at_start=True)
    cached_jars(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    local = broker(tmp_path)
    with pytest.raises(KafkaLaunchError):
        local.up()
    lines = local.properties_file.read_text().splitlines()
    props = dict(line.split("=", 1) for line in lines)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{local.port},CONTROLLER://127.0.0.1:{local.controller_port}"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{local.controller_port}"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.cleaner.dedupe.buffer.size"] == "16777216"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(local.data_dir)
    assert f"appender.file.fileName = {local.log_file}" in (local.root / "log4j2.properties").read_text()
