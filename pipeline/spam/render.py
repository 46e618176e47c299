"""A contact event as the RFC 822 message a mail filter understands (pure: no I/O, same event -> same bytes).

Web forms, chatbots and messengers carry no e-mail, but spam in them is the same trade (links, money, SEO
offers), and rspamd's and SpamAssassin's rules read messages. So the person's own words become the body, their
name and address the ``From:``, the subject line (or the channel and kind, when the channel has none) the
``Subject:``; ``Date:`` and ``Message-ID:`` come from the event so that no rule fires on a missing header. The
agent's and the bot's turns of a transcript are left out (they are ours, not the sender's).

E-mail arrives as a message already: ``render_message(event, raw=...)`` hands the raw bytes as received.
"""

from __future__ import annotations

import hashlib
import quopri
from email.header import Header
from email.utils import format_datetime, formataddr

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.records import RawRecord
from pipeline.models.spam import EngineMessage
from pipeline.processors.text import person_text
from pipeline.sources.base import event_id_of, parse_content_type
from pipeline.sources.email import messages_of

#: The recipient every rendered message goes to (rules compare To: with From:, and a missing To: scores).
RECIPIENT = "leads@leadpipe.invalid"


def _sender(event: ContactEvent) -> tuple[str, str]:
    """(display name, address) of the person; a channel-specific placeholder address when they gave none."""
    person = event.person
    name = " ".join(p for p in (person.first_name, person.last_name) if p)
    if person.email:
        return name, person.email
    return name, f"unknown@{event.channel.value.replace('_', '-')}.leadpipe.invalid"


def _subject(event: ContactEvent) -> str:
    interaction = event.interaction
    if interaction.subject:
        return " ".join(interaction.subject.split())[:998]
    return f"{event.channel.value} {interaction.kind.value}".replace("_", " ")


def _body(event: ContactEvent) -> str:
    """The person's own words: the message, their transcript turns, and the free-text fields spam is stuffed into
    (company, position, website) on a line each, as a form mailer would write them."""
    interaction = event.interaction
    parts: list[str] = []
    text = person_text(event)
    subject = interaction.subject
    if subject and text.startswith(subject):  # person_text starts with the subject line: it is in Subject: already
        text = text[len(subject) :].lstrip("\n")
    if text:
        parts.append(text)
    person = event.person
    fields = [("Company", person.company), ("Position", person.position), ("Website", person.linkedin_url)]
    if interaction.page_url:
        fields.append(("Page", interaction.page_url))
    lines = [f"{label}: {value}" for label, value in fields if value]
    if lines:
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _header(text: str) -> str:
    """One header value: whitespace (line breaks too: no header injection) folded to single spaces, RFC 2047
    encoded when it is not ASCII."""
    flat = " ".join(text.split())[:998]
    return flat if flat.isascii() else Header(flat, "utf-8").encode()


def render_message(event: ContactEvent, raw: bytes | None = None) -> EngineMessage:
    """The engine's view of one event. ``raw``: the e-mail as received, scored as it is (headers and all).

    Written out directly rather than through ``email.message.EmailMessage``, which took ~1.9 ms a message here
    (bench/spam.py), more than the rest of the spam path; what this writes is checked by parsing it back with the
    standard library in the tests.
    """
    ip = event.provenance.ip
    if raw is not None:
        return EngineMessage(event_id=event.event_id, data=raw, ip=ip, sender=event.person.email)
    name, address = _sender(event)
    host = f"{event.channel.value.replace('_', '-')}.leadpipe.invalid"
    headers = [
        f"From: {formataddr((' '.join(name.split()), address), charset='utf-8')}",
        f"To: {RECIPIENT}",
        f"Subject: {_header(_subject(event))}",
        f"Date: {format_datetime(event.occurred_at)}",
        f"Message-ID: <{event.event_id}@{host}>",
        f"X-Leadpipe-Channel: {event.channel.value}",
        f"X-Leadpipe-Interaction: {event.interaction.kind.value}",
    ]
    if event.provenance.user_agent:
        headers.append(f"User-Agent: {_header(event.provenance.user_agent[:300])}")
    body = _body(event).replace("\r\n", "\n").replace("\r", "\n")
    data = body.encode("utf-8", errors="replace")
    if any(len(line) > 900 for line in data.split(b"\n")):  # 8bit allows 998 octets a line
        encoding, data = "quoted-printable", quopri.encodestring(data)
    else:
        encoding = "8bit" if not body.isascii() else "7bit"
    headers += [
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
    ]
    head = "\r\n".join(headers).encode("ascii", errors="replace")
    message = head + b"\r\n\r\n" + data.replace(b"\n", b"\r\n")
    envelope = address if event.channel is not Channel.EMAIL else event.person.email
    return EngineMessage(event_id=event.event_id, data=message, ip=ip, sender=envelope)


def email_of_payload(payload: bytes, record: RawRecord) -> bytes | None:
    """The one message of an e-mail payload (as ingest received it) that ``record``'s event was made from.

    An mbox payload holds many; the adapter numbered them, and the event id names the number
    (``SourceContext.event_id``: source, payload digest, index), so the message is found without parsing any."""
    messages = messages_of(payload, *parse_content_type(record.content_type))
    if len(messages) == 1:
        return messages[0]
    digest = hashlib.sha256(payload).hexdigest()
    for index, message in enumerate(messages):
        if event_id_of(record.source_id, digest, index) == record.event_id:
            return message
    return None


__all__ = ["RECIPIENT", "email_of_payload", "render_message"]
