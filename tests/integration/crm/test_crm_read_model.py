"""The CRM's read model against SQLite and PostgreSQL (``db_url``): lookups by canonical identity, name search."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fakes.contacts import make_tagged
from sqlalchemy import create_engine, text, update

from pipeline.crm.read import CrmReadModel
from pipeline.crm.schema import subjects
from pipeline.crm.views import LeadQuery
from pipeline.sinks.crm.writer import CrmWriter

pytestmark = pytest.mark.integration


def test_search_and_show(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    jane = make_tagged("jane.doe@example.com", phone="+4930123456")
    john = make_tagged("john.smith@example.org", first_name="John", last_name="Smith")
    crm_writer.write_events([jane, john])
    assert [h.subject_key for h in crm_read.search(email="JANE.DOE@example.com")] == [jane.event.subject_key]
    assert [h.subject_key for h in crm_read.search(phone="+49 30 123456")] == [jane.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="smi")] == [john.event.subject_key]
    assert crm_read.search(email="nobody@example.com") == []
    assert crm_read.search(email="not an address") == []
    assert crm_read.subject_key_for(email="Jane.Doe@Example.com") == jane.event.subject_key
    with pytest.raises(ValueError):
        crm_read.search()


def test_a_name_is_matched_literally(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    """LIKE wildcards and the escape character in a searched name match themselves on both backends."""
    percent = make_tagged("p@example.com", first_name="100%", last_name="Sure")
    under = make_tagged("u@example.com", first_name="a_b", last_name="Slash\\Name")
    plain = make_tagged("x@example.com", first_name="aXb", last_name="Other")
    crm_writer.write_events([percent, under, plain])
    assert [h.subject_key for h in crm_read.search(name="0%")] == [percent.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="a_b")] == [under.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="h\\n")] == [under.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="%")] == [percent.event.subject_key]


def test_a_name_in_any_script_is_found_in_any_case(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    """SQLite's lower() folds ASCII only: sales searching the embedded CRM for "иван" never found Иванов."""
    ivan = make_tagged("ivan@example.ru", first_name="Иван", last_name="Иванов")
    jorg = make_tagged("j@example.de", first_name="Jörg", last_name="ÖZTÜRK")
    crm_writer.write_events([ivan, jorg])
    assert [h.subject_key for h in crm_read.search(name="иванов")] == [ivan.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="ИВАН")] == [ivan.event.subject_key]
    assert [h.subject_key for h in crm_read.search(name="öztürk")] == [jorg.event.subject_key]


def test_the_lead_inbox_and_leads_per_day(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    """The console's queries on both backends: filters shared with search, date arithmetic in SQL."""
    jane = make_tagged("jane.doe@example.com", phone="+4930123456", company="Initech")
    john = make_tagged("john.smith@example.org", first_name="John", last_name="Smith", company="Globex")
    crm_writer.write_events([jane, john])
    assert [lead.company for lead in crm_read.leads(LeadQuery(company="glob"))] == ["Globex"]
    assert [lead.email for lead in crm_read.leads(LeadQuery(phone="+49 30 123456"))] == ["jane.doe@example.com"]
    assert len(crm_read.leads(LeadQuery(marketing_at=jane.event.received_at))) == 2
    day = jane.event.received_at.date()
    per_day = crm_read.leads_per_day(jane.event.received_at - timedelta(days=1))
    assert per_day == [(day, jane.event.channel.value, 2)]


def test_a_restricted_subject_is_found_only_by_its_exact_email(crm_writer: CrmWriter, crm_read: CrmReadModel) -> None:
    """Probe of issue 13: ``?name=Rita%20R`` matched a restricted subject and ``Rita%20X`` did not, so a name
    withheld from the answer could be rebuilt one letter at a time."""
    rita = make_tagged("rita.r@example.com", first_name="Rita", last_name="Restricted", phone="+4930123457")
    crm_writer.write_events([rita])
    key = rita.event.subject_key
    assert [h.subject_key for h in crm_read.search(name="Rita R")] == [key]  # before the restriction
    with crm_read.engine.begin() as conn:
        conn.execute(update(subjects).where(subjects.c.subject_key == key).values(restricted=True))
    assert crm_read.search(name="Rita R") == [] and crm_read.search(name="rita") == []
    assert crm_read.search(phone="+49 30 123457") == []
    assert crm_read.search(email="rita.r@example.com", name="Rita R") == []
    assert crm_read.search(email="rita.r@example.com", phone="+49 30 123457") == []
    [hit] = crm_read.search(email="Rita.R@example.com")
    assert hit.subject_key == key and hit.for_sales().status == "restricted"
    shown = crm_read.show(key)
    assert shown is not None and shown.for_sales().status == "restricted"


def test_leads_per_day_are_utc_days_whatever_the_database_server_s_zone(
    crm_writer: CrmWriter, crm_read: CrmReadModel
) -> None:
    """A lead at 23:30 UTC counts on its UTC day, also on a PostgreSQL session 14 hours ahead (next day there)."""
    late = make_tagged("late@example.com", occurred_at=datetime(2025, 3, 1, 23, 30, tzinfo=UTC))
    crm_writer.write_events([late])
    read = crm_read
    if crm_read.engine.dialect.name == "postgresql":
        far_east = {"options": "-c TimeZone=Pacific/Kiritimati"}
        read = CrmReadModel(create_engine(crm_read.engine.url, connect_args=far_east))
        with read.engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar() == "Pacific/Kiritimati"
    try:
        assert read.leads_per_day(datetime(2025, 3, 1, tzinfo=UTC)) == [(date(2025, 3, 1), "web_form", 1)]
    finally:
        read.engine.dispose()
