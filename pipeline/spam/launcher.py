"""A local rspamd 3.x with its own Redis (Bayes statistics), configured to run offline, from Debian's packages.

Like ``pipeline.kafka.launcher``: everything lives under one directory (``rspamd/local.d`` and ``override.d`` with
the offline configuration, ``rspamd/db`` with its compiled regex cache, ``redis/`` with the append-only statistics
file, logs and pid files), the processes run detached so they outlive the command that started them, ports are
picked free once and remembered in ``ports.json``, and several processes may share one engine: each holds a shared
lock on ``users.lock`` and ``release()`` stops the engine only when nobody else holds it.

rspamd refuses to run as root, so as root both daemons run as their Debian users (``_rspamd``, ``redis``), and the
directory must be one those users can reach (``/root`` is not: the tests' engine then lives under /var/lib).

Offline means deterministic too: every module that asks DNS or the network is off (the list measured in
``shared/notes/spam-engines.md``), autolearn is off, and SpamAssassin's stock rules, when Debian's ``spamassassin``
package put them on the machine, are loaded by rspamd's own ``spamassassin`` module (measured in docs/processing.md).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.config import Settings, get_settings
from pipeline.kafka.launcher import (
    PORTS_FILE,
    SharedUse,
    free_port,
    locked,
    port_free,
    process_alive,
    process_start_time,
    remembered_ports,
    terminate,
)
from pipeline.logging import get_logger

log = get_logger(__name__)

HOST = "127.0.0.1"
RSPAMD_CONF = Path("/etc/rspamd/rspamd.conf")
SA_RULES_DIR = Path("/usr/share/spamassassin")
"""Debian's ``spamassassin`` package keeps its stock rules here (no ``sa-update``: that needs the internet)."""
SYSTEM_ROOT = Path("/var/lib/leadpipe")

#: Modules that make DNS or network requests (or keep state that changes verdicts): off, offline.
OFFLINE_MODULES = (
    "rbl",
    "surbl",
    "emails",
    "dkim",
    "spf",
    "dmarc",
    "arc",
    "asn",
    "fuzzy_check",
    "whitelist",
    "mx_check",
    "dcc",
    "url_redirector",
    "rspamd_update",
    "reputation",
    "once_received",
    "greylist",
    "ratelimit",
    "replies",
    "neural",
    "dkim_signing",
    "history_redis",
    "metric_exporter",
    "clickhouse",
    "elastic",
    "p0f",
    "bimi",
)


#: Where the Helm chart's engine listens (rspamd and its Redis in one pod): ``deploy/helm/leadpipe/files/rspamd``
#: holds ``rspamd_config(*CHART_ENGINE)``, checked by the chart's tests, written by ``leadpipe spam engine config``.
CHART_ENGINE = ("*", 11333, 11334, "127.0.0.1:6379")


def rspamd_config(
    bind: str, port: int, controller_port: int, redis: str, *, min_learns: int = 200, sa_rules: bool = False
) -> dict[str, str]:
    """The offline configuration (``local.d``/``override.d`` file -> text), for the launcher and the chart alike:
    sockets, modules off, Bayes in ``redis`` without autolearn, SpamAssassin's stock rules when asked for."""
    local, override = "local.d", "override.d"
    files: dict[str, str] = {
        f"{override}/worker-normal.inc": f'bind_socket = "{bind}:{port}";\ncount = 2;\n',
        f"{override}/worker-controller.inc": f'bind_socket = "{bind}:{controller_port}";\n',
        f"{override}/worker-proxy.inc": "enabled = false;\n",
        f"{override}/options.inc": (
            # Nothing answers DNS here: lookups fail fast instead of waiting for a resolver.
            'dns { nameserver = ["127.0.0.1:53"]; timeout = 0.5s; retransmits = 1; }\ntask_timeout = 8s;\n'
        ),
        f"{override}/logging.inc": 'level = "warning";\n',
        f"{local}/redis.conf": f'servers = "{redis}";\n',
        f"{local}/classifier-bayes.conf": (
            f'backend = "redis";\nservers = "{redis}";\nautolearn = false;\nmin_learns = {min_learns};\n'
        ),
        f"{local}/hfilter.conf": "helo_enabled = false;\nhostname_enabled = false;\nfrom_enabled = false;\n",
        f"{local}/phishing.conf": "phishtank_enabled = false;\nopenphish_enabled = false;\n",
        # The rendered Date: is when the person wrote; imports and replays are old on purpose, and the age of
        # a message says nothing about its content (rspamd's DATE_IN_PAST adds 1 point to all of them).
        f"{local}/headers_group.conf": 'symbols { "DATE_IN_PAST" { weight = 0.0; } }\n',
    }
    for module in OFFLINE_MODULES:
        files[f"{local}/{module}.conf"] = "enabled = false;\n"
    if sa_rules:
        files[f"{local}/spamassassin.conf"] = f'ruleset = "{SA_RULES_DIR}/*.cf";\nmatch_limit = 100k;\n'
    return files


class SpamEngineLaunchError(RuntimeError):
    """The local engine could not be provided; the message says what is missing and what to do."""


@dataclass(frozen=True)
class SpamEngineStatus:
    running: bool
    url: str
    controller_url: str
    redis_port: int
    pids: tuple[int | None, int | None]  # (rspamd, redis)
    root: Path
    sa_rules: bool

    def __str__(self) -> str:
        if not self.running:
            return f"not running (would listen on {self.url}; directory {self.root})"
        rules = " with SpamAssassin's stock rules" if self.sa_rules else ""
        return (
            f"rspamd running at {self.url} (controller {self.controller_url}){rules}, Redis on {HOST}:"
            f"{self.redis_port}; pids {self.pids}; directory {self.root}"
        )


SYSTEM_BIN = Path("/usr/bin")
"""Where Debian's packages put the daemons, when they are not on ``PATH``."""
_INSTALL = (
    "run scripts/ensure-spam-engine.sh (needs root), or set LEADPIPE_SPAM_ENGINE_ENABLED=false to score with the "
    "policy's rules alone"
)


def _program(name: str) -> str:
    """The daemon's program from Debian's package, or what to do when it is missing."""
    found = shutil.which(name) or str(SYSTEM_BIN / name)
    if not Path(found).exists():
        raise SpamEngineLaunchError(f"{name} not found: {_INSTALL}")
    return found


def _service_user(user: str) -> pwd.struct_passwd:
    """The system user a daemon runs as when we are root (the package creates it), or what to do without it."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise SpamEngineLaunchError(f"no system user {user!r} to run the engine as: {_INSTALL}") from None


def _reachable_by_others(path: Path) -> bool:
    """Whether a service user can reach ``path``: every existing ancestor lets others traverse it."""
    return all(not part.exists() or part.stat().st_mode & 0o001 for part in [path, *path.parents])


def _answers(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=timeout_s).text.strip() == "pong"
    except httpx.HTTPError:
        return False


def _redis_answers(port: int, timeout_s: float = 2.0) -> bool:
    """A bare RESP ``PING`` (no client library needed for one command)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class LocalSpamEngine:
    """rspamd + Redis in one directory. ``up()`` is idempotent; ``down()`` stops both; ``release()`` shares them."""

    def __init__(
        self,
        root: Path,
        *,
        port: int,
        controller_port: int,
        redis_port: int,
        sa_rules: bool = False,
        start_timeout_s: float = 120.0,
        min_learns: int = 200,
    ) -> None:
        if len({port, controller_port, redis_port}) != 3:
            raise ValueError("the engine, controller and Redis ports must differ")
        self.root = root
        self.port = port
        self.controller_port = controller_port
        self.redis_port = redis_port
        self.url = f"http://{HOST}:{port}"  # rspamd's normal worker, and below its controller
        self.controller_url = f"http://{HOST}:{controller_port}"
        self.rspamd_dir, self.redis_dir = root / "rspamd", root / "redis"
        if sa_rules and not SA_RULES_DIR.is_dir():
            raise SpamEngineLaunchError(
                f"SpamAssassin's rules are not in {SA_RULES_DIR}: run LEADPIPE_SPAM_SA_RULES=1 "
                "scripts/ensure-spam-engine.sh"
            )
        self.sa_rules = sa_rules
        self.start_timeout_s = start_timeout_s
        self.min_learns = min_learns
        self.started_here = False
        self._users = SharedUse(root)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalSpamEngine:
        """The developer's engine (``leadpipe spam engine up``): ports from settings, data under ``home``."""
        return cls(
            _service_root(settings.home / "spam-engine"),
            port=_port_of(settings.spam_engine_url),
            controller_port=_port_of(settings.spam_engine_controller_url),
            redis_port=settings.spam_engine_redis_port,
            sa_rules=settings.spam_engine_sa_rules,
        )

    @classmethod
    def for_tests(cls, settings: Settings | None = None, cache_dir: Path | None = None) -> LocalSpamEngine:
        """The test suite's engine: its own directory and free ports, remembered so a later session reuses it."""
        settings = settings or get_settings()
        root = _service_root((cache_dir or settings.cache_dir) / "spam-engine-test")
        root.mkdir(parents=True, exist_ok=True)
        with locked(root / ".launcher.lock"):
            ports = remembered_ports(root)
            wanted = (ports.get("port"), ports.get("controller_port"), ports.get("redis_port"))
            if all(wanted):
                engine = cls(root, port=wanted[0], controller_port=wanted[1], redis_port=wanted[2])  # type: ignore[arg-type]
                if engine._pid("rspamd") or engine._pid("redis") or all(port_free(p) for p in wanted if p):
                    return engine
            chosen: list[int] = []
            while len(chosen) < 3:
                candidate = free_port()
                if candidate not in chosen:
                    chosen.append(candidate)
            (root / PORTS_FILE).write_text(
                json.dumps({"port": chosen[0], "controller_port": chosen[1], "redis_port": chosen[2]})
            )
            return cls(root, port=chosen[0], controller_port=chosen[1], redis_port=chosen[2])

    def copy_regex_cache_from(self, other: LocalSpamEngine) -> int:
        """Seed this engine's compiled regex cache (hyperscan, ~9-40 s to build) from another engine's directory;
        rspamd checks each file against its rules and rebuilds what does not match. Returns the files copied."""
        target = self.rspamd_dir / "db"
        target.mkdir(parents=True, exist_ok=True)
        copied = 0
        for cached in (other.rspamd_dir / "db").glob("*.hs*"):
            shutil.copy2(cached, target / cached.name)
            copied += 1
        return copied

    # -- paths --

    def _pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    # -- lifecycle --

    def up(self) -> SpamEngineStatus:
        """Start Redis and rspamd, or adopt the ones already running from this directory; wait until both answer."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".launcher.lock"):
            started = False
            if self._pid("redis") is None:
                self._check_port(self.redis_port, "Redis")
                self._start_redis()
                started = True
            self._wait(lambda: _redis_answers(self.redis_port), "redis")
            if self._pid("rspamd") is not None and self._config_changed():
                log.info("spam engine configuration changed; restarting rspamd", url=self.url)
                self._stop("rspamd", 30.0)
            if self._pid("rspamd") is None:
                for port, role in ((self.port, "engine"), (self.controller_port, "controller")):
                    self._check_port(port, role)
                self._start_rspamd()
                started = True
            self._wait(lambda: _answers(self.url) and _answers(self.controller_url), "rspamd")
            self.started_here = started
            self._users.hold()
        log.info("spam engine ready", url=self.url, controller=self.controller_url, started=started)
        return self.status()

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop both daemons of this directory, whoever started them. False when neither was running."""
        return self._users.stop(lambda: self._stop_all(timeout_s))

    def release(self) -> bool:
        """Let go of the engine; stop it only when no other process still uses it. True when it was stopped."""
        return self._users.release(lambda: self._stop_all(30.0), "spam engine", url=self.url)

    def stop_rspamd(self, timeout_s: float = 30.0) -> bool:
        """Stop rspamd alone (Redis keeps the statistics): what an engine restart or outage looks like."""
        with locked(self.root / ".launcher.lock"):
            return self._stop("rspamd", timeout_s)

    def status(self) -> SpamEngineStatus:
        pids = (self._pid("rspamd"), self._pid("redis"))
        return SpamEngineStatus(
            all(pids), self.url, self.controller_url, self.redis_port, pids, self.root, self.sa_rules
        )

    # -- configuration --

    def write_config(self) -> None:
        """The offline configuration: sockets, modules off, Bayes in our Redis without autolearn, SA rules."""
        for directory in ("local.d", "override.d", "db", "run", "log"):
            (self.rspamd_dir / directory).mkdir(parents=True, exist_ok=True)
        (self.rspamd_dir / "local.d" / "spamassassin.conf").unlink(missing_ok=True)
        for path, text in self._config_files().items():
            path.write_text(text)
            path.chmod(0o644)

    def _config_changed(self) -> bool:
        """Whether the running engine's configuration differs from what this launcher would write."""
        files = self._config_files()
        present = set((self.rspamd_dir / "local.d").glob("*.conf")) | set((self.rspamd_dir / "override.d").glob("*"))
        if present - set(files):
            return True
        return any(not path.exists() or path.read_text() != text for path, text in files.items())

    def _config_files(self) -> dict[Path, str]:
        config = rspamd_config(
            HOST,
            self.port,
            self.controller_port,
            f"{HOST}:{self.redis_port}",
            min_learns=self.min_learns,
            sa_rules=self.sa_rules,
        )
        return {self.rspamd_dir / name: text for name, text in config.items()}

    # -- internals --

    def _start_redis(self) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        conf = self.root / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"bind {HOST}",
                    f"port {self.redis_port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"dir {self.redis_dir}",
                    "appendonly yes",  # learned statistics survive a restart of Redis or of the machine
                    "appendfsync everysec",
                    "save 300 1",
                    f"logfile {self.redis_dir / 'redis.log'}",
                    "",
                ]
            )
        )
        conf.chmod(0o644)
        server = _program("redis-server")  # before chown: without the package there is no redis user either
        self._own(self.redis_dir, "redis")
        self._spawn("redis", [server, str(conf)], "redis", cwd=self.redis_dir)

    def _start_rspamd(self) -> None:
        binary = _program("rspamd")
        if not RSPAMD_CONF.exists():
            raise SpamEngineLaunchError(f"rspamd's {RSPAMD_CONF} not found: {_INSTALL}")
        self.write_config()
        for sub in ("db", "run", "log"):
            self._own(self.rspamd_dir / sub, "_rspamd")
        command = [
            binary,
            "-f",
            "-c",
            str(RSPAMD_CONF),
            f"--var=LOCAL_CONFDIR={self.rspamd_dir}",
            f"--var=DBDIR={self.rspamd_dir / 'db'}",
            f"--var=RUNDIR={self.rspamd_dir / 'run'}",
            f"--var=LOGDIR={self.rspamd_dir / 'log'}",
        ]
        self._spawn("rspamd", command, "_rspamd", cwd=self.root)

    def _own(self, directory: Path, user: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = _service_user(user)
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _spawn(self, name: str, command: list[str], user: str, cwd: Path) -> None:
        """Start one daemon detached, as ``user`` when we are root, in ``cwd`` (which ``_pid`` recognises it by)."""
        as_user: dict[str, object] = {}
        if os.geteuid() == 0:
            entry = _service_user(user)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            with contextlib.suppress(KeyError):
                as_user["group"] = grp.getgrnam(user).gr_gid
        out_path = self.root / f"{name}.out"
        with out_path.open("ab") as out:
            process = subprocess.Popen(  # type: ignore[call-overload]
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                **as_user,
            )
        started = process_start_time(process.pid)
        self._pid_file(name).write_text(f"{process.pid} {started}\n" if started else f"{process.pid}\n")
        log.info("spam engine process starting", process=name, pid=process.pid)

    def _wait(self, ready: Callable[[], bool], name: str) -> None:
        """Until ``ready()``; the daemon's exit or the start timeout is an error with the end of its logs."""
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._pid(name) is None:
                raise SpamEngineLaunchError(f"{name} exited during start-up.\n{self._tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise SpamEngineLaunchError(
            f"{name} did not become ready within {self.start_timeout_s:.0f}s.\n{self._tail(name)}"
        )

    def _tail(self, name: str, lines: int = 30) -> str:
        parts = []
        logs = [self.root / f"{name}.out"]
        logs.append(self.rspamd_dir / "log" / "rspamd.log" if name == "rspamd" else self.redis_dir / "redis.log")
        for path in logs:
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last lines of {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or f"(no log under {self.root})"

    def _check_port(self, port: int, role: str) -> None:
        if not port_free(port):
            raise SpamEngineLaunchError(
                f"port {port} ({role}) is busy and not served from {self.root}; free it or choose other ports "
                "(LEADPIPE_SPAM_ENGINE_URL, LEADPIPE_SPAM_ENGINE_CONTROLLER_URL, LEADPIPE_SPAM_ENGINE_REDIS_PORT)"
            )

    def _pid(self, name: str) -> int | None:
        """The pid in the pid file if that very process (pid and start time) is alive."""
        try:
            recorded = self._pid_file(name).read_text().split()
            pid = int(recorded[0])
        except (OSError, ValueError, IndexError):
            return None
        if not process_alive(pid):
            return None
        if len(recorded) > 1:
            # Not by name or working directory: rspamd rewrites its argv and chdirs into its rules directory
            # while it loads them, so a check in that moment took a starting engine for one that had exited.
            started = process_start_time(pid)
            return pid if started is None or started == recorded[1] else None
        return self._pid_by_name(name, pid)

    def _pid_by_name(self, name: str, pid: int) -> int | None:
        """A pid file without a start time (written before they were recorded): known by name and directory."""
        proc = Path(f"/proc/{pid}")
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            return pid  # no /proc (not Linux): trust the pid file
        if not comm.startswith("rspamd" if name == "rspamd" else "redis-server"):
            return None
        try:
            cwd = (proc / "cwd").resolve(strict=True)
        except OSError:
            return pid  # another user's process we may not inspect: the name matched
        return pid if cwd == (self.root if name == "rspamd" else self.redis_dir).resolve() else None

    def _stop_all(self, timeout_s: float) -> bool:
        stopped = self._stop("rspamd", timeout_s)
        return self._stop("redis", timeout_s) or stopped

    def _stop(self, name: str, timeout_s: float) -> bool:
        pid = self._pid(name)
        if pid is None:
            self._pid_file(name).unlink(missing_ok=True)
            return False
        terminate(pid, timeout_s, name, lambda: _reap(pid))
        self._pid_file(name).unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status (it would stay a zombie); someone else's child is not ours to reap."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _port_of(url: str) -> int:
    port = httpx.URL(url).port
    if port is None:
        raise SpamEngineLaunchError(f"{url} names no port")
    return port


def _service_root(preferred: Path) -> Path:
    """``preferred``, unless we are root and the service users cannot reach it (``/root`` is 0700)."""
    if os.geteuid() != 0 or _reachable_by_others(preferred.parent):
        return preferred
    return SYSTEM_ROOT / preferred.name


__all__ = ["CHART_ENGINE", "LocalSpamEngine", "SpamEngineLaunchError", "SpamEngineStatus", "rspamd_config"]
