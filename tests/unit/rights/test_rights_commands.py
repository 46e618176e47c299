import os
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from identity_helpers import person

from pipeline.crypto.sealing import Sealer
from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind
from pipeline.normalize import subject_key, visitor_key
from pipeline.rights.bodies import ExportDelivery, RectificationBody, RequestIdentity
from pipeline.rights.commands import (
    ChangeError,
    IdentityError,
    build_command,
    identify,
    named,
    visitor_subject,
)

PEPPER = b"pepper"
NOW = datetime(2025, 1, 31, 9, tzinfo=UTC)
D = person("dpo")


class DictKeys:
    """In-memory key provider: enough to prove what is sealed and what is not."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def active_key(self, scope: str) -> tuple[str, bytes]:
        key_id = f"{scope}#1"
        self.keys.setdefault(key_id, os.urandom(32))
        return key_id, self.keys[key_id]

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)


def test_identify_canonicalises_like_the_chain() -> None:
    assert identify(PEPPER, email="  Zoe@EXAMPLE.com ") == subject_key(PEPPER, email="Zoe@example.com")
    assert identify(PEPPER, phone="+44 20 7946 0958") == subject_key(PEPPER, phone="+442079460958")


def test_identify_needs_exactly_one_valid_identity() -> None:
    with pytest.raises(IdentityError, match="exactly one"):
        identify(PEPPER)
    with pytest.raises(IdentityError, match="exactly one"):
        identify(PEPPER, email="a@example.com", phone="+442079460958")
    with pytest.raises(IdentityError) as info:
        identify(PEPPER, email="not-an-address")
    assert info.value.field == "email" and "not-an-address" not in str(info.value)
    with pytest.raises(IdentityError) as info:
        identify(PEPPER, phone="12")
    assert info.value.field == "phone"


def test_a_website_visitor_is_identified_by_the_key_of_its_cookie_id() -> None:
    assert visitor_subject(PEPPER, " ajs-123 ") == visitor_key(PEPPER, "ajs-123")
    with pytest.raises(IdentityError) as info:
        visitor_subject(PEPPER, "not one")
    assert info.value.field == "visitor_id" and "not one" not in str(info.value)


def test_deadline_is_one_month_after_receipt() -> None:
    cmd = build_command(RightKind.ERASURE, "sk_x0000000", issued_by=person("dpo:anna"), now=NOW)
    assert cmd.due_at == datetime(2025, 2, 28, 9, tzinfo=UTC)
    assert cmd.sealed is None


def test_rectified_values_travel_sealed_with_the_subject_key() -> None:
    keys = DictKeys()
    sealer = Sealer(keys)
    cmd = build_command(
        RightKind.RECTIFICATION,
        "sk_x0000000",
        issued_by=person("dpo"),
        sealer=sealer,
        rectify={"last_name": "Kowalska", "position": " CTO "},
    )
    assert cmd.sealed is not None and cmd.sealed.key_id.startswith("subject:sk_x0000000#")
    assert "Kowalska" not in cmd.model_dump_json()
    body = sealer.open_model(cmd.sealed, RectificationBody)
    assert body.changes == {"last_name": "Kowalska", "position": "CTO"}


def test_unknown_fields_or_nothing_to_rectify_are_refused() -> None:
    sealer = Sealer(DictKeys())
    with pytest.raises(ValueError, match="shoe_size: not a rectifiable field"):
        build_command(RightKind.RECTIFICATION, "sk_x0000000", issued_by=D, sealer=sealer, rectify={"shoe_size": "9"})
    with pytest.raises(ValueError, match="at least one"):
        build_command(RightKind.RECTIFICATION, "sk_x0000000", issued_by=D, sealer=sealer, rectify={})


@pytest.mark.parametrize(("field", "limit"), [("last_name", 200), ("position", 300), ("skype_id", 100)])
def test_a_corrected_value_longer_than_the_crm_keeps_is_refused_naming_the_field(field: str, limit: int) -> None:
    """Accepted, it failed in the worker for good (the CRM's column is shorter) and the database's error, quoting the
    value, became the request's evidence."""
    sealer = Sealer(DictKeys())
    with pytest.raises(ChangeError, match=f"{field}: longer than {limit} characters") as refused:
        build_command(
            RightKind.RECTIFICATION, "sk_x0000000", issued_by=D, sealer=sealer, rectify={field: "Q" * (limit + 1)}
        )
    assert refused.value.field == field and "QQQ" not in str(refused.value)
    build_command(RightKind.RECTIFICATION, "sk_x0000000", issued_by=D, sealer=sealer, rectify={field: "Q" * limit})


def test_a_corrected_email_carries_the_new_key_in_clear_and_the_address_sealed() -> None:
    sealer = Sealer(DictKeys())
    new_key = subject_key(PEPPER, email="ada@new.example")
    cmd = build_command(
        RightKind.RECTIFICATION,
        "sk_x0000000",
        issued_by=D,
        sealer=sealer,
        rectify={"email": "ada@new.example"},
        new_subject_key=new_key,
        old_address="alias",
    )
    assert cmd.new_subject_key == new_key and "new.example" not in cmd.model_dump_json()
    body = sealer.open_model(cmd.sealed, RectificationBody)  # type: ignore[arg-type]
    assert body.new_email == "ada@new.example" and body.old_address == "alias"
    forget = build_command(
        RightKind.RECTIFICATION,
        "sk_x0000000",
        issued_by=D,
        sealer=sealer,
        rectify={"email": "a@b.co"},
        new_subject_key=new_key,
    )
    assert sealer.open_model(forget.sealed, RectificationBody).old_address == "forget"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the subject key of the new address"):
        build_command(RightKind.RECTIFICATION, "sk_x0000000", issued_by=D, sealer=sealer, rectify={"email": "a@b.co"})
    with pytest.raises(ValueError, match="old_address applies only"):
        build_command(
            RightKind.RECTIFICATION,
            "sk_x0000000",
            issued_by=D,
            sealer=sealer,
            rectify={"company": "X"},
            old_address="alias",
        )


def test_the_identity_the_dpo_gave_travels_sealed() -> None:
    sealer = Sealer(DictKeys())
    identity = named(email=" Ada@Example.COM ")
    assert identity == RequestIdentity(email="ada@example.com")
    cmd = build_command(RightKind.ERASURE, "sk_x0000000", issued_by=D, sealer=sealer, identity=identity)
    assert cmd.identity is not None and "example.com" not in cmd.model_dump_json()
    assert sealer.open_model(cmd.identity, RequestIdentity) == identity
    assert named(phone="020 7946 0958", region="GB") == RequestIdentity(phone="+442079460958")


def test_access_command_carries_a_sealed_password() -> None:
    sealer = Sealer(DictKeys())
    cmd = build_command(RightKind.ACCESS, "sk_x0000000", issued_by=D, sealer=sealer, password="p" * 20)
    assert cmd.sealed is not None and "ppppp" not in cmd.model_dump_json()
    assert sealer.open_model(cmd.sealed, ExportDelivery).password == "p" * 20
    generated = build_command(RightKind.ACCESS, "sk_x0000000", issued_by=D, sealer=sealer)
    assert generated.sealed is not None
    assert len(sealer.open_model(generated.sealed, ExportDelivery).password or "") >= 16


def test_commands_that_need_details_say_which() -> None:
    every = build_command(RightKind.CONSENT_WITHDRAWAL, "sk_x0000000", issued_by=D)
    assert every.purposes == ()  # no purpose named: every purpose resting on consent stops
    with pytest.raises(ValueError, match="expired interactions"):
        build_command(RightKind.RETENTION_EXPIRY, "sk_x0000000", issued_by=D)
    with pytest.raises(ValueError, match="sealer"):
        build_command(RightKind.ACCESS, "sk_x0000000", issued_by=D)
    ok = build_command(RightKind.CONSENT_WITHDRAWAL, "sk_x0000000", issued_by=D, purposes=[Purpose.FURTHER_CONTACT])
    assert ok.purposes == (Purpose.FURTHER_CONTACT,)
    ids = (uuid4(),)
    assert build_command(RightKind.RETENTION_EXPIRY, "sk_x0000000", issued_by=D, event_ids=ids).event_ids == ids
