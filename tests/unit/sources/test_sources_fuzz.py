"""Property: whatever bytes arrive, every adapter answers with valid events or a typed, explained SourceError.

Never an unexpected exception (a crash the caller cannot explain) and never an empty success (a silent drop).
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from source_payloads import all_payloads, content_type_of, ctx_for

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.normalize import is_visitor_key
from pipeline.sources import ADAPTERS, CONTENT_TYPES, NothingToTake, SourceError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)

FIELD_NAMES = [
    "email",
    "phone",
    "name",
    "first_name",
    "your-email",
    "tel-1",
    "skype",
    "linkedin",
    "age",
    "birth_date",
    "country",
    "location",
    "event_date",
    "last_service_delivery",
    "honeypot-1",
    "consent-marketing",
    "message",
    "company",
    "data",
    "contact",
    "attributes",
    "messages",
    "profile",
    "attendees",
    "fields",
    "batch",
    "entry",
    "update_id",
    "sender",
    "event",
    "platform",
    "duration_s",
]
field_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "a@example.com",
            "+49 30 123456",
            "030 1234567",
            "2024-05-14",
            "17",
            "Berlin, Germany",
            "live:x.y",
            "linkedin.com/in/x",
            "",
            "1",
            "true",
            "@@",
            "+",
            "1e400",
        ]
    ),
    json_values,
)
structured = st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=8)


def check(channel: Channel, raw: bytes, content_type: str) -> None:
    ctx = ctx_for(channel, raw, content_type)
    try:
        events = ADAPTERS[channel](raw, ctx)
    except SourceError as exc:
        assert exc.problems, "a rejection must say why"
        for problem in exc.problems:
            assert problem.reason and problem.message
        return
    except NothingToTake as exc:  # a receipt: taken without events, and it says why
        assert exc.reason and str(exc)
        return
    assert events, "an empty success is a silent drop"
    for event in events:
        assert isinstance(event, ContactEvent)
        assert event.channel is channel
        if is_visitor_key(event.subject_key):  # an anonymous website visitor's event: its key is the cookie id's
            assert channel is Channel.WEBSITE and event.provenance.visitor_key == event.subject_key
            assert not (event.person.email or event.person.phone)
        else:
            assert event.person.email or event.person.phone
        assert ContactEvent.model_validate_json(event.model_dump_json()) == event


CHANNEL_TYPES = [(channel, ct) for channel, types in CONTENT_TYPES.items() for ct in sorted(types)]


@pytest.mark.parametrize(("channel", "content_type"), CHANNEL_TYPES)
@FUZZ
@given(raw=st.binary(max_size=600))
def test_arbitrary_bytes(channel: Channel, content_type: str, raw: bytes) -> None:
    check(channel, raw, content_type)


@pytest.mark.parametrize("channel", list(Channel))
@FUZZ
@given(value=json_values | structured | st.lists(structured, max_size=3))
def test_arbitrary_json(channel: Channel, value: Any) -> None:
    check(channel, json.dumps(value).encode(), "application/json")


@pytest.mark.parametrize("channel", [Channel.WEB_FORM])
@FUZZ
@given(value=structured)
def test_arbitrary_form_posts(channel: Channel, value: dict[str, Any]) -> None:
    from urllib.parse import urlencode

    check(channel, urlencode({k: str(v) for k, v in value.items()}).encode(), "application/x-www-form-urlencoded")


@pytest.mark.parametrize("channel", [Channel.EVENT, Channel.CUSTOMER])
@FUZZ
@given(
    rows=st.lists(st.lists(st.text(max_size=20), min_size=1, max_size=6), max_size=5),
    header=st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=6),
)
def test_arbitrary_csv(channel: Channel, rows: list[list[str]], header: list[str]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    check(channel, buffer.getvalue().encode(), "text/csv")


def _mutate_json(value: Any, rng: random.Random, replacement: Any) -> Any:
    """Replace or delete one random node of a JSON document."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        if rng.random() < 0.3:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate_json(value[key], rng, replacement)}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_json(value[index], rng, replacement), *value[index + 1 :]]
    return replacement


FIXTURES = all_payloads()


@pytest.mark.parametrize(("channel", "path"), FIXTURES, ids=[p.name for _c, p in FIXTURES])
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), replacement=json_values, noise=st.binary(min_size=1, max_size=8))
def test_mutated_fixtures(channel: Channel, path: Any, seed: int, replacement: Any, noise: bytes) -> None:
    rng = random.Random(seed)
    raw = path.read_bytes()
    content_type = content_type_of(path)
    if path.suffix == ".json":
        for _ in range(rng.randint(1, 3)):
            mutated = json.dumps(_mutate_json(json.loads(raw), rng, replacement)).encode()
            check(channel, mutated, content_type)
    position = rng.randrange(len(raw))
    check(channel, raw[:position] + noise + raw[position + len(noise) :], content_type)  # overwrite bytes
    check(channel, raw[:position], content_type)  # truncated
