"""Every rights request end to end: real broker, the faust worker (sink agents + rights agent), the CRM on SQLite
and PostgreSQL, and the fake HubSpot over real HTTP. Each test checks the effect in EVERY sink, the suppression
record, the per-sink evidence in the tracker and on ``rights.status``, and that nothing personal is in clear.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.hubspot import FakeHubSpot, running_fake
from identity_helpers import key_for, person
from pydantic import BaseModel
from pypdf import PdfReader
from rights_helpers import assert_no_clear_text, caught_up, invoke_cli, read_everything, wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session
from worker_thread import WorkerThread

from pipeline.agents import processing, rights, sinks
from pipeline.agents.worker import Registrar, create_app
from pipeline.config import Settings
from pipeline.crm.read import CrmReadModel
from pipeline.crypto.keystore import SubjectKey
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.models.common import Channel, LegalBasis, Purpose
from pipeline.models.identity import Role
from pipeline.models.processing import DropReason, DropRecord
from pipeline.models.records import DeadLetter
from pipeline.models.rights import AuditRecord, RightKind, RightsStatus, SinkResult, SinkStatus, SuppressionRecord
from pipeline.rights.commands import IdentityError, RightsDesk
from pipeline.rights.dpo import DpoTools
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.sweep import RetentionSweep
from pipeline.rights.tracker import RequestState, RequestTracker, RequestView
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The processing chain, both sink agents and the rights agent: everything between ingest and the sinks.
REGISTRARS: list[Registrar] = [processing.register, sinks.register, rights.register]

#: The DPO who issues the requests in these tests.
DPO = person("dana", "Dana Privacy", Role.DPO)


@dataclass
class World:
    settings: Settings
    runtime: Runtime
    publisher: ConfirmingPublisher
    hub: FakeHubSpot | None  # None: HubSpot's dry run (no token), writing settings.resolved_dry_run_file
    worker: WorkerThread
    tools: DpoTools
    ingest: IngestService
    crm: CrmReadModel
    registrars: list[Registrar]

    def submit(
        self,
        email: str,
        first: str,
        last: str,
        *,
        consent: bool = False,
        occurred_at: Any = None,
        message: str | None = None,
    ) -> Any:
        """One web-form contact through the ingest service (raw + normalized, sealed); the chain takes it from there."""
        payload = {
            "email": email,
            "first_name": first,
            "last_name": last,
            "company": "Quartzworks",
            # unique: the same bytes would give the same event id
            "message": f"{message or f'Question from {first}'} ({uuid.uuid4().hex[:8]})",
            **({"consent_further_contact": "yes"} if consent else {}),
            **({"submittedAt": occurred_at.isoformat()} if occurred_at else {}),
        }
        result = self.ingest.submit("site-form", Channel.WEB_FORM, json.dumps(payload).encode(), "application/json")
        assert result.accepted, result
        (event,) = result.events
        return event

    def feed(
        self, email: str, first: str, last: str, *, n: int = 1, consent: bool = False, occurred_at: Any = None
    ) -> str:
        """Submit ``n`` contacts and wait until the chain passed them and both sinks hold them; the subject key."""
        events = [self.submit(email, first, last, consent=consent, occurred_at=occurred_at) for _ in range(n)]
        key: str = events[0].subject_key
        ids = {e.event_id for e in events}
        wait_until(
            lambda: (v := self.crm.show(key)) is not None and ids <= {i.event_id for i in v.interactions_detail},
            what="the CRM to hold the contacts",
        )
        if self.hub is not None:
            hub = self.hub
            wait_until(lambda: hub.contact(email) is not None, what="HubSpot to hold the contact")
        else:
            dry_run = self.settings.resolved_dry_run_file
            wait_until(lambda: dry_run.exists() and email in dry_run.read_text(), what="the dry run to name them")
        return key

    def dropped(self, event_id: Any) -> DropRecord | None:
        for m in read_to_end(self.settings, ["contacts.drops"]):
            drop = DropRecord.model_validate_json(m.value)
            if drop.event_id == event_id:
                return drop
        return None

    def replay_from_start(self, topics: list[str], registrars: list[Registrar] | None = None) -> None:
        """Run a second worker (a new consumer group) over ``topics`` from offset 0 and wait until it consumed all of
        them, then until this world's worker consumed what the replay produced: replaying the log, or restoring
        a backup, amounts to this."""
        names = tuple(self.settings.topic(t) for t in topics)
        runtime = Runtime(self.settings.model_copy(update={"app_id": "replay"}))
        try:
            with WorkerThread(create_app(runtime, registrars or self.registrars)).start(wait_for_topics=names):
                group = runtime.settings.topic("replay")
                wait_until(lambda: caught_up(self.settings, group, topics), timeout_s=60, what="the replay to finish")
        finally:
            runtime.engine.dispose()
        mine = self.settings.topic(self.settings.app_id)
        accepted = ["contacts.accepted"]
        wait_until(lambda: caught_up(self.settings, mine, accepted), timeout_s=60, what="the sinks to catch up")

    def request(self, kind: RightKind, email: str, **kwargs: Any) -> RequestView:
        submitted = self.tools.request(kind, by=DPO, email=email, **kwargs)
        view = self.tools.wait(submitted.command.request_id, timeout_s=60)
        assert view is not None and view.state is RequestState.COMPLETED, view
        return view

    def suppression(self, key: str) -> SuppressionRecord:
        records = [
            SuppressionRecord.model_validate_json(m.value)
            for m in read_to_end(self.settings, ["suppression"])
            if m.key == key.encode()
        ]
        assert records, "no suppression record"
        return records[-1]

    def statuses(self, request_id: str) -> dict[str, RightsStatus]:
        out: dict[str, RightsStatus] = {}
        for m in read_to_end(self.settings, ["rights.status"]):
            status = RightsStatus.model_validate_json(m.value)
            if str(status.request_id) == request_id:
                out[status.sink] = status
        return out


@pytest.fixture
def world(kafka_settings: Settings, db_url: str, make_settings: Callable[..., Settings]) -> Iterator[World]:
    with running_fake(rate_limit=None, search_rate_limit=None) as hub:
        yield from _world(kafka_settings, db_url, make_settings, hub)


@pytest.fixture
def dry_run_world(kafka_settings: Settings, db_url: str, make_settings: Callable[..., Settings]) -> Iterator[World]:
    """No HubSpot token: the embedded default, HubSpot's dry run."""
    yield from _world(kafka_settings, db_url, make_settings, None)


def _world(
    kafka_settings: Settings, db_url: str, make_settings: Callable[..., Settings], hub: FakeHubSpot | None
) -> Iterator[World]:
    hubspot = {} if hub is None else {"hubspot_access_token": hub.token, "hubspot_base_url": hub.url}
    settings = make_settings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix,
        database_url=db_url,
        **hubspot,
        hubspot_backoff_base_s=0.05,
        rights_retry_base_s=0.05,
        rights_hubspot_consent_subscriptions=("1001",),
        batch_timeout_s=0.05,
    )
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    publisher = ConfirmingPublisher(settings)
    registrars = REGISTRARS
    app = create_app(runtime, registrars)
    worker = WorkerThread(app).start(
        wait_for_topics=(settings.topic("rights.commands"), settings.topic("contacts.accepted"))
    )
    world = None
    try:
        world = World(
            settings=settings,
            runtime=runtime,
            publisher=publisher,
            hub=hub,
            worker=worker,
            tools=DpoTools(runtime, publisher),
            ingest=IngestService(runtime, publisher),
            crm=CrmReadModel(runtime.engine),
            registrars=registrars,
        )
        yield world
    finally:
        (world.worker if world is not None else worker).stop()
        publisher.close()
        runtime.engine.dispose()


def _no_clear_text(world: World, *values: str) -> None:
    """Nothing personal outside the seals, on any topic."""
    records = read_everything(world.settings)
    assert_no_clear_text(((m.topic, (m.key or b"") + (m.value or b"")) for m in records), values)


def test_erasure_reaches_every_sink(world: World) -> None:
    gone, kept = "zoe.quartz@example.com", "kai.ember@example.org"
    gone_key = world.feed(gone, "Zoefina", "Quartzberg", n=2)
    kept_key = world.feed(kept, "Kaiwen", "Emberly")
    [exported] = world.request(RightKind.PORTABILITY, gone).sinks  # not delivered yet when the erasure comes
    waiting = Path(exported.evidence["path"])
    assert waiting.exists()

    started = time.monotonic()
    view = world.request(RightKind.ERASURE, gone)
    elapsed = time.monotonic() - started
    assert {s.sink: s.status for s in view.sinks} == dict.fromkeys(
        ("crm", "hubspot", "kafka", "suppression", "export"), SinkStatus.DONE
    )
    assert not waiting.exists()  # the export held everything the erasure deleted
    assert elapsed < 45, elapsed  # a sanity bound on a loaded machine; bench/erasure.py measures the speed

    # CRM: only the minimal, non-personal record is left
    subject = world.crm.show(gone_key)
    assert subject is not None and subject.erased_at is not None and subject.status == "erased"
    assert subject.first_name is None and subject.email is None and subject.company is None
    assert subject.identities == [] and subject.interactions_detail == [] and subject.consents == []
    assert world.crm.search(email=gone) == []
    assert str(subject.erasure_request_id) == view.request_id
    # HubSpot: GDPR delete, not the restorable archive
    assert world.hub.contact(gone) is None and gone in world.hub.gdpr_deleted
    assert world.hub.calls("DELETE") == []
    # Kafka: every data key of the subject destroyed
    with Session(world.runtime.engine) as session:
        keys = session.scalars(select(SubjectKey).where(SubjectKey.scope == f"subject:{gone_key}")).all()
    assert keys and all(k.wrapped_key is None for k in keys)
    # suppression, evidence, audit
    assert world.suppression(gone_key).erased
    statuses = world.statuses(view.request_id)
    assert set(statuses) == {"crm", "hubspot", "kafka", "suppression", "export"}
    assert statuses["export"].evidence["exports_deleted"] == [waiting.name]
    assert statuses["crm"].evidence["interactions_deleted"] == 2
    assert statuses["hubspot"].evidence["outcome"] == "deleted"
    assert statuses["hubspot"].evidence["contacts"][0]["result"] == "deleted"
    assert statuses["kafka"].evidence["keys_destroyed"] >= 1
    trail = world.tools.tracker.audit_trail(request_id=view.request_id)
    assert {"rights.request_received", "rights.request_completed"} <= {a.action for a in trail}
    # the audit names the person who issued the erasure, on the audit topic too
    assert view.issuer == DPO and view.issued_by == DPO.actor
    [received] = [a for a in trail if a.action == "rights.request_received"]
    assert received.principal == DPO and received.actor == DPO.actor
    published = [AuditRecord.model_validate_json(m.value) for m in read_to_end(world.settings, ["audit"])]
    assert any(
        a.action == "rights.request_received"
        and str(a.request_id) == view.request_id
        and a.principal is not None
        and a.principal.display_name == "Dana Privacy"
        for a in published
    )
    _no_clear_text(world, gone, "Zoefina", "Quartzberg", kept, "Kaiwen")
    other = world.crm.show(kept_key)  # the other person is untouched
    assert other is not None and other.email == kept and world.hub.contact(kept) is not None


def test_erasure_leaves_the_hubspot_dry_run_file_without_the_person(dry_run_world: World) -> None:
    """The embedded default writes every request HubSpot would get to a file; an erasure reaches it too: the same
    clear-text scan as for Kafka's logs finds nothing of the erased person there, and the other person is kept."""
    world = dry_run_world
    gone, kept = "zoe.quartz@example.com", "kai.ember@example.org"
    world.feed(gone, "Zoefina", "Quartzberg", n=2)
    world.feed(kept, "Kaiwen", "Emberly")
    dry_run = world.settings.resolved_dry_run_file
    assert "zoefina" in dry_run.read_text().lower()  # what the scan must find gone

    view = world.request(RightKind.ERASURE, gone)
    hubspot = next(s for s in view.sinks if s.sink == "hubspot")
    assert hubspot.status is SinkStatus.DONE
    assert hubspot.evidence["contacts"] == [] and hubspot.evidence["outcome"] == "not found in HubSpot"
    assert "dry-run file" in hubspot.evidence["dry_run"]

    lines = dry_run.read_bytes().splitlines()
    assert_no_clear_text(((f"{dry_run.name} line {n}", line) for n, line in enumerate(lines, 1)), [gone, "Zoefina"])
    assert_no_clear_text([(dry_run.name, dry_run.read_bytes())], ["Quartzberg"])
    assert kept in dry_run.read_text() and "Kaiwen" in dry_run.read_text()
    _no_clear_text(world, gone, "Zoefina", "Quartzberg")


def test_a_child_s_earlier_contacts_are_erased_everywhere(world: World) -> None:
    """Section 12: once a contact reveals an age under 16, what was stored before about that person goes too."""
    child = "timmy.tinkerton@example.com"
    key = world.feed(child, "Timmy", "Tinkerton")
    revealing = world.submit(child, "Timmy", "Tinkerton", message="Hi, I am 14 years old and want to learn coding")

    def completed() -> list[RequestView]:
        found = world.tools.tracker.requests(subject_key=key, kinds=[RightKind.ERASURE])
        return [v for v in found if v.state is RequestState.COMPLETED]

    wait_until(completed, timeout_s=60, what="the children's rule's erasure to complete")
    [view] = completed()
    assert view.issued_by == "client:children-rule" and view.issuer is not None and view.issuer.auth == "system"
    assert {s.sink: s.status for s in view.sinks} == {
        **dict.fromkeys(("crm", "hubspot", "kafka", "suppression"), SinkStatus.DONE),
        "export": SinkStatus.NOT_APPLICABLE,  # no export was waiting
    }
    drop = world.dropped(revealing.event_id)
    assert drop is not None and drop.reason is DropReason.CHILD
    subject = world.crm.show(key)
    assert subject is not None and subject.status == "erased" and subject.interactions_detail == []
    assert world.hub.contact(child) is None and child in world.hub.gdpr_deleted
    with Session(world.runtime.engine) as session:  # the dropped event's sealed copies are unreadable too
        keys = session.scalars(select(SubjectKey).where(SubjectKey.scope == f"subject:{key}")).all()
    assert keys and all(k.wrapped_key is None for k in keys)
    _no_clear_text(world, child, "Timmy", "Tinkerton")


def test_replaying_everything_does_not_resurrect_an_erased_subject(world: World) -> None:
    """Replay sources, accepted records and rights commands from offset 0 after the person came back: the erased
    events are dropped, the erasure is not carried out again, and the new collection survives."""
    gone, kept = "zoe.quartz@example.com", "kai.ember@example.org"
    gone_key = world.feed(gone, "Zoefina", "Quartzberg", n=2)
    erased_events = [i.event_id for i in world.crm.show(gone_key).interactions_detail]  # type: ignore[union-attr]
    kept_key = world.feed(kept, "Kaiwen", "Emberly")
    view = world.request(RightKind.ERASURE, gone)

    # the person comes back: a new lawful collection under a new key generation
    assert world.feed(gone, "Zoefina", "Quartzberg") == gone_key
    back = world.crm.show(gone_key)
    assert back is not None and back.email == gone and len(back.interactions_detail) == 1
    new_event = back.interactions_detail[0].event_id
    statuses_before = len(read_to_end(world.settings, ["rights.status"]))

    # replay from the beginning: the source topics through the chain, the accepted records through the sinks; and
    # the erasure command delivered again. Nothing erased comes back; the new collection survives.
    world.replay_from_start(["contacts.normalized", "contacts.accepted"])
    world.publisher.publish([Outgoing("rights.commands", gone_key, world.tools.tracker.command(view.request_id))])
    group, commands = world.settings.topic(world.settings.app_id), ["rights.commands"]
    wait_until(lambda: caught_up(world.settings, group, commands), what="the redelivered erasure to be handled")
    subject = world.crm.show(gone_key)
    assert subject is not None and [i.event_id for i in subject.interactions_detail] == [new_event]
    assert subject.email == gone and world.hub.contact(gone) is not None
    assert world.crm.show(kept_key) is not None and world.hub.contact(kept) is not None
    assert len(read_to_end(world.settings, ["rights.status"])) == statuses_before
    assert world.tools.get(view.request_id).state is RequestState.COMPLETED  # type: ignore[union-attr]
    # the chain saw the erased person's old events again, and dropped them
    for event_id in erased_events:
        drop = world.dropped(event_id)
        assert drop is not None and drop.reason in (DropReason.SUBJECT_ERASED, DropReason.KEY_DESTROYED)


def test_objection_restriction_rectification_and_withdrawal_in_every_sink(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = "mara.olsen@example.net"
    key = world.feed(email, "Mara", "Olsen", consent=True)

    # objection, from the DPO's command line: immediate, everywhere
    started = time.monotonic()
    dpo_key = key_for(world.settings, Role.DPO, display_name="Dana Privacy")
    result = invoke_cli(
        world.settings, monkeypatch, "dpo", "object", "--email", email, "--wait", "--timeout", "30", key=dpo_key
    )
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 45  # a sanity bound on a loaded machine, not a speed test
    assert "completed" in result.output and email not in result.output
    (objection,) = world.tools.tracker.requests(kinds=[RightKind.OBJECTION])
    state = world.suppression(key)
    assert state.marketing_objected and not state.erased
    crm = world.crm.show(key)
    assert crm is not None and crm.marketing_objected
    stopped = {p.purpose for i in crm.interactions_detail for p in i.purposes if p.stopped_at is not None}
    assert stopped == {p.purpose for i in crm.interactions_detail for p in i.purposes if p.direct_marketing}
    assert world.hub.unsubscribed_all.get(email) == "EMAIL"
    assert world.hub.contact(email)["properties"]["leadpipe_marketing_allowed"] == "false"  # type: ignore[index]
    assert world.statuses(objection.request_id)["hubspot"].evidence["unsubscribed"] == 1

    # restriction, then its lifting (a notice to the person becomes due)
    world.request(RightKind.RESTRICTION, email)
    assert world.suppression(key).restricted and world.suppression(key).marketing_objected
    assert world.crm.show(key).restricted  # type: ignore[union-attr]
    assert world.hub.contact(email)["properties"]["leadpipe_processing_restricted"] == "true"  # type: ignore[index]
    lifted = world.request(RightKind.UNRESTRICTION, email)
    assert not world.suppression(key).restricted
    assert not world.crm.show(key).restricted  # type: ignore[union-attr]
    assert world.hub.contact(email)["properties"]["leadpipe_processing_restricted"] == "false"  # type: ignore[index]
    assert lifted.notice_due
    assert not world.tools.notice_sent(lifted.request_id, by=DPO).notice_due

    # rectification reaches both
    world.request(RightKind.RECTIFICATION, email, rectify={"last_name": "Olsen-Berg", "position": "CTO"})
    crm = world.crm.show(key)
    assert crm is not None and crm.last_name == "Olsen-Berg" and crm.position == "CTO"
    props = world.hub.contact(email)["properties"]  # type: ignore[index]
    assert props["lastname"] == "Olsen-Berg" and props["jobtitle"] == "CTO"

    # withdrawal of consent: what rests on consent stops, the rest continues
    world.request(RightKind.CONSENT_WITHDRAWAL, email)
    assert world.suppression(key).consent_withdrawn == (Purpose.FURTHER_CONTACT,)
    crm = world.crm.show(key)
    assert crm is not None and crm.consent_state[Purpose.FURTHER_CONTACT.value] is False
    purposes = [p for i in crm.interactions_detail for p in i.purposes]
    assert all(p.stopped_at is not None for p in purposes if p.legal_basis == LegalBasis.CONSENT)
    assert any(p.stopped_at is None for p in purposes if p.legal_basis == LegalBasis.CONTRACT)
    props = world.hub.contact(email)["properties"]  # type: ignore[index]
    assert "further_contact" not in props["leadpipe_purposes"] and "contract_request" in props["leadpipe_purposes"]
    assert world.hub.subscriptions[email]["1001"] == "NOT_SUBSCRIBED"

    _no_clear_text(world, email, "Olsen-Berg")


def test_consent_given_again_after_a_withdrawal_is_acted_on_in_every_sink(world: World) -> None:
    """Policy 9.8: after withdrawing, a person may give consent again case by case. A later form with the box
    ticked used to be stored with the purpose taken off (the withdrawal stood forever); now that contact rests on the
    new consent in the CRM and HubSpot, while what came before stays stopped."""
    email = "ines.again@example.org"
    key = world.feed(email, "Ines", "Vidal", consent=True)
    world.request(RightKind.CONSENT_WITHDRAWAL, email)
    crm = world.crm.show(key)
    assert crm is not None and crm.consent_state[Purpose.FURTHER_CONTACT.value] is False
    quiet = world.submit(email, "Ines", "Vidal")  # no box ticked: the withdrawal holds
    again = world.submit(email, "Ines", "Vidal", consent=True)
    wait_until(
        lambda: {quiet.event_id, again.event_id} <= {i.event_id for i in world.crm.show(key).interactions_detail},  # type: ignore[union-attr]
        what="the contacts after the withdrawal to be stored",
    )
    crm = world.crm.show(key)
    assert crm is not None and crm.consent_state[Purpose.FURTHER_CONTACT.value] is True
    live = {i.event_id: {p.purpose for p in i.purposes if p.stopped_at is None} for i in crm.interactions_detail}
    assert Purpose.FURTHER_CONTACT.value in live[again.event_id]
    assert Purpose.FURTHER_CONTACT.value not in live[quiet.event_id]
    assert not any(
        Purpose.FURTHER_CONTACT.value in purposes for event_id, purposes in live.items() if event_id != again.event_id
    )
    wait_until(
        lambda: "further_contact" in world.hub.contact(email)["properties"]["leadpipe_purposes"],  # type: ignore[index]
        what="HubSpot to list the purpose given again",
    )
    assert world.suppression(key).consent_withdrawn == (Purpose.FURTHER_CONTACT,)


def test_objection_and_restriction_reach_the_chain_within_the_same_run(world: World) -> None:
    """The chain reads the suppression topic while it runs: the next contact after an objection carries no
    direct-marketing purpose; after a restriction it is dropped, and replaying the sources syncs nothing of it."""
    email = "nils.rask@example.org"
    key = world.feed(email, "Nils", "Rask", consent=True)

    world.request(RightKind.OBJECTION, email)
    later = world.submit(email, "Nils", "Rask", consent=True)
    wait_until(
        lambda: (
            later.event_id in {i.event_id for i in world.crm.show(key).interactions_detail}  # type: ignore[union-attr]
            or world.dropped(later.event_id)
        ),
        what="the contact after the objection to be stored",
    )
    stored = next(i for i in world.crm.show(key).interactions_detail if i.event_id == later.event_id)  # type: ignore[union-attr]
    assert stored.marketing_allowed is False and not any(p.direct_marketing for p in stored.purposes)
    assert world.hub.contact(email)["properties"]["leadpipe_marketing_allowed"] == "false"  # type: ignore[index]

    world.request(RightKind.RESTRICTION, email)
    stored_ids = {i.event_id for i in world.crm.show(key).interactions_detail}  # type: ignore[union-attr]
    upserts_before = len(world.hub.calls("POST", "/crm/v3/objects/contacts/batch/upsert"))
    blocked = world.submit(email, "Nils", "Rask")

    def stopped() -> str | None:
        """The chain drops it, or (when its table had not seen the restriction yet) both sinks refuse to write it."""
        drop = world.dropped(blocked.event_id)
        if drop is not None:
            return drop.reason.value
        results = [
            SinkResult.model_validate_json(m.value)
            for m in read_to_end(world.settings, ["sinks.results"])
            if m.value is not None
        ]
        details = {r.sink: r.detail or "" for r in results if r.event_id == blocked.event_id}
        if len(details) == 2 and all(d.startswith("subject_restricted") for d in details.values()):
            return "subject_restricted"
        return None

    reason = wait_until(stopped, what="the restricted subject's contact to be stopped")
    assert reason == DropReason.SUBJECT_RESTRICTED.value
    world.replay_from_start(["contacts.normalized"], registrars=[processing.register])
    assert {i.event_id for i in world.crm.show(key).interactions_detail} == stored_ids  # type: ignore[union-attr]
    later_upserts = world.hub.calls("POST", "/crm/v3/objects/contacts/batch/upsert")[upserts_before:]
    assert not any(email in json.dumps(call.body) for call in later_upserts)


def test_access_pdf_and_portability_json_hold_crm_and_hubspot(world: World) -> None:
    email = "ines.duarte@example.com"
    key = world.feed(email, "Inês", "Duarte", n=2)

    submitted = world.tools.request(RightKind.ACCESS, by=DPO, email=email)
    view = world.tools.wait(submitted.command.request_id, timeout_s=60)
    assert view is not None and view.state is RequestState.COMPLETED
    export = next(s for s in view.sinks if s.sink == "export")
    assert export.evidence["sources"] == {"crm": "ok", "hubspot": "ok"}
    pdf = Path(export.evidence["path"]).read_bytes()
    assert Path(export.evidence["path"]).stat().st_mode & 0o077 == 0
    assert email.encode() not in pdf
    locked = PdfReader(io.BytesIO(pdf))
    assert locked.is_encrypted and locked.decrypt("not-the-password") == 0
    reader = PdfReader(io.BytesIO(pdf))
    assert submitted.password and reader.decrypt(submitted.password) != 0
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert email in text and "Duarte" in text and "Question from" in text
    assert world.hub.contact(email)["id"] in text  # type: ignore[index]

    portability = world.request(RightKind.PORTABILITY, email)
    path = Path(next(s for s in portability.sinks if s.sink == "export").evidence["path"])
    doc = json.loads(path.read_text())
    assert doc["format"] == "leadpipe.subject-export" and doc["subject_key"] == key
    crm, hub = doc["sections"]
    assert crm["source"] == "crm" and len(crm["records"]["interactions"]) == 2
    assert crm["records"]["subject"][0]["email"] == email
    assert hub["source"] == "hubspot" and hub["records"]["contacts"][0]["properties"]["email"] == email
    assert submitted.password not in json.dumps(read_to_end(world.settings, ["rights.commands"]), default=str)


def test_a_command_that_cannot_be_read_is_dead_lettered_not_dropped(world: World) -> None:
    world.publisher.publish([Outgoing("rights.commands", "sk_garbage", DeadLetterProbe())])
    letters = wait_until(
        lambda: [DeadLetter.model_validate_json(m.value) for m in read_to_end(world.settings, ["contacts.dlq"])],
        what="the dead letter",
    )
    (letter,) = letters
    assert letter.stage == "rights" and letter.reason == "invalid_rights_command"
    # the logical name, as on every dead letter: a replay publishes onto it (the prefix is added when publishing)
    assert letter.source_topic == "rights.commands" and letter.payload is not None
    assert b"not a rights command" in world.runtime.codec.sealer.open(letter.payload)
    # the agent is still alive and carries out the next request
    email = "after.garbage@example.com"
    world.feed(email, "Ann", "After")
    world.request(RightKind.OBJECTION, email)


class DeadLetterProbe(BaseModel):
    note: str = "not a rights command"


def test_retention_sweep_deletes_expired_interactions_and_erases_empty_subjects(world: World) -> None:
    short, mixed = "old.lead@example.com", "mixed.lead@example.com"
    earlier = datetime.now(UTC) - timedelta(days=2)
    short_key = world.feed(short, "Olga", "Lead", n=2, occurred_at=earlier)
    mixed_key = world.feed(mixed, "Milo", "Lead", occurred_at=earlier)
    world.feed(mixed, "Milo", "Lead")

    # the clock: just after the earlier contacts expire (the policy's period), before the later one does
    expiries = {
        key: sorted(i.retention_expires_at for i in world.crm.show(key).interactions_detail)  # type: ignore[union-attr]
        for key in (short_key, mixed_key)
    }
    future = max(expiries[short_key][-1], expiries[mixed_key][0]) + timedelta(minutes=1)
    assert future < expiries[mixed_key][-1]
    desk = RightsDesk(RequestTracker(world.runtime.engine), world.publisher)
    sweep = RetentionSweep(CrmRights(world.runtime.engine), desk)
    dry = sweep.run(future, dry_run=True)
    plan = {s.subject_key: s for s in dry.plan.subjects}
    assert plan[short_key].erases_subject and len(plan[short_key].expired) == 2
    assert not plan[mixed_key].erases_subject and plan[mixed_key].remaining == 1
    assert world.tools.tracker.requests(kinds=[RightKind.RETENTION_EXPIRY]) == []  # a dry run changes nothing

    report = sweep.run(future)
    assert len(report.commands) == 2
    assert sweep.run(future).commands == ()  # the same expiry is not issued twice
    views = [world.tools.wait(c.request_id, timeout_s=60) for c in report.commands]
    assert all(v is not None and v.state is RequestState.COMPLETED for v in views)

    gone = world.crm.show(short_key)
    assert gone is not None and gone.erased_at is not None and gone.email is None and gone.interactions_detail == []
    assert world.hub.contact(short) is None and short in world.hub.gdpr_deleted
    assert world.suppression(short_key).erased
    left = world.crm.show(mixed_key)
    assert left is not None and left.erased_at is None and len(left.interactions_detail) == 1
    assert world.hub.contact(mixed) is not None
    by_kind = {v.subject_key: {s.sink: s.status for s in v.sinks} for v in views if v is not None}
    assert by_kind[mixed_key] == {
        "crm": SinkStatus.DONE,
        "suppression": SinkStatus.NOT_APPLICABLE,
        "kafka": SinkStatus.NOT_APPLICABLE,
        "hubspot": SinkStatus.NOT_APPLICABLE,
        "export": SinkStatus.NOT_APPLICABLE,
    }
    assert by_kind[short_key] == {
        **dict.fromkeys(("crm", "suppression", "kafka", "hubspot"), SinkStatus.DONE),
        "export": SinkStatus.NOT_APPLICABLE,  # erased entirely, but no export was waiting
    }


def test_anonymous_visitors_are_stitched_to_the_person_and_erased_with_them_or_by_cookie_id(world: World) -> None:
    """Issue 17 item 4 end to end: page views of an anonymous visitor (kept with analytics consent, dropped without),
    a form that carries the visitor's cookie id, the history on the contact, the website clock, then the person's
    erasure taking the device's history along, and a second device erased by its cookie id alone."""
    now = datetime.now(UTC).replace(microsecond=0)

    def page(visitor_id: str, minutes_ago: int, *, consent: bool | None = True) -> Any:
        document: dict[str, Any] = {
            "type": "page",
            "anonymousId": visitor_id,
            "properties": {"url": f"https://www.example.com/p{uuid.uuid4().hex[:6]}"},
            "timestamp": (now - timedelta(minutes=minutes_ago)).isoformat(),
        }
        if consent is not None:
            document["context"] = {"consent": {"categoryPreferences": {"Analytics": consent}}}
        result = world.ingest.submit(
            "site-analytics", Channel.WEBSITE, json.dumps(document).encode(), "application/json"
        )
        assert result.accepted, result
        (event,) = result.events
        return event

    shared_id, other_id = "ajs-7f3c0e4a-visitor", "ajs-b91d2aa0-other"
    before = page(shared_id, 120)
    refused = page(shared_id, 110, consent=False)
    elsewhere = page(other_id, 100)
    form = {
        "email": "vera.visitor@example.com",
        "first_name": "Vera",
        "last_name": "Visitorova",
        "message": f"Please send the price list ({uuid.uuid4().hex[:8]})",
        "anonymous_id": shared_id,
        "submittedAt": (now - timedelta(minutes=60)).isoformat(),
    }
    submitted = world.ingest.submit("site-form", Channel.WEB_FORM, json.dumps(form).encode(), "application/json")
    assert submitted.accepted, submitted
    after = page(shared_id, 30)
    person, device, other = submitted.subject_keys[0], before.subject_key, elsewhere.subject_key
    assert device.startswith("vk_") and device != person

    def stitched() -> Any:
        view = world.crm.show(person)
        ids = [[i.event_id for i in h.interactions] for h in view.website_history] if view else []
        return view if ids == [[before.event_id, after.event_id]] else None

    view = wait_until(stitched, timeout_s=60, what="the CRM to show the visitor's history on the contact")
    [history] = view.website_history
    assert history.visitor_key == device and history.attributed and history.linked_by_event_id == submitted.event_ids[0]
    drop = wait_until(lambda: world.dropped(refused.event_id), what="the page view without consent to be dropped")
    assert (drop.reason, drop.stage) == (DropReason.NO_CONSENT, "consent")
    # the website clock of the policy file: seven years from each page view
    assert [i.retention_expires_at for i in history.interactions] == [
        e.occurred_at.replace(year=e.occurred_at.year + 7) for e in (before, after)
    ]
    wait_until(lambda: world.crm.show(other) is not None, what="the other device's page view")
    assert world.hub.contact("vera.visitor@example.com") is not None

    erased = world.request(RightKind.ERASURE, "vera.visitor@example.com")
    crm_evidence = {s.sink: s for s in erased.sinks}["crm"].evidence
    assert (crm_evidence["visitors_erased"], crm_evidence["visitor_interactions_deleted"]) == (1, 2)
    gone = world.crm.show(device)
    assert gone is not None and gone.status == "erased" and gone.interactions_detail == []
    assert world.crm.visitor_links(device) == []
    with Session(world.runtime.engine) as session:
        keys = {k.scope: k.wrapped_key for k in session.scalars(select(SubjectKey))}
    assert keys[f"subject:{device}"] is None  # crypto-shredded with the person: linked at ingest
    assert keys[f"subject:{other}"] is not None  # nobody identified on the other device

    with pytest.raises(IdentityError):  # a cookie id names whom to erase, not whom to hand data to
        world.tools.request(RightKind.ACCESS, by=DPO, visitor_id=other_id)
    by_cookie = world.tools.request(RightKind.ERASURE, by=DPO, visitor_id=other_id)
    assert by_cookie.command.subject_key == other
    done = world.tools.wait(by_cookie.command.request_id, timeout_s=60)
    assert done is not None and done.state is RequestState.COMPLETED, done
    statuses = {s.sink: s.status for s in done.sinks}
    assert statuses["crm"] is SinkStatus.DONE and statuses["kafka"] is SinkStatus.DONE
    assert statuses["hubspot"] is SinkStatus.NOT_APPLICABLE  # HubSpot never held an anonymous visitor
    other_view = world.crm.show(other)
    assert other_view is not None and other_view.status == "erased" and other_view.interactions_detail == []
    _no_clear_text(world, shared_id, other_id, "vera.visitor@example.com", "Visitorova")
