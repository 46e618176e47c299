"""The contract between the executor and the per-sink effects."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.models.common import StrictModel
from pipeline.models.identity import Principal
from pipeline.models.records import Sealed
from pipeline.models.rights import RightKind, RightsCommand, SinkStatus

M = TypeVar("M", bound=BaseModel)


class Handover(StrictModel):
    """Identities remote sinks look the person up by: what the CRM held and what the DPO gave (HubSpot may hold a
    contact the CRM never saw).

    Captured before a request that removes identities starts (an erasure, a corrected e-mail) and kept sealed under
    a key of the request itself, which is destroyed as soon as every sink has confirmed: a HubSpot outage cannot
    make the erasure forget where to erase.
    """

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    def __or__(self, other: Handover) -> Handover:
        return Handover(
            emails=tuple(sorted({*self.emails, *other.emails})), phones=tuple(sorted({*self.phones, *other.phones}))
        )


@dataclass(frozen=True)
class EffectResult:
    status: SinkStatus
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def done(cls, **evidence: Any) -> EffectResult:
        return cls(SinkStatus.DONE, evidence)

    @classmethod
    def not_applicable(cls, reason: str, **evidence: Any) -> EffectResult:
        return cls(SinkStatus.NOT_APPLICABLE, {"reason": reason, **evidence})


class EffectError(Exception):
    """A sink could not carry out its part. ``message`` must hold no personal data; ``retryable`` says if trying
    again could help (an outage, a rate limit) or not (a validation error a person must look at)."""

    def __init__(self, code: str, message: str, *, retryable: bool = True, **evidence: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retryable = retryable
        self.evidence = evidence


@dataclass(frozen=True)
class Context:
    """One execution of one command: what the effects may read, and what earlier effects decided."""

    command: RightsCommand
    now: datetime
    open_sealed: Callable[[Sealed, type[Any]], Any]
    handover: Handover = field(default_factory=Handover)
    erase_subject: bool = False
    evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by: Principal | None = None
    """Who carries the steps out (the rights agent): the access copy names them."""
    statuses: Mapping[str, SinkStatus] = field(default_factory=dict)
    """What each sink before this one answered (in this run, or confirmed in an earlier one)."""

    def open(self, sealed: Sealed, model: type[M]) -> M:
        """Open the command's sealed details; once the subject's key is destroyed they are gone for good."""
        try:
            opened: M = self.open_sealed(sealed, model)
        except KeyDestroyedError:
            raise EffectError(
                "sealed_details_destroyed", "the subject was erased: the request's details are gone", retryable=False
            ) from None
        return opened

    def after(self, sink: str, result: EffectResult) -> Context:
        """The context the next effect sees: a retention expiry that left nothing erases the whole subject."""
        erase = self.erase_subject
        if sink == "crm" and self.command.kind is RightKind.RETENTION_EXPIRY:
            erase = result.evidence.get("remaining_interactions") == 0
        return replace(
            self,
            erase_subject=erase,
            evidence={**self.evidence, sink: dict(result.evidence)},
            statuses={**self.statuses, sink: result.status},
        )

    def unfinished(self) -> list[str]:
        """The sinks before this one that have not confirmed (failed, or still pending)."""
        return sorted(s for s, st in self.statuses.items() if st not in (SinkStatus.DONE, SinkStatus.NOT_APPLICABLE))


class Effect(ABC):
    """One sink's part of a rights request."""

    sink: ClassVar[str]

    @abstractmethod
    def apply(self, ctx: Context) -> EffectResult:
        """Carry out ``ctx.command`` in this sink, idempotently; raise ``EffectError`` when it could not."""

    def handover(self, subject_key: str) -> Handover:
        """Identities this sink holds that others will need once it has erased them (only the CRM has any)."""
        return Handover()
