"""After a database restore: carry out again every erasure the restored copy no longer shows (crypto-shredding holds).

The database holds the key store, the CRM and the rights tracker. A copy of it taken before an erasure brings the
erased subject's data keys back, and with them every sealed copy of their data on every topic; it brings back the
CRM rows the erasure deleted; and its tracker no longer knows the erasure happened, so the next request about the
subject would be folded onto an old state and published over the erasure. What survives the restore is the
compacted ``suppression`` topic: every subject's latest state, erasures included (``erased_at``). The tracker's
``rights_subject_state`` keeps the same states in the database, and knows more when the topic was lost instead.

``verify`` compares the two and the database; ``reapply`` makes them agree and erases again:

1. each subject's newer state goes to the side that lacks it: the tracker (the next request folds onto it, the sink
   agents screen writes with it) or the topic (the chain reads it);
2. every data key of an erased subject, and every shared payload key linked to it, created up to the erasure is
   destroyed again; a key created later belongs to a person who came back (a new, lawful collection) and stays;
3. the CRM rows still holding data collected before the erasure are erased again (``CrmRights.erase_subject``),
   and a CRM row whose restriction, objection or consent contradicts the state gets the state's again;
4. the handover keys of erasing requests the tracker shows completed are destroyed again.

Each re-applied subject is audited (tracker and ``audit`` topic). ``require_reapplied`` is what the worker and the
API run before they start: they refuse while ``verify`` finds anything to re-apply. A step of a request still open
in the tracker that its sink has not confirmed yet does not count there: the rights worker is on it (in normal
operation the keys live for the milliseconds between the suppression record and their destruction, longer while a
step is retried). A step the tracker shows done (or a request it does not know) whose effect the database does not
show does count. ``reapply`` re-applies everything (every step is idempotent; the rights agent then finds it done).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pipeline.crypto.sealing import subject_scope
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.logging import get_logger
from pipeline.models.identity import system_principal
from pipeline.models.rights import AuditRecord, SinkStatus, SuppressionRecord
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.executor import HANDOVER_SCOPE_PREFIX, handover_scope
from pipeline.rights.tracker import RequestState, RequestTracker
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC, SUPPRESSION_TOPIC

log = get_logger(__name__)

#: Who re-applies: the product itself (the restore hook Job), named on every CRM change and audit record.
ACTOR = system_principal("restore")
_FINISHED = (SinkStatus.DONE, SinkStatus.NOT_APPLICABLE)
#: How long reading the whole suppression topic may take (one record per subject that ever had a rights request).
READ_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Reconciled:
    """The suppression states of the topic and the tracker, made to agree (``reconcile``)."""

    newest: dict[str, SuppressionRecord]
    """Each subject's newer state (the topic's on a tie)."""
    tracker_behind: list[SuppressionRecord]
    """States the tracker lacks or holds older: to save there."""
    topic_behind: list[SuppressionRecord]
    """States the topic lacks or holds older: to publish."""

    def erasures(self) -> dict[str, SuppressionRecord]:
        """The subjects whose newest state is erased, by subject key."""
        return {key: state for key, state in self.newest.items() if state.erased and state.erased_at is not None}


def reconcile(topic: Mapping[str, SuppressionRecord], tracker: Mapping[str, SuppressionRecord]) -> Reconciled:
    """Per subject, the newer of the topic's and the tracker's state (by ``updated_at``; states are full folds of the
    subject's requests, so the newer one holds every earlier flag), and which side is behind."""
    newest: dict[str, SuppressionRecord] = {}
    tracker_behind: list[SuppressionRecord] = []
    topic_behind: list[SuppressionRecord] = []
    for key in sorted(topic.keys() | tracker.keys()):
        on_topic, in_tracker = topic.get(key), tracker.get(key)
        if on_topic is not None and (in_tracker is None or on_topic.updated_at >= in_tracker.updated_at):
            newest[key] = on_topic
            if in_tracker != on_topic:
                tracker_behind.append(on_topic)
        else:
            assert in_tracker is not None
            newest[key] = in_tracker
            topic_behind.append(in_tracker)
    return Reconciled(newest, tracker_behind, topic_behind)


@dataclass(frozen=True)
class RestoreReport:
    """What the database holds that the recorded erasures and states say it must not (subject keys and ids only)."""

    subjects: int
    erased: int
    keys: dict[str, list[str]] = field(default_factory=dict)
    """Erased subject -> key ids still live that were created up to the erasure (own or linked payload keys)."""
    crm: list[str] = field(default_factory=list)
    """Erased subjects whose CRM rows hold data collected before the erasure."""
    crm_flags: list[str] = field(default_factory=list)
    """Subjects whose CRM row contradicts their state: restriction, objection or a withdrawn consent."""
    handovers: list[str] = field(default_factory=list)
    """Completed erasing requests whose handover key is live."""
    tracker_behind: list[str] = field(default_factory=list)
    topic_behind: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    """Subjects whose latest request is still open in the tracker: a step the rights worker has not finished yet is
    not counted above (it will carry it out)."""
    lost_handovers: list[str] = field(default_factory=list)
    """Open erasing requests whose HubSpot step can no longer learn the e-mails (handover key gone): by hand."""
    reapplied: int = 0
    """After ``--apply``: the subjects it re-applied something to (each audited); the findings are what is left."""

    @property
    def clean(self) -> bool:
        return not (
            self.keys or self.crm or self.crm_flags or self.handovers or self.tracker_behind or self.topic_behind
        )

    def summary(self) -> str:
        """One line per finding; counts only (subject keys are in ``as_dict``)."""
        lines = [f"suppression states: {self.subjects} subjects, {self.erased} erased"]
        findings = (
            (self.keys, f"erased subjects with live data keys from before their erasure ({_count(self.keys)} keys)"),
            (self.crm, "erased subjects whose CRM rows hold data from before their erasure"),
            (self.crm_flags, "subjects whose CRM row contradicts their restriction, objection or consent withdrawal"),
            (self.handovers, "completed erasures whose handover key is live"),
            (self.tracker_behind, "subjects whose tracker state is older than the topic's"),
            (self.topic_behind, "subjects whose suppression state on the topic is older than the tracker's"),
            (self.in_flight, "subjects with a request still being carried out (left to the rights worker)"),
            (
                self.lost_handovers,
                "open erasures whose handover key the restore lost: HubSpot cannot be told by e-mail any more; "
                "erase those contacts in HubSpot by hand (`leadpipe dpo show REQUEST`)",
            ),
        )
        if self.reapplied:
            lines.append(f"re-applied to {self.reapplied} subject(s), each audited (rights.restore_reapplied); now:")
        lines += [f"{len(found)} {what}" for found, what in findings if found]
        lines.append("nothing to re-apply" if self.clean else "erasures to re-apply: `leadpipe restore verify --apply`")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "subjects": self.subjects,
            "erased": self.erased,
            "keys": self.keys,
            "crm": self.crm,
            "crm_flags": self.crm_flags,
            "handovers": self.handovers,
            "tracker_behind": self.tracker_behind,
            "topic_behind": self.topic_behind,
            "in_flight": self.in_flight,
            "lost_handovers": self.lost_handovers,
            "reapplied": self.reapplied,
        }


def _count(keys: Mapping[str, list[str]]) -> int:
    return sum(len(ids) for ids in keys.values())


class UnappliedErasuresError(RuntimeError):
    """The database holds what recorded erasures destroyed (a backup restored over them): nothing may read it yet."""

    def __init__(self, report: RestoreReport) -> None:
        super().__init__(
            "the database holds data of erased subjects or suppression states older than the suppression topic "
            "(restored from a backup?); run `leadpipe restore verify --apply` before starting workers or the API:\n"
            + report.summary()
        )
        self.report = report


def topic_states(runtime: Runtime, timeout_s: float = READ_TIMEOUT_S) -> dict[str, SuppressionRecord]:
    """The latest state per subject on the compacted suppression topic, read to its end."""
    states: dict[str, SuppressionRecord] = {}
    for record in read_to_end(runtime.settings, [SUPPRESSION_TOPIC], timeout_s=timeout_s):
        if record.value is None:  # a tombstone (nothing publishes one): the subject has no state
            states.pop((record.key or b"").decode(), None)
            continue
        try:
            state = SuppressionRecord.model_validate_json(record.value)
        except ValueError as exc:
            raise ValueError(
                f"{SUPPRESSION_TOPIC}[{record.partition}]@{record.offset} is not a SuppressionRecord: {exc}"
            ) from None
        states[state.subject_key] = state
    return states


class Restore:
    """Compares the database with the recorded erasures and states (``verify``) and makes it agree (``reapply``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tracker = RequestTracker(runtime.engine)
        self.crm = CrmRights(runtime.engine)

    def _read(self) -> tuple[Reconciled, dict[str, set[str]]]:
        """The states made to agree, and the sinks each request still open in the tracker has not finished."""
        on_topic = topic_states(self.runtime)
        in_tracker = {state.subject_key: state for state in self.tracker.states()}
        unfinished = {
            str(view.request_id): {s.sink for s in view.sinks if s.status not in _FINISHED}
            for view in self.tracker.open_requests()
        }
        return reconcile(on_topic, in_tracker), unfinished

    def _findings(self, reconciled: Reconciled, unfinished: Mapping[str, set[str]]) -> RestoreReport:
        def settled(state: SuppressionRecord, sink: str) -> bool:
            """Whether ``sink`` has done its part of the subject's latest request (or the tracker lost it)."""
            return sink not in unfinished.get(str(state.request_id), ())

        erasures = reconciled.erasures()
        cutoffs = {k: _erased_at(state) for k, state in erasures.items()}
        by_scope = self.runtime.keystore.live_keys(
            {subject_scope(k): at for k, at in cutoffs.items() if settled(erasures[k], "kafka")}
        )
        keys = {k: by_scope[subject_scope(k)] for k in erasures if subject_scope(k) in by_scope}
        crm = self.crm.held_before({k: at for k, at in cutoffs.items() if settled(erasures[k], "crm")})
        flags = self.crm.flags_behind({k: s for k, s in reconciled.newest.items() if settled(s, "crm")})
        live_handovers = self.runtime.keystore.live_scopes(HANDOVER_SCOPE_PREFIX)
        return RestoreReport(
            subjects=len(reconciled.newest),
            erased=len(erasures),
            keys=keys,
            crm=sorted(crm),
            crm_flags=sorted(flags),
            handovers=self._completed_handovers(live_handovers),
            tracker_behind=sorted(s.subject_key for s in reconciled.tracker_behind if settled(s, "suppression")),
            topic_behind=sorted(s.subject_key for s in reconciled.topic_behind if settled(s, "suppression")),
            in_flight=sorted(k for k, s in reconciled.newest.items() if str(s.request_id) in unfinished),
            lost_handovers=self._lost_handovers(unfinished, live_handovers),
        )

    def _completed_handovers(self, live: set[str]) -> list[str]:
        """Request ids of completed requests whose handover key is live (normally destroyed on completion)."""
        request_ids = sorted(scope.removeprefix(HANDOVER_SCOPE_PREFIX) for scope in live)
        return [
            request_id
            for request_id in request_ids
            if (view := self.tracker.get(request_id)) is not None and view.state is RequestState.COMPLETED
        ]

    def _lost_handovers(self, unfinished: Mapping[str, set[str]], live: set[str]) -> list[str]:
        """Open requests whose HubSpot step still waits for a handover whose key is gone (a key store restored from
        before the request): HubSpot, keyed by e-mail, can then not be reached by the retries."""
        return sorted(
            request_id
            for request_id, sinks in unfinished.items()
            if "hubspot" in sinks
            and handover_scope(request_id) not in live
            and self.tracker.handover(request_id) is not None
        )

    def verify(self) -> RestoreReport:
        """What is left to re-apply (nothing is changed)."""
        return self._findings(*self._read())

    def reapply(self, publisher: ConfirmingPublisher) -> RestoreReport:
        """Re-apply every state and erasure the database does not show, in-flight requests included (each step is
        what the rights agent does, and idempotent); returns ``verify``'s report afterwards."""
        reconciled, _ = self._read()
        touched: dict[str, dict[str, Any]] = {}
        for state in reconciled.tracker_behind:  # first: the sinks screen their writes with these states
            self.tracker.save_state(state)
            touched.setdefault(state.subject_key, {})["tracker_state_restored"] = True
        if reconciled.topic_behind:
            publisher.publish(Outgoing(SUPPRESSION_TOPIC, s.subject_key, s) for s in reconciled.topic_behind)
            for state in reconciled.topic_behind:
                touched.setdefault(state.subject_key, {})["topic_state_republished"] = True
        erasures = reconciled.erasures()
        keystore = self.runtime.keystore
        live = keystore.live_keys({subject_scope(k): _erased_at(state) for k, state in erasures.items()})
        for key, state in erasures.items():
            if subject_scope(key) in live:
                destroyed = keystore.destroy(
                    subject_scope(key), f"restore:{state.request_id}", created_by=_erased_at(state)
                )
                touched.setdefault(key, {})["keys_destroyed"] = destroyed
        for key in sorted(self.crm.held_before({k: _erased_at(state) for k, state in erasures.items()})):
            state = erasures[key]
            erased = self.crm.erase_subject(key, state.request_id, at=_erased_at(state), actor=ACTOR.actor)
            touched.setdefault(key, {})["crm"] = erased.evidence()
        for key in sorted(self.crm.flags_behind(reconciled.newest)):
            touched.setdefault(key, {})["crm_flags"] = self._restore_flags(reconciled.newest[key])
        for request_id in self._completed_handovers(keystore.live_scopes(HANDOVER_SCOPE_PREFIX)):
            keystore.destroy(handover_scope(request_id), f"restore:handover_done:{request_id}")
            touched.setdefault(self.tracker.command(request_id).subject_key, {})["handover_destroyed"] = request_id
        self._audit(publisher, reconciled.newest, touched)
        report = replace(self.verify(), reapplied=len(touched))
        log.info("restore_reapplied", subjects=len(touched), clean=report.clean)
        return report

    def _restore_flags(self, state: SuppressionRecord) -> dict[str, Any]:
        """The CRM's restriction, objection and consent withdrawals as ``state`` says (each idempotent)."""
        key, request_id = state.subject_key, state.request_id
        done: dict[str, Any] = {
            "restricted": self.crm.set_restriction(
                key, request_id, restricted=state.restricted, actor=ACTOR.actor
            ).changed
        }
        if state.marketing_objected:
            done["marketing_objected"] = self.crm.set_marketing_objection(key, request_id, actor=ACTOR.actor).changed
        if state.consent_withdrawn:
            purposes = [p.value for p in state.consent_withdrawn]
            withdrawn = self.crm.withdraw_consent(key, request_id, purposes, actor=ACTOR.actor)
            done["consent_withdrawn"] = list(withdrawn.purposes_withdrawn)
        return done

    def _audit(
        self,
        publisher: ConfirmingPublisher,
        states: Mapping[str, SuppressionRecord],
        touched: Mapping[str, dict[str, Any]],
    ) -> None:
        """One audit record per subject re-applied, in the tracker and on the audit topic (like the rights agent)."""
        now = datetime.now(UTC)
        records = [
            AuditRecord(
                audit_id=uuid4(),
                at=now,
                actor=ACTOR.actor,
                principal=ACTOR,
                action="rights.restore_reapplied",
                subject_key=key,
                request_id=_request_of(states, key),
                detail=detail,
            )
            for key, detail in sorted(touched.items())
        ]
        for record in records:
            self.tracker.audit(record)
        if records:
            publisher.publish(Outgoing(AUDIT_TOPIC, r.subject_key, r) for r in records)


def _erased_at(state: SuppressionRecord) -> datetime:
    assert state.erased_at is not None
    return state.erased_at


def _request_of(states: Mapping[str, SuppressionRecord], key: str) -> UUID | None:
    state = states.get(key)
    return None if state is None else state.request_id


def require_reapplied(runtime: Runtime) -> None:
    """Refuse to go on (``UnappliedErasuresError``) while the database holds what recorded erasures destroyed."""
    report = Restore(runtime).verify()
    if not report.clean:
        raise UnappliedErasuresError(report)
