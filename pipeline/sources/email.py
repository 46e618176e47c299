"""E-mail (policy section 5): raw RFC 822 / MIME messages as a mailbox delivers them, one or an mbox of many.

Real mail is messy: undeclared or unknown charsets, broken encoded words, HTML-only bodies, attachments, headers
that trip the modern parser. The stdlib ``email`` package with ``policy.default`` reads it; every header and body
access has a fallback, so a message yields an event or a typed rejection, never an exception.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from pipeline import normalize
from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources.base import (
    Problem,
    SourceContext,
    SourceError,
    build_person,
    decode_text,
    make_event,
    require_events,
)
from pipeline.sources.html import html_to_text

CONTENT_TYPES = frozenset({"message/rfc822", "application/mbox", "text/plain", "application/octet-stream"})

_MBOX_FROM = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\r\n\r\n))From \S")


def split_mbox(raw: bytes) -> list[bytes]:
    """The messages of an mbox (mboxo/mboxrd): split at ``From `` lines, ``>From `` unescaped."""
    starts = [m.start() for m in _MBOX_FROM.finditer(raw)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    out: list[bytes] = []
    for begin, end in zip(starts, [*starts[1:], len(raw)], strict=True):
        chunk = raw[begin:end]
        if chunk.startswith(b"From "):
            chunk = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        chunk = re.sub(rb"(?m)^>(>*From )", rb"\1", chunk)
        if chunk.strip():
            out.append(chunk)
    return out


def messages_of(raw: bytes, media_type: str) -> list[bytes]:
    """The messages of one payload: an mbox's, or the payload itself (the spam engine reads each as received)."""
    is_mbox = media_type == "application/mbox" or raw.startswith(b"From ")
    return split_mbox(raw) if is_mbox else [raw]


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    if not raw.strip():
        raise SourceError("empty_payload", None, "the message is empty")
    messages = messages_of(raw, ctx.content_type)
    events = []
    for index, message in enumerate(messages):
        prefix = f"messages[{index}]." if len(messages) > 1 else ""
        events.append(_parse_one(message, ctx, index, prefix))
    return require_events(events)


def _parse_one(raw: bytes, ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:
        raise SourceError("malformed_mime", prefix or None, f"not a MIME message ({type(exc).__name__})") from None
    legacy = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
    problems: list[Problem] = []
    reply_to, from_ = _identity(msg, legacy, "reply-to"), _identity(msg, legacy, "from")
    sender = reply_to or from_
    if sender is None:
        raise SourceError(
            "no_identity" if _header(msg, legacy, "from") is None else "invalid_email",
            prefix + "from",
            "no usable sender address in From or Reply-To",
        )
    name, address = sender
    name = name or (from_[0] if from_ else None)
    mailbox = _identity(msg, legacy, "delivered-to")
    person, key = build_person({"full_name": name, "email": address}, ctx, problems, prefix=prefix)
    subject = clean_text(_header(msg, legacy, "subject"), 1000)
    occurred = _date(_header(msg, legacy, "date"))
    body, attachments = _body(msg)
    text = clean_text(body, 50_000)
    transcript = ({"at": occurred, "author": "person", "text": clean_text(body, 20_000)},) if text is not None else ()
    interaction = {
        "kind": InteractionKind.EMAIL,
        "subject": subject,
        "message": text,
        "transcript": transcript,
        "attachments_ignored": tuple(attachments),
    }
    return make_event(
        ctx,
        index,
        person=person,
        subject_key=key,
        interaction=interaction,
        provenance={"mailbox_id": mailbox[1][:200] if mailbox else None},
        occurred_at=occurred,
        problems=problems,
        prefix=prefix,
    )


def _header(msg: EmailMessage, legacy: Message, name: str) -> str | None:
    """A header's decoded text; on a header the modern parser cannot read, the legacy one with lenient decoding."""
    try:
        value = msg.get(name)
    except Exception:  # email._header_value_parser raises on some malformed headers
        value = None
    if value is not None:
        with contextlib.suppress(Exception):  # else fall through to the legacy parser below
            return str(value)
    raw = legacy.get(name)
    if raw is None:
        return None
    return _decode_words(str(raw))


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words with unknown or lying charsets decoded as best possible, never raising."""
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    out = []
    for chunk, charset in chunks:
        out.append(decode_text(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return "".join(out)


def _identity(msg: EmailMessage, legacy: Message, name: str) -> tuple[str | None, str] | None:
    """(display name, canonical address) of the first syntactically valid address in a header."""
    value = _header(msg, legacy, name)
    if not value:
        return None
    try:
        candidates = getaddresses([value])
    except Exception:
        return None
    for display, address in candidates:
        try:
            return (display or None), normalize.canonical_email(address)
        except normalize.NormalizationError:
            continue
    return None


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # a garbled Date header is common; the receipt time stands in for it
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _text_of_part(part: Message) -> str:
    payload: Any = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    try:
        return decode_text(payload, charset)
    except SourceError:
        return payload.decode("latin-1")


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return clean_text(_decode_words(str(name)), 200)
    if part.get_content_type() == "message/rfc822":
        return "forwarded-message.eml"
    return None


def _body(msg: EmailMessage) -> tuple[str | None, list[str]]:
    """The text body (plain preferred, else HTML reduced to text) and the names of every ignored attachment."""
    body_part: Message | None = None
    try:
        body_part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        body_part = None
    attachments: list[str] = []
    try:
        parts = list(msg.walk())
    except Exception:
        parts = [msg]
    for part in parts:
        if part is body_part or part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        name = _filename(part)
        maintype = part.get_content_maintype()
        if disposition == "attachment" or name or maintype not in ("text", "multipart"):
            attachments.append(name or f"unnamed.{part.get_content_subtype() or 'bin'}")
    if body_part is None:
        if not msg.is_multipart() and msg.get_content_maintype() == "text":
            body_part = msg
        else:
            return None, attachments
    text = _text_of_part(body_part)
    if body_part.get_content_subtype() == "html":
        text = html_to_text(text)
    return text, attachments
