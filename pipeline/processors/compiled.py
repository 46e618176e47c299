"""The policy prepared for the hot path: regexes compiled and lists turned into sets once, not per event."""

from __future__ import annotations

import importlib
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from disposable_email_domains import blocklist as _disposable_domains

from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose
from pipeline.models.marketing import may_market
from pipeline.models.tagged import PurposeTag, SpamVerdict
from pipeline.policy.model import Policy, RateLimit
from pipeline.processors.text import domain_and_parents

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WORD = re.compile(r"\S+")
_LINK_MARKERS = (b"://", b"www.")
"""Every match of ``_LINK`` contains one of these (lower case)."""
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_AGE_GROUP = "(?P<age>"
_ASCII_DIGITS = b"0123456789"
_DIGIT = re.compile(r"\d")
_PARSER: Any = importlib.import_module("re._parser")  # the stdlib's own regex parser (typeshed knows no stub)
_RE: Any = importlib.import_module("re._constants")


def _alternation(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word regex for a word list; spaces in a phrase match any run of whitespace.

    A word of a script written without spaces between words (Chinese, Japanese, Thai; Korean, whose particles join
    the word: 카지노에서) is matched wherever it stands: "百家乐" in "真人百家乐" has a letter on each side, so a
    whole-word match would never find it."""
    if not words:
        return None
    bounded: list[str] = []
    unbounded: list[str] = []
    for word in words:
        part = r"\s+".join(re.escape(w) for w in word.split())
        (unbounded if written_without_spaces(word) else bounded).append(part)
    alternatives = []
    if bounded:
        alternatives.append(r"(?<!\w)(?:" + "|".join(sorted(bounded, key=len, reverse=True)) + r")(?!\w)")
    if unbounded:
        alternatives.append("|".join(sorted(unbounded, key=len, reverse=True)))
    return re.compile("|".join(alternatives), re.IGNORECASE)


#: Unicode name prefixes of the letters of scripts that do not put spaces between words (or, Korean, join
#: particles to them).
_UNSPACED_SCRIPTS = ("CJK ", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR")


def written_without_spaces(word: str) -> bool:
    """Whether a word is in a script written without spaces between words (its matches need no word boundary)."""
    return any(not char.isascii() and unicodedata.name(char, "").startswith(_UNSPACED_SCRIPTS) for char in word)


def _matches_ascii(char: str) -> bool:
    """Whether a character of a word can match an ASCII character case-insensitively (the Kelvin sign matches k)."""
    return char.isascii() or any(re.fullmatch(re.escape(char), chr(c), re.IGNORECASE) for c in range(128))


@dataclass(frozen=True, slots=True)
class RateRule:
    """One submission-rate signal: its limit, window in seconds, bucket count, reason code, weight and wording."""

    limit: RateLimit
    window_s: int
    buckets: int
    code: str
    weight: float
    what: str


@dataclass(frozen=True, slots=True)
class ContentPrefilter:
    """What any spam word, misleading phrase or link in an ASCII text must leave in its lower-cased bytes.

    A match of ``_alternation`` is bounded by non-word characters on both sides and its parts by whitespace, so
    each run of word characters in a part is a whole run of word characters of the text (for ASCII text and
    ASCII words, case-insensitive matching is matching the lower-cased text). A text whose runs include every run
    of no word or phrase, and that holds no link marker, cannot match any scan: most texts skip every scan.
    Unicode text is always scanned.
    """

    runs: Mapping[bytes, tuple[frozenset[bytes], ...]]
    """The longest run of each word or phrase -> the whole set of runs of each word or phrase it belongs to."""
    link_markers: tuple[bytes, ...] = _LINK_MARKERS

    def may_match(self, text_runs: list[bytes]) -> bool:
        """Whether a scan could match a text with these runs of word characters (lower case)."""
        found = self.runs.keys() & text_runs
        if not found:  # the common case: one set operation
            return False
        present = frozenset(text_runs)
        return any(needed <= present for run in found for needed in self.runs[run])


def _content_prefilter(words: tuple[str, ...]) -> ContentPrefilter | None:
    """None (scan every text) when a word that could match ASCII text is not ASCII itself (the Kelvin sign) or has
    no word character to look for; words no ASCII text can match (Cyrillic, Chinese) are left to the scans."""
    runs: dict[bytes, list[frozenset[bytes]]] = {}
    for word in words:
        if not all(map(_matches_ascii, word)):
            continue  # a character no ASCII text holds (д, 乐, ß): the word can only match a text that is not ASCII
        if not word.isascii():
            return None
        found = [run.encode("ascii") for part in word.lower().split() for run in re.findall(r"\w+", part)]
        if not found:
            return None
        runs.setdefault(max(found, key=len), []).append(frozenset(found))
    return ContentPrefilter({run: tuple(sets) for run, sets in runs.items()})


def _age_union(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex that matches a text exactly when one of the age patterns does: most texts need one search.

    Group names must be unique within a regex, so each pattern's ``age`` group is renamed ``age_<i>``; only a
    pattern where that rename cannot change more than the name qualifies (the group written exactly once with no
    backslash before it, no back-reference or conditional that the renumbering would move, no global inline flag).
    Otherwise None: every pattern is scanned on its own.
    """
    renamed: list[str] = []
    for index, pattern in enumerate(patterns):
        at = pattern.find(_AGE_GROUP)
        if pattern.count(_AGE_GROUP) != 1 or pattern[:at].endswith("\\") or _BACKREFERENCE.search(pattern):
            return None
        renamed.append(f"(?:{pattern.replace(_AGE_GROUP, f'(?P<age_{index}>')})")
    if not renamed:
        return None
    try:
        union = re.compile("|".join(renamed), re.IGNORECASE)
    except re.error:
        return None
    if union.groups != sum(re.compile(p, re.IGNORECASE).groups for p in patterns):
        return None
    return union


def has_digit(text: str) -> bool:
    """Whether ``text`` holds a character ``\\d`` matches (a Unicode decimal digit); ASCII text by one translate."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _ASCII_DIGITS)) != len(data)
    return _DIGIT.search(text) is not None


def _needs_digit(items: Any) -> bool:
    """Whether every match of this parsed regex (``re._parser``'s items, in sequence) contains a decimal digit.

    Conservative: True only where the structure proves it (a ``\\d`` or a digit literal that must match at least
    once, in a group, a repeat of at least one or every branch of an alternation); anything else counts as no."""
    return any(_item_needs_digit(op, arg) for op, arg in items)


def _item_needs_digit(op: Any, arg: Any) -> bool:
    if op is _RE.LITERAL:
        return bool(chr(arg).isdecimal())
    if op is _RE.IN:
        return bool(arg == [(_RE.CATEGORY, _RE.CATEGORY_DIGIT)])
    if op is _RE.SUBPATTERN:
        return _needs_digit(arg[3])
    if op is _RE.ATOMIC_GROUP:
        return _needs_digit(arg)
    if op in (_RE.MAX_REPEAT, _RE.MIN_REPEAT, _RE.POSSESSIVE_REPEAT):
        return bool(arg[0] >= 1) and _needs_digit(arg[2])
    if op is _RE.BRANCH:
        return all(_needs_digit(branch) for branch in arg[1])
    return False


def _age_needs_digit(patterns: tuple[str, ...]) -> bool:
    """Whether no age pattern can match a text without a decimal digit: such texts (most) skip the age search.

    Every shipped pattern reads the age as ``(?P<age>\\d{1,2})``; a pattern that does not prove it turns the gate
    off for all."""
    try:
        return bool(patterns) and all(_needs_digit(_PARSER.parse(p, re.IGNORECASE)) for p in patterns)
    except re.error:
        return False


@dataclass(frozen=True)
class CompiledPolicy:
    """A ``Policy`` plus what the rules need precomputed. Build once per policy with ``compile_policy``."""

    policy: Policy
    spam_words: re.Pattern[str] | None
    misleading_phrases: re.Pattern[str] | None
    age_patterns: tuple[re.Pattern[str], ...]
    blocked_emails: frozenset[str]
    blocked_domains: frozenset[str]
    blocked_ips: frozenset[str]
    blocked_networks: tuple[IpNetwork, ...]
    blocked_phones: frozenset[str]
    disposable_domains: frozenset[str]
    link: re.Pattern[str] = _LINK
    word: re.Pattern[str] = _WORD
    content_prefilter: ContentPrefilter | None = None
    """Set by ``compile_policy`` for its own word patterns and ``_LINK``; None scans every text."""
    age_union: re.Pattern[str] | None = None
    """Set by ``compile_policy``: matches where any of ``age_patterns`` matches; None scans each pattern."""
    age_needs_digit: bool = False
    """Set by ``compile_policy`` when no age pattern can match a text without a digit (``has_digit`` gates them)."""

    @cached_property
    def purpose_rows(self) -> dict[tuple[Channel, str], tuple[tuple[PurposeTag, ...], bool]]:
        """(channel, interaction kind or 'other') -> the purpose tags the policy gives it and whether they allow
        direct marketing (``may_market`` with no right exercised), built once: both depend on the policy alone."""
        out: dict[tuple[Channel, str], tuple[tuple[PurposeTag, ...], bool]] = {}
        for channel, kinds in self.policy.interactions.items():
            for kind, purposes in kinds.items():
                tags = tuple(self.tag(purpose, section) for purpose, section in purposes.items())
                out[(channel, kind)] = (tags, may_market(tags))
        return out

    def tag(self, purpose: Purpose, section: str) -> PurposeTag:
        rule = self.policy.purposes[purpose]
        return PurposeTag(
            purpose=purpose,
            legal_basis=rule.legal_basis,
            policy_section=section,
            direct_marketing=rule.direct_marketing,
        )

    def row_for(self, channel: Channel, kind: InteractionKind) -> tuple[tuple[PurposeTag, ...], bool]:
        """The policy's row for an event: its purpose tags and whether they allow direct marketing."""
        rows = self.purpose_rows
        return rows.get((channel, kind)) or rows[(channel, "other")]  # a StrEnum member is its value as a key

    def tags_for(self, channel: Channel, kind: InteractionKind) -> tuple[PurposeTag, ...]:
        return self.row_for(channel, kind)[0]

    def domain_flags(self, domain: str) -> tuple[bool, bool]:
        """(on the policy's domain blocklist, a disposable domain) for an e-mail domain or any parent of it.

        Remembered per domain (bounded): the same domains come again and again, and the answer depends on the
        policy alone."""
        cache = self._domain_cache
        flags = cache.get(domain)
        if flags is None:
            candidates = domain_and_parents(domain)
            flags = (
                not self.blocked_domains.isdisjoint(candidates),
                not self.disposable_domains.isdisjoint(candidates),
            )
            if len(cache) >= 65_536:
                cache.clear()
            cache[domain] = flags
        return flags

    @cached_property
    def _domain_cache(self) -> dict[str, tuple[bool, bool]]:
        return {}

    @cached_property
    def clean_verdict(self) -> SpamVerdict:
        """The verdict of every event no signal fired for (immutable, so one instance serves them all)."""
        return SpamVerdict(score=0.0, threshold=self.policy.spam.threshold, reasons=())

    @cached_property
    def clean_verdicts(self) -> dict[Channel, SpamVerdict]:
        """``clean_verdict`` per channel: the same instance where the channel has no threshold of its own."""
        spam = self.policy.spam
        return {
            channel: SpamVerdict(score=0.0, threshold=spam.thresholds[channel], reasons=())
            if channel in spam.thresholds
            else self.clean_verdict
            for channel in Channel
        }

    @cached_property
    def rate_rules(self) -> tuple[RateRule, RateRule]:
        """The per-IP and the per-subject rate rule, looked up once instead of field by field per event."""
        limits, weights = self.policy.spam.rate_limits, self.policy.spam.weights
        ip_window, subject_window = limits.per_ip.seconds, limits.per_subject.seconds
        return (
            RateRule(limits.per_ip, ip_window, limits.buckets, "rate_ip", weights.rate_ip, "from this source IP"),
            RateRule(
                limits.per_subject,
                subject_window,
                limits.buckets,
                "rate_subject",
                weights.rate_subject,
                "from this subject",
            ),
        )

    @cached_property
    def rate_exempt_kinds(self) -> frozenset[InteractionKind]:
        """Interaction kinds the rate limits neither count nor limit (page views: browsing, not submissions)."""
        return frozenset(self.policy.spam.rate_limits.exempt_kinds)

    @cached_property
    def visitor_consent_categories(self) -> frozenset[str]:
        """The consent-manager categories that mean an anonymous visitor consented (lower case)."""
        return frozenset(self.policy.visitors.consent_categories)

    @cached_property
    def consent_skew(self) -> timedelta:
        return self.policy.consent.max_clock_skew.as_timedelta()

    @cached_property
    def consent_based(self) -> frozenset[Purpose]:
        return frozenset(p for p, r in self.policy.purposes.items() if r.legal_basis is LegalBasis.CONSENT)

    @cached_property
    def direct_marketing(self) -> frozenset[Purpose]:
        return frozenset(p for p, r in self.policy.purposes.items() if r.direct_marketing)


def compile_policy(policy: Policy) -> CompiledPolicy:
    spam = policy.spam
    networks: list[IpNetwork] = []
    addresses: set[str] = set()
    for entry in spam.blocklist.ips:
        network = ipaddress.ip_network(entry, strict=False)
        if network.num_addresses == 1:
            addresses.add(str(network.network_address))
        else:
            networks.append(network)
    disposable: frozenset[str] = frozenset()
    if spam.disposable_domains.enabled:
        disposable = frozenset(_disposable_domains) - {d.lower() for d in spam.disposable_domains.allow}
    return CompiledPolicy(
        policy=policy,
        spam_words=_alternation(spam.spam_words),
        misleading_phrases=_alternation(spam.misleading_phrases),
        age_patterns=tuple(re.compile(p, re.IGNORECASE) for p in policy.children.age_statement_patterns),
        blocked_emails=frozenset(spam.blocklist.emails),
        blocked_domains=frozenset(spam.blocklist.domains),
        blocked_ips=frozenset(addresses),
        blocked_networks=tuple(networks),
        blocked_phones=frozenset(spam.blocklist.phones),
        disposable_domains=disposable,
        content_prefilter=_content_prefilter(spam.spam_words + spam.misleading_phrases),
        age_union=_age_union(policy.children.age_statement_patterns),
        age_needs_digit=_age_needs_digit(policy.children.age_statement_patterns),
    )
