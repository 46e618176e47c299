"""Reading raw mail as a mail reader shows it, within bounds that hostile mail cannot stretch.

Parsing is the stdlib's legacy parser (``policy.compat32``), whose parts keep their raw header values: nothing is
interpreted while the tree is built except what the MIME structure needs, and every header is checked against
the limits below as the parser stores it, before anything reads it (the modern policy's header parser is
quadratic: a 14 KB ``Content-Type`` of 7,000 ``;`` took seconds). A message over a limit is refused with a typed
reason, as is a tree deeper or wider than a mail client builds.

Rendering follows a mail reader: ``multipart/alternative`` shows its plain text (else its HTML, reduced to text
with the links kept), ``multipart/related`` its root, every other multipart each inline part in turn; attached and
forwarded messages (``message/rfc822``, digests) become quoted messages with their sender; a multipart without a
usable boundary is re-read with the delimiter its body actually uses, or shown as text. Every part that is not
read is named, so nothing a person sent vanishes without a trace.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from pipeline.sources.base import SourceError, decode_text
from pipeline.sources.html import read_html, without_invisible

#: A part's header block (the top level's is checked on the bytes, before parsing). Real mail with a long relay
#: chain (Received, ARC, DKIM, Exchange's X- headers) stays under 40 KiB.
MAX_HEADER_BLOCK_BYTES = 64 * 1024
#: Header fields in one part. RFC 5321 6.3 treats 100 Received fields as a mail loop; real mail has 20-150 fields.
MAX_HEADER_FIELDS = 500
#: One field, folded lines included (a References field of a 200-message thread is ~14 KiB).
MAX_HEADER_FIELD_BYTES = 16 * 1024
#: A field leadpipe interprets (``READ_FIELDS``): the stdlib's address, encoded-word and parameter parsers cost
#: microseconds per character, some quadratically; real values are a few hundred bytes (a long RFC 2231 file name
#: ~1 KiB).
MAX_READ_FIELD_BYTES = 2 * 1024
#: ``;``-separated parameters of Content-Type / Content-Disposition (RFC 2231 splits a long file name in ~30).
MAX_MIME_PARAMETERS = 64
#: MIME parts in one message, attached messages' parts included. Real mail has under 20; a Mailman digest of 30
#: mails ~90. The parser costs ~60 us a part, so this bounds a flood of empty parts to ~15 ms.
MAX_PARTS = 250
#: Nesting of parts: each level multiplies the parser's work per line. Ten forwards-as-attachment reach ~30.
MAX_DEPTH = 40

READ_FIELDS = frozenset(
    {"from", "reply-to", "delivered-to", "subject", "date", "content-type", "content-disposition"}
    | {"content-transfer-encoding"}
)
_PARAMETERISED = frozenset({"content-type", "content-disposition"})

OVERSIZED_HEADERS = "oversized_headers"
MIME_TOO_COMPLEX = "mime_too_complex"

_HEADER_LINE = re.compile(rb"From |[!-9;-~]*:|[ \t]")
"""How the parser tells a header line (a field, a continuation, an mbox ``From ``) from the first line of a body."""
_HEADER_END = re.compile(rb"(?:\r(?!\n)|\n)(?!From |[!-9;-~]*:|[ \t])")  # a bare CR ends a line too (classic Mac)


def _refuse(reason: str, prefix: str, message: str) -> SourceError:
    return SourceError(reason, prefix + ("headers" if reason == OVERSIZED_HEADERS else "mime"), message)


def check_header_block(raw: bytes, prefix: str = "") -> None:
    """Refuse a top-level header block over the limit before any parsing (a linear scan of at most that many bytes).

    The block ends where the parser ends it: at the first line that is not a header line (the blank separator, or
    a body line when a sender left the separator out)."""
    if len(raw) <= MAX_HEADER_BLOCK_BYTES or not _HEADER_LINE.match(raw):
        return
    # Searched within the limit, a line break whose next line the limit cuts looks like the end (the look-ahead sees
    # nothing): each candidate is confirmed against the whole message. Only the last line can be cut, so this is one
    # search and at most a few confirmations.
    for end in _HEADER_END.finditer(raw, 0, MAX_HEADER_BLOCK_BYTES + 1):
        if _HEADER_END.match(raw, end.start()):
            return
    raise _refuse(OVERSIZED_HEADERS, prefix, f"the header block is larger than {MAX_HEADER_BLOCK_BYTES} bytes")


class _Part(Message):
    """A part that checks each header field as the parser stores it, and the depth of the parts attached to it."""

    prefix = ""
    depth = 0
    header_bytes = 0

    def set_raw(self, name: str, value: str) -> None:
        lowered = name.strip().lower()
        size = len(name) + len(value)
        self.header_bytes += size + 2
        if len(self) >= MAX_HEADER_FIELDS:
            raise _refuse(OVERSIZED_HEADERS, self.prefix, f"more than {MAX_HEADER_FIELDS} header fields in a part")
        if self.header_bytes > MAX_HEADER_BLOCK_BYTES:
            raise _refuse(
                OVERSIZED_HEADERS, self.prefix, f"a part's header block is larger than {MAX_HEADER_BLOCK_BYTES} bytes"
            )
        limit = MAX_READ_FIELD_BYTES if lowered in READ_FIELDS else MAX_HEADER_FIELD_BYTES
        if size > limit:
            what = _field_label(lowered)
            raise _refuse(OVERSIZED_HEADERS, self.prefix, f"a {what} header field is longer than {limit} bytes")
        if lowered in _PARAMETERISED and value.count(";") > MAX_MIME_PARAMETERS:
            what = _field_label(lowered)
            raise _refuse(OVERSIZED_HEADERS, self.prefix, f"{what} has more than {MAX_MIME_PARAMETERS} parameters")
        super().set_raw(name, value)

    def attach(self, payload: Any) -> None:
        depth = self.depth + 1
        if depth > MAX_DEPTH:
            raise _refuse(MIME_TOO_COMPLEX, self.prefix, f"MIME parts are nested more than {MAX_DEPTH} deep")
        payload.depth = depth
        super().attach(payload)


def _field_label(lowered: str) -> str:
    """The field's name when leadpipe knows it (never an attacker's invented name in a message)."""
    return lowered.title() if lowered in READ_FIELDS else "single"


@dataclass
class _Factory:
    """Makes the parser's parts, counting them; every part carries the rejection prefix and its depth."""

    prefix: str
    depth: int
    parts: int = 0

    def __call__(self, policy: Policy = email_policy.compat32) -> _Part:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _refuse(MIME_TOO_COMPLEX, self.prefix, f"more than {MAX_PARTS} MIME parts")
        part = _Part(policy)
        part.prefix = self.prefix
        part.depth = self.depth
        return part


def parse_message(raw: bytes, prefix: str = "", depth: int = 0) -> Message:
    """The MIME tree of a message, or a SourceError: oversized_headers, mime_too_complex or malformed_mime."""
    check_header_block(raw, prefix)
    factory = _Factory(prefix, depth)
    parser = BytesParser(policy=email_policy.compat32.clone(message_factory=factory))
    try:
        return parser.parsebytes(raw)
    except SourceError:
        raise
    except Exception as exc:  # the legacy parser is lenient; whatever it still raises is a broken message
        raise SourceError("malformed_mime", prefix or None, f"not a MIME message ({type(exc).__name__})") from None


# ---- headers -----------------------------------------------------------------------------------------------------


def unsurrogate(text: str) -> str:
    """Text the legacy parser returned with undecodable bytes as surrogates (raw UTF-8 or Latin-1 headers)."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    return decode_text(text.encode("utf-8", "surrogateescape"))


def raw_header(part: Message, name: str) -> str | None:
    """The first field of that name, unfolded, as text (RFC 2047 encoded words still encoded)."""
    for key, value in part.raw_items():
        if key.strip().lower() == name:
            text = unsurrogate(str(value))
            return re.sub(r"(?:\r\n?|\n)(?=[ \t])", "", text).strip()  # CRLF, LF or a classic Mac CR
    return None


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded, never raising: adjacent words of one charset are joined before decoding
    (senders split multi-byte characters across words), whitespace between encoded words dropped (RFC 2047 6.2),
    and an unknown or lying charset falls back like a body's."""
    out: list[str] = []
    pending: list[tuple[bytes, str]] = []
    position = 0

    def flush() -> None:
        if pending:
            charset = pending[0][1]
            data = b"".join(chunk for chunk, _ in pending)
            try:
                out.append(decode_text(data, charset))
            except SourceError:  # a byte-order mark before bytes that are no UTF-8: as a body's (part_text)
                out.append(data.decode("latin-1"))
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        if gap and not (gap.isspace() and pending):
            flush()
            out.append(gap)
        position = match.end()
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix: utf-8*en
        try:
            if match.group(2) in "Bb":
                chunk: bytes | str = _b_word(match.group(3))
            else:
                [(chunk, _charset)] = decode_header(match.group(0))
        except Exception:  # a broken word is kept as it was sent
            flush()
            out.append(match.group(0))
            continue
        data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape")
        if pending and pending[0][1] != charset:
            flush()
        pending.append((data, charset))
    flush()
    out.append(value[position:])
    return "".join(out)


#: What is no part of base64's alphabet: the stray characters bulk mailers leave in encoded words.
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def _b_word(encoded: str) -> bytes:
    """An encoded word's base64 as a mail reader decodes it: stray characters skipped, missing padding added, a
    lone last character (no byte in it) left out, and padding inside the word (a sender that joined two words'
    base64) read as the end of one piece. The stdlib refused such a word, which then stayed encoded."""
    out = b""
    for piece in encoded.split("="):
        data = _NOT_BASE64.sub("", piece)
        data = data[:-1] if len(data) % 4 == 1 else data
        out += base64.b64decode(data + "=" * (-len(data) % 4))
    return out


def header_text(part: Message, name: str) -> str | None:
    value = raw_header(part, name)
    return decode_words(value) if value is not None else None


#: A quoted string (to the field's end when it is not closed: one pass, however many quotes), or a run of encoded
#: words (white space between them) in an address field.
_QUOTED_OR_WORDS = re.compile(
    r'"(?:[^"\\]|\\[\s\S]?)*+"?|' + _ENCODED_WORD.pattern + r"(?:\s+" + _ENCODED_WORD.pattern.replace("(", "(?:") + ")*"
)
#: What splits or ends an address's display name when written literally (RFC 5322 specials; a period is allowed).
_SPECIALS = re.compile(r'[,;<>@:"()\[\]\\]')


def _quote_encoded_names(value: str) -> str:
    """An address field whose encoded words hold a literal special (``=?iso-8859-1?Q?M=FCller,_Hans?=``: RFC 2047
    forbids it, senders do it), with each such run of words decoded into a quoted string: split first, the comma
    would cut the name in two."""

    def quoted(match: re.Match[str]) -> str:
        words = match.group(0)
        if words.startswith('"') or not _SPECIALS.search(words):
            return words
        text = decode_words(words).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    return _QUOTED_OR_WORDS.sub(quoted, value)


def addresses(part: Message, name: str) -> list[tuple[str | None, str]]:
    """(decoded display name or comment, address as written) of every address in a field, in order.

    Split before decoding, so an encoded name holding a comma or ``<`` stays one name (one sent with a literal comma
    in its encoded words is quoted first: ``_quote_encoded_names``); the old ``addr (Full Name)`` form gives its
    comment as the name.
    """
    value = raw_header(part, name)
    if not value:
        return []
    try:
        found = getaddresses([_quote_encoded_names(value)])
    except Exception:  # RecursionError on nested comments, among others: no usable address
        return []
    return [(decode_words(display).strip() or None, address) for display, address in found if address]


def header_date(part: Message) -> datetime | None:
    value = header_text(part, "date")
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


#: The fields a mailing list adds (RFC 2369, 2919, 8058); any other ``List-`` name is nobody's standard.
LIST_FIELDS = frozenset(
    {"list-id", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post", "list-help"}
    | {"list-owner", "list-archive"}
)


def list_header_count(part: Message) -> int:
    """How many distinct list fields (``LIST_FIELDS``) a message carries: it came through a list."""
    return len({key.strip().lower() for key, _value in part.raw_items()} & LIST_FIELDS)


# ---- rendering ---------------------------------------------------------------------------------------------------


@dataclass
class Quoted:
    """An attached or forwarded message: who wrote it, when, about what, and its text."""

    sender: str | None
    at: datetime | None
    subject: str | None
    text: str


@dataclass
class Rendered:
    """What a reader shows of a message: its own text, the messages it carries, and the parts it did not read;
    ``hid_words``: its own HTML held words the reader does not see (left out of ``texts``)."""

    texts: list[str] = field(default_factory=list)
    quoted: list[Quoted] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    hid_words: bool = False

    @property
    def text(self) -> str:
        """The inline text parts in order, a blank line between them."""
        return "\n\n".join(self.texts)

    def add_text(self, text: str) -> None:
        text = text.strip("\r\n")
        if text.strip():
            self.texts.append(text)


_TEXT_SUBTYPES = frozenset({"plain", "html", "enriched", "richtext"})
_BCHARS = r"[0-9A-Za-z'()+_,\-./:=? ]{0,71}[0-9A-Za-z'()+_,\-./:=?]"
_DELIMITER = re.compile(r"^--(" + _BCHARS + r")[ \t]*\r?$", re.MULTILINE)
"""A line that may delimit MIME parts (RFC 2046 5.1.1 bchars; a closing one ends in ``--`` as well)."""


def render(message: Message, prefix: str = "") -> Rendered:
    """The text, quoted messages and unread parts of a parsed message (see the module's docstring)."""
    out = Rendered()
    _render(message, out, prefix)
    return out


def _render(part: Message, out: Rendered, prefix: str) -> None:
    ctype = _content_type(part)
    maintype, _, subtype = ctype.partition("/")
    if maintype == "multipart":
        _render_multipart(part, subtype, out, prefix)
    elif ctype in ("message/rfc822", "message/global"):
        _render_attached_message(part, out, prefix)
    elif maintype == "text" and subtype in _TEXT_SUBTYPES and not _is_attachment(part):
        text, hid = _shown_text(part, subtype)
        out.hid_words |= hid
        out.add_text(_uudecoded_out(text, out) if subtype == "plain" else text)
    else:
        out.attachments.append(_attachment_name(part, ctype))


#: A uuencoded file in a plain-text body (Outlook Express's and Pine's attachments before MIME, worms' to this day):
#: ``begin <mode> <name>``, lines of the 64 characters uuencoding writes (never a lower-case letter), ``end``.
_UUENCODED = re.compile(
    r"^begin[ \t]+[0-7]{3,4}[ \t]+([^\r\n]{1,200}?)[ \t]*\r?\n(?:[ -`]*+\r?\n)*+end[ \t]*(?:\r?\n|\Z)", re.M
)


def _uudecoded_out(text: str, out: Rendered) -> str:
    """The text without the uuencoded files in it, each named as an attachment, as a mail reader shows them: their
    lines are no one's words, and read as text they were noise to the spam rules and a file no one saw named."""

    def attached(found: re.Match[str]) -> str:
        out.attachments.append(found.group(1))
        return ""

    return _UUENCODED.sub(attached, text) if "begin" in text else text


def _render_multipart(part: Message, subtype: str, out: Rendered, prefix: str) -> None:
    payload = part.get_payload()
    if not isinstance(payload, list):  # no boundary, or one the body does not use: read it as a reader would
        _render_broken_multipart(part, out, prefix)
        return
    children = [child for child in payload if isinstance(child, Message)]
    if subtype == "alternative":
        shown = _best_alternative(children)
        _render(shown, out, prefix)
        for child in children:  # an alternative that is no other rendering of the text: an invitation (text/calendar)
            kind = _content_type(child)
            if child is not shown and kind not in ("text/plain", "text/html") and not kind.startswith("multipart/"):
                out.attachments.append(_attachment_name(child, kind))
    elif subtype == "related":
        root = _related_root(part, children)
        _render(root, out, prefix)
        for child in children:
            if child is not root:
                out.attachments.append(_attachment_name(child, _content_type(child)))
    else:  # mixed, digest, report, signed, parallel and unknown subtypes (RFC 2046 5.1.3: read as mixed)
        for child in children:
            _render(child, out, prefix)


def _best_alternative(children: list[Message]) -> Message:
    """Plain text when it says something, else HTML, else the richest other alternative (the last, RFC 2046)."""
    for wanted in ("text/plain", "text/html"):
        for child in children:
            if _content_type(child) == wanted and part_text(child, wanted[5:]).strip():
                return child
    nested = [c for c in children if _content_type(c).startswith("multipart/")]
    return nested[-1] if nested else children[-1] if children else Message()


def _related_root(part: Message, children: list[Message]) -> Message:
    start = _param(part, "start")
    if start:
        for child in children:
            if (child.get("content-id") or "").strip() == start.strip():
                return child
    return children[0] if children else Message()


def _render_attached_message(part: Message, out: Rendered, prefix: str) -> None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    encoding = (raw_header(part, "content-transfer-encoding") or "").lower()
    if isinstance(inner, Message) and encoding in ("base64", "quoted-printable") and not len(inner):
        inner = _decoded_message(inner, encoding, prefix, getattr(part, "depth", 0) + 1)
    if not isinstance(inner, Message):
        out.attachments.append(f"{_filename(part) or 'forwarded-message.eml'} (message/rfc822)")
        return
    carried = Rendered()
    _render(inner, carried, prefix)
    sender = _display_sender(inner)
    subject = header_text(inner, "subject")
    if not carried.texts and sender is None:
        out.attachments.append(f"{_filename(part) or 'forwarded-message.eml'} (message/rfc822)")
    else:
        out.quoted.append(Quoted(sender, header_date(inner), subject, carried.text))
    out.quoted.extend(carried.quoted)
    out.attachments.extend(carried.attachments)


def _decoded_message(inner: Message, encoding: str, prefix: str, depth: int) -> Message:
    """An attached message sent base64- or quoted-printable-encoded (RFC 2046 forbids it, Outlook does it): the
    parser took its encoded lines for a body without headers; decode them and parse the message they hold."""
    carrier = Message()
    carrier["Content-Transfer-Encoding"] = encoding
    carrier.set_payload(inner.get_payload())
    data = carrier.get_payload(decode=True)
    return parse_message(data, prefix, depth) if isinstance(data, bytes) and data.strip() else inner


def _display_sender(message: Message) -> str | None:
    """A message's From as a reader shows it: ``Name <address>``, or the address alone."""
    found = addresses(message, "from")
    if not found:
        return None
    name, address = found[0]
    return f"{name} <{address}>" if name else address


def _render_broken_multipart(part: Message, out: Rendered, prefix: str) -> None:
    """A multipart whose declared boundary is missing or never used: re-read with the delimiter the body uses
    (the one that opens a part and comes back), or show the body as plain text."""
    body = part.get_payload()
    text = unsurrogate(body) if isinstance(body, str) else ""
    boundary = _used_boundary(text)
    if boundary is not None:
        header = f'Content-Type: {_content_type(part)}; boundary="{boundary}"\r\n\r\n'.encode()
        depth = getattr(part, "depth", 0)
        repaired = parse_message(header + text.encode("utf-8", "surrogateescape"), prefix, depth)
        if isinstance(repaired.get_payload(), list):
            _render(repaired, out, prefix)
            return
    out.add_text(text)


def _used_boundary(text: str) -> str | None:
    counts: dict[str, int] = {}
    closed: set[str] = set()
    for match in _DELIMITER.finditer(text):
        candidate = match.group(1)
        if candidate.endswith("--"):
            closed.add(candidate[:-2])
        else:
            counts[candidate] = counts.get(candidate, 0) + 1
    usable = [b for b, n in counts.items() if n >= 2 or b in closed]
    return max(usable, key=lambda b: counts[b]) if usable else None


def part_text(part: Message, subtype: str) -> str:
    """A text part's content as text (HTML reduced to text with its links kept), in its charset or a fallback."""
    return _shown_text(part, subtype)[0]


def _shown_text(part: Message, subtype: str) -> tuple[str, bool]:
    """A text part's text as its reader shows it (``part_text``), and whether its HTML hid words from the reader;
    characters drawn as nothing (a soft hyphen inside a word) are left out of plain text as of HTML."""
    payload: Any = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return "", False
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    try:
        text = decode_text(payload, charset)
    except SourceError:
        text = payload.decode("latin-1")
    if subtype == "html":
        return read_html(text)
    return without_invisible(text), False


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except Exception:
        return None
    return unsurrogate(value) if isinstance(value, str) else None


def _is_attachment(part: Message) -> bool:
    disposition = (raw_header(part, "content-disposition") or "").split(";", 1)[0].strip().lower()
    return disposition == "attachment" or _filename(part) is not None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    text = decode_words(unsurrogate(str(name))).strip()
    return text[:200] or None


def _attachment_name(part: Message, ctype: str) -> str:
    return _filename(part) or f"unnamed.{ctype.partition('/')[2] or 'bin'}"
