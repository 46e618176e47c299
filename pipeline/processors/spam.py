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
from typing import Literal

from pipeline.models.contact import ContactEvent
from pipeline.models.spam import ClassifierVerdict, EngineResult, EngineUnavailable
from pipeline.models.tagged import SpamReason, SpamVerdict
from pipeline.policy.model import SpamClassifierPolicy, SpamPolicy
from pipeline.processors import rates
from pipeline.processors.compiled import CompiledPolicy
from pipeline.processors.text import email_domain, person_text


@lru_cache(maxsize=65_536)
def hashed_key(pepper: bytes, kind: str, value: str) -> str:
    """A keyed hash naming an identifier without revealing it: ``<kind>:<hmac>``. Used for blocklist and rate keys.

    Cached: the same domains and IPs recur (one HMAC is a few microseconds, a lookup a fraction of one).
    """
    digest = hmac.digest(pepper, f"leadpipe:{kind}:{value.strip().lower()}".encode(), hashlib.sha256).hex()
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
    engine: EngineResult | None = None
    """The spam engine's verdict, read by the agent; None when the engine was not asked (policy rules alone)."""
    classifier: ClassifierVerdict | None = None
    """leadpipe's own classifier's verdict, computed by the agent from the shared model; None when not used."""


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


def scan_content(
    text: str, compiled: CompiledPolicy, footer_links: int = 0, *, count_links: bool = True
) -> list[SpamReason]:
    """Every content signal, by scanning the text with each pattern: exact for any text (the reference path).

    ``text`` is the person's own (without a mailing list's footer); ``footer_links``, the links the footer held, are
    only named in the detail. ``count_links=False`` (mail through a list, ``links.count_list_mail``): no link rule.
    """
    spam = compiled.policy.spam
    weights = spam.weights
    reasons: list[SpamReason] = []
    add = reasons.append
    for pattern, code, weight in (
        (compiled.spam_words, "spam_word", weights.spam_word),
        (compiled.misleading_phrases, "misleading_phrase", weights.misleading_phrase),
    ):
        if pattern is None:
            continue
        hits = sorted({m.group(0).lower() for m in pattern.finditer(text)})[: spam.max_word_hits]
        for hit in hits:
            add(SpamReason(code=code, weight=weight, detail=f"matched {' '.join(hit.split())!r}"))
    links = len(compiled.link.findall(text)) if count_links else 0
    if links > spam.links.max_links:
        footer = f"; {footer_links} in a mailing list's footer not counted" if footer_links else ""
        add(
            SpamReason(
                code="too_many_links",
                weight=weights.too_many_links,
                detail=f"{links} links (more than {spam.links.max_links}{footer})",
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
        reasons.extend(_shouting(letters, sum(map(str.isupper, text)), compiled))
    return reasons


def list_footer_links(event: ContactEvent, compiled: CompiledPolicy) -> int:
    """Links in the footer a mailing list appended to the message (located by the e-mail source, issue 14): the
    list's links, not the writer's, so the link rules do not count them (named in their detail)."""
    interaction = event.interaction
    at, message = interaction.list_footer_at, interaction.message
    if at is None or not message:
        return 0
    return len(compiled.link.findall(message, at))


def own_content(event: ContactEvent, text: str, compiled: CompiledPolicy) -> tuple[str, int, bool]:
    """(the text the content rules read, links in a list's footer, whether the link rules apply) of an event whose
    person's text is ``text``: a mailing list's footer is not the person's (issue 14: the word and link rules fired
    on list footers), nor the history under a reply (the answered message, often the company's own campaign), and
    mail through a list is left to the link rules only when the policy says so."""
    interaction = event.interaction
    count_links = not interaction.list_headers or compiled.policy.spam.links.count_list_mail
    if interaction.list_footer_at is None and interaction.history_at is None:
        return text, 0, count_links
    return person_text(event, only_own=True), list_footer_links(event, compiled), count_links


def _shouting(letters: int, upper: int, compiled: CompiledPolicy) -> list[SpamReason]:
    """The shouting signal of a text with ``letters`` letters (at least the policy's minimum), ``upper`` upper case."""
    ratio = upper / letters
    if ratio > compiled.policy.spam.shouting.max_upper_ratio:
        weight = compiled.policy.spam.weights.shouting
        return [SpamReason(code="shouting", weight=weight, detail=f"{ratio:.0%} of letters upper case")]
    return []


_ASCII_LETTERS = bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))
"""The ASCII characters ``str.isalpha`` is true for; ``str.isupper`` is true for the first half."""
_ASCII_UPPER = _ASCII_LETTERS[:26]
_WORD_RUNS = bytes(c if c < 0x80 and (chr(c).isalnum() or c == 0x5F) else 0x20 for c in range(256))
"""Keeps the bytes ``\\w`` matches in ASCII and turns every other byte into a space: ``split()`` gives the runs."""


def content_reasons(
    text: str, compiled: CompiledPolicy, footer_links: int = 0, *, count_links: bool = True
) -> list[SpamReason]:
    """The content signals of the person's text: the same reasons as ``scan_content``, in the same order.

    Most texts are ASCII and carry no spam word, phrase or link: for them ``compiled.content_prefilter`` proves
    that no scan can match, on the lower-cased bytes in one pass, and only shouting is left to count (on the
    bytes too). Any other text, or a policy without a prefilter, takes the scans. (A text without a link marker
    counts no link, footer or not.)
    """
    prefilter = compiled.content_prefilter
    if prefilter is None or not text.isascii():
        return scan_content(text, compiled, footer_links, count_links=count_links)
    data = text.encode("ascii")
    lowered = data.lower()
    for marker in prefilter.link_markers:
        if marker in lowered:
            return scan_content(text, compiled, footer_links, count_links=count_links)
    if prefilter.may_match(lowered.translate(_WORD_RUNS).split()):
        return scan_content(text, compiled, footer_links, count_links=count_links)
    size = len(data)
    if size < compiled.policy.spam.shouting.min_letters:  # fewer characters than the letters it takes
        return []
    letters = size - len(data.translate(None, _ASCII_LETTERS))
    if letters < compiled.policy.spam.shouting.min_letters:
        return []
    return _shouting(letters, size - len(data.translate(None, _ASCII_UPPER)), compiled)


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
        own, footer_links, count_links = own_content(event, text, compiled)
        reasons.extend(content_reasons(own, compiled, footer_links, count_links=count_links))

    person = event.person
    email = person.email.lower() if person.email else None
    domain = email_domain(email)
    if email and email in compiled.blocked_emails:
        add(SpamReason(code="blocklisted_email", weight=weights.blocklisted_email, detail="e-mail on the blocklist"))
    if domain:
        on_blocklist, disposable = compiled.domain_flags(domain)
        if on_blocklist:
            add(
                SpamReason(
                    code="blocklisted_domain", weight=weights.blocklisted_domain, detail="domain on the blocklist"
                )
            )
        if disposable:
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
    keys = rate_keys(event, inputs.pepper)  # the IP's rate key is its blocklist key too
    reviewer_hits = []
    if sender_key(event.subject_key) in blocked:
        reviewer_hits.append("sender")
    if domain and hashed_key(inputs.pepper, "domain", domain) in blocked:
        reviewer_hits.append("domain")
    if keys[0] is not None and keys[0] in blocked:
        reviewer_hits.append("ip")
    if reviewer_hits:
        add(
            SpamReason(
                code="reviewer_blocklist",
                weight=weights.reviewer_blocklist,
                detail="confirmed as spam by a reviewer before: " + ", ".join(reviewer_hits),
            )
        )

    at = event.received_at.timestamp()
    updates: dict[str, rates.RateState] = {}
    ip_rule, subject_rule = compiled.rate_rules
    counted = event.interaction.kind not in compiled.rate_exempt_kinds  # browsing is no submission (policy file)
    for key, rule in zip(keys, (ip_rule, subject_rule), strict=True):
        if key is None or not counted:
            continue
        state, count = rates.bump(inputs.rates.get(key, rates.EMPTY), at, rule.window_s, rule.buckets)
        updates[key] = state
        if count > rule.limit.max:
            limit = rule.limit
            add(
                SpamReason(
                    code=rule.code,
                    weight=rule.weight,
                    detail=f"{count} submissions {rule.what} within {limit.window} (limit {limit.max})",
                )
            )

    engine, classifier = inputs.engine, inputs.classifier
    if engine is None and classifier is None:  # the policy's rules alone, as before the engine
        if not reasons:
            return compiled.clean_verdicts[event.channel], updates
        score = round(sum(r.weight for r in reasons), 6)
        threshold = compiled.clean_verdicts[event.channel].threshold
        return SpamVerdict(score=score, threshold=threshold, reasons=tuple(reasons)), updates
    return combined_verdict(spam, event, reasons, engine, classifier), updates


def engine_gate(spam: SpamPolicy, engine: EngineResult | None) -> Literal["score", "wait"]:
    """What the agent does with an event whose engine verdict it has: score it now, or (policy ``wait``, engine
    unavailable) retry later, for up to ``engine.max_wait_s``, after which it scores it (and it goes to review)."""
    if isinstance(engine, EngineUnavailable) and spam.engine.enabled and spam.engine.on_unavailable == "wait":
        return "wait"
    return "score"


def _clamp(value: float, low: float, high: float) -> float:
    return round(min(max(value, low), high), 4)


def classifier_points(policy: SpamClassifierPolicy, verdict: ClassifierVerdict) -> float:
    """The classifier's points: ``weight`` x (evidence - zero) / ``scale``, within +-``cap``.

    A verdict with the prior starts at the prior's calibration (``prior.offset``, ``scale``) and, as decisions are
    learned here, moves linearly to ``prior.learned``'s (its zero and its points per unit of evidence), reached at
    ``prior.learned.decisions`` of each kind: after 500 local decisions the evidence separates spam from ham well
    enough to be worth more points per unit (measured on real mail, docs/processing.md).
    """
    offset, per_unit = 0.0, 1.0 / policy.scale
    if verdict.prior:
        offset = policy.prior.offset
        learned = policy.prior.learned
        if learned is not None:
            share = min(min(verdict.spam_learns, verdict.ham_learns) / learned.decisions, 1.0)
            offset += share * (learned.offset - offset)
            per_unit += share * (1.0 / learned.scale - per_unit)
    return _clamp(policy.weight * (verdict.log_odds - offset) * per_unit, -policy.cap, policy.cap)


def combined_verdict(
    spam: SpamPolicy,
    event: ContactEvent,
    reasons: list[SpamReason],
    engine: EngineResult | None,
    classifier: ClassifierVerdict | None,
) -> SpamVerdict:
    """The policy's reasons plus the classifier's and the engine's contributions, each one weighted reason.

    An engine that gave no verdict is a reason too (``spam_engine_unavailable``): its weight lifts the score to
    the threshold at least, so the event waits for a person instead of passing unseen.
    """
    threshold = spam.threshold_for(event.channel)
    learned = spam.classifier
    counted = (
        classifier is not None
        and learned.enabled
        and (classifier.prior or min(classifier.spam_learns, classifier.ham_learns) >= learned.min_learns)
    )
    if counted and classifier is not None:
        weight = classifier_points(learned, classifier)
        top = f"; strongest engine symbols {', '.join(classifier.top_symbols)}" if classifier.top_symbols else ""
        reasons.append(
            SpamReason(
                code="classifier",
                weight=weight,
                detail=f"naive Bayes p(spam)={classifier.probability:.3f}, log odds {classifier.log_odds:.1f}, "
                f"learned {classifier.spam_learns} spam / {classifier.ham_learns} ham"
                f"{' and the shipped prior' if classifier.prior else ''}{top}"[:500],
            )
        )
    policy = spam.engine
    if not policy.enabled:
        engine = None
    if isinstance(engine, EngineUnavailable):
        partial = sum(r.weight for r in reasons)
        reasons.append(
            SpamReason(
                code="spam_engine_unavailable",
                weight=round(max(threshold, threshold - partial), 4),
                detail=f"{engine.engine} gave no verdict ({engine.reason}: {engine.detail})"[:500],
            )
        )
    elif engine is not None:
        # the classifier's decisions count only where its reason did (it weighs the engine's symbols itself)
        decisions = min(classifier.spam_learns, classifier.ham_learns) if classifier is not None and counted else 0
        per_point = policy.weight_for(event.channel, decisions)
        weight = _clamp(per_point * engine.score, policy.min_contribution, policy.max_contribution)
        reasons.append(
            SpamReason(
                code="spam_engine",
                weight=weight,
                detail=f"{engine.engine} score {engine.score:g} ({engine.action}), {len(engine.symbols)} symbols, "
                f"{per_point:g} point(s) per point",
            )
        )
    score = round(sum(r.weight for r in reasons), 6)
    return SpamVerdict(score=score, threshold=threshold, reasons=tuple(reasons), engine=engine, classifier=classifier)
