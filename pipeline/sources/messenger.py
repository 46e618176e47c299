"""Messengers and phone (policy section 5): chat and call logs from Skype, Viber, WhatsApp, Telegram and telephony.

Recognised shapes, by their own markers:

- WhatsApp Cloud API webhooks (``"object": "whatsapp_business_account"``): one event per contact in the batch;
- Facebook Messenger and Instagram messaging webhooks (``"object": "page"`` or ``"instagram"`` with ``messaging``):
  one event per person who wrote, identified by the e-mail or phone they gave (``_meta_messaging``);
- Telegram Bot API updates (``update_id``): the sender's handle, and the phone when they shared their contact;
- Viber REST bot callbacks (``event`` + ``sender``);
- leadpipe's call/chat log (``platform`` + ``contact``, or a list of them) for Skype exports, PBX and call trackers:
  ``{"platform", "type": "call"|"chat", "contact": {...}, "started_at", "duration_s", "recording_ref", "messages"}``;
- Aircall's webhooks (``resource``, ``token``, ``data``): ``call.ended`` is the call (``_aircall``);
- Twilio's webhooks (a form post): an incoming SMS or WhatsApp message (``MessageSid``, ``From``, ``Body``,
  ``ProfileName``) or an incoming call (``CallSid``); its status callbacks are no contact;
- a phone system's or call tracker's call log as CSV, row by row (``_call_row``).

Telegram and Viber do not share a phone number unless the person sends their contact card; an e-mail address the
person wrote in their message identifies them too (``typed_address``); without either there is no identity, and the
rejection says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import ADDRESS_IN_TEXT, clean_text, country_from_location
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

PLATFORMS = ("skype", "viber", "whatsapp", "telegram", "messenger", "instagram", "phone", "sms", "widget")

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
    if text_of(data.get("object")) in _META_MESSAGING:
        return _meta_messaging(data, ctx)
    if "update_id" in data:
        return [_telegram(data, ctx)]
    if "event" in data and ("sender" in data or "message_token" in data):  # receipts name no sender
        return [_viber(data, ctx)]
    if "resource" in data and "token" in data and isinstance(data.get("data"), dict):
        return [_aircall(data, ctx)]
    if "raw_digits" in data and "direction" in data:  # a call of Aircall's API export (``calls``): an ended one
        return [_aircall({"resource": "call", "event": "call.ended", "token": None, "data": data}, ctx)]
    if isinstance(data.get("from"), dict) and isinstance(data.get("to"), dict) and "direction" in data:
        return [_ringcentral(data, ctx)]
    return [_log(data, ctx, 0, "")]


#: Aircall's call webhooks that name the person: the call, once it ended (every call ends: ringing, answered and
#: the rest are the same call on its way, and would make it several contacts).
_AIRCALL_CALLS = frozenset({"call.ended"})


def _aircall(hook: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    """An Aircall webhook (``resource``, ``event``, ``timestamp``, ``token``, ``data``): ``call.ended`` as a call of
    the log shape, the other party's number (``data.raw_digits``: the caller on an ``inbound`` call, the number
    called on an ``outbound`` one) and, when the number is in the company's Aircall contacts, their name, company
    and e-mail (``data.contact``); its start (``started_at``, epoch seconds), ``duration`` (seconds), the
    recording's ``asset`` link and the agents' comments. The agent (``data.user``) and the company's line
    (``data.number``) are no lead. The call's other events, and the other resources' (contacts, users, numbers),
    are answered ``ignored``."""
    kind = text_of(hook.get("event")) or ""
    call = obj(hook.get("data"))
    if text_of(hook.get("resource")) != "call" or not kind.startswith("call."):
        raise NothingToTake("vendor_event", "an Aircall event about no call (a contact, user or number): no lead")
    if kind not in _AIRCALL_CALLS:
        raise NothingToTake("status_update", f"Aircall's {kind} notice of a call under way: the call comes ended")
    digits = text_of(call.get("raw_digits")) or ""
    if digits.lower() in _WITHHELD:
        raise NothingToTake("withheld_number", "a call from a withheld number: no one to contact back")
    known = obj(call.get("contact"))
    emails = [text_of(dig(e, "value")) for e in array(known.get("emails"))]
    contact = {
        "phone": digits,
        "first_name": text_of(known.get("first_name")),
        "last_name": text_of(known.get("last_name")),
        "company": text_of(known.get("company_name")),
        "email": next((e for e in emails if e), None),
    }
    comments = [text_of(dig(c, "content")) for c in array(call.get("comments"))]
    item = {
        "platform": "phone",
        "type": "call",
        "direction": text_of(call.get("direction")),
        "contact": {k: v for k, v in contact.items() if v},
        "started_at": call.get("started_at"),
        "duration_s": call.get("duration"),
        "recording_ref": text_of(call.get("asset")),
        "notes": "\n".join(c for c in comments if c) or None,
    }
    return _log(item, ctx, 0, "data.")


#: What RingCentral's call log says of a call that reached no one on either side: no caller to call back.
_RINGCENTRAL_WITHHELD = frozenset({"anonymous", "blocked", "private", "unknown", "restricted"})


def _ringcentral(record: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    """A record of RingCentral's call log API (``records`` of ``/call-log``, as ``leadpipe import`` splits its
    export): the other party (``from`` on an ``Inbound`` call, ``to`` on an ``Outbound`` one: ``phoneNumber``, its
    ``name`` unless it is the network's caller ID, ``location``), ``startTime``, ``duration`` (seconds) and the
    recording's ``contentUri``. A fax (``type`` other than ``Voice``) is a message."""
    outbound = (text_of(record.get("direction")) or "").lower().startswith("out")
    party = obj(record.get("to") if outbound else record.get("from"))
    number = text_of(party.get("phoneNumber")) or ""
    if number.lower() in _RINGCENTRAL_WITHHELD or not (number or text_of(party.get("name"))):
        raise NothingToTake("withheld_number", "a call from a withheld number: no one to contact back")
    item = {
        "platform": "phone",
        "type": "call" if (text_of(record.get("type")) or "Voice") == "Voice" else "message",
        "contact": {"phone": number, "name": party.get("name"), "location": party.get("location")},
        "started_at": record.get("startTime"),
        "duration_s": record.get("duration"),
        "recording_ref": text_of(dig(record, "recording", "contentUri")),
    }
    return _log(item, ctx, 0, "from." if not outbound else "to.")


#: A call log's columns (a phone system's or call tracker's CSV export) by what they hold, in leadpipe's log shape.
_CALL_COLUMNS = {
    "duration_s": ("duration_s", "duration", "call_duration", "talk_time", "duration_seconds"),
    "recording_ref": ("recording_url", "recording", "recording_ref", "recording_link"),
    "notes": ("notes", "summary", "comment", "comments", "call_notes"),
    "platform": ("platform",),  # not "channel": a call tracker's channel is the marketing one ("Google Ads")
    "time_zone": ("time_zone", "timezone", "tz", "utc_offset"),
}
#: Where a call log writes the call's start (3CX's "Call Time", Zoom Phone's "Date & Time", Aircall's "datetime"),
#: or its date when the clock time has a column of its own (``_CLOCK_COLUMNS``: "Date" and "Time", RingCentral's;
#: "Call Date" and "Call Time"; "Start Date" and "Start Time").
_START_COLUMNS = (
    "started_at", "start_time", "call_start", "call_started", "date_time", "datetime", "call_time", "date", "call_date",
    "start_date",
)  # fmt: skip
_CLOCK_COLUMNS = ("time", "call_time", "start_time", "time_of_call")
#: A clock time alone ("14:25", "9:15 AM", "09:15:22").
_CLOCK = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp]\.?[Mm]\.?)?")


def _call_row(row: Mapping[str, str]) -> dict[str, Any]:
    """A call log's CSV row in the log shape ``_log`` reads: the row's own fields as the contact (the caller's
    number under ``Caller Number``, ``From``, ``Phone``; on an outgoing call the number called, ``To``), its start
    (one column, or its date and clock time apart) and the time zone a column names, duration (seconds, or
    ``h:mm:ss``), recording and notes."""
    named = {fields.normalize_key(k): v for k, v in row.items()}
    item: dict[str, Any] = {"type": "call", "contact": named}
    for target, columns in _CALL_COLUMNS.items():
        if (value := next((named[c] for c in columns if text_of(named.get(c))), None)) is not None:
            item[target] = value
    cells = [(column, text_of(named.get(column))) for column in dict.fromkeys(_START_COLUMNS + _CLOCK_COLUMNS)]
    started = next((v for c, v in cells if v and c in _START_COLUMNS and not _CLOCK.fullmatch(v)), None)
    clock = next((v for c, v in cells if v and c in _CLOCK_COLUMNS and _CLOCK.fullmatch(v)), None)
    if started is not None and clock is not None and ":" not in started:  # "Date" and "Time" in two columns
        started = f"{started} {clock}"
    if started is not None:
        item["started_at"] = started
    if isinstance(duration := item.get("duration_s"), str) and ":" in duration:
        parts = duration.strip().split(":")
        if len(parts) <= 3 and all(p.isdigit() for p in parts):
            item["duration_s"] = sum(int(p) * 60**i for i, p in enumerate(reversed(parts)))
    item["platform"] = item.get("platform") or "phone"
    return item


#: A number written the North American way, its area code in brackets: "(650) 555-0143", "1 (650) 555-0143"
#: (RingCentral's call log, US phone systems' exports), read as +1 when the row names no country: the numbering
#: plan of the US, Canada and the Caribbean writes its ten digits so (an area code and exchange never start with 0
#: or 1); elsewhere a bracketed area code mostly starts with 0 ("(030) 1234567") or has two digits ("(11) 9123-4567").
#: Mexico writes some numbers the same way: a row naming its country is read in it.
_NANP_WRITTEN = re.compile(r"\s*(?:\+?1[\s.-]?)?\(([2-9]\d{2})\)\s?([2-9]\d{2})[\s.-]?(\d{4})\s*")
#: Where a log names the caller's number, and the columns of the caller that an outgoing call makes the company's.
_NUMBER_KEYS = ("caller_number", "from_number", "caller_id", "number", "from", "caller")
_CALLER_KEYS = frozenset({"caller_number", "from_number", "caller_id", "from", "caller", "caller_name"})
#: Where it names the number called: the person, on an outgoing call.
_CALLED_KEYS = ("to", "to_number", "called_number", "callee", "destination", "dialed_number", "number")
#: A call's ``direction`` that says the company called (Outgoing, outbound, Twilio's outbound-api, ausgehend, sortant).
_OUTBOUND = ("out", "ausgehend", "sortant", "salient")


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
    direction = (text_of(item.get("direction")) or text_of(contact.get("direction")) or "").lower()
    outbound = direction.startswith(_OUTBOUND)
    if outbound:  # the company's own call: its line (From, Caller...) is no lead, the one called is
        contact = {k: v for k, v in contact.items() if fields.normalize_key(k) not in _CALLER_KEYS}
    values = fields.collect(contact.items())
    if platform == "phone" and "full_name" in values and _caller_id_name(values["full_name"]):
        del values["full_name"]  # the network's caller ID, not a name anyone gave
    for key in _CALLED_KEYS if outbound else _NUMBER_KEYS:
        if "phone" not in values and text_of(contact.get(key) or item.get(key)):
            values["phone"] = contact.get(key) or item.get(key)
    number = text_of(values.get("phone")) or ""
    if platform == "phone" and "country" not in values and (nanp := _NANP_WRITTEN.fullmatch(number)) is not None:
        values["phone"] = "+1 " + " ".join(nanp.groups())  # "(650) 555-0143": North American, the +1 left out
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
    started = item.get("started_at") or item.get("at")
    occurred = parse_timestamp(started, prefix + "started_at", problems)
    if occurred is not None and (zone := text_of(item.get("time_zone"))) is not None:
        occurred = _on_the_clock_of(occurred, text_of(started) or "", zone, prefix + "time_zone", problems)
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


#: A time written with its own zone: a clock time followed by "Z", an offset, UTC or GMT (ISO 8601's, RFC 2822's),
#: or epoch seconds. Not a date's last digits ("31-05-2024").
_OWN_ZONE = re.compile(
    r":\d{2}(?:[.,]\d+)?\s*(?:[AaPp]\.?[Mm]\.?\s*)?(?:[Zz]|(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?|UTC|GMT)\s*$"
    r"|^\d{9,13}(?:\.\d+)?$"
)
#: A UTC offset as exports write one: "UTC-05:00", "GMT+2", "+0530", "+5:30", "-5"; never a number of minutes
#: ("-300").
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+-])(?:(\d{1,2}):(\d{2})|(\d{2})(\d{2})|(\d{1,2}))", re.I)
#: A time zone's IANA name ("America/New_York", "Europe/Berlin", "EST5EDT"), as zoneinfo takes one.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[/_+-][A-Za-z0-9]+){0,6}")


def _time_zone(text: str) -> tzinfo | None:
    """The time zone a call log's column names: an IANA name, a UTC offset, UTC or GMT; None when it is none."""
    text = text.strip()
    if text.upper() in ("UTC", "GMT", "Z"):
        return UTC
    if (offset := _OFFSET.fullmatch(text)) is not None:
        _, hours_minutes, minutes_after, hours_hhmm, minutes_hhmm, hours_alone = offset.groups()
        hours = int(hours_minutes or hours_hhmm or hours_alone)
        minutes = int(minutes_after or minutes_hhmm or 0)
        if hours > 14 or minutes >= 60:
            return None
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if offset.group(1) == "-" else delta)
    if len(text) <= 64 and _ZONE_NAME.fullmatch(text):
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # no such zone ("Eastern"), a folder of them ("America")
            return None
    return None


def _on_the_clock_of(at: datetime, written: str, zone: str, field: str, problems: list[Problem]) -> datetime:
    """``at`` (read as UTC: ``written`` named no zone) as the clock time it is in the time zone ``zone`` a column
    names; a time written with its own zone keeps it. A zone that is none leaves it as read, noted
    ``time_zone_unknown``."""
    if _OWN_ZONE.search(written.strip()):
        return at
    if (found := _time_zone(zone)) is None:
        explanation = "not a time zone (an IANA name such as Europe/Berlin, or a UTC offset); the time read as UTC"
        problems.append(Problem("time_zone_unknown", field, explanation, fatal=False))
        return at
    return at.replace(tzinfo=found).astimezone(UTC)


#: What a caller-ID name (CNAM: the phone network's name for a number, 15 characters at most, in capitals) says when
#: it names no one: a line's kind or a placeholder, compared case-folded, a state code padded after it left out
#: ("CELL PHONE   NY").
_CNAM_PLACEHOLDERS = frozenset(
    {"wireless caller", "wireless", "cell phone", "cellular", "cellular caller", "mobile", "mobile caller",
     "toll free", "toll free call", "toll free caller", "unavailable", "name unavailable", "not available",
     "unknown", "unknown caller", "unknown name", "anonymous", "anonymous caller", "private", "private caller",
     "private number", "private name", "restricted", "blocked", "caller id blocked", "no caller id", "out of area",
     "out of area caller", "pay phone", "payphone", "voip caller", "spam likely", "scam likely", "potential spam"}
)  # fmt: skip
#: A caller ID that is the number's place: a city padded to its state's code ("NEW YORK   NY").
_CNAM_PLACE = re.compile(r"(.*?\S)\s{2,}([A-Za-z]{2})")
#: The longest caller-ID name the network carries.
_CNAM_LENGTH = 15


def _caller_id_name(value: Any) -> bool:
    """Whether a phone system's name for a caller is the network's caller ID (CNAM), which is no name the person
    gave: a placeholder ("WIRELESS CALLER", "UNAVAILABLE"), the number's place ("NEW YORK   NY", "SAN MATEO CA"), or
    any name in CNAM's form, 15 capitals at most ("SMITH JOHN": often the family name first, from a directory
    nobody checked). A name as people write it ("Jane Roe"), or longer than a caller ID can be, is a name."""
    text = text_of(value)
    if text is None:
        return False
    place = _CNAM_PLACE.fullmatch(text)
    words = " ".join((place.group(1) if place else text).split()).casefold()
    if words in _CNAM_PLACEHOLDERS or " ".join(text.split()).casefold() in _CNAM_PLACEHOLDERS:
        return True
    if place is not None and country_from_location(f"{place.group(1)}, {place.group(2).upper()}") in ("US", "CA"):
        return True
    letters = [char for char in text if char.isalpha()]
    return len(text) <= _CNAM_LENGTH and bool(letters) and all(char.isupper() for char in letters)


def _conversation(
    ctx: SourceContext,
    index: int,
    *,
    person: Mapping[str, Any],
    key: str | None,
    app: str,
    turns: Sequence[dict[str, Any]],
    problems: list[Problem],
    sent: datetime | None = None,
) -> ContactEvent:
    """A messenger conversation as one contact event: its first turn is the message, every turn the transcript;
    ``sent`` the time of a message without words (a contact card)."""
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
        occurred_at=turns[0]["at"] if turns else sent,
        problems=problems,
    )


def _whatsapp(data: Mapping[str, Any], ctx: SourceContext) -> list[ContactEvent]:
    """One event per WhatsApp contact in the webhook batch, with that contact's messages as the transcript."""
    contacts: dict[str, dict[str, Any]] = {}
    skipped: str | None = None
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
                if (kind := text_of(dig(message, "type")) or "") in _WHATSAPP_NOT_SAID:
                    skipped = skipped or _WHATSAPP_NOT_SAID[kind]
                    continue
                if sender:
                    slot = contacts.setdefault(sender, {"name": None, "messages": [], "where": f"entry[{e}]"})
                    slot["messages"].append((message, f"entry[{e}].changes[{c}].value.messages[{m}]"))
    if skipped is not None:  # the contact of a reaction or notice only: WhatsApp names them in the same batch
        contacts = {k: slot for k, slot in contacts.items() if slot["messages"]}
    if not contacts:
        changes = [obj(change) for entry in entries for change in array(dig(entry, "changes"))]
        values = [obj(change.get("value")) for change in changes]
        if any(array(value.get("statuses")) for value in values):
            raise NothingToTake("status_update", "WhatsApp status updates of messages sent: no contact in them")
        if skipped is not None:
            raise NothingToTake(skipped, "a WhatsApp reaction or system notice: nothing the person wrote")
        if any(array(value.get("message_echoes")) for value in values):
            raise NothingToTake("echo", "WhatsApp's copies of the business's own messages: no contact in them")
        if any(
            change.get("field") not in (None, "messages") or value.get("errors")
            for change, value in zip(changes, values, strict=True)
        ):
            raise NothingToTake("account_update", "WhatsApp's notice about the account or a template: no contact")
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
            text = _whatsapp_words(message)
            turn = _utterance(dig(message, "timestamp"), "contact", text, f"{where}.timestamp", problems)
            if turn is not None:
                transcript.append(turn)
        events.append(
            _conversation(ctx, index, person=person, key=key, app="whatsapp", turns=transcript, problems=problems)
        )
    return events


def typed_address(text: str | None) -> str | None:
    """The e-mail address a person wrote in a chat message to be reached at ("mail me at anna@example.se."), the
    sentence's full stop left out; None when there is none."""
    found = ADDRESS_IN_TEXT.search(text) if text else None
    return found.group(0).rstrip(".") if found is not None else None


#: Meta's Messenger Platform webhooks by their ``object``: a Facebook page's conversations, an Instagram account's.
_META_MESSAGING = {"page": "messenger", "instagram": "instagram"}

#: Messaging events that carry nothing the person wrote: receipts of the page's own messages, a reaction, the
#: person's referral or opt-in to the page, a handover between apps.
_META_NOTICES = {
    "delivery": "receipt",
    "read": "receipt",
    "reaction": "reaction",
    "referral": "chat_event",
    "optin": "subscription",
    "account_linking": "chat_event",
    "pass_thread_control": "chat_event",
    "take_thread_control": "chat_event",
    "request_thread_control": "chat_event",
    "policy_enforcement": "account_update",
}


def _meta_messaging(data: Mapping[str, Any], ctx: SourceContext) -> list[ContactEvent]:
    """Facebook Messenger's and Instagram's messaging webhooks (``entry[].messaging[]``): one event per person who
    wrote, their messages as the transcript, keyed by what they gave to be reached by.

    Meta names a person only by a page-scoped id, which reaches no one outside the page: the identity is the e-mail
    or phone the person chose in the page's quick replies for them (``quick_reply.payload``, Meta fills in the
    person's own), or an e-mail address they typed to be contacted at; without one, refused ``no_identity`` saying
    so, like Telegram and Viber. The page's own messages (``is_echo``), receipts, reactions and postbacks without
    words are answered ``ignored``.
    """
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise SourceError("unexpected_shape", "entry", "a Meta messaging webhook carries an 'entry' list")
    app = _META_MESSAGING[str(text_of(data.get("object")))]
    people: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
    skipped: str | None = None
    for e, entry in enumerate(entries):
        page = text_of(dig(entry, "id"))
        for m, item in enumerate(array(dig(entry, "messaging"))):
            event = obj(item)
            sender = text_of(dig(event, "sender", "id"))
            message = obj(event.get("message"))
            words = text_of(message.get("text")) or text_of(dig(event, "postback", "title"))
            if message.get("is_echo") is True or (sender is not None and sender == page):
                skipped = skipped or "echo"
            elif sender is None or not (words or message.get("attachments") or message.get("quick_reply")):
                notice = next((k for k in _META_NOTICES if k in event), None)
                skipped = skipped or (_META_NOTICES[notice] if notice else "button_press")
            else:
                people.setdefault(sender, []).append((event, f"entry[{e}].messaging[{m}]"))
    if not people:
        if skipped is not None:
            raise NothingToTake(skipped, f"a {app} notice (receipt, reaction, the page's own message): no contact")
        raise SourceError("no_contact", "entry", f"the {app} webhook holds no message from a person")
    events = []
    for index, (psid, said) in enumerate(sorted(people.items())):
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        transcript = []
        for wrote, where in said:
            message = obj(wrote.get("message"))
            chosen = text_of(dig(message, "quick_reply", "payload")) or ""
            text = text_of(message.get("text")) or text_of(dig(wrote, "postback", "title"))
            if "@" in chosen and "email" not in values:
                values["email"] = chosen
            elif chosen.startswith("+") and "phone" not in values:
                values["phone"] = chosen
            elif "email" not in values and (typed := typed_address(text)) is not None:
                values["email"] = typed
            kinds = [text_of(dig(a, "type")) for a in array(message.get("attachments"))]
            words = text or " ".join(f"[{kind}]" for kind in kinds if kind) or None
            turn = _utterance(wrote.get("timestamp"), "contact", words, f"{where}.timestamp", problems)
            if turn is not None:
                transcript.append(turn)
        person, key = build_person(values, ctx, problems, prefix=f"{said[0][1]}.", handles={app: psid})
        if key is None:
            problems[:] = [p for p in problems if p.reason != "no_identity"]
            problems.append(
                Problem(
                    "no_identity",
                    f"{said[0][1]}.sender",
                    f"{app} names the person by a page-scoped id only: an e-mail or phone comes from the page's "
                    "quick replies for them (user_email, user_phone_number) or an address the person wrote",
                )
            )
        events.append(_conversation(ctx, index, person=person, key=key, app=app, turns=transcript, problems=problems))
    return events


#: WhatsApp messages that are no words of the person's: a reaction to a message, a system notice (a changed number).
_WHATSAPP_NOT_SAID = {"reaction": "reaction", "system": "system_notice"}


def _whatsapp_words(message: Any) -> str | None:
    """A WhatsApp message's words: its text, the button or list entry chosen, a Flow's answers, a medium's caption,
    an order's note; else its type in brackets (``[image]``)."""
    kind = text_of(dig(message, "type"))
    interactive = obj(dig(message, "interactive"))
    chosen = obj(interactive.get("button_reply")) or obj(interactive.get("list_reply"))
    said = (
        text_of(dig(message, "text", "body"))
        or text_of(dig(message, "button", "text"))
        or text_of(chosen.get("title"))
        or _flow_answers(dig(interactive, "nfm_reply", "response_json"))
        or (text_of(dig(message, kind, "caption")) if kind else None)
        or text_of(dig(message, "order", "text"))
    )
    return said or (f"[{kind}]" if kind else None)


def _flow_answers(response: Any) -> str | None:
    """A WhatsApp Flow's answers (``response_json``, JSON text) as ``name: value`` lines, without its token."""
    try:
        answers = orjson.loads(response) if isinstance(response, str) else None
    except orjson.JSONDecodeError:
        return text_of(response)
    if not isinstance(answers, dict):
        return text_of(response)
    lines = [f"{k}: {text_of(v)}" for k, v in answers.items() if k != "flow_token" and text_of(v) is not None]
    return "\n".join(lines) or None


#: Telegram updates that carry no message of the person's: the bot blocked or added (``my_chat_member``), a button
#: pressed under the bot's own message (``callback_query``: its data is the bot's code), a channel's post, a reaction.
_TELEGRAM_NOTICES = {
    "my_chat_member": "chat_member",
    "chat_member": "chat_member",
    "callback_query": "button_press",
    "channel_post": "channel_post",
    "edited_channel_post": "channel_post",
    "message_reaction": "reaction",
}


def _telegram(data: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    message = data.get("message") or data.get("edited_message") or data.get("business_message")
    if not isinstance(message, dict):
        if (notice := next((k for k in _TELEGRAM_NOTICES if k in data), None)) is not None:
            raise NothingToTake(_TELEGRAM_NOTICES[notice], f"a Telegram {notice} update: no message from a person")
        raise SourceError("no_contact", "message", "the Telegram update carries no message from a person")
    problems: list[Problem] = []
    sender = obj(message.get("from"))
    card = obj(message.get("contact"))
    own = card.get("user_id") is not None and card.get("user_id") == sender.get("id")
    shared = card if own else {}  # a card of someone else the person forwards does not name the person
    username = text_of(sender.get("username"))
    handle = f"@{username}" if username else (f"id:{text_of(sender.get('id'))}" if sender.get("id") else None)
    text = message.get("text") or message.get("caption")
    values = {
        "first_name": text_of(shared.get("first_name")) or text_of(sender.get("first_name")),
        "last_name": text_of(shared.get("last_name")) or text_of(sender.get("last_name")),
        "phone": text_of(shared.get("phone_number")),
        "email": typed_address(text_of(text)),
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
    turn = _utterance(message.get("date"), "contact", text, "message.date", problems)
    sent = None if turn else parse_timestamp(message.get("date"), "message.date", problems)
    return _conversation(
        ctx, 0, person=person, key=key, app="telegram", turns=[turn] if turn else [], problems=problems, sent=sent
    )


#: Viber callbacks about messages the bot sent, about the webhook itself, and a subscription or a chat opened (no
#: words, no number: the person has not written yet): no person speaks in them.
_VIBER_RECEIPTS = {
    "delivered": "receipt",
    "seen": "receipt",
    "failed": "receipt",
    "webhook": "receipt",
    "subscribed": "subscription",
    "unsubscribed": "subscription",
    "conversation_started": "conversation_started",
}


def _viber(data: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    if (kind := text_of(data.get("event")) or "") in _VIBER_RECEIPTS:
        raise NothingToTake(_VIBER_RECEIPTS[kind], f"a Viber {kind} callback: no contact in it")
    problems: list[Problem] = []
    sender = obj(data.get("sender"))
    message = obj(data.get("message"))
    card = obj(message.get("contact"))
    values = {
        "full_name": text_of(card.get("name")) or text_of(sender.get("name")),
        "phone": text_of(card.get("phone_number")),
        "country": text_of(sender.get("country")),
        "email": typed_address(text_of(message.get("text"))),
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
    sent = None if turn else parse_timestamp(data.get("timestamp"), "timestamp", problems)
    turns = [turn] if turn else []
    return _conversation(ctx, 0, person=person, key=key, app="viber", turns=turns, problems=problems, sent=sent)


#: Twilio's default opt-out keywords: a message that is only one of them opts out; nobody asked to be contacted.
_TWILIO_STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})


#: What Twilio puts in ``From`` for a caller who withheld their number (and +266696687, the number it shows for one).
_WITHHELD = frozenset({"anonymous", "restricted", "private", "unknown", "unavailable", "+266696687"})


def _twilio(form: Mapping[str, Any], ctx: SourceContext) -> ContactEvent:
    """A Twilio webhook: an incoming SMS, WhatsApp message (``From: whatsapp:+...``, ``ProfileName``) or call."""
    if "MessageSid" in form or "SmsSid" in form:
        status = text_of(form.get("MessageStatus"))
        if (status is not None and status != "received") or "Body" not in form:
            raise NothingToTake("status_update", f"Twilio's status callback of a message ({status}): no contact in it")
        keyword = (text_of(form.get("OptOutType")) or "").upper()
        if keyword == "STOP" or (text_of(form.get("Body")) or "").strip().upper() in _TWILIO_STOP:
            raise NothingToTake("opt_out", "an SMS opt-out (STOP): the person asked for no more messages")
        if keyword:  # START, HELP: a keyword Twilio answers itself
            raise NothingToTake("sms_keyword", "an SMS START or HELP keyword: no message for anyone to answer")
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
    if sender.lower() in _WITHHELD:
        raise NothingToTake("withheld_number", "a call or message from a withheld number: no one to contact back")
    app, _, number = sender.rpartition(":")
    app = app.lower() or ("phone" if call else "sms")
    values = {  # a WhatsApp profile's name; a call's CallerName is its caller ID (CNAM: _caller_id_name), no name
        "full_name": text_of(form.get("ProfileName")),
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
