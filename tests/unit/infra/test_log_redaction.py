"""No log line carries an e-mail address, a phone number or a credential in clear text.

Covers structlog loggers and stdlib loggers of the libraries we run under (faust, aiokafka, uvicorn), in messages,
positional arguments, fields, nested containers, models, exception messages and tracebacks, and a library that
installs its own handler and formatter (as mode/faust's worker does unless told not to). Credentials (API keys,
OIDC access and ID tokens, Authorization headers, client and source secrets, a sign-in callback's code) likewise.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest
import structlog
from pydantic import BaseModel, EmailStr, ValidationError

from pipeline.logging import configure_logging, get_logger, scrub_text

EMAIL = "jane.doe+lead@example-corp.co.uk"
LOCAL_PART = "jane.doe+lead"
UNICODE_EMAIL = "jörg.müller@beispiel.de"
URL_ENCODED_EMAIL = "jane.doe%40example-corp.co.uk"
PHONES = {
    "+44 20 7946 0958": "7946",
    "+1 (415) 555-2671": "555-2671",
    "00493012345678": "3012345678",
    "415-555-2671": "555-2671",
    "(415) 555 2671": "555 2671",
    "030 12345678": "12345678",
    "+380 44 123 45 67": "123 45 67",
    "4155552671": "4155552671",
    "+33 6 12 34 56 78": "12 34 56 78",
    "+49 (0) 30 1234567": "30 1234567",
}
NAME = "Bartholomew Quattlebaum"
CLEAR = [EMAIL, LOCAL_PART, UNICODE_EMAIL, "jörg.müller", URL_ENCODED_EMAIL, NAME, *PHONES.values()]


@dataclass
class Lead:
    email: str
    phone: str


class Contact(BaseModel):
    first: str
    email: EmailStr


@pytest.fixture(params=["json", "console"])
def output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Logging configured as the CLI does, into a buffer; everything restored afterwards."""
    fmt: Literal["json", "console"] = request.param
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_config = structlog.get_config()
    saved_factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    configure_logging("DEBUG", fmt, stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        structlog.configure(**saved_config)
        logging.setLogRecordFactory(saved_factory)


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")


def assert_clean(text: str) -> None:
    assert text.strip(), "nothing was logged: the test would prove nothing"
    text = TIMESTAMP.sub("<time>", text)  # its microseconds may spell a fragment such as "7946"
    for secret in CLEAR:
        assert secret not in text, f"{secret!r} leaked into:\n{text}"
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text), text


def test_structlog_messages_fields_nested_and_models(output: io.StringIO) -> None:
    log = get_logger("pipeline.test")
    log.info(f"received from {EMAIL}")
    log.info("received from %s via %s", EMAIL, "+44 20 7946 0958")
    log.info("fields", email=EMAIL, contact_email=EMAIL, note=f"write to {EMAIL} or {UNICODE_EMAIL}")
    log.info("nested", data={"lead": {"email": EMAIL, "notes": [f"call {p}" for p in PHONES]}, EMAIL: "key"})
    log.info("people", emails=[EMAIL, UNICODE_EMAIL], phone_number="415-555-2671", name=NAME)
    log.info("objects", lead=Lead(EMAIL, "+1 (415) 555-2671"), contact=Contact(first="x", email=EMAIL))
    log.info("raw bytes", chunk=f"from: {EMAIL}".encode())
    log.info("url", path=f"/rights?email={URL_ENCODED_EMAIL}")
    assert_clean(output.getvalue())


def test_structlog_exceptions_and_tracebacks(output: io.StringIO) -> None:
    log = get_logger("pipeline.test")
    try:
        raise ValueError(f"cannot deliver to {EMAIL}, phone {'+1 (415) 555-2671'}")
    except ValueError as exc:
        log.exception("delivery failed")
        log.warning("as a field", error=exc)
    try:
        Contact(first=NAME, email="not an address " + EMAIL)
    except ValidationError:  # pydantic quotes the input value, names included
        log.exception("validation failed")
    text = output.getvalue()
    assert "Traceback" in text and "ValueError" in text
    assert_clean(text)


@pytest.mark.parametrize("name", ["faust", "aiokafka.producer", "uvicorn.error", "mode.worker", "some.library"])
def test_stdlib_loggers(output: io.StringIO, name: str) -> None:
    logger = logging.getLogger(name)
    logger.warning("send to %s failed", EMAIL)
    logger.info(f"payload {{'email': '{EMAIL}', 'phone': '+44 20 7946 0958'}}")
    logger.error("phones: %s", ", ".join(PHONES))
    try:
        raise RuntimeError(f"broker rejected record for {UNICODE_EMAIL} / 030 12345678")
    except RuntimeError:
        logger.exception("unexpected")
    text = output.getvalue()
    assert "RuntimeError" in text
    assert_clean(text)


@pytest.fixture
def access_log() -> Iterator[logging.Logger]:
    """uvicorn's access logger as a library leaves it: propagating to the root's (redacting) handler. ``serve``, run by
    other tests in this process, silences it (``access_log=False``: uvicorn stops its propagation)."""
    logger = logging.getLogger("uvicorn.access")
    saved = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate, logger.disabled = True, False
    try:
        yield logger
    finally:
        logger.handlers[:], _, logger.propagate, logger.disabled = saved
        logger.setLevel(saved[1])


def test_uvicorn_access_log_line(output: io.StringIO, access_log: logging.Logger) -> None:
    access_log.info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5123", "GET", f"/dpo/requests?email={URL_ENCODED_EMAIL}", "1.1", 200
    )
    assert_clean(output.getvalue())


def test_library_with_its_own_handler_is_redacted_too(output: io.StringIO) -> None:
    """mode's Worker replaces logging handlers unless told not to; the record itself must already be clean."""
    own = io.StringIO()
    logger = logging.getLogger("thirdparty.ownhandler")
    handler = logging.StreamHandler(own)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("subscriber %s phone %s", EMAIL, "+1 (415) 555-2671")
        try:
            raise KeyError(EMAIL)
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert "KeyError" in own.getvalue()
    assert_clean(own.getvalue())


def test_ids_and_timestamps_are_not_redacted() -> None:
    for text in (
        "event 0b6f7c1e-3a62-4a8e-9d0e-5f1c2b3a4d5e at 2031-05-01T10:00:00Z subject 9f86d081884c7d65 partition 3",
        "expires 2031-05-01 10:00:00 after 0.123456789 s; partitions [0, 1, 2]",
    ):
        assert scrub_text(text) == text
    assert scrub_text("call +14155552671: urgent") == "call [phone]: urgent"
    assert scrub_text("broker 127.0.0.1:9092, client 203.0.113.7") == "broker 127.0.0.1:9092, client [ip]"


@pytest.mark.parametrize("phone", list(PHONES))
def test_phone_formats(phone: str) -> None:
    assert scrub_text(f"call {phone} today") == "call [phone] today"


def test_uvicorn_default_access_formatter_still_works_and_is_clean(output: io.StringIO) -> None:
    """uvicorn's own AccessFormatter unpacks record.args: the scrubbed record must keep that shape."""
    from uvicorn.logging import AccessFormatter

    own = io.StringIO()
    logger = logging.getLogger("uvicorn.access.owntest")
    handler = logging.StreamHandler(own)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "10.0.0.1:5123",
            "GET",
            f"/dpo?email={URL_ENCODED_EMAIL}&p=%2B4415555",
            "1.1",
            200,
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = own.getvalue()
    assert '"GET /dpo?email=[email]' in text and "200" in text
    assert_clean(text)


def test_address_split_across_arguments(output: io.StringIO) -> None:
    logging.getLogger("some.library").warning("mailbox %s@%s", LOCAL_PART, "example-corp.co.uk")
    assert_clean(output.getvalue())


# ---- credentials ----------------------------------------------------------------------------------------------

API_KEY = "lpk_abcdefghijk2_" + "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"
KEY_SECRET = API_KEY.rsplit("_", 1)[1]
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEiLCJhdWQiOiJsZWFkcGlwZS1hcGkifQ."
    "c2lnbmF0dXJlLW9mLWEtcmVhbC10b2tlbi13b3VsZC1iZS1sb25nZXI"
)
CLIENT_SECRET = "Hx7-client-secret-9Qz"
OPAQUE_TOKEN = "ory_at_Q2xpZW50T3BhcXVlVG9rZW4xMjM0NTY3ODkw"
CODE = "ory_ac_c2lnbi1pbi1jb2RlLTEyMzQ1Ng"
CREDENTIALS = [KEY_SECRET, JWT.split(".")[1], JWT.split(".")[2], CLIENT_SECRET, OPAQUE_TOKEN, CODE]


def assert_no_credentials(text: str) -> None:
    assert text.strip(), "nothing was logged: the test would prove nothing"
    for secret in CREDENTIALS:
        assert secret not in text, f"{secret!r} leaked into:\n{text}"


def test_credentials_in_fields_and_messages(output: io.StringIO) -> None:
    log = get_logger("pipeline.test")
    log.info("fields", api_key=API_KEY, client_secret=CLIENT_SECRET, access_token=OPAQUE_TOKEN, id_token=JWT)
    log.info(
        "more", authorization=f"Bearer {OPAQUE_TOKEN}", hmac_secret=CLIENT_SECRET, oidc_client_secret=CLIENT_SECRET
    )
    log.info("nested", headers={"Authorization": f"Bearer {JWT}", "Cookie": f"session={OPAQUE_TOKEN}"})
    log.info(f"refused key {API_KEY} and token {JWT}")
    log.warning("token endpoint said %s", f"invalid_grant for /token?code={CODE}&client_secret={CLIENT_SECRET}")
    text = output.getvalue()
    assert "lpk_abcdefghijk2_[redacted]" in text  # the key id stays: it says which key, and is not secret
    assert_no_credentials(text)


@pytest.mark.parametrize("name", ["httpx", "uvicorn.error", "authlib", "some.library"])
def test_credentials_in_library_logs(output: io.StringIO, name: str) -> None:
    logger = logging.getLogger(name)
    logger.info("HTTP Request: %s %s", "POST", f"https://id.example/oauth2/token?client_secret={CLIENT_SECRET}")
    logger.info("Authorization: Basic %s", "bGVhZHBpcGUtY29uc29sZTpIeDctY2xpZW50LXNlY3JldA==")
    logger.warning("sent Authorization: Bearer %s", JWT)
    try:
        raise ValueError(f"cannot verify {JWT} / {API_KEY}")
    except ValueError:
        logger.exception("verification failed")
    text = output.getvalue()
    assert "ValueError" in text and "bGVhZHBpcGUtY29uc29sZTpIeDctY2xpZW50LXNlY3JldA" not in text
    assert_no_credentials(text)


def test_sign_in_callback_in_the_access_log(output: io.StringIO, access_log: logging.Logger) -> None:
    access_log.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5123", "GET", f"/auth/callback?code={CODE}&state=abc123def456", "1.1", 302
    )
    text = output.getvalue()
    assert "/auth/callback?code=[redacted]&state=[redacted]" in text
    assert_no_credentials(text)


def test_ids_next_to_credentials_are_kept() -> None:
    text = "key lpk_abcdefghijk2 of principal 0b6f7c1e-3a62-4a8e-9d0e-5f1c2b3a4d5e, subject_key sk_9f86d081884c7d65"
    assert scrub_text(text) == text
    assert scrub_text("GET /v1/crm/search?q=acme&page=2") == "GET /v1/crm/search?q=acme&page=2"
