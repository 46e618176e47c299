"""How a source signs its webhooks: leadpipe's own scheme, or the scheme of a vendor whose webhooks cannot send it.

WhatsApp (Meta), Viber, Telegram, Typeform, Intercom, Webflow, Mailgun, HubSpot, Twilio and Wufoo call a URL with
their own headers (or body fields) and no way to add leadpipe's, so a source names its vendor's scheme
(``SourceAuth.signature``) and its ``hmac_secret`` is the secret the vendor signs with (Meta's app secret, Viber's
auth token, Telegram's secret token, Mailgun's webhook signing key, the HubSpot app's client secret, Twilio's auth
token, ...):

============ ====================================== =========================================================
scheme       header                                 value
============ ====================================== =========================================================
leadpipe     X-Leadpipe-Timestamp, -Signature       ``sha256=`` hex HMAC-SHA256 of ``"<timestamp>.<body>"``
webflow      x-webflow-timestamp, -signature        hex HMAC-SHA256 of ``"<timestamp in ms>:<body>"``
meta         X-Hub-Signature-256                    ``sha256=`` hex HMAC-SHA256 of the body
intercom     X-Hub-Signature                        ``sha1=`` hex HMAC-SHA1 of the body
viber        X-Viber-Content-Signature              hex HMAC-SHA256 of the body
typeform     Typeform-Signature                     ``sha256=`` base64 HMAC-SHA256 of the body
telegram     X-Telegram-Bot-Api-Secret-Token        the secret itself (Telegram signs nothing)
mailgun      body fields timestamp, token, signature hex HMAC-SHA256 of ``"<timestamp><token>"`` (not the body)
hubspot      X-HubSpot-Request-Timestamp (ms),      base64 HMAC-SHA256 of ``"POST" + <URL> + <body> + <timestamp>``
             X-HubSpot-Signature-v3                 (the URL HubSpot calls: ``SourceAuth.public_url``)
twilio       X-Twilio-Signature                     base64 HMAC-SHA1 of ``<URL>`` + each form field's name and value,
                                                    sorted by name (form posts: SMS, WhatsApp, calls)
wufoo        body field HandshakeKey                the secret itself (Wufoo signs nothing)
============ ====================================== =========================================================

Mailgun puts its signature in the body (a route's form post, or ``signature`` of a webhook's JSON) and signs only a
timestamp and a one-time token: it proves the sender, not the content, which is all Mailgun offers.

The schemes with a timestamp (leadpipe, webflow, mailgun, hubspot) are refused outside the tolerance and their
replays are caught until the timestamp leaves it. Those that sign only the body have no time to bound a replay by: a
replay is caught for the tolerance after the first receipt, and after that the same bytes give the same event ids,
which are de-duplicated downstream, as for a bearer source. Every comparison is constant-time. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.sources.base import SourceError, parse_content_type, text_of
from pipeline.sources.formdata import multipart_pairs, urlencoded_pairs

Scheme = Literal[
    "leadpipe", "webflow", "meta", "intercom", "viber", "typeform", "telegram", "mailgun", "hubspot", "twilio", "wufoo"
]
"""``SourceAuth.signature``'s values."""

#: A request header by name (case-insensitive), or None.
Header = Callable[[str], str | None]


@dataclass(frozen=True)
class Presented:
    """What a request presents under a scheme: the signature (or token) header and the time it signs, if any."""

    signature: str
    signed_at: int | None
    """Unix seconds the signature covers (leadpipe, webflow, mailgun, hubspot), else None (the body alone is signed)."""
    signed: bytes = b""
    """What the signature covers besides the body and the URL (Mailgun: ``"<timestamp><token>"``)."""


#: (signature header, timestamp header or None, timestamp in milliseconds) per scheme.
_HEADERS: dict[Scheme, tuple[str, str | None, bool]] = {
    "leadpipe": ("X-Leadpipe-Signature", "X-Leadpipe-Timestamp", False),
    "webflow": ("x-webflow-signature", "x-webflow-timestamp", True),
    "meta": ("X-Hub-Signature-256", None, False),
    "intercom": ("X-Hub-Signature", None, False),
    "viber": ("X-Viber-Content-Signature", None, False),
    "typeform": ("Typeform-Signature", None, False),
    "telegram": ("X-Telegram-Bot-Api-Secret-Token", None, False),
    "mailgun": ("signature (a body field)", "timestamp and token (body fields)", False),
    "hubspot": ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", True),
    "twilio": ("X-Twilio-Signature", None, False),
    "wufoo": ("HandshakeKey (a body field)", None, False),
}


def header_names(scheme: Scheme) -> str:
    """The headers a refusal asks for."""
    signature, stamp, _ = _HEADERS[scheme]
    return f"{stamp} and {signature}" if stamp else signature


def presented(scheme: Scheme, header: Header, body: bytes = b"", content_type: str = "") -> Presented | str:
    """The request's signature and signed time, or the refusal reason (``missing_signature``, ``bad_timestamp``).
    ``body`` and ``content_type``: where Mailgun's signature is."""
    if scheme == "mailgun":
        return _mailgun_presented(body, content_type)
    if scheme == "wufoo":
        key = text_of(_form_fields(body, content_type).get("HandshakeKey"))
        return Presented(key, None) if key else "missing_signature"
    signature_name, stamp_name, in_ms = _HEADERS[scheme]
    signature = header(signature_name)
    stamp_text = header(stamp_name) if stamp_name else None
    if not signature or (stamp_name and not stamp_text):
        return "missing_signature"
    if stamp_text is None:
        return Presented(signature.strip(), None)
    try:
        stamp = int(stamp_text)
    except ValueError:
        return "bad_timestamp"
    return Presented(signature.strip(), stamp // 1000 if in_ms else stamp)


def problem(
    scheme: Scheme,
    secret: str,
    body: bytes,
    header: Header,
    *,
    tolerance_s: int,
    now: float,
    content_type: str = "",
    url: str | None = None,
) -> str | None:
    """None when the request is signed with ``secret`` under ``scheme`` (and, where a time is signed, fresh); else
    the refusal reason: ``missing_signature``, ``bad_timestamp``, ``stale_timestamp`` or ``bad_signature``.
    ``url``: the public URL the vendor calls (HubSpot signs it); ``content_type``: the body's (Mailgun's fields)."""
    found = presented(scheme, header, body, content_type)
    if isinstance(found, str):
        return found
    if found.signed_at is not None and abs(now - found.signed_at) > tolerance_s:
        return "stale_timestamp"
    key = secret.encode()
    given = found.signature
    if scheme == "leadpipe":
        stamp = header(_HEADERS["leadpipe"][1] or "") or ""
        expected = "sha256=" + _hex(key, stamp.encode() + b"." + body)
        given = given.lower()
    elif scheme == "webflow":
        stamp = header(_HEADERS["webflow"][1] or "") or ""
        expected, given = _hex(key, stamp.encode() + b":" + body), given.lower()
    elif scheme == "meta":
        expected, given = "sha256=" + _hex(key, body), given.lower()
    elif scheme == "intercom":
        expected, given = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(), given.lower()
    elif scheme == "viber":
        expected, given = _hex(key, body), given.lower()
    elif scheme == "typeform":  # base64 is case-sensitive
        expected = "sha256=" + base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    elif scheme == "mailgun":
        expected, given = _hex(key, found.signed), given.lower()
    elif scheme == "hubspot":
        stamp = header(_HEADERS["hubspot"][1] or "") or ""
        expected = _hubspot(key, url or "", body, stamp)
    elif scheme == "twilio":
        expected = _twilio(key, url or "", body, content_type)
    else:  # telegram, wufoo: the token itself
        expected = secret
    return None if hmac.compare_digest(expected.encode(), given.encode()) else "bad_signature"


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _hubspot(key: bytes, url: str, body: bytes, stamp: str) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method, URL, body and timestamp, concatenated."""
    digest = hmac.new(key, b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _twilio(key: bytes, url: str, body: bytes, content_type: str) -> str:
    """Twilio's signature of a form post: the URL it calls, then every field's name and value sorted by name. A body
    that is no form post gets no valid signature (Twilio's JSON callbacks sign a body hash in the URL instead)."""
    media_type, params = parse_content_type(content_type)
    if media_type != "application/x-www-form-urlencoded":
        return ""
    try:
        pairs = urlencoded_pairs(body, params.get("charset"))
    except SourceError:
        return ""
    signed = url + "".join(f"{name}{value}" for name, value in sorted(pairs, key=lambda pair: pair[0]))
    return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()


def _form_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """A form post's fields (the first of each name), or a JSON body's ``signature`` object (Mailgun's webhooks); a
    body that cannot be read has none (the adapter names what is wrong with it once it is authenticated)."""
    media_type, params = parse_content_type(content_type)
    try:
        if media_type == "multipart/form-data":
            return dict(reversed(multipart_pairs(body, params.get("boundary"), [])))
        if media_type == "application/x-www-form-urlencoded":
            return dict(reversed(urlencoded_pairs(body, params.get("charset"))))
        if media_type == "application/json":
            data = orjson.loads(body)
            signed = data.get("signature") if isinstance(data, dict) else None
            return signed if isinstance(signed, dict) else {}
    except (SourceError, orjson.JSONDecodeError):
        pass
    return {}


def _mailgun_presented(body: bytes, content_type: str) -> Presented | str:
    """Mailgun's timestamp, token and signature: fields of a route's form post, or ``signature`` of a webhook's
    JSON."""
    fields = _form_fields(body, content_type)
    stamp, token, signature = (fields.get(name) for name in ("timestamp", "token", "signature"))
    if not (isinstance(stamp, str | int) and isinstance(token, str) and isinstance(signature, str)):
        return "missing_signature"
    if not str(stamp).isdigit():
        return "bad_timestamp"
    return Presented(signature.strip(), int(stamp), str(stamp).encode() + token.encode())


def sign(scheme: Scheme, secret: str, body: bytes, timestamp: int, url: str = "") -> dict[str, str]:
    """The headers a vendor sends for ``body`` (for tests and the bench; the vendors compute them themselves);
    ``url``: the one HubSpot or Twilio calls (``twilio``: a form post's)."""
    key = secret.encode()
    match scheme:
        case "leadpipe":
            stamp = str(timestamp)
            return {
                "X-Leadpipe-Timestamp": stamp,
                "X-Leadpipe-Signature": "sha256=" + _hex(key, f"{stamp}.".encode() + body),
            }
        case "webflow":
            stamp = str(timestamp * 1000)
            return {"x-webflow-timestamp": stamp, "x-webflow-signature": _hex(key, f"{stamp}:".encode() + body)}
        case "meta":
            return {"X-Hub-Signature-256": "sha256=" + _hex(key, body)}
        case "intercom":
            return {"X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()}
        case "viber":
            return {"X-Viber-Content-Signature": _hex(key, body)}
        case "typeform":
            digest = hmac.new(key, body, hashlib.sha256).digest()
            return {"Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}
        case "telegram":
            return {"X-Telegram-Bot-Api-Secret-Token": secret}
        case "hubspot":
            stamp = str(timestamp * 1000)
            return {"X-HubSpot-Request-Timestamp": stamp, "X-HubSpot-Signature-v3": _hubspot(key, url, body, stamp)}
        case "twilio":
            return {"X-Twilio-Signature": _twilio(key, url, body, "application/x-www-form-urlencoded")}
        case "mailgun":
            raise ValueError("Mailgun signs body fields, not headers: use mailgun_fields")
        case "wufoo":
            raise ValueError("Wufoo sends its handshake key as a body field, not a header")


def mailgun_fields(secret: str, timestamp: int, token: str) -> dict[str, str]:
    """The body fields Mailgun adds to what it posts (for tests and the bench)."""
    stamp = str(timestamp)
    return {"timestamp": stamp, "token": token, "signature": _hex(secret.encode(), stamp.encode() + token.encode())}
