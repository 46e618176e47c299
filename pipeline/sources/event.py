"""Event attendees (policy section 7): Eventbrite-style orders/attendees (JSON) and scanned business cards (CSV,
vCard).

The event's date starts the attendee retention clock ("6 years from the last event the person registered for"),
so an attendee without an event date is refused, not guessed.

JSON: an order with ``attendees`` (Eventbrite's ``expand=attendees,event``) gives one event per attendee; a single
attendee object (with ``profile``) gives one. A bare Eventbrite webhook (``config`` + ``api_url`` only) is refused
with an explanation: it names the order but does not carry it.

An attendee who will not attend (refunded, cancelled, transferred, deleted: ``not_attending``; a Zoom registration
denied) registered for nothing: no event is made of them, and a payload of no one else is answered ``ignored`` with
the reason.

Zoom: its webinar and meeting reports come as CSV (``tabular`` reads their sections and gives each row the report's
topic and start as its event); its registration webhooks (``event`` + ``payload``) are read by ``_zoom_builder``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields, tabular, vcard
from pipeline.sources.base import (
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    array,
    build_person,
    dig,
    make_event,
    obj,
    parse_timestamp,
    plausible_occurrence,
    require_events,
    text_of,
)
from pipeline.sources.choices import recorded_choices

CONTENT_TYPES = frozenset({"application/json"}) | tabular.CSV_TYPES | vcard.VCARD_TYPES


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    if ctx.content_type in tabular.CSV_TYPES:
        rows = tabular.read_csv(raw, ctx.charset, tabular.dialect_of(ctx.params))
        return collect_all([(f"row {line}.", _card_builder(row)) for line, row in rows], ctx)
    if ctx.content_type in vcard.VCARD_TYPES:
        cards = vcard.read_vcards(raw, ctx.charset)
        return collect_all([(f"line {line}.", _card_builder(card)) for line, card in cards], ctx)
    builders: list[tuple[str, Callable[[SourceContext, int, str], ContactEvent]]] = []
    for path, order in tabular.records_of_json(raw):
        if "api_url" in order and "config" in order and len(order) <= 3:
            raise SourceError(
                "unexpanded_webhook",
                "api_url",
                "an Eventbrite webhook only names the order; send the order with expand=attendees,event",
            )
        if isinstance(order.get("event"), str) and isinstance(order.get("payload"), dict):  # Zoom's webhook
            builders.append((f"{path}." if path else "", _zoom_builder(order)))
            continue
        attendees = order.get("attendees")
        if isinstance(attendees, list) and attendees:
            for position, attendee in enumerate(attendees):
                builders.append((f"{path}attendees[{position}].", _attendee_builder(attendee, order)))
        else:
            builders.append((f"{path}." if path else "", _attendee_builder(order, order)))
    return collect_all(builders, ctx)


def collect_all(
    builders: list[tuple[str, Callable[[SourceContext, int, str], ContactEvent]]], ctx: SourceContext
) -> list[ContactEvent]:
    """Build every record; refuse with ALL bad fields of all records at once, so one answer lists every fix. A
    record that names no contact by its nature (``NothingToTake``: an attendee who will not attend) is left out,
    its reason noted on every event kept; when every record is, the payload is (the first one's reason)."""
    events: list[ContactEvent] = []
    problems: list[Problem] = []
    nothing: list[NothingToTake] = []
    for index, (prefix, build) in enumerate(builders):
        try:
            events.append(build(ctx, index, prefix))
        except SourceError as exc:
            problems.extend(exc.problems)
        except NothingToTake as exc:
            nothing.append(exc)
    if problems:
        raise SourceError.of(problems)
    if not events and nothing:
        raise nothing[0]
    if nothing:  # the others left out are said on each event kept, by their reasons (provenance notes, no value)
        left_out = tuple(sorted({exc.reason for exc in nothing}))
        noted = [(e, e.provenance.model_copy(update={"notes": e.provenance.notes + left_out})) for e in events]
        events = [e.model_copy(update={"provenance": provenance}) for e, provenance in noted]
    return require_events(events)


#: What an attendee's or an order's status says when the person will not attend, as Eventbrite's reports (the
#: attendee summary's "Attendee Status", the orders report's "Order Status") and its API (``status``) write it,
#: compared as field names are (``fields.normalize_key``): the reason the record is left out. "Attending", "Checked
#: In", a partial refund or transfer of an order (its attendee's own status tells) are attendees.
_NOT_ATTENDING = {
    "not_attending": "attendee_not_attending",
    "refunded": "attendee_refunded",
    "refunded_canceled": "attendee_refunded",
    "refunded_cancelled": "attendee_refunded",
    "cancelled": "attendee_cancelled",
    "canceled": "attendee_cancelled",
    "transferred": "attendee_transferred",
    "deleted": "attendee_deleted",
    "denied": "attendee_denied",  # Zoom's "Approval Status" of a registration the host refused
}

#: The columns of an attendee export that hold a status, the attendee's before the order's.
_STATUS_COLUMNS = (
    "attendee_status", "registration_status", "approval_status", "ticket_status", "order_status", "status"
)  # fmt: skip
#: The columns that make a row a registration (Zoom's reports), not a business card scanned at a stand.
_REGISTRATION_COLUMNS = frozenset({"registration_time", "approval_status", "attended", "join_time"})


def _not_attending(statuses: list[Any]) -> str | None:
    """The reason a registration is no attendee's (``_NOT_ATTENDING``), from its statuses, the most specific first:
    the first one given decides; None when it says the person attends, or none is given."""
    status = next((text for value in statuses if (text := text_of(value)) is not None), None)
    return None if status is None else _NOT_ATTENDING.get(fields.normalize_key(status))


def _unless_attending(reason: str | None) -> None:
    if reason is not None:
        raise NothingToTake(
            reason, "an attendee who will not attend (refunded, cancelled, transferred, denied): no attendee"
        )


def _event_date(order: Mapping[str, Any], attendee: Mapping[str, Any], prefix: str, problems: list[Problem]) -> Any:
    start = dig(attendee, "event", "start") or dig(order, "event", "start") or {}
    value = (
        text_of(dig(start, "utc"))
        or text_of(dig(start, "local"))
        or text_of(attendee.get("event_date"))
        or text_of(order.get("event_date"))
    )
    if value is None:
        problems.append(
            Problem("missing_event_date", prefix + "event.start.utc", "the event date starts the retention clock")
        )
        return None
    return parse_timestamp(value, prefix + "event.start.utc", problems)


def _attendee_builder(attendee: Any, order: Mapping[str, Any]) -> Callable[[SourceContext, int, str], ContactEvent]:
    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        if not isinstance(attendee, dict):
            raise SourceError("unexpected_shape", prefix.rstrip(".") or None, "an attendee must be an object")
        if attendee.get("refunded") is True:  # the API's flags: set at once, its status may follow later
            _unless_attending("attendee_refunded")
        if attendee.get("cancelled") is True:
            _unless_attending("attendee_cancelled")
        _unless_attending(_not_attending([attendee.get("status"), order.get("status")]))
        problems: list[Problem] = []
        profile = obj(attendee.get("profile")) or attendee
        pairs = [(k, v) for k, v in fields.flattened(profile.items()) if not isinstance(v, dict | list)]
        answers = attendee.get("answers")
        for answer in answers if isinstance(answers, list) else []:
            if isinstance(answer, dict) and text_of(answer.get("question")):
                pairs.append((str(answer["question"]), answer.get("answer")))
        values = fields.collect(pairs)
        address = (
            dig(profile, "addresses", "work") or dig(profile, "addresses", "bill") or dig(profile, "addresses", "home")
        )
        if isinstance(address, dict):
            parts = [text_of(address.get(k)) for k in ("address_1", "address_2", "postal_code", "city", "region")]
            values.setdefault("company_address", ", ".join(p for p in parts if p) or None)
            values.setdefault("location", text_of(address.get("city")))
            values.setdefault("country", text_of(address.get("country")))
        person, key = build_person(values, ctx, problems, prefix=prefix + "profile.")
        event_date = _event_date(order, attendee, prefix, problems)
        name = text_of(dig(attendee, "event", "name", "text")) or text_of(dig(order, "event", "name", "text"))
        occurred = parse_timestamp(attendee.get("created") or order.get("created"), prefix + "created", problems)
        interaction = {
            "kind": InteractionKind.REGISTRATION,
            "subject": clean_text(text_of(dig(attendee, "ticket_class_name")), 1000),
            "event_name": clean_text(name or text_of(order.get("event_id")), 500),
            "event_date": event_date,
        }
        consents = recorded_choices(pairs, plausible_occurrence(occurred, ctx))  # an opt-out answer is a refusal
        return make_event(
            ctx,
            index,
            (person, key),
            interaction,
            consents=consents,
            occurred_at=occurred,
            problems=problems,
            prefix=prefix,
        )

    return build


def _card_builder(row: Mapping[str, str]) -> Callable[[SourceContext, int, str], ContactEvent]:
    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        named = {fields.normalize_key(column): value for column, value in row.items()}
        _unless_attending(_not_attending([named.get(column) for column in _STATUS_COLUMNS]))
        problems: list[Problem] = []
        values = fields.collect(row.items())
        person, key = build_person(values, ctx, problems, prefix=prefix)
        event_date = None
        if text_of(values.get("event_date")) is None:
            problems.append(Problem("missing_event_date", prefix + "event_date", "the event date starts the clock"))
        else:
            event_date = parse_timestamp(values.get("event_date"), prefix + "event_date", problems)
        registered = not _REGISTRATION_COLUMNS.isdisjoint(named)
        interaction = {
            "kind": InteractionKind.REGISTRATION if registered else InteractionKind.BUSINESS_CARD,
            "event_name": clean_text(text_of(values.get("event_name")), 500),
            "event_date": event_date,
            "message": clean_text(text_of(values.get("message")), 50_000),
        }
        consents = recorded_choices(row.items(), plausible_occurrence(event_date, ctx))  # an opt-out column: refusal
        return make_event(
            ctx,
            index,
            (person, key),
            interaction,
            consents=consents,
            occurred_at=event_date,
            problems=problems,
            prefix=prefix,
        )

    return build


# ---- Zoom's registration webhooks -----------------------------------------------------------------------------------

#: Zoom's webhooks that register a person for a webinar or meeting: the registrant, as they filled in the form.
_ZOOM_REGISTERED = frozenset(
    {
        "webinar.registration_created",
        "webinar.registration_approved",
        "meeting.registration_created",
        "meeting.registration_approved",
    }
)
#: Zoom's webhooks of a registration that ends: no attendee, by the same reasons as a report's statuses.
_ZOOM_ENDED = {
    "webinar.registration_denied": "attendee_denied",
    "meeting.registration_denied": "attendee_denied",
    "webinar.registration_cancelled": "attendee_cancelled",
    "meeting.registration_cancelled": "attendee_cancelled",
}
#: A registrant's fields by Zoom's names, as leadpipe reads them (the others by their own names: ``email``, ...).
_ZOOM_FIELDS = {"org": "company", "job_title": "position", "comments": "message", "zip": "postal_code"}


def _zoom_builder(hook: Mapping[str, Any]) -> Callable[[SourceContext, int, str], ContactEvent]:
    """Zoom's ``webinar.registration_created`` (``meeting.``; ``_approved``) webhook: the registrant
    (``payload.object.registrant``: ``email``, ``first_name``, ``last_name``, ``country`` as a code, ``phone`` as
    typed, ``org``, ``job_title``, ``custom_questions`` of ``{title, value}``), the webinar's ``topic`` and
    ``start_time`` (the event date), dated by ``event_ts`` (ms). A denied or cancelled registration is no attendee
    (``_ZOOM_ENDED``); Zoom's other events (``endpoint.url_validation``, a meeting started, a participant joined)
    name no new registrant and are answered ``ignored``."""

    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        kind = str(hook.get("event"))
        if kind in _ZOOM_ENDED:
            _unless_attending(_ZOOM_ENDED[kind])
        if kind == "endpoint.url_validation":
            raise NothingToTake("webhook_check", "Zoom's validation of the webhook's URL: no contact in it")
        meeting = obj(dig(hook, "payload", "object"))
        registrant = meeting.get("registrant")
        if kind not in _ZOOM_REGISTERED:
            raise NothingToTake("zoom_event", "a Zoom event that registers no one: no new contact in it")
        prefix += "payload.object.registrant."
        if not isinstance(registrant, dict):
            raise SourceError("unexpected_shape", prefix.rstrip("."), "Zoom's registration names its registrant")
        _unless_attending(_not_attending([registrant.get("status")]))
        problems: list[Problem] = []
        pairs: list[tuple[str, Any]] = [
            (_ZOOM_FIELDS.get(str(k)) or str(k), v) for k, v in registrant.items() if not isinstance(v, dict | list)
        ]
        for answer in array(registrant.get("custom_questions")):
            if isinstance(answer, dict) and text_of(answer.get("title")):
                pairs.append((str(answer["title"]), answer.get("value")))
        values = fields.collect(pairs)
        person, key = build_person(values, ctx, problems, prefix=prefix)
        start = meeting.get("start_time")
        if start in (None, "") and isinstance(occurrences := meeting.get("occurrences"), list) and occurrences:
            start = dig(occurrences[0], "start_time")  # a recurring meeting's: its first occurrence
        event_date = None
        if text_of(start) is None:
            problems.append(
                Problem("missing_event_date", "payload.object.start_time", "the event date starts the clock")
            )
        else:
            event_date = parse_timestamp(start, "payload.object.start_time", problems)
        occurred = parse_timestamp(hook.get("event_ts"), "event_ts", problems)
        interaction = {
            "kind": InteractionKind.REGISTRATION,
            "subject": f"Zoom {kind.partition('.')[0]} registration",
            "event_name": clean_text(text_of(meeting.get("topic")) or text_of(meeting.get("id")), 500),
            "event_date": event_date,
            "message": clean_text(text_of(values.get("message")), 50_000),
        }
        consents = recorded_choices(pairs, plausible_occurrence(occurred, ctx))
        return make_event(
            ctx,
            index,
            (person, key),
            interaction,
            consents=consents,
            occurred_at=occurred,
            problems=problems,
            prefix=prefix,
        )

    return build
