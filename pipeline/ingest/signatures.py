"""How a source signs its webhooks: leadpipe's own scheme, or the scheme of a vendor whose webhooks cannot send it.

WhatsApp (Meta), Viber, Telegram, Typeform, Intercom, Webflow, Mailgun, HubSpot, Twilio, Wufoo, Calendly, tawk.to,
Tally and Zoom call a URL with their own headers (or body fields) and no way to add leadpipe's, so a source names its
vendor's scheme (``SourceAuth.signature``) and its ``hmac_secret`` is the secret the vendor signs with (Meta's app
secret, Viber's auth token, Telegram's secret token, Mailgun's webhook signing key, the HubSpot app's client secret,
Twilio's auth token, Calendly's webhook signing key, tawk.to's webhook secret key, Tally's signing secret, the Zoom
app's secret token, ...):

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
             X-HubSpot-Signature-v3                 (the URL HubSpot calls: ``SourceAuth.public_url``, with the
                                                    escapes HubSpot lists decoded)
twilio       X-Twilio-Signature                     base64 HMAC-SHA1 of ``<URL>`` + each form field's name and value,
                                                    by name, a repeated name's values sorted (form posts: SMS,
                                                    WhatsApp, calls)
wufoo        body field HandshakeKey                the secret itself (Wufoo signs nothing)
calendly     Calendly-Webhook-Signature             ``t=<unix seconds>,v1=`` hex HMAC-SHA256 of ``"<t>.<body>"``
tawk         X-Tawk-Signature                       hex HMAC-SHA1 of the body
tally        Tally-Signature                        base64 HMAC-SHA256 of the body (the JSON Tally posts)
zoom         x-zm-request-timestamp, x-zm-signature ``v0=`` hex HMAC-SHA256 of ``"v0:<timestamp>:<body>"``
============ ====================================== =========================================================

Where each comes from: Calendly, developer.calendly.com/api-docs/overview/webhooks/webhook-signatures (and its
webhooks overview: "Calendly-Webhook-Signature: t=<unix>,v1=<hex>. Verify HMAC-SHA256(key, "<t>." + raw_body)");
tawk.to, developer.tawk.to/webhooks ("Verifying webhook signature": HMAC-SHA1 of the body with the webhook's secret
key, hex, in ``X-Tawk-Signature``); Tally, tally.so/help/webhooks ("Add a signing secret": its example is
``createHmac('sha256', secret).update(JSON.stringify(payload)).digest('base64')``, the JSON it posts, so the raw
body); HubSpot, developers.hubspot.com/docs/api/webhooks/validating-requests ("Validate the v3 request signature");
Twilio, twilio-python's ``RequestValidator.compute_signature`` (twilio/request_validator.py).

Mailgun puts its signature in the body (a route's form post, or ``signature`` of a webhook's JSON) and signs only a
timestamp and a one-time token: it proves the sender, not the content, which is all Mailgun offers.

Zoom, developers.zoom.us/docs/api/webhooks ("Verify webhook events": ``v0:{x-zm-request-timestamp}:{body}`` hashed
with the app's secret token, sent as ``v0=<hex>``). Zoom also checks the endpoint before it sends events and every
72 hours after (``endpoint.url_validation``, its ``plainToken``): the answer it expects is ``zoom_url_validation``'s.

The schemes with a timestamp (leadpipe, webflow, mailgun, hubspot, calendly, zoom) are refused outside the tolerance
and their replays are caught until the timestamp leaves it. Those that sign only the body have no time to bound a
replay by: a replay is caught for the tolerance after the first receipt, and after that the same bytes give the same
event ids, which are de-duplicated downstream, as for a bearer source. Every comparison is constant-time. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.sources.base import SourceError, parse_content_type, text_of
from pipeline.sources.formdata import multipart_pairs, urlencoded_pairs

Scheme = Literal[
    "leadpipe",
    "webflow",
    "meta",
    "intercom",
    "viber",
    "typeform",
    "telegram",
    "mailgun",
    "hubspot",
    "twilio",
    "wufoo",
    "calendly",
    "tawk",
    "tally",
    "zoom",
]
"""``SourceAuth.signature``'s values."""

#: A request header by name (case-insensitive), or None.
Header = Callable[[str], str | None]


@dataclass(frozen=True)
class Presented:
    """What a request presents under a scheme: the signature (or token) header and the time it signs, if any."""

    signature: str
    signed_at: int | None
    """Unix seconds the signature covers (leadpipe, webflow, mailgun, hubspot, calendly, zoom), else None (the body
    alone is signed)."""
    signed: bytes = b""
    """What the signature covers besides the body and the URL (Mailgun: ``"<timestamp><token>"``; Calendly: the
    ``"<t>."`` before the body, ``t`` as sent)."""


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
    "calendly": ("Calendly-Webhook-Signature", None, False),  # its time is inside: t=<unix seconds>,v1=<hex>
    "tawk": ("X-Tawk-Signature", None, False),
    "tally": ("Tally-Signature", None, False),
    "zoom": ("x-zm-signature", "x-zm-request-timestamp", False),
}

#: The schemes whose signed time is in milliseconds (Webflow, HubSpot).
_IN_MS = frozenset(scheme for scheme, (_, _, in_ms) in _HEADERS.items() if in_ms)

#: The escapes HubSpot decodes in the URI before it signs v3 (its "Validate the v3 request signature" table), as
#: listed there; every other escape (``%26``, ``%3D``, ``%20``, ...) is signed as it is.
_HUBSPOT_DECODED = re.compile("%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)")


def header_names(scheme: Scheme) -> str:
    """The headers a refusal asks for."""
    signature, stamp, _ = _HEADERS[scheme]
    return f"{stamp} and {signature}" if stamp else signature


def timestamp_name(scheme: Scheme) -> str:
    """Where a scheme's signed time is (a header, or Mailgun's and Calendly's own fields)."""
    if scheme == "calendly":
        return "t= of Calendly-Webhook-Signature"
    return _HEADERS[scheme][1] or "the signed time"


def request_headers(scheme: Scheme) -> tuple[str, ...]:
    """The request headers a scheme reads (none for Mailgun's and Wufoo's body fields)."""
    if scheme in ("mailgun", "wufoo"):
        return ()
    signature, stamp, _ = _HEADERS[scheme]
    return (signature, stamp) if stamp else (signature,)


def presented(scheme: Scheme, header: Header, body: bytes = b"", content_type: str = "") -> Presented | str:
    """The request's signature and signed time, or the refusal reason (``missing_signature``, ``bad_timestamp``).
    ``body`` and ``content_type``: where Mailgun's signature is."""
    if scheme == "mailgun":
        return _mailgun_presented(body, content_type)
    if scheme == "wufoo":
        key = text_of(_form_fields(body, content_type).get("HandshakeKey"))
        return Presented(key, None) if key else "missing_signature"
    if scheme == "calendly":
        return _calendly_presented(header(_HEADERS["calendly"][0]))
    signature_name, stamp_name, in_ms = _HEADERS[scheme]
    signature = header(signature_name)
    stamp_text = header(stamp_name) if stamp_name else None
    if not signature or (stamp_name and not stamp_text):
        return "missing_signature"
    if stamp_text is None:
        return Presented(signature.strip(), None)
    stamp = unix_time(stamp_text)
    if stamp is None:
        return "bad_timestamp"
    return Presented(signature.strip(), stamp // 1000 if in_ms else stamp)


#: The most digits a signed time may have: Unix milliseconds have 13 until the year 2286. More overflows a float
#: when compared with the clock (``int`` of 400 digits minus ``time.time()``), and ``int()`` of over 4,300 raises.
_STAMP_DIGITS = 15


def unix_time(text: str) -> int | None:
    """A signed time as sent (ASCII digits only, around them whitespace), or None: ``int()`` would also take
    ``"+1"``, ``"1_000"`` and other scripts' digits (``"١٢٣"``), none of which any sender signs."""
    text = text.strip()
    if not text or len(text) > _STAMP_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def in_milliseconds(signed_at: int, now: float, tolerance_s: float) -> bool:
    """Whether a time that should be seconds is the right time in milliseconds (a sender's ``Date.now()``)."""
    return abs(now - signed_at / 1000) <= tolerance_s


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
        if scheme not in _IN_MS and in_milliseconds(found.signed_at, now, tolerance_s):
            return "timestamp_in_milliseconds"
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
    elif scheme == "calendly":
        expected, given = _hex(key, found.signed + body), given.lower()
    elif scheme == "tawk":
        expected, given = hmac.new(key, body, hashlib.sha1).hexdigest(), given.lower()
    elif scheme == "tally":  # base64 is case-sensitive
        expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    elif scheme == "zoom":
        stamp = header(_HEADERS["zoom"][1] or "") or ""
        expected, given = "v0=" + _hex(key, b"v0:" + stamp.encode() + b":" + body), given.lower()
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
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method, URI, body and timestamp, concatenated. HubSpot signs the
    URI with the escapes its documentation lists decoded (``%3A`` is ``:``, ...), so a ``public_url`` configured
    with them would never verify as written; a URL without them is signed as it is."""
    uri = _HUBSPOT_DECODED.sub(lambda escape: chr(int(escape.group(1), 16)), url)
    digest = hmac.new(key, b"POST" + uri.encode() + body + stamp.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _twilio(key: bytes, url: str, body: bytes, content_type: str) -> str:
    """Twilio's signature of a form post: the URL it calls, then each field name in sorted order followed by each of
    its distinct values in sorted order, as twilio-python's ``RequestValidator.compute_signature`` builds it (a
    repeated name's values in arrival order would refuse what Twilio signed). A body that is no form post gets no
    valid signature (Twilio's JSON callbacks sign a body hash in the URL instead)."""
    media_type, params = parse_content_type(content_type)
    if media_type != "application/x-www-form-urlencoded":
        return ""
    try:
        pairs = urlencoded_pairs(body, params.get("charset"))
    except SourceError:
        return ""
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha1).digest()).decode()


def _calendly_presented(value: str | None) -> Presented | str:
    """Calendly's ``t=<unix seconds>,v1=<hex>`` (in any order): the signature, its time, and the ``"<t>."`` it
    signs before the body (``t`` as sent, so the bytes signed are the ones Calendly hashed)."""
    parts: dict[str, str] = {}
    for part in (value or "").split(","):
        name, _, text = part.strip().partition("=")
        parts[name] = text
    stamp, signature = parts.get("t"), parts.get("v1")
    if not stamp or not signature:
        return "missing_signature"
    if (seconds := unix_time(stamp)) is None:  # int() of "²" or of 5,000 digits raises
        return "bad_timestamp"
    return Presented(signature, seconds, stamp.encode() + b".")


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
    if isinstance(stamp, bool) or (seconds := unix_time(str(stamp))) is None:  # "²".isdigit(), 2**70, 5,000 digits
        return "bad_timestamp"
    return Presented(signature.strip(), seconds, str(stamp).encode() + token.encode())


def sign(scheme: Scheme, secret: str, body: bytes, timestamp: int, url: str = "") -> dict[str, str]:
    """The headers a vendor sends for ``body`` (for tests and the bench; the vendors compute them themselves);
    ``url``: the one HubSpot or Twilio calls (``twilio``: a form post's; ``hubspot``: as configured, its listed
    escapes are decoded as HubSpot does)."""
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
        case "calendly":
            stamp = str(timestamp)
            return {"Calendly-Webhook-Signature": f"t={stamp},v1=" + _hex(key, f"{stamp}.".encode() + body)}
        case "tawk":
            return {"X-Tawk-Signature": hmac.new(key, body, hashlib.sha1).hexdigest()}
        case "tally":
            return {"Tally-Signature": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()}
        case "zoom":
            stamp = str(timestamp)
            signed = "v0=" + _hex(key, f"v0:{stamp}:".encode() + body)
            return {"x-zm-request-timestamp": stamp, "x-zm-signature": signed}
        case "mailgun":
            raise ValueError("Mailgun signs body fields, not headers: use mailgun_fields")
        case "wufoo":
            raise ValueError("Wufoo sends its handshake key as a body field, not a header")


def mailgun_fields(secret: str, timestamp: int, token: str) -> dict[str, str]:
    """The body fields Mailgun adds to what it posts (for tests and the bench)."""
    stamp = str(timestamp)
    return {"timestamp": stamp, "token": token, "signature": _hex(secret.encode(), stamp.encode() + token.encode())}


def zoom_url_validation(secret: str, body: bytes) -> dict[str, str] | None:
    """The answer Zoom expects to its ``endpoint.url_validation`` request (``{"plainToken", "encryptedToken"}``: the
    token and its hex HMAC-SHA256 under the app's secret token), or None when the body is no such request. Zoom
    enables a webhook endpoint only once it answers so, and checks it again every 72 hours."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("event") != "endpoint.url_validation":
        return None
    token = data.get("payload", {}).get("plainToken") if isinstance(data.get("payload"), dict) else None
    if not isinstance(token, str) or not token:
        return None
    return {"plainToken": token, "encryptedToken": _hex(secret.encode(), token.encode())}
