"""The hot path's shortcuts give what the plain code gives: same reasons, same evidence, same tags, same bytes.

Each fast path has its exact counterpart still in the code (``scan_content``, the age patterns one by one, the
validating constructors, pydantic's serialiser); these tests run both on the same inputs.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from processor_events import NOW, PEPPER, build_event
from pydantic import ValidationError

from pipeline.crypto.sealing import _unb64
from pipeline.models.common import Channel, InteractionKind, Purpose
from pipeline.models.contact import Consent
from pipeline.models.tagged import SpamVerdict, Tags, tags_json
from pipeline.policy.model import Duration
from pipeline.processors import ChainContext, CompiledPolicy, run_chain
from pipeline.processors import rates as rate_windows
from pipeline.processors.chain import Passed, Quarantined, _tags
from pipeline.processors.children import child_evidence
from pipeline.processors.compiled import _age_needs_digit, _age_union, _content_prefilter, has_digit
from pipeline.processors.retention import RetentionClock
from pipeline.processors.spam import content_reasons, hashed_key, may_be_disguised, scan_content, undisguised
from pipeline.processors.suppression import NO_EFFECT, SuppressionEffect
from pipeline.processors.tagging import tag_purposes
from pipeline.processors.text import person_text

TEXTS = [
    "Please send the white paper on cloud-native migration and pricing for a pilot.",
    "We are looking for a team to build a data platform on Kubernetes; can we talk next week?",
    "Cheap VIAGRA here",
    "viagra, Cialis and CASINO: jackpot!",
    "casinos are not a spam word, xcasino neither, casino_royale neither, casino2 neither",
    "the casino.",
    "Guaranteed   returns on every deal",
    "guaranteed\nreturns and risk-free investment, 100% guaranteed",
    "act now before it's too late, you have won, claim your prize",
    "we contact you: contract, act, actual",  # 'act' inside words
    "Crypto giveaway and crypto  giveaway and CRYPTO\tGIVEAWAY",
    "see https://a.example https://b.example http://c.example www.d.example",
    "look at https://a.example/x and https://b.example/y for the details now",
    "HTTPS://SHOUT.EXAMPLE and WWW.EXAMPLE.ORG",
    "a://b is not a link, www.x is",
    "PLEASE CALL ME BACK IMMEDIATELY ABOUT OUR OFFER TODAY",
    "PLEASE CALL ME BACK IMMEDIATELY about our offer",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCD",  # exactly 30 letters, all upper
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABC",  # 29
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABC1",
    "short",
    "",
    "   ",
    "12345 67890 !!! ??? ___",
    "under_score viagra_x x_viagra",
    "Grüße aus München, wir brauchen ein Angebot",
    "ÜBERALL GROSSBUCHSTABEN IN DIESER NACHRICHT BITTE",
    "vİagra with a dotted capital I",
    "\u017feo \u017fervices with a long s",
    "\u212aasino with a Kelvin sign",
    "\uff36\uff29\uff21\uff27\uff32\uff21 fullwidth",
    "casino\u00a0bonus with a no-break space",
    "crypto\u2003giveaway with an em space",
    "weight loss\u2028work from home",
    "Ⅷ ROMAN NUMERALS ARE UPPER BUT NOT ALPHA ⅧⅧⅧⅧⅧⅧⅧⅧⅧⅧⅧⅧ",
    "Greek capitals \u03a3\u0399\u0393\u039c\u0391 " * 3,
    "emoji 🎰 casino 🎰",
    "Hi, I am 14 years old and love coding",
    "I'm 15. I turned 12 last year. My age is 9",
    "I am 40 years old",
    "i am only 13!",
    "I am 1415",
    "Buy vi@gra and c1alis now, win10 and mp3s too",
    "c a s i n o and j.a.c.k.p.o.t and c-a-s-i-n-o",
    "a b c d e f and U.S.A and x x x",
    "mail me at info@casino.example or john@example.com",
    "[url=http://x.example]cheap[/url] [URL]x[/URL] [link=y] <a href='z'>",
    "[urlx] <abbr> <a> [links] not markup",
    "Cheap Vi\u0430gr\u0430 and \u0421ialis",
    "真人百家乐\uff0c注册就送彩金 and 代开发票",
    "Предлагаем продвижение сайтов и онлайн казино",
]


def _texts_with_cases() -> list[str]:
    return [variant for text in TEXTS for variant in (text, text.upper(), text.lower(), text.title())]


@pytest.mark.parametrize("text", _texts_with_cases())
def test_content_reasons_equal_the_scans(text: str, compiled: CompiledPolicy) -> None:
    assert compiled.content_prefilter is not None
    assert content_reasons(text, compiled) == scan_content(text, compiled)


_ALPHABET = st.sampled_from(
    [
        "viagra",
        "Casino",
        "xxx",
        "seo",
        "services",
        "guaranteed",
        "returns",
        "100%",
        "act",
        "now",
        "it's",
        "risk-free",
        "http://",
        "https://",
        "www.",
        "a.example",
        "://",
        "WWW",
        " ",
        "  ",
        "\n",
        "\t",
        "-",
        "_",
        ".",
        ",",
        "!",
        "'",
        "A",
        "B",
        "z",
        "9",
        "ü",
        "İ",
        "\u017f",
        "\u212a",
        "\u00a0",
        "ABCDEFGHIJ",
        "klmnopqrst",
        "@",
        "1",
        "0",
        "$",
        "vi",
        "gra",
        "c",
        "[url=",
        "[/url]",
        "<a href=",
        "\u0430",
        "百家乐",
    ]
)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=30))
def test_content_reasons_equal_the_scans_on_generated_text(parts: list[str], compiled: CompiledPolicy) -> None:
    text = "".join(parts)
    assert content_reasons(text, compiled) == scan_content(text, compiled)


@pytest.mark.parametrize("footer_links", [1, 2, 5])
@pytest.mark.parametrize("text", TEXTS)
def test_content_reasons_equal_the_scans_with_a_list_footer(
    text: str, footer_links: int, compiled: CompiledPolicy
) -> None:
    assert content_reasons(text, compiled, footer_links) == scan_content(text, compiled, footer_links)
    assert content_reasons(text, compiled, typed=False) == scan_content(text, compiled, typed=False)
    unlinked = content_reasons(text, compiled, footer_links, count_links=False)
    assert unlinked == scan_content(text, compiled, footer_links, count_links=False)
    assert not {"too_many_links", "link_density"} & {r.code for r in unlinked}


@settings(max_examples=2000, deadline=None)
@given(text=st.text(alphabet="aZq@1!0$3 .-_x9\n", max_size=24))
def test_the_disguise_seeds_miss_no_disguise(text: str) -> None:
    if undisguised(text) is not None:
        assert may_be_disguised(text.lower().encode("ascii"))


def test_the_prefilter_proves_nothing_for_words_it_cannot_handle() -> None:
    assert _content_prefilter(("casino", "seo services")) is not None
    assert _content_prefilter(("\u212aasino",)) is None  # a Kelvin sign, which an ASCII k matches
    only_unicode = _content_prefilter(("grüße", "百家乐", "онлайн казино"))  # no ASCII text can match these
    assert only_unicode is not None and not only_unicode.runs
    assert _content_prefilter(("!!!",)) is None  # no word character to look for
    prefilter = _content_prefilter(("act now before it's too late", "100% guaranteed", "guaranteed returns"))
    assert prefilter is not None
    assert prefilter.runs == {
        b"before": (frozenset({b"act", b"now", b"before", b"it", b"s", b"too", b"late"}),),
        b"guaranteed": (frozenset({b"100", b"guaranteed"}), frozenset({b"guaranteed", b"returns"})),
    }
    assert not prefilter.may_match([b"we", b"have", b"it", b"before", b"now"])  # 'act', 'late' ... missing
    assert prefilter.may_match([b"returns", b"x", b"guaranteed"])


def test_a_policy_without_prefilter_scans_every_text(compiled: CompiledPolicy) -> None:
    plain = dataclasses.replace(compiled, content_prefilter=None)
    for text in TEXTS:
        assert content_reasons(text, plain) == scan_content(text, compiled)


# ---- age statements ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", _texts_with_cases())
def test_the_age_union_matches_where_a_pattern_does(text: str, compiled: CompiledPolicy) -> None:
    assert compiled.age_union is not None
    assert (compiled.age_union.search(text) is not None) == any(p.search(text) for p in compiled.age_patterns)
    event = build_event(interaction={"message": text or None})
    plain = dataclasses.replace(compiled, age_union=None, age_needs_digit=False)
    assert child_evidence(event, text, compiled) == child_evidence(event, text, plain)


def test_the_shipped_age_patterns_all_need_a_digit(compiled: CompiledPolicy) -> None:
    assert compiled.age_needs_digit


@pytest.mark.parametrize(
    ("patterns", "gated"),
    [
        ((r"\bmy age is\s+(?P<age>\d{1,2})\b", r"I\s+turn(?:ed)?\s+(?P<age>\d{1,2})"), True),
        ((r"(?:aged|age)\s+(?P<age>1|2\d)",), True),  # every branch holds a digit
        ((r"(?>(?P<age>\d+?))",), True),  # atomic group, lazy repeat of at least one
        ((r"(?P<age>\d+)", r"(?P<age>\w+) years old"), False),  # one pattern without: no gate at all
        ((r"(?P<age>\d)?x",), False),  # the digit may be absent
        ((r"(?P<age>\d*)",), False),
        ((r"(?P<age>[0-9]+)",), False),  # a class the analysis does not read: conservatively no
        ((r"(?P<age>\D+)",), False),
        ((r"a|(?P<age>\d)",), False),  # a branch without
        ((r"(",), False),  # not a regex: no gate (compile_policy reports it elsewhere)
        ((), False),
    ],
)
def test_the_digit_gate_only_where_every_match_needs_a_digit(patterns: tuple[str, ...], gated: bool) -> None:
    assert _age_needs_digit(patterns) is gated


_AGE_TEXT = st.lists(
    st.sampled_from(
        ["I am", "I'm", "only", "my age is", "I turned", "14", "40", "\u0661\u0664", "\uff11\uff14", "years old"]
    )
    | st.text(max_size=8),
    max_size=6,
).map(" ".join)


@given(text=_AGE_TEXT)
@settings(max_examples=300, deadline=None)
def test_the_digit_gate_changes_no_evidence(text: str, compiled: CompiledPolicy) -> None:
    assert has_digit(text) == (re.search(r"\d", text) is not None)
    event = build_event(interaction={"message": text or None})
    plain = dataclasses.replace(compiled, age_union=None, age_needs_digit=False)
    assert child_evidence(event, text, compiled) == child_evidence(event, text, plain)


@pytest.mark.parametrize(
    "patterns",
    [
        (r"(?P<age>\d+)(?P=age)",),  # named back-reference
        (r"(\d)\1 (?P<age>\d+)",),  # numbered back-reference: the union renumbers groups
        (r"(?(1)a|b)(?P<age>\d+)",),  # conditional on a group number
        (r"\(?P<age>x(?P<age>\d+)",),  # the group's text twice
        (r"(?i)I am (?P<age>\d+)",),  # a global flag is an error inside the union
        (),
    ],
)
def test_no_union_where_renaming_could_change_more_than_a_name(patterns: tuple[str, ...]) -> None:
    assert _age_union(patterns) is None


def test_the_union_keeps_every_group() -> None:
    union = _age_union((r"\bI am (?P<age>\d+)", r"(a)(b)(?P<age>\d+)"))
    assert union is not None and union.groups == 4
    assert set(union.groupindex) == {"age_0", "age_1"}
    assert union.search("xx ab12") and not union.search("I amx 12")


# ---- models built without validation ------------------------------------------------------------------------------


def _chain(event: Any, compiled: CompiledPolicy, **ctx: Any) -> Any:
    return run_chain(event, ChainContext(policy=compiled, now=NOW, pepper=PEPPER, **ctx))


def _tag_cases() -> list[Any]:
    consent = Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox")
    return [
        build_event(),
        build_event(Channel.CUSTOMER, interaction={"last_service_delivery_at": NOW - timedelta(days=400)}),
        build_event(Channel.EVENT, interaction={"event_date": datetime(2024, 2, 29, 18, tzinfo=UTC)}),
        build_event(Channel.CHATBOT, consents=(consent,)),
        build_event(interaction={"message": "casino casino viagra", "honeypot": "x"}),
        build_event(occurred_at=datetime(2024, 1, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ]


@pytest.mark.parametrize("case", range(len(_tag_cases())))
def test_trusted_tags_equal_validated_tags_and_their_json(case: int, compiled: CompiledPolicy) -> None:
    outcome = _chain(_tag_cases()[case], compiled).outcome
    assert isinstance(outcome, Passed | Quarantined)
    tags = outcome.tagged.tags
    validated = Tags(**{name: getattr(tags, name) for name in Tags.model_fields})
    assert tags == validated
    assert tags.model_fields_set == validated.model_fields_set
    assert tags.model_dump_json() == validated.model_dump_json()
    for _ in range(2):  # the first call fills the cache, the second uses it
        assert tags_json(tags) == validated.__pydantic_serializer__.to_json(validated)


def test_an_anchor_in_another_zone_is_validated_to_utc(compiled: CompiledPolicy) -> None:
    plus_two = timezone(timedelta(hours=2))
    expires = datetime(2032, 1, 1, tzinfo=UTC)
    clock = RetentionClock("interaction", datetime(2024, 1, 1, 2, tzinfo=plus_two), expires, None)
    tags = _tags(compiled, (), clock, False, compiled.clean_verdict)
    assert tags.retention_anchor_at.tzinfo is UTC and tags.retention_anchor_at == datetime(2024, 1, 1, tzinfo=UTC)
    naive = RetentionClock("interaction", datetime(2024, 1, 1), datetime(2032, 1, 1, tzinfo=UTC), None)
    with pytest.raises(ValueError, match="retention_anchor_at"):
        _tags(compiled, (), naive, False, compiled.clean_verdict)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC),
        datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC),
        datetime(999, 1, 2, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_tags_json_writes_timestamps_as_pydantic_does(moment: datetime, compiled: CompiledPolicy) -> None:
    purposes = compiled.tags_for(Channel.WEB_FORM, InteractionKind.CONTACT_US)
    tags = Tags(
        policy_version="v",
        purposes=purposes,
        retention_clock="interaction",
        retention_anchor_at=moment,
        retention_expires_at=moment,
        marketing_allowed=True,
        spam=compiled.clean_verdict,
    )
    for _ in range(2):
        assert tags_json(tags) == tags.__pydantic_serializer__.to_json(tags)


def test_the_clean_verdict_is_the_validated_empty_one(compiled: CompiledPolicy) -> None:
    assert compiled.clean_verdict == SpamVerdict(score=round(sum(()), 6), threshold=compiled.policy.spam.threshold)
    assert compiled.clean_verdict.model_dump_json() == SpamVerdict(score=0, threshold=5.0).model_dump_json()


def test_trusted_fills_defaults_and_refuses_what_validation_would_not_fill() -> None:
    verdict = SpamVerdict.trusted(score=1.0, threshold=5.0)
    assert verdict == SpamVerdict(score=1.0, threshold=5.0)
    assert verdict.model_fields_set == {"score", "threshold"} and verdict.model_dump_json() == (
        '{"score":1.0,"threshold":5.0,"reasons":[],"review":null,"engine":null,"classifier":null}'
    )
    with pytest.raises(TypeError, match="threshold must be given"):
        SpamVerdict.trusted(score=1.0)
    with pytest.raises(TypeError, match="unknown field"):
        SpamVerdict.trusted(score=1.0, threshold=5.0, colour="red")
    with pytest.raises(ValidationError, match="frozen"):
        verdict.score = 2.0  # type: ignore[misc]  # frozen like a validated one


# ---- smaller shortcuts -------------------------------------------------------------------------------------------


def test_the_policy_row_shortcut_equals_the_general_tagging(compiled: CompiledPolicy) -> None:
    """No consents and no suppression take the row as it is; withdrawing a purpose no row has forces the general
    path without changing its result."""
    general = SuppressionEffect(withdrawn=frozenset({Purpose.FURTHER_CONTACT}))
    for channel, kinds in compiled.policy.interactions.items():
        for kind in InteractionKind:
            event = build_event(channel, kind)
            defaults = compiled.tags_for(channel, kind)
            assert Purpose.FURTHER_CONTACT not in {t.purpose for t in defaults}, (channel, kind, kinds)
            assert tag_purposes(event, compiled, NO_EFFECT) == tag_purposes(event, compiled, general)


@pytest.mark.parametrize("subject", [None, "", "Offer"])
@pytest.mark.parametrize("message", [None, "", "Call me"])
def test_person_text_without_transcript(subject: str | None, message: str | None) -> None:
    event = build_event(interaction={"subject": subject, "message": message})
    expected = "\n".join(p for p in (subject, message) if p)
    assert person_text(event) == expected
    with_turn = build_event(
        interaction={"subject": subject, "message": message, "transcript": [{"author": "bot", "text": "hi"}]}
    )
    assert person_text(with_turn) == expected  # the general path, a bot turn adds nothing


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)),
    years=st.integers(0, 10),
    months=st.integers(0, 30),
    days=st.integers(0, 400),
    hours=st.integers(0, 50),
)
def test_duration_after_equals_calendar_arithmetic(
    start: datetime, years: int, months: int, days: int, hours: int
) -> None:
    if not (years or months or days or hours):
        return
    month_index = start.month - 1 + months + 12 * years
    year, month = start.year + month_index // 12, month_index % 12 + 1
    last = (datetime(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    expected = start.replace(year=year, month=month, day=min(start.day, last)) + timedelta(days=days, hours=hours)
    assert Duration(years=years, months=months, days=days, hours=hours).after(start) == expected


@pytest.mark.parametrize("window_s", [0, 1, 59, 3600, 86_400])
@pytest.mark.parametrize("buckets", [1, 7, 12])
@pytest.mark.parametrize("at_s", [0.0, 1.5, 1_700_000_000.9, 1_700_003_599.0])
def test_the_first_submission_of_a_key(window_s: int, buckets: int, at_s: float) -> None:
    """The empty-state shortcut counts what the general path would: the general path on a state whose only bucket
    is far in the past (so it is dropped) ends in the same place."""
    state, count = rate_windows.bump(rate_windows.EMPTY, at_s, window_s, buckets)
    stale = ((-(10**12), 5),)
    assert (state, count) == rate_windows.bump(stale, at_s, window_s, buckets) == (state, 1)


def test_hashed_keys_are_the_truncated_hmac() -> None:
    digest = hmac.new(PEPPER, b"leadpipe:ip:203.0.113.7", hashlib.sha256).hexdigest()
    assert hashed_key(PEPPER, "ip", " 203.0.113.7 ") == f"ip:{digest[:40]}"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200) | st.binary(min_size=40, max_size=2000))
def test_unpadded_base64url_decodes_as_the_library_does(data: bytes) -> None:
    text = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert _unb64(text) == base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == data


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # the type and the words both reach the dead letter
        return type(exc), str(exc)


@pytest.mark.parametrize("text", ["ab$c", "a b", "abc", "ab", "é"])
def test_malformed_base64url_fails_as_the_library_does(text: str) -> None:
    padded = text + "=" * (-len(text) % 4)
    assert _outcome(lambda: _unb64(text)) == _outcome(lambda: base64.urlsafe_b64decode(padded))


#: base64url's alphabet, the standard one's two other letters, padding, and characters neither alphabet has.
_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= $\n.é"


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=48, max_size=900),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(_B64_CHARS)), max_size=3),
)
def test_long_texts_decode_or_fail_as_the_library_does(data: bytes, edits: list[tuple[int, str]]) -> None:
    """Long texts take the strict SIMD decoder first: a well-formed text or one with a character changed, added or
    out of place decodes to the same bytes, or fails with the same error, as the library's lenient decoder."""
    text = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    for place, char in edits:
        at = place % (len(text) + 1)
        text = text[:at] + char + text[at + 1 :]
    padded = text + "=" * (-len(text) % 4)
    assert _outcome(lambda: _unb64(text)) == _outcome(lambda: base64.urlsafe_b64decode(padded))
