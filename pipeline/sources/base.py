"""What every source adapter shares: the context it is called with, its typed error, and the event builder.

An adapter is a pure function ``parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]``: no I/O, no clock
(the time comes in ``ctx``), no randomness (event ids derive from the payload), so a retried webhook yields the
same event ids and downstream idempotency works. It returns at least one event or raises ``SourceError``.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import ValidationError

from pipeline import normalize
from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import Consent, ContactEvent, Interaction, Person, Provenance
from pipeline.sources import codepages

#: uuid5 namespace of event ids and dead-letter ids (fixed forever: changing it changes every id).
EVENT_NAMESPACE = uuid.UUID("6f1d0c7e-2b7a-5d1e-9a63-4c1f3b8e2a10")

#: Reasons that mean "the payload is not even well-formed" (HTTP 400) rather than "well-formed but unusable" (422).
MALFORMED_REASONS = frozenset(
    {
        "malformed_json",
        "malformed_csv",
        "malformed_vcard",
        "malformed_form",
        "malformed_mime",
        "bad_encoding",
        "empty_payload",
        "duplicate_key",
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a payload: a stable code, the field (dotted path) and an explanation without values.

    ``fatal=False`` is something the event survives: the field is left out and ``reason`` becomes one of the
    event's notes (``Provenance.notes``); only fatal problems reject a payload.
    """

    reason: str
    field: str | None
    message: str
    fatal: bool = True

    def as_dict(self) -> dict[str, str | None]:
        return {"reason": self.reason, "field": self.field, "message": self.message}


class SourceError(Exception):
    """The payload cannot become contact events. ``problems`` lists every bad field found, the first is the reason."""

    def __init__(self, reason: str, field: str | None, message: str, *, more: Sequence[Problem] = ()) -> None:
        self.reason = reason
        self.field = field
        self.message = message
        self.problems: tuple[Problem, ...] = (Problem(reason, field, message), *more)
        super().__init__(self.explain())

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> SourceError:
        first, *rest = problems
        return cls(first.reason, first.field, first.message, more=rest)

    @property
    def malformed(self) -> bool:
        return self.reason in MALFORMED_REASONS

    def explain(self) -> str:
        return "; ".join(f"{p.field or 'payload'}: {p.message} ({p.reason})" for p in self.problems)


class NothingToTake(Exception):
    """A well-formed webhook that by its nature names no contact: a delivery or read receipt, a status update, the
    sender's own check of the endpoint. Answered as accepted with no events and counted (``reason``), not
    dead-lettered: a refusal would make the sender retry it for days, and a dead letter per receipt would bury the
    payloads someone has to look at. Nothing of it is kept."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class SourceContext:
    """Everything an adapter may know besides the bytes: who sent it, as what, when, and the identity pepper."""

    source_id: str
    channel: Channel
    content_type: str
    received_at: datetime
    pepper: bytes = field(repr=False)
    payload_digest: str
    params: Mapping[str, str] = field(default_factory=dict)
    delivery: str | None = None
    """What makes this delivery one submission (a signed webhook's timestamp or delivery id); None: the bytes alone."""

    @classmethod
    def for_payload(
        cls,
        raw: bytes,
        *,
        source_id: str,
        channel: Channel,
        content_type: str,
        received_at: datetime,
        pepper: bytes,
        delivery: str | None = None,
    ) -> SourceContext:
        media_type, params = parse_content_type(content_type)
        return cls(
            source_id=source_id,
            channel=channel,
            content_type=media_type,
            received_at=received_at,
            pepper=pepper,
            payload_digest=hashlib.sha256(raw).hexdigest(),
            params=dict(params),  # its own: the parsed header is shared (read-only)
            delivery=delivery,
        )

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")

    @property
    def today(self) -> date:
        return self.received_at.astimezone(UTC).date()

    def event_id(self, index: int) -> uuid.UUID:
        """Deterministic: the same delivery gets the same ids (retries are idempotent), a new one new ids.

        Without ``delivery`` (import, SDK, bearer sources) the bytes alone name the submission, so re-importing a
        file gives the same ids. With it (a signed webhook: its timestamp, or the sender's delivery id) the same
        form filled in again later is a new submission with new ids, even with identical bytes: after an erasure,
        the ids of the erased submission stay tombstoned while the person's new one goes through.
        """
        return event_id_of(self.source_id, self.payload_digest, index, self.delivery)

    @property
    def submission(self) -> str:
        """Names this payload from this source (``<source id>:<sha256>``), e.g. for its dead letter's id."""
        return f"{self.source_id}:{self.payload_digest}"


def event_id_of(source_id: str, payload_digest: str, index: int, delivery: str | None = None) -> uuid.UUID:
    """The id of the ``index``-th event of a payload (sha256 ``payload_digest``) from ``source_id``, in ``delivery``
    when the source names one (``SourceContext.event_id``)."""
    if delivery is None:
        return uuid.uuid5(EVENT_NAMESPACE, f"event\n{source_id}\n{payload_digest}\n{index}")
    return uuid.uuid5(EVENT_NAMESPACE, f"event\n{source_id}\n{delivery}\n{payload_digest}\n{index}")


@lru_cache(maxsize=256)
def parse_content_type(header: str) -> tuple[str, Mapping[str, str]]:
    """("text/csv", {"charset": "utf-8"}) from a Content-Type header, with the stdlib's RFC 2045 parser.

    Kept per header (read-only): a source sends the same one every time, and the parser costs ~30 us a request.
    """
    msg = Message()
    msg["content-type"] = header or "application/octet-stream"
    found = msg.get_params() or []
    params = {str(k).lower(): str(v) for k, v in found[1:]}
    return msg.get_content_type().lower(), MappingProxyType(params)


# ---- decoding ---------------------------------------------------------------------------------------------------

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def decode_text(raw: bytes, charset: str | None = None) -> str:
    """Text of a payload: BOM, then the declared charset (read in the superset its label stands for, as mail readers
    do: ``codepages.declared_text``; an ISO-2022 one never falls back), then UTF-8, then Windows-1252 (what
    spreadsheets export) when it reads as text; else the legacy code page charset-normalizer finds (a Japanese
    Excel's Shift_JIS CSV, a Russian one's Windows-1251), else Windows-1252 all the same."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise SourceError("bad_encoding", None, f"the payload is not valid {encoding}") from None
    if charset and (declared := codepages.declared_text(raw, charset)) is not None:
        return declared
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return codepages.legacy_text(raw)


#: The byte-order marks JSON may start with (RFC 8259 8.1 lets a parser accept them; Windows tools write UTF-16),
#: UTF-32's before UTF-16's, whose marks begin theirs.
_JSON_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_UTF8_LABELS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def load_json(raw: bytes, charset: str | None = None) -> Any:
    """Parsed JSON, or a ``malformed_json`` error naming the line and column (never quoting the payload).

    JSON is UTF-8 (RFC 8259); a byte-order mark (UTF-8, UTF-16, UTF-32) or a ``charset`` the sender declares
    (``application/json; charset=iso-8859-1``, ``utf-16``) is read as what it says. Bytes that are none of these are
    ``bad_encoding``, naming where (not ``malformed_json``: the document may be fine, its encoding is not)."""
    if not raw.strip():
        raise SourceError("empty_payload", None, "the payload is empty")
    encoding = next((name for bom, name in _JSON_BOMS if raw.startswith(bom)), None)
    if encoding is not None:
        raw = raw[len(next(bom for bom, name in _JSON_BOMS if name == encoding)) :]
    elif charset and charset.strip().lower() not in _UTF8_LABELS:
        try:
            codecs.lookup(charset.strip())
            encoding = charset.strip()
        except LookupError:
            pass  # a label nobody knows: read as JSON's own UTF-8
    if encoding is not None and encoding != "utf-8":
        try:
            raw = raw.decode(encoding).encode("utf-8", "surrogatepass")
        except UnicodeError:
            raise SourceError("bad_encoding", None, f"the payload is not valid {encoding}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg or "surrogate" in exc.msg:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                line = raw.count(b"\n", 0, bad.start) + 1
                raise SourceError(
                    "bad_encoding",
                    None,
                    f"the payload is not UTF-8 (byte {bad.start}, line {line}): send JSON in UTF-8, or name its "
                    "charset in the Content-Type",
                ) from None
        raise SourceError(
            "malformed_json", None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    keys, depth = _shape_of(data)
    if depth > MAX_JSON_DEPTH:
        raise SourceError(
            "malformed_json", None, f"the JSON is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are read"
        )
    if len(_KEY_END.findall(raw)) > keys:  # perhaps a key twice (else every ": ends a key): look closer
        _refuse_duplicate_keys(raw)
    return data


#: How deep a JSON document may nest: webhooks nest a dozen levels; the adapters' walks over a document (and the
#: stdlib's parser) recurse, and 1,000 levels (orjson reads up to 1,024) exhausted Python's stack in them.
MAX_JSON_DEPTH = 100


#: What ends an object's key (its closing quote, then the colon): at least one match per key of the document, more
#: only for a key given twice or a string holding ``":``.
_KEY_END = re.compile(rb'"\s*:')
#: A key quoted in a refusal: a field's name, never a value a payload could key by (an e-mail address, a number).
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-\[\]]{0,39}")


def too_deep(data: Any) -> bool:
    """Whether a parsed JSON document nests deeper than the adapters read (``MAX_JSON_DEPTH``)."""
    return _shape_of(data)[1] > MAX_JSON_DEPTH


def _shape_of(data: Any) -> tuple[int, int]:
    """How many keys the objects of a parsed document have (all levels), and how deep it nests (without recursing)."""
    count, depth, level = 0, 0, [data]
    while containers := [value for value in level if type(value) in _CONTAINERS]:  # level by level (orjson's types)
        depth += 1
        level = []
        for value in containers:
            if type(value) is dict:
                count += len(value)
                level.extend(value.values())
            else:
                level.extend(value)
    return count, depth


_CONTAINERS = frozenset({dict, list})


def _refuse_duplicate_keys(raw: bytes) -> None:
    """A ``duplicate_key`` error when an object gives one key two different values (``{"email": "a@x",
    "email": "b@y"}``: whose address is it? A parser keeps the last silently); the same value twice is harmless."""

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen and seen[key] != value:
                named = f"the key {key!r}" if _PLAIN_KEY.fullmatch(key) else "a key"
                raise SourceError("duplicate_key", None, f"{named} is given twice in one object, with different values")
            seen[key] = value
        return seen

    try:
        json.loads(raw, object_pairs_hook=pairs_hook)
    except (RecursionError, ValueError):  # deeper than the stdlib parser goes (orjson read it): taken as orjson read it
        return


def require_object(value: Any, what: str = "the payload") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SourceError("unexpected_shape", None, f"{what} must be a JSON object, not {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def text_of(value: Any) -> str | None:
    """A scalar as text ("" and whitespace → None); lists of scalars are joined (checkbox groups)."""
    if value is None or isinstance(value, dict):
        return None
    if type(value) is str:  # most values: the checks below are for the rest
        return value.strip() or None
    if isinstance(value, list):
        parts = [t for t in (text_of(v) for v in value) if t]
        return ", ".join(parts) or None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def obj(value: Any) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one (shape errors are reported where they matter)."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty one (``obj``'s counterpart)."""
    return value if isinstance(value, list) else []


def dig(data: Any, *path: str) -> Any:
    """data[a][b]... or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


# ---- time -------------------------------------------------------------------------------------------------------

_EPOCH_MS_THRESHOLD = 10_000_000_000  # seconds since 1970 stay below this until the year 2286


def parse_timestamp(value: Any, field_name: str, problems: list[Problem]) -> datetime | None:
    """A point in time from ISO 8601 text, a date, or epoch seconds/milliseconds. Naive times are taken as UTC.

    Sources that send local time without an offset are rare among webhooks (they send UTC or an offset); the
    alternative, refusing, would dead-letter every spreadsheet date.
    """
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value)):
            number = float(value)
            if number > _EPOCH_MS_THRESHOLD:
                number /= 1000
            return datetime.fromtimestamp(number, UTC)
        text = str(value).strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        if match := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", text):
            return datetime(int(match.group(3)), int(match.group(2)), int(match.group(1)), tzinfo=UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            parsed = _written_date(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except normalize.NormalizationError as exc:
        problems.append(Problem(exc.reason, field_name, str(exc).split(": ", 1)[-1]))
        return None
    except (ValueError, OverflowError, OSError):
        problems.append(Problem("invalid_timestamp", field_name, "not a date/time (use ISO 8601 or epoch seconds)"))
        return None


def _written_date(text: str) -> datetime:
    """A date as people, spreadsheets and mail headers write it (``normalize.read_date``; RFC 2822's
    "Wed, 05 Jun 2024 10:00:00 +0200")."""
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return parsedate_to_datetime(text)
    day, clock = normalize.read_date(text)
    return datetime.combine(day, time(*clock) if clock else time())


def plausible_occurrence(at: datetime | None, ctx: SourceContext) -> datetime:
    """When it happened: the payload's time unless missing or in the future (clock skew); then the receipt time."""
    if at is None or at > ctx.received_at + timedelta(minutes=10):
        return ctx.received_at
    return at


# ---- building events --------------------------------------------------------------------------------------------

#: The note of an event kept without its phone number: it had a valid e-mail and a number that cannot exist.
PHONE_INVALID = "phone_invalid"

#: The note of an identified event whose visitor (cookie) id is not one: the event is kept, not linked to a history.
VISITOR_ID_INVALID = "visitor_id_invalid"


def visitor_key_of(value: Any, ctx: SourceContext, problems: list[Problem], field: str, *, fatal: bool) -> str | None:
    """The visitor key (``normalize.visitor_key``) of a website visitor id an event carries; None when there is none.

    An id that is not one is a problem: ``fatal`` where it is the event's only identity (an anonymous page view),
    else the note ``visitor_id_invalid`` (a form is still the person's; only the link to a history is lost).
    """
    text = text_of(value)
    if text is None:
        return None
    try:
        return normalize.visitor_key(ctx.pepper, text)
    except normalize.NormalizationError as exc:
        explanation = str(exc).split(": ", 1)[-1]
        if fatal:
            problems.append(Problem(exc.reason, field, explanation))
        else:
            problems.append(Problem(VISITOR_ID_INVALID, field, explanation + "; not linked", fatal=False))
        return None


#: Canonical person fields an adapter may fill (see ``build_person``).
PERSON_FIELDS = (
    "first_name",
    "last_name",
    "full_name",
    "position",
    "email",
    "phone",
    "location",
    "country",
    "company",
    "company_address",
    "skype_id",
    "linkedin_url",
    "stated_age",
    "birth_date",
)


def build_person(
    values: Mapping[str, Any],
    ctx: SourceContext,
    problems: list[Problem],
    *,
    prefix: str = "",
    handles: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Normalised person fields and the subject key, from canonical field names. Bad fields go to ``problems``.

    A field that is present but cannot be normalised is a problem, not silently dropped: a mistyped e-mail must
    reach a person (the dead-letter topic), not vanish.
    """
    person: dict[str, Any] = {}

    def put(name: str, value: str | None) -> None:
        if value is not None:
            person[name] = value

    first, last = normalize.person_name(
        text_of(values.get("first_name")), text_of(values.get("last_name")), text_of(values.get("full_name"))
    )
    put("first_name", first)
    put("last_name", last)
    for name in ("position", "company", "company_address", "location"):
        put(name, normalize.normalize_name(text_of(values.get(name))))
    if (state := normalize.normalize_name(text_of(values.get("state")))) is not None:  # "Austin" + "TX"
        city = person.get("location")
        if city is None or state.casefold() not in (part.strip().casefold() for part in city.split(",")):
            person["location"] = f"{city}, {state}" if city else state
    # A country-code picker beside the number posts a dialling code: the country when the code is one country's
    # ("+49"), else only the phone's region ("+1": the US or Canada, the same E.164 number either way)
    country_field = text_of(values.get("country"))
    dialled = normalize.dialling_code_regions(country_field)
    one_country = dialled[0] if len(dialled) == 1 else None
    country = (one_country if dialled else normalize.country_code(country_field)) or normalize.country_from_location(
        person.get("location") or person.get("company_address")
    )
    put("country_code", country)
    # A national number with no country beside it: read in the country its e-mail's domain names (a German
    # address's "0171 2345678"), checked as valid there; the person's country stays unknown
    phone_region = (
        country
        or (dialled[0] if dialled else None)
        or normalize.region_of_address(text_of(values.get("email")), text_of(values.get("phone")) or "")
    )
    if not dialled and "location" not in person and (country_text := normalize.normalize_name(country_field)):
        person["location"] = country_text

    page = text_of(values.get("page_url")) or ""
    if text_of(values.get("linkedin_url")) is None and "linkedin.com/in/" in page.lower():
        values = {**values, "linkedin_url": page}  # LinkedIn's own export names the profile "URL"
    checks: list[tuple[str, Any]] = [
        ("email", normalize.canonical_email),
        ("phone", lambda v: normalize.canonical_phone(v, phone_region, require_valid=True)),
        ("skype_id", normalize.canonical_skype),
        ("linkedin_url", normalize.canonical_linkedin),
    ]
    for name, check in checks:
        text = text_of(values.get(name))
        if text is None:
            continue
        try:
            person[name] = check(text)
        except normalize.NormalizationError as exc:
            explanation = str(exc).split(": ", 1)[-1]
            if name == "phone" and "email" in person:  # the e-mail identifies the person: keep them, drop the number
                problems.append(Problem(PHONE_INVALID, prefix + name, explanation + "; left out", fatal=False))
            else:
                problems.append(Problem(exc.reason, prefix + name, explanation))
    if (age := values.get("stated_age")) not in (None, ""):
        try:
            person["stated_age"] = normalize.parse_stated_age(age)
        except normalize.NormalizationError as exc:
            problems.append(Problem(exc.reason, prefix + "stated_age", str(exc).split(": ", 1)[-1]))
    if birth := text_of(values.get("birth_date")):
        try:
            person["birth_date"] = normalize.parse_birth_date(birth, today=ctx.today)
        except normalize.NormalizationError as exc:  # no whole date (BIRTH_DATE_INCOMPLETE) is left out, not refused
            fatal = exc.reason != normalize.BIRTH_DATE_INCOMPLETE
            problems.append(Problem(exc.reason, prefix + "birth_date", str(exc).split(": ", 1)[-1], fatal=fatal))
    if handles:
        person["messenger_handles"] = {k: v for k, v in handles.items() if v}
    key: str | None = None
    if "email" in person or "phone" in person:
        key = normalize.subject_key(ctx.pepper, email=person.get("email"), phone=person.get("phone"))
    elif not any(p.fatal and p.field in (prefix + "email", prefix + "phone") for p in problems):
        problems.append(
            Problem("no_identity", prefix + "email", "no e-mail address or phone number: a contact needs one of them")
        )
    return person, key


def checkbox_ticked(value: Any) -> bool:
    """Whether a checkbox value means ticked: true/1/on/yes/checked, or the label text a checkbox group sends.

    A no written as a sentence is no consent: one whose first word is a no ("No thanks", "Nej tack"), or one with a
    negation among its first three words ("I do not agree", "Ich möchte keinen Newsletter"). A consent's own wording
    rarely starts so, and a consent wrongly refused is the lesser harm than one the person never gave. A date or time
    is no tick either: no checkbox posts one, and a system's ``subscribed: 2024-06-05T12:20:00Z`` says when something
    happened, not what the person agreed to.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return any(checkbox_ticked(v) for v in value)
    text = text_of(value)
    if text is None or _DATE_VALUE.match(text):
        return False
    text = text.lower()
    words = [word for word in _WORD_BREAK.split(text) if word]
    if text in UNTICKED or (words and words[0] in UNTICKED):
        return False
    return (bool(words) and words[0] in TICKED) or not any(word in _NEGATION for word in words[:3])  # "Yes, no spam"


#: What a form posts for a box left unticked or a question answered no, in the languages forms are written in: a
#: Russian form's "нет" is no consent.
UNTICKED = frozenset(
    {"0", "false", "no", "off", "unchecked", "n", "none", "null", "nein", "non", "nee", "nej", "nei", "ei", "nie", "ne",
     "não", "nao", "hayır", "hayir", "όχι", "нет", "ні", "не", "いいえ", "否", "不", "不同意", "아니오", "아니요"}
)  # fmt: skip
#: A date or date-time as systems write it (ISO 8601, ``05.06.2024``, ``6/5/2024 12:20``): when, not whether.
_DATE_VALUE = re.compile(r"\s*(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4})(?:[T ]\d{1,2}:\d{2}\S*)?\s*$")
#: What separates words for ``checkbox_ticked``: white space and punctuation, not a word's apostrophe or hyphen
#: ("don't", "Non-binding").
_WORD_BREAK = re.compile(r"[^\w'\u2019-]+")
#: A negation among a sentence's first words: "not", "don't", German "nicht"/"kein...", French "pas" (after "ne"),
#: Dutch "niet"/"geen", Nordic "inte"/"ikke", and the noes that negate a verb ("Yo no quiero", "Non voglio").
_NEGATION = frozenset(
    {"not", "don't", "don\u2019t", "dont", "never", "nicht", "kein", "keine", "keinen", "keinerlei", "pas", "niet",
     "geen", "inte", "ikke", "no", "non", "não", "nao", "nie", "ne", "не", "нет"}
)  # fmt: skip
#: What a ticked box posts when it does not post its label: a tick, not the wording of a consent (Greek's yes
#: written by its code points: its three letters look like Latin ones).
TICKED = frozenset(
    {"1", "true", "on", "yes", "checked", "y", "ja", "oui", "sí", "si", "sim", "tak", "ano", "kyllä", "evet",
     "\u03bd\u03b1\u03b9", "да", "так", "はい", "是", "예", "네"}
)  # fmt: skip


def make_event(
    ctx: SourceContext,
    index: int,
    who: tuple[Mapping[str, Any], str | None],
    interaction: Mapping[str, Any],
    *,
    provenance: Mapping[str, Any] | None = None,
    consents: Iterable[Consent] = (),
    occurred_at: datetime | None = None,
    problems: Sequence[Problem] = (),
    prefix: str = "",
) -> ContactEvent:
    """The event, or a SourceError listing every fatal problem (including model limits such as a 300-character
    name). ``who`` is what ``build_person`` returned: the person's fields and the subject key. Non-fatal problems
    become the event's notes."""
    person, subject_key = who
    found = [p for p in problems if p.fatal]
    notes = tuple(dict.fromkeys(p.reason for p in problems if not p.fatal))
    built: ContactEvent | None = None
    try:
        built = ContactEvent(
            event_id=ctx.event_id(index),
            channel=ctx.channel,
            occurred_at=plausible_occurrence(occurred_at, ctx),
            received_at=ctx.received_at,
            subject_key=subject_key or "sk_unknown_subject",
            person=Person(**person),
            interaction=Interaction(**interaction),
            consents=tuple(consents),
            provenance=Provenance(source_id=ctx.source_id, notes=notes, **(provenance or {})),
        )
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(part) for part in error["loc"])
            found.append(Problem("invalid_field", prefix + loc, str(error["msg"])))
    if found or built is None or subject_key is None:
        if not found:
            found.append(Problem("no_identity", prefix + "email", "no e-mail address or phone number"))
        raise SourceError.of(found)
    return built


#: What names a form's kind, in the languages its name, page or type field is written in (German, French, Spanish,
#: Italian, Portuguese, Dutch, Polish, Russian, Japanese, Chinese, Korean), most specific first: a white paper's
#: download page, a demo request, a request for an expert's take or a quote, a contact form.
_KIND_WORDS = (
    (
        InteractionKind.WHITE_PAPER,
        re.compile(
            r"white[\s_-]?paper|e-?book|download|livre[\s_-]blanc|libro[\s_-]b(?:lanco|ianco)|herunterladen"
            r"|t[ée]l[ée]charg|descarg|scarica|baixar|pobierz|скачать|資料ダウンロード|白皮书|백서"
        ),
    ),
    (InteractionKind.DEMO_REQUEST, re.compile(r"\bd[ée]mo(?!li)|демо|デモ|演示|데모")),
    (
        InteractionKind.EXPERT_REQUEST,
        re.compile(
            r"expert|consult|estimate|quote|beratung|angebot|kostenvoranschlag|devis|cotizaci|presupuesto"
            r"|preventivo|or[çc]amento|offerte|wycena|консультац|коммерческое предложение|見積|相談|报价|咨询|상담|견적"
        ),
    ),
    (InteractionKind.CONTACT_US, re.compile(r"conta(?:c?t)|kontakt|связ|お問い合わせ|联系|聯絡|문의")),
)


def interaction_kind(*hints: str | None, default: InteractionKind) -> InteractionKind:
    """The form type from whatever names it (a type field, the form's name, the page URL)."""
    text = " ".join(h.lower() for h in hints if h)
    return next((kind for kind, words in _KIND_WORDS if words.search(text)), default)


def require_events(events: list[ContactEvent]) -> list[ContactEvent]:
    """Adapters end with this: a payload that yields no event is an explained rejection, never an empty success."""
    if not events:
        raise SourceError("empty_payload", None, "the payload holds no contact")
    return events
