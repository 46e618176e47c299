"""The policy prepared for the hot path: regexes compiled and lists turned into sets once, not per event."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from disposable_email_domains import blocklist as _disposable_domains

from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose
from pipeline.models.tagged import PurposeTag
from pipeline.policy import Policy

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WORD = re.compile(r"\S+")


def _alternation(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word regex for a word list; spaces in a phrase match any run of whitespace."""
    if not words:
        return None
    parts = sorted((r"\s+".join(re.escape(w) for w in word.split()) for word in words), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


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

    @cached_property
    def purpose_tags(self) -> dict[tuple[Channel, str], tuple[PurposeTag, ...]]:
        """(channel, interaction kind or 'other') -> the purpose tags the policy gives it, built once."""
        out: dict[tuple[Channel, str], tuple[PurposeTag, ...]] = {}
        for channel, kinds in self.policy.interactions.items():
            for kind, purposes in kinds.items():
                out[(channel, kind)] = tuple(self.tag(purpose, section) for purpose, section in purposes.items())
        return out

    def tag(self, purpose: Purpose, section: str) -> PurposeTag:
        rule = self.policy.purposes[purpose]
        return PurposeTag(
            purpose=purpose,
            legal_basis=rule.legal_basis,
            policy_section=section,
            direct_marketing=rule.direct_marketing,
        )

    def tags_for(self, channel: Channel, kind: InteractionKind) -> tuple[PurposeTag, ...]:
        tags = self.purpose_tags
        return tags.get((channel, kind.value)) or tags[(channel, "other")]

    @cached_property
    def rate_window_s(self) -> tuple[int, int]:
        """(per-IP, per-subject) rate windows in seconds."""
        limits = self.policy.spam.rate_limits
        return limits.per_ip.seconds, limits.per_subject.seconds

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
    )
