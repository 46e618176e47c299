"""The agents' side of spam filtering: the engine's and the classifier's verdicts of a batch, and learning decisions.

The processing agent asks ``AgentSpam.judge`` for every batch (off the event loop: the engine, Redis and the raw
topic are blocking calls) and hands the two verdict maps to the chain. E-mail is scored as received: its raw
message is read back from ``contacts.raw.email`` (``RawRecordReader``) and opened with its key; an event whose raw
record cannot be found is scored from its parsed form, as the other channels are.

The engine being down or slow never lets an event through unseen. Policy ``spam.engine.on_unavailable``:
``review`` scores it at once with the reason ``spam_engine_unavailable`` (which lifts it to the threshold: it goes to
a person); ``wait`` asks again with back-off (1, 2, 4 ... 30 s) for up to ``max_wait_s`` while the partition waits,
and only then scores it like ``review``. Every engine answer is counted by result
(``leadpipe_spam_engine_results_total``), which the chart's alert reads.

The review agent calls ``learn`` for each decision: a release teaches ham, a confirmation spam, to both the engine
and the classifier, idempotently per event (``SpamSignals.learn``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from prometheus_client import Counter

from pipeline.agents.metrics import WorkerMetrics
from pipeline.config import Settings
from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.kafka.raw import RawRecordReader
from pipeline.logging import get_logger
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.spam import ClassifierVerdict, EngineResult, EngineUnavailable, LearnOutcome
from pipeline.policy.model import SpamPolicy
from pipeline.processors.spam import engine_gate
from pipeline.spam.engine import Label
from pipeline.spam.render import email_of_payload
from pipeline.spam.signals import SpamSignals
from pipeline.topics import raw_topic

log = get_logger(__name__)

#: Back-off of the ``wait`` mode: first pause, and the longest.
WAIT_FIRST_S = 1.0
WAIT_LONGEST_S = 30.0

Verdicts = tuple[dict[UUID, EngineResult], dict[UUID, ClassifierVerdict]]


def engine_result_label(result: EngineResult) -> str:
    """The metric label of one engine answer: ``scored`` or why there was none (timeout, unreachable, error)."""
    return "scored" if not isinstance(result, EngineUnavailable) else result.reason


@dataclass
class AgentSpam:
    """One worker's spam signals, raw e-mail reader and counters; shared by its processing and review agents."""

    signals: SpamSignals
    codec: RecordCodec
    policy: SpamPolicy
    results: Counter
    learned: Counter
    reader: RawRecordReader | None = None
    reload_s: float = 30.0
    _reader_lock: threading.Lock = field(default_factory=threading.Lock)
    _reloaded_at: float = field(default_factory=time.monotonic)

    @classmethod
    def from_settings(
        cls, settings: Settings, pepper: bytes, codec: RecordCodec, policy: SpamPolicy, metrics: WorkerMetrics
    ) -> AgentSpam:
        return cls(
            signals=SpamSignals.from_settings(settings, pepper, policy.classifier),
            codec=codec,
            policy=policy,
            results=metrics.spam_engine_results,
            learned=metrics.spam_learned,
            reader=RawRecordReader(settings, raw_topic(Channel.EMAIL)),
            reload_s=settings.spam_classifier_reload_s,
        )

    def close(self) -> None:
        self.signals.close()
        if self.reader is not None:
            self.reader.close()

    # ---- raw e-mail ------------------------------------------------------------------------------------------------

    def raw_emails(self, partition: int, events: Sequence[ContactEvent]) -> dict[UUID, bytes]:
        """The e-mails among ``events`` as received, by event id (those whose raw record could be read and opened)."""
        wanted = {e.event_id: e.received_at for e in events if e.channel is Channel.EMAIL}
        if not wanted or self.reader is None:
            return {}
        with self._reader_lock:
            records = self.reader.find(partition, wanted)
        out: dict[UUID, bytes] = {}
        for event_id, record in records.items():
            try:
                message = email_of_payload(self.codec.sealer.open(record.sealed), record)
            except KeyDestroyedError:
                continue
            except Exception as exc:  # unreadable: scored from the parsed event instead
                log.warning("spam_raw_unreadable", event_id=str(event_id), error=type(exc).__name__)
                continue
            if message is not None:
                out[event_id] = message
        if len(out) < len(wanted):
            log.info("spam_raw_missing", partition=partition, wanted=len(wanted), found=len(out))
        return out

    # ---- scoring ---------------------------------------------------------------------------------------------------

    def judge(self, partition: int, events: Sequence[ContactEvent]) -> Verdicts:
        """Both verdict maps of a batch (blocking: the agents run it in a thread)."""
        if time.monotonic() - self._reloaded_at > self.reload_s:
            self.signals.reload()  # other workers learned too
            self._reloaded_at = time.monotonic()
        raws = self.raw_emails(partition, events)
        engine, classifier = self.signals.for_batch([(e, raws.get(e.event_id)) for e in events])
        for result in engine.values():
            self.results.labels(engine_result_label(result)).inc()
        return engine, classifier

    async def verdicts(self, partition: int, events: Sequence[ContactEvent]) -> Verdicts:
        """``judge`` off the event loop, and in the ``wait`` mode again for the unanswered until ``max_wait_s``."""
        started = time.monotonic()
        engine, classifier = await asyncio.to_thread(self.judge, partition, events)
        pause = WAIT_FIRST_S
        while True:
            waiting = [e for e in events if engine_gate(self.policy, engine.get(e.event_id)) == "wait"]
            left = self.policy.engine.max_wait_s - (time.monotonic() - started)
            if not waiting or left <= 0:
                break
            log.warning("spam_engine_waiting", partition=partition, events=len(waiting), seconds_left=round(left))
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, WAIT_LONGEST_S)
            again, again_classifier = await asyncio.to_thread(self.judge, partition, waiting)
            engine.update(again)
            classifier.update(again_classifier)
        return engine, classifier

    # ---- learning --------------------------------------------------------------------------------------------------

    def learn(
        self, partition: int, event: ContactEvent, label: Label, engine: EngineResult | None
    ) -> tuple[LearnOutcome | None, LearnOutcome | None]:
        """Teach one decided event to the engine and the classifier (blocking), counted by part and status."""
        raw = self.raw_emails(partition, [event]).get(event.event_id)
        outcomes = self.signals.learn(event, raw, label, engine)
        for part, outcome in zip(("engine", "classifier"), outcomes, strict=True):
            if outcome is not None:
                self.learned.labels(part, label, outcome.status).inc()
        return outcomes


__all__ = ["AgentSpam", "Verdicts", "engine_result_label"]
