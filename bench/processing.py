"""The processing chain's speed against the real broker, next to a raw pass-through measured in the same run.

1. Baseline: a raw confluent-kafka consume-and-produce pass-through (one consumer, one producer, same payloads,
   same partitions) drains N pre-loaded records; records/s from the first record consumed to the last delivered.
   A discarded pass over ``BENCH_WARMUP`` records runs first, so that the baseline does not pay for the broker's
   JIT warm-up after a start (which would flatter every ratio; once seen here: 51,500/s in the warm-up pass on a
   broker started seconds before, 60,500/s in the measured pass right after).
2. Harness: the same worker with its step replaced by a pass-through (``bench/_passthrough_agent.py``) drains the
   same N records on topics of its own: what the batch agent, transactions and sends cost without any rule.
3. Throughput: ``leadpipe worker`` (processing agent only, exactly_once, one process) drains the same N sealed
   ContactRecords pre-loaded on ``contacts.normalized``; events/s from the first to the last output visible to a
   read_committed consumer (accepted + quarantine + drops + dead letters). For this and the harness the bench also
   prints the worker's CPU time per event while it drains (``DrainCpu``), steadier than the rate on a shared
   machine. The spam engine is off in every worker here: the chain runs the policy's rules alone
   (``bench/spam.py`` measures the engine).
4. Latency: with the worker warm, M more events are produced at a fixed rate; end-to-end latency per event is the
   time from its produce call to its output being visible to a read_committed consumer (this includes the
   transaction commit interval, ``worker_commit_interval_s``).
5. Scale-out (``BENCH_SCALE=1``, the default): the same N events on ``BENCH_SCALE_PARTITIONS`` (6) partitions,
   drained by one worker, then by two worker processes in one consumer group (the ratio of the two), then by two
   again with one of them killed (SIGKILL) half-way and restarted: every event must come out exactly once
   (read_committed: the outputs counted, not only the distinct events), nothing lost, nothing twice.

The events are a mix: web forms, chat, e-mail, customers (restarting clock), ~5% honeypot spam (quarantined),
~2% children (dropped). Synthetic, sealed with per-subject keys in a SQLite key store, ~1.4 KB each.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/processing.py
    # BENCH_N=20000 BENCH_LATENCY_N=2000 BENCH_LATENCY_RATE=500 BENCH_PARTITIONS=1 BENCH_WARMUP=10000
    # BENCH_SCALE=1 BENCH_SCALE_PARTITIONS=6
"""

from __future__ import annotations

import base64
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import Consumer, ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.agents.launch import WorkerProcess, worker_env
from pipeline.config import Settings, explicit_settings
from pipeline.crypto.sealing import subject_scope
from pipeline.db import ensure_schema
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance
from pipeline.runtime import Runtime

N = int(os.environ.get("BENCH_N", "20000"))
LATENCY_N = int(os.environ.get("BENCH_LATENCY_N", "2000"))
LATENCY_RATE = float(os.environ.get("BENCH_LATENCY_RATE", "500"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "1"))
WARMUP = int(os.environ.get("BENCH_WARMUP", str(min(N, 10_000))))
SCALE = os.environ.get("BENCH_SCALE", "1") not in ("", "0")
SCALE_PARTITIONS = int(os.environ.get("BENCH_SCALE_PARTITIONS", "6"))
OUTPUTS = ("contacts.accepted", "contacts.quarantine", "contacts.drops", "contacts.dlq")

MESSAGES = [
    "We are looking for a team to build a data platform on Kubernetes; can we talk next week?",
    "Please send the white paper on cloud-native migration and pricing for a pilot.",
    "Our CRM integration keeps failing on large imports, we need an expert's opinion.",
]
KINDS = [
    (Channel.WEB_FORM, InteractionKind.CONTACT_US),
    (Channel.WEB_FORM, InteractionKind.WHITE_PAPER),
    (Channel.CHATBOT, InteractionKind.CHAT),
    (Channel.EMAIL, InteractionKind.EMAIL),
    (Channel.CUSTOMER, InteractionKind.CUSTOMER_RECORD),
]


def synthetic(i: int, rng: random.Random) -> ContactEvent:
    now = datetime.now(UTC)
    channel, kind = rng.choice(KINDS)
    roll = rng.random()
    interaction: dict[str, object] = {"kind": kind, "message": rng.choice(MESSAGES)}
    if roll < 0.05:
        interaction["honeypot"] = "filled"
    elif roll < 0.07:
        interaction["message"] = "Hi, I am 14 years old and love coding"
    if channel is Channel.CUSTOMER:
        interaction["last_service_delivery_at"] = now - timedelta(days=rng.randint(1, 900))
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=channel,
        occurred_at=now,
        received_at=now,
        subject_key=f"sk_bench_{i:010d}_{rng.getrandbits(40):010x}",
        person=Person(
            first_name="Jane",
            last_name=f"Doe{i}",
            email=f"jane.doe{i}@example{i % 97}.com",
            company="Example Corp",
            position="CTO",
        ),
        interaction=Interaction(**interaction),  # type: ignore[arg-type]
        provenance=Provenance(source_id="bench", form_id="contact", ip=f"10.{i % 250}.{(i // 250) % 250}.{i % 199}"),
    )


class OutputReader(threading.Thread):
    """Reads the output topics (read_committed) and notes when each event id became visible."""

    def __init__(self, servers: str, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.subscribe(topics)
        self.seen: dict[str, float] = {}
        self.outputs = 0
        """Records with an event id seen (one per event on these topics when each event came out once)."""
        self.first: float | None = None
        self.last: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for message in self.consumer.consume(1000, 0.05):
                if message.error() or message.value() is None:
                    continue
                now = time.perf_counter()
                event_id = orjson.loads(message.value()).get("event_id")
                if event_id is not None:
                    self.seen.setdefault(event_id, now)
                    self.outputs += 1
                self.first = self.first or now
                self.last = now
        self.consumer.close()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def produce_all(servers: str, topic: str, payloads: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, "compression.type": "zstd"})
    for key, value in payloads:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("could not pre-load the input topic")


def raw_passthrough(servers: str, prefix: str, payloads: list[tuple[str, bytes]]) -> float:
    """Baseline: consume each record and produce it unchanged to another topic; records/s."""
    source, sink = f"{prefix}bench.raw.in", f"{prefix}bench.raw.out"
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (source, sink)]).values():
        future.result()
    produce_all(servers, source, payloads)
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, "compression.type": "zstd"})
    consumer.subscribe([source])
    done, start = 0, None
    while done < len(payloads):
        for message in consumer.consume(1000, 1.0):
            if message.error():
                continue
            start = start or time.perf_counter()
            while True:
                try:
                    producer.produce(sink, message.value(), message.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            done += 1
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    admin.delete_topics([source, sink])
    return len(payloads) / elapsed


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DrainCpu:
    """The worker's CPU time per event while it drains: from its first output seen to its last (start-up left out).

    On a shared machine the wall-clock rate swings with the other processes; the CPU time the worker itself spends
    per event swings much less (it still grows when the other core's process competes for the caches), so the
    bench prints both.
    """

    def __init__(self, pid: int, reader: OutputReader, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while reader.first is None and time.monotonic() < deadline:
            time.sleep(0.005)
        self.pid, self.reader = pid, reader
        self.start, self.seen = cpu_seconds(pid), len(reader.seen)

    def per_event_us(self) -> float:
        """CPU microseconds per event since the first output; call once every event came out."""
        return (cpu_seconds(self.pid) - self.start) * 1e6 / max(len(self.reader.seen) - self.seen, 1)


def bench_settings(servers: str, home: Path, partitions: int = PARTITIONS) -> Settings:
    """Settings of one measured worker: its own topic prefix, so each run reads only its own records."""
    return explicit_settings(
        environment="test",
        home=home,
        kafka_bootstrap_servers=servers,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        topic_partitions=partitions,
        subject_key_pepper="bench-pepper",
        key_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        log_level="WARNING",
        # The chain and the policy's rules alone: the spam engine is rspamd over HTTP, measured by bench/spam.py
        # (~400 messages/s). Left on with no engine listening, every event paid a refused connection and was
        # quarantined as ``spam_engine_unavailable``, which is neither the chain's speed nor its outputs.
        spam_engine_enabled=False,
    )


def harness_only(servers: str, home: Path, payloads: list[tuple[str, bytes]]) -> tuple[float, float]:
    """The same worker with a pass-through step (``bench/_passthrough_agent.py``) drains the same records.

    Returns (events/s, the worker's CPU microseconds per event while draining)."""
    settings = bench_settings(servers, home)
    apply_topics(settings)
    produce_all(servers, settings.topic("contacts.normalized"), payloads)
    reader = OutputReader(servers, [settings.topic("contacts.accepted")])
    reader.start()
    bench_dir = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (bench_dir, os.environ.get("PYTHONPATH", "")) if p)
    worker = WorkerProcess(
        settings,
        home / "harness.log",
        registrars=["_passthrough_agent:register"],
        env=worker_env(settings, PYTHONPATH=path),
    ).start()
    try:
        assert worker.process is not None
        cpu = DrainCpu(worker.process.pid, reader, timeout_s=120.0)
        if not reader.wait_for(len(payloads), timeout_s=max(120.0, len(payloads) / 100)):
            raise SystemExit(f"harness: only {len(reader.seen)} of {len(payloads)} arrived; see {home / 'harness.log'}")
        assert reader.first is not None and reader.last is not None
        return len(payloads) / (reader.last - reader.first), cpu.per_event_us()
    finally:
        reader.stop.set()
        worker.stop()
        reader.join(10)
        delete_prefixed_topics(settings)


def wait_for_group(settings: Settings, members: int, timeout_s: float = 180.0) -> None:
    """Until the workers' consumer group is stable with ``members`` members, each with partitions assigned."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    group = settings.topic(settings.app_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result()
        assigned = [m for m in description.members if m.assignment and m.assignment.topic_partitions]
        if description.state is ConsumerGroupState.STABLE and len(assigned) == members:
            return
        time.sleep(0.5)
    raise SystemExit(f"the consumer group {group} did not settle with {members} members in {timeout_s:.0f} s")


def scale_out(base: Settings, payloads: list[tuple[str, bytes]], workers: int, *, kill: bool) -> tuple[float, int]:
    """The records on ``SCALE_PARTITIONS`` partitions drained by ``workers`` processes in one group.

    Returns (events/s, outputs seen).

    ``kill``: the last worker is killed (SIGKILL: no commit, no leaving the group) once half the events came out and
    started again a second later, as its orchestrator would (static membership: the same instance id takes its
    partitions back without a rebalance), and redoes the work of its transactions that were open.
    """
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"{base.topic_prefix}scale{run}.",
            "topic_partitions": SCALE_PARTITIONS,
            "worker_instance_id": f"scale-{run}",
        }
    )
    servers, home = settings.kafka_bootstrap_servers, settings.home
    apply_topics(settings)
    reader = OutputReader(servers, [settings.topic(t) for t in OUTPUTS])
    reader.start()
    processes = [
        WorkerProcess(
            settings,
            home / f"scale-{workers}{'-kill' if kill else ''}-{n}.log",
            registrars=["pipeline.agents.processing:register"],
            env=worker_env(settings, LEADPIPE_WORKER_INSTANCE_ID=f"{settings.worker_instance_id}-{n}"),
        ).start()
        for n in range(workers)
    ]
    try:
        wait_for_group(settings, workers)  # the records come once every worker has its partitions: no rebalance timed
        produce_all(servers, settings.topic("contacts.normalized"), payloads)
        timeout_s = max(180.0, len(payloads) / 50)
        if kill:
            if not reader.wait_for(len(payloads) // 2, timeout_s):
                raise SystemExit(f"scale-out: half the events did not come out; logs in {home}")
            processes[-1].kill()
            time.sleep(1.0)
            processes[-1].start()  # as its orchestrator would: the same instance id takes its place again
        if not reader.wait_for(len(payloads), timeout_s):
            raise SystemExit(f"scale-out: only {len(reader.seen)} of {len(payloads)} came out; logs in {home}")
        time.sleep(2 if kill else 0)  # a duplicate committed late would show now
        assert reader.first is not None and reader.last is not None
        return len(payloads) / (reader.last - reader.first), reader.outputs
    finally:
        reader.stop.set()
        for process in processes:
            process.stop()
        reader.join(10)
        delete_prefixed_topics(settings)


def main() -> None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS (make bench starts a broker and sets it)")
    home = Path(tempfile.mkdtemp(prefix="leadpipe-bench-"))
    settings = bench_settings(servers, home)
    apply_topics(settings)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    rng = random.Random(42)
    events = [synthetic(i, rng) for i in range(N + LATENCY_N)]
    runtime.keystore.warm(subject_scope(e.subject_key) for e in events)
    payloads = [(e.subject_key, runtime.codec.seal_contact(e).model_dump_json().encode()) for e in events]
    print(f"events: {N} (+{LATENCY_N} for latency), ~{sum(len(p[1]) for p in payloads) // len(payloads)} bytes each")
    print(
        f"partitions: {PARTITIONS}, one worker process, processing_guarantee=exactly_once, spam engine off (the "
        "policy's rules alone; bench/spam.py measures the engine)"
    )

    if WARMUP:
        warm = raw_passthrough(servers, f"{settings.topic_prefix}warmup.", payloads[:WARMUP])
        print(f"broker warm-up (discarded): {WARMUP} records, {warm:,.0f} records/s")
    baseline = raw_passthrough(servers, settings.topic_prefix, payloads[:N])
    print(f"baseline raw confluent-kafka consume+produce pass-through: {baseline:,.0f} records/s")
    harness, harness_cpu = harness_only(servers, home, payloads[:N])
    print(f"harness only (leadpipe worker, pass-through step): {harness:,.0f} events/s, {harness_cpu:,.0f} us CPU/ev")

    produce_all(servers, settings.topic("contacts.normalized"), payloads[:N])
    reader = OutputReader(servers, [settings.topic(t) for t in OUTPUTS])
    reader.start()
    worker = WorkerProcess(
        settings,
        home / "worker.log",
        registrars=["pipeline.agents.processing:register"],
        env=worker_env(settings),
    ).start()
    try:
        assert worker.process is not None
        cpu = DrainCpu(worker.process.pid, reader, timeout_s=120.0)
        if not reader.wait_for(N, timeout_s=max(120.0, N / 100)):
            raise SystemExit(f"only {len(reader.seen)} of {N} outputs arrived; see {home / 'worker.log'}")
        assert reader.first is not None and reader.last is not None
        chain_cpu = cpu.per_event_us()
        cpu_after_drain = cpu_seconds(worker.process.pid)
        throughput = N / (reader.last - reader.first)
        print(f"processing chain (leadpipe worker): {throughput:,.0f} events/s, {chain_cpu:,.0f} us CPU/event")
        print(f"ratio chain/baseline: {throughput / baseline:.3f}; harness/baseline: {harness / baseline:.3f}")
        per_event, harness_per_event = 1e6 / throughput, 1e6 / harness
        print(
            f"per event: {per_event:,.0f} us in the worker, of which the harness {harness_per_event:,.0f} us and the "
            f"step ~{per_event - harness_per_event:,.0f} us"
        )

        sent: dict[str, float] = {}
        interval = 1.0 / LATENCY_RATE
        producer = Producer({"bootstrap.servers": servers, "linger.ms": 0})
        topic = settings.topic("contacts.normalized")
        next_at = time.perf_counter()
        for event, (key, value) in zip(events[N:], payloads[N:], strict=True):
            while (now := time.perf_counter()) < next_at:
                time.sleep(min(interval, next_at - now))
            sent[str(event.event_id)] = time.perf_counter()
            producer.produce(topic, value, key)
            producer.poll(0)
            next_at += interval
        producer.flush(30)
        if not reader.wait_for(N + LATENCY_N, timeout_s=120):
            raise SystemExit(f"only {len(reader.seen) - N} of {LATENCY_N} latency events arrived")
        latencies = sorted((reader.seen[k] - t) * 1000 for k, t in sent.items())
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"end-to-end latency at {LATENCY_RATE:,.0f} events/s: p50 {p50:,.0f} ms, p99 {p99:,.0f} ms "
            f"(commit interval {settings.worker_commit_interval_s * 1000:.0f} ms)"
        )
        print(f"worker CPU while draining: {cpu_after_drain:.1f} s for {N} events (includes start-up)")
        print(
            f"worker CPU per event while draining: chain {chain_cpu:,.0f} us, harness {harness_cpu:,.0f} us "
            f"(CPU-bound rate {1e6 / max(chain_cpu, 1.0):,.0f} events/s; the step ~{chain_cpu - harness_cpu:,.0f} us)"
        )
    finally:
        reader.stop.set()
        worker.stop()
        reader.join(10)
        delete_prefixed_topics(settings)
        runtime.engine.dispose()
    if SCALE:
        one, _ = scale_out(settings, payloads[:N], 1, kill=False)
        two, _ = scale_out(settings, payloads[:N], 2, kill=False)
        killed, outputs = scale_out(settings, payloads[:N], 2, kill=True)
        print(
            f"scale-out on {SCALE_PARTITIONS} partitions: one worker {one:,.0f} events/s, "
            f"two in one group {two:,.0f} events/s"
        )
        print(f"ratio two/one: {two / one:.2f} (both processes, the broker and the client share this machine's cores)")
        print(
            f"two workers, one killed half-way and restarted: {killed:,.0f} events/s; {outputs} outputs for {N} events "
            f"({'exactly once' if outputs == N else f'{outputs - N:+d}: NOT exactly once'})"
        )
        if outputs != N:
            raise SystemExit("exactly-once broken across the kill")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end")
    print(f"target: >= 10,000 events/s per worker process (0.15 of raw or better); worker log: {home / 'worker.log'}")


if __name__ == "__main__":
    main()
