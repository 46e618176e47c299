"""structlog set-up: JSON in production, readable on a terminal, and personal data redacted from every line.

Redaction runs on structlog's own events and on every stdlib logger (faust, aiokafka, uvicorn) through one
``ProcessorFormatter``, so a third-party library that logs a payload cannot leak an address either.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog
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
    }
)

_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|[^\s@<>\"']+@[^\s@<>\"']+\.[^\s@<>\"']{2,}"
)
_PHONE = re.compile(r"(?<![\w-])(?:(?:\+|00)\d[\d\s().-]{5,18}\d|\d{9,15})(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")


def scrub_text(text: str) -> str:
    """Replace e-mail addresses, phone numbers and IP addresses in free text."""
    text = _EMAIL.sub("[email]", text)
    text = _PHONE.sub("[phone]", text)
    return _IPV4.sub("[ip]", text)


def _is_pii_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PII_KEYS or lowered.endswith(("_email", "_phone", "_name", "_ip"))


def redact(value: Any, key: str | None = None) -> Any:
    """Redact a log value: PII-named keys wholesale, strings by pattern, containers recursively."""
    if key is not None and _is_pii_key(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return value


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


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto", stream: Any = None
) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        redact_pii,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
