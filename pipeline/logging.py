"""structlog set-up: JSON in production, readable on a terminal, and personal data redacted from every line.

Redaction runs on structlog's own events and on every stdlib logger (faust, aiokafka, uvicorn) through one
``ProcessorFormatter``, so a third-party library that logs a payload cannot leak an address either.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Literal
from uuid import UUID

import structlog
from pydantic import BaseModel
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

#: Keys whose values are personal data whatever they look like (names cannot be found by a pattern).
PII_KEYS = frozenset(
    {
        "email",
        "e_mail",
        "mail",
        "phone",
        "mobile",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "surname",
        "given_name",
        "family_name",
        "position",
        "job_title",
        "company_address",
        "address",
        "location",
        "skype",
        "skype_id",
        "linkedin",
        "linkedin_url",
        "messenger_handles",
        "handle",
        "ip",
        "ip_address",
        "user_agent",
        "message",
        "body",
        "text",
        "transcript",
        "payload",
        "raw",
        "subject_line",
        "birth_date",
        "stated_age",
        "password",
        "token",
        "authorization",
        "secret",
        "signature",
        "person",
        # credentials (pipeline/identity): API keys, OAuth2/OIDC tokens and client secrets, session cookies
        "api_key",
        "client_secret",
        "access_token",
        "id_token",
        "refresh_token",
        "code_verifier",
        "credentials",
        "cookie",
        "set_cookie",
        "key_hash",
    }
)

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|[^\s@<>\"']+@[^\s@<>\"']+\.[^\s@<>\"']{2,}"
)
#: URL-encoded addresses (``jane%40example.com``) as they appear in access logs and query strings.
_URL_EMAIL = re.compile(r"[^\s@<>\"'/?&=%]+(?:%[0-9A-Fa-f]{2}[^\s@<>\"'/?&=%]*)*%40[^\s<>\"'/?&=]+\.[A-Za-z]{2,}")
#: A run of digits with the separators people write phone numbers with; a phone when it holds 9+ digits. National
#: formats (``415-555-2671``, ``030 12345678``) have no ``+``, so the digit count decides, not the prefix.
_PHONE = re.compile(r"(?<![\w.-])(?:\+|00)?\(?\d[\d \t\u00a0().-]{5,30}\d\)?(?![\w-]|:\d)")  # ':\d': a clock time
_FLOAT = re.compile(r"\d+\.\d+")
_DIGIT = re.compile(r"\d\D?\d\D?\d")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
#: pydantic's ValidationError quotes the offending input (a name, an address): keep the error, drop the input.
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=|\]$)", re.MULTILINE)
#: Credentials in free text. A JWT (access or ID token); a leadpipe API key (``pipeline/identity/keys.py``: the key id
#: stays, it is not secret and says which key); an Authorization header's value; OAuth2 secrets in a query string
#: (a sign-in callback's code and state, a client secret or verifier someone put in a URL).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_API_KEY = re.compile(r"\b(lpk_[a-z2-7]{12})_[A-Za-z0-9_-]{20,}")
_AUTH_HEADER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"([?&](?:code|state|client_secret|code_verifier|access_token|id_token|refresh_token|password|api_key)=)[^&\s\"']+"
)


def _ip_or_loopback(match: re.Match[str]) -> str:
    """Loopback and the wildcard address identify nobody and make broker addresses in logs readable."""
    return match.group() if match.group().startswith("127.") or match.group() == "0.0.0.0" else "[ip]"  # noqa: S104


def _phone_or_not(match: re.Match[str]) -> str:
    text = match.group()
    if _FLOAT.fullmatch(text) or sum(c.isdigit() for c in text) < 9:
        return text
    return "[phone]"


def scrub_text(text: str) -> str:
    """Replace e-mail addresses, phone numbers, IP addresses, quoted pydantic inputs and credentials in free text."""
    if "eyJ" in text:
        text = _JWT.sub("[jwt]", text)
    if "lpk_" in text:
        text = _API_KEY.sub(r"\1_[redacted]", text)
    if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
        text = _AUTH_HEADER.sub(r"\1 [redacted]", text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_SECRET.sub(r"\1[redacted]", text)
    if "input_value=" in text:
        text = _PYDANTIC_INPUT.sub("input_value=[redacted]", text)
    if "%40" in text:
        text = _URL_EMAIL.sub("[email]", text)
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    if _DIGIT.search(text):  # most log text has no digit run worth a look: skip two regexes
        text = _IPV4.sub(_ip_or_loopback, text)
        text = _PHONE.sub(_phone_or_not, text)
    return text


def personal_data_in(text: str) -> str | None:
    """What kind of personal data free text a person wrote holds ("an e-mail address", "a phone number"), or None:
    ``scrub_text``'s patterns, except that a bare run of digits (a HubSpot contact id, a ticket number) is no phone.
    For text that is kept, not logged (a rights request's reasons outlive an erasure of the person), so it is refused
    rather than scrubbed."""
    if ("@" in text and _EMAIL.search(text)) or ("%40" in text and _URL_EMAIL.search(text)):
        return "an e-mail address"
    for match in _PHONE.finditer(text):
        written = match.group().strip()
        if sum(c.isdigit() for c in written) >= 9 and (written[0] in "+(0" or not written.isdigit()):
            return "a phone number"
    return None


_PII_SUFFIXES = (
    *("_email", "_emails", "_phone", "_phones", "_phone_number", "_name", "_names", "_ip", "_address"),
    *("_token", "_secret", "_password"),  # credentials: bearer_token, hmac_secret, oidc_client_secret
)


def _is_pii_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PII_KEYS or lowered.endswith(_PII_SUFFIXES)


#: Values that cannot hold personal data and that renderers format better than a repr.
_SAFE_TYPES = (bool, int, float, UUID, datetime, date, time, timedelta, Enum, Decimal)


def redact(value: Any, key: str | None = None) -> Any:
    """Redact a log value: PII-named keys wholesale, strings by pattern, containers recursively."""
    if key is not None and _is_pii_key(key) and value not in (None, "", [], {}):
        return REDACTED
    if value is None or isinstance(value, _SAFE_TYPES):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes | bytearray):
        return scrub_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {scrub_text(str(k)): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    if isinstance(value, BaseModel):  # by field name, so names are caught too, not only what a pattern finds
        return redact(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact(dataclasses.asdict(value))
    return scrub_text(repr(value))  # renderers would repr() it anyway; a repr can quote a payload


def redact_pii(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the last line of defence; callers should log ids, not people, in the first place."""
    out: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        if key == "event" and isinstance(value, str):
            out[key] = scrub_text(value)
        elif key in ("exc_info", "stack_info", "_record", "_from_structlog"):
            out[key] = value
        else:
            out[key] = redact(value, key)
    return dict(out)


def _scrub_rendered(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Scrub rendered tracebacks too: an exception message may quote a payload."""
    for key in ("exception", "stack"):
        if isinstance(event_dict.get(key), str):
            event_dict[key] = scrub_text(event_dict[key])
    return event_dict


def _redact_arg(value: Any) -> Any:
    """One %-format argument: same type where a format spec may need it (numbers), scrubbed text otherwise."""
    if value is None or isinstance(value, _SAFE_TYPES):
        return value
    if isinstance(value, str | bytes | bytearray | Mapping | list | tuple | set | frozenset | BaseModel):
        return redact(value)
    return scrub_text(str(value))


_SCRUBBING_CLASSES: dict[type[logging.LogRecord], type[logging.LogRecord]] = {}


def _scrubbing_class(cls: type[logging.LogRecord]) -> type[logging.LogRecord]:
    """A subclass whose ``getMessage`` scrubs the formatted message (an address split across arguments)."""
    sub = _SCRUBBING_CLASSES.get(cls)
    if sub is None:

        def get_message(self: logging.LogRecord) -> str:
            return scrub_text(cls.getMessage(self))

        sub = type(f"Scrubbing{cls.__name__}", (cls,), {"getMessage": get_message})
        _SCRUBBING_CLASSES[cls] = sub
    return sub


def _scrubbing_record_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Scrub every stdlib LogRecord as it is made, before any handler sees it.

    The formatter on the root handler covers loggers that propagate; this covers the rest: a library (mode/faust's
    Worker, uvicorn's default config) that installs its own handler and formatter would otherwise print raw text.
    The arguments stay a tuple of the same shape, because some formatters (uvicorn's access log) unpack them.
    """

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if isinstance(record.msg, str):  # structlog's own records carry a dict here, already redacted
            record.msg = scrub_text(record.msg)
            if isinstance(record.args, Mapping):
                record.args = {key: _redact_arg(value) for key, value in record.args.items()}
            elif record.args:
                record.args = tuple(_redact_arg(value) for value in record.args)
            record.__class__ = _scrubbing_class(type(record))
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = scrub_text(rendered)  # Formatter.format prints exc_text when it is set
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return record

    factory._leadpipe_scrubbing = True  # type: ignore[attr-defined]
    return factory


def _install_record_factory() -> None:
    current = logging.getLogRecordFactory()
    if not getattr(current, "_leadpipe_scrubbing", False):
        logging.setLogRecordFactory(_scrubbing_record_factory(current))


def _ensure_redaction() -> None:
    """Before ``configure_logging`` runs (imports, tests, embedding), structlog's defaults must not print raw PII."""
    _install_record_factory()
    if not structlog.is_configured():
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,
                redact_pii,
                structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
                structlog.dev.ConsoleRenderer(colors=False),
            ]
        )


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the moment of the write, not the one at set-up: while rich shows a
    progress bar it swaps ``sys.stderr`` for a proxy that prints above the bar, so a log line never lands inside it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def for_a_person(fmt: Literal["auto", "json", "console"] = "auto", stream: Any = None) -> bool:
    """Whether log lines are rendered for a person (readable) rather than a machine (JSON): ``console``, or ``auto``
    on a terminal."""
    stream = stream or sys.stderr
    return fmt == "console" or (fmt == "auto" and bool(getattr(stream, "isatty", lambda: False)()))


def configure_logging(
    level: str | None = "INFO", fmt: Literal["auto", "json", "console"] = "auto", stream: Any = None
) -> None:
    """Configure structlog and the stdlib root logger once per process.

    ``level=None`` means the default for the audience: WARNING when lines are rendered for a person (a terminal shows
    the command's own output, not its logs), INFO for machines (JSON).
    """
    readable = for_a_person(fmt, stream)
    level = level or ("WARNING" if readable else "INFO")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        redact_pii,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    colors = readable and stream is None and sys.stderr.isatty()
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
        if readable
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        # the level filter first: a debug line that will not be written costs no redaction
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub_rendered,
            renderer,
        ],
    )
    handler: logging.Handler = _CurrentStderr() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: the spam engine's client makes hundreds a second. Its failures come back
    # to leadpipe's code as typed results, which logs what matters.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    _install_record_factory()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    _ensure_redaction()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
