"""Messengers and phone (policy section 5): chat and call logs from Skype, Viber, WhatsApp, Telegram and telephony.

Recognised shapes, by their own markers:

- WhatsApp Cloud API webhooks (``"object": "whatsapp_business_account"``): one event per contact in the batch;
- Telegram Bot API updates (``update_id``): the sender's handle, and the phone when they shared their contact;
- Viber REST bot callbacks (``event`` + ``sender``);
- leadpipe's call/chat log (``platform`` + ``contact``, or a list of them) for Skype exports, PBX and call trackers:
  ``{"platform", "type": "call"|"chat", "contact": {...}, "started_at", "duration_s", "recording_ref", "messages"}``;
- Twilio's webhooks (a form post): an incoming SMS or WhatsApp message (``MessageSid``, ``From``, ``Body``,
  ``ProfileName``) or an incoming call (``CallSid``); its status callbacks are no contact;
- a phone system's or call tracker's call log as CSV, row by row (``_call_row``).

Telegram and Viber do not share a phone number unless the person sends their contact card; without an e-mail or
phone there is no identity, and the rejection says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields, formdata, tabular
from pipeline.sources.base import (
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    array,
    build_person,
    dig,
    json_type,
    load_json,
    make_event,
    obj,
    parse_timestamp,
    require_events,
    text_of,
)

CONTENT_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"}) | tabular.CSV_TYPES

PLATFORMS = ("skype", "viber", "whatsapp", "telegram", "phone", "sms", "widget")

_AUTHOR: dict[str, Literal["person", "agent", "bot"]] = {
    "contact": "person",
    "customer": "person",
    "caller": "person",
    "them": "person",
    "in": "person",
    "inbound": "person",
    "agent": "agent",
    "operator": "agent",
    "us": "agent",
    "out": "agent",
    "outbound": "agent",
    "bot": "bot",
}


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    if ctx.content_type == "application/x-www-form-urlencoded":
        return [_twilio(dict(formdata.urlencoded_pairs(raw, ctx.charset)), ctx)]
    if ctx.content_type in tabular.CSV_TYPES:
        rows = tabular.read_csv(raw, ctx.charset)
        return require_events([_log(_call_row(row), ctx, i, f"row {line}.") for i, (line, row) in enumerate(rows)])
    data = load_json(raw)
    if isinstance(data, list):
        return require_events([_log(item, ctx, i, f"[{i}].") for i, item in enumerate(data)])
    if not isinstance(data, dict):
        raise SourceError(
            "unexpected_shape", None, f"the payload must be a JSON object or array, not {json_type(data)}"
        )
    if data.get("object") == "whatsapp_business_account":
        return _whatsapp(data, ctx)
    if "update_id" in data:
        return [_telegram(data, ctx)]
    if "event" in data and ("sender" in data or "message_token" in data):  # receipts name no sender
        return [_viber(data, ctx)]
    return [_log(data, ctx, 0, "")]


#: A call log's columns (a phone system's or call tracker's CSV export) by what they hold, in leadpipe's log shape.
_CALL_COLUMNS = {
    "started_at": ("started_at", "start_time", "call_start", "call_started", "date_time", "datetime", "date"),
    "duration_s": ("duration_s", "duration", "call_duration", "talk_time", "duration_seconds"),
    "recording_ref": ("recording_url", "recording", "recording_ref", "recording_link"),
    "notes": ("notes", "summary", "comment", "comments", "call_notes"),
    "platform": ("platform",),  # not "channel": a call tracker's channel is the marketing one ("Google Ads")
}


def _call_row(row: Mapping[str, str]) -> dict[str, Any]:
    """A call log's CSV row in the log shape ``_log`` reads: the row's own fields as the contact (the caller's
    number under ``Caller Number``, ``From``, ``Phone``), its time, duration (seconds, or ``h:mm:ss``), recording
    and notes."""
    named = {fields.normalize_key(k): v for k, v in row.items()}
    item: dict[str, Any] = {"type": "call", "contact": named}
    for target, columns in _CALL_COLUMNS.items():
        if (value := next((named[c] for c in columns if text_of(named.get(c))), None)) is not None:
            item[target] = value
    if isinstance(duration := item.get("duration_s"), str) and ":" in duration:
        parts = duration.strip().split(":")
        if len(parts) <= 3 and all(p.isdigit() for p in parts):
            item["duration_s"] = sum(int(p) * 60**i for i, p in enumerate(reversed(parts)))
    item["platform"] = item.get("platform") or "phone"
    return item


def _utterance(at: Any, author: str, text: Any, field: str, problems: list[Problem]) -> dict[str, Any] | None:
    body = clean_text(text_of(text), 20_000)
    if body is None:
        return None
    return {"at": parse_timestamp(at, field, problems), "author": _AUTHOR.get(author.lower(), "person"), "text": body}


def _log(item: Any, ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
    if not isinstance(item, dict):
        raise SourceError("unexpected_shape", prefix.rstrip(".") or None, "a log entry must be a JSON object")
    problems: list[Problem] = []
    platform = (text_of(item.get("platform")) or "phone").lower()
    if platform not in PLATFORMS:
        problems.append(Problem("unknown_platform", prefix + "platform", f"must be one of {', '.join(PLATFORMS)}"))
    contact = item.get("contact") or {}
    if not isinstance(contact, dict):
        raise SourceError("unexpected_shape", prefix + "contact", "the contact must be an object")
    values = fields.collect(contact.items())
    for key in ("caller_number", "from_number", "caller_id", "number", "from", "caller"):
        if "phone" not in values and text_of(contact.get(key) or item.get(key)):
            values["phone"] = contact.get(key) or item.get(key)
    handle = text_of(contact.get("handle")) or text_of(contact.get("username"))
    if platform == "skype" and handle and "skype_id" not in values:
        values["skype_id"] = handle
    handles = {platform: handle} if handle and platform != "phone" else {}
    person, subject = build_person(values, ctx, problems, prefix=prefix + "contact.", handles=handles)

    kind_text = (text_of(item.get("type")) or ("call" if "duration_s" in item else "chat")).lower()
    kind = InteractionKind.CALL if kind_text in ("call", "phone_call", "voice", "video") else InteractionKind.MESSAGE
    transcript = []
    messages = item.get("messages") or []
    if not isinstance(messages, list):
        problems.append(Problem("unexpected_shape", prefix + "messages", "must be a list"))
        messages = []
    for position, message in enumerate(messages[:5000]):
        if not isinstance(message, dict):
            problems.append(Problem("unexpected_shape", f"{prefix}messages[{position}]", "must be an object"))
            continue
        turn = _utterance(
            message.get("at"),
            text_of(message.get("from")) or text_of(message.get("author")) or "contact",
            message.get("text"),
            f"{prefix}messages[{position}].at",
            problems,
        )
        if turn is not None:
            transcript.append(turn)
    duration: float | None = None
    raw_duration = item.get("duration_s", item.get("duration"))
    if raw_duration not in (None, ""):
        try:
            duration = float(raw_duration)
            if not 0 <= duration < 10 * 24 * 3600:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(Problem("invalid_duration", prefix + "duration_s", "a call duration is seconds, >= 0"))
            duration = None
    occurred = parse_timestamp(item.get("started_at") or item.get("at"), prefix + "started_at", problems)
    interaction = {
        "kind": kind,
        "subject": clean_text(f"{platform} {kind.value}", 1000),
        "message": clean_text(text_of(item.get("summary")) or text_of(item.get("notes")), 50_000),
        "transcript": tuple(transcript),
        "call_duration_s": duration,
        "recording_ref": clean_text(text_of(item.get("recording_ref")) or text_of(item.get("recording_url")), 500),
    }
    return make_event(
        ctx,
        index,
        (person, subject),
        interaction,
        provenance={"device_id": clean_text(text_of(item.get("line_id")), 200)},
        occurred_at=occurred,
        problems=problems,
        prefix=prefix,
    )


def _conversation(
    ctx: SourceContext,
    index: int,
    *,
    person: Mapping[str, Any],
    key: str | None,
    app: str,
    turns: Sequence[dict[str, Any]],
    problems: list[Problem],
) -> ContactEvent:
    """A messenger conversation as one contact event: its first turn is the message, every turn the transcript."""
    return make_event(
        ctx,
        index,
        (person, key),
        {
            "kind": InteractionKind.MESSAGE,
            "subject": f"{app} message",
            "message": turns[0]["text"] if turns else None,
            "transcript": tuple(turns),
        },
        occurred_at=turns[0]["at"] if turns else None,
        problems=problems,
    )


def _whatsapp(data: Mapping[str, Any], ctx: SourceContext) -> list[ContactEvent]:
    """One event per WhatsApp contact in the webhook batch, with that contact's messages as the transcript."""
    contacts: dict[str, dict[str, Any]] = {}
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise SourceError("unexpected_shape", "entry", "a WhatsApp webhook carries an 'entry' list")
    for e, entry in enumerate(entries):
        for c, change in enumerate(array(dig(entry, "changes"))):
            value = dig(change, "value")
            if not isinstance(value, dict):
                continue
            for person in array(value.get("contacts")):
                wa_id = text_of(dig(person, "wa_id"))
                if wa_id:
                    slot = contacts.setdefault(wa_id, {"name": None, "messages": [], "where": f"entry[{e}]"})
                    slot["name"] = slot["name"] or text_of(dig(person, "profile", "name"))
            for m, message in enumerate(array(value.get("messages"))):
                sender = text_of(dig(message, "from"))
                if sender:
                    slot = contacts.setdefault(sender, {"name": None, "messages": [], "where": f"entry[{e}]"})
                    slot["messages"].append((message, f"entry[{e}].changes[{c}].value.messages[{m}]"))
    if not contacts:
        statuses = any(
            array(dig(change, "value", "statuses")) for entry in entries for change in array(dig(entry, "changes"))
        )
        if statuses:
            raise NothingToTake("status_update", "WhatsApp status updates of messages sent: no contact in them")
        raise SourceError(
            "no_contact", "entry", "the webhook holds no contact or inbound message (status updates only?)"
        )
    events = []
    for index, (wa_id, slot) in enumerate(sorted(contacts.items())):
        problems: list[Problem] = []
        phone = wa_id if wa_id.startswith("+") else "+" + wa_id
        person, key = build_person(
            {"full_name": slot["name"], "phone": phone}, ctx, problems, prefix=f"{slot['where']}.", handles={}
        )
        person["messenger_handles"] = {"whatsapp": person.get("phone", phone)}
        transcript = []
        for message, where in slot["messages"]:
            text = dig(message, "text", "body") or dig(message, "button", "text") or dig(message, "caption")
            if text is None and text_of(dig(message, "type")):
                text = f"[{text_of(dig(message, 'type'))}]"
            turn = _utterance(dig(message, "timestamp"), "contact", text, f"{where}.timestamp", problems)
            if turn is not None:
                transcript.append(turn)
        events.append(
            _conversation(ctx, index, person=person, key=key, app="whatsapp", turns=transcript, problems=problems)
        )
    return events


def _telegram(data: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    message = data.get("message") or data.get("edited_message") or data.get("business_message")
    if not isinstance(message, dict):
        raise SourceError("no_contact", "message", "the Telegram update carries no message from a person")
    problems: list[Problem] = []
    sender = obj(message.get("from"))
    shared = obj(message.get("contact"))
    username = text_of(sender.get("username"))
    handle = f"@{username}" if username else (f"id:{text_of(sender.get('id'))}" if sender.get("id") else None)
    values = {
        "first_name": text_of(shared.get("first_name")) or text_of(sender.get("first_name")),
        "last_name": text_of(shared.get("last_name")) or text_of(sender.get("last_name")),
        "phone": text_of(shared.get("phone_number")),
    }
    if values["phone"] and not str(values["phone"]).startswith("+"):
        values["phone"] = "+" + str(values["phone"])  # Telegram sends international numbers, sometimes without "+"
    person, key = build_person(values, ctx, problems, prefix="message.contact.", handles={"telegram": handle or ""})
    if key is None:
        problems[:] = [p for p in problems if p.reason != "no_identity"]
        problems.append(
            Problem(
                "no_identity",
                "message.contact",
                "Telegram shares no phone number until the person sends their contact card; no e-mail either",
            )
        )
    text = message.get("text") or message.get("caption")
    turn = _utterance(message.get("date"), "contact", text, "message.date", problems)
    return _conversation(
        ctx, 0, person=person, key=key, app="telegram", turns=[turn] if turn else [], problems=problems
    )


#: Viber callbacks about messages the bot sent and about the webhook itself: no person speaks in them.
_VIBER_RECEIPTS = frozenset({"delivered", "seen", "failed", "webhook"})


def _viber(data: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    if (kind := text_of(data.get("event"))) in _VIBER_RECEIPTS:
        raise NothingToTake("receipt", f"a Viber {kind} callback: no contact in it")
    problems: list[Problem] = []
    sender = obj(data.get("sender"))
    message = obj(data.get("message"))
    card = obj(message.get("contact"))
    values = {
        "full_name": text_of(card.get("name")) or text_of(sender.get("name")),
        "phone": text_of(card.get("phone_number")),
        "country": text_of(sender.get("country")),
    }
    person, key = build_person(
        values, ctx, problems, prefix="message.contact.", handles={"viber": text_of(sender.get("id")) or ""}
    )
    if key is None:
        problems[:] = [p for p in problems if p.reason != "no_identity"]
        problems.append(
            Problem("no_identity", "message.contact", "Viber shares no phone number unless the person sends a contact")
        )
    turn = _utterance(data.get("timestamp"), "contact", message.get("text"), "timestamp", problems)
    return _conversation(ctx, 0, person=person, key=key, app="viber", turns=[turn] if turn else [], problems=problems)


def _twilio(form: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    """A Twilio webhook: an incoming SMS, WhatsApp message (``From: whatsapp:+...``, ``ProfileName``) or call."""
    if "MessageSid" in form or "SmsSid" in form:
        status = text_of(form.get("MessageStatus"))
        if (status is not None and status != "received") or "Body" not in form:
            raise NothingToTake("status_update", f"Twilio's status callback of a message ({status}): no contact in it")
        call = False
    elif "CallSid" in form:
        status = text_of(form.get("CallStatus"))
        if status not in ("ringing", "in-progress") or text_of(form.get("Direction")) not in (None, "inbound"):
            raise NothingToTake("status_update", f"Twilio's callback of a call ({status}): no new contact in it")
        call = True
    else:
        raise SourceError(
            "unexpected_shape", None, "a form post to a messenger source is read as a Twilio webhook (MessageSid)"
        )
    problems: list[Problem] = []
    sender = text_of(form.get("From")) or ""
    app, _, number = sender.rpartition(":")
    app = app.lower() or ("phone" if call else "sms")
    values = {
        "full_name": text_of(form.get("ProfileName")) or text_of(form.get("CallerName")),
        "phone": number,
        "country": text_of(form.get("FromCountry")),
        "location": text_of(form.get("FromCity")),
    }
    handles = {"whatsapp": number} if app == "whatsapp" else {}
    person, key = build_person(values, ctx, problems, prefix="", handles=handles)
    if call:
        interaction = {"kind": InteractionKind.CALL, "subject": "phone call"}
        return make_event(ctx, 0, (person, key), interaction, problems=problems)
    media = text_of(form.get("NumMedia")) not in (None, "0")
    turn = _utterance(None, "contact", text_of(form.get("Body")) or ("[media]" if media else None), "Body", problems)
    return _conversation(ctx, 0, person=person, key=key, app=app, turns=[turn] if turn else [], problems=problems)
