"""The HubSpot sink: batch upsert by e-mail, at most 100 distinct contacts per call, nothing lost.

- An event without an e-mail cannot be a HubSpot contact: ``not_applicable``, not a failure.
- Events of one e-mail in a batch become one input (HubSpot refuses a whole batch with a duplicate id).
- 200: written. 207: the inputs HubSpot answered with a retryable error (or did not answer) are sent again after a
  backoff; those with a validation error are dead-lettered with HubSpot's (scrubbed) message.
- A 4xx for the whole request: split in halves until the refused input is alone, then dead-letter it;
  401/403/404 mean configuration, not data: pause instead.
- 429, 5xx, timeouts: the gateway retries; when its retries run out the sink raises backpressure, never drops.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pipeline.config import Settings
from pipeline.logging import get_logger
from pipeline.models.tagged import TaggedEvent
from pipeline.sinks.base import BatchingSink, RecordResult, SinkBackpressureError, backoff_delay
from pipeline.sinks.hubspot.gateway import HubSpotGateway, HubSpotRequestError, HubSpotUnavailable, UpsertResponse
from pipeline.sinks.hubspot.properties import (
    CUSTOM_PROPERTIES,
    ContactUpsert,
    PropertyDef,
    chunks,
    contact_email,
    merge_by_email,
)

log = get_logger(__name__)

#: Whole-request statuses that say something about the inputs (split and dead-letter), not about the setup.
RECORD_STATUSES = frozenset({400, 409, 413, 422})


class ContactsPort(Protocol):
    """What the sink needs from HubSpot: the real gateway or the dry run."""

    def upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> UpsertResponse: ...

    def ensure_properties(self, definitions: Sequence[PropertyDef] = CUSTOM_PROPERTIES) -> list[str]: ...

    def close(self) -> None: ...


def make_gateway(settings: Settings) -> Any:
    """The real gateway with a token, the dry run without one (the embedded default)."""
    if settings.hubspot_dry_run:
        from pipeline.sinks.hubspot.dryrun import DryRunGateway

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
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, gateway: ContactsPort | None = None) -> HubSpotSink:
        return cls(
            gateway or make_gateway(settings),
            batch_size=settings.hubspot_batch_size,
            max_retries=settings.hubspot_max_retries,
            backoff_base_s=settings.hubspot_backoff_base_s,
            backoff_max_s=settings.hubspot_backoff_max_s,
            config_retry_after_s=settings.sink_retry_max_s,
        )

    def setup(self) -> None:
        """Create the custom properties (idempotent); unreachable HubSpot is backpressure, retried by the caller."""
        if self._ready:
            return
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
        for chunk in chunks(merge_by_email(with_email), self.batch_size):
            results.extend(self._write_chunk(chunk))
        return results

    def _write_chunk(self, chunk: list[ContactUpsert]) -> list[RecordResult]:
        out: list[RecordResult] = []
        pending = chunk
        attempt = 0
        while pending:
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

    def close(self) -> None:
        self.gateway.close()


def _failed(upsert: ContactUpsert, category: str, message: str, correlation_id: str | None) -> list[RecordResult]:
    reason = "hubspot_validation" if category == "VALIDATION_ERROR" else f"hubspot_{category.lower()}"
    text = f"HubSpot {category}: {message}" + (f" (correlationId {correlation_id})" if correlation_id else "")
    log.warning("hubspot_record_refused", events=[str(e) for e in upsert.event_ids], category=category)
    return [RecordResult.failed(e, reason, text[:2000]) for e in upsert.event_ids]
