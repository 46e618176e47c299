"""The marketing choices a customer or attendee export records (Shopify, HubSpot, Salesforce, Zoho, Pipedrive,
Mailchimp's audience CSVs): a person who refused marketing in the system the file came from is never marketed to.

A refusal refuses every direct-marketing purpose the policy tags on those channels (``REFUSED``): the chain removes
each refused one (``consent.refusal_removes_direct_marketing``), so ``marketing_allowed`` is false. A consent is
recorded only where a column really says the person opted in, as ``import`` (recorded in another system: the policy
decides on which channels that counts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pipeline.models.common import Purpose
from pipeline.models.contact import Consent
from pipeline.sources import fields
from pipeline.sources.base import _DATE_VALUE, TICKED, Problem, checkbox_ticked, parse_timestamp, text_of

#: What an opt-out refuses: contact about other services (consent-based) and the information of interest a
#: legitimate interest would otherwise allow: both are direct marketing (policy ``purposes``).
REFUSED = (Purpose.FURTHER_CONTACT, Purpose.INFORMATION_OF_INTEREST)

#: A column that says when the person opted in (Mailchimp's ``OPTIN_TIME``): its date is a consent's.
_OPT_IN_TIME = re.compile(r"opt(?:ed)?_?in_(?:time|date|at|on)")
#: A column that dates the consent a tick beside it records ("Consent Date", "Marketing Consent Given At", Shopify's
#: "Email Marketing Consent Updated At", "Date of Consent"): the tick is a consent given then, not on import day.
_CONSENT_TIME = re.compile(
    r"(?:\w+_)?consent(?:ed)?(?:_given|_updated)?_(?:date|time|at|on|timestamp|datetime)|date_of_(?:\w+_)?consent"
)


def recorded_choices(pairs: Iterable[tuple[str, Any]], at: datetime) -> list[Consent]:
    """The choices an export's columns record; ``at`` dates one whose column gives no date (the record's time).

    - an opt-out column (``fields.is_opt_out_field``: "Email Opt Out", "Unsubscribed from all email", ``UNSUB_TIME``)
      that is set, true/yes/1 or the date it happened, is a refusal; false/no/empty is nothing;
    - a consent column (``fields.is_consent_field``) whose value names an opt-out ("Unsubscribed": Pipedrive's
      marketing status) or is a no ("Accepts Email Marketing: no": asked, the person declined) is a refusal; a tick
      ("yes", "Subscribed") is a consent, given when a consent-date column beside it says ("Consent Date":
      ``_CONSENT_TIME``), else at ``at``; so is an opt-in time (``OPTIN_TIME``), dated by it; any other date is no
      tick (``checkbox_ticked``).

    Refusals come after consents: of two choices at the same time, the refusal stands
    (``pipeline.models.contact.latest_choices``).
    """
    granted: list[Consent] = []
    refused: list[Consent] = []
    pairs = list(pairs)
    dated = next(
        (
            _when(text, at)
            for key, value in pairs
            if (text := text_of(value)) is not None
            and _DATE_VALUE.match(text)
            and _CONSENT_TIME.fullmatch(fields.normalize_key(key))
        ),
        at,
    )
    for key, value in pairs:
        text = text_of(value)
        if text is None or isinstance(value, dict | list):
            continue
        is_date = _DATE_VALUE.match(text) is not None
        if fields.is_opt_out_field(key):
            if value is True or text.lower() in TICKED or is_date:
                refused.extend(_refusal(_when(text, at) if is_date else at))
        elif fields.is_consent_field(key):
            if is_date:
                if _OPT_IN_TIME.fullmatch(fields.normalize_key(key)):
                    granted.append(_consent(_when(text, at)))
            elif fields.is_opt_out_value(text) or not checkbox_ticked(value):
                refused.extend(_refusal(at))
            else:
                granted.append(_consent(dated))
    return list({(c.purpose, c.granted, c.given_at): c for c in (*granted, *refused)}.values())


def _when(text: str, at: datetime) -> datetime:
    """The date a column gives, else ``at`` (a date leadpipe does not read is no reason to lose the choice)."""
    return parse_timestamp(text, "", list[Problem]()) or at


def _consent(at: datetime) -> Consent:
    return Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=at, method="import")


def _refusal(at: datetime) -> list[Consent]:
    return [Consent(purpose=purpose, granted=False, given_at=at, method="import") for purpose in REFUSED]
