"""Existing customers (policy section 6): records imported from the customer base, CSV, JSON Lines, JSON or
vCard.

Retention runs "6 years from the last service delivery", so each record must say when that was
(``last_service_delivery``); a record without it is refused rather than given a made-up clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields, tabular, vcard
from pipeline.sources.base import (
    Problem,
    SourceContext,
    build_person,
    make_event,
    parse_timestamp,
    plausible_occurrence,
    text_of,
)
from pipeline.sources.choices import recorded_choices
from pipeline.sources.event import collect_all

CONTENT_TYPES = frozenset({"application/json"}) | tabular.CSV_TYPES | tabular.JSONL_TYPES | vcard.VCARD_TYPES


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    if ctx.content_type in tabular.CSV_TYPES:
        records: list[tuple[str, Mapping[str, Any]]] = [
            (f"row {line}.", row) for line, row in tabular.read_csv(raw, ctx.charset, tabular.dialect_of(ctx.params))
        ]
    elif ctx.content_type in vcard.VCARD_TYPES:
        records = [(f"line {line}.", card) for line, card in vcard.read_vcards(raw, ctx.charset)]
    elif ctx.content_type in tabular.JSONL_TYPES:
        records = []
        for line, item in tabular.read_jsonl(raw):
            records.append((f"line {line}.", item if isinstance(item, dict) else {"_not_an_object": item}))
    else:
        records = [(f"{path}." if path else "", item) for path, item in tabular.records_of_json(raw)]
    return collect_all([(prefix, _builder(record)) for prefix, record in records], ctx)


def _builder(record: Mapping[str, Any]) -> Callable[[SourceContext, int, str], ContactEvent]:
    def build(ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
        problems: list[Problem] = []
        if "_not_an_object" in record:
            problems.append(Problem("unexpected_shape", prefix.rstrip("."), "a record must be a JSON object"))
        flat = fields.flattened(record.items())
        pairs = [(k, v) for k, v in flat if not isinstance(v, dict)]
        values = fields.collect(flat)  # an object is no value, but Salesforce's "attributes" say what the record is
        person, key = build_person(values, ctx, problems, prefix=prefix)
        delivered = None
        if text_of(values.get("last_service_delivery_at")) is None:
            problems.append(
                Problem(
                    "missing_last_service_delivery",
                    prefix + "last_service_delivery",
                    "the date of the last service delivery starts the customer retention clock",
                )
            )
        else:
            delivered = parse_timestamp(
                values.get("last_service_delivery_at"), prefix + "last_service_delivery", problems
            )
        interaction = {
            "kind": InteractionKind.CUSTOMER_RECORD,
            "subject": clean_text(text_of(values.get("customer_id")), 1000),
            "message": clean_text(text_of(values.get("message")), 50_000),
            "last_service_delivery_at": delivered,
        }
        occurred = parse_timestamp(values.get("occurred_at"), prefix + "updated_at", problems)
        return make_event(
            ctx,
            index,
            (person, key),
            interaction,
            consents=recorded_choices(pairs, plausible_occurrence(occurred, ctx)),  # an opt-out column is a refusal
            occurred_at=occurred,
            problems=problems,
            prefix=prefix,
        )

    return build
