"""What the spam engine and leadpipe's own classifier say about one event: input data for the pure chain.

The agent (an edge) asks the engine and the classifier; the chain only reads these results, next to the policy's
own rules. Nothing here holds personal data: symbols are rule names, details are codes and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import StrictModel


class EngineSymbol(StrictModel):
    """One rule of the engine that fired, with the engine's own weight for it (its options are left out: they may
    quote addresses or links from the message)."""

    name: str = Field(max_length=120)
    weight: float


class EngineVerdict(StrictModel):
    """The engine scored the message."""

    kind: Literal["scored"] = "scored"
    engine: str = Field(default="rspamd", max_length=40)
    score: float
    action: str = Field(max_length=40, description="The engine's own action for its score, e.g. 'no action'.")
    symbols: tuple[EngineSymbol, ...] = ()


class EngineUnavailable(StrictModel):
    """The engine gave no verdict in time: the event must not be waved through unseen (policy: review or wait)."""

    kind: Literal["unavailable"] = "unavailable"
    engine: str = Field(default="rspamd", max_length=40)
    reason: Literal["timeout", "unreachable", "error"]
    detail: str = Field(default="", max_length=300, description="Non-personal: an HTTP status, an exception name.")


EngineResult = Annotated[EngineVerdict | EngineUnavailable, Field(discriminator="kind")]


class ClassifierVerdict(StrictModel):
    """leadpipe's own classifier (multinomial naive Bayes over the text's tokens and the engine's symbols)."""

    probability: float = Field(ge=0, le=1, description="P(spam | features) under the model.")
    log_odds: float = Field(
        description="The evidence: the mean log-likelihood ratio of the known features times 20 (a 20-feature "
        "message's log odds), before the policy's scale and cap."
    )
    spam_learns: int = Field(ge=0)
    ham_learns: int = Field(ge=0)
    top_symbols: tuple[str, ...] = Field(
        default=(), description="The engine symbols that pushed hardest towards the verdict (tokens are never named)."
    )
    prior: bool = Field(
        default=False,
        description="The counts include the shipped prior (learned from a public corpus): the verdict counts before "
        "min_learns decisions were learned here.",
    )


class LearnOutcome(StrictModel):
    """What one learn call did; idempotent per event id."""

    event_id: UUID
    label: Literal["spam", "ham"]
    status: Literal["learned", "relearned", "duplicate", "refused", "unavailable"]
    detail: str = Field(default="", max_length=300)


@dataclass(frozen=True, slots=True)
class EngineMessage:
    """An RFC 822 message for the engine, with what the source knew about the connection. Holds personal data:
    never logged, never put on a topic (the sealed event is the record)."""

    event_id: UUID
    data: bytes
    ip: str | None = None
    sender: str | None = None
    """The envelope sender (SMTP MAIL FROM) rspamd's rules compare with From:."""
    helo: str | None = None


__all__ = [
    "ClassifierVerdict",
    "EngineMessage",
    "EngineResult",
    "EngineSymbol",
    "EngineUnavailable",
    "EngineVerdict",
    "LearnOutcome",
]
