"""The real rspamd (+ Redis) through leadpipe's client: scoring, learning once per event, the classifier's store,
an engine restart, an engine that is down or hangs. Offline, as the launcher configures it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.kafka.launcher import free_port
from pipeline.models.spam import EngineMessage, EngineUnavailable, EngineVerdict
from pipeline.spam.classifier import feature_key, features
from pipeline.spam.engine import SpamEngineClient
from pipeline.spam.launcher import LocalSpamEngine
from pipeline.spam.render import render_message
from pipeline.spam.store import ClassifierStore

pytestmark = [pytest.mark.integration]

HAM = (
    b"From: Ana Garcia <ana@example.com>\r\nTo: sales@example.com\r\nSubject: Demo request\r\n"
    b"Date: Fri, 05 Dec 2025 10:00:00 +0000\r\nMessage-ID: <%s@example.com>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello, we would like a demo next week. %s\r\n"
)
FAKE_REPLY = (
    b"From: Winner Dept <win@example.net>\r\nTo: sales@example.com\r\nSubject: Re: your prize\r\n"
    b"Date: Fri, 05 Dec 2025 10:00:00 +0000\r\nMessage-ID: <%s@example.net>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nYou have won. Reply with your bank details. %s\r\n"
)


WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def _message(template: bytes) -> EngineMessage:
    """A message no earlier run sent: rspamd knows a message by its words (it skips a hex string), so the
    uniqueness is spelt in words."""
    event_id = uuid.uuid4()
    words = " ".join(WORDS[int(digit, 16)] for digit in event_id.hex[:20]).encode()
    return EngineMessage(event_id=event_id, data=template % (event_id.hex.encode(), words), ip="203.0.113.5")


def _client(engine: Any, timeout_s: float = 10.0) -> SpamEngineClient:
    return SpamEngineClient(engine.url, engine.controller_url, timeout_s=timeout_s, concurrency=4)


def test_scores_many_messages_in_order_with_symbols_and_weights(spam_engine: Any) -> None:
    messages = [_message(FAKE_REPLY if i % 2 else HAM) for i in range(12)]

    with _client(spam_engine) as client:
        results = client.score_many(messages)
    assert all(isinstance(r, EngineVerdict) for r in results)
    for index, result in enumerate(results):
        names = {s.name: s.weight for s in result.symbols}
        assert ("FAKE_REPLY" in names) == bool(index % 2)  # each answer belongs to its own message
        assert result.score == pytest.approx(sum(names.values()), abs=0.01)
    assert not any(s.name.startswith("__") for r in results for s in r.symbols)


def test_a_rendered_form_is_a_message_the_engine_reads(spam_engine: Any) -> None:
    from processor_events_for_spam import form_event

    event = form_event("Please send pricing for 40 seats.")

    with _client(spam_engine) as client:
        verdict = client.score(render_message(event))
    assert isinstance(verdict, EngineVerdict)
    names = {s.name: s.weight for s in verdict.symbols}
    assert "MIME_GOOD" in names and "MISSING_SUBJECT" not in names and "MISSING_MID" not in names
    assert names["DATE_IN_PAST"] == 0  # the event is from 2025: the rule fires, and weighs nothing offline


def _learn_again(client: SpamEngineClient, message: EngineMessage, label: Any) -> str:
    """A repeated learn's status once rspamd recorded the first: it writes the learned message's digest to Redis
    without waiting (measured: a repeat sent at once on a loaded machine was learned again, 1 run in 5). This is
    why leadpipe keeps its own per-event record (``SpamSignals.learn``). Half a second was once too little in a
    full run at load ~1.5 (the private engine's repeat was learned again); two seconds leave room."""
    time.sleep(2.0)
    return client.learn(message, label).status


def test_learning_is_once_per_message_and_class(spam_engine: Any) -> None:
    message = _message(FAKE_REPLY)

    with _client(spam_engine) as client:
        first = client.learn(message, "spam")
        again = _learn_again(client, message, "spam")
        flipped = client.learn(message, "ham")
        flipped_again = _learn_again(client, message, "ham")
    assert first.status == "learned" and first.event_id == message.event_id
    assert again == "duplicate"
    assert flipped.status == "learned"  # a reviewer's reversal: rspamd moves it to the other class
    assert flipped_again == "duplicate"


def test_classifier_store_is_idempotent_per_event_and_relearns(spam_engine: Any) -> None:
    store = ClassifierStore.connect("127.0.0.1", spam_engine.redis_port, prefix=f"test:{uuid.uuid4().hex}")
    try:
        keys = [feature_key(b"pepper", f) for f in features("cheap backlinks seo")]
        event_id = uuid.uuid4()
        assert store.learn(event_id, "spam", keys).status == "learned"
        assert store.learn(event_id, "spam", keys).status == "duplicate"
        model = store.load()
        assert (model.spam_docs, model.ham_docs) == (1, 0) and all(model.counts[k] == [1, 0] for k in keys)
        assert store.learn(event_id, "ham", keys).status == "relearned"  # a reviewer changed their mind
        model = store.load()
        assert (model.spam_docs, model.ham_docs) == (1 - 1, 1) and all(model.counts[k] == [0, 1] for k in keys)
        other = uuid.uuid4()
        assert store.learn(other, "ham", keys[:1]).status == "learned"
        assert store.load().counts[keys[0]] == [0, 2]
    finally:
        store.clear()
    assert store.load().counts == {}


def test_classifier_store_down_is_a_typed_outcome() -> None:
    store = ClassifierStore.connect("127.0.0.1", free_port(), timeout_s=0.5)
    started = time.perf_counter()
    outcome = store.learn(uuid.uuid4(), "spam", ["a"])
    assert outcome.status == "unavailable" and outcome.detail == "ConnectionError"
    assert time.perf_counter() - started < 1.5  # no retries with back-off on a refused connection


# ---- an engine of this module's own: stopped, hung and restarted without disturbing the session's ----------------


def _recognised_in_time(client: SpamEngineClient, message: EngineMessage, label: Any, attempts: int = 3) -> list[str]:
    """The statuses of repeats of a learned message, 2 s apart, until one is ``duplicate`` (at most ``attempts``).

    A private engine started for this module learnt the repeat 2 s later again in 3 of 14 runs at load ~0.5
    (measured 2026-12-07; a throwaway message learnt and recognised first did not prevent it): when rspamd records
    a learned message's digest varies more than one wait covers. What this module tests is that the record, once
    made, survives a restart, so it waits for the record to exist."""
    statuses: list[str] = []
    while len(statuses) < attempts and "duplicate" not in statuses:
        statuses.append(_learn_again(client, message, label))
    return statuses


def test_engine_down_is_a_quick_typed_result_and_learning_survives_a_restart(private_engine: LocalSpamEngine) -> None:
    message = _message(HAM)

    def learn_until_recognised() -> tuple[str, list[str]]:
        with _client(private_engine) as client:
            return client.learn(message, "ham").status, _recognised_in_time(client, message, "ham")

    first, repeats = learn_until_recognised()
    assert first == "learned" and repeats[-1] == "duplicate", repeats
    store = redis.Redis(port=private_engine.redis_port)
    learned_before = set(store.hkeys("learned_ids"))  # rspamd's record of the messages it learned
    assert learned_before

    assert private_engine.stop_rspamd()

    with _client(private_engine, timeout_s=5.0) as client:
        started = time.perf_counter()
        results = client.score_many([_message(HAM) for _ in range(20)], budget_s=5.0)
        learned = client.learn(_message(HAM), "spam")
        elapsed = time.perf_counter() - started
    assert all(isinstance(r, EngineUnavailable) and r.reason == "unreachable" for r in results)
    assert learned.status == "unavailable"
    assert elapsed < 3.0  # refused connections answer at once, long before the 5 s budget

    private_engine.up()
    with _client(private_engine) as client:
        probe = _message(HAM)  # the restarted engine records and recognises repeats again before the real check
        assert client.learn(probe, "ham").status == "learned"
        assert _recognised_in_time(client, probe, "ham")[-1] == "duplicate"
    # Redis kept what was learned before the restart. Not asked through a repeat learn: right after a restart
    # rspamd answered a recorded message's repeat "learned" again in 1 full run of ~15 (2026-12-07), so its own
    # answer is not a reliable witness; the record it reads is.
    assert learned_before <= set(store.hkeys("learned_ids"))


def test_a_hung_engine_costs_one_budget_per_batch(private_engine: LocalSpamEngine) -> None:
    """The normal workers stopped with SIGSTOP: connections are accepted, nothing answers."""
    workers = _normal_workers(private_engine)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        with _client(private_engine, timeout_s=3.0) as client:
            started = time.perf_counter()
            results = client.score_many([_message(HAM) for _ in range(10)], budget_s=1.0)
            elapsed = time.perf_counter() - started
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    assert all(isinstance(r, EngineUnavailable) and r.reason == "timeout" for r in results)
    assert 0.9 < elapsed < 4.0


def _normal_workers(engine: LocalSpamEngine) -> list[int]:
    main = engine.status().pids[0]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == main and b"normal process" in title:
            pids.append(int(entry.name))
    return pids


def test_redis_keeps_the_classifier_across_its_own_restart(private_engine: LocalSpamEngine) -> None:
    store = ClassifierStore(redis.Redis(port=private_engine.redis_port), prefix="restart")
    assert store.learn(uuid.uuid4(), "spam", ["sym:X"]).status == "learned"
    private_engine.down()
    private_engine.up()
    assert store.load().counts == {"sym:X": [1, 0]}


def test_shared_by_two_users_stopped_by_the_last_and_restarted_on_a_new_configuration(
    private_engine: LocalSpamEngine,
) -> None:
    """Two launchers of one directory (two test sessions): the second adopts, the first to let go leaves it running,
    the last stops it; a launcher whose configuration differs restarts rspamd with its own."""
    ports = {"port": private_engine.port, "controller_port": private_engine.controller_port}
    other = LocalSpamEngine(private_engine.root, redis_port=private_engine.redis_port, **ports)
    status = other.up()
    assert status.running and not other.started_here  # adopted, not started again
    assert private_engine.release() is False  # the other still uses it
    assert private_engine.status().running
    assert other.release() is True  # the last user stops it
    assert not private_engine.status().running and not _answers(private_engine)

    changed = LocalSpamEngine(private_engine.root, redis_port=private_engine.redis_port, min_learns=7, **ports)
    changed.up()
    first_pid = changed.status().pids[0]
    assert "min_learns = 7;" in (changed.rspamd_dir / "local.d" / "classifier-bayes.conf").read_text()
    private_engine.up()  # min_learns 200 again: rspamd restarts with it
    assert private_engine.status().pids[0] != first_pid
    assert "min_learns = 200;" in (changed.rspamd_dir / "local.d" / "classifier-bayes.conf").read_text()
    changed.release()  # private_engine still holds it: it keeps running for the other tests
    assert private_engine.status().running


def _answers(engine: LocalSpamEngine) -> bool:
    with _client(engine, timeout_s=1.0) as client:
        return client.ready()


def test_signals_of_a_batch_and_learning_a_decision(spam_engine: Any) -> None:
    """What the agent will call: only events with the person's words reach the engine; a decision teaches both."""
    from processor_events_for_spam import form_event

    from pipeline.models.common import Channel, InteractionKind
    from pipeline.models.contact import Interaction
    from pipeline.spam.signals import SpamSignals

    unique = " ".join(WORDS[int(digit, 16)] for digit in uuid.uuid4().hex[:20])  # rspamd remembers across runs
    form = form_event(f"Cheap backlinks and guaranteed first page ranking, order now. {unique}")
    page_view = form_event("").model_copy(
        update={
            "event_id": uuid.uuid4(),
            "channel": Channel.WEBSITE,
            "interaction": Interaction(kind=InteractionKind.PAGE_VIEW, page_url="https://example.com/pricing"),
        }
    )
    prefix = f"test:{uuid.uuid4().hex}"
    store = ClassifierStore.connect("127.0.0.1", spam_engine.redis_port, prefix=prefix)
    try:
        with _client(spam_engine) as client:
            signals = SpamSignals(client, store, b"pepper", budget_s=10.0)
            engine, classifier = signals.for_batch([(form, None), (page_view, None)])
            assert set(engine) == set(classifier) == {form.event_id}
            assert isinstance(engine[form.event_id], EngineVerdict)
            assert classifier[form.event_id].spam_learns == 0 and classifier[form.event_id].log_odds == 0

            engine_outcome, classifier_outcome = signals.learn(form, None, "spam", engine[form.event_id])
            assert engine_outcome is not None and engine_outcome.status == "learned"
            assert classifier_outcome is not None and classifier_outcome.status == "learned"
            again = signals.learn(form, None, "spam", engine[form.event_id])
            assert [o.status for o in again if o is not None] == ["duplicate", "duplicate"]
        signals.reload()
        assert signals.model.spam_docs == 1
        assert "sym:MIME_GOOD" in signals.model.counts  # the engine's symbols are features too
        with _client(spam_engine) as client:
            signals.client = client
            engine, classifier = signals.for_batch([(form, None)])
        expected = signals.model.verdict(signals.keys(form, engine[form.event_id]))
        assert classifier[form.event_id] == expected and expected.log_odds > 0
    finally:
        store.clear()
