"""Acceptance of the data subject's rights (policy section 9), played as the people who accept a release play it:
realistic requests through the public interfaces only (signed HTTP ingest as the vendors send it, ``leadpipe dpo
...`` and the DPO API, ``leadpipe crm show``), against the running pipeline, then what every sink holds compared with
what the policy says. HubSpot's side is read from the fake HubSpot's own state. The combinations here are the ones
``test_rights_policy_scenarios.py`` does not walk:

| policy | scenario (``test_...``) |
|---|---|
| 9.1, 9.3 | ``a_person_known_by_phone_only_...``: a WhatsApp contact, then the same person by e-mail too |
| 9.6, 9.4 | ``an_objection_made_by_phone_...``, ``a_restricted_person_who_messages_from_their_number_...`` |
| | (expected to fail: a right does not cross from a phone's key to an e-mail's, or back; docs/rights.md) |
| 9.1 | ``access_of_a_person_only_hubspot_holds``, ``access_by_phone_of_a_caller_only_hubspot_holds``, |
| | ``access_after_erasure_holds_only_what_came_after`` |
| 9.2, 9.6 | ``an_objection_after_the_address_was_corrected_...``: by the old address and by the new one |
| 9.8 | ``consent_given_again_then_withdrawn_again_...`` |
| 9.4, 9.2, 9.5 | ``a_contested_record_is_restricted_corrected_and_released_with_notice`` |
| 9.6 | ``an_objection_received_before_the_person_is_known_...`` |
| 9.1 (tracking) | ``a_request_issued_twice_...``, ``a_request_for_nobody_...`` |
| 9.3 (by hand) | ``a_step_hubspot_refuses_for_good_is_closed_by_hand``: and a reason naming the person is refused |
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fakes.hubspot import Fault
from pypdf import PdfReader
from rights_helpers import wait_until
from test_rights_policy_scenarios import Pipeline, hub_flag, marketing, running_pipeline
from typer.testing import CliRunner

from pipeline.agents.launch import worker_env
from pipeline.cli import app as cli
from pipeline.config import get_settings
from pipeline.ingest import signatures

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WHATSAPP = "whatsapp"
WHATSAPP_SECRET = "meta-app-secret"


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The policy scenarios' pipeline, with a WhatsApp Cloud API source (Meta's signature) beside the website."""
    whatsapp = {WHATSAPP: {"channel": "messenger", "signature": "meta", "hmac_secret": WHATSAPP_SECRET}}
    home = tmp_path_factory.mktemp("acceptance")
    with running_pipeline(kafka_bootstrap, pg_admin_url, home, "acceptance", whatsapp) as p:
        yield p


@pytest.fixture
def p(pipeline: Pipeline) -> Pipeline:
    return pipeline


def whatsapp(p: Pipeline, wa_id: str, name: str, text: str) -> str:
    """A WhatsApp Cloud API webhook, as Meta sends it (one message of one contact, signed with the app secret);
    the event id."""
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065403522"},
                                "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": f"wamid.{uuid.uuid4().hex}",
                                        "timestamp": str(int(time.time())),
                                        "text": {"body": text},
                                        "type": "text",
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    headers = {"content-type": "application/json", **signatures.sign("meta", WHATSAPP_SECRET, body, int(time.time()))}
    answer = p.http.post(f"/v1/sources/{WHATSAPP}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    [event_id] = answer.json()["event_ids"]
    return str(event_id)


def auth(p: Pipeline) -> dict[str, str]:
    return {"Authorization": f"Bearer {p.dpo_key}"}


def export_of(p: Pipeline, request_id: str) -> dict[str, Any]:
    """The portability JSON of a request, as the DPO downloads it through the API."""
    answer = p.http.get(f"/v1/dpo/requests/{request_id}/export", headers=auth(p))
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = json.loads(answer.content)
    return document


def restore_verify(p: Pipeline) -> tuple[int, dict[str, Any]]:
    """``leadpipe restore verify --json`` as an operator runs it (the check the worker and the API make before they
    start): its exit code and report."""
    with mock.patch.dict(os.environ, worker_env(p.settings, base={}, LEADPIPE_API_KEY=p.dpo_key), clear=False):
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, ["restore", "verify", "--json"])
        finally:
            get_settings.cache_clear()
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def sections(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"]: s for s in document["sections"]}


# ---- one person, known first by their number only ---------------------------------------------------------------


def test_a_person_known_by_phone_only_then_by_email_too(p: Pipeline) -> None:
    """A WhatsApp contact (their number only) asks for a copy, then writes through the website with their e-mail
    and the same number: two subjects in the CRM (one per key). A request by the e-mail tells the DPO of the
    number's subject; the erasure reaches what each request names, HubSpot by every identity."""
    wa_id, phone, email = "447911123461", "+447911123461", "priya.whats@example.co.uk"
    chat = whatsapp(p, wa_id, "Priya Shah", "Hi, do you build data platforms?")
    p.stored(chat)
    request_id, said = p.dpo("export", "--phone", "07911 123461", "--region", "GB")
    assert "123461" not in said
    document = export_of(p, request_id)
    crm = sections(document)["crm"]["records"]
    assert [i["event_id"] for i in crm["interactions"]] == [chat] and "data platforms" in json.dumps(crm)
    assert sections(document)["hubspot"]["status"] == "not_found"  # HubSpot holds no contact without an e-mail
    by_phone = p.crm_show(phone)
    assert by_phone is not None

    form = p.form(email, "Priya", "Shah", phone=phone)
    p.stored(form, email)
    view = p.api("access", email=email)
    assert view["related_subject_keys"] == [by_phone["subject_key"]]  # the DPO is told of the number's subject
    assert phone not in json.dumps(view) and email not in json.dumps(view)
    [export] = [s for s in view["sinks"] if s["sink"] == "export"]
    pdf = PdfReader(io.BytesIO(Path(export["evidence"]["path"]).read_bytes()))
    assert pdf.decrypt(view["password"]) != 0
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert email in text and "data platforms" not in text  # this copy is the e-mail's subject's

    # erasure by the e-mail: that subject and every HubSpot contact of the person; the number's subject is named
    erasure = p.api("erasure", email=email)
    assert erasure["related_subject_keys"] == [by_phone["subject_key"]]
    assert p.crm_show(email) is None and p.hub.contact(email) is None
    assert p.crm_show(phone) is not None  # a number can be shared: only the DPO decides it is the same person
    p.dpo("erase", "--phone", phone, "--yes")
    assert p.crm_show(phone) is None


def test_an_objection_made_by_phone_reaches_the_person_once_their_email_is_known(p: Pipeline) -> None:
    """9.6: an objection stops direct marketing to the person "as soon as we receive" it. A caller known by their
    number objects; weeks later they fill in the website's form with their e-mail and that number, ticking the
    marketing box: the objection is still theirs (as it is when the DPO gives a phone-only person an address)."""
    wa_id, phone, email = "447911123462", "+447911123462", "arjun.whats@example.co.uk"
    p.stored(whatsapp(p, wa_id, "Arjun Mehta", "Please stop sending me offers"))
    p.dpo("object", "--phone", phone)
    form = p.form(email, "Arjun", "Mehta", phone=phone, consent=True)
    p.stored(form, email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (False, [False])
    assert hub_flag(p, email) == "false"


# ---- access --------------------------------------------------------------------------------------------------------


def test_access_of_a_person_only_hubspot_holds(p: Pipeline) -> None:
    """9.1: the copy holds what HubSpot holds of a person leadpipe never saw (a sales rep typed them in)."""
    email = "hugo.onlyhub@example.fr"
    contact_id = p.sales_rep_creates(email=email, firstname="Hugo", lastname="Hubert", city="Lyon")
    view = p.api("access", email=email)
    assert view["in_crm"] is False
    [export] = [s for s in view["sinks"] if s["sink"] == "export"]
    assert export["evidence"]["sources"] == {"crm": "not_found", "hubspot": "ok"}
    pdf = PdfReader(io.BytesIO(Path(export["evidence"]["path"]).read_bytes()))
    assert pdf.is_encrypted and pdf.decrypt(view["password"]) != 0
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert email in text and "Hubert" in text and "Lyon" in text and contact_id in text


def test_access_after_erasure_holds_only_what_came_after(p: Pipeline) -> None:
    """Erased, the person writes again, then asks for a copy: it holds the new contact only and nothing of the
    erased past (no event, no message, no number, no name given before)."""
    email = "lotte.again@example.nl"
    before = p.form(email, "Lotte", "Vroeger", phone="+31201234567", consent=True)
    p.stored(before, email)
    erasure, _ = p.dpo("erase", "--email", email, "--yes")
    after = p.form(email, "Lotte", "Nu")
    p.stored(after, email)
    request_id, _ = p.dpo("export", "--email", email)
    document = export_of(p, request_id)
    text = json.dumps(document)
    crm = sections(document)["crm"]["records"]
    assert [i["event_id"] for i in crm["interactions"]] == [after]
    assert before not in text and "Vroeger" not in text and "1234567" not in text
    # what the copy may say of the past: that the person was erased, by which request, and how much went
    first = crm["audit"][0]
    assert (first["action"], first["request_id"]) == ("subject_erased", erasure)
    assert {a["event_id"] for a in crm["audit"]} == {None, after}
    hubspot = sections(document)["hubspot"]["records"]["contacts"]
    assert [c["properties"].get("lastname") for c in hubspot] == ["Nu"]


# ---- rectification, then other rights --------------------------------------------------------------------------


def test_an_objection_after_the_address_was_corrected_by_the_old_and_the_new_address(p: Pipeline) -> None:
    """The address is corrected (the old one forgotten, the default); the person then objects by writing from the
    new address: it reaches them everywhere. An objection naming the old address reaches nobody's data (it is
    nobody's now) and the DPO is told so."""
    old, new = "tom.oldaddr@exmaple.com", "tom.newaddr@example.com"
    first = p.form(old, "Tom", "Adresse", consent=True)
    p.stored(first, old)
    p.dpo("rectify", "--email", old, "--set", f"email={new}")
    by_old = p.api("objection", email=old)
    assert by_old["in_crm"] is False and by_old["subject_key"] != p.crm_show(new)["subject_key"]  # type: ignore[index]
    shown = p.crm_show(new)
    assert shown is not None and not shown["marketing_objected"]
    [hubspot] = [s for s in by_old["sinks"] if s["sink"] == "hubspot"]
    assert hubspot["evidence"]["outcome"] == "not found in HubSpot", hubspot
    assert hub_flag(p, new) == "true" and new not in p.hub.unsubscribed_all  # nobody's: the CRM and HubSpot agree
    p.api("objection", email=new)
    shown = p.crm_show(new)
    assert shown is not None and shown["marketing_objected"] and marketing(shown) == (False, [False])
    assert hub_flag(p, new) == "false" and p.hub.unsubscribed_all.get(new) == "EMAIL"


# ---- 9.8 consent given again -------------------------------------------------------------------------------------


def test_consent_given_again_then_withdrawn_again_and_the_copies_tell_the_truth(p: Pipeline) -> None:
    email = "greta.again@example.se"
    p.stored(p.form(email, "Greta", "Igen", consent=True), email)
    p.dpo("withdraw-consent", "--email", email)
    again = p.form(email, "Greta", "Igen", consent=True)
    p.stored(again, email)
    request_id, _ = p.dpo("export", "--email", email)
    crm = sections(export_of(p, request_id))["crm"]["records"]
    assert [c["granted"] for c in crm["consents"]][-1] is True
    [new] = [i for i in crm["interactions"] if i["event_id"] == again]
    assert "further_contact" in json.dumps(new)
    assert "further_contact" in hub_flag(p, email, "leadpipe_purposes")

    p.dpo("withdraw-consent", "--email", email)
    shown = p.crm_show(email)
    assert shown is not None and shown["consent_state"] == {"further_contact": False}
    stopped = [x for i in shown["interactions_detail"] for x in i["purposes"] if x["purpose"] == "further_contact"]
    assert stopped and all(x["stopped_at"] is not None for x in stopped)
    assert "further_contact" not in hub_flag(p, email, "leadpipe_purposes")
    request_id, _ = p.dpo("export", "--email", email)
    crm = sections(export_of(p, request_id))["crm"]["records"]
    assert [c["granted"] for c in crm["consents"]][-1] is False


# ---- tracking: twice, nobody, by hand -----------------------------------------------------------------------------


def test_a_request_issued_twice_is_replayed_or_tracked_twice(p: Pipeline) -> None:
    email = "ivo.twice@example.hr"
    p.stored(p.form(email, "Ivo", "Dvaput"), email)
    chosen = str(uuid.uuid4())
    body = {"kind": "objection", "email": email, "request_id": chosen}
    first = p.http.post("/v1/dpo/requests", json=body, headers=auth(p))
    again = p.http.post("/v1/dpo/requests", json=body, headers=auth(p))
    assert first.status_code == 202 and again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["request_id"] == chosen
    other = p.http.post("/v1/dpo/requests", json={**body, "kind": "restriction"}, headers=auth(p))
    assert other.status_code == 409 and email not in other.text
    one, _ = p.dpo("object", "--email", email)
    two, _ = p.dpo("object", "--email", email)
    assert len({one, two, chosen}) == 3
    listed = {r["request_id"] for r in p.http.get("/v1/dpo/requests?state=all", headers=auth(p)).json()}
    assert {one, two, chosen} <= listed
    trail = p.http.get(f"/v1/dpo/requests/{chosen}/audit", headers=auth(p)).json()
    assert email not in json.dumps(trail)
    assert sum(1 for r in trail if r["action"] == "rights.request_received") == 1


def test_a_request_for_nobody_says_so_and_keeps_evidence_without_the_address(p: Pipeline) -> None:
    email = "never.seen@example.org"
    view = p.api("access", email=email)
    assert view["in_crm"] is False
    [hubspot] = [s for s in view["sinks"] if s["sink"] == "export"]
    assert hubspot["evidence"]["sources"] == {"crm": "not_found", "hubspot": "not_found"}
    shown = p.leadpipe("dpo", "show", view["request_id"])
    assert email not in shown and email not in json.dumps(view)
    objection = p.api("objection", email=email)
    assert email not in json.dumps(objection)
    [hub] = [s for s in objection["sinks"] if s["sink"] == "hubspot"]
    assert email not in json.dumps(hub["evidence"])
    # the objection was made before the person was ever known: their first form, box ticked, is not marketed to
    first = p.form(email, "Nemo", "Nobody", consent=True)
    p.stored(first, email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (False, [False]) and hub_flag(p, email) == "false"


def test_an_objection_received_before_the_person_is_known_is_on_their_crm_contact(p: Pipeline) -> None:
    """9.6: "stop ... as soon as we receive an objection". Someone who got a cold e-mail writes to the DPO "never
    contact me"; a month later they fill in a form. Marketing stays off (the chain and HubSpot); sales must see
    the objection on the contact, and the database must agree with the suppression state."""
    email = "cold.mail@example.org"
    p.api("objection", email=email)
    p.stored(p.form(email, "Cora", "Cold", consent=True), email)
    shown = p.crm_show(email)
    assert shown is not None and marketing(shown) == (False, [False]) and hub_flag(p, email) == "false"
    code, report = restore_verify(p)  # other scenarios' subjects may have findings of their own (in flight)
    assert code in (0, 1) and shown["subject_key"] not in json.dumps(report["crm_flags"])
    assert shown["marketing_objected"]


def test_access_by_phone_of_a_caller_only_hubspot_holds(p: Pipeline) -> None:
    """A caller a sales rep typed into HubSpot (a number, no address) asks what is held: found by the number."""
    contact_id = p.sales_rep_creates(phone="+4915112345678", firstname="Jonas", lastname="Anrufer")
    view = p.api("portability", phone="0151 12345678", region="DE")
    assert view["in_crm"] is False
    contacts = sections(export_of(p, view["request_id"]))["hubspot"]["records"]["contacts"]
    assert [(c["id"], c["properties"]["lastname"]) for c in contacts] == [(contact_id, "Anrufer")]


def test_a_step_hubspot_refuses_for_good_is_closed_by_hand(p: Pipeline) -> None:
    email = "mila.refused@example.cz"
    p.stored(p.form(email, "Mila", "Odmitnuta"), email)
    p.hub.inject(Fault.server_error(times=10_000, status=403, path_prefix="/crm/v3/objects/contacts/gdpr-delete"))
    try:
        request_id, _ = p.dpo("erase", "--email", email, "--yes", expect=3)
        shown = p.show(request_id)
        assert shown["state"] == "attention"
        assert email not in json.dumps(shown)
        reason = "HubSpot support ticket 48213: contact deleted by their team"
        said = p.leadpipe("dpo", "close-step", request_id, "hubspot", "--as", "done_by_hand", "--reason", reason)
        assert email not in said
    finally:
        p.hub.faults.clear()
    shown = p.show(request_id)
    assert shown["state"] == "completed"
    [step] = [s for s in shown["sinks"] if s["sink"] == "hubspot"]
    assert step["closed"]["closed_as"] == "done_by_hand" and step["closed"]["reason"] == reason
    status = p.leadpipe("dpo", "status")
    assert "hubspot:done_by_hand" in status or request_id not in status
    trail = p.http.get(f"/v1/dpo/requests/{request_id}/audit", headers=auth(p)).json()
    assert "48213" not in json.dumps(trail) and email not in json.dumps(trail)
    # a reason must not carry personal data: the DPO's tools keep it, show it and name who wrote it
    later = p.form("ola.refused@example.cz", "Ola", "Odmitnuta")
    p.stored(later, "ola.refused@example.cz")
    p.hub.inject(Fault.server_error(times=10_000, status=403, path_prefix="/crm/v3/objects/contacts/gdpr-delete"))
    try:
        second, _ = p.dpo("erase", "--email", "ola.refused@example.cz", "--yes", expect=3)
    finally:
        p.hub.faults.clear()
    refused = p.leadpipe(
        "dpo",
        "close-step",
        second,
        "hubspot",
        "--as",
        "done_by_hand",
        "--reason",
        "deleted ola.refused@example.cz by hand in HubSpot",
        expect=2,
    )
    assert "ola.refused@example.cz" not in refused


# ---- restriction ----------------------------------------------------------------------------------------------


def test_a_contested_record_is_restricted_corrected_and_released_with_notice(p: Pipeline) -> None:
    """9.4 (first case): the person contests their data; processing is restricted while it is checked, the data is
    corrected (9.2), the restriction is lifted and the person told (9.5)."""
    email = "erik.contest@example.dk"
    p.stored(p.form(email, "Erik", "Jensn", phone="+4532123456"), email)
    restricted, _ = p.dpo("restrict", "--email", email)
    view = p.api("rectification", email=email, changes={"last_name": "Jensen"})
    assert {s["sink"]: s["status"] for s in view["sinks"]} == {"crm": "done", "hubspot": "done"}
    assert hub_flag(p, email, "lastname") == "Jensen"
    assert hub_flag(p, email, "leadpipe_processing_restricted") == "true"
    shown = p.crm_show(email)
    assert shown is not None and shown["withheld"]  # still restricted: sales see no data
    lifted, _ = p.dpo("unrestrict", "--email", email)
    assert p.show(lifted)["notice_due"] and "NOTICE-DUE" in p.leadpipe("dpo", "status")
    p.leadpipe("dpo", "notice-sent", lifted)
    shown = p.crm_show(email)
    assert shown is not None and shown["last_name"] == "Jensen" and not shown["withheld"]
    assert hub_flag(p, email, "leadpipe_processing_restricted") == "false"
    assert not p.show(restricted)["contacts_while_restricted"]


@pytest.mark.xfail(
    strict=True,
    reason="a restriction of the subject held under the e-mail does not reach a contact keyed by their phone number "
    "(the chain looks up the suppression state of the event's own key only): the message is stored, the DPO not told",
)
def test_a_restricted_person_who_messages_from_their_number_is_not_processed(p: Pipeline) -> None:
    """9.4: the person (held under their e-mail, their number among their identities) is restricted, then writes on
    WhatsApp from that number: the message must not be processed further, and the DPO is told."""
    email, phone = "sara.block@example.it", "+393471234567"
    p.stored(p.form(email, "Sara", "Blocco", phone=phone), email)
    restriction, _ = p.dpo("restrict", "--email", email)
    later = p.form(email, "Sara", "Blocco", phone=phone)  # the same person by the website: dropped, and filed
    chat = whatsapp(p, phone.lstrip("+"), "Sara Blocco", "Any news on my request?")
    auth_ = auth(p)
    url = f"/v1/dpo/requests/{restriction}"
    wait_until(
        lambda: later in [c["event_id"] for c in p.http.get(url, headers=auth_).json()["contacts_while_restricted"]],
        timeout_s=60,
        what="the website contact to be filed under the restriction",
    )
    time.sleep(2)  # the WhatsApp message was sent before the form was filed: it had its chance
    assert not p.crm_holds(chat) and p.crm_show(phone) is None
    filed = [c["event_id"] for c in p.http.get(url, headers=auth_).json()["contacts_while_restricted"]]
    assert chat in filed
