"""Form bodies as (name, value) pairs, bounded: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Shared by the web-form adapter and the e-mail adapter's inbound-parse webhooks (SendGrid, Mailgun post a mail as a
form). Both count their fields before parsing, so a hostile body cannot stretch the parse.
"""

from __future__ import annotations

from email.errors import CloseBoundaryNotFoundDefect
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from pipeline.normalize import clean_text
from pipeline.sources import codepages
from pipeline.sources.base import SourceError, decode_text

#: Fields one submission may carry (a form has tens; 100,000 repeated ``&a=b`` is an attack on the adapter's time).
MAX_FIELDS = 1000


def too_many(count: int) -> SourceError:
    return SourceError("too_many_fields", None, f"the form has {count} fields; at most {MAX_FIELDS} are read")


def urlencoded_pairs(raw: bytes, charset: str | None) -> list[tuple[str, Any]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order, repeated names kept."""
    text = decode_text(raw, charset)
    if not text.strip():
        raise SourceError("empty_payload", None, "the form post is empty")
    if (count := text.count("&") + 1) > MAX_FIELDS:  # before parsing: the count bounds all later work
        raise too_many(count)
    try:
        return list(parse_qsl(text.strip(), keep_blank_values=True, encoding=charset or "utf-8", errors="strict"))
    except (UnicodeDecodeError, LookupError):
        # %-escapes of another charset than the one declared (or, undeclared, than UTF-8): a page served as
        # ISO-8859-1 posts "Jos%E9". Read like a body in the wrong charset: each value in its most plausible one
        return [(_unescaped(name), _unescaped(value)) for name, _, value in _fields(text.strip())]
    except ValueError as exc:
        raise SourceError("malformed_form", None, f"not a form post: {exc}") from None


def _fields(text: str) -> list[tuple[str, str, str]]:
    """``parse_qsl``'s split (on ``&``, each at its first ``=``; empty parts left out), values still escaped."""
    return [part.partition("=") for part in text.split("&") if part]


def _unescaped(value: str) -> str:
    """A %-escaped form value (``+`` a space) in UTF-8 when it is, else in the legacy code page it reads as."""
    data = unquote_to_bytes(value.replace("+", " "))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return codepages.legacy_text(data)


def multipart_pairs(raw: bytes, boundary: str | None, attachments: list[str]) -> list[tuple[str, Any]]:
    """The fields of a ``multipart/form-data`` body, in order; the names of its files are appended to
    ``attachments`` (their contents are not read)."""
    if not boundary:
        raise SourceError("malformed_form", None, "multipart/form-data without a boundary parameter")
    if (count := raw.count(b"--" + boundary.encode("utf-8", "replace")) - 1) > MAX_FIELDS:
        raise too_many(count)
    header = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\nMIME-Version: 1.0\r\n\r\n'.encode()
    try:
        message = BytesParser(policy=HTTP).parsebytes(header + raw)
        if not message.is_multipart():
            raise SourceError("malformed_form", None, "the multipart body has no parts")
        if any(isinstance(defect, CloseBoundaryNotFoundDefect) for defect in message.defects):
            # the body stops inside a part: its last field may be cut short, so none of it is taken as sent
            raise SourceError(
                "malformed_form", None, "the multipart body ends before its closing boundary (it was cut short)"
            )
        pairs: list[tuple[str, Any]] = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            if filename:
                attachments.append(clean_text(str(filename), 200) or "unnamed")
                continue
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            value = decode_text(payload if isinstance(payload, bytes) else b"", part.get_content_charset())
            pairs.append((name, value))
    except SourceError:
        raise
    except Exception as exc:  # the stdlib parser's defects surface as many exception types
        raise SourceError("malformed_form", None, f"the multipart body cannot be read ({type(exc).__name__})") from None
    if not pairs and not attachments:
        raise SourceError("malformed_form", None, "the multipart body has no form fields")
    return pairs
