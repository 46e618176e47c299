"""The data subject's rights as the privacy policy's section 9 states them, scenario by scenario, through the public
interfaces only: signed HTTP ingest and ``leadpipe import`` in, ``leadpipe dpo ...`` and the DPO API for the
requests, ``leadpipe crm show`` for what sales sees, and HubSpot's side read from the fake HubSpot's own state
(never only from leadpipe's evidence). One real broker, PostgreSQL, one worker (chain, sinks, rights agent) for the
whole module; each scenario has people of its own.

| policy | scenario (``test_...``) |
|---|---|
| 9.1 access, deadlines | ``access_is_a_password_protected_pdf_of_crm_and_hubspot_and_extensions_add_up`` |
| 9.2 rectification | ``rectification_then_access_shows_only_the_corrected_data`` |
| 9.2 the e-mail address | ``an_email_rectified_with_an_alias_...``, ``an_email_rectified_and_forgotten_...`` |
| 9.3 erasure | ``erasure_reaches_the_crm_hubspot_and_every_contact_hubspot_alone_holds`` |
| 9.4, 9.5 restriction | ``restriction_stops_processing_and_its_lifting_is_noticed``, ``restriction_then_erasure`` |
| 9.6 objection | ``an_objection_stops_marketing_everywhere_and_a_new_form_does_not_restart_it`` |
| 9.7 portability | ``portability_is_structured_json_of_what_the_person_gave_hubspot_only_contacts_too`` |
| 9.8 consent | ``withdrawing_consent_stops_what_rested_on_it_and_only_that`` |
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fakes.hubspot import FakeHubSpot, Fault
from fastapi.testclient import TestClient
from hubspot import HubSpot
from hubspot.crm.contacts.models import SimplePublicObjectInputForCreate
from identity_helpers import key_for
from pypdf import PdfReader
from rights_helpers import wait_until
from typer.testing import CliRunner
from worker_thread import WorkerThread

from pipeline.agents import processing, rights, sinks
from pipeline.agents.launch import worker_env
from pipeline.agents.worker import create_app
from pipeline.api.app import create_api
from pipeline.cli import app as cli
from pipeline.config import Settings, explicit_settings, get_settings
from pipeline.crm.read import CrmReadModel
from pipeline.db import ensure_schema
from pipeline.ingest.api import sign
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.kafka.topics import apply_topics, delete_prefixed_topics
from pipeline.models.identity import Role
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "scenario-form-secret"
SOURCE = "site-form"
REQUEST = re.compile(r"request ([0-9a-f-]{36}) \((\w+)\) for subject (sk_\w+)")


@dataclass
class Pipeline:
    """Everything a scenario talks to, the way an operator and a website would."""

    settings: Settings
    runtime: Runtime
    hub: FakeHubSpot
    http: TestClient
    crm: CrmReadModel
    dpo_key: str
    """The scenario DPO's API key (identity, issue 15): the CLI and the API act as this named person."""
    sales_key: str

    # ---- in: a website's signed form, an import ----------------------------------------------------------------

    def form(self, email: str | None, first: str, last: str, *, phone: str | None = None, consent: bool = False) -> str:
        """A contact form, signed as the website signs it; waits until the CRM and HubSpot hold it; its event id."""
        fields = {
            "email": email,
            "phone": phone,
            "first_name": first,
            "last_name": last,
            "company": "Quartzworks",
            "message": f"Please call me about the data platform ({uuid.uuid4().hex[:8]})",
            **({"consent_further_contact": "yes"} if consent else {}),
        }
        body = json.dumps({k: v for k, v in fields.items() if v is not None}).encode()
        answer = self.http.post(
            f"/v1/sources/{SOURCE}", content=body, headers={"content-type": "application/json", **sign(SECRET, body)}
        )
        assert answer.status_code == 202, answer.text
        [event_id] = answer.json()["event_ids"]
        return str(event_id)

    def stored(self, event_id: str, email: str | None = None, timeout_s: float = 60) -> None:
        """Wait until the CRM (and, with an e-mail, HubSpot) wrote the event."""
        wait_until(lambda: self.crm_holds(event_id), timeout_s=timeout_s, what=f"the CRM to store {event_id}")
        if email is not None:
            wait_until(lambda: self.hub.contact(email) is not None, timeout_s=timeout_s, what="HubSpot's contact")
            wait_until(
                lambda: (
                    (self.hub.contact(email) or {}).get("properties", {}).get("leadpipe_source_event_id") == event_id
                ),
                timeout_s=timeout_s,
                what="HubSpot to hold the event",
            )

    def crm_holds(self, event_id: str) -> bool:
        with self.runtime.engine.connect() as conn:
            from sqlalchemy import select

            from pipeline.crm.schema import interactions

            found = conn.execute(
                select(interactions.c.event_id).where(interactions.c.event_id == uuid.UUID(event_id))
            ).first()
        return found is not None

    def sales_rep_creates(self, **properties: str) -> str:
        """A contact made in HubSpot itself (a sales rep, a HubSpot form, an import there): leadpipe never saw it."""
        client = HubSpot(access_token=self.hub.token, host=self.hub.url, base_url=self.hub.url)
        return str(client.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=properties)).id)

    # ---- the operator's commands --------------------------------------------------------------------------------

    def _as(self, key: str) -> dict[str, str]:
        """The CLI's environment: settings as LEADPIPE_* variables, and whose API key it acts with."""
        return worker_env(self.settings, base={}, LEADPIPE_API_KEY=key)

    def leadpipe(self, *args: str, expect: int = 0) -> str:
        """``leadpipe ...`` as the DPO runs it (the CLI reads its settings from LEADPIPE_* variables)."""
        with mock.patch.dict(os.environ, self._as(self.dpo_key), clear=False):
            get_settings.cache_clear()
            try:
                result = CliRunner().invoke(cli, list(args))
            finally:
                get_settings.cache_clear()
        assert result.exit_code == expect, result.output
        return re.sub(r"[ \t]*[│╭╰─╮╯]+[ \t]*", " ", str(result.output))  # a refusal's box, unwrapped

    def dpo(self, *args: str, expect: int = 0) -> tuple[str, str]:
        """``leadpipe dpo ... --wait``: (request id, output)."""
        output = self.leadpipe("dpo", *args, "--wait", "--timeout", "90", expect=expect)
        found = REQUEST.search(output)
        assert found is not None, output
        return found.group(1), output

    def crm_show(self, ref: str) -> dict[str, Any] | None:
        """``leadpipe crm show``: what sales sees (None: no contact found)."""
        with mock.patch.dict(os.environ, self._as(self.sales_key), clear=False):
            get_settings.cache_clear()
            try:
                result = CliRunner().invoke(cli, ["crm", "show", ref])
            finally:
                get_settings.cache_clear()
        if result.exit_code == 2:
            return None
        assert result.exit_code == 0, result.output
        shown: dict[str, Any] = json.loads(result.stdout)
        return shown

    def api(self, kind: str, **body: Any) -> dict[str, Any]:
        """A request through the DPO API, waited for until it completed; the request as the API shows it."""
        auth = {"Authorization": f"Bearer {self.dpo_key}"}
        answer = self.http.post("/v1/dpo/requests", json={"kind": kind, **body}, headers=auth)
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["request_id"]

        def done() -> dict[str, Any] | None:
            view: dict[str, Any] = self.http.get(f"/v1/dpo/requests/{request_id}", headers=auth).json()
            return view if view["state"] in ("completed", "attention") else None

        view = wait_until(done, timeout_s=90, every_s=0.2, what=f"the {kind} request to complete")
        assert view["state"] == "completed", view
        return {**view, **answer.json()}

    def show(self, request_id: str) -> dict[str, Any]:
        """``leadpipe dpo show``: the request with each sink's evidence."""
        output = self.leadpipe("dpo", "show", request_id)
        shown: dict[str, Any] = json.JSONDecoder().raw_decode(output, output.index('{\n  "request_id"'))[0]
        return shown

    def evidence(self, request_id: str, sink: str) -> dict[str, Any]:
        [found] = [s for s in self.show(request_id)["sinks"] if s["sink"] == sink]
        evidence: dict[str, Any] = found["evidence"]
        return evidence


@contextlib.contextmanager
def running_pipeline(
    kafka_bootstrap: str,
    pg_admin_url: str,
    home: Path,
    name: str,
    sources: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Pipeline]:
    """API, processing, sink and rights agents on the real broker, a PostgreSQL database of their own and the fake
    HubSpot, with the website's signed form source (plus ``sources``); everything torn down after."""
    import psycopg

    database = f"lp_{name}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    with FakeHubSpot() as hub:  # HubSpot's own limits: 190 requests / 10 s, 4 searches / s
        settings = explicit_settings(
            environment="test",
            home=home,
            cache_dir=Path(os.environ.get("LEADPIPE_TEST_CACHE", str(Path.home() / ".cache" / "leadpipe"))),
            topic_prefix=f"{name[0]}{uuid.uuid4().hex[:10]}.",
            topic_partitions=1,
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=f"{pg_admin_url.rpartition('/')[0]}/{database}",
            subject_key_pepper=f"{name}-pepper",
            key_encryption_key=base64.urlsafe_b64encode(name[0].encode() * 32).decode(),
            log_format="console",
            spam_engine_enabled=False,  # no spam engine here (tests/conftest.py): words would wait for review
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
            hubspot_backoff_base_s=0.05,
            hubspot_backoff_max_s=0.2,
            hubspot_max_retries=2,
            rights_retry_base_s=0.05,
            rights_max_attempts=2,
            rights_hubspot_consent_subscriptions=("1001",),
            batch_timeout_s=0.05,
            sources={SOURCE: {"channel": "web_form", "hmac_secret": SECRET}, **(sources or {})},
        )
        apply_topics(settings)
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        dpo_key = key_for(settings, Role.DPO, f"{name}-dpo", display_name="Dana Scenario")
        sales_key = key_for(settings, Role.SALES, f"{name}-sales", display_name="Sam Sales")
        publisher = ConfirmingPublisher(settings)
        worker = WorkerThread(create_app(runtime, [processing.register, sinks.register, rights.register])).start(
            wait_for_topics=(settings.topic("rights.commands"), settings.topic("contacts.accepted"))
        )
        try:
            with TestClient(create_api(runtime, publisher)) as http:
                yield Pipeline(settings, runtime, hub, http, CrmReadModel(runtime.engine), dpo_key, sales_key)
        finally:
            worker.stop()
            publisher.close()
            runtime.engine.dispose()
            delete_prefixed_topics(settings, timeout_s=10)
            with psycopg.connect(pg_admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with running_pipeline(kafka_bootstrap, pg_admin_url, tmp_path_factory.mktemp("scenarios"), "scenarios") as p:
        yield p


def marketing(shown: dict[str, Any]) -> tuple[bool | None, list[bool]]:
    """What ``crm show`` says about marketing: the contact's flag and each stored interaction's."""
    return shown["marketing_allowed"], [i["marketing_allowed"] for i in shown["interactions_detail"]]


def hub_flag(p: Pipeline, email: str, name: str = "leadpipe_marketing_allowed") -> Any:
    contact = p.hub.contact(email)
    assert contact is not None, "HubSpot holds no such contact"
    return contact["properties"].get(name)


# ---- 9.1 access -------------------------------------------------------------------------------------------------


def test_access_is_a_password_protected_pdf_of_crm_and_hubspot_and_extensions_add_up(p: Pipeline) -> None:
    """9.1: a free copy within a month, as a password-protected PDF; prolonged by at most two more months in all,
    and the person is told every reason."""
    email = "ines.access@example.com"
    p.stored(p.form(email, "Inês", "Acesso"), email)
    request_id, output = p.dpo("access", "--email", email)
    password = output.split("not shown again): ")[1].split()[0]
    assert email not in output.replace(password, "")
    export = p.evidence(request_id, "export")
    assert export["sources"] == {"crm": "ok", "hubspot": "ok"}
    pdf = PdfReader(io.BytesIO(Path(export["path"]).read_bytes()))
    assert pdf.is_encrypted and pdf.decrypt(password) != 0
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert email in text and "Acesso" in text and p.hub.contact(email)["id"] in text  # type: ignore[index]

    # deadlines (9.1): while HubSpot is down the answer waits (never an export without HubSpot's part); the DPO
    # extends it: extensions add up to two months, never shorten the deadline, and keep every reason
    p.hub.inject(Fault.server_error(times=10_000, path_prefix="/crm/v3/objects/contacts/search"))
    try:
        late_id, _ = p.dpo("access", "--email", "late.reply@example.com", expect=3)  # 3: a sink failed, retried
        received = datetime.fromisoformat(p.show(late_id)["received_at"])
        p.leadpipe("dpo", "extend", late_id, "--months", "1", "--reason", "Complex request spanning two systems")
        p.leadpipe("dpo", "extend", late_id, "--months", "1", "--reason", "Numerous requests from this person")
        refused = p.leadpipe("dpo", "extend", late_id, "--months", "1", "--reason", "Still more time needed", expect=2)
    finally:
        p.hub.faults.clear()
    assert "cannot be extended again" in " ".join(refused.split())
    shown = p.show(late_id)
    assert shown["state"] == "attention" and not any(s["status"] == "done" for s in shown["sinks"])
    due = datetime.fromisoformat(shown["effective_due_at"])
    assert (due.year * 12 + due.month) - (received.year * 12 + received.month) == 3  # 1 + 2, not 1 + 1
    assert [e["reason"] for e in shown["extensions"]] == [
        "Complex request spanning two systems",
        "Numerous requests from this person",
    ]


# ---- 9.2 rectification ------------------------------------------------------------------------------------------


def test_rectification_then_access_shows_only_the_corrected_data(p: Pipeline) -> None:
    email = "mara.olsen@example.net"
    p.stored(p.form(email, "Mara", "Olsn"), email)
    view = p.api("rectification", email=email, changes={"last_name": "Olsen", "position": "CTO"})
    assert {s["sink"]: s["status"] for s in view["sinks"]} == {"crm": "done", "hubspot": "done"}
    shown = p.crm_show(email)
    assert shown is not None and (shown["last_name"], shown["position"]) == ("Olsen", "CTO")
    assert (hub_flag(p, email, "lastname"), hub_flag(p, email, "jobtitle")) == ("Olsen", "CTO")
    portability = p.api("portability", email=email)
    [export] = [s for s in portability["sinks"] if s["sink"] == "export"]
    document = Path(export["evidence"]["path"]).read_text()
    assert "Olsen" in document and "Olsn" not in document.replace("Olsn (", "")  # the form's own text aside


def test_an_email_rectified_with_an_alias_keeps_the_person_whole_when_the_old_address_writes(p: Pipeline) -> None:
    """9.2 for the address itself: corrected in the CRM and HubSpot, history and flags kept, the old address gone
    from every sink and export; with ``--old-address=alias`` a later form from the old address joins the person."""
    old, new = "kai.emberly@exmaple.com", "kai.emberly@example.com"
    first = p.form(old, "Kai", "Emberly", consent=True)
    p.stored(first, old)
    contact_id = p.hub.contact(old)["id"]  # type: ignore[index]
    p.dpo("object", "--email", old)  # a right exercised before the correction must follow the person
    request_id, output = p.dpo("rectify", "--email", old, "--set", f"email={new}", "--old-address", "alias")
    assert old not in output and new not in output
    shown = p.crm_show(new)
    assert shown is not None and shown["email"] == new and shown["marketing_objected"]
    assert [i["event_id"] for i in shown["interactions_detail"]] == [first]  # the history moved with the person
    assert [i["value"] for i in shown["identities"] if i["kind"] == "email"] == [new]
    assert p.crm_show(old) is None  # sales no longer find the person by the wrong address
    assert p.hub.contact(old) is None and p.hub.contact(new)["id"] == contact_id  # type: ignore[index]
    assert hub_flag(p, new, "leadpipe_subject_key") == shown["subject_key"]
    assert not any(old in json.dumps(c) for c in p.hub.contacts.values())
    crm = p.evidence(request_id, "crm")
    assert crm["new_subject_key"] == shown["subject_key"] and crm["old_address"] == "alias"
    assert p.evidence(request_id, "kafka")["keys_destroyed"] >= 1  # every sealed copy with the old address

    # the old address writes again: the same person, under the corrected address, still objected to marketing
    later = p.form(old, "Kai", "Emberly", consent=True)
    p.stored(later, new)
    shown = p.crm_show(new)
    assert shown is not None and [i["event_id"] for i in shown["interactions_detail"]] == [first, later]
    assert marketing(shown) == (False, [False, False])
    assert p.hub.contact(old) is None and len([c for c in p.hub.contacts.values() if "kai" in json.dumps(c)]) == 1
    # access afterwards: the export holds the corrected address only
    access = p.api("portability", email=new)
    [export] = [s for s in access["sinks"] if s["sink"] == "export"]
    document = Path(export["evidence"]["path"]).read_text()
    assert new in document and old not in document
    # the DPO may still name the person by the old address: it leads to them
    assert p.api("restriction", email=old)["subject_key"] == shown["subject_key"]


def test_an_email_rectified_and_forgotten_lets_the_old_address_be_somebody_new(p: Pipeline) -> None:
    old, new = "bo.typo@exmaple.org", "bo.right@example.org"
    first = p.form(old, "Bo", "Lind")
    p.stored(first, old)
    p.dpo("rectify", "--email", old, "--set", f"email={new}")  # --old-address=forget is the default
    assert p.hub.contact(old) is None and p.hub.contact(new) is not None
    later = p.form(old, "Someone", "Else")  # the old address belongs to somebody else
    p.stored(later, old)
    bo, other = p.crm_show(new), p.crm_show(old)
    assert bo is not None and other is not None and bo["subject_key"] != other["subject_key"]
    assert [i["event_id"] for i in bo["interactions_detail"]] == [first]
    assert [i["event_id"] for i in other["interactions_detail"]] == [later] and other["first_name"] == "Someone"
    assert p.hub.contact(old)["id"] != p.hub.contact(new)["id"]  # type: ignore[index]


def test_a_phone_only_person_given_an_address_keeps_their_objection_when_they_call_again(p: Pipeline) -> None:
    """Keyed by the number (no address yet), the person is given an address: the number is still theirs, so by
    default it stays an alias, and a later contact from it joins them, objection and all."""
    phone, email = "+447911123456", "paul.okafor@example.co.uk"
    first = p.form(None, "Paul", "Okafor", phone=phone)
    p.stored(first)
    p.dpo("object", "--phone", "07911 123456", "--region", "GB")
    request_id, _ = p.dpo("rectify", "--phone", phone, "--set", f"email={email}")
    assert p.evidence(request_id, "crm")["old_address"] == "alias"
    later = p.form(None, "Paul", "Okafor", phone=phone)
    p.stored(later)
    shown = p.crm_show(email)
    assert shown is not None and [i["event_id"] for i in shown["interactions_detail"]] == [first, later]
    assert shown["marketing_objected"] and marketing(shown) == (False, [False, False])


def test_a_request_by_the_number_of_a_person_held_under_their_address_reaches_them(p: Pipeline) -> None:
    email = "dmitry.volkov@example.ru"
    first = p.form(email, "Dmitry", "Volkov", phone="+79161234567", consent=True)
    p.stored(first, email)
    _, output = p.dpo("object", "--phone", "8 916 123-45-67", "--region", "RU")
    shown = p.crm_show(email)
    assert shown is not None and shown["marketing_objected"] and marketing(shown) == (False, [False])
    assert f"for subject {shown['subject_key']} published" in output and "the one subject holding it" in output
    assert "1234567" not in output and "123-45-67" not in output


# ---- 9.3 erasure ------------------------------------------------------------------------------------------------


def test_erasure_reaches_the_crm_hubspot_and_every_contact_hubspot_alone_holds(p: Pipeline) -> None:
    """9.3: "remove you from our database" means HubSpot too, including contacts leadpipe never wrote there."""
    email, phone = "zoe.quartz@example.com", "+442079460958"
    p.stored(p.form(email, "Zoe", "Quartz", phone=phone), email)
    rep_made = p.sales_rep_creates(phone=phone, firstname="Zoe (call)")  # no e-mail: found by the phone only
    colleague = p.sales_rep_creates(phone=phone, email="reception@quartzworks.example")  # a shared number
    request_id, _ = p.dpo("erase", "--email", email, "--yes")
    shown = p.crm_show(email)
    assert shown is None  # the erased person cannot be found by address any more
    assert p.hub.contact(email) is None and email in p.hub.gdpr_deleted
    assert rep_made not in p.hub.contacts  # HubSpot-only, found through the phone the CRM held
    assert colleague in p.hub.contacts  # found by phone too, but somebody else's: left, and reported
    hubspot = p.evidence(request_id, "hubspot")
    assert hubspot["outcome"] == "deleted" and [s["contact_id"] for s in hubspot["skipped"]] == [colleague]
    assert {c["contact_id"]: c["found_by"] for c in hubspot["contacts"]}[rep_made] == ["phone"]
    assert p.hub.calls("DELETE") == []  # the GDPR delete, never the restorable archive

    # only HubSpot knows this person (a HubSpot form): erased there, by e-mail and by phone (through the API)
    hubspot_only = "only.in.hubspot@example.com"
    by_email = p.sales_rep_creates(email=hubspot_only, firstname="Olga")
    request_id, _ = p.dpo("erase", "--email", hubspot_only, "--yes")
    assert by_email not in p.hub.contacts and p.evidence(request_id, "hubspot")["outcome"] == "deleted"
    assert p.evidence(request_id, "crm")["reason"] == "subject_not_in_crm"
    by_phone = p.sales_rep_creates(phone="+4721929300", firstname="Nils")
    view = p.api("erasure", phone="+47 21 92 93 00")
    assert by_phone not in p.hub.contacts
    assert [s["evidence"]["outcome"] for s in view["sinks"] if s["sink"] == "hubspot"] == ["deleted"]
    # nobody anywhere: HubSpot was asked, and says so
    request_id, _ = p.dpo("erase", "--email", "nobody.at.all@example.com", "--yes")
    assert p.evidence(request_id, "hubspot")["outcome"] == "not found in HubSpot"
    assert p.hub.rate_limited == 0 and p.hub.max_in_window(1.0, "/crm/v3/objects/contacts/search") <= 4


# ---- 9.4, 9.5 restriction --------------------------------------------------------------------------------------


def test_restriction_stops_processing_and_its_lifting_is_noticed(p: Pipeline) -> None:
    email = "nils.rask@example.org"
    first = p.form(email, "Nils", "Rask")
    p.stored(first, email)
    p.dpo("restrict", "--email", email)
    shown = p.crm_show(email)
    assert shown is not None and shown["withheld"] and shown["status"] == "restricted"  # sales see no data
    with_data = p.crm.show(shown["subject_key"])  # the data itself is stored, not deleted
    assert with_data is not None and with_data.marketing_allowed is False
    assert [i.marketing_allowed for i in with_data.interactions_detail] == [False]
    assert hub_flag(p, email, "leadpipe_processing_restricted") == "true"  # the recipient is told (9.5)
    assert hub_flag(p, email) == "false"
    restriction = p.api("restriction", email=email)  # asked again through the API: the latest restriction stands
    blocked = p.form(email, "Nils", "Rask")  # the person writes to support meanwhile
    # 9.4: not processed further (never stored, never in HubSpot), but the DPO is told, on the restriction that stood
    auth = {"Authorization": f"Bearer {p.dpo_key}"}

    def told() -> dict[str, Any] | None:
        view: dict[str, Any] = p.http.get(f"/v1/dpo/requests/{restriction['request_id']}", headers=auth).json()
        return view if view["contacts_while_restricted"] else None

    view = wait_until(told, timeout_s=60, what="the DPO to be told of the restricted person's new contact")
    [contact] = view["contacts_while_restricted"]
    assert contact["event_id"] == blocked and contact["channel"] == "web_form" and view["contacts_unreviewed"] == 1
    listed = p.http.get("/v1/dpo/requests", headers=auth).json()  # the open list brings it back to the DPO
    assert restriction["request_id"] in [r["request_id"] for r in listed]
    assert "CONTACT-WHILE-RESTRICTED x1" in p.leadpipe("dpo", "status")
    assert not p.crm_holds(blocked) and hub_flag(p, email, "leadpipe_source_event_id") != blocked
    assert email not in json.dumps(view) and "Nils" not in json.dumps(view)
    reviewed = p.http.post(f"/v1/dpo/requests/{restriction['request_id']}/contacts-reviewed", headers=auth)
    assert reviewed.status_code == 200 and reviewed.json()["contacts_unreviewed"] == 0
    listed = p.http.get("/v1/dpo/requests", headers=auth).json()
    assert restriction["request_id"] not in [r["request_id"] for r in listed]
    p.form(email, "Nils", "Rask")  # writes again: back on the DPO's list, and reviewed from the command line
    wait_until(
        lambda: p.http.get(f"/v1/dpo/requests/{restriction['request_id']}", headers=auth).json()["contacts_unreviewed"],
        timeout_s=60,
        what="the second contact to be filed",
    )
    said = p.leadpipe("dpo", "contacts-reviewed", restriction["request_id"])
    assert "2 contact(s) recorded as reviewed" in said
    assert "CONTACT-WHILE-RESTRICTED" not in p.leadpipe("dpo", "status")
    lifted, _ = p.dpo("unrestrict", "--email", email)
    assert p.show(lifted)["notice_due"]  # 9.5: the person is told when a restriction is lifted
    p.leadpipe("dpo", "notice-sent", lifted)
    assert not p.show(lifted)["notice_due"]
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (True, [True])  # nothing else stood against it
    assert hub_flag(p, email, "leadpipe_processing_restricted") == "false" and hub_flag(p, email) == "true"


def test_restriction_then_erasure(p: Pipeline, tmp_path: Path) -> None:
    """A restricted person may still ask to be erased; what was restricted goes too. In through ``leadpipe import``."""
    email = "rhea.block@example.com"
    rows = tmp_path / "forms.jsonl"
    rows.write_text(json.dumps({"email": email, "first_name": "Rhea", "last_name": "Block", "message": "Hi"}) + "\n")
    p.leadpipe("import", "web_form", str(rows), "--source-id", "site-export")
    wait_until(lambda: p.crm.subject_key_for(email=email), timeout_s=60, what="the imported contact")
    wait_until(lambda: p.hub.contact(email), timeout_s=60, what="HubSpot's contact")
    p.dpo("restrict", "--email", email)
    request_id, _ = p.dpo("erase", "--email", email, "--yes")
    assert p.crm_show(email) is None and p.hub.contact(email) is None and email in p.hub.gdpr_deleted
    statuses = {s["sink"]: s["status"] for s in p.show(request_id)["sinks"]}
    assert statuses == {
        **dict.fromkeys(("suppression", "kafka", "crm", "hubspot"), "done"),
        "export": "not_applicable",  # no export was waiting to be delivered
    }


# ---- 9.6 objection ----------------------------------------------------------------------------------------------


def test_an_objection_stops_marketing_everywhere_and_a_new_form_does_not_restart_it(p: Pipeline) -> None:
    """9.6: direct marketing stops as soon as the objection arrives, in the CRM (contact and every interaction)
    and in HubSpot alike; a later form, even one ticking the marketing box, does not turn it back on."""
    email = "ola.nordmann@example.no"
    first = p.form(email, "Ola", "Nordmann", consent=True)
    p.stored(first, email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (True, [True]) and hub_flag(p, email) == "true"
    p.dpo("object", "--email", email)
    shown = p.crm_show(email)
    assert shown is not None and shown["marketing_objected"] and marketing(shown) == (False, [False])
    assert hub_flag(p, email) == "false" and p.hub.unsubscribed_all.get(email) == "EMAIL"
    later = p.form(email, "Ola", "Nordmann", consent=True)  # ticks "contact me about other services" again
    p.stored(later, email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (False, [False, False])
    [new] = [i for i in shown["interactions_detail"] if i["event_id"] == later]
    assert not any(purpose["direct_marketing"] for purpose in new["purposes"])
    assert hub_flag(p, email) == "false"
    # only the DPO lifts it, on the person's word: what it stopped stays stopped, what comes next may be marketed
    p.dpo("lift-objection", "--email", email)
    shown = p.crm_show(email)
    assert shown is not None and not shown["marketing_objected"] and marketing(shown) == (False, [False, False])
    third = p.form(email, "Ola", "Nordmann", consent=True)
    p.stored(third, email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (True, [False, False, True]) and hub_flag(p, email) == "true"


# ---- 9.7 portability --------------------------------------------------------------------------------------------


def test_portability_is_structured_json_of_what_the_person_gave_hubspot_only_contacts_too(p: Pipeline) -> None:
    email, phone = "ada.port@example.com", "+4930123456"
    p.stored(p.form(email, "Ada", "Port", phone=phone), email)
    rep_made = p.sales_rep_creates(
        phone=phone, firstname="Ada (trade fair)", mobilephone="+4915198765432", city="Berlin", address="Unter 1"
    )
    request_id, _ = p.dpo("export", "--email", email)
    document = json.loads(Path(p.evidence(request_id, "export")["path"]).read_text())
    crm, hubspot = document["sections"]
    assert crm["records"]["subject"][0]["email"] == email
    ids = {c["id"] for c in hubspot["records"]["contacts"]}
    assert ids == {p.hub.contact(email)["id"], rep_made}  # type: ignore[index]
    # what HubSpot holds of the person, not only what leadpipe wrote there (9.1: all personal data held)
    [typed] = [c["properties"] for c in hubspot["records"]["contacts"] if c["id"] == rep_made]
    assert (typed["mobilephone"], typed["city"], typed["address"]) == ("+4915198765432", "Berlin", "Unter 1")


# ---- 9.8 withdrawal of consent ----------------------------------------------------------------------------------


def test_withdrawing_consent_stops_what_rested_on_it_and_only_that(p: Pipeline) -> None:
    email = "lena.consent@example.de"
    p.stored(p.form(email, "Lena", "Zustimmung", consent=True), email)
    refused = p.leadpipe(
        "dpo", "withdraw-consent", "--email", email, "--purpose", "contract_request", expect=2
    )  # the policy file says what rests on consent; a contract request does not
    assert "this purpose does not rest on consent" in " ".join(refused.split())
    p.api("consent_withdrawal", email=email, purposes=["further_contact"])
    shown = p.crm_show(email)
    assert shown is not None and shown["consent_state"] == {"further_contact": False}
    purposes = {x["purpose"]: x for i in shown["interactions_detail"] for x in i["purposes"]}
    assert purposes["further_contact"]["stopped_at"] is not None
    assert purposes["contract_request"]["stopped_at"] is None  # the request itself is still answered
    # information of interest rests on legitimate interest (3.3(2)): marketing goes on, the same in both places
    assert marketing(shown) == (True, [True]) and hub_flag(p, email) == "true"
    assert "further_contact" not in hub_flag(p, email, "leadpipe_purposes")
    assert p.hub.subscriptions[email]["1001"] == "NOT_SUBSCRIBED"
    # the sales conversation goes on without the box ticked: the withdrawal holds for it
    quiet = p.form(email, "Lena", "Zustimmung")
    p.stored(quiet, email)
    shown = p.crm_show(email)
    assert shown is not None and shown["consent_state"] == {"further_contact": False}
    [plain] = [i for i in shown["interactions_detail"] if i["event_id"] == quiet]
    assert "further_contact" not in {x["purpose"] for x in plain["purposes"]}
    # then a form ticks the box again (9.8: consent given case by case, after the withdrawal): that contact rests on
    # it, the CRM's consent state says so, HubSpot lists the purpose; what the withdrawal stopped stays stopped and
    # HubSpot's subscription is the person's to restore there
    later = p.form(email, "Lena", "Zustimmung", consent=True)
    p.stored(later, email)
    shown = p.crm_show(email)
    assert shown is not None and shown["consent_state"] == {"further_contact": True}
    [new] = [i for i in shown["interactions_detail"] if i["event_id"] == later]
    assert {x["purpose"] for x in new["purposes"]} >= {"contract_request", "further_contact"}
    stopped = [x for i in shown["interactions_detail"] for x in i["purposes"] if x["purpose"] == "further_contact"]
    assert sum(x["stopped_at"] is None for x in stopped) == 1  # only the new contact's
    assert [c["granted"] for c in shown["consents"]][-1] is True
    assert "further_contact" in hub_flag(p, email, "leadpipe_purposes")
    assert p.hub.subscriptions[email]["1001"] == "NOT_SUBSCRIBED"


@pytest.fixture
def p(pipeline: Pipeline) -> Pipeline:
    return pipeline
