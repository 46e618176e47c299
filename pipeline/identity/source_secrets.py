"""Rotating a source's HMAC secret with two active at once.

Rotation: add the new secret beside the old one (``hmac_secrets`` in the source's settings, each with an id), give
the old one a ``not_after``, move the source over, and remove the old one once ``source_secret_matched`` logs only
the new id. The signature itself is checked by one function (``pipeline.ingest.signatures.problem``), passed in
here as ``check``, so there is one way to compute and compare a signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.config import SourceAuth


@dataclass(frozen=True)
class ActiveSecret:
    id: str
    secret: str = field(repr=False)


def active_secrets(auth: SourceAuth, now: datetime) -> list[ActiveSecret]:
    """The secrets a signature may be made with right now, newest configured first."""
    found = [
        ActiveSecret(s.id, s.secret.get_secret_value())
        for s in auth.hmac_secrets
        if s.not_after is None or now <= s.not_after
    ]
    if auth.hmac_secret is not None:
        found.append(ActiveSecret("hmac_secret", auth.hmac_secret.get_secret_value()))
    return found


@dataclass(frozen=True)
class SecretCheck:
    """The outcome: the id of the secret that matched, or the refusal reason (``no_active_secret`` when all expired)."""

    matched: str | None
    problem: str | None


def check_any(secrets: Sequence[ActiveSecret], check: Callable[[str], str | None]) -> SecretCheck:
    """Try each active secret with ``check`` (None = valid). Every secret is tried even after a match, so the time
    taken does not say which one matched; a problem that is not about the signature (a stale timestamp) is the
    same for every secret and is returned as is."""
    if not secrets:
        return SecretCheck(None, "no_active_secret")
    matched: str | None = None
    problems: list[str] = []
    for candidate in secrets:
        problem = check(candidate.secret)
        if problem is None and matched is None:
            matched = candidate.id
        elif problem is not None:
            problems.append(problem)
    return SecretCheck(matched, None) if matched is not None else SecretCheck(None, problems[0])
