"""The HTTP front door measured from outside, over real TCP, against a bare endpoint in the same run.

Two servers, each its own process on the same broker:

- ``leadpipe serve`` (``BENCH_HTTP_WORKERS`` processes, default 1) with a signed (HMAC) and a bearer web-form source;
- the baseline (``bench/_bare_ingest.py``): a bare FastAPI endpoint on the same uvicorn set-up that only produces
  the body with the same producer settings and waits for the broker's acknowledgement.

Each round runs, alternating bare / leadpipe:

- closed loop, ``BENCH_HTTP_CONCURRENCY`` (64) connections, with ``hey`` (installed by this script from the Go
  module proxy into ~/.cache/leadpipe/bin when Go is there): the same body each time (to leadpipe through the
  bearer source: one repeat visitor; a signed request would be a replay);
- closed loop with the Python client below: pre-signed requests, each a distinct new person (a new data key);
- open loop: requests evenly spaced at ``BENCH_HTTP_RATE`` (1,000/s) for ``BENCH_HTTP_OPEN_S`` seconds, latency from
  the moment a request was due (a late generator does not hide queueing), and the rate actually served.

It prints requests/s, latency p50/p99 and the server's CPU per request (its worker processes' included) per run,
the ratio leadpipe / bare per round, of rates and of CPU per request (the latter bends far less with the load),
and the load average before and after (the machine is shared: read the ratios, and re-run on a quiet moment). Usage:
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/ingest_http.py`` (``BENCH_HTTP_N`` requests per
closed-loop run, ``BENCH_HTTP_ROUNDS``; ``LEADPIPE_TEST_POSTGRES_URL``: the key store in a fresh PostgreSQL database,
else SQLite). Before the first round ``BENCH_HTTP_SEED`` (5,000) new people are posted and the database analyzed
(``_bench_db``: a brand-new database keeps sequential-scan plans on its growing tables until autovacuum's first
ANALYZE).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from _bench_db import analyze, database
from _proc import cpu_s

from pipeline.config import explicit_settings
from pipeline.db import make_engine
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("BENCH_HTTP_N", "6000"))
CONCURRENCY = int(os.environ.get("BENCH_HTTP_CONCURRENCY", "64"))
RATE = int(os.environ.get("BENCH_HTTP_RATE", "1000"))
OPEN_S = float(os.environ.get("BENCH_HTTP_OPEN_S", "10"))
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
SEED = int(os.environ.get("BENCH_HTTP_SEED", "5000"))
WORKERS = int(os.environ.get("BENCH_HTTP_WORKERS", "1"))
HEY_VERSION = "v0.1.5"
SECRET = "bench-secret"
BEARER = "bench-bearer-token"


# ---- the load generators ------------------------------------------------------------------------------------------


def ensure_hey() -> Path | None:
    """``hey``, built once with ``go install`` into the cache (like CI builds helm); None without Go."""
    cached = Path.home() / ".cache" / "leadpipe" / "bin" / "hey"
    if cached.exists():
        return cached
    go = shutil.which("go")
    if go is None:
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(cached.parent), "GOFLAGS": "-mod=mod"}
    subprocess.run([go, "install", f"github.com/rakyll/hey@{HEY_VERSION}"], env=env, check=True, timeout=600)
    return cached


@dataclass
class Run:
    """One measured run: how many answers of which status, over how long, with what latencies (seconds)."""

    label: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    rps: float | None = None  # hey's own figures when it ran the load
    percentiles: dict[float, float] = field(default_factory=dict)
    server_cpu_s: float | None = None  # what the server's processes used during the run

    @property
    def cpu_per_request_us(self) -> float:
        """Server CPU per answered request: bent far less by the machine's load than the rate."""
        return float("nan") if self.server_cpu_s is None or not self.ok else 1e6 * self.server_cpu_s / self.ok

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def rate(self) -> float:
        return self.rps if self.rps is not None else self.ok / self.seconds

    def pct(self, p: float) -> float:
        if p in self.percentiles:
            return self.percentiles[p]
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def line(self) -> str:
        bad = {code: n for code, n in self.statuses.items() if not 200 <= code < 300}
        return (
            f"{self.label:<44} {self.rate:>8.0f} req/s  p50 {1000 * self.pct(50):7.1f} ms  "
            f"p99 {1000 * self.pct(99):7.1f} ms  cpu {self.cpu_per_request_us:5.0f} us/req  ok {self.ok}"
            + (f"  NOT OK {bad}" if bad else "")
        )


def run_hey(hey: Path, label: str, url: str, body: Path, headers: Sequence[str], count: int) -> Run:
    args = [str(hey), "-n", str(count), "-c", str(CONCURRENCY), "-m", "POST", "-T", "application/json", "-D", str(body)]
    for header in headers:
        args += ["-H", header]
    started = time.perf_counter()
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=600).stdout
    run = Run(label, time.perf_counter() - started)
    run.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out):
        run.statuses[int(code)] = int(n)
    errors = re.findall(r"\[(\d+)\]\s+(?:Post|Get)", out)
    if errors:
        run.statuses[0] = sum(int(n) for n in errors)
    for pct, secs in re.findall(r"(\d+)%+ in ([\d.]+) secs", out):  # hey prints "99%% in 0.0123 secs"
        run.percentiles[float(pct)] = float(secs)
    return run


def http_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode() + b"\r\n" + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection; the answer's status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    body = await reader.readexactly(int(match.group(1)) if match else 0)
    return int(head[9:12]), body


async def closed_loop(label: str, port: int, requests: Sequence[bytes], concurrency: int) -> Run:
    """``concurrency`` connections, each sending its next request when its answer came."""
    queue = list(reversed(requests))
    run = Run(label, 0.0)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                request = queue.pop()
                sent = time.perf_counter()
                status, _ = await exchange(reader, writer, request)
                run.latencies.append(time.perf_counter() - sent)
                run.statuses[status] = run.statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - started
    return run


#: Connections the open-loop generator may hold; past it a due request waits for one (and the wait counts).
MAX_CONNECTIONS = 256


async def open_loop(label: str, port: int, requests: Sequence[bytes], rate: float) -> Run:
    """Requests due evenly spaced at ``rate``, whatever the answers do; latency from when each was due. A request
    that failed at the connection (reset, closed) counts as status 0, except on an idle connection the server had
    closed meanwhile (its keep-alive timeout: after a burst, connections deep in the idle stack sit unused for
    seconds), which is replaced by a new one once, as HTTP clients do."""
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    run = Run(label, 0.0)

    async def one(request: bytes, due: float) -> None:
        async with slots:
            reused = bool(idle)
            try:
                connection = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
                if connection[1] not in opened:
                    opened.append(connection[1])
                try:
                    status, _ = await exchange(*connection, request)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                        raise  # a fresh connection failed, or an answer was cut: the server's failure
                    connection[1].close()
                    connection = await asyncio.open_connection("127.0.0.1", port)
                    opened.append(connection[1])
                    status, _ = await exchange(*connection, request)
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            else:
                idle.append(connection)
            run.latencies.append(time.perf_counter() - due)
            run.statuses[status] = run.statuses.get(status, 0) + 1

    tasks = []
    started = time.perf_counter()
    for index, request in enumerate(requests):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - started
    for writer in opened:
        writer.close()
    return run


# ---- the servers ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {timeout_s}s")


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process)
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measured(server: subprocess.Popen[bytes], load: Callable[..., Run], *args: Any) -> Run:
    """``load(*args)``'s run with the CPU the server (and its worker processes) used meanwhile."""
    before = cpu_s(server.pid, descendants=True)
    run = load(*args)
    after = cpu_s(server.pid, descendants=True)
    if before is not None and after is not None:
        run.server_cpu_s = after - before
    return run


# ---- the payloads ---------------------------------------------------------------------------------------------------


def form(i: int) -> bytes:
    """A HubSpot-style demo request of person ``i`` (the same shape as bench/ingest.py's)."""
    return json.dumps(
        {
            "submittedAt": "1717600000000",
            "fields": [
                {"name": "firstname", "value": "Priya"},
                {"name": "lastname", "value": f"Raman {i}"},
                {"name": "email", "value": f"priya.raman.{i}@bigcorp.example.co.uk"},
                {"name": "mobilephone", "value": "07400 123456"},
                {"name": "company", "value": "BigCorp Ltd"},
                {"name": "country", "value": "United Kingdom"},
                {"name": "message", "value": f"Would like a demo of the analytics platform for {i} users."},
            ],
            "context": {"pageUri": "https://www.example.com/demo-request", "pageName": "Request a demo"},
        }
    ).encode()


def signed(port: int, body: bytes) -> bytes:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Leadpipe-Timestamp": stamp,
        "X-Leadpipe-Signature": f"sha256={digest}",
    }
    return http_request(port, "/v1/sources/bench-signed", body, headers)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (make bench starts a broker and sets it)")
    hey = ensure_hey()
    home = Path(tempfile.mkdtemp(prefix="bench-http-"))
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = explicit_settings(
        kafka_bootstrap_servers=servers, topic_prefix=prefix, topic_partitions=3, environment="test", home=home
    )
    apply_topics(settings)
    load_before = loadavg()
    rounds: list[dict[str, Run]] = []
    try:
        with database(home, "bench_http") as database_url:
            api_port, admin_port, bare_port = free_port(), free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("LEADPIPE_")}
            lp_env = {
                **env,
                "LEADPIPE_ENVIRONMENT": "test",
                "LEADPIPE_HOME": str(home),
                "LEADPIPE_KAFKA_BOOTSTRAP_SERVERS": servers,
                "LEADPIPE_TOPIC_PREFIX": prefix,
                "LEADPIPE_DATABASE_URL": database_url,
                "LEADPIPE_SUBJECT_KEY_PEPPER": "bench-pepper",
                "LEADPIPE_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"b" * 32).decode(),
                "LEADPIPE_INGEST_PORT": str(api_port),
                "LEADPIPE_ADMIN_PORT": str(admin_port),
                "LEADPIPE_LOG_FORMAT": "json",
                "LEADPIPE_SOURCES": json.dumps(
                    {
                        "bench-signed": {"channel": "web_form", "hmac_secret": SECRET},
                        "bench-bearer": {"channel": "web_form", "bearer_token": BEARER},
                    }
                ),
            }
            bare_env = {**env, "KAFKA_BOOTSTRAP_SERVERS": servers, "BARE_TOPIC": f"{prefix}contacts.raw.web_form"}
            leadpipe_cmd = [str(Path(sys.executable).parent / "leadpipe"), "serve", "--workers", str(WORKERS)]
            bare_cmd = [
                *(sys.executable, "-m", "uvicorn", "_bare_ingest:app", "--app-dir", "bench"),
                *("--port", str(bare_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning"),
            ]
            body_file = home / "body.json"
            body_file.write_bytes(form(0))
            with (
                running(leadpipe_cmd, lp_env, api_port, home / "leadpipe.log") as lp_server,
                running(bare_cmd, bare_env, bare_port, home / "bare.log") as bare_server,
            ):
                person = 1
                if SEED:
                    seeded = uvloop.run(
                        closed_loop(
                            "seed", api_port, [signed(api_port, form(person + i)) for i in range(SEED)], CONCURRENCY
                        )
                    )
                    person += SEED
                    engine = make_engine(database_url)
                    analyze(engine)
                    engine.dispose()
                    print(f"seeded: {seeded.statuses.get(202, 0)} of {SEED} new people accepted, database analyzed")
                for number in range(1, ROUNDS + 1):
                    runs: dict[str, Run] = {}
                    if hey is not None:
                        runs["hey bare"] = measured(
                            bare_server,
                            run_hey,
                            hey,
                            "bare, hey",
                            f"http://127.0.0.1:{bare_port}/bare",
                            body_file,
                            [],
                            N,
                        )
                        runs["hey leadpipe"] = measured(
                            lp_server,
                            run_hey,
                            hey,
                            "leadpipe, hey (bearer, one repeat visitor)",
                            f"http://127.0.0.1:{api_port}/v1/sources/bench-bearer",
                            body_file,
                            [f"Authorization: Bearer {BEARER}"],
                            N,
                        )
                    bodies = [form(person + i) for i in range(N)]
                    person += N
                    bare_requests = [
                        http_request(bare_port, "/bare", b, {"Content-Type": "application/json"}) for b in bodies
                    ]
                    runs["py bare"] = measured(
                        bare_server, uvloop.run, closed_loop("bare, client", bare_port, bare_requests, CONCURRENCY)
                    )
                    lp_requests = [signed(api_port, b) for b in bodies]
                    runs["py leadpipe"] = measured(
                        lp_server,
                        uvloop.run,
                        closed_loop("leadpipe, client (signed, new people)", api_port, lp_requests, CONCURRENCY),
                    )
                    count = int(RATE * OPEN_S)
                    bodies = [form(person + i) for i in range(count)]
                    person += count
                    bare_requests = [
                        http_request(bare_port, "/bare", b, {"Content-Type": "application/json"}) for b in bodies
                    ]
                    runs["open bare"] = measured(
                        bare_server, uvloop.run, open_loop(f"bare, open loop {RATE}/s", bare_port, bare_requests, RATE)
                    )
                    lp_requests = [signed(api_port, b) for b in bodies]
                    runs["open leadpipe"] = measured(
                        lp_server,
                        uvloop.run,
                        open_loop(f"leadpipe, open loop {RATE}/s (signed, new)", api_port, lp_requests, RATE),
                    )
                    rounds.append(runs)
                    print(f"round {number} (load average {loadavg()}):")
                    for run in runs.values():
                        print("  " + run.line())
                    for kind in ("hey", "py"):
                        if f"{kind} bare" in runs:
                            lp_run, bare_run = runs[f"{kind} leadpipe"], runs[f"{kind} bare"]
                            print(
                                f"  ratio leadpipe / bare, closed loop ({kind}): {lp_run.rate / bare_run.rate:.2f}; "
                                f"CPU per request bare / leadpipe "
                                f"{bare_run.cpu_per_request_us / lp_run.cpu_per_request_us:.2f}"
                            )
                    sys.stdout.flush()
    finally:
        delete_prefixed_topics(settings)
        shutil.rmtree(home, ignore_errors=True)

    print(f"ingest over HTTP: {ROUNDS} round(s), {WORKERS} leadpipe worker(s), {CONCURRENCY} connections closed loop")
    print(f"  load average before {load_before}, after {loadavg()} (1, 5, 15 min; 2 cores)")
    for kind, name in (("hey", "hey, one repeat visitor"), ("py", "client, signed new people")):
        if f"{kind} bare" in rounds[0]:
            ratios = [r[f"{kind} leadpipe"].rate / r[f"{kind} bare"].rate for r in rounds]
            lp = [r[f"{kind} leadpipe"].rate for r in rounds]
            bare = [r[f"{kind} bare"].rate for r in rounds]
            lp_cpu = [r[f"{kind} leadpipe"].cpu_per_request_us for r in rounds]
            bare_cpu = [r[f"{kind} bare"].cpu_per_request_us for r in rounds]
            cpu_ratios = [b / lp for b, lp in zip(bare_cpu, lp_cpu, strict=True)]
            print(
                f"  closed loop ({name}): leadpipe {min(lp):.0f}-{max(lp):.0f} req/s, bare {min(bare):.0f}-"
                f"{max(bare):.0f} req/s, ratio {min(ratios):.2f}-{max(ratios):.2f} "
                f"(median {statistics.median(ratios):.2f}); server CPU per request leadpipe "
                f"{min(lp_cpu):.0f}-{max(lp_cpu):.0f} us, bare {min(bare_cpu):.0f}-{max(bare_cpu):.0f} us, "
                f"bare / leadpipe {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}"
            )
    for side in ("leadpipe", "bare"):
        runs = [r[f"open {side}"] for r in rounds]
        print(
            f"  open loop {RATE}/s, {side}: served {min(r.rate for r in runs):.0f}-{max(r.rate for r in runs):.0f}/s, "
            f"p50 {1000 * min(r.pct(50) for r in runs):.1f}-{1000 * max(r.pct(50) for r in runs):.1f} ms, "
            f"p99 {1000 * min(r.pct(99) for r in runs):.1f}-{1000 * max(r.pct(99) for r in runs):.1f} ms, "
            f"server CPU {min(r.cpu_per_request_us for r in runs):.0f}-{max(r.cpu_per_request_us for r in runs):.0f}"
            " us per request"
        )


if __name__ == "__main__":
    main()
