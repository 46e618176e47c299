"""E-mail delivered by an inbound-parse webhook, as the RFC 5322 message it was.

Mail services hand a received message to a URL in their own shapes: Postmark as JSON (``FromFull``, ``Headers``,
``TextBody``, ``HtmlBody``, ``Attachments``), SendGrid's Inbound Parse and Mailgun's routes as a form post, with the
whole message (SendGrid's "raw" setting: ``email``; Mailgun's MIME route: ``body-mime``) or taken apart (``headers``,
``text``, ``html``; ``message-headers``, ``body-plain``, ``body-html``). Each becomes the message again, so the
e-mail adapter and the spam engine read it as they read any mail: the original header fields (their relay chain,
``List-Unsubscribe``, authentication results), the text and HTML as ``multipart/alternative``, and each attachment
as an empty part with its file name (the adapter lists it as not read; its content is not kept).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

import orjson

from pipeline.sources import formdata
from pipeline.sources.base import NothingToTake, SourceError, array, load_json, obj, text_of

#: Fields written from the webhook's own structured values, not copied from its header list (a body of our making).
_STRUCTURE = frozenset({"content-type", "content-transfer-encoding", "mime-version"})
#: A header field's name (RFC 5322 2.2: printable ASCII but the colon); a webhook's list may hold anything.
_FIELD_NAME = re.compile(r"[!-9;-~]{1,200}")


def from_postmark(raw: bytes) -> bytes:
    """A Postmark inbound webhook (JSON) as the message."""
    data = load_json(raw)
    if isinstance(data, dict) and (
        isinstance(data.get("event-data"), dict) or ("RecordType" in data and "FromFull" not in data)
    ):
        # a mail service's report on mail it sent (Mailgun's event webhooks, Postmark's delivery, bounce and open
        # webhooks): no one wrote in; answered, not dead-lettered once per event
        raise NothingToTake("status_update", "a mail service's report on mail it sent (delivered, opened, bounced)")
    if not isinstance(data, dict) or not ("FromFull" in data or "From" in data):
        raise SourceError(
            "unexpected_shape", None, "JSON e-mail must be a Postmark inbound webhook (From, Headers, TextBody)"
        )
    sender = obj(data.get("FromFull"))
    name, address = text_of(sender.get("Name")) or text_of(data.get("FromName")), text_of(sender.get("Email"))
    fields: dict[str, str | None] = {
        "From": f'"{name}" <{address}>' if name and address else address or text_of(data.get("From")),
        "To": text_of(data.get("To")),
        "Cc": text_of(data.get("Cc")),
        "Reply-To": text_of(data.get("ReplyTo")),
        "Subject": text_of(data.get("Subject")),
        "Date": text_of(data.get("Date")),
        "Message-ID": text_of(data.get("MessageID")),
    }
    headers = [
        (text_of(h.get("Name")) or "", text_of(h.get("Value")) or "")
        for h in array(data.get("Headers"))
        if isinstance(h, dict)
    ]
    if any(name.lower() == "message-id" for name, _ in headers):
        fields["Message-ID"] = None  # the sender's own id, not Postmark's
    attachments = [text_of(a.get("Name")) or "unnamed" for a in array(data.get("Attachments")) if isinstance(a, dict)]
    return _message(fields, headers, text_of(data.get("TextBody")), text_of(data.get("HtmlBody")), attachments)


def from_form(raw: bytes, media_type: str, params: Mapping[str, str]) -> bytes:
    """A SendGrid Inbound Parse or Mailgun route post (``multipart/form-data`` or urlencoded) as the message."""
    files: list[str] = []
    if media_type == "multipart/form-data":
        pairs = formdata.multipart_pairs(raw, params.get("boundary"), files)
    else:
        pairs = formdata.urlencoded_pairs(raw, params.get("charset"))
    posted: dict[str, Any] = {}
    for key, value in pairs:
        posted.setdefault(key, value)
    whole = text_of(posted.get("email")) or text_of(posted.get("body-mime"))
    if whole is not None:  # the message as received: nothing to rebuild
        return whole.encode("utf-8", "surrogateescape")
    if "headers" in posted or "envelope" in posted:  # SendGrid, parsed
        headers = _header_block(text_of(posted.get("headers")) or "")
        text, html = text_of(posted.get("text")), text_of(posted.get("html"))
        info = obj(_json(posted.get("attachment-info")))  # the file parts' names, when they were not posted
        named = [text_of(obj(item).get("filename")) or key for key, item in info.items()]
        files += [name for name in named if name not in files]
        fallback = {"From": posted.get("from"), "To": posted.get("to"), "Subject": posted.get("subject")}
    elif "message-headers" in posted or "body-plain" in posted:  # Mailgun, parsed
        listed = array(_json(posted.get("message-headers")))
        headers = [(str(pair[0]), str(pair[1])) for pair in listed if isinstance(pair, list) and len(pair) == 2]
        text, html = text_of(posted.get("body-plain")), text_of(posted.get("body-html"))
        fallback = {"From": posted.get("from") or posted.get("sender"), "Subject": posted.get("subject")}
    else:
        raise SourceError(
            "unexpected_shape", None, "a form-posted e-mail must come from SendGrid Inbound Parse or a Mailgun route"
        )
    present = {name.lower() for name, _ in headers}
    fields = {name: text_of(value) for name, value in fallback.items() if name.lower() not in present}
    return _message(fields, headers, text, html, files)


def _message(
    fields: Mapping[str, str | None],
    headers: Sequence[tuple[str, str]],
    text: str | None,
    html: str | None,
    attachments: Iterable[str],
) -> bytes:
    message = Message(policy=compat32)
    given = {name.lower() for name, value in fields.items() if value is not None}
    for name, value in headers:
        if _FIELD_NAME.fullmatch(name) and name.lower() not in _STRUCTURE and name.lower() not in given:
            message[name] = _raw(value)
    for name, field_value in fields.items():
        if field_value is not None:
            message[name] = _raw(field_value)
    bodies = [(body, subtype) for body, subtype in ((text, "plain"), (html, "html")) if body is not None]
    files = [_attachment(name) for name in attachments]
    message["MIME-Version"] = "1.0"
    if not files and len(bodies) == 1:  # one body: the message is that part
        _fill(message, *bodies[0])
        return message.as_bytes(policy=compat32)
    parts = [_fill(Message(policy=compat32), body, subtype) for body, subtype in bodies]
    if len(parts) == 2:
        alternative = Message(policy=compat32)
        alternative["Content-Type"] = "multipart/alternative"
        alternative.set_payload(list[Message | str](parts))
        parts = [alternative]
    message["Content-Type"] = "multipart/mixed"
    message.set_payload(list[Message | str]([*parts, *files]))
    return message.as_bytes(policy=compat32)


def _fill(part: Message, body: str, subtype: str) -> Message:
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(_raw(body))
    return part


def _raw(text: str) -> str:
    """Text as the stdlib keeps 8-bit bytes it read (surrogate escapes): written back as UTF-8 bytes, the way a
    mail with raw UTF-8 headers (RFC 6532) reads, not as one encoded word that would hide the address inside."""
    return text.encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape")


def _attachment(name: str) -> Message:
    part = Message(policy=compat32)
    part["Content-Type"] = "application/octet-stream"
    part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", name))  # RFC 2231: any name
    part.set_payload("")
    return part


def _header_block(block: str) -> list[tuple[str, str]]:
    parsed = HeaderParser(policy=compat32).parsestr(block)
    return [(str(name), str(value)) for name, value in parsed.items()]


def _json(value: Any) -> Any:
    """A form field's JSON (SendGrid's ``attachment-info``, Mailgun's ``message-headers``), or None when it is not
    JSON: the message is rebuilt without what it would have added."""
    try:
        return orjson.loads(text_of(value) or "null")
    except orjson.JSONDecodeError:
        return None
