"""Chatbot conversations (policy section 4), as a Drift-style webhook.

Drift posts ``{"type": ..., "orgId": ..., "data": {...}}``; the conversation's captured contact attributes
(e-mail, phone, Skype ID, company, ...) sit under ``data.contact.attributes`` (or ``data.attributes`` for
``contact_identified``), the transcript under ``data.messages`` with authors of type contact / user / bot.
Message bodies are HTML; they are reduced to text. The website visitor's cookie id, when the chat passes it on (a
``visitor_id``/``anonymous_id`` attribute, or ``data.anonymousId``), links the visitor's browsing to the person.
"""

from __future__ import annotations

from typing import Any, Literal

from pipeline.models.common import InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields
from pipeline.sources.base import (
    Problem,
    SourceContext,
    SourceError,
    build_person,
    checkbox_ticked,
    dig,
    load_json,
    make_event,
    parse_timestamp,
    require_object,
    text_of,
    visitor_key_of,
)
from pipeline.sources.html import html_to_text

CONTENT_TYPES = frozenset({"application/json"})

_AUTHORS: dict[str, Literal["person", "agent", "bot"]] = {
    "contact": "person",
    "visitor": "person",
    "lead": "person",
    "end_user": "person",
    "user": "agent",
    "agent": "agent",
    "operator": "agent",
    "bot": "bot",
    "system": "bot",
}


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    payload = require_object(load_json(raw))
    data = payload.get("data", payload)
    if not isinstance(data, dict):
        raise SourceError("unexpected_shape", "data", "'data' must be an object")
    problems: list[Problem] = []
    attributes = dig(data, "contact", "attributes") or data.get("attributes") or data.get("contact") or {}
    if not isinstance(attributes, dict):
        raise SourceError("unexpected_shape", "data.contact.attributes", "the captured attributes must be an object")
    values = fields.collect(attributes.items())
    person, key = build_person(values, ctx, problems, prefix="data.contact.attributes.")

    transcript: list[dict[str, Any]] = []
    messages = data.get("messages", [])
    if not isinstance(messages, list):
        problems.append(Problem("unexpected_shape", "data.messages", "the transcript must be a list of messages"))
        messages = []
    for position, item in enumerate(messages[:2000]):
        if not isinstance(item, dict):
            problems.append(Problem("unexpected_shape", f"data.messages[{position}]", "a message must be an object"))
            continue
        author_type = text_of(dig(item, "author", "type")) or text_of(item.get("author")) or "contact"
        body = item.get("body", item.get("text"))
        text = clean_text(html_to_text(body) if isinstance(body, str) else text_of(body), 20_000)
        if text is None:
            continue  # an empty bubble (typing indicator, attachment-only) carries nothing to keep
        at = parse_timestamp(item.get("createdAt", item.get("at")), f"data.messages[{position}].createdAt", problems)
        transcript.append({"at": at, "author": _AUTHORS.get(author_type.lower(), "person"), "text": text})

    occurred = parse_timestamp(data.get("createdAt") or payload.get("createdAt"), "data.createdAt", problems)
    first_words = next((t["text"] for t in transcript if t["author"] == "person"), None)
    consents: list[Consent] = []
    for name, value in attributes.items():
        if fields.is_consent_field(name) and checkbox_ticked(value):
            consents.append(
                Consent(
                    purpose=Purpose.FURTHER_CONTACT,
                    granted=True,
                    given_at=occurred or ctx.received_at,
                    method="chat_answer",
                    wording=None,
                )
            )
            break
    interaction = {
        "kind": InteractionKind.CHAT,
        "subject": clean_text(text_of(payload.get("type")), 1000),
        "message": clean_text(first_words, 50_000),
        "transcript": tuple(transcript),
        "page_url": clean_text(text_of(dig(data, "conversation", "url")) or text_of(data.get("url")), 2000),
    }
    visitor_id = values.get("visitor_id") or data.get("anonymousId") or data.get("visitorId")
    visitor = visitor_key_of(visitor_id, ctx, problems, "data.contact.attributes.visitor_id", fatal=False)
    bot_id = text_of(data.get("playbookId")) or text_of(data.get("inboxId")) or text_of(payload.get("orgId"))
    return [
        make_event(
            ctx,
            0,
            (person, key),
            interaction,
            provenance={"bot_id": clean_text(bot_id, 200), "visitor_key": visitor},
            consents=consents,
            occurred_at=occurred,
            problems=problems,
        )
    ]
