"""Spam score (policy section 8), explainable: every signal that fired is a ``SpamReason`` with its weight.

The score only decides whether a person looks at the event first (quarantine); it never deletes anything, and the
policy's "no automated decisions, including profiling" is kept by making every score a list of plain reasons.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import lru_cache

from pipeline.models.contact import ContactEvent
from pipeline.models.tagged import SpamReason, SpamVerdict
from pipeline.processors import rates
from pipeline.processors.compiled import CompiledPolicy
from pipeline.processors.text import domain_and_parents, email_domain


@lru_cache(maxsize=65_536)
def hashed_key(pepper: bytes, kind: str, value: str) -> str:
    """A keyed hash naming an identifier without revealing it: ``<kind>:<hmac>``. Used for blocklist and rate keys.

    Cached: the same domains and IPs recur (one HMAC is a few microseconds, a lookup a fraction of one).
    """
    digest = hmac.new(pepper, f"leadpipe:{kind}:{value.strip().lower()}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:40]}"


def sender_key(subject_key: str) -> str:
    """The reviewer-blocklist key of a sender: their subject key is already a keyed hash of their identity."""
    return f"sender:{subject_key}"


def rate_keys(event: ContactEvent, pepper: bytes) -> tuple[str | None, str]:
    """(per-IP key or None, per-subject key) for the rate windows."""
    ip = event.provenance.ip
    return (hashed_key(pepper, "ip", ip) if ip else None), f"subject:{event.subject_key}"


@dataclass(frozen=True, slots=True)
class SpamInputs:
    """The state the spam rule reads: the reviewer blocklist and the rate windows (both hashed keys)."""

    pepper: bytes
    blocklist: Container[str]
    rates: Mapping[str, rates.RateState]


def _ip_blocked(ip: str, compiled: CompiledPolicy) -> bool:
    if ip in compiled.blocked_ips:
        return True
    if not compiled.blocked_networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in compiled.blocked_networks)


def score_spam(
    event: ContactEvent, text: str, compiled: CompiledPolicy, inputs: SpamInputs
) -> tuple[SpamVerdict, dict[str, rates.RateState]]:
    """The verdict, and the new rate-window states to store (this event counted)."""
    spam = compiled.policy.spam
    weights = spam.weights
    reasons: list[SpamReason] = []
    add = reasons.append

    if spam.honeypot.enabled and event.interaction.honeypot:
        add(SpamReason(code="honeypot", weight=weights.honeypot, detail="the hidden form field was filled in"))

    if text:
        for pattern, code, weight in (
            (compiled.spam_words, "spam_word", weights.spam_word),
            (compiled.misleading_phrases, "misleading_phrase", weights.misleading_phrase),
        ):
            if pattern is None:
                continue
            hits = sorted({m.group(0).lower() for m in pattern.finditer(text)})[: spam.max_word_hits]
            for hit in hits:
                add(SpamReason(code=code, weight=weight, detail=f"matched {' '.join(hit.split())!r}"))
        links = len(compiled.link.findall(text))
        if links > spam.links.max_links:
            add(
                SpamReason(
                    code="too_many_links",
                    weight=weights.too_many_links,
                    detail=f"{links} links (more than {spam.links.max_links})",
                )
            )
        if links:
            words = len(compiled.word.findall(text))
            per_100 = 100.0 * links / max(words, 1)
            if words >= spam.links.min_words_for_density and per_100 > spam.links.max_links_per_100_words:
                add(
                    SpamReason(
                        code="link_density",
                        weight=weights.link_density,
                        detail=f"{per_100:.0f} links per 100 words (more than {spam.links.max_links_per_100_words:g})",
                    )
                )
        letters = sum(map(str.isalpha, text))
        if letters >= spam.shouting.min_letters:
            upper = sum(map(str.isupper, text)) / letters
            if upper > spam.shouting.max_upper_ratio:
                add(SpamReason(code="shouting", weight=weights.shouting, detail=f"{upper:.0%} of letters upper case"))

    person = event.person
    email = person.email.lower() if person.email else None
    domain = email_domain(email)
    if email and email in compiled.blocked_emails:
        add(SpamReason(code="blocklisted_email", weight=weights.blocklisted_email, detail="e-mail on the blocklist"))
    if domain:
        candidates = domain_and_parents(domain)
        if any(d in compiled.blocked_domains for d in candidates):
            add(
                SpamReason(
                    code="blocklisted_domain", weight=weights.blocklisted_domain, detail="domain on the blocklist"
                )
            )
        if any(d in compiled.disposable_domains for d in candidates):
            add(
                SpamReason(
                    code="disposable_domain",
                    weight=weights.disposable_domain,
                    detail="disposable e-mail domain (disposable-email-domains list)",
                )
            )
    if person.phone and person.phone in compiled.blocked_phones:
        add(SpamReason(code="blocklisted_phone", weight=weights.blocklisted_phone, detail="phone on the blocklist"))
    ip = event.provenance.ip
    if ip and _ip_blocked(ip, compiled):
        add(SpamReason(code="blocklisted_ip", weight=weights.blocklisted_ip, detail="source IP on the blocklist"))

    blocked = inputs.blocklist
    reviewer_hits = []
    if sender_key(event.subject_key) in blocked:
        reviewer_hits.append("sender")
    if domain and hashed_key(inputs.pepper, "domain", domain) in blocked:
        reviewer_hits.append("domain")
    if ip and hashed_key(inputs.pepper, "ip", ip) in blocked:
        reviewer_hits.append("ip")
    if reviewer_hits:
        add(
            SpamReason(
                code="reviewer_blocklist",
                weight=weights.reviewer_blocklist,
                detail="confirmed as spam by a reviewer before: " + ", ".join(reviewer_hits),
            )
        )

    limits = spam.rate_limits
    at = event.received_at.timestamp()
    updates: dict[str, rates.RateState] = {}
    ip_key, subject_key = rate_keys(event, inputs.pepper)
    ip_window, subject_window = compiled.rate_window_s
    for key, limit, window, code, weight, what in (
        (ip_key, limits.per_ip, ip_window, "rate_ip", weights.rate_ip, "from this source IP"),
        (subject_key, limits.per_subject, subject_window, "rate_subject", weights.rate_subject, "from this subject"),
    ):
        if key is None:
            continue
        state, count = rates.bump(inputs.rates.get(key, rates.EMPTY), at, window, limits.buckets)
        updates[key] = state
        if count > limit.max:
            add(
                SpamReason(
                    code=code,
                    weight=weight,
                    detail=f"{count} submissions {what} within {limit.window} (limit {limit.max})",
                )
            )

    score = round(sum(r.weight for r in reasons), 6)
    return SpamVerdict(score=score, threshold=spam.threshold, reasons=tuple(reasons)), updates
