"""Chatbot conversations (policy section 4): Drift-style webhooks, Intercom's, LiveChat's, tawk.to's, Crisp's,
Freshchat's and Sunshine Conversations'; Landbot's and ManyChat's contact payloads.

Drift posts ``{"type": ..., "orgId": ..., "data": {...}}``; the conversation's captured contact attributes
(e-mail, phone, Skype ID, company, ...) sit under ``data.contact.attributes`` (or ``data.attributes`` for
``contact_identified``), the transcript under ``data.messages`` with authors of type contact / user / bot.
Message bodies are HTML; they are reduced to text. The website visitor's cookie id, when the chat passes it on (a
``visitor_id``/``anonymous_id`` attribute, or ``data.anonymousId``), links the visitor's browsing to the person.

Intercom's webhook (``{"type": "notification_event", "topic": ..., "data": {"item": ...}}``) and LiveChat's
(``{"action": ..., "payload": {"chat": ...}}``) are read into that same shape first (``_intercom``, ``_livechat``):
the person from the conversation's first author who is a user or lead (Intercom) or the chat's customer
(LiveChat), the transcript from the conversation's parts or the thread's message events; tawk.to's (``event``,
``property``) likewise: its visitor or a ticket's requester. A bot that posts the contact itself sends it as
``customer`` (Landbot) or as the payload's own fields (ManyChat's ``first_name``, ``email``, ``last_input_text``).
Crisp's (``website_id``, ``event``), Freshchat's (``actor``, ``action``) and Sunshine Conversations' (``app``,
``events``: one event per user who wrote) are read into it too, each recognised by its own top-level keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pipeline.models.common import InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent
from pipeline.normalize import ADDRESS_IN_TEXT, clean_text
from pipeline.sources import fields
from pipeline.sources.base import (
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    array,
    build_person,
    checkbox_ticked,
    dig,
    load_json,
    make_event,
    obj,
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
    "customer": "person",
    "user": "agent",
    "agent": "agent",
    "operator": "agent",
    "bot": "bot",
    "system": "bot",
}


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    payload = require_object(load_json(raw))
    if isinstance(payload.get("events"), list) and "app" in payload:  # Sunshine Conversations: one per user
        return [_chat(chat, prefix, ctx, index) for index, (chat, prefix) in enumerate(_sunshine(payload))]
    prefix = "data.contact.attributes."
    read = _intercom(payload) or _livechat(payload) or _tawk(payload) or _crisp(payload) or _freshchat(payload)
    if read is not None:
        payload, prefix = read
    return [_chat(payload, prefix, ctx, 0)]


def _chat(payload: dict[str, Any], prefix: str, ctx: SourceContext, index: int) -> ContactEvent:
    """One conversation's person and words, from a Drift-shaped payload (the other services' read into it)."""
    data = payload.get("data", payload)
    if not isinstance(data, dict):
        raise SourceError("unexpected_shape", "data", "'data' must be an object")
    _drift_notice(payload, data)
    problems: list[Problem] = []
    attributes = (
        dig(data, "contact", "attributes")
        or data.get("attributes")
        or data.get("contact")
        or data.get("customer")  # Landbot
        or _flat_contact(data)  # ManyChat's "full contact data"
        or _visitor(data)  # a chat's visitor object (Brevo, Zoho SalesIQ, Chatwoot)
    )
    if not isinstance(attributes, dict):
        raise SourceError("unexpected_shape", "data.contact.attributes", "the captured attributes must be an object")
    values = fields.collect(attributes.items())
    person, key = build_person(values, ctx, problems, prefix=prefix)

    transcript: list[dict[str, Any]] = []
    messages = data.get("messages", [])
    if messages == [] and isinstance(said := data.get("message"), dict):  # one message: a chat's first
        messages = [{"author": text_of(said.get("type")) or "contact", **said}]
    if messages == [] and (last_input := text_of(data.get("last_input_text"))) is not None:  # ManyChat
        messages = [{"author": "contact", "text": last_input}]
    if not isinstance(messages, list):
        problems.append(Problem("unexpected_shape", "data.messages", "the transcript must be a list of messages"))
        messages = []
    for position, item in enumerate(messages[:2000]):
        if not isinstance(item, dict):
            problems.append(Problem("unexpected_shape", f"data.messages[{position}]", "a message must be an object"))
            continue
        kind = (text_of(item.get("type")) or "").lower()  # Brevo's "visitor" / "agent"; Drift's is the message's
        author_type = (
            text_of(dig(item, "author", "type"))
            or text_of(item.get("author"))
            or (kind in _AUTHORS and kind)
            or "contact"
        )
        body = item.get("body", item.get("text"))
        text = clean_text(html_to_text(body) if isinstance(body, str) else text_of(body), 20_000)
        if text is None:
            continue  # an empty bubble (typing indicator, attachment-only) carries nothing to keep
        at = parse_timestamp(item.get("createdAt", item.get("at")), f"data.messages[{position}].createdAt", problems)
        transcript.append({"at": at, "author": _AUTHORS.get(author_type.lower(), "person"), "text": text})

    when = [("data.createdAt", data.get("createdAt")), ("createdAt", payload.get("createdAt"))]
    when += [(f"data.{k}", data.get(k)) for k in _WHEN] + [(k, payload.get(k)) for k in _WHEN]
    at_field, at = next(((f, v) for f, v in when if v is not None and v != ""), ("data.createdAt", None))
    occurred = parse_timestamp(at, at_field, problems)
    if occurred is None:  # Brevo dates its messages only
        occurred = next((t["at"] for t in transcript if t["at"] is not None), None)
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
    visitor = visitor_key_of(visitor_id, ctx, problems, prefix + "visitor_id", fatal=False)
    bot_id = text_of(data.get("playbookId")) or text_of(data.get("inboxId")) or text_of(payload.get("orgId"))
    if key is None and (said := payload.get("_anonymous")) is not None:  # a chat that names its visitor by an id only
        problems[:] = [p for p in problems if p.reason != "no_identity"]
        problems.append(Problem("no_identity", prefix + "email", str(said)))
    return make_event(
        ctx,
        index,
        (person, key),
        interaction,
        provenance={"bot_id": clean_text(bot_id, 200), "visitor_key": visitor},
        consents=consents,
        occurred_at=occurred,
        problems=problems,
    )


#: Where a chat service dates its webhook when not in ``createdAt``: Crisp's ``timestamp`` (ms), ManyChat's
#: ``last_interaction`` (when the person last wrote: its ``last_input_text``).
_WHEN = ("timestamp", "last_interaction")


def _drift_notice(payload: dict[str, Any], data: dict[str, Any]) -> None:
    """Raise NothingToTake for Drift's notices that name no person: a conversation's status changed, or a
    ``new_message`` an agent or bot wrote (a Drift ``user`` is the company's agent)."""
    kind = text_of(payload.get("type"))
    if kind == "conversation_status_updated":
        raise NothingToTake("chat_status", "Drift's notice of a conversation's status: no contact in it")
    author = (text_of(dig(data, "author", "type")) or "").lower()
    if kind == "new_message" and _AUTHORS.get(author, "person") != "person":
        raise NothingToTake("agent_message", f"Drift's notice of a message by the {_AUTHORS[author]}: no contact in it")


def _flat_contact(data: dict[str, Any]) -> dict[str, Any]:
    """A bot's contact given as the payload's own fields (ManyChat's "full contact data": ``first_name``, ``email``,
    ``phone``, ``custom_fields``), when they name an e-mail or phone field; else nothing."""
    if not any(fields.canonical_field(k) in ("email", "phone") for k in data):
        return {}
    custom = obj(data.get("custom_fields"))
    return {**custom, **{k: v for k, v in data.items() if not isinstance(v, dict | list)}}


#: Where a chat service's webhook puts the person it talks to. Not ``user`` or ``sender``: in some services that is
#: the company's agent (Drift's users are), and an agent is no lead.
_VISITOR_KEYS = ("visitor", "lead", "person", "requester")
#: Where such an object keeps the person's fields besides its own (Brevo's contact attributes, custom ones).
_VISITOR_FIELDS = ("attributes", "contact_attributes", "custom_attributes", "properties", "info")


def _visitor(data: dict[str, Any]) -> dict[str, Any]:
    """The person a chat service's webhook names as its visitor (``visitor``, ``user``, ``lead``, ...), with the
    fields it keeps under ``attributes`` and the like (Brevo's ``EMAIL``, ``SMS``), when they name an e-mail or phone
    field; else nothing."""
    for name in _VISITOR_KEYS:
        found = obj(data.get(name)) or obj(dig(data, "entity", name))  # Zoho SalesIQ: the event's entity's visitor
        merged = {k: v for k, v in found.items() if not isinstance(v, dict | list)}
        for inner in _VISITOR_FIELDS:
            merged.update({k: v for k, v in obj(found.get(inner)).items() if not isinstance(v, dict | list)})
        if any(fields.canonical_field(k) in ("email", "phone") for k in merged):
            return merged
    return {}


# ---- Intercom, LiveChat and tawk.to, read into the Drift shape ------------------------------------------------------

#: Intercom's author types: ``user`` and ``lead`` are the person (in Drift a ``user`` is an agent).
_INTERCOM_AUTHORS = {"user": "contact", "lead": "contact", "contact": "contact", "admin": "agent", "team": "agent"}


#: Intercom's contact topics that bring a new contact (a lead who signs up becomes a user); the others (deleted,
#: archived, unsubscribed, tagged, updated...) change one already known, and an unsubscribe is never a lead.
_INTERCOM_NEW_CONTACT = frozenset(
    {"contact.created", "contact.user.created", "contact.lead.created", "contact.lead.signed_up", "contact.signed_up"}
)


def _intercom(payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """An Intercom conversation or contact notification as a Drift-shaped payload, or None when it is not one."""
    item = dig(payload, "data", "item")
    if payload.get("type") == "notification_event" and payload.get("topic") == "ping":
        raise NothingToTake("webhook_check", "Intercom's ping of the webhook: no contact in it")
    if payload.get("type") != "notification_event" or not isinstance(item, dict):
        return None
    topic = text_of(payload.get("topic"))
    if topic is not None and topic.startswith("conversation.admin."):  # replied, closed, assigned, initiated, ...
        raise NothingToTake("agent_message", "Intercom's notice of what an agent did: no new contact in it")
    if item.get("type") == "contact":  # contact.user.created, contact.lead.created, ...
        if topic is not None and topic not in _INTERCOM_NEW_CONTACT:  # deleted, archived, unsubscribed, tagged...
            reason = "intercom_unsubscribe" if topic == "contact.unsubscribed" else "intercom_contact_change"
            raise NothingToTake(reason, "Intercom's notice of a change to a known contact: no new one")
        location = obj(item.get("location"))
        attributes = {
            **obj(item.get("custom_attributes")),
            **{k: item.get(k) for k in ("email", "phone", "name") if item.get(k) is not None},
            **{k: location.get(k) for k in ("city", "country") if location.get(k) is not None},
        }
        data = {"attributes": attributes, "createdAt": item.get("created_at")}
        return {"type": topic, "data": data, "orgId": payload.get("app_id")}, "data.item."
    source = obj(item.get("source"))
    said = [
        source,
        *(part for part in array(dig(item, "conversation_parts", "conversation_parts")) if isinstance(part, dict)),
    ]
    messages: list[dict[str, Any]] = []
    person: dict[str, Any] = {}
    for part in said:
        author = obj(part.get("author"))
        kind = _INTERCOM_AUTHORS.get(text_of(author.get("type")) or "", "bot")
        if kind == "contact" and not person:
            person = {k: author[k] for k in ("email", "name") if author.get(k) is not None}
        at = part.get("created_at", item.get("created_at"))
        messages.append({"author": {"type": kind}, "body": part.get("body"), "createdAt": at})
    data = {
        "contact": {"attributes": person},
        "messages": messages,
        "createdAt": item.get("created_at"),
        "url": source.get("url"),
    }
    return {"type": topic, "data": data, "orgId": payload.get("app_id")}, "data.item.source.author."


#: LiveChat's notices that name no person: a chat closed, or one event of a chat (an agent's message, mostly) with
#: only its author's id; the person comes with ``incoming_chat``.
_LIVECHAT_NOTICES = {"chat_deactivated": "chat_status", "incoming_event": "chat_event"}


def _livechat(payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A LiveChat webhook (``incoming_chat``, ``chat_deactivated``, ...) as a Drift-shaped payload, or None."""
    chat = dig(payload, "payload", "chat")
    action = payload.get("action")
    if isinstance(action, str) and action in _LIVECHAT_NOTICES and isinstance(payload.get("payload"), dict):
        raise NothingToTake(_LIVECHAT_NOTICES[action], f"LiveChat's {action} notice: no contact in it")
    if not isinstance(action, str) or not isinstance(chat, dict):
        return None
    users = [u for u in array(chat.get("users")) if isinstance(u, dict)]
    customer = next((u for u in users if u.get("type") == "customer"), {})
    kinds = {text_of(u.get("id")): "contact" if u.get("type") == "customer" else "agent" for u in users}
    thread = obj(chat.get("thread"))
    threads = [thread, *(t for t in array(chat.get("threads")) if isinstance(t, dict))]
    messages = [
        {
            "author": {"type": kinds.get(text_of(e.get("author_id")), "bot")},
            "body": e.get("text"),
            "at": e.get("created_at"),
        }
        for t in threads
        for e in array(t.get("events"))
        if isinstance(e, dict) and e.get("type") == "message"
    ]
    given = {k: v for entry in array(customer.get("session_fields")) for k, v in obj(entry).items()}
    attributes = {**given, **{k: customer.get(k) for k in ("email", "name") if customer.get(k) is not None}}
    data = {
        "contact": {"attributes": attributes},
        "messages": messages,
        "createdAt": thread.get("created_at"),
        "url": next((page.get("url") for page in map(obj, array(dig(customer, "last_visit", "last_pages")))), None),
    }
    return {"type": payload.get("action"), "data": data, "orgId": payload.get("organization_id")}, "payload.chat.users."


#: tawk.to's author codes in a transcript: visitor, agent, system.
_TAWK_AUTHORS = {"v": "contact", "a": "agent", "s": "bot"}


def _tawk(payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A tawk.to webhook (``chat:start``, ``chat:end``, ``chat:transcript_created``, ``ticket:create``) as a
    Drift-shaped payload, or None: the visitor (or a ticket's requester) and the chat's or ticket's words."""
    event = text_of(payload.get("event")) or ""
    if not event.startswith(("chat:", "ticket:")) or not isinstance(payload.get("property"), dict):
        return None
    chat = obj(payload.get("chat"))
    visitor = obj(payload.get("visitor")) or obj(chat.get("visitor")) or obj(payload.get("requester"))
    messages: list[dict[str, Any]] = [
        {
            "author": {"type": _TAWK_AUTHORS.get(text_of(dig(m, "sender", "t")) or "", "contact")},
            "body": m.get("msg"),
            "at": m.get("time"),
        }
        for m in array(chat.get("messages"))
        if isinstance(m, dict)
    ]
    said = obj(payload.get("message"))
    if said and text_of(dig(said, "sender", "type")) in (None, "visitor"):
        messages.append({"author": {"type": "contact"}, "body": said.get("text"), "at": payload.get("time")})
    ticket = obj(payload.get("ticket"))
    if text_of(ticket.get("message")):
        messages.append({"author": {"type": "contact"}, "body": ticket.get("message"), "at": payload.get("time")})
    attributes = {k: visitor.get(k) for k in ("name", "email", "phone", "city", "country") if visitor.get(k)}
    data = {"contact": {"attributes": attributes}, "messages": messages, "createdAt": payload.get("time")}
    prefix = "requester." if payload.get("requester") else "visitor."
    return {"type": event, "data": data, "orgId": dig(payload, "property", "id")}, prefix


# ---- Crisp, Freshchat and Sunshine Conversations, read into the Drift shape -----------------------------------------


def _typed_address(text: str | None) -> str | None:
    """The e-mail address a visitor wrote in a message to be reached at, the sentence's full stop left out."""
    found = ADDRESS_IN_TEXT.search(text) if text else None
    return found.group(0).rstrip(".") if found is not None else None


#: Crisp's events that give the visitor's e-mail or phone, by the field of ``data`` that holds it.
_CRISP_GIVEN = {"session:set_email": "email", "session:set_phone": "phone"}


def _crisp(payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A Crisp webhook (``website_id``, ``event``, ``data``, ``timestamp``) as a Drift-shaped payload, or None.

    ``message:send`` is what the visitor wrote (``data.from`` ``user``; ``data.content``, ``data.user.nickname``):
    Crisp names the visitor by a session id, so the identity is an address they wrote, else it is refused saying
    so; ``session:set_email`` and ``session:set_phone`` give the visitor's e-mail or phone. What the operator wrote
    (``message:received``) and Crisp's other events are answered ``ignored``."""
    event = text_of(payload.get("event")) or ""
    data = payload.get("data")
    if "website_id" not in payload or ":" not in event or not isinstance(data, dict):
        return None
    user = obj(data.get("user"))
    nickname = text_of(user.get("nickname")) or text_of(data.get("nickname"))
    if nickname is not None and nickname.casefold().startswith("visitor"):
        nickname = None  # Crisp's name for a visitor who gave none
    attributes: dict[str, Any] = {"name": nickname} if nickname else {}
    when = data.get("timestamp", payload.get("timestamp"))
    org = text_of(payload.get("website_id"))
    if event in _CRISP_GIVEN:
        attributes[_CRISP_GIVEN[event]] = data.get(_CRISP_GIVEN[event])
        return {"type": event, "data": {"attributes": attributes, "createdAt": when}, "orgId": org}, "data."
    if event == "message:received" or (event == "message:send" and text_of(data.get("from")) not in (None, "user")):
        raise NothingToTake("agent_message", "Crisp's notice of a message the operator sent: no new contact in it")
    if event != "message:send":
        raise NothingToTake("chat_event", f"Crisp's {event} event: no message from a visitor")
    content = data.get("content")
    kind = text_of(data.get("type")) or "text"
    text = text_of(content) if isinstance(content, str) else f"[{kind}]"
    if (typed := _typed_address(text)) is not None:
        attributes["email"] = typed
    said = {"author": {"type": "contact"}, "body": text, "createdAt": when}
    chat = {"contact": {"attributes": attributes}, "messages": [said], "createdAt": when}
    anonymous = "Crisp names the visitor by a session id only: an e-mail comes with session:set_email, or one typed"
    return {"type": event, "data": chat, "orgId": org, "_anonymous": anonymous}, "data.user."


def _freshchat(payload: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A Freshchat webhook (``actor``, ``action``, ``action_time``, ``data``) as a Drift-shaped payload, or None.

    ``message_create`` by a ``user`` is what the person wrote (``data.message.message_parts``); Freshchat names them
    by an id only, so the identity is an address they wrote, else it is refused saying so. An agent's or bot's
    message, and the conversation's assignment, resolution or reopening, are answered ``ignored``."""
    actor = payload.get("actor")
    action = payload.get("action")
    if not isinstance(actor, dict) or not isinstance(action, str) or not isinstance(payload.get("data"), dict):
        return None
    if action != "message_create":
        raise NothingToTake("chat_event", f"Freshchat's {action} notice: no message from a person")
    message = obj(dig(payload, "data", "message"))
    if (text_of(message.get("actor_type")) or text_of(actor.get("actor_type"))) != "user":
        raise NothingToTake("agent_message", "Freshchat's notice of a message an agent or bot sent: no new contact")
    words: list[str] = []
    for part in map(obj, array(message.get("message_parts"))):
        said = text_of(dig(part, "text", "content"))
        words.append(said or next((f"[{kind}]" for kind in part), ""))
    text = "\n".join(word for word in words if word) or None
    attributes = {"email": typed} if (typed := _typed_address(text)) is not None else {}
    when = message.get("created_time") or payload.get("action_time")
    said_by = {"author": {"type": "contact"}, "body": text, "createdAt": when}
    chat = {"contact": {"attributes": attributes}, "messages": [said_by], "createdAt": when}
    anonymous = "Freshchat names the person by an id only: an e-mail comes from one they wrote"
    return {"type": action, "data": chat, "orgId": message.get("app_id"), "_anonymous": anonymous}, "actor."


def _sunshine(payload: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """A Sunshine Conversations (Zendesk) webhook's ``events``: per user who wrote (``conversation:message`` by an
    author of type ``user``), a Drift-shaped payload: the person from the author's user profile (``givenName``,
    ``surname``, ``email``; sent when the webhook includes the full user) or a form they answered (``formResponse``:
    an ``email`` field), their messages' text. The business's messages and the other events are answered
    ``ignored``."""
    users: dict[str, list[tuple[dict[str, Any], int]]] = {}
    skipped = "chat_event"
    for position, item in enumerate(payload["events"]):
        message = obj(dig(item, "payload", "message"))
        if dig(item, "type") != "conversation:message":
            continue
        author = obj(message.get("author"))
        if author.get("type") != "user":
            skipped = "agent_message"
            continue
        who = text_of(author.get("userId")) or text_of(dig(author, "user", "id")) or ""
        users.setdefault(who, []).append((obj(item), position))
    if not users:
        raise NothingToTake(skipped, "a Sunshine Conversations notice with no message from a user: no contact")
    out: list[tuple[dict[str, Any], str]] = []
    for said in users.values():
        attributes: dict[str, Any] = {}
        messages: list[dict[str, Any]] = []
        for item, _position in said:
            message = obj(dig(item, "payload", "message"))
            author = obj(message.get("author"))
            profile = obj(dig(author, "user", "profile"))
            given = {"first_name": profile.get("givenName"), "last_name": profile.get("surname")}
            given |= {"email": profile.get("email")}
            if (shown := text_of(author.get("displayName"))) and not shown.casefold().startswith("web user"):
                given["name"] = shown  # not the name Sunshine makes up for an anonymous web visitor
            content = obj(message.get("content"))
            lines = [text_of(content.get("text"))]
            for answer in map(obj, array(content.get("fields"))):  # a form's answers
                kind = text_of(answer.get("type")) or ""
                value = text_of(answer.get(kind)) if kind in ("email", "text") else None
                if kind == "email" and value and not text_of(given.get("email")):
                    given["email"] = value
                lines.append(f"{text_of(answer.get('label')) or kind}: {value}" if value else None)
            text = "\n".join(line for line in lines if line) or f"[{text_of(content.get('type')) or 'message'}]"
            if not given.get("email") and (typed := _typed_address(text)) is not None:
                given["email"] = typed
            for name, value in given.items():
                if text_of(value) is not None:
                    attributes.setdefault(name, value)
            at = message.get("received") or item.get("createdAt")
            messages.append({"author": {"type": "contact"}, "body": text, "createdAt": at})
        chat = {"contact": {"attributes": attributes}, "messages": messages, "createdAt": messages[0]["createdAt"]}
        anonymous = "Sunshine names the user by an id only: an e-mail comes from their profile, a form or a message"
        read = {
            "type": "conversation:message",
            "data": chat,
            "orgId": dig(payload, "app", "id"),
            "_anonymous": anonymous,
        }
        out.append((read, f"events[{said[0][1]}].payload.message.author.user.profile."))
    return out
