"""Website usage: Segment-style analytics events of identified visitors."""

from __future__ import annotations

import pytest
from source_payloads import ctx_for, payload

from pipeline.models.common import InteractionKind
from pipeline.sources import SourceError, website


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("website", name)
    return website.parse(raw, ctx_for("website", raw, content_type))


def test_identified_page_view() -> None:
    [event] = parse("segment_page.json")
    assert event.interaction.kind is InteractionKind.PAGE_VIEW
    assert event.interaction.page_url == "https://www.example.com/pricing"
    assert event.person.email == "peter.lindqvist@example.fi"
    assert event.provenance.ip == "198.51.100.23"
    assert event.provenance.device_id == "507f191e810c19729de860ea"
    assert event.interaction.subject == "page: Pricing"


def test_batch_with_email_user_id_and_traits() -> None:
    track, identify = parse("segment_batch.json")
    assert track.person.email == "sara.lee@example.kr"
    assert identify.person.phone == "+12025550175"


def test_anonymous_page_view_is_refused_with_a_reason() -> None:
    with pytest.raises(SourceError) as err:
        parse("anonymous_page.json")
    assert err.value.reason == "no_identity"
