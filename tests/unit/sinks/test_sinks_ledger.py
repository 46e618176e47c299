"""The delivery ledger on both backends: what a sink marks before and after a call reads back as written, and on
PostgreSQL each step is one statement whatever the batch size (arrays: ``any_of``, ``update_rows``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from pipeline.db import ensure_schema, make_engine
from pipeline.sinks.ledger import DELIVERED, SENDING, Delivery, DeliveryLedger


def test_sending_then_delivered_reads_back_per_event_and_sink(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    ledger, other = DeliveryLedger(engine, "hubspot"), DeliveryLedger(engine, "elsewhere")
    ids = [uuid.uuid4() for _ in range(120)]
    statements: list[tuple[str, str, bool]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
        statements.append((statement.split(None, 1)[0].upper(), statement, many))

    ledger.sending(ids)
    other.sending(ids[:1])
    ledger.delivered({e: f"c{i}" for i, e in enumerate(ids[:100])})
    ledger.sending(ids[:3])  # a row already there stays as it is
    found = ledger.lookup([*ids, uuid.uuid4()])

    assert found == {
        **{e: Delivery(DELIVERED, f"c{i}") for i, e in enumerate(ids[:100])},
        **{e: Delivery(SENDING, None) for e in ids[100:]},
    }
    assert other.lookup(ids) == {ids[0]: Delivery(SENDING, None)}
    ledger.lookup(ids[:2])
    if engine.dialect.name == "postgresql":  # one statement per step, not one per event or per list length
        updates = [s for s in statements if s[0] == "UPDATE"]
        assert len(updates) == 1 and not updates[0][2], updates
        assert len({text for verb, text, _ in statements if verb == "SELECT"}) == 1, statements
    engine.dispose()
