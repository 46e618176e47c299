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
#: ("At 08:29 AM 8/22/2002 -0400, Keith wrote:" is Eudora's).
_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:On|At|Am|Le|El|Il giorno|Op|Em|W dniu)\b(?:[^\n]{4,300}?|[^\n]{1,300}\n[^\n]{1,300}?)"
    r"\b(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|napisał(?:\(a\))?)\b[^\n:]{0,120}:[ \t\r]*$",
    re.IGNORECASE | re.MULTILINE,
)
#: An attribution in a language the pattern above lacks (Gmail's Japanese "2024年6月4日(火) 9:00 Tom <tom@...>:",
#: Russian "вт, 4 июн. 2024, Tom <tom@...>:", Chinese "Tom <tom@...> 于2024年6月4日 09:00写道" and a full-width
#: colon): a line naming an address in angle brackets and ending in a colon, one only when quoted lines follow it.
_ADDRESS_ATTRIBUTION = re.compile(r"^[^\n<>]{0,200}<[^<>\s@]+@[^<>\s]+>[^\n<>]{0,80}[:\uff1a][ \t\r]*$", re.MULTILINE)
#: A client's separator before an answered or forwarded message.
_SEPARATOR = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Forwarded message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht)[ \t]*-{2,}|Begin forwarded message:|"
    r"Anfang der weitergeleiteten Nachricht:|Début du message réexpédié :)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
#: Outlook's labels of the answered message's sender and date, in the languages of its localised editions.
_FROM_LABELS = r"(?:From|Von|De|Da|Van|Od|Fra|Från|Kimden|Lähettäjä|Feladó|От|Від|差出人|发件人|寄件者|보낸 사람)"
_SENT_LABELS = (
    r"(?:Sent|Gesendet|Envoyé|Enviado(?: el)?|Inviato|Verzonden|Date|Datum|Wysłano|Skickat|Sendt|Odesláno"
    r"|Gönderildi|Lähetetty|Elküldve|Отправлено|Надіслано|送信日時|发送时间|寄件日期|보낸 날짜)"
)
#: A label's colon: after any white space (French puts a no-break space before it), or full-width (Japanese, Chinese).
_COLON = r"[^\S\n]*[:\uff1a]"
#: Outlook's header block of the answered message (after a rule of underscores, or on its own).
_OUTLOOK_BLOCK = re.compile(
    rf"^(?:_{{20,}}[ \t]*\n)?[ \t]*{_FROM_LABELS}{_COLON}[^\n]*\n[ \t]*{_SENT_LABELS}{_COLON}",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE = re.compile(rf"^[ \t]*([^\s:\uff1a][^:\uff1a\n]{{0,30}}?){_COLON}[ \t]*(.*)$")
_SUBJECT_LABELS = frozenset(
    {"subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "temat", "assunto", "ämne", "emne", "předmět"}
    | {"konu", "aihe", "tárgy", "тема", "件名", "主题", "主旨", "제목"}
)
_FROM_NAMES = frozenset(
    {"from", "von", "de", "da", "van", "od", "fra", "från", "kimden", "lähettäjä", "feladó", "от", "від", "差出人"}
    | {"发件人", "寄件者", "보낸 사람"}
)
#: A line that opens a history in a form ``split_history`` may not know: a rule or a client's separator, a quoted
#: line, a sender line naming an address, or an attribution (a line naming an address that ends in a colon).
_HISTORY_LINE = re.compile(
    rf"^[ \t]*(?:[-_=*]{{5,}}[ \t]*$|-{{2,}}[^\n]{{1,60}}?-{{2,}}[ \t]*$|>|{_FROM_LABELS}{_COLON}[^\n@]*@"
    r"|[^\n@]{0,300}@[^\n]{0,300}?[:\uff1a][ \t]*$)",
    re.IGNORECASE | re.MULTILINE,
)


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
        follows, end = _quote_under(text, attribution.end())
        if end == len(text) or (follows and not _answered_at(text, end)) or (attribution.start() == 0 and not follows):
            starts.append(attribution.start())
            break
    for attribution in _ADDRESS_ATTRIBUTION.finditer(text):
        follows, end = _quote_under(text, attribution.end())
        if follows and not _answered_at(text, end):
            starts.append(attribution.start())
            break
    if (quoted := _trailing_quote(text)) is not None:
        starts.append(quoted)
    if not starts:
        return None
    cut = min(starts)
    return cut, _history(text[cut:])


#: The quoted lines under an attribution, blank lines among them (from the attribution line's end).
_QUOTE_BLOCK = re.compile(r"(?:[ \t\r]*\n|[ \t]*>[^\n]*\n?)*[ \t\r]*")
_QUOTED = re.compile(r"\s*>")
#: A signature's separator or a footer's rule: what follows it under a quote is no answer to the quote.
_SIGN_OFF = re.compile(r"[ \t]*(?:--|[-_=]{8,})[ \t\r]*(?:\n|\Z)")


def _quote_under(text: str, at: int) -> tuple[bool, int]:
    """(whether quoted lines follow an attribution that ends at ``at``, where they and the blank lines among them
    end): where the writer's text goes on, or ``len(text)``."""
    block = _QUOTE_BLOCK.match(text, at)  # it matches nothing at worst
    return _QUOTED.match(text, at) is not None, block.end() if block is not None else at


def _answered_at(text: str, at: int) -> bool:
    """Whether the writer's own words follow the quote that ends at ``at``: a reply written below the quote (Pine's,
    Mutt's, a mailing list's habit) or between its parts, whose attribution opens no history under the reply; a
    signature or a list's footer alone is no answer."""
    return at < len(text) and _SIGN_OFF.match(text, at) is None


def history_line(text: str) -> int | None:
    """Where the first line that may open a history starts (``_HISTORY_LINE``), or the history ``split_history``
    finds when it starts earlier: in a reply, nothing at or below it is surely the writer's."""
    found = split_history(text)
    line = _HISTORY_LINE.search(text)
    starts = [found[0]] if found is not None else []
    if line is not None:
        starts.append(line.start())
    return min(starts) if starts else None


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
    if lines and lines[0].lstrip().startswith(">"):  # a quoted forward (Apple Mail's "> Begin forwarded message:")
        lines = [_unquoted(line) for line in lines]
        block = "\n".join(lines)
    sender: str | None = None
    subject: str | None = None
    first = lines[0] if lines else ""
    body_from = 1
    if (attribution := _ATTRIBUTION.match(block) or _ADDRESS_ATTRIBUTION.match(block)) is not None:
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
