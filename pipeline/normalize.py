"""Pure normalisation shared by every source adapter: canonical e-mail and phone, and the subject key.

The subject key is an HMAC of the canonical identity under a secret pepper, so topics, the suppression list and
logs can name a person without carrying their address, and nobody without the pepper can reverse or guess it.
"""

from __future__ import annotations

import hashlib
import hmac

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class NormalizationError(ValueError):
    """A field that cannot be normalised; ``field`` names it, the message never quotes the value."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason


def canonical_email(value: str) -> str:
    """Syntax-checked (no DNS), local part kept, domain lowercased and IDNA-encoded (ASCII)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise NormalizationError("email", "invalid_email", str(exc).replace(value.strip(), "the address")) from None
    return f"{result.local_part}@{result.ascii_domain.lower()}"


def canonical_phone(value: str, default_region: str | None = None) -> str:
    """E.164. A number without a country prefix needs ``default_region`` (taken from the person's location)."""
    try:
        parsed = phonenumbers.parse(value, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException:
        raise NormalizationError(
            "phone",
            "invalid_phone",
            "not a phone number" + ("" if default_region else " (no country prefix and no known country)"),
        ) from None
    if not phonenumbers.is_possible_number(parsed):
        raise NormalizationError("phone", "invalid_phone", "not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def subject_key(pepper: bytes, *, email: str | None = None, phone: str | None = None) -> str:
    """Keyed hash of the canonical e-mail, or of the E.164 phone when there is no e-mail.

    Call with values already canonical. The e-mail is matched case-insensitively (mailboxes in practice are).
    """
    if email:
        material = b"email:" + email.lower().encode()
    elif phone:
        material = b"phone:" + phone.encode()
    else:
        raise NormalizationError("email", "no_identity", "an event needs an e-mail address or a phone number")
    return "sk_" + hmac.new(pepper, material, hashlib.sha256).hexdigest()[:40]
