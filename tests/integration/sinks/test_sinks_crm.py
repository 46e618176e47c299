"""The CRM sink's write path against SQLite and PostgreSQL (``db_url``): migrations, idempotent batched writes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fakes.contacts import BASE_TIME, make_tagged, many_tagged
from sqlalchemy import Engine, func, select

from pipeline.crm.read import CrmReadModel
from pipeline.crm.schema import CrmAudit, CrmIdentity, CrmInteraction, CrmSubject
from pipeline.db import current_revision, ensure_schema, head_revision, make_engine
from pipeline.migrations import target_metadata
from pipeline.models import Channel
from pipeline.models.contact import Utterance
from pipeline.models.tagged import TaggedEvent
from pipeline.rights.effects.crm import CrmRights
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.crm import rows
from pipeline.sinks.crm.sink import CrmSink
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_migrations_reach_head_and_match_the_models(crm_engine: Engine) -> None:
    assert current_revision(crm_engine) == head_revision()
    with crm_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), target_metadata)
    assert diff == []
    ensure_schema(crm_engine)  # idempotent
    assert current_revision(crm_engine) == head_revision()


def test_concurrent_upgrades_of_an_empty_database(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(e: Engine) -> None:
        try:
            ensure_schema(e)
        except BaseException as exc:  # pragma: no cover - the failure is the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    for e in engines:
        e.dispose()


def test_redelivery_changes_nothing(crm_engine: Engine, crm_writer: CrmWriter) -> None:
    batch = many_tagged(300, subjects=200)
    first = crm_writer.write_events(batch)
    assert len(first.new) == 300
    assert len(first.subjects_created) == len({t.event.subject_key for t in batch})
    snapshot = {m: count(crm_engine, m) for m in (CrmSubject, CrmIdentity, CrmInteraction, CrmAudit)}
    again = crm_writer.write_events(list(reversed(batch)))
    assert again.new == frozenset()
    assert again.duplicates == frozenset(t.event.event_id for t in batch)
    assert {m: count(crm_engine, m) for m in snapshot} == snapshot
    # half old, half new: only the new ones are written
    mixed = batch[:50] + many_tagged(60, seed=99)
    report = crm_writer.write_events(mixed)
    assert len(report.new) == 60 and len(report.duplicates) == 50
    assert count(crm_engine, CrmInteraction) == 360


def test_one_person_through_several_channels_is_one_subject(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    form = make_tagged("jane.doe@example.com", channel=Channel.WEB_FORM, occurred_at=BASE_TIME, company="Old GmbH")
    chat = make_tagged(
        "Jane.Doe@example.com",
        channel=Channel.CHATBOT,
        occurred_at=BASE_TIME + timedelta(days=2),
        company="New GmbH",
        phone="+4930123456",
        skype_id="live:jane",
        first_name=None,
    )
    event = make_tagged("jane.doe@example.com", channel=Channel.EVENT, occurred_at=BASE_TIME + timedelta(days=1))
    crm_writer.write_events([form])
    crm_writer.write_events([chat, event])
    view = crm_read.show(form.event.subject_key)
    assert view is not None
    assert view.interactions == 3
    assert [i.channel for i in view.interactions_detail] == ["web_form", "event", "chatbot"]
    assert view.company == "New GmbH"  # the newest event wins
    assert view.first_name == "Jane"  # a newer event without a first name does not blank it
    assert view.phone == "+4930123456"
    assert {(i.kind, i.value) for i in view.identities} == {
        ("email", "jane.doe@example.com"),
        ("phone", "+4930123456"),
        ("skype", "live:jane"),
    }
    chat_view = view.interactions_detail[-1]
    assert chat_view.retention_expires_at == chat.tags.retention_expires_at
    assert {(p.purpose, p.legal_basis) for p in chat_view.purposes} == {
        ("contract_request", "contract"),
        ("information_of_interest", "legitimate_interest"),
    }
    # an older event arriving late fills gaps only
    late = make_tagged("jane.doe@example.com", occurred_at=BASE_TIME - timedelta(days=30), company="Ancient AG")
    crm_writer.write_events([late])
    assert crm_read.show(form.event.subject_key).company == "New GmbH"  # type: ignore[union-attr]


def test_audit_names_the_event_for_every_change(crm_engine: Engine, crm_writer: CrmWriter) -> None:
    tagged = make_tagged(consent=True, phone="+4930123456")
    crm_writer.write_events([tagged])
    [entry] = CrmRights(crm_engine).audit_entries(tagged.event.subject_key)
    assert entry["action"] == "interaction_recorded"
    assert entry["event_id"] == str(tagged.event.event_id)
    assert entry["detail"]["subject_created"] is True
    assert entry["detail"]["identities_added"] == ["email", "phone"]
    assert entry["detail"]["consents"] == {"further_contact": True}
    assert "jane" not in str(entry).lower()  # names of fields, never values


def _delivery(email: str, delivered: datetime) -> TaggedEvent:
    """A customer record as the chain tags it: on the last-service-delivery clock, six years from ``delivered``."""
    tagged = make_tagged(email, channel=Channel.CUSTOMER, occurred_at=delivered)
    tags = tagged.tags.model_copy(
        update={
            "retention_clock": "last_service_delivery",
            "retention_anchor_at": delivered,
            "retention_expires_at": delivered.replace(year=delivered.year + 6),
        }
    )
    return tagged.model_copy(update={"tags": tags})


def test_a_new_delivery_extends_what_is_stored_on_that_clock(
    crm_engine: Engine, crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    """Policy 6.4: a customer's data is kept six years from the LAST service delivery, not from each one."""
    first = _delivery("client@example.com", BASE_TIME - timedelta(days=365 * 5))
    form = make_tagged("client@example.com", occurred_at=BASE_TIME - timedelta(days=365 * 5))  # its own 8 years
    other = _delivery("other@example.com", BASE_TIME - timedelta(days=365 * 5))
    crm_writer.write_events([first, form, other])
    later = _delivery("client@example.com", BASE_TIME)
    crm_writer.write_events([later])
    stored = {i.event_id: i for i in (crm_read.show(first.event.subject_key) or pytest.fail()).interactions_detail}
    assert stored[first.event.event_id].retention_expires_at == later.tags.retention_expires_at
    assert stored[first.event.event_id].retention_anchor_at == BASE_TIME
    assert stored[form.event.event_id].retention_expires_at == form.tags.retention_expires_at  # another clock
    [untouched] = (crm_read.show(other.event.subject_key) or pytest.fail()).interactions_detail
    assert untouched.retention_expires_at == other.tags.retention_expires_at  # another subject
    # the sweep a year after the first delivery's own six years: only the other customer's record is due
    due = CrmRights(crm_engine).expired_interactions(first.tags.retention_expires_at + timedelta(days=1))
    assert [e.event_id for e in due] == [other.event.event_id]
    # a late record with an older expiry never shortens what is stored
    crm_writer.write_events([_delivery("client@example.com", BASE_TIME - timedelta(days=365 * 7))])
    again = {i.event_id: i for i in (crm_read.show(first.event.subject_key) or pytest.fail()).interactions_detail}
    assert again[first.event.event_id].retention_expires_at == later.tags.retention_expires_at


def test_sink_results_and_redelivery(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    sink = CrmSink(crm_writer)
    sink.setup()
    batch = many_tagged(20)
    results = sink.write(batch)
    assert {r.outcome for r in results} == {WriteOutcome.WRITTEN}
    assert all(r.message is None for r in results)
    again = sink.write(batch)
    assert {r.message for r in again} == {"already stored"}
    assert crm_read.interaction_count() == 20


def test_a_record_the_database_refuses_is_isolated(pg_url: str) -> None:
    """PostgreSQL enforces column lengths; the refused record is dead-lettered, the rest of the batch written."""
    engine = make_engine(pg_url)
    ensure_schema(engine)
    batch = many_tagged(9)
    too_long = batch[4].tags.model_copy(update={"policy_version": "v" * 150})
    batch[4] = batch[4].model_copy(update={"tags": too_long})
    results = {r.event_id: r for r in CrmSink(CrmWriter(engine)).write(batch)}
    bad = results[batch[4].event.event_id]
    assert bad.outcome is WriteOutcome.FAILED and bad.reason == "crm_constraint"
    assert "StringDataRightTruncation" in (bad.message or "")
    assert sum(r.outcome is WriteOutcome.WRITTEN for r in results.values()) == 8
    assert CrmReadModel(engine).interaction_count() == 8
    engine.dispose()


def test_unreachable_database_is_backpressure(tmp_path: object) -> None:
    from pipeline.sinks.base import SinkBackpressureError

    engine = make_engine("postgresql://leadpipe:wrong@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    with pytest.raises(SinkBackpressureError):
        CrmSink(CrmWriter(engine), migrate=False).write([make_tagged()])


def test_two_writers_of_the_same_batch_store_each_event_once(db_url: str) -> None:
    """A zombie worker after a rebalance writes the batch its successor writes: the loser's insert conflicts, the
    sink offers the batch again, and every event ends up stored (and audited) exactly once."""
    engines = [make_engine(db_url) for _ in range(2)]
    ensure_schema(engines[0])
    batch = many_tagged(300, subjects=200)
    start = threading.Barrier(2)
    answers: list[list[WriteOutcome]] = []

    def write(engine: Engine) -> None:
        sink = CrmSink(CrmWriter(engine), migrate=False)
        start.wait()
        answers.append([r.outcome for r in sink.write(batch)])

    threads = [threading.Thread(target=write, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [set(a) for a in answers] == [{WriteOutcome.WRITTEN}] * 2
    assert all(len(a) == len(batch) for a in answers)
    engine = engines[0]
    assert CrmReadModel(engine).interaction_count() == len(batch)
    with engine.connect() as conn:
        recorded = conn.execute(
            select(func.count()).select_from(CrmAudit).where(CrmAudit.action == "interaction_recorded")
        ).scalar_one()
        identities = conn.execute(select(func.count()).select_from(CrmIdentity)).scalar_one()
    assert recorded == len(batch)
    assert identities == len({(t.event.subject_key, t.event.person.email) for t in batch}) + len(
        {(t.event.subject_key, t.event.person.phone) for t in batch if t.event.person.phone}
    )
    for e in engines:
        e.dispose()


def test_every_column_is_stored_as_built(crm_engine: Engine) -> None:
    """The PostgreSQL path (binary COPY with explicit column types) stores exactly the values the row builders made,
    like SQLite's executemany through SQLAlchemy: every optional interaction field, JSON, floats, times, handles."""
    now = BASE_TIME + timedelta(days=3)
    writer = CrmWriter(crm_engine, clock=lambda: now)
    tagged = make_tagged(
        "Full.Columns@example.com",
        phone="+493012345678",
        consent=True,
        skype_id="full.columns",
        linkedin_url="https://www.linkedin.com/in/full-columns",
        messenger_handles={"Telegram": "@fullcolumns"},
        location="Berlin",
        country_code="DE",
    )
    event = tagged.event
    interaction = event.interaction.model_copy(
        update={
            "subject": "Übersicht — bitte",
            "transcript": (
                Utterance(at=BASE_TIME, author="person", text='Hallo "Welt" \\ ✓'),
                Utterance(author="bot", text="Hi"),
            ),
            "call_duration_s": 61.5,
            "recording_ref": "rec-1",
            "page_url": "https://example.com/demo?x=1",
            "event_name": "Expo",
            "event_date": BASE_TIME + timedelta(days=30),
            "last_service_delivery_at": BASE_TIME - timedelta(days=1),
        }
    )
    provenance = event.provenance.model_copy(update={"ip": "203.0.113.7", "user_agent": "UA/1.0", "device_id": "d-1"})
    tagged = tagged.model_copy(
        update={"event": event.model_copy(update={"interaction": interaction, "provenance": provenance})}
    )
    assert writer.write_events([tagged]).new == {event.event_id}

    with crm_engine.connect() as conn:
        stored = dict(conn.execute(select(CrmInteraction.__table__)).mappings().one())
        subject = dict(conn.execute(select(CrmSubject.__table__)).mappings().one())
        kinds = {r.kind: r.value for r in conn.execute(select(CrmIdentity.kind, CrmIdentity.value))}
        audit_detail = conn.execute(select(CrmAudit.detail)).scalar_one()
    assert stored == rows.interaction_row(tagged, now)
    expected_subject = rows.subject_row(rows.subject_batches([tagged])[event.subject_key], now)
    assert {k: subject[k] for k in expected_subject} == expected_subject
    assert kinds == {r["kind"]: r["value"] for r in rows.identity_rows(tagged, now)}
    assert kinds["messenger:telegram"] == "@fullcolumns"
    assert audit_detail["identities_added"] == sorted(kinds)
    consent = CrmReadModel(crm_engine).show(event.subject_key)
    assert consent is not None
    assert [(c.purpose, c.granted, c.wording) for c in consent.consents] == [
        (c.purpose.value, c.granted, c.wording) for c in event.consents
    ]
