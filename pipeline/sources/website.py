"""Website usage (policy section 2): analytics events of identified visitors, Segment-style.

``{"type": "page"|"track"|"identify", "event", "anonymousId", "userId", "timestamp", "properties": {...},
"context": {"ip", "userAgent", "page": {"url"}, "traits": {...}}, "traits": {...}}``, or ``{"batch": [...]}``.

Only events that carry an identity (an e-mail or phone in traits, or an e-mail as userId) become contact events:
the pipeline keeps people, keyed by their e-mail or phone. Anonymous page views are refused with that reason
(``no_identity``), so an analytics feed sending them learns it from the answer instead of losing them silently.
"""

from __future__ import annotations

from typing import Any

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields
from pipeline.sources.base import (
    Problem,
    SourceContext,
    SourceError,
    build_person,
    dig,
    json_type,
    load_json,
    make_event,
    parse_timestamp,
    require_events,
    require_object,
    text_of,
)
from pipeline.sources.event import collect_all

CONTENT_TYPES = frozenset({"application/json"})


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    data = require_object(load_json(raw))
    batch = data.get("batch")
    if batch is not None:
        if not isinstance(batch, list):
            raise SourceError("unexpected_shape", "batch", f"'batch' must be an array, not {json_type(batch)}")
        return collect_all([(f"batch[{i}].", _builder(item)) for i, item in enumerate(batch)], ctx)
    return require_events([_builder(data)(ctx, 0, "")])


def _builder(item: Any) -> Any:
    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        if not isinstance(item, dict):
            raise SourceError("unexpected_shape", prefix.rstrip(".") or None, "an analytics event must be an object")
        problems: list[Problem] = []
        traits: dict[str, Any] = {}
        for source in (dig(item, "context", "traits"), item.get("traits"), item.get("properties")):
            if isinstance(source, dict):
                for key, value in source.items():
                    traits.setdefault(key, value)
        values = fields.collect(traits.items())
        user_id = text_of(item.get("userId"))
        if "email" not in values and user_id and "@" in user_id:
            values["email"] = user_id
        for key in ("email", "phone"):  # page URLs and titles in properties are not a person's fields
            if key not in values and text_of(item.get(key)):
                values[key] = item.get(key)
        person, subject = build_person(values, ctx, problems, prefix=prefix + "traits.")
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
            "device_id": clean_text(text_of(item.get("anonymousId")), 200),
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
