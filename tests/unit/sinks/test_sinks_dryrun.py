"""Without a token the HubSpot sink writes what it would send to a private JSONL file (the embedded default)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from fakes.contacts import make_tagged

from pipeline.config import Settings
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.hubspot.dryrun import DryRunGateway, forget_request
from pipeline.sinks.hubspot.sink import HubSpotSink, make_gateway


def test_dry_run_is_the_default_without_token(settings: Settings) -> None:
    assert settings.hubspot_dry_run
    assert isinstance(make_gateway(settings), DryRunGateway)


def test_dry_run_records_each_request_in_a_private_file(settings: Settings) -> None:
    sink = HubSpotSink.from_settings(settings)
    batch = [make_tagged(f"p{i}@example.com") for i in range(150)] + [make_tagged(None, phone="+4930123456")]
    results = sink.write(batch)
    assert sum(r.outcome is WriteOutcome.WRITTEN for r in results) == 150
    assert sum(r.outcome is WriteOutcome.NOT_APPLICABLE for r in results) == 1
    path: Path = settings.resolved_dry_run_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["path"] for line in lines].count("/crm/v3/properties/contacts") >= 10
    upserts = [line for line in lines if line["path"] == "/crm/v3/objects/contacts/batch/upsert"]
    assert [len(u["body"]["inputs"]) for u in upserts] == [100, 50]
    assert upserts[0]["body"]["inputs"][0]["idProperty"] == "email"


def test_erasure_rewrites_the_file_without_the_person(settings: Settings) -> None:
    """purge_contact forgets every request naming the e-mail: whole requests about the person, the person's input
    alone in a batch that names others; the GDPR delete it then records names nobody. Others are untouched."""
    gone, kept = "Zoe.Quartz@example.com", "kai.ember@example.org"
    sink = HubSpotSink.from_settings(settings)
    people = [
        make_tagged(gone, first_name="Zoefina", last_name="Quartzberg"),
        make_tagged(kept, first_name="Kaiwen"),
        make_tagged("joe.quartz@example.com"),  # ends with the same letters: not the person
    ]
    sink.write(people)
    gateway = sink.gateway
    assert isinstance(gateway, DryRunGateway)
    gateway.read_contact(gone)
    gateway.update_contact(gone, {"leadpipe_marketing_allowed": "false"})
    gateway.unsubscribe_all([gone, kept])
    path: Path = settings.resolved_dry_run_file
    assert "zoefina" in path.read_text().lower()

    assert gateway.purge_contact(gone) is False  # no HubSpot contact existed: there is no HubSpot
    text = path.read_text().lower()
    for value in (gone.lower(), "zoefina", "quartzberg"):
        assert value not in text
    assert kept in text and "joe.quartz@example.com" in text and "kaiwen" in text
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    upsert = next(line for line in lines if line["path"].endswith("batch/upsert"))
    assert [i["id"] for i in upsert["body"]["inputs"]] == [kept, "joe.quartz@example.com"]
    batch = next(line for line in lines if "unsubscribe-all" in line["path"])
    assert batch["body"]["inputs"] == [kept]
    delete = lines[-1]
    assert delete["path"].endswith("gdpr-delete") and delete["body"]["objectId"] == "[erased]"
    assert delete["body"]["requestsForgotten"] == 4  # the upsert, the read, the update, the batch unsubscribe
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert gateway.forget(gone) == 0  # idempotent: a retried erasure finds nothing left


def test_forget_request_drops_what_names_the_person_only() -> None:
    request = {"method": "GET", "path": "/crm/v3/objects/contacts/ana@example.com", "query": {}, "body": None}
    assert forget_request(request, "ana@example.com") is None
    batch = {"path": "/x", "body": {"inputs": [{"id": "ana@example.com"}, {"id": "joana@example.com"}]}}
    assert forget_request(batch, "ana@example.com") == {"path": "/x", "body": {"inputs": [{"id": "joana@example.com"}]}}
    assert forget_request({"path": "/x", "body": {"inputs": [{"id": "ana@example.com"}]}}, "ana@example.com") is None
    quoted = '"books@books"@example.com'
    assert forget_request({"path": "/y", "body": {"emailAddress": quoted}}, quoted) is None


def test_an_access_request_in_dry_run_mode_gets_what_would_have_been_sent(settings: Settings) -> None:
    """No HubSpot account: the export's HubSpot part is the person's requests from the dry-run file (their input
    alone in a batch), not "not found in HubSpot" while the file holds their data."""
    from pipeline.rights.effects.base import Handover
    from pipeline.rights.effects.hubspot import ExportReader

    sink = HubSpotSink.from_settings(settings)
    sink.write([make_tagged("ana.lima@example.com"), make_tagged("other.person@example.org")])
    reader = ExportReader(make_gateway(settings))
    requests = reader.dry_run_requests(Handover(emails=("Ana.Lima@example.com",)))
    assert requests
    upserts = [r for r in requests if r["path"] == "/crm/v3/objects/contacts/batch/upsert"]
    assert [i["id"] for u in upserts for i in u["body"]["inputs"]] == ["ana.lima@example.com"]
    assert "other.person" not in json.dumps(requests)
    assert reader.dry_run_requests(Handover(emails=("nobody@example.com",))) == []
