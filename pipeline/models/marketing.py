"""May we market to this person now? The one answer (policy 9.4, 9.6, 9.8), wherever it is stored or shown.

Direct marketing is allowed when, and only when:

- the person has not objected (9.6: it stops "as soon as we receive an objection"; the objection stands for every
  later contact, whatever a later form says, until the DPO records that the person withdrew it);
- their processing is not restricted (9.4: the data is stored, not processed further);
- and a direct-marketing purpose remains for the record: one the policy file marks ``direct_marketing``, not stopped
  by an objection or a withdrawal, and not a purpose whose consent was withdrawn (9.8).

The chain's tagging (``tags.marketing_allowed``, and HubSpot's ``leadpipe_marketing_allowed`` written from it), the
CRM's write path (each interaction's and the subject's ``marketing_allowed``) and the rights effects (which restate
both after an objection, a restriction, its lifting or a withdrawal) all call ``may_market``. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class MarketingPurpose(Protocol):
    """A purpose as the chain tags it (``PurposeTag``) or as the CRM stores it (``PurposeView``)."""

    @property
    def purpose(self) -> str: ...

    @property
    def direct_marketing(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class MarketingState:
    """What the person's rights say about marketing to them (from the suppression state or the CRM's flags)."""

    objected: bool = False
    restricted: bool = False
    withdrawn: frozenset[str] = frozenset()


NO_RIGHTS_EXERCISED = MarketingState()


def _stopped(purpose: MarketingPurpose) -> bool:
    stopped_at: datetime | None = getattr(purpose, "stopped_at", None)
    return stopped_at is not None


def may_market(purposes: Iterable[MarketingPurpose], state: MarketingState = NO_RIGHTS_EXERCISED) -> bool:
    """Whether the person may receive direct marketing on the strength of these purposes, given their rights."""
    if state.objected or state.restricted:
        return False
    withdrawn: Collection[str] = state.withdrawn
    return any(p.direct_marketing and p.purpose not in withdrawn and not _stopped(p) for p in purposes)
