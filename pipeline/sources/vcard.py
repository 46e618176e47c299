"""vCard contacts (.vcf), as phones, Outlook, Google Contacts and business-card scanners export them.

Each card becomes one mapping of leadpipe's canonical field names, read like a CSV row by the event (business
cards) and customer adapters and by ``leadpipe import``. vobject parses the cards (vCard 2.1, 3.0 and 4.0: folded
lines, quoted-printable, per-property charsets, escapes, grouped properties). Binary properties (PHOTO, LOGO, SOUND,
KEY) are removed before it sees a card: leadpipe keeps none of them, and one truncated photo makes vobject refuse a
card whose contact data is intact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import vobject
from vobject.base import backslashEscape
from vobject.icalendar import stringToTextValues

from pipeline.sources.base import SourceError, decode_text
from pipeline.sources.fields import canonical_field, normalize_key

VCARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})

_BEGIN = re.compile(r"^BEGIN:VCARD\s*$", re.IGNORECASE)
_END = re.compile(r"^END:VCARD\s*$", re.IGNORECASE)
_BINARY = re.compile(r"^(?:[\w-]+\.)?(?:PHOTO|LOGO|SOUND|KEY)[;:]", re.IGNORECASE)
_BDAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")
_BDAY_YEARLESS = re.compile(r"^--(\d{2})-?(\d{2})")


def split_vcards(raw: bytes, charset: str | None = None) -> list[tuple[int, str]]:
    """(line the card starts on, the card's text) for each ``BEGIN:VCARD`` ... ``END:VCARD``; text between cards
    is ignored. A file with no card, or a card that never ends, is refused naming the line."""
    lines = decode_text(raw, charset or _declared_charset(raw)).splitlines()
    cards: list[tuple[int, str]] = []
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        if _BEGIN.match(line):
            if start is not None:
                raise SourceError("malformed_vcard", f"line {start}", "a card begins before the previous one ended")
            start = number
        elif _END.match(line) and start is not None:
            cards.append((start, "\r\n".join(lines[start - 1 : number]) + "\r\n"))
            start = None
    if start is not None:
        raise SourceError("malformed_vcard", f"line {start}", "the card has no END:VCARD")
    if not cards:
        raise SourceError("empty_payload", None, "no vCard (BEGIN:VCARD ... END:VCARD) in the payload")
    return cards


#: A vCard 2.1 property's own charset (``N;CHARSET=SHIFT_JIS:...``), as a Japanese phone's export writes its raw bytes.
_CHARSET_PARAM = re.compile(rb";CHARSET=([A-Za-z0-9_.:-]+?)[;:]", re.IGNORECASE)


def _declared_charset(raw: bytes) -> str | None:
    """The one charset the file's properties declare, when it is not UTF-8: its 8-bit bytes are in it (a file that
    declares several, or none, is read as any payload is: UTF-8, else its legacy code page)."""
    declared: set[str] = {bytes(name).decode("ascii").lower() for name in _CHARSET_PARAM.findall(raw)}
    if len(declared) != 1 or declared & {"utf-8", "utf8"}:
        return None
    return declared.pop()


def read_vcards(raw: bytes, charset: str | None = None) -> list[tuple[int, dict[str, str]]]:
    """(line the card starts on, its fields) for every card of a vCard document."""
    return [(line, card_fields(text, line)) for line, text in split_vcards(raw, charset)]


def card_fields(text: str, line: int = 1) -> dict[str, str]:
    """One card's contact data under leadpipe's field names (``pipeline.sources.fields``): the name (N, else FN),
    the preferred e-mail and phone, organisation and title, the preferred (else work) address as one line with its
    city and country, the birthday (``--MM-DD`` without a year), LinkedIn and Skype, and the note as the message."""
    try:
        card = vobject.readOne(_without_binary(text), allowQP=True)
    except Exception as exc:  # vobject raises ParseError, ValueError, binascii.Error ... on what it cannot read
        raise SourceError("malformed_vcard", f"line {line}", f"not a readable vCard: {type(exc).__name__}") from None
    contents: dict[str, list[Any]] = card.contents
    out: dict[str, str] = {}

    def put(name: str, value: str | None) -> None:
        if value and value.strip():
            out[name] = value.strip()

    if name := _first(contents.get("n")):
        put("first_name", _joined(name.value.given, name.value.additional))
        put("last_name", _joined(name.value.family))
    if "first_name" not in out and "last_name" not in out:
        put("full_name", _text(_first(contents.get("fn"))))
    put("email", _text(_preferred(contents.get("email"))))
    put("phone", _phone(_text(_preferred(contents.get("tel")))))
    if org := _first(contents.get("org")):
        put("company", _joined(org.value[:1]) if isinstance(org.value, list) else _text(org))
    put("position", _text(_first(contents.get("title"))) or _text(_first(contents.get("role"))))
    if adr := _preferred(contents.get("adr"), prefer="work"):
        address = adr.value
        put("company_address", _address_line(address))
        put("location", ", ".join(p for p in (_joined(address.city), _joined(address.region)) if p))
        put("country", _joined(address.country) or _text(_first(contents.get("x-abadr"))))  # Apple's code: "jp"
    put("birth_date", _birthday(_first(contents.get("bday"))))
    put("linkedin_url", _linkedin(contents))
    put("skype_id", _skype(contents))
    put("message", _text(_first(contents.get("note"))))
    for prop, lines in contents.items():  # X-EVENT-DATE, X-CUSTOMER-ID ...: a known field an exporter added
        if prop.startswith("x-") and lines and (field := canonical_field(prop[2:])) is not None and field not in out:
            put(field, ",".join(stringToTextValues(str(lines[0].value))))
    return out


def with_fields(text: str, values: Mapping[str, str]) -> str:
    """The card with ``values`` (field name -> value) added as ``X-`` properties where it has no such field
    (``leadpipe import --default``), so that the card itself, not a copy in another format, is what is submitted."""
    present = card_fields(text) if values else {}
    added = [
        f"X-{x_name.upper().replace('_', '-')}:{backslashEscape(value)}"
        for name, value in values.items()
        if (canonical_field(name) or name) not in present
        # an X- name is ASCII letters, digits and dashes (RFC 6350 3.3): the field's canonical name when it has one
        and (x_name := canonical_field(name) or normalize_key(name).encode("ascii", "ignore").decode().strip("_"))
    ]
    if not added:
        return text
    body = text.rstrip("\r\n")
    head, _, end = body.rpartition("\n")
    return "\r\n".join([head.rstrip("\r"), *added, end]) + "\r\n"


def _without_binary(text: str) -> str:
    """The card without its binary properties and their folded continuation lines."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if skipping and (line[:1] in (" ", "\t") or (line.strip() and ":" not in line)):
            continue  # a continuation: folded (RFC 6350) or vCard 2.1 base64 lines, up to a blank line
        skipping = bool(_BINARY.match(line))
        if not skipping:
            kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def _birthday(line: Any) -> str | None:
    """``BDAY`` as ``YYYY-MM-DD``, or ``--MM-DD`` when it has no year (vCard 4's ``--0621``; Apple's
    ``X-APPLE-OMIT-YEAR=1604`` on ``1604-06-21``, whose year only stands in for none): build_person leaves a yearless
    one out with a note. Anything else is not read."""
    text = (_text(line) or "").strip()
    if (yearless := _BDAY_YEARLESS.match(text)) is not None:
        return "--{}-{}".format(*yearless.groups())
    if (bday := _BDAY.match(text)) is None:
        return None
    omitted = {str(year).strip() for year in line.params.get("X-APPLE-OMIT-YEAR", ())}
    return "--{1}-{2}".format(*bday.groups()) if bday.group(1) in omitted else "-".join(bday.groups())


def _first(lines: Sequence[Any] | None) -> Any:
    return lines[0] if lines else None


def _types(line: Any) -> set[str]:
    """A property's TYPE values in lower case, vCard 2.1's bare parameters (``TEL;CELL;PREF``) included."""
    found = {str(p).lower() for p in getattr(line, "singletonparams", ())}
    for value in line.params.get("TYPE", ()):
        found.update(part.strip().lower() for part in str(value).split(","))
    if any(str(p).strip() == "1" for p in line.params.get("PREF", ())):
        found.add("pref")
    return found


def _preferred(lines: Sequence[Any] | None, prefer: str | None = None) -> Any:
    """The property marked preferred, else the first of type ``prefer``, else the first one."""
    if not lines:
        return None
    for line in lines:
        if "pref" in _types(line):
            return line
    if prefer is not None:
        for line in lines:
            if prefer in _types(line):
                return line
    return lines[0]


def _text(line: Any) -> str | None:
    if line is None:
        return None
    value = line.value
    return value if isinstance(value, str) else _joined(value)


def _joined(*parts: Any) -> str:
    """vobject gives a structured part as a string or a list of strings: one text, spaces between."""
    words: list[str] = []
    for part in parts:
        if isinstance(part, str):
            words.append(part.strip())
        elif isinstance(part, Iterable):
            words.extend(str(p).strip() for p in part)
    return " ".join(w for w in words if w)


def _address_line(address: Any) -> str:
    """Street, postcode and city, region, country on one line (the address fields' order in most countries)."""
    parts = (
        _joined(address.extended),
        _joined(address.street),
        _joined(address.code, address.city),
        _joined(address.region),
        _joined(address.country),
    )
    return ", ".join(p for p in parts if p)


def _phone(text: str | None) -> str | None:
    """A ``tel:`` URI (vCard 4.0) as the number it names: parameters such as ``;ext=`` dropped, dashes kept."""
    if text is None:
        return None
    if text.lower().startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    return text


def _linkedin(contents: dict[str, list[Any]]) -> str | None:
    """X-SOCIALPROFILE of type linkedin (Apple, Google), else a URL or profile on linkedin.com."""
    for line in contents.get("x-socialprofile", ()):
        if "linkedin" in _types(line) or "linkedin.com" in str(line.value).lower():
            return str(line.value)
    for line in contents.get("url", ()):
        if "linkedin.com/" in str(line.value).lower():
            return str(line.value)
    return None


def _skype(contents: dict[str, list[Any]]) -> str | None:
    """IMPP ``skype:`` (vCard 3.0/4.0), X-SKYPE or X-SKYPE-USERNAME (Outlook, Android)."""
    for line in contents.get("impp", ()):
        value = str(line.value)
        if value.lower().startswith("skype:"):
            return value[6:].split("?", 1)[0]
    for name in ("x-skype", "x-skype-username"):
        if line := _first(contents.get(name)):
            return str(line.value)
    return None
