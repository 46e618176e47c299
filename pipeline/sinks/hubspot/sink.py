"""The HubSpot sink: batch upsert by e-mail, at most 100 distinct contacts per call, nothing lost.

- An event without an e-mail cannot be a HubSpot contact: ``not_applicable``, not a failure.
- Events of one e-mail in a batch become one input (HubSpot refuses a whole batch with a duplicate id).
- 200: written. 207: the inputs HubSpot answered with a retryable error (or did not answer) are sent again after a
  backoff; those with a validation error are dead-lettered with HubSpot's (scrubbed) message.
- A 4xx for the whole request: split in halves until the refused input is alone, then dead-letter it;
  401/403/404 mean configuration, not data: pause instead.
- 429, 5xx, timeouts: the gateway retries; when its retries run out the sink raises backpressure, never drops.
- Replays (``guard.py``): an event received before its subject's erasure is ``not_applicable`` (checked again
  before every call, so an erasure during a long pause still wins); an event received before a rectification of
  its subject is written without its person properties. Without a guard neither is checked.
- Deliveries (``pipeline.sinks.ledger``): an event HubSpot already took (a batch delivered again after a crash)
  is answered from the ledger, not sent again; one whose call was in flight when a process died is read back
  from HubSpot first. Without a ledger every redelivery is upserted again (same properties: harmless but counted).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

from sqlalchemy.exc import DBAPIError

from pipeline.config import Settings
from pipeline.logging import get_logger
from pipeline.models.tagged import TaggedEvent
from pipeline.sinks.base import (
    BatchingSink,
    RecordResult,
    SinkBackpressureError,
    WriteOutcome,
    backoff_delay,
    confirm_ownership,
)
from pipeline.sinks.hubspot.dryrun import DryRunGateway
from pipeline.sinks.hubspot.gateway import HubSpotGateway, HubSpotRequestError, HubSpotUnavailable, UpsertResponse
from pipeline.sinks.hubspot.guard import NO_RIGHTS, RightsGuard, SubjectRights
from pipeline.sinks.hubspot.properties import (
    CUSTOM_PROPERTIES,
    ContactUpsert,
    PropertyDef,
    chunks,
    contact_email,
    merge_by_email,
)
from pipeline.sinks.ledger import DELIVERED, SENDING, DeliveryLedger

log = get_logger(__name__)

T = TypeVar("T")

#: Result reason of an event received before its subject's erasure (the CRM sink reports the same).
SUBJECT_ERASED = "subject_erased"
#: How long to pause when the rights history cannot be read (writing unchecked could resurrect an erased person).
GUARD_RETRY_AFTER_S = 2.0

#: The custom property naming the last event upserted into a contact (``properties.CUSTOM_PROPERTIES``).
SOURCE_EVENT_PROPERTY = "leadpipe_source_event_id"

#: Whole-request statuses that say something about the inputs (split and dead-letter), not about the setup.
RECORD_STATUSES = frozenset({400, 409, 413, 422})


class ContactsPort(Protocol):
    """What the sink needs from HubSpot: the real gateway or the dry run."""

    def upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> UpsertResponse: ...

    def read_contacts(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def ensure_properties(self, definitions: Sequence[PropertyDef] = CUSTOM_PROPERTIES) -> list[str]: ...

    def close(self) -> None: ...


def make_gateway(settings: Settings) -> Any:
    """The real gateway with a token, the dry run without one (the embedded default)."""
    if settings.hubspot_dry_run:
        return DryRunGateway(settings.resolved_dry_run_file)
    return HubSpotGateway(settings)


class HubSpotSink(BatchingSink):
    name = "hubspot"

    def __init__(
        self,
        gateway: ContactsPort,
        *,
        batch_size: int = 100,
        max_retries: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        config_retry_after_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        guard: RightsGuard | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> None:
        if not 1 <= batch_size <= 100:
            raise ValueError("HubSpot takes 1 to 100 inputs per batch call")
        self.gateway = gateway
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.config_retry_after_s = config_retry_after_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.guard = guard
        self.ledger = ledger
        self._ready = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        gateway: ContactsPort | None = None,
        *,
        guard: RightsGuard | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> HubSpotSink:
        """``guard``: the rights history (``pipeline.rights.history``); without it replays are not guarded.
        ``ledger``: the deliveries already made; without it a redelivered batch is upserted again."""
        return cls(
            gateway or make_gateway(settings),
            batch_size=settings.hubspot_batch_size,
            max_retries=settings.hubspot_max_retries,
            backoff_base_s=settings.hubspot_backoff_base_s,
            backoff_max_s=settings.hubspot_backoff_max_s,
            config_retry_after_s=settings.sink_retry_max_s,
            guard=guard,
            ledger=ledger,
        )

    def setup(self) -> None:
        """Create the custom properties (idempotent); unreachable HubSpot is backpressure, retried by the caller."""
        if self._ready:
            return
        if self.guard is None:
            log.warning("hubspot_replay_guard_off", reason="no rights guard given: erasures are not re-checked")
        else:
            try:
                self.guard.setup()
            except DBAPIError as exc:
                raise SinkBackpressureError(GUARD_RETRY_AFTER_S, f"rights history: {type(exc.orig).__name__}") from exc
        try:
            self.gateway.ensure_properties()
        except HubSpotUnavailable as exc:
            raise SinkBackpressureError(exc.retry_after, exc.reason) from exc
        except HubSpotRequestError as exc:
            raise SinkBackpressureError(self.config_retry_after_s, f"cannot create properties: {exc}") from exc
        self._ready = True

    def write(self, batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        self.setup()
        results: list[RecordResult] = []
        seen: set[object] = set()
        with_email = []
        for tagged in batch:
            event_id = tagged.event.event_id
            if event_id in seen:
                continue
            seen.add(event_id)
            if contact_email(tagged) is None:
                results.append(
                    RecordResult.not_applicable(
                        event_id, "no_email", "HubSpot keeps contacts by e-mail address and this event has none"
                    )
                )
            else:
                with_email.append(tagged)
        rights = self._rights(t.event.subject_key for t in with_email)
        fresh, stale = [], set()
        for tagged in with_email:
            event = tagged.event
            subject = rights.get(event.subject_key, NO_RIGHTS)
            if subject.superseded(event.event_id, event.received_at):
                results.append(_superseded(event.event_id))
                continue
            fresh.append(tagged)
            if subject.rectified_since(event.received_at):
                stale.add(event.event_id)
        if len(fresh) < len(with_email) or stale:
            log.info("hubspot_replay_guard", superseded=len(with_email) - len(fresh), profile_left_out=len(stale))
        for chunk in chunks(merge_by_email(fresh, without_profile=stale), self.batch_size):
            results.extend(self._write_chunk(chunk))
        return [
            RecordResult.written(r.event_id, r.external_id, "person properties left out: older than a rectification")
            if r.event_id in stale and r.outcome is WriteOutcome.WRITTEN
            else r
            for r in results
        ]

    def _rights(self, subject_keys: Iterable[str]) -> dict[str, SubjectRights]:
        """The subjects' erasures and rectifications; unreadable is backpressure, never an unchecked write."""
        if self.guard is None:
            return {}
        try:
            return self.guard.of(set(subject_keys))
        except DBAPIError as exc:
            log.warning("hubspot_replay_guard_unavailable", error=type(exc.orig).__name__)
            raise SinkBackpressureError(GUARD_RETRY_AFTER_S, f"rights history: {type(exc.orig).__name__}") from exc

    def _screen(self, pending: list[ContactUpsert]) -> tuple[list[ContactUpsert], list[RecordResult]]:
        """Right before a call: drop the inputs whose subject was erased after they were received."""
        if self.guard is None:
            return pending, []
        rights = self._rights(key for upsert in pending for key in upsert.subject_keys)
        keep: list[ContactUpsert] = []
        skipped: list[RecordResult] = []
        for upsert in pending:
            received = upsert.received_at
            if received is not None and any(
                rights.get(key, NO_RIGHTS).superseded(event_id, received)
                for key in upsert.subject_keys
                for event_id in upsert.event_ids
            ):
                skipped.extend(_superseded(e) for e in upsert.event_ids)
            else:
                keep.append(upsert)
        if skipped:
            log.info("hubspot_replay_guard", superseded=len(skipped), profile_left_out=0)
        return keep, skipped

    def _write_chunk(self, chunk: list[ContactUpsert]) -> list[RecordResult]:
        out: list[RecordResult] = []
        pending = chunk
        attempt = 0
        while pending:
            pending, skipped = self._screen(pending)
            out.extend(skipped)
            pending, known = self._undelivered(pending)
            out.extend(known)
            if not pending:
                break
            if self.ledger is not None:
                self._in_ledger(self.ledger.sending, [e for u in pending for e in u.event_ids])
            confirm_ownership()  # last: a stalled worker's batch is its partitions' new owner's now
            try:
                response = self.gateway.upsert_contacts(pending)
            except HubSpotUnavailable as exc:
                raise SinkBackpressureError(exc.retry_after, exc.reason) from exc
            except HubSpotRequestError as exc:
                if exc.status not in RECORD_STATUSES:
                    raise SinkBackpressureError(self.config_retry_after_s, f"HubSpot refused the call: {exc}") from exc
                if len(pending) == 1:
                    out.extend(_failed(pending[0], exc.category, exc.message, exc.correlation_id))
                    return out
                half = len(pending) // 2
                return out + self._write_chunk(pending[:half]) + self._write_chunk(pending[half:])
            retry: list[ContactUpsert] = []
            if self.ledger is not None:
                written = response.written
                landed = {e: written[u.trace_id] for u in pending if u.trace_id in written for e in u.event_ids}
                self._in_ledger(self.ledger.delivered, landed)
            for upsert in pending:
                trace = upsert.trace_id
                if trace in response.written:
                    contact_id = response.written[trace]
                    out.extend(RecordResult.written(e, external_id=contact_id) for e in upsert.event_ids)
                elif trace in response.errors and not response.errors[trace].retryable:
                    error = response.errors[trace]
                    out.extend(_failed(upsert, error.category, error.message, None))
                else:  # a retryable error, or HubSpot did not answer for this input
                    retry.append(upsert)
            pending = retry
            if pending:
                delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
                attempt += 1
                if attempt > self.max_retries:
                    raise SinkBackpressureError(delay, f"HubSpot kept failing {len(pending)} inputs")
                log.info("hubspot_partial_retry", inputs=len(pending), attempt=attempt, delay_s=round(delay, 3))
                self._sleep(delay)
        return out

    def _in_ledger(self, method: Callable[[Any], T], argument: Any) -> T:
        """A ledger call; its database being unreachable is backpressure (never an unrecorded call)."""
        try:
            return method(argument)
        except DBAPIError as exc:
            log.warning("hubspot_ledger_unavailable", error=type(exc.orig).__name__)
            raise SinkBackpressureError(GUARD_RETRY_AFTER_S, f"delivery ledger: {type(exc.orig).__name__}") from exc

    def _undelivered(self, pending: list[ContactUpsert]) -> tuple[list[ContactUpsert], list[RecordResult]]:
        """The inputs HubSpot has not taken yet, and ``written`` results for those it has (see ``ledger``).

        An input whose events the ledger marks ``sending`` (a call in flight when a process died) is read back:
        HubSpot's ``leadpipe_source_event_id`` on the contact names the last event upserted into it."""
        if self.ledger is None:
            return pending, []
        known = self._in_ledger(self.ledger.lookup, [e for u in pending for e in u.event_ids])
        if not known:
            return pending, []
        results: list[RecordResult] = []
        unsure: list[ContactUpsert] = []
        send: list[ContactUpsert] = []
        for upsert in pending:
            states = [known.get(e) for e in upsert.event_ids]
            if all(s is not None and s.state == DELIVERED for s in states):
                results.extend(
                    RecordResult.written(e, external_id=s.external_id)
                    for e, s in zip(upsert.event_ids, states, strict=True)
                    if s
                )
            elif any(s is not None and s.state == SENDING for s in states):
                unsure.append(upsert)
            else:
                send.append(upsert)
        if unsure:
            try:
                there = self.gateway.read_contacts([u.email for u in unsure], [SOURCE_EVENT_PROPERTY])
            except HubSpotUnavailable as exc:
                raise SinkBackpressureError(exc.retry_after, exc.reason) from exc
            landed: dict[UUID, str | None] = {}
            for upsert in unsure:
                contact = there.get(upsert.email)
                if contact is not None and contact.get(SOURCE_EVENT_PROPERTY) == upsert.properties.get(
                    SOURCE_EVENT_PROPERTY
                ):
                    contact_id = str(contact.get("hs_object_id") or "") or None
                    landed.update((e, contact_id) for e in upsert.event_ids)
                    results.extend(RecordResult.written(e, external_id=contact_id) for e in upsert.event_ids)
                else:
                    send.append(upsert)
            self._in_ledger(self.ledger.delivered, landed)
            log.info("hubspot_unsure_deliveries_read_back", inputs=len(unsure), landed=len(unsure) - len(send))
        if results:
            log.info("hubspot_already_delivered", events=len(results))
        return send, results

    def close(self) -> None:
        self.gateway.close()


def _superseded(event_id: UUID) -> RecordResult:
    return RecordResult.not_applicable(
        event_id, SUBJECT_ERASED, "received before the subject's erasure; not written (it would recreate the contact)"
    )


def _failed(upsert: ContactUpsert, category: str, message: str, correlation_id: str | None) -> list[RecordResult]:
    reason = "hubspot_validation" if category == "VALIDATION_ERROR" else f"hubspot_{category.lower()}"
    text = f"HubSpot {category}: {message}" + (f" (correlationId {correlation_id})" if correlation_id else "")
    log.warning("hubspot_record_refused", events=[str(e) for e in upsert.event_ids], category=category)
    return [RecordResult.failed(e, reason, text[:2000]) for e in upsert.event_ids]
