"""A database restored from a backup taken before an erasure: the erasure is carried out again before anything reads.

Two people are spread over every topic and the CRM the way the pipeline spreads them (``spread_people``). A backup
of the PostgreSQL database is taken (``pg_dump`` of the whole database, or a copy of the key store's two tables),
one person is erased through the rights machinery, and the backup is restored over the database. The hole is real:
with the restored copy their sealed records open again. The worker and the API refuse to start and
``leadpipe restore verify`` says why; ``leadpipe restore verify --apply`` re-applies the erasure; then no topic read
from offset 0, no sink and no export recovers the person, the other person is untouched, and the check passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from identity_helpers import person
from rights_helpers import (
    invoke_cli,
    read_everything,
    runtime_on,
    sealed_holding,
    sealed_values,
    spread_people,
    wait_until,
)
from sqlalchemy import Engine, Table, delete, insert, select
from worker_thread import WorkerThread

from pipeline.agents import sinks
from pipeline.agents.launch import worker_env
from pipeline.agents.worker import create_app
from pipeline.config import Settings
from pipeline.crypto.keystore import DataKeyLink, SubjectKey
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.kafka.consumer import read_until
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import apply_topics, make_admin
from pipeline.models.identity import Role
from pipeline.models.rights import RightKind, SinkResult, SinkStatus
from pipeline.rights.commands import RightsDesk, build_command
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.restore import Restore, UnappliedErasuresError, require_reapplied, topic_states
from pipeline.rights.service import build_executor
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.topics import SUPPRESSION_TOPIC

pytestmark = pytest.mark.integration

DPO = person("dana", "Dana Privacy", Role.DPO)

ERASED = {"email": "rhea.vantablack@example.com", "first_name": "Rheanna", "last_name": "Vantablack"}
KEPT = {"email": "otto.celadon@example.org", "first_name": "Ottokar", "last_name": "Celadon"}
KEY_STORE = (cast(Table, SubjectKey.__table__), cast(Table, DataKeyLink.__table__))


@pytest.fixture
def world(kafka_settings: Settings, pg_url: str, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    with runtime_on(kafka_settings, make_settings, pg_url, sink_agents=("crm",)) as runtime:
        yield runtime


def _carry_out(runtime: Runtime, publisher: ConfirmingPublisher, kind: RightKind, subject_key: str) -> str:
    """A request through the rights machinery; no HubSpot here, so it waits in ATTENTION for that step."""
    desk = RightsDesk(RequestTracker(runtime.engine), publisher)
    (command,) = desk.submit([build_command(kind, subject_key, issued_by=DPO)])
    statuses = {s.sink: s.status for s in build_executor(runtime, publisher).execute(command)}
    assert statuses["crm"] is SinkStatus.DONE and statuses.get("kafka", SinkStatus.DONE) is SinkStatus.DONE, statuses
    assert statuses["hubspot"] is SinkStatus.FAILED
    return str(command.request_id)


class PgDump:
    """The whole database, as an operator backs it up: ``pg_dump -Fc``, restored with ``pg_restore --clean``."""

    def __init__(self, url: str, path: Path) -> None:
        self.url, self.path = url, path

    def take(self, engine: Engine) -> None:
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", str(self.path), self.url], check=True, timeout=120)

    def restore(self, engine: Engine) -> None:
        engine.dispose()  # no session of ours holds a lock on what is dropped
        command = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "-d", self.url]
        subprocess.run([*command, str(self.path)], check=True, timeout=120)


class KeyStoreCopy:
    """Only the key store's tables, copied row by row (a table-level backup), restored over the current ones."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def take(self, engine: Engine) -> None:
        with engine.connect() as conn:
            self.rows = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in KEY_STORE}

    def restore(self, engine: Engine) -> None:
        with engine.begin() as conn:
            for table in KEY_STORE:
                conn.execute(delete(table))
                if self.rows[table.name]:
                    conn.execute(insert(table), self.rows[table.name])


def _refused(settings: Settings, *command: str) -> str:
    """Run ``leadpipe <command>`` as a deployment would; it must exit 1 at once, saying why. Returns its stderr."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "leadpipe"), *command],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, (command, result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return result.stderr


@pytest.mark.parametrize("backup", ["pg_dump", "key_store_tables"])
def test_restored_backup_cannot_bring_an_erased_person_back(
    world: Runtime, backup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, settings = world, world.settings
    publisher = ConfirmingPublisher(settings)
    accepted = spread_people(runtime, publisher, [ERASED, KEPT])
    erased_key = accepted[ERASED["email"]][0].event.subject_key
    kept_key = accepted[KEPT["email"]][0].event.subject_key
    holds_erased, holds_others = sealed_holding(runtime, list(ERASED.values()))
    assert any(s.key_id.startswith("record:") for s in holds_erased), "the shared import payload was not seen"

    copy: PgDump | KeyStoreCopy = (
        PgDump(settings.resolved_database_url, tmp_path / "leadpipe.dump") if backup == "pg_dump" else KeyStoreCopy()
    )
    copy.take(runtime.engine)
    request_id = _carry_out(runtime, publisher, RightKind.ERASURE, erased_key)
    _carry_out(runtime, publisher, RightKind.RESTRICTION, kept_key)  # after the backup too
    carried_out = Restore(runtime).verify()  # requests as carried out leave nothing to re-apply
    assert carried_out.clean and carried_out.lost_handovers == []
    assert carried_out.in_flight == sorted([erased_key, kept_key])  # HubSpot's step is pending
    copy.restore(runtime.engine)

    # the hole: a fresh process opens the erased person's records again with the restored keys
    restored = Runtime(settings)
    try:
        assert all(restored.codec.sealer.open(s) for s in holds_erased)
        report = Restore(restored).verify()
    finally:
        restored.engine.dispose()
    assert not report.clean and set(report.keys) == {erased_key} and kept_key not in report.keys
    if backup == "pg_dump":  # the whole database is older: the CRM rows and the tracker's states came back too
        assert report.crm == [erased_key] and report.crm_flags == [kept_key]  # no longer restricted in the CRM
        assert report.tracker_behind == sorted([erased_key, kept_key])
        assert report.lost_handovers == []  # the restored tracker does not know the request either
    else:  # the CRM and the tracker are current; the keys came back, and the request's handover key is gone
        assert report.crm == [] and report.crm_flags == [] and report.tracker_behind == []
        assert report.lost_handovers == [request_id] and "HubSpot by hand" in report.summary()

    # nothing that reads may start: the worker and the API refuse; the check says what is left
    for command in (("worker", "--only", "pipeline.agents.rights:register"), ("serve",)):
        assert "leadpipe restore verify --apply" in _refused(settings, *command)
    checked = invoke_cli(settings, monkeypatch, "restore", "verify", "--json")
    assert checked.exit_code == 1 and json.loads(checked.stdout)["keys"].keys() == {erased_key}

    applied = invoke_cli(settings, monkeypatch, "restore", "verify", "--apply")
    assert applied.exit_code == 0, applied.output
    assert "re-applied to " in applied.stdout and "nothing to re-apply" in applied.stdout

    reader = Runtime(settings)  # a fresh process again: only what the database holds now
    try:
        require_reapplied(reader)  # the worker and the API may start
        for sealed in holds_erased:  # whatever key it was under: their own, the import's shared one
            with pytest.raises(KeyDestroyedError):
                reader.codec.sealer.open(sealed)
        erased_scope = f"subject:{erased_key}#"
        kept = [s for s in holds_others if not s.key_id.startswith(erased_scope)]
        assert kept and all(reader.codec.sealer.open(s) for s in kept)
        messages = read_everything(settings)
        clear = [v.lower().encode() for v in ERASED.values()]
        for message in messages:  # from offset 0, every topic, the restore's own audit records included
            assert not any(v in ((message.key or b"") + (message.value or b"")).lower() for v in clear), message.topic
            for sealed in sealed_values(json.loads(message.value or b"null")):
                if sealed.key_id.startswith(erased_scope):
                    with pytest.raises(KeyDestroyedError):
                        reader.codec.sealer.open(sealed)
        audits = [json.loads(m.value or b"{}") for m in messages if m.topic == "audit"]
        assert any(a["action"] == "rights.restore_reapplied" and a["subject_key"] == erased_key for a in audits)

        crm = CrmRights(reader.engine)
        erased_view, kept_view = crm.read.show(erased_key), crm.read.show(kept_key)
        assert erased_view is not None and erased_view.email is None and not erased_view.identities
        assert kept_view is not None and kept_view.email == KEPT["email"] and kept_view.status == "restricted"
        state = RequestTracker(reader.engine).state(erased_key)
        assert state is not None and state.erased  # the next request folds onto the erasure, not over it
        _no_export_recovers(reader, publisher, erased_key, kept_key)
        _no_sink_recovers(reader, accepted, erased_key)
    finally:
        reader.engine.dispose()
        publisher.close()


def _no_export_recovers(runtime: Runtime, publisher: ConfirmingPublisher, erased_key: str, kept_key: str) -> None:
    """A portability export of each person, as the DPO would request it: the erased one's holds nothing of them."""
    desk = RightsDesk(RequestTracker(runtime.engine), publisher)
    requested = [build_command(RightKind.PORTABILITY, key, issued_by=DPO) for key in (erased_key, kept_key)]
    executor = build_executor(runtime, publisher)
    documents: dict[str, bytes] = {}
    for command in desk.submit(requested):
        (status,) = executor.execute(command)
        assert status.status is SinkStatus.DONE, status
        documents[command.subject_key] = Path(status.evidence["path"]).read_bytes().lower()
    assert not any(v.lower().encode() in documents[erased_key] for v in ERASED.values())
    assert KEPT["email"].encode() in documents[kept_key]


def _no_sink_recovers(runtime: Runtime, accepted: dict[str, Any], erased_key: str) -> None:
    """The CRM sink agent reads ``contacts.accepted`` from offset 0 (a new consumer group): the erased person's
    records cannot be opened; the restricted one's are opened and screened out by the restriction the restore put
    back into the tracker (the backup predates it)."""
    total = sum(len(events) for events in accepted.values())
    settings = runtime.settings.model_copy(update={"app_id": f"restore-{uuid.uuid4().hex[:6]}"})
    group_runtime = Runtime(settings)
    try:
        with WorkerThread(create_app(group_runtime, [sinks.register])).start():
            records = read_until(settings, ["sinks.results"], lambda found: len(found) >= total, timeout_s=120)
    finally:
        group_runtime.engine.dispose()
    results = [SinkResult.model_validate_json(r.value or b"") for r in records]
    erased = {(r.status, r.detail or "") for r in results if r.subject_key == erased_key}
    kept = {(r.status, r.detail or "") for r in results if r.subject_key != erased_key}
    assert {status for status, _ in erased | kept} == {SinkStatus.NOT_APPLICABLE}
    assert erased and all("data key was destroyed" in detail for _, detail in erased), erased
    assert kept and all("restricted" in detail for _, detail in kept), kept
    view = CrmRights(runtime.engine).read.show(erased_key)
    assert view is not None and view.email is None and not view.interactions_detail


def test_a_lost_suppression_topic_is_written_again_from_the_tracker(world: Runtime) -> None:
    """The other way round: the database knows more. A suppression topic recreated empty (a lost cluster) would
    let the chain take the erased person's events again; the tracker's states are published again."""
    runtime, settings = world, world.settings
    publisher = ConfirmingPublisher(settings)
    try:
        accepted = spread_people(runtime, publisher, [ERASED])
        erased_key = accepted[ERASED["email"]][0].event.subject_key
        _carry_out(runtime, publisher, RightKind.ERASURE, erased_key)
        admin = make_admin(settings)
        for future in admin.delete_topics([settings.topic(SUPPRESSION_TOPIC)]).values():
            future.result(30)
        wait_until(lambda: _recreated(settings), timeout_s=60, what="the suppression topic to be created again")
        assert topic_states(runtime) == {}
        report = Restore(runtime).verify()
        assert report.topic_behind == [erased_key] and not report.keys and not report.crm
        with pytest.raises(UnappliedErasuresError):
            require_reapplied(runtime)
        assert Restore(runtime).reapply(publisher).clean
    finally:
        publisher.close()
    state = topic_states(runtime)[erased_key]
    assert state.erased and state == RequestTracker(runtime.engine).state(erased_key)


def _recreated(settings: Settings) -> bool:
    try:
        apply_topics(settings)
    except Exception:  # the deletion is still under way
        return False
    return settings.topic(SUPPRESSION_TOPIC) in make_admin(settings).list_topics(timeout=10).topics
