"""The person fields a rectification may correct: the profile list of ``Person``, but the e-mail."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.models.contact import PROFILE_FIELDS, Person
from pipeline.rights.bodies import RECTIFIABLE_FIELDS, RectificationBody


def test_the_profile_is_every_single_valued_text_field_of_a_person() -> None:
    """A new text field on ``Person`` must be added to the profile list (and so to the CRM and rectification)."""
    text_fields = tuple(name for name, info in Person.model_fields.items() if info.annotation == str | None)
    assert text_fields == PROFILE_FIELDS


def test_the_body_takes_every_profile_field_but_the_email() -> None:
    others = [name for name in PROFILE_FIELDS if name != "email"]
    changes = dict.fromkeys(others, " x ")
    assert RectificationBody(changes=changes).changes == dict.fromkeys(others, "x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"changes\.email"):
        RectificationBody.model_validate({"changes": {"email": "new@example.com"}})
    schema = RectificationBody.model_json_schema()["properties"]["changes"]["propertyNames"]
    assert tuple(schema["enum"]) == RECTIFIABLE_FIELDS
