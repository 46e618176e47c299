"""Website usage (policy section 2): Segment-style analytics events, of identified and of anonymous visitors.

``{"type": "page"|"track"|"identify", "event", "anonymousId", "userId", "timestamp", "properties": {...},
"context": {"ip", "userAgent", "page": {"url"}, "traits": {...}, "consent": {...}}, "traits": {...}}``, or
``{"batch": [...]}``.

An event that names a person (an e-mail or phone in traits, or an e-mail as userId) is that person's, keyed by
their subject key; its ``anonymousId`` (the visitor's cookie id) goes with it as the visitor key, which links the
visitor's anonymous history to the person. An event with only an ``anonymousId`` is the anonymous visitor's, keyed
by the visitor key (an HMAC of the cookie id: the id itself is kept nowhere but in the sealed raw payload). Whether
it may be kept is the chain's decision (the visitor's consent, from the policy file), not the adapter's: the
adapter records the consent-manager choices the event carries (``cookie_consent``), Segment's
``context.consent.categoryPreferences`` and RudderStack's ``context.consentManagement``. An event with neither is
refused ``no_identity``.
"""

from __future__ import annotations

from typing import Any

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields
from pipeline.sources.base import (
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    build_person,
    dig,
    json_type,
    load_json,
    make_event,
    obj,
    parse_timestamp,
    require_events,
    require_object,
    text_of,
    visitor_key_of,
)
from pipeline.sources.event import collect_all

#: ``text/plain``: JSON labelled as plain text, as ``navigator.sendBeacon`` with a string and some relays send it.
CONTENT_TYPES = frozenset({"application/json", "text/plain"})


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    data = require_object(load_json(raw))
    batch = data.get("batch")
    if batch is not None:
        if not isinstance(batch, list):
            raise SourceError("unexpected_shape", "batch", f"'batch' must be an array, not {json_type(batch)}")
        people = [(i, item) for i, item in enumerate(batch) if not _group_call(item)]
        if batch and not people:
            raise NothingToTake("group_call", _GROUP_CALL)
        return collect_all([(f"batch[{i}].", _builder(item)) for i, item in people], ctx)
    if _group_call(data):
        raise NothingToTake("group_call", _GROUP_CALL)
    return require_events([_builder(data)(ctx, 0, "")])


_GROUP_CALL = "an analytics group call: its traits describe an account (a company), not a person"


def _group_call(item: Any) -> bool:
    """Segment's ``group`` call, whose traits (name, e-mail, phone) are the account's: no person's event."""
    return isinstance(item, dict) and item.get("type") == "group"


def _reserved(traits: Any) -> list[tuple[str, Any]]:
    """Segment's reserved traits that are not plain field names: ``title`` (the job title), ``company.name`` and
    ``address.city``/``state``/``country``/``street`` (the spec's nested objects, RudderStack's too). Traits only: a
    page's ``properties.title`` is the page's."""
    traits = obj(traits)
    company, address = obj(traits.get("company")), obj(traits.get("address"))
    return [
        ("position", traits.get("title")),
        ("company", company.get("name")),
        ("location", address.get("city") or address.get("state")),
        ("country", address.get("country")),
        ("company_address", address.get("street")),
    ]


def _builder(item: Any) -> Any:
    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        if not isinstance(item, dict):
            raise SourceError("unexpected_shape", prefix.rstrip(".") or None, "an analytics event must be an object")
        problems: list[Problem] = []
        traits: dict[str, Any] = {}
        for source in (dig(item, "context", "traits"), item.get("traits")):
            if isinstance(source, dict):
                for key, value in source.items():
                    traits.setdefault(key, value)
        reserved = [
            pair for source in (dig(item, "context", "traits"), item.get("traits")) for pair in _reserved(source)
        ]
        values = fields.collect([*traits.items(), *reserved])
        user_id = text_of(item.get("userId"))
        if "email" not in values and user_id and "@" in user_id:
            values["email"] = user_id
        properties = obj(item.get("properties"))
        for key in ("email", "phone"):  # a page's or product's name, title and URL in properties are not the person's
            for found in (item.get(key), properties.get(key)):
                if key not in values and text_of(found):
                    values[key] = found
        person, subject = build_person(values, ctx, problems, prefix=prefix + "traits.")
        named = "email" in values or "phone" in values  # names a person, even with an address that is not valid
        visitor_id = next((item[k] for k in _VISITOR_ID_KEYS if text_of(item.get(k)) is not None), None)
        visitor = visitor_key_of(visitor_id, ctx, problems, prefix + "anonymousId", fatal=not named)
        if not named:  # the anonymous visitor's own event, or nobody's
            problems[:] = [p for p in problems if p.reason != "no_identity"]
            if visitor is not None:
                subject = visitor
            elif visitor_id is None:
                problems.append(
                    Problem(
                        "no_identity",
                        prefix + "anonymousId",
                        "neither an e-mail address or phone number in traits nor an anonymousId (the visitor's id)",
                    )
                )
        page_url = text_of(dig(item, "properties", "url")) or text_of(dig(item, "context", "page", "url"))
        kind_name = text_of(item.get("type")) or "page"
        event_name = (
            text_of(item.get("event")) or text_of(item.get("name")) or text_of(dig(item, "properties", "title"))
        )
        interaction = {
            "kind": InteractionKind.PAGE_VIEW,
            "subject": clean_text(f"{kind_name}: {event_name}" if event_name else kind_name, 1000),
            "page_url": clean_text(page_url, 2000),
        }
        provenance = {
            "ip": clean_text(text_of(dig(item, "context", "ip")), 64),
            "user_agent": clean_text(text_of(dig(item, "context", "userAgent")), 1000),
            "visitor_key": visitor,
            "cookie_consent": cookie_consent(item),
        }
        occurred = parse_timestamp(item.get("timestamp") or item.get("sentAt"), prefix + "timestamp", problems)
        return make_event(
            ctx,
            index,
            (person, subject),
            interaction,
            provenance=provenance,
            occurred_at=occurred,
            problems=problems,
            prefix=prefix,
        )

    return build


#: Where trackers put the visitor's cookie id: Segment and RudderStack ``anonymousId``, Snowplow ``domain_userid``.
_VISITOR_ID_KEYS = ("anonymousId", "anonymous_id", "domain_userid")

_GRANTED = {
    "true": True,
    "granted": True,
    "yes": True,
    "1": True,
    "false": False,
    "denied": False,
    "no": False,
    "0": False,
}

#: At most this many consent categories are read from one event (consent managers define a handful).
MAX_CONSENT_CATEGORIES = 50


def cookie_consent(item: dict[str, Any]) -> dict[str, bool]:
    """The consent-manager choices an analytics event carries, category (lower case) -> granted.

    Segment: ``context.consent.categoryPreferences`` ``{"Analytics": true, ...}``; a flat ``context.consent``
    (``{"analytics_storage": "granted"}``, Google Consent Mode's words); RudderStack:
    ``context.consentManagement.allowedConsentIds`` / ``deniedConsentIds`` (OneTrust's ``C0002``, ...). A denial
    wins over a grant of the same category. Anything else is not a choice and is left out.
    """
    found: dict[str, bool] = {}

    def put(category: Any, granted: Any) -> None:
        name = text_of(category) if isinstance(category, str | int) else None
        value = granted if isinstance(granted, bool) else _GRANTED.get((text_of(granted) or "").lower())
        if name is None or value is None or len(name) > 100 or len(found) >= MAX_CONSENT_CATEGORIES:
            return
        key = name.lower()
        found[key] = found.get(key, True) and value

    consent = dig(item, "context", "consent")
    if isinstance(consent, dict):
        preferences = consent.get("categoryPreferences")
        for category, granted in (preferences if isinstance(preferences, dict) else consent).items():
            put(category, granted)
    managed = dig(item, "context", "consentManagement")
    if isinstance(managed, dict):
        for key, granted in (("allowedConsentIds", True), ("deniedConsentIds", False)):
            ids = managed.get(key)
            for category in ids if isinstance(ids, list) else ():
                put(category, granted)
    return found
