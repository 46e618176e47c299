"""The agents' pure parts: table views, batch context, registrars, app settings, worker environment, the steps'
dead letters (review and rights), and the processing step's small helpers. No broker, no faust worker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faust.types import TP
from ingest_helpers import RecordingPublisher
from pydantic import SecretStr

from pipeline.agents import processing, review, rights, sinks
from pipeline.agents.app import _brokers, policy_for, topic_partitions
from pipeline.agents.batching import BatchContext
from pipeline.agents.launch import worker_env
from pipeline.agents.processing import BatchResult, Consumed, ProcessingStep, _spam_detail, _with_field
from pipeline.agents.review import ReviewStep
from pipeline.agents.sender import Out
from pipeline.agents.views import AnchorView, KeySetView, ProcessingState, RateView, SuppressionView
from pipeline.agents.worker import REGISTRARS, registrar, registrar_name
from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.models.records import DeadLetter, dead_letter_id, dead_letter_origin
from pipeline.models.rights import SuppressionRecord
from pipeline.models.tagged import SpamReason, SpamVerdict
from pipeline.processors import rates
from pipeline.runtime import Runtime
from pipeline.topics import NORMALIZED_TOPIC, PROCESSING_DLQ_TOPIC, REVIEW_DECISIONS_TOPIC, RIGHTS_COMMANDS_TOPIC

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


# ---- views over the tables' bytes -------------------------------------------------------------------------------


def suppression_bytes(*, erased: bool) -> bytes:
    record = SuppressionRecord(subject_key="sk_a", erased=erased, updated_at=NOW, request_id=uuid.uuid4())
    return record.model_dump_json().encode()


def test_the_suppression_view_parses_once_per_value_and_again_when_it_changes() -> None:
    data = {b"sk_a": suppression_bytes(erased=True)}
    view = SuppressionView(data)
    first = view.get("sk_a")
    assert first is not None and first.erased
    assert view.get("sk_a") is first  # the same bytes object: the cached record
    data[b"sk_a"] = suppression_bytes(erased=False)
    again = view.get("sk_a")
    assert again is not None and not again.erased
    assert view.get("sk_unknown") is None
    data[b"sk_tomb"] = b""  # a compacted topic's tombstone
    assert view.get("sk_tomb") is None


def test_the_blocklist_view_holds_strings_whose_value_is_not_empty() -> None:
    view = KeySetView({b"sender:1": b"{}", b"domain:2": b""})
    assert "sender:1" in view
    assert "domain:2" not in view and "ip:3" not in view
    assert b"sender:1" not in view and 7 not in view


def test_the_anchor_view_reads_iso_datetimes() -> None:
    data = {b"sk_a|customer": NOW.isoformat().encode(), b"sk_b|event": b""}
    view = AnchorView(data)
    assert view["sk_a|customer"] == NOW and view.get("sk_a|customer") == NOW
    assert view.get("sk_b|event") is None and view.get("missing", NOW) == NOW
    with pytest.raises(KeyError):
        view["sk_b|event"]
    assert sorted(view) == ["sk_a|customer", "sk_b|event"] and len(view) == 2


def test_the_rate_view_reads_windows() -> None:
    window: rates.RateState = ((int(NOW.timestamp()), 3),)
    view = RateView({b"ip:1": rates.encode(window)})
    assert view["ip:1"] == view.get("ip:1") == rates.decode(rates.encode(window))
    assert view.get("ip:2") is None
    with pytest.raises(KeyError):
        view["ip:2"]
    assert list(view) == ["ip:1"] and len(view) == 1


def test_the_in_memory_state_starts_empty_and_writes_reach_the_views() -> None:
    state = ProcessingState.in_memory()
    assert state.suppression.get("sk_a") is None and len(state.anchors) == len(state.rates) == 0
    state.anchors_data[b"sk_a|customer"] = NOW.isoformat().encode()
    assert state.anchors["sk_a|customer"] == NOW


# ---- batch context ----------------------------------------------------------------------------------------------


@dataclass
class Acks:
    acked: list[tuple[TP, list[int]]]
    assigned: set[TP]

    def ack_offsets(self, tp: TP, offsets: list[int]) -> None:
        self.acked.append((tp, list(offsets)))

    def assignment(self) -> set[TP]:
        return self.assigned


def test_a_batch_context_acknowledges_the_offsets_of_its_partition() -> None:
    tp = TP("t.contacts.normalized", 3)
    consumer = Acks([], {tp})
    ctx = BatchContext(tp, consumer)
    ctx.ack([Consumed(3, 10, None, b""), Consumed(3, 11, None, b"")])
    assert consumer.acked == [(tp, [10, 11])]
    assert ctx.still_assigned()
    consumer.assigned = set()
    assert not ctx.still_assigned()


# ---- registrars -------------------------------------------------------------------------------------------------


def test_the_worker_runs_every_area_in_order() -> None:
    assert [processing.register, review.register, sinks.register, rights.register] == REGISTRARS
    assert [registrar_name(r) for r in REGISTRARS] == [
        f"pipeline.agents.{area}:register" for area in ("processing", "review", "sinks", "rights")
    ]


def test_a_registrar_is_found_by_name_or_by_import() -> None:
    assert registrar("pipeline.agents.rights:register") is rights.register
    assert registrar("pipeline.agents.processing:register") is processing.register
    assert registrar("pipeline.agents.processing:drop_reasons") is processing.drop_reasons  # any module:function
    with pytest.raises(ValueError, match="names no registrar"):
        registrar("pipeline.agents.processing:no_such_function")
    with pytest.raises(ModuleNotFoundError):
        registrar("pipeline.agents.no_such_module:register")


# ---- the app's settings -------------------------------------------------------------------------------------------


def test_brokers_become_faust_urls() -> None:
    assert _brokers(Settings(kafka_bootstrap_servers="a:9092, b:9093,")) == ["kafka://a:9092", "kafka://b:9093"]


def test_partitions_come_from_topics_yaml_unless_overridden(make_settings: Callable[..., Settings]) -> None:
    from_file = topic_partitions(make_settings(topic_partitions=None))
    assert from_file[NORMALIZED_TOPIC] == 6 and from_file["leadpipe-__assignor-__leader"] == 1
    assert set(topic_partitions(make_settings(topic_partitions=2)).values()) == {2}


def test_the_policy_is_compiled_once_per_file(make_settings: Callable[..., Settings]) -> None:
    assert policy_for(make_settings()) is policy_for(make_settings())


def test_the_worker_environment_carries_the_settings_and_no_other_leadpipe_variable(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_sasl_password=SecretStr("s3cret"), topic_prefix="t1.")
    env = worker_env(settings, base={"PATH": "/bin", "LEADPIPE_STALE": "x"}, LEADPIPE_APP_ID="other")
    assert env["PATH"] == "/bin" and "LEADPIPE_STALE" not in env
    assert env["LEADPIPE_KAFKA_SASL_PASSWORD"] == "s3cret" and env["LEADPIPE_TOPIC_PREFIX"] == "t1."
    assert env["LEADPIPE_APP_ID"] == "other" and env["LEADPIPE_LOG_FORMAT"] == "json"
    assert "LEADPIPE_POLICY_FILE" not in env  # None is left out: the worker takes its own default


# ---- the processing step's helpers --------------------------------------------------------------------------------


def test_a_field_is_appended_to_a_json_object_without_parsing_it() -> None:
    assert _with_field(b'{"a":1} \n', b"tags", b'{"b":2}') == b'{"a":1,"tags":{"b":2}}'
    with pytest.raises(ValueError, match="not a JSON object"):
        _with_field(b"[1]", b"tags", b"{}")


def test_a_spam_decision_is_audited_with_codes_and_the_policy_s_words() -> None:
    verdict = SpamVerdict(
        score=7.5, threshold=5.0, reasons=(SpamReason(code="link_count", weight=4.0, detail="3 links"),)
    )
    assert _spam_detail(verdict, "2025.1") == {
        "score": 7.5,
        "threshold": 5.0,
        "reasons": [{"code": "link_count", "weight": 4.0, "detail": "3 links"}],
        "policy_version": "2025.1",
    }


def test_a_batch_result_groups_outputs_by_input_partition_and_counts_outcomes() -> None:
    result = BatchResult()
    result.add(0, [Out("a", None, b"1")], "accepted")
    result.add(1, [Out("b", None, b"2"), Out("c", None, b"3")], "dropped")
    result.add(0, [], "accepted")
    result.add(1, [], "quarantined", channel="web_form")
    result.add(1, [], "quarantined", channel="web_form")
    assert {p: [o.topic for o in outs] for p, outs in result.outgoing.items()} == {0: ["a"], 1: ["b", "c"]}
    assert result.counts == {"accepted": 2, "dropped": 1, "quarantined": 2}
    assert result.by_channel == {("web_form", "quarantined"): 2}  # only events whose channel is known


# ---- the dead letters of review and rights --------------------------------------------------------------------------


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings())
    ensure_schema(built.engine)
    return built


def test_an_unreadable_review_decision_names_the_decisions_topic(runtime: Runtime) -> None:
    """Its replay goes back onto contacts.review.decisions, and its id differs from processing's at that position."""
    step = ReviewStep(ProcessingStep.from_runtime(runtime, policy_for(runtime.settings)))
    item = Consumed(2, 41, None, b'{"decision": "release"}')
    result = step.process([item], ProcessingState.in_memory(), now=NOW)
    [out] = result.outgoing[2]
    letter = DeadLetter.model_validate_json(out.value or b"")
    assert out.topic == PROCESSING_DLQ_TOPIC and result.counts == {"dlq": 1}
    assert (letter.stage, letter.reason) == ("process:review:parse", "invalid_decision")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (REVIEW_DECISIONS_TOPIC, 2, 41)
    assert letter.content_type == "application/json"
    assert letter.payload is not None and runtime.codec.sealer.open(letter.payload) == item.value
    processing_id = dead_letter_id("process:parse", dead_letter_origin(topic=NORMALIZED_TOPIC, partition=2, offset=41))
    assert letter.dead_letter_id != processing_id


def test_an_unreadable_rights_command_is_dead_lettered_once_whatever_the_redeliveries(runtime: Runtime) -> None:
    publisher = RecordingPublisher()
    worker = rights.RightsWorker(runtime, publisher, executor=None)  # type: ignore[arg-type]  # never executes
    where = {"topic": "t1.rights.commands", "partition": 0, "offset": 17}
    value = b'{"kind": "erasure", "email": "ann@example.com"}'
    assert worker.parse(value, where) is None
    assert worker.parse(value, where) is None  # the agent redelivers after a crash
    first, again = (r.value for r in publisher.records)
    assert isinstance(first, DeadLetter) and isinstance(again, DeadLetter)
    assert first.dead_letter_id == again.dead_letter_id
    assert [r.topic for r in publisher.records] == [PROCESSING_DLQ_TOPIC] * 2
    assert (first.stage, first.reason) == ("rights", "invalid_rights_command")
    assert first.source_topic == RIGHTS_COMMANDS_TOPIC  # logical, as replay publishes it, not "t1.rights.commands"
    assert b"ann@example.com" not in first.model_dump_json().encode()
    assert first.payload is not None and runtime.codec.sealer.open(first.payload) == value


def test_a_fence_is_recognised_however_deep_it_is_wrapped() -> None:
    """A send that failed because another producer took the transactional id is a rejoin, not a crash."""
    from aiokafka.errors import KafkaTimeoutError, ProducerFenced

    from pipeline.agents.faust_adapter import is_fenced
    from pipeline.agents.sender import SendFailedError

    def wrapped(inner: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except BaseException as exc:
                raise SendFailedError("producer refused a record") from exc
        except SendFailedError as outer:
            return outer

    assert is_fenced(ProducerFenced())
    assert is_fenced(wrapped(ProducerFenced()))
    assert not is_fenced(wrapped(KafkaTimeoutError()))
    assert not is_fenced(RuntimeError("no cause"))


class _Exited(Exception):
    pass


async def test_a_partition_whose_producer_a_fence_dropped_is_redone_after_the_rejoin_never_an_exit(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured in CI: a fence dropped a partition's producer an instant before its revocation; the sink batch of
    that partition found no producer and the surviving worker exited (``batch_send_failed``)."""
    from pipeline.agents import sender as sender_module
    from pipeline.agents.app import LeadpipeApp

    def exited(event: str, exc: BaseException, **_fields: object) -> None:
        raise _Exited(event)

    monkeypatch.setattr(sender_module, "fatal", exited)
    app = LeadpipeApp("fence-probe", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    app.conf.processing_guarantee = "exactly_once"
    app.in_worker = True
    app.assignor._topic_groups["t.contacts.accepted"] = 0
    out = sender_module.TransactionalSender(app, make_settings(), {})
    monkeypatch.setattr(out, "assigned", lambda _topic, _partition: True)  # not revoked yet
    records = [Out("contacts.accepted", b"k", b"v")]
    with pytest.raises(_Exited):  # no producer and no fence: something is wrong, the worker stops
        await out.deliver("t.contacts.accepted", 1, records)
    app.batching_consumer.fenced()  # a fence dropped it; the worker asked to rejoin
    assert await out.deliver("t.contacts.accepted", 1, records) is False
