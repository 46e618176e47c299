"""The history a mail client puts under a reply or a forward, told apart from what the writer wrote.

A reply quotes the message it answers ("On Tue, Jun 4, 2024 at 9:00 AM Tom <tom@example.com> wrote:" and ``>``
lines; "Am ... schrieb ...:", "Le ... a écrit :"), Outlook puts the answered message under "-----Original
Message-----" or a rule and a ``From:``/``Sent:`` block, and a forward under "---------- Forwarded message
---------" or "Begin forwarded message:". That history is someone else's words, often the company's own campaign:
the content rules must not read its links and offers as the writer's (the e-mail adapter marks where it starts,
``Interaction.history_at``, and the content rules read the message up to there). Pure: text in, text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr

from pipeline.normalize import ADDRESS_IN_TEXT

#: An attribution line (two lines at most: Gmail wraps a long one) in the languages leadpipe's forms are asked in.
_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:On|Am|Le|El|Il giorno|Op|Em|W dniu)\b(?:[^\n]{4,300}?|[^\n]{1,300}\n[^\n]{1,300}?)"
    r"\b(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|napisał(?:\(a\))?)\b[^\n:]{0,120}:[ \t\r]*$",
    re.IGNORECASE | re.MULTILINE,
)
#: A client's separator before an answered or forwarded message.
_SEPARATOR = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Forwarded message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht)[ \t]*-{2,}|Begin forwarded message:|"
    r"Anfang der weitergeleiteten Nachricht:|Début du message réexpédié :)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FROM_LABELS = r"(?:From|Von|De|Da|Van|Od)"
#: Outlook's header block of the answered message (after a rule of underscores, or on its own).
_OUTLOOK_BLOCK = re.compile(
    rf"^(?:_{{20,}}[ \t]*\n)?[ \t]*{_FROM_LABELS}[ \t]?:[^\n]*\n[ \t]*"
    r"(?:Sent|Gesendet|Envoyé|Enviado|Inviato|Verzonden|Date|Datum|Wysłano)[ \t]?:",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE = re.compile(r"^[ \t]*([^\s:][^:\n]{0,30}?)[ \t]?:[ \t]*(.*)$")
_SUBJECT_LABELS = frozenset({"subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "temat", "assunto"})
_FROM_NAMES = frozenset({"from", "von", "de", "da", "van", "od"})


@dataclass(frozen=True, slots=True)
class History:
    """The answered or forwarded message under a reply: who wrote it and about what (when the client says) and its
    text, ``>`` marks removed."""

    sender: str | None
    subject: str | None
    text: str


def split_history(text: str) -> tuple[int, History] | None:
    """(where the history under a reply or forward starts in ``text``, the history), or None when it is all the
    writer's. The first attribution line followed by quoted text, client separator, Outlook header block or closing
    run of ``>`` lines starts it."""
    starts = [m.start() for m in _SEPARATOR.finditer(text)][:1] + [m.start() for m in _OUTLOOK_BLOCK.finditer(text)][:1]
    for attribution in _ATTRIBUTION.finditer(text):
        after = text[attribution.end() :].lstrip("\r\n")
        if not after.strip() or after.lstrip().startswith(">") or attribution.start() == 0:
            starts.append(attribution.start())
            break
    if (quoted := _trailing_quote(text)) is not None:
        starts.append(quoted)
    if not starts:
        return None
    cut = min(starts)
    return cut, _history(text[cut:])


def _trailing_quote(text: str) -> int | None:
    """Where a closing run of ``>`` lines (two or more, blank lines between them allowed) starts, when the writer
    wrote something above it."""
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + lines[-1:]
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and (lines[start - 1].lstrip().startswith(">") or not lines[start - 1].strip()):
        start -= 1
    quoted = [line for line in lines[start:end] if line.strip()]
    if len(quoted) < 2 or not any(line.strip() for line in lines[:start]):
        return None
    while lines[start].strip() == "":
        start += 1
    return sum(len(line) for line in lines[:start])


def _history(block: str) -> History:
    """The history's sender, subject and text: from its attribution or the header lines under its separator."""
    lines = block.splitlines()
    sender: str | None = None
    subject: str | None = None
    first = lines[0] if lines else ""
    body_from = 1
    if (attribution := _ATTRIBUTION.match(block)) is not None:
        sender = _attributed(attribution.group(0))
        body_from = attribution.group(0).count("\n") + 1
    else:
        start = 1 if (_SEPARATOR.match(first) or first.strip().startswith("_")) else 0
        while start < len(lines) and not lines[start].strip():
            start += 1
        body_from = start
        for position in range(start, min(len(lines), start + 10)):
            header = _HEADER_LINE.match(lines[position])
            if header is None:
                if lines[position].strip():
                    break
                body_from = position + 1
                break
            label, value = header.group(1).strip().lower(), header.group(2).strip()
            if label in _FROM_NAMES and sender is None:
                sender = _from_line(value)
            elif label in _SUBJECT_LABELS and subject is None:
                subject = value or None
            body_from = position + 1
    body = "\n".join(_unquoted(line) for line in lines[body_from:]).strip()
    return History(sender, subject, body)


def _from_line(value: str) -> str | None:
    """ "Tom Sales <tom@example.com>" of a header line's value, as far as it names an address."""
    name, address = parseaddr(value)
    if "@" not in address:
        found = ADDRESS_IN_TEXT.search(value)
        return found.group(0) if found else None
    return f"{name} <{address}>" if name else address


#: What an attribution says before the writer's name: the date and time, and a verb that comes first ("schrieb").
_BEFORE_NAME = re.compile(
    r"^.*(?:\d{1,2}[:.]\d{2}(?:[ \t]?[AaPp]\.?[Mm]\.?)?(?:[ \t]?Uhr)?|\b\d{4}\b)[ ,]*"
    r"(?:(?:schrieb|schreef|escribió|escreveu|ha scritto|napisał(?:\(a\))?)\s+)?",
    re.DOTALL,
)


def _attributed(line: str) -> str | None:
    """The writer an attribution names: "Tom Sales <tom@example.com>" out of "On Tue, Jun 4, 2024 at 9:00 AM Tom
    Sales <tom@example.com> wrote:"."""
    flat = line.replace("\n", " ")
    found = ADDRESS_IN_TEXT.search(flat)
    if found is None:
        return None
    address = found.group(0).strip("<>[]")
    name = _BEFORE_NAME.sub("", flat[: found.start()]).strip(" <,\"'")
    return f"{name} <{address}>" if name and len(name) < 100 else address


def _unquoted(line: str) -> str:
    stripped = line.lstrip()
    if stripped.startswith(">"):
        return stripped[1:].removeprefix(" ")
    return line
