"""The processing policy as data: ``policy.yaml`` (packaged) loaded and validated into a frozen ``Policy``.

Periods, purposes, legal bases, consent rules, the children's age limit and every spam signal live in the YAML
file, not in code, so that the DPO's reading of the privacy policy can change without a release. Validation runs
at start; an invalid file is refused with errors that name the bad entry (``channels.web_form.retention: ...``).
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose
from pipeline.models.contact import Consent
from pipeline.yamlfile import load_mapping

__all__ = [
    "OTHER",
    "ChannelPolicy",
    "ClockKind",
    "Duration",
    "Policy",
    "PolicyError",
    "default_policy_path",
    "load_policy",
]

#: The interaction key that applies to any kind a channel does not list.
OTHER = "other"

ClockKind = Literal["interaction", "last_service_delivery", "last_event_registration"]

_DURATION = re.compile(r"^\s*(\d+)\s*([ymdh])\s*$")


class PolicyError(ValueError):
    """The policy file is missing, not YAML, or invalid; the message lists each bad entry by its path."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Duration(_Frozen):
    """A calendar duration: years and months move the calendar date (29 Feb + 1y = 28 Feb), days are 24 h."""

    years: int = Field(default=0, ge=0)
    months: int = Field(default=0, ge=0)
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match is None:
                raise ValueError(f"{value!r} is not a duration: write <n>y, <n>m, <n>d or <n>h, e.g. 8y")
            amount, unit = int(match.group(1)), match.group(2)
            return {{"y": "years", "m": "months", "d": "days", "h": "hours"}[unit]: amount}
        return value

    @model_validator(mode="after")
    def _positive(self) -> Duration:
        if not (self.years or self.months or self.days or self.hours):
            raise ValueError("a duration must be longer than zero")
        return self

    def after(self, start: datetime) -> datetime:
        """``start`` plus this duration (on every accepted event: the month length is looked up only past the 28th)."""
        if self.years or self.months:
            month_index = start.month - 1 + self.months + 12 * self.years
            year, month = start.year + month_index // 12, month_index % 12 + 1
            day = start.day
            if day > 28:
                day = min(day, calendar.monthrange(year, month)[1])
            start = start.replace(year=year, month=month, day=day)
        if self.days or self.hours:
            start = start + timedelta(days=self.days, hours=self.hours)
        return start

    def as_timedelta(self) -> timedelta:
        """An upper bound in plain time (a year = 366 days, a month = 31): for windows, never for expiries."""
        return timedelta(days=366 * self.years + 31 * self.months + self.days, hours=self.hours)

    def __str__(self) -> str:
        units = ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
        parts = [f"{n}{u}" for n, u in units if n]
        return "".join(parts)


class ChannelPolicy(_Frozen):
    """One row of the policy's channel table."""

    section: str = Field(min_length=1)
    retention: Duration
    clock: ClockKind
    anchor_fallback: Literal["occurred_at"] | None = Field(
        default=None, description="What anchors a restarting clock when the event carries no date for it."
    )

    @model_validator(mode="after")
    def _fallback_only_for_restarting_clocks(self) -> ChannelPolicy:
        if self.clock == "interaction" and self.anchor_fallback is not None:
            raise ValueError("anchor_fallback applies only to last_service_delivery and last_event_registration")
        return self


class PurposePolicy(_Frozen):
    legal_basis: LegalBasis
    direct_marketing: bool
    description: str = ""


def _interaction_key(value: Any) -> str:
    if value != OTHER and value not in InteractionKind._value2member_map_:
        known = ", ".join([*InteractionKind._value2member_map_, OTHER])
        raise ValueError(f"{value!r} is not an interaction kind (known: {known})")
    return str(value)


InteractionKey = Annotated[str, BeforeValidator(_interaction_key)]


class ConsentPolicy(_Frozen):
    sections: dict[Channel, str] = Field(description="Channel -> section tagged on a consent-based purpose.")
    accepted_methods: tuple[str, ...]
    import_channels: tuple[Channel, ...] = ()
    max_clock_skew: Duration
    refusal_removes_direct_marketing: bool = True

    @field_validator("accepted_methods")
    @classmethod
    def _known_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        allowed = set(Consent.model_fields["method"].annotation.__args__)  # type: ignore[union-attr]
        unknown = [m for m in value if m not in allowed]
        if unknown:
            raise ValueError(f"unknown consent method(s) {unknown}; known: {sorted(allowed)}")
        return value


class SuppressionPolicy(_Frozen):
    accept_after_erasure: bool = True
    drop_restricted: bool = True


class ChildrenPolicy(_Frozen):
    section: str
    minimum_age: int = Field(ge=1, le=120)
    age_statement_patterns: tuple[str, ...] = ()
    erase_subject: bool = Field(
        default=True,
        description="A child's event also issues an erasure of everything already held on the subject (section 12: "
        "'we will take measures to delete such information'), carried out and evidenced like the DPO's.",
    )

    @field_validator("age_statement_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(value):
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"[{index}] is not a regular expression: {exc}") from None
            if "age" not in compiled.groupindex:
                raise ValueError(f"[{index}] has no named group 'age'")
        return value


class SpamWeights(_Frozen):
    spam_word: float = Field(ge=0)
    misleading_phrase: float = Field(ge=0)
    honeypot: float = Field(ge=0)
    blocklisted_email: float = Field(ge=0)
    blocklisted_domain: float = Field(ge=0)
    blocklisted_ip: float = Field(ge=0)
    blocklisted_phone: float = Field(ge=0)
    reviewer_blocklist: float = Field(ge=0)
    disposable_domain: float = Field(ge=0)
    too_many_links: float = Field(ge=0)
    link_density: float = Field(ge=0)
    shouting: float = Field(ge=0)
    rate_ip: float = Field(ge=0)
    rate_subject: float = Field(ge=0)
    link_markup: float = Field(default=0.0, ge=0)
    """A link in forum or HTML markup (``[url=...]``); 0 in a file written before the rule: listed,
    weighing nothing."""
    link_in_name: float = Field(default=0.0, ge=0)
    """A web address in a form's or a chat's name fields; 0 in an older file: listed, weighing nothing."""
    disguised_word: float = Field(default=0.0, ge=0)
    """A listed word written in disguise ("vi@gra", "Viagra" with Cyrillic letters among the Latin ones); 0 in an
    older file: listed, weighing nothing."""


class Blocklist(_Frozen):
    emails: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @field_validator("ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, entry in enumerate(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"[{index}] is not an IP address or CIDR network") from None
        return value

    @field_validator("domains", "emails")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in value)


class Toggle(_Frozen):
    enabled: bool = True


class DisposableDomains(_Frozen):
    enabled: bool = True
    allow: tuple[str, ...] = ()


class LinkRules(_Frozen):
    max_links: int = Field(ge=0)
    max_links_per_100_words: float = Field(gt=0)
    min_words_for_density: int = Field(ge=1)
    count_list_mail: bool = Field(
        default=False,
        description="Judge mail that came through a mailing list (List-Id, List-Unsubscribe ... headers) by the link "
        "rules too; a list's footer is never counted either way.",
    )


class ShoutingRule(_Frozen):
    min_letters: int = Field(ge=1)
    max_upper_ratio: float = Field(gt=0, le=1)


class RateLimit(_Frozen):
    window: Duration
    max: int = Field(ge=1)

    @field_validator("window")
    @classmethod
    def _plain_window(cls, value: Duration) -> Duration:
        if value.years or value.months:
            raise ValueError("a rate window is a plain length of time: write <n>d or <n>h")
        return value

    @property
    def seconds(self) -> int:
        return int(self.window.as_timedelta().total_seconds())


class RateLimits(_Frozen):
    per_ip: RateLimit
    per_subject: RateLimit
    buckets: int = Field(ge=1, le=120)
    exempt_kinds: tuple[InteractionKind, ...] = Field(
        default=(), description="Interaction kinds that are not submissions: neither counted nor limited."
    )


class EngineLearnedPolicy(_Frozen):
    """How the engine's points count once the classifier learned decisions of this deployment's own.

    The classifier learns the engine's symbols as features, weighed by what reviewers decided; the engine's own
    points weigh the same symbols by rspamd's generic scores. So, per channel listed, the engine's weight moves
    from ``weights`` to these, linearly in the decisions the classifier learned of the rarer kind, reaching them at
    ``decisions``.
    """

    decisions: int = Field(default=500, ge=1, description="Decisions of each kind at which these weights apply fully.")
    weights: dict[Channel, float] = Field(
        default_factory=dict,
        description="Per-channel points per point once learned; a channel not listed keeps its own.",
    )

    @field_validator("weights")
    @classmethod
    def _non_negative_weights(cls, value: dict[Channel, float]) -> dict[Channel, float]:
        return _non_negative(value)


def _non_negative(value: dict[Channel, float]) -> dict[Channel, float]:
    bad = [channel.value for channel, weight in value.items() if weight < 0]
    if bad:
        raise ValueError(f"engine weights must be 0 or more (not for {', '.join(bad)})")
    return value


class SpamEnginePolicy(_Frozen):
    """How the engine's verdict (rspamd, given to the chain as input) counts in the score."""

    enabled: bool = True
    weight: float = Field(default=1.0, ge=0, description="Points per point of the engine's score.")
    weights: dict[Channel, float] = Field(
        default_factory=dict,
        description="Per-channel points per point of the engine's score; a channel not listed uses `weight`.",
    )
    min_contribution: float = Field(default=-3.0, le=0, description="Ham evidence cannot cancel more than this.")
    max_contribution: float = Field(default=12.0, ge=0)
    on_unavailable: Literal["review", "wait"] = Field(
        default="review",
        description="No verdict in time: 'review' quarantines with reason spam_engine_unavailable; 'wait' has the "
        "agent retry for up to max_wait_s, then review.",
    )
    max_wait_s: int = Field(default=600, ge=0)
    learned: EngineLearnedPolicy | None = None

    @field_validator("weights")
    @classmethod
    def _non_negative_weights(cls, value: dict[Channel, float]) -> dict[Channel, float]:
        return _non_negative(value)

    def weight_for(self, channel: Channel, learned: int = 0) -> float:
        """Points per point of the engine's score for this channel's events, when the classifier that judged the
        event had learned ``learned`` decisions of the rarer kind (``learned`` above)."""
        cold = self.weights.get(channel, self.weight)
        if self.learned is None or channel not in self.learned.weights:
            return cold
        share = min(learned / self.learned.decisions, 1.0)
        return round(cold + share * (self.learned.weights[channel] - cold), 4)


class ClassifierLearnedPolicy(_Frozen):
    """How a verdict with the prior weighs once this deployment has learned decisions of its own.

    Its evidence is more trustworthy after hundreds of local decisions than with the prior alone, so its zero
    (``offset``) and its points per unit of evidence (``1 / scale``) move from the prior's cold values to these,
    linearly in the decisions learned of the rarer kind, reaching them at ``decisions``.
    """

    decisions: int = Field(default=500, ge=1, description="Decisions of each kind at which these values apply fully.")
    offset: float = Field(description="The evidence at which the verdict contributes 0 points, once learned.")
    scale: float = Field(gt=0, description="Evidence per point, once learned (the classifier's `scale` when cold).")


class ClassifierPriorPolicy(_Frozen):
    """The classifier's shipped prior (counts learned from a public corpus of real mail): its cold start."""

    enabled: bool = True
    weight: float = Field(
        default=0.1, gt=0, le=1, description="What one message of the prior counts for, against one decision here."
    )
    channels: tuple[Channel, ...] = Field(
        default=(Channel.EMAIL,), description="The channels whose verdicts use the prior (it was learned from e-mail)."
    )
    offset: float = Field(
        default=0.0,
        description="The evidence (log_odds) at which a verdict with the prior contributes 0 points (calibrated).",
    )
    learned: ClassifierLearnedPolicy | None = Field(
        default=None, description="Its calibration as decisions are learned here; None keeps the cold one."
    )


class SpamClassifierPolicy(_Frozen):
    """How leadpipe's own classifier (learned from reviewers' decisions) counts in the score."""

    enabled: bool = True
    prior: ClassifierPriorPolicy = ClassifierPriorPolicy()
    weight: float = Field(default=1.0, ge=0, description="Points per `scale` of evidence (the classifier's log_odds).")
    scale: float = Field(default=2.0, gt=0)
    cap: float = Field(default=10.0, ge=0, description="Its contribution stays within +-cap points.")
    min_learns: int = Field(default=50, ge=1, description="Silent until it learned this many of each class.")
    smoothing: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Laplace smoothing: a feature seen in no message of a class counts as seen in this many.",
    )


class SpamPolicy(_Frozen):
    section: str
    threshold: float = Field(gt=0)
    thresholds: dict[Channel, float] = Field(
        default_factory=dict, description="Per-channel thresholds; a channel not listed uses `threshold`."
    )
    engine: SpamEnginePolicy = SpamEnginePolicy()
    classifier: SpamClassifierPolicy = SpamClassifierPolicy()
    weights: SpamWeights
    max_word_hits: int = Field(ge=1)
    spam_words: tuple[str, ...] = ()
    misleading_phrases: tuple[str, ...] = ()
    honeypot: Toggle = Toggle()
    blocklist: Blocklist = Blocklist()
    disposable_domains: DisposableDomains = DisposableDomains()
    links: LinkRules
    shouting: ShoutingRule
    rate_limits: RateLimits

    @field_validator("thresholds")
    @classmethod
    def _positive_thresholds(cls, value: dict[Channel, float]) -> dict[Channel, float]:
        bad = [channel.value for channel, threshold in value.items() if not threshold > 0]
        if bad:
            raise ValueError(f"thresholds must be greater than 0 (not for {', '.join(bad)})")
        return value

    def threshold_for(self, channel: Channel) -> float:
        return self.thresholds.get(channel, self.threshold)

    @field_validator("spam_words", "misleading_phrases")
    @classmethod
    def _not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _lowercase_words(value)


def _lowercase_words(value: tuple[str, ...]) -> tuple[str, ...]:
    """Words or names matched case-insensitively: trimmed and lower-cased; a blank one is refused by its index."""
    for index, word in enumerate(value):
        if not word.strip():
            raise ValueError(f"[{index}] is blank")
    return tuple(w.strip().lower() for w in value)


class VisitorPolicy(_Frozen):
    """Anonymous website visitors (section 2): which consent their events must carry to be kept."""

    section: str = Field(min_length=1)
    consent_categories: tuple[str, ...] = Field(
        min_length=1,
        description="Consent-manager categories that mean consent to analytics cookies; an anonymous visitor's event "
        "is kept when it grants one of them and denies none.",
    )

    @field_validator("consent_categories")
    @classmethod
    def _categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _lowercase_words(value)


class QuarantinePolicy(_Frozen):
    retention: Duration


class StorageSystem(_Frozen):
    """Where one system that holds personal data keeps it (section 10: hosting in the United States and Ireland)."""

    description: str = Field(min_length=1)
    countries: tuple[str, ...] = Field(min_length=1, description="ISO 3166-1 alpha-2 codes")
    safeguards: str = ""


#: The systems leadpipe writes personal data to: each needs a storage entry (the access export names them).
STORAGE_SYSTEMS = ("kafka", "crm", "hubspot")


class StoragePolicy(_Frozen):
    section: str
    countries: tuple[str, ...] = Field(min_length=1, description="Where the policy says data may be stored")
    systems: dict[str, StorageSystem]

    @model_validator(mode="after")
    def _systems_within_the_policy(self) -> StoragePolicy:
        problems = [f"systems.{name}: missing" for name in STORAGE_SYSTEMS if name not in self.systems]
        for name, system in self.systems.items():
            outside = sorted(set(system.countries) - set(self.countries))
            if outside:
                problems.append(
                    f"systems.{name}.countries: {', '.join(outside)} not among the policy's {', '.join(self.countries)}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Policy(_Frozen):
    """The whole policy file, validated, including the cross-references between its tables."""

    version: str = Field(min_length=1)
    channels: dict[Channel, ChannelPolicy]
    purposes: dict[Purpose, PurposePolicy]
    interactions: dict[Channel, dict[InteractionKey, dict[Purpose, str]]]
    consent: ConsentPolicy
    suppression: SuppressionPolicy = SuppressionPolicy()
    children: ChildrenPolicy
    spam: SpamPolicy
    quarantine: QuarantinePolicy
    storage: StoragePolicy
    visitors: VisitorPolicy

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        problems: list[str] = []
        for channel in Channel:
            if channel not in self.channels:
                problems.append(f"channels.{channel.value}: missing (every channel needs a retention period)")
            kinds = self.interactions.get(channel)
            if kinds is None:
                problems.append(f"interactions.{channel.value}: missing")
            elif OTHER not in kinds:
                problems.append(f"interactions.{channel.value}.{OTHER}: missing (purposes for unlisted kinds)")
        for purpose in Purpose:
            if purpose not in self.purposes:
                problems.append(f"purposes.{purpose.value}: missing (every purpose needs a legal basis)")
        for channel, kinds in self.interactions.items():
            for kind, purposes in kinds.items():
                where = f"interactions.{channel.value}.{kind}"
                if not purposes:
                    problems.append(f"{where}: lists no purpose")
                for purpose, section in purposes.items():
                    if not section.strip():
                        problems.append(f"{where}.{purpose.value}: section is empty")
                    rule = self.purposes.get(purpose)
                    if rule is not None and rule.legal_basis is LegalBasis.CONSENT:
                        problems.append(
                            f"{where}.{purpose.value}: rests on consent, so it is tagged only from a consent the "
                            "person gave (consent.sections), never by default"
                        )
        quarantine_days = self.quarantine.retention.as_timedelta().days
        if quarantine_days > 365:
            problems.append("quarantine.retention: longer than a year is not 'short' (section 8 review queue)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- lookups the processors use ---------------------------------------------------------------------------

    def purposes_for(self, channel: Channel, kind: InteractionKind) -> dict[Purpose, str]:
        """Purpose -> section for one interaction (the channel's ``other`` entry when the kind is not listed)."""
        kinds = self.interactions[channel]
        return kinds.get(kind.value) or kinds[OTHER]

    def consent_purposes(self) -> tuple[Purpose, ...]:
        """Purposes that rest on consent: what a withdrawal of consent (9.8) stops."""
        return tuple(p for p, rule in self.purposes.items() if rule.legal_basis is LegalBasis.CONSENT)


def default_policy_path() -> Path:
    """The packaged policy file."""
    return Path(str(resources.files("pipeline.policy").joinpath("policy.yaml")))


def _path_of(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("[key]",):
            parts.append("(key)")
        elif isinstance(item, str) and (item.startswith("function-") or item in ("str", "dict[str,any]")):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "policy"


def _format(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{_path_of(tuple(item['loc']))}: {message}")
    return f"{path}: invalid policy:\n  " + "\n  ".join(lines)


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and validate a policy file (default: the packaged one). Raises PolicyError naming each bad entry.

    Callers with settings pass ``settings.policy_file``; None means the packaged ``policy.yaml``.
    """
    file = Path(path) if path is not None else default_policy_path()
    data = load_mapping(file, PolicyError, "policy file")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format(file, exc)) from None
