"""Spam score (policy section 8), explainable: every signal that fired is a ``SpamReason`` with its weight.

The score only decides whether a person looks at the event first (quarantine); it never deletes anything, and the
policy's "no automated decisions, including profiling" is kept by making every score a list of plain reasons.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from confusable_homoglyphs import categories, confusables

from pipeline.models.common import Channel
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


#: A link in a forum's or a web page's markup (``[url=...]``, ``[link]``, ``<a href=...>``): spam bots paste it into
#: forms and chats; a person typing there writes the address itself.
_LINK_MARKUP = re.compile(r"\[(?:url|link)[=\]]|<a\s+href\s*=", re.IGNORECASE)
_MARKUP_MARKERS = (b"[url", b"[link", b"<a")
"""Every match of ``_LINK_MARKUP`` holds one of these (lower case)."""

#: Digits and signs standing for letters inside a word ("vi@gra", "c1alis", "l0ttery", "ca$ino", "s3o").
_LEET = str.maketrans("@1!0$3", "aiiose")
_LEET_INSIDE = r"(?<=[^\W\d_])[@1!0$3]+(?=[^\W\d_])"
#: A word spelled out letter by letter ("c a s i n o", "j.a.c.k.p.o.t", "c-a-s-i-n-o"): four letters or more.
_SPELLED_OUT = r"(?<![\w.-])[^\W\d_](?:[ .-][^\W\d_]){3,}(?![\w])"
_DISGUISE = re.compile(f"(?P<leet>{_LEET_INSIDE})|(?P<spelled>{_SPELLED_OUT})")
#: What every disguise of ``_DISGUISE`` in an ASCII text leaves in its lower-cased bytes, found by patterns that
#: start with a character of a small set (the regex engine skips to one in C): three spelled-out letters after
#: their separators; signs before a letter (whether a letter stands before them is checked apart).
_SPELLED_SEED = re.compile(rb"[ .-][a-z][ .-][a-z][ .-][a-z]")
_LEET_SEED = re.compile(rb"[@1!0$3]+[a-z]")
#: A word with Greek or Cyrillic letters among its Latin ones ("Viagra" with two Cyrillic a); each word is looked
#: at from its start only, so the scan stays linear in the text.
_MIXED_WORD = re.compile(r"\b(?=\w*[a-zA-Z])(?=\w*[\u0370-\u03ff\u0400-\u052f])\w+")


def undisguised(text: str) -> str | None:
    """The text with its disguised words written plainly, or None when it disguises none: letters of another
    alphabet that look like Latin ones inside a Latin word (Unicode's confusables), digits and signs standing for
    letters inside a word, a word spelled out letter by letter. Only a word the policy lists counts (the caller
    scans the result), so "win10" or "a b c d" change nothing that matters."""
    folded = _DISGUISE.sub(_plain, text)
    if not text.isascii():
        folded = _MIXED_WORD.sub(_latin_word, folded)
    return None if folded == text else folded


def may_be_disguised(lowered: bytes) -> bool:
    """False only when ``undisguised`` would find nothing in the ASCII text of these lower-cased bytes."""
    if _SPELLED_SEED.search(lowered) is not None:
        return True
    seed = _LEET_SEED.search(lowered)
    while seed is not None:
        if (start := seed.start()) and 0x61 <= lowered[start - 1] <= 0x7A:  # a letter before the signs
            return True
        seed = _LEET_SEED.search(lowered, seed.end())
    return False


def _plain(match: re.Match[str]) -> str:
    if match.group("leet") is not None:
        return match.group(0).translate(_LEET)
    return "".join(c for c in match.group(0) if c not in " .-")


def _latin_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return "".join(_latin_lookalike(c) for c in word)


@lru_cache(maxsize=4096)
def _latin_lookalike(char: str) -> str:
    """The Latin letter a Cyrillic or Greek letter is drawn like (Unicode's confusables), else the letter itself."""
    if categories.alias(char) not in ("CYRILLIC", "GREEK"):
        return char
    for entry in confusables.is_confusable(char, preferred_aliases=["latin"]) or ():
        for glyph in entry["homoglyphs"]:
            latin = str(glyph["c"])
            if latin.isascii() and latin.isalpha():
                return "I" if latin == "l" and char.isupper() else latin  # Cyrillic and Greek capital I are drawn as I
    return char


def scan_content(
    text: str, compiled: CompiledPolicy, footer_links: int = 0, *, count_links: bool = True, typed: bool = True
) -> list[SpamReason]:
    """Every content signal, by scanning the text with each pattern: exact for any text (the reference path).

    ``text`` is the person's own (without a mailing list's footer); ``footer_links``, the links the footer held, are
    only named in the detail. ``count_links=False`` (mail through a list, ``links.count_list_mail``): no link rule.
    A listed word found only once the text's disguises are undone (``undisguised``) counts as a word, and the
    disguise as a reason of its own: hiding a word from filters is evidence of its own. ``typed``: the text was typed
    into a form's or a chat's box, where link markup is a bot's (a mail's plain-text part may carry its HTML).
    """
    spam = compiled.policy.spam
    weights = spam.weights
    reasons: list[SpamReason] = []
    add = reasons.append
    plain = undisguised(text)
    disguised: list[str] = []
    for pattern, code, weight in (
        (compiled.spam_words, "spam_word", weights.spam_word),
        (compiled.misleading_phrases, "misleading_phrase", weights.misleading_phrase),
    ):
        if pattern is None:
            continue
        found = {m.group(0).lower() for m in pattern.finditer(text)}
        if plain is not None:
            written = {" ".join(hit.split()) for hit in found}
            hidden = {" ".join(m.group(0).lower().split()) for m in pattern.finditer(plain)} - written
            disguised.extend(sorted(hidden))
            found |= hidden
        for hit in sorted(found)[: spam.max_word_hits]:
            add(SpamReason(code=code, weight=weight, detail=f"matched {' '.join(hit.split())!r}"))
    if disguised:
        add(
            SpamReason(
                code="disguised_word",
                weight=weights.disguised_word,
                detail=f"{', '.join(map(repr, disguised[: spam.max_word_hits]))} written in disguise",
            )
        )
    if typed and _LINK_MARKUP.search(text):
        add(SpamReason(code="link_markup", weight=weights.link_markup, detail="a link in forum or HTML markup"))
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
    text: str, compiled: CompiledPolicy, footer_links: int = 0, *, count_links: bool = True, typed: bool = True
) -> list[SpamReason]:
    """The content signals of the person's text: the same reasons as ``scan_content``, in the same order.

    Most texts are ASCII and carry no spam word, phrase, link, link markup or disguised word: for them
    ``compiled.content_prefilter`` proves that no scan can match, on the lower-cased bytes in one pass, and only
    shouting is left to count (on the bytes too). Any other text, or a policy without a prefilter, takes the scans.
    (A text without a link marker counts no link, footer or not.)
    """
    prefilter = compiled.content_prefilter
    if prefilter is None or not text.isascii():
        return scan_content(text, compiled, footer_links, count_links=count_links, typed=typed)
    data = text.encode("ascii")
    lowered = data.lower()
    for marker in prefilter.link_markers:
        if marker in lowered:
            return scan_content(text, compiled, footer_links, count_links=count_links, typed=typed)
    if (b"[" in lowered or b"<a" in lowered) and any(marker in lowered for marker in _MARKUP_MARKERS):
        return scan_content(text, compiled, footer_links, count_links=count_links, typed=typed)
    if may_be_disguised(lowered):  # rare: "win10", "a-b-c-d", an address in the text; the scan decides
        return scan_content(text, compiled, footer_links, count_links=count_links, typed=typed)
    if prefilter.may_match(lowered.translate(_WORD_RUNS).split()):
        return scan_content(text, compiled, footer_links, count_links=count_links, typed=typed)
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

    typed = event.channel is not Channel.EMAIL
    if text:
        own, footer_links, count_links = own_content(event, text, compiled)
        reasons.extend(content_reasons(own, compiled, footer_links, count_links=count_links, typed=typed))

    person = event.person
    if typed and any(name and compiled.link.search(name) for name in (person.first_name, person.last_name)):
        # a bot's advert in the name fields: nobody's name is a web address (a mail's display name may be a shop's)
        add(SpamReason(code="link_in_name", weight=weights.link_in_name, detail="a web address in the name"))
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
