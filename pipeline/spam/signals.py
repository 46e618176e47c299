"""The spam signals of a batch, as the chain wants them: one call for the agent, the CLI and the benches.

``SpamSignals.for_batch`` renders each event that carries words of the person's (website usage and records
without free text never reach the engine), asks the engine for the whole batch within one time budget, and
computes leadpipe's own classifier's verdict from the model loaded from its store; the two mappings go into
``ChainContext.engine`` and ``.classifier``. ``learn`` teaches both from one decided event (a reviewer's release or
confirmation, or a bootstrap), idempotently per event id. Engine or Redis faults come back as data, never as
exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import redis

from pipeline.config import Settings
from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.models.spam import ClassifierVerdict, EngineResult, EngineVerdict, LearnOutcome
from pipeline.policy.model import ClassifierPriorPolicy, SpamClassifierPolicy
from pipeline.processors.text import person_text
from pipeline.spam.classifier import SYMBOL_PREFIX, NaiveBayes, PriorCounts, feature_key, features
from pipeline.spam.engine import Label, SpamEngineClient
from pipeline.spam.prior import keyed_prior
from pipeline.spam.render import render_message
from pipeline.spam.store import ClassifierStore


@dataclass
class SpamSignals:
    """The engine client, the classifier's store and the model read from it (``reload`` after learning)."""

    client: SpamEngineClient | None
    store: ClassifierStore | None
    pepper: bytes
    budget_s: float = 2.0
    model: NaiveBayes = field(default_factory=NaiveBayes)
    prior: ClassifierPriorPolicy | None = None
    """The policy's ``spam.classifier.prior``: when enabled, the shipped prior's counts join the learned ones."""
    smoothing: float = 1.0
    """The policy's ``spam.classifier.smoothing`` (the model's Laplace ``alpha``)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, pepper: bytes, classifier: SpamClassifierPolicy | None = None
    ) -> SpamSignals:
        """The engine (``LEADPIPE_SPAM_ENGINE_*``) and the classifier's counts in the engine's Redis (and the shipped
        prior's, when the policy's ``classifier.prior`` is given and enabled; its smoothing)."""
        client = SpamEngineClient(
            settings.spam_engine_url,
            settings.spam_engine_controller_url,
            timeout_s=settings.spam_engine_timeout_s,
            concurrency=settings.spam_engine_concurrency,
        )
        store = ClassifierStore.connect(settings.spam_engine_redis_host, settings.spam_engine_redis_port)
        signals = cls(client, store, pepper, budget_s=settings.spam_engine_timeout_s)
        if classifier is not None:
            signals.prior, signals.smoothing = classifier.prior, classifier.smoothing
        signals.reload()
        return signals

    def classifier_model(self) -> NaiveBayes:
        """The model verdicts come from: the learned counts, and the shipped prior when the policy enables it. The
        prior is read and hashed with this pepper on first use, once per process (``keyed_prior``), so a worker or a
        command that judges nothing never pays for it."""
        policy, model = self.prior, self.model
        model.alpha = self.smoothing
        if policy is None or not policy.enabled:
            model.prior = None
        elif model.prior is None or model.prior.weight != policy.weight:
            shipped = keyed_prior(self.pepper)
            model.prior = PriorCounts(shipped.spam_docs, shipped.ham_docs, shipped.counts, policy.weight)
        return model

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.store is not None:
            self.store.client.close()

    def reload(self) -> None:
        """Read the classifier's counts again (other workers learn too). A store that does not answer keeps the
        model in memory: the classifier's verdicts are then as old as the last reload."""
        if self.store is not None:
            try:
                self.model = self.store.load()
            except redis.RedisError:
                return

    def uses_prior(self, event: ContactEvent) -> bool:
        """Whether the event's channel is judged with the shipped prior (the policy's ``prior.channels``)."""
        return self.prior is not None and self.prior.enabled and event.channel in self.prior.channels

    def verdict(self, event: ContactEvent, engine: EngineResult | None, raw: bytes | None = None) -> ClassifierVerdict:
        """The classifier's verdict on one event, as ``for_batch`` gives it (for evaluations that score apart)."""
        return self.classifier_model().verdict(self.keys(event, engine, raw), with_prior=self.uses_prior(event))

    def keys(self, event: ContactEvent, engine: EngineResult | None, raw: bytes | None = None) -> list[str]:
        """The classifier's feature keys of an event: its person's words, an e-mail's headers as received
        (``raw``), and the symbols the engine found."""
        return [feature_key(self.pepper, f) for f in features(person_text(event), engine, raw)]

    def for_batch(
        self, batch: Sequence[tuple[ContactEvent, bytes | None]]
    ) -> tuple[dict[UUID, EngineResult], dict[UUID, ClassifierVerdict]]:
        """(event id -> engine result, event id -> classifier verdict) for the events with something to judge.

        ``batch``: each event with its raw e-mail as received, or None (every other channel: rendered)."""
        started = time.monotonic()
        judged = [(event, raw) for event, raw in batch if raw is not None or _has_words(event)]
        pending = []
        if self.client is not None and judged:
            pending = self.client.submit([render_message(event, raw) for event, raw in judged])
        # The words' keys while the engine works (measured: the Python side is most of what the engine waits for).
        word_keys = [self.keys(event, None, raw) for event, raw in judged]
        engine: dict[UUID, EngineResult] = {}
        if self.client is not None and pending:
            results = self.client.collect(pending, self.budget_s - (time.monotonic() - started))
            engine = {event.event_id: result for (event, _), result in zip(judged, results, strict=True)}
        classifier = {}
        model = self.classifier_model() if judged else self.model
        for (event, _), words in zip(judged, word_keys, strict=True):
            result = engine.get(event.event_id)
            symbols = result.symbols if isinstance(result, EngineVerdict) else ()
            # the same keys as self.keys(event, result, raw), without splitting the words again
            classifier[event.event_id] = model.verdict(
                words + [f"{SYMBOL_PREFIX}{s.name}" for s in symbols], with_prior=self.uses_prior(event)
            )
        return engine, classifier

    def learn(
        self, event: ContactEvent, raw: bytes | None, label: Label, engine: EngineResult | None
    ) -> tuple[LearnOutcome | None, LearnOutcome | None]:
        """Teach the engine and the classifier one decided event: (engine's outcome, classifier's outcome), None
        where that part is not configured. ``engine``: the engine's verdict when the event was scored (the
        quarantined verdict carries it), so the classifier learns the symbols it will see next time.

        Idempotent per event id, by the classifier's record of it: an event already learned with this label is a
        ``duplicate`` for both parts (rspamd's own duplicate check is per message digest and, measured, can miss a
        repeat sent right after the first learn). The classifier records the event only after the engine took it,
        so a learn the engine could not take (``unavailable``) is done again, whole, by a retry or a rebuild."""
        event_id = event.event_id
        if self.store is not None:
            try:
                previous = self.store.label_of(event_id)
            except redis.RedisError as exc:
                down = LearnOutcome(event_id=event_id, label=label, status="unavailable", detail=type(exc).__name__)
                return (down if self.client is not None else None), down
            if previous == label:
                same = LearnOutcome(event_id=event_id, label=label, status="duplicate")
                return (same if self.client is not None else None), same
        engine_outcome = self.client.learn(render_message(event, raw), label) if self.client is not None else None
        if engine_outcome is not None and engine_outcome.status == "unavailable":
            return engine_outcome, None
        classifier_outcome = None
        if self.store is not None:
            symbols = engine if isinstance(engine, EngineVerdict) else None
            sign_keys = self.keys(event, symbols, raw)
            classifier_outcome = self.store.learn(event_id, label, sign_keys)
            if classifier_outcome.status in ("learned", "relearned"):
                if classifier_outcome.status == "relearned":
                    self.model.add(sign_keys, "ham" if label == "spam" else "spam", sign=-1)
                self.model.add(sign_keys, label)
        return engine_outcome, classifier_outcome


def _has_words(event: ContactEvent) -> bool:
    """Whether the event carries words of the person's: a page view's subject line (``page: Pricing``, ``track:
    Whitepaper Downloaded``) is the website's name of the page or action, not the visitor's words (policy file:
    browsing is no submission), so website usage never reaches the engine or the classifier."""
    return event.interaction.kind is not InteractionKind.PAGE_VIEW and bool(person_text(event))


__all__ = ["SpamSignals"]
