"""The front door's pure parts and its failure answers: record sizes against topics, the group commit's time bound,
fast failure while the key store or the brokers are down, partial publishes, the replay guard's memory."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from ingest_helpers import HMAC_SECRET, RecordingPublisher
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import OperationalError

from pipeline import normalize
from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.crypto import subject_scope
from pipeline.crypto.keystore import SubjectKey, Warmed
from pipeline.db import ensure_schema
from pipeline.ingest.api import body_limit, sign
from pipeline.ingest.coalesce import GroupCommit
from pipeline.ingest.replay import IngestReplay, ReplayGuard, ReplayKey
from pipeline.kafka.producer import BrokerHealth, Outgoing, PublishError
from pipeline.kafka.topics import BROKER_MAX_MESSAGE_BYTES
from pipeline.models.common import Channel
from pipeline.runtime import Runtime


def form(i: int, message: str = "Please call me") -> bytes:
    return f'{{"email": "person{i}@example.com", "message": "{message}"}}'.encode()


async def post_all(app: Any, bodies: Iterable[bytes]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/v1/sources/wp-contact",
                    content=body,
                    headers={"content-type": "application/json", **sign(HMAC_SECRET, body)},
                )
                for body in bodies
            )
        )


def test_each_channel_takes_what_its_topics_hold(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"ingest_max_body_bytes": 1_048_576})
    small = RecordingPublisher(limit_bytes=BROKER_MAX_MESSAGE_BYTES)
    limit = body_limit(settings, small, Channel.WEB_FORM)  # type: ignore[arg-type]
    # the sealed raw record (base64 of the body, nonce and tag, plus its fields) fits the topic's 1,048,588 bytes
    assert 760_000 < limit < 790_000 and (limit + 28) * 4 // 3 + 8192 <= BROKER_MAX_MESSAGE_BYTES
    big = RecordingPublisher(limit_bytes=10_485_760)
    assert body_limit(settings, big, Channel.EMAIL) == 1_048_576  # the API's own limit is the smaller one


def test_a_record_larger_than_its_topic_is_413_and_its_neighbours_are_accepted(runtime: Runtime) -> None:
    """Probe of issue 13: a body under the API limit but over the producer's made 500s, also for 9 of 120
    concurrent normal requests (3 of which were published all the same). Now the record is measured against its
    topic before anything is produced: 413 for it alone, 202 for the others, nothing published of the refused one."""
    publisher = RecordingPublisher(limit_bytes=6_000)  # a topic that takes little: the normalised record is larger
    app = create_api(runtime, publisher)  # type: ignore[arg-type]
    app.state.ingest.limits[Channel.WEB_FORM] = 64_000  # the early check lets it through: the record check decides
    bodies = [form(i) for i in range(40)] + [form(1000, "x" * 20_000)]
    responses = asyncio.run(post_all(app, bodies))
    statuses = [r.status_code for r in responses]
    assert statuses[:40] == [202] * 40 and statuses[40] == 413, [r.text for r in responses if r.status_code != 202]
    assert responses[40].json()["reason"] == "too_large" and "contacts." in responses[40].json()["message"]
    published = {str(r.value.event_id) for r in publisher.records if hasattr(r.value, "event_id")}
    answered = {i for r in responses[:40] for i in r.json()["event_ids"]}
    assert published == answered


def test_a_key_store_that_does_not_answer_is_503_in_bounded_time_and_nothing_is_produced_later(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RecordingPublisher()
    app = create_api(runtime, publisher)  # type: ignore[arg-type]
    service = app.state.ingest.service
    prepare_keys = service.prepare_keys

    def slow_keys(conn, batch):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return prepare_keys(conn, batch)

    monkeypatch.setattr(service, "prepare_keys", slow_keys)
    app.state.ingest.group._timeout_s = 0.2

    async def run() -> list[httpx.Response]:
        answers = await post_all(app, [form(1), form(2)])
        await asyncio.sleep(1.5)  # the slow seal finishes: its records must not be produced now
        return answers

    started = time.monotonic()
    responses = asyncio.run(run())
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["reason"] for r in responses} == {"ingest_timeout"}
    assert responses[0].headers["retry-after"] == "5"
    assert time.monotonic() - started < 3.0 and publisher.records == []


def test_while_the_key_store_is_down_requests_fail_fast(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def unavailable(conn: object, scopes: object) -> Warmed:
        calls.append(1)
        raise OperationalError("SELECT data_keys", {}, Exception("connection refused"))

    monkeypatch.setattr(runtime.keystore, "warm_in", unavailable)
    client = TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]
    answers = []
    for i in range(5):
        body = form(i)
        headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
        answers.append(client.post("/v1/sources/wp-contact", content=body, headers=headers))
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["reason"] for a in answers} == {"key_store_unavailable"}
    assert len(calls) == 1  # the others were refused at once (one probe per second goes through)


def test_while_the_brokers_are_unreachable_requests_fail_fast(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    publisher.health.down("_ALL_BROKERS_DOWN")
    body = form(1)
    started = time.monotonic()
    answer = client.post(
        "/v1/sources/wp-contact", content=body, headers={"content-type": "application/json", **sign(HMAC_SECRET, body)}
    )
    assert (answer.status_code, answer.json()["reason"]) == (503, "broker_unavailable")
    assert time.monotonic() - started < 1.0 and publisher.records == []


def test_a_partly_confirmed_request_says_so(client: TestClient, publisher: RecordingPublisher) -> None:
    def half(records: Any) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_exception(PublishError("1 of 2 records failed", delivered=1, total=2))
        return future

    publisher.send = half  # type: ignore[method-assign]
    body = form(1)
    answer = client.post(
        "/v1/sources/wp-contact", content=body, headers={"content-type": "application/json", **sign(HMAC_SECRET, body)}
    )
    assert (answer.status_code, answer.json()["reason"]) == (503, "partially_published")
    assert "1 of 2" in answer.json()["message"] and "same event ids" in answer.json()["message"]


def test_broker_health_follows_errors_and_deliveries() -> None:
    from confluent_kafka import KafkaError

    clock = [0.0]
    health = BrokerHealth(probe_interval_s=1.0, clock=lambda: clock[0])
    health.on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert health.available  # a refused record says nothing about the brokers
    health.on_error(KafkaError(KafkaError._TRANSPORT))
    assert health.available  # one connection's hiccup neither
    health.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert not health.available and not health.admit() and not health.probe_due()
    clock[0] = 1.5
    assert not health.admit()  # no request goes through as a probe: each would wait the whole timeout
    assert health.probe_due() and not health.probe_due()  # the publisher's metadata probe, once per interval
    health.on_delivery(None)
    assert health.available and health.admit()


def test_the_replay_memory_forgets_expired_signatures_and_is_bounded() -> None:
    now = [1000.0]
    guard = ReplayGuard(None, max_entries=3, clock=lambda: now[0])
    ids = (uuid.uuid4(),)
    keys = [ReplayKey.of("src", f"sha256={i:064x}", timestamp=1000, tolerance_s=300) for i in range(4)]

    async def run() -> None:
        for key in keys:
            guard.begin(key)
            guard.finish(key, ids)

    asyncio.run(run())
    assert guard.answered(keys[0]) is None  # evicted: the fourth pushed out the oldest (the database has it)
    assert guard.answered(keys[3]) == ids
    now[0] = 1300.0
    assert guard.answered(keys[3]) is None  # its timestamp left the window: a replay would be refused anyway
    assert not guard.has_unstored  # without a store nothing waits for a trip (a sealer would make them forever)
    assert len(guard.take_unstored()) == 4


def test_records_are_measured_once_encoded() -> None:
    record = Outgoing("contacts.normalized", "sk_x", b"x" * 100)
    assert record.payload is record.payload and record.size == 100 + 4 + 512


def _signed(client: TestClient, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
    return client.post("/v1/sources/wp-contact", content=body, headers=headers)


def test_a_batch_stores_its_signatures_and_keys_in_one_transaction(runtime: Runtime) -> None:
    """The group commit's database trip: the signatures accepted before, the batch's replay lookup and its new data
    keys share one commit (two cost ~6 of a ~17 ms trip at 1,000 requests/s), on the connection the sealer keeps
    (a pool checkout per trip cost a ping and a reset)."""
    client = TestClient(create_api(runtime, RecordingPublisher()))  # type: ignore[arg-type]
    assert _signed(client, form(1)).status_code == 202  # its signature waits to be stored by the next trip
    checkouts: list[object] = []
    commits: list[object] = []
    event.listen(runtime.engine, "checkout", lambda *args: checkouts.append(args))
    event.listen(runtime.engine, "commit", commits.append)
    assert _signed(client, form(2)).status_code == 202  # a new person: a new data key
    assert (len(checkouts), len(commits)) == (0, 1)
    with runtime.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(IngestReplay)).scalar_one()
    assert stored == 1  # the first request's signature; the second's waits for the next trip


def test_trips_start_the_gap_apart_under_load_and_an_idle_request_goes_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trip's fixed CPU paid every few requests was ~40 % of the door's CPU at 1,000 requests/s: the requests that
    arrive within ``trip_gap_s`` of the last trip's start share the next one; after a quiet spell, no wait."""
    starts: list[float] = []
    warm_in = runtime.keystore.warm_in

    def timed_warm(conn: Connection, scopes: Iterable[str]) -> Warmed:
        starts.append(time.monotonic())
        return warm_in(conn, scopes)

    monkeypatch.setattr(runtime.keystore, "warm_in", timed_warm)
    app = create_api(runtime, RecordingPublisher())  # type: ignore[arg-type]
    gap = 1.0
    ingest = app.state.ingest
    ingest.group = GroupCommit(ingest.service, ingest.group.replays, trip_gap_s=gap)

    async def run() -> tuple[float, list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def post(i: int) -> httpx.Response:
                body = form(i)
                headers = {"content-type": "application/json", **sign(HMAC_SECRET, body)}
                return await client.post("/v1/sources/wp-contact", content=body, headers=headers)

            begun = time.monotonic()
            first = asyncio.create_task(post(0))
            while not starts:  # the first trip started (the sealer's thread): the others come within its gap
                await asyncio.sleep(0.005)
            idle_s = starts[0] - begun
            later = []
            for i in range(1, 6):  # one every 20 ms: back to back, each would be a trip of its own
                later.append(asyncio.create_task(post(i)))
                await asyncio.sleep(0.02)
            return idle_s, [await first, *await asyncio.gather(*later)]

    idle_s, answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [202] * 6
    assert idle_s < gap  # the first request's trip did not wait for the gap
    assert len(starts) == 2, starts  # the five later ones shared one trip
    assert starts[1] - starts[0] >= gap * 0.99


def test_a_connection_the_server_closed_between_trips_costs_no_request(ingest_settings: Settings, pg_url: str) -> None:
    """The sealer keeps its connection from trip to trip, unpinged: one the server closed meanwhile (a restart, a
    failover) is replaced within the trip that finds it closed, and its requests are accepted."""
    runtime = Runtime(ingest_settings.model_copy(update={"database_url": pg_url}))
    ensure_schema(runtime.engine)
    publisher = RecordingPublisher()
    client = TestClient(create_api(runtime, publisher))  # type: ignore[arg-type]
    assert _signed(client, form(1)).status_code == 202
    with psycopg.connect(pg_url, autocommit=True) as admin:
        closed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert closed, "the sealer's connection was open"
    answer = _signed(client, form(2))
    assert answer.status_code == 202, answer.text
    assert len(publisher.records) == 4  # two records per request, none lost
    runtime.engine.dispose()


def test_a_failed_key_load_rolls_back_the_trip_and_keeps_the_signatures_for_the_next(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replays stored and the keys created in a trip commit together or not at all: a key created in a
    transaction that rolled back must never seal, and the signatures it would have stored wait for the next trip."""
    app = create_api(runtime, RecordingPublisher())  # type: ignore[arg-type]
    client = TestClient(app)
    guard: ReplayGuard = app.state.ingest.group.replays
    assert _signed(client, form(1)).status_code == 202
    warm_in = runtime.keystore.warm_in

    def created_then_lost(conn: Connection, scopes: Iterable[str]) -> Warmed:
        warm_in(conn, scopes)  # the new person's key is inserted in the trip's transaction...
        raise OperationalError("SELECT data_keys", {}, Exception("server closed the connection"))  # ...then lost

    monkeypatch.setattr(runtime.keystore, "warm_in", created_then_lost)
    answer = _signed(client, form(2))
    assert (answer.status_code, answer.json()["reason"]) == (503, "key_store_unavailable")
    assert guard.has_unstored  # the first request's signature was handed back
    person = normalize.subject_key(runtime.pepper, email="person2@example.com")
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IngestReplay)).scalar_one() == 0
        assert conn.execute(select(SubjectKey).where(SubjectKey.scope == subject_scope(person))).first() is None
    assert subject_scope(person) not in runtime.keystore._active  # never cached: it does not exist

    monkeypatch.setattr(runtime.keystore, "warm_in", warm_in)
    group = app.state.ingest.group
    group.keystore.up()  # the key store answers again
    assert _signed(client, form(3)).status_code == 202
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IngestReplay)).scalar_one() == 1
