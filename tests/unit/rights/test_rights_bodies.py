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


def test_the_body_takes_every_profile_field_the_email_included_but_never_clears_the_email() -> None:
    changes = dict.fromkeys(PROFILE_FIELDS, " x ")
    assert RectificationBody(changes=changes).changes == dict.fromkeys(PROFILE_FIELDS, "x")  # type: ignore[arg-type]
    corrected = RectificationBody.model_validate({"changes": {"email": "new@example.com"}, "old_address": "alias"})
    assert corrected.new_email == "new@example.com" and corrected.old_address == "alias"
    with pytest.raises(ValidationError, match="cannot be cleared, only corrected"):
        RectificationBody.model_validate({"changes": {"email": None}})
    with pytest.raises(ValidationError, match="old_address"):
        RectificationBody.model_validate({"changes": {"email": "n@example.com"}, "old_address": "keep"})
    schema = RectificationBody.model_json_schema()["properties"]["changes"]["propertyNames"]
    assert tuple(schema["enum"]) == RECTIFIABLE_FIELDS == PROFILE_FIELDS
