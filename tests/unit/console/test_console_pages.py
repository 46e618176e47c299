"""The console's pages over the real app (``create_api``) with real browser sessions, on SQLite: who sees which
page, the lead inbox and its search, a contact's timeline, and a restricted subject withheld from sales exactly as
``GET /v1/crm/...`` withholds it. The flows that need the broker and a worker run in a real browser
(``tests/integration/console/test_console_browser.py``)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fakes.contacts import BASE_TIME, make_tagged
from fastapi.testclient import TestClient
from ingest_helpers import RecordingPublisher
from metrics_helpers import serving_metrics

from pipeline.agents.metrics import WorkerMetrics
from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.console import metrics as console_metrics
from pipeline.console.app import countdown
from pipeline.crm.views import LeadQuery
from pipeline.db import ensure_schema
from pipeline.http.auth import Public, SignedIn, route_accesses, session_cookie_name
from pipeline.identity.permissions import Permission
from pipeline.models import Channel
from pipeline.models.identity import PrincipalKind, Role, system_principal
from pipeline.models.rights import AuditRecord, RightKind, RightsStatus, SinkStatus
from pipeline.normalize import subject_key
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.commands import build_command, visitor_subject
from pipeline.rights.dpo import DpoTools
from pipeline.rights.effects.crm import CrmRights
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime
from pipeline.sinks.crm.writer import CrmWriter

SSO = {"oidc_issuer": "https://id.example.test", "oidc_client_id": "console", "oidc_audience": "leadpipe-api"}
ROLES = {"sam": Role.SALES, "dee": Role.DPO, "rita": Role.REVIEWER, "adam": Role.ADMIN}


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings(session_cookie_secure=False, api_key_pepper="p", **SSO))
    ensure_schema(built.engine)
    CrmWriter(built.engine).write_events(
        [
            make_tagged("jane.doe@example.com", phone="+4930123456", consent=True, company="Initech"),
            make_tagged(
                "jane.doe@example.com",
                channel=Channel.CHATBOT,
                occurred_at=BASE_TIME + timedelta(hours=1),
                company="Initech",
            ),
            make_tagged(
                "john.smith@example.org",
                first_name="John",
                last_name="Smith",
                company="Globex",
                occurred_at=BASE_TIME + timedelta(days=3),
            ),
        ]
    )
    return built


@pytest.fixture
def app(runtime: Runtime) -> Any:
    made = create_api(runtime, RecordingPublisher())  # type: ignore[arg-type]  # records what it would publish
    store = made.state.authenticator.store
    for name, role in ROLES.items():
        store.add_principal(
            name, display_name=name.title(), kind=PrincipalKind.PERSON, roles=[role], by=system_principal("t")
        )
    return made


def browser(app: Any, name: str | None) -> TestClient:
    """A client carrying ``name``'s session cookie (None: not signed in), not following redirects."""
    client = TestClient(app, base_url="http://console.test", follow_redirects=False, headers={"Accept": "text/html"})
    if name is not None:
        principal = app.state.authenticator.store.get(name).principal("oidc")
        issued = app.state.authenticator.sessions.create(principal, frozenset())
        client.cookies.set(session_cookie_name(app.state.runtime.settings), issued.cookie)
        client.csrf_token = issued.csrf_token  # type: ignore[attr-defined]
    return client


def test_every_console_page_declares_a_session_permission(app: Any) -> None:
    pages = {
        (r.path, m): r.declared
        for r in route_accesses(app)
        for m in r.methods
        if not r.path.startswith(("/v1", "/openapi", "/docs", "/redoc", "/healthz", "/metrics", "/login", "/logout"))
        and r.path != "/auth/callback"
    }
    assert pages[("/leads", "GET")] == (Permission.CRM_READ,)
    assert pages[("/review/decide", "POST")] == (Permission.REVIEW_DECIDE,)
    assert pages[("/dpo/new", "POST")] == (Permission.RIGHTS_ISSUE,)
    assert pages[("/", "GET")] == (SignedIn(session_only=True),)
    static = [r for r in route_accesses(app) if r.path == "/static"]
    assert static and isinstance(static[0].declared[0], Public)
    assert all(declared for declared in pages.values()), pages


def test_no_session_goes_to_sign_in_and_comes_back(app: Any) -> None:
    answer = browser(app, None).get("/leads", params={"q": "jane"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fleads%3Fq%3Djane"


def test_an_api_key_opens_no_page(app: Any) -> None:
    store = app.state.authenticator.store
    key = store.create_key("sam", by=system_principal("t")).secret
    answer = browser(app, None).get("/leads", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?")


@pytest.mark.parametrize(
    ("name", "page", "status"),
    [
        ("sam", "/leads", 200),
        ("sam", "/review", 403),
        ("sam", "/dpo", 403),
        ("sam", "/dpo/new", 403),
        ("rita", "/leads", 403),
        ("rita", "/dpo", 403),
        ("dee", "/leads", 200),
        ("dee", "/dpo/new", 200),
        ("dee", "/review", 403),
        ("adam", "/leads", 403),
        ("adam", "/dpo", 403),
    ],
)
def test_each_role_sees_its_pages_and_is_refused_the_others(app: Any, name: str, page: str, status: int) -> None:
    answer = browser(app, name).get(page)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    if status == 403:
        assert "Your role may not see this page" in answer.text and "this needs" in answer.text


def test_home_opens_the_first_page_of_the_role(app: Any) -> None:
    assert browser(app, "sam").get("/").headers["location"] == "/leads"
    assert browser(app, "rita").get("/").headers["location"] == "/review"
    assert browser(app, "adam").get("/").headers["location"] == "/charts"  # sink health (dlq:read)
    store = app.state.authenticator.store
    store.add_principal("nora", display_name="Nora", kind=PrincipalKind.PERSON, roles=[], by=system_principal("t"))
    nobody = browser(app, "nora").get("/")
    assert nobody.status_code == 200 and "open no page" in nobody.text


def test_the_inbox_lists_newest_first_and_searches(app: Any) -> None:
    sam = browser(app, "sam")
    page = sam.get("/leads").text
    assert page.index("John Smith") < page.index("Jane") and page.count("<tr>") >= 4
    assert "Globex" in page and "further_contact (consent)" in page
    found = sam.get("/leads", params={"company": "initech", "channel": "chatbot"}).text
    assert "Initech" in found and "Globex" not in found and found.count("/contacts/") == 1
    assert "Jane" in sam.get("/leads", params={"email": "JANE.DOE@example.com"}).text
    assert "Jane" in sam.get("/leads", params={"phone": "+49 30 123456"}).text
    assert "No leads match" in sam.get("/leads", params={"email": "not an address"}).text
    day = (BASE_TIME + timedelta(days=3)).date().isoformat()
    dated = sam.get("/leads", params={"from": day, "to": day}).text
    assert "Globex" in dated and "Initech" not in dated
    partial = sam.get("/leads", params={"q": "smith"}, headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith("<tr>") and "<html" not in partial.text and "Smith" in partial.text


def test_the_contact_page_has_the_timeline_consents_and_status(app: Any, runtime: Runtime) -> None:
    key = CrmRights(runtime.engine).read.subject_key_for(email="jane.doe@example.com")
    page = browser(app, "sam").get(f"/contacts/{key}").text
    assert page.index("chatbot") < page.index("web_form")  # newest first
    assert "jane.doe@example.com" in page and "active" in page and "Consents" in page
    assert browser(app, "sam").get("/contacts/sk_nobody").status_code == 404


RESTRICTED = ("john.smith", "Smith", "Globex")


def test_a_restricted_subject_is_withheld_from_sales_and_shown_to_the_dpo(app: Any, runtime: Runtime) -> None:
    crm = CrmRights(runtime.engine)
    key = crm.read.subject_key_for(email="john.smith@example.org")
    assert key is not None and crm.set_restriction(key, uuid.uuid4(), restricted=True).changed
    sam = browser(app, "sam")
    inbox, contact = sam.get("/leads").text, sam.get(f"/contacts/{key}").text
    for text in RESTRICTED:
        assert text not in inbox and text not in contact
    assert "withheld (restricted)" in inbox and "restricted" in contact and "kept but not" in contact
    for search in ({"q": "smith"}, {"company": "glob"}):  # a search by withheld data finds nothing, not a row
        assert "withheld" not in sam.get("/leads", params=search).text
    assert "withheld (restricted)" in sam.get("/leads", params={"email": "john.smith@example.org"}).text
    dee = browser(app, "dee")
    assert "John Smith" in dee.get("/leads").text and "john.smith@example.org" in dee.get(f"/contacts/{key}").text


def test_a_form_without_the_csrf_token_is_refused(app: Any) -> None:
    answer = browser(app, "dee").post("/dpo/new", data={"kind": "erasure", "email": "jane.doe@example.com"})
    assert answer.status_code == 403 and "csrf" in answer.text.lower()


def test_the_read_model_filters_leads_like_search(runtime: Runtime) -> None:
    read = CrmRights(runtime.engine).read
    assert [r.company for r in read.leads(LeadQuery(name="smi"))] == ["Globex"]
    assert read.leads(LeadQuery(phone="not a phone")) == []
    assert len(read.leads(LeadQuery(limit=2))) == 2


def test_countdown_says_due_or_overdue() -> None:
    assert countdown(BASE_TIME + timedelta(days=12, hours=1), BASE_TIME) == "due in 12 days"
    assert countdown(BASE_TIME - timedelta(hours=5), BASE_TIME) == "overdue by 5 h"


def test_the_csv_holds_whom_marketing_may_contact_now(app: Any, runtime: Runtime) -> None:
    crm = CrmRights(runtime.engine)
    john = crm.read.subject_key_for(email="john.smith@example.org")
    assert john is not None and crm.set_restriction(john, uuid.uuid4(), restricted=True).changed
    answer = browser(app, "sam").get("/export/leads.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    lines = answer.text.splitlines()
    assert lines[0].startswith("first_name,last_name,email,phone")
    assert len(lines) == 2 and "jane.doe@example.com" in lines[1]  # one line per person; the restricted one left out
    assert ",'+4930123456," in lines[1]  # a leading + is no formula in a spreadsheet
    assert "Smith" not in answer.text
    # The audit topic says who exported whose data: one record of the export, one under each exported person's key.
    audits = [r for r in app.state.publisher.records if r.topic == "audit"]
    assert [a.value.action for a in audits] == ["crm.leads_exported", "crm.lead_exported"]
    jane = crm.read.subject_key_for(email="jane.doe@example.com")
    assert [a.key for a in audits] == [None, jane] and audits[1].value.subject_key == jane
    sam = app.state.authenticator.store.get("sam").principal("oidc")
    assert all(a.value.principal == sam and a.value.actor == sam.actor for a in audits)
    summary = audits[0].value.detail
    assert summary["people"] == 1 and summary["file"] in answer.headers["content-disposition"]
    assert len({a.value.detail["export_id"] for a in audits}) == 1
    assert "jane" not in str([a.value.model_dump() for a in audits]).lower()  # keys and counts only, no address
    assert browser(app, "rita").get("/export/leads.csv").status_code == 403
    assert browser(app, "dee").get("/export/leads.csv").status_code == 403  # the DPO reads the CRM but exports no leads
    assert [r.value.action for r in app.state.publisher.records if r.topic == "audit"][
        2:
    ] == []  # refusals export nothing


def test_no_csv_leaves_unless_its_audit_is_confirmed(app: Any) -> None:
    app.state.publisher.fail = True  # the broker does not confirm
    answer = browser(app, "sam").get("/export/leads.csv")
    assert answer.status_code == 503 and "could not be audited" in answer.text
    assert "jane.doe@example.com" not in answer.text
    assert "attachment" not in answer.headers.get("content-disposition", "")


def test_the_csv_leaves_out_objections_and_expired_leads(runtime: Runtime) -> None:
    from datetime import UTC, datetime

    from pipeline.console.app import leads_csv

    crm = CrmRights(runtime.engine)
    jane = crm.read.subject_key_for(email="jane.doe@example.com")
    assert jane is not None
    now = datetime.now(UTC)
    assert {r.email for r in crm.read.leads(LeadQuery(marketing_at=now))} == {
        "jane.doe@example.com",
        "john.smith@example.org",
    }
    assert crm.read.leads(LeadQuery(marketing_at=now + timedelta(days=365 * 30))) == []  # every lead expired by then
    assert crm.set_marketing_objection(jane, uuid.uuid4()).changed
    assert {r.email for r in crm.read.leads(LeadQuery(marketing_at=now))} == {"john.smith@example.org"}
    hostile = leads_csv([r.model_copy(update={"company": "=cmd()"}) for r in crm.read.leads(LeadQuery())])
    assert ",'=cmd()," in hostile and ",=cmd()," not in hostile


def test_the_dpo_issues_an_erasure_after_confirming_it(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    form = {"kind": "erasure", "email": "jane.doe@example.com", "csrf_token": dee.csrf_token}  # type: ignore[attr-defined]
    asked = dee.post("/dpo/new", data=form)
    assert asked.status_code == 200 and "Erasure cannot be undone. Erase this person everywhere?" in asked.text
    tracker = RequestTracker(runtime.engine)
    assert tracker.requests() == []  # nothing issued before the confirmation
    assert dee.post("/dpo/new", data={**form, "email": "", "confirmed": "yes"}).status_code == 422
    done = dee.post("/dpo/new", data={**form, "confirmed": "yes"})
    assert done.status_code == 303 and done.headers["location"].startswith("/dpo/requests/")
    [view] = tracker.requests()
    assert view.kind.value == "erasure" and view.issuer is not None and view.issuer.display_name == "Dee"
    assert "rights.commands" in app.state.publisher.topics()
    page = dee.get(done.headers["location"]).text
    assert "Issued by</dt><dd>Dee</dd>" in page and re.search(r"due in (28|29|30|31) days", page)


def test_access_shows_its_password_once_and_the_list_puts_overdue_first(app: Any, runtime: Runtime) -> None:
    from datetime import UTC, datetime

    dee = browser(app, "dee")
    token = dee.csrf_token  # type: ignore[attr-defined]
    shown = dee.post("/dpo/new", data={"kind": "access", "email": "john.smith@example.org", "csrf_token": token})
    assert shown.status_code == 200 and 'id="pdf-password"' in shown.text
    tools = DpoTools(runtime, app.state.publisher, migrate=False)
    old = tools.request(
        RightKind.OBJECTION,
        by=system_principal("t"),
        email="jane.doe@example.com",
        now=datetime.now(UTC) - timedelta(days=40),
    )
    listing = dee.get("/dpo").text
    assert "overdue by" in listing and listing.index("objection") < listing.index(">access")
    assert 'id="pdf-password"' not in dee.get(f"/dpo/requests/{old.command.request_id}").text


def test_the_dpo_extends_a_deadline_with_a_reason(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    token = dee.csrf_token  # type: ignore[attr-defined]
    tools = DpoTools(runtime, app.state.publisher, migrate=False)
    request_id = tools.request(
        RightKind.RESTRICTION, by=system_principal("t"), email="jane.doe@example.com"
    ).command.request_id
    short = dee.post(f"/dpo/requests/{request_id}/extend", data={"months": "1", "reason": "busy", "csrf_token": token})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    reason = "The person sent three related requests at once."
    done = dee.post(f"/dpo/requests/{request_id}/extend", data={"months": "2", "reason": reason, "csrf_token": token})
    assert done.status_code == 303
    view = tools.get(request_id)
    assert view is not None and view.extension_reason == reason and view.extended_by is not None
    assert view.extended_by.display_name == "Dee" and reason in dee.get(f"/dpo/requests/{request_id}").text
    assert (
        browser(app, "sam")
        .post(f"/dpo/requests/{request_id}/extend", data={"months": "1", "reason": reason})
        .status_code
        == 403
    )


def test_a_client_that_is_no_browser_gets_the_api_s_refusals(app: Any) -> None:
    client = TestClient(app, base_url="http://console.test", follow_redirects=False)
    answer = client.get("/leads")
    assert answer.status_code == 401 and answer.json()["detail"]["reason"] == "missing_credentials"
    sam = browser(app, "sam")
    refused = sam.get("/dpo", headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.json()["detail"]["reason"] == "forbidden"


def test_the_dpo_previews_the_retention_sweep_and_reads_a_subject_s_audit_trail(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    today = dee.get("/dpo/retention")
    assert today.status_code == 200 and "Nothing would expire by then" in today.text
    later = dee.get("/dpo/retention", params={"at": "2040-01-01"}).text
    assert "would delete <strong>3</strong> interaction(s) of 2 person(s)" in later
    assert "the person is erased entirely" in later
    assert browser(app, "sam").get("/dpo/retention").status_code == 403
    key = CrmRights(runtime.engine).read.subject_key_for(email="jane.doe@example.com")
    assert "Audit trail" not in dee.get(f"/contacts/{key}").text  # nothing audited about her yet
    token = dee.csrf_token  # type: ignore[attr-defined]
    form = {"kind": "objection", "email": "jane.doe@example.com", "csrf_token": token}
    assert dee.post("/dpo/new", data=form).status_code == 303
    page = dee.get(f"/contacts/{key}").text
    assert "Audit trail" in page and "rights.request_received" in page and "<td>Dee</td>" in page
    assert "Audit trail" not in browser(app, "sam").get(f"/contacts/{key}").text  # sales hold no audit:read


def test_charts_draw_leads_per_channel_per_day_and_rights_on_time(app: Any, runtime: Runtime) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    # all three today, also in a run's first minutes after midnight (UTC), when minutes ago were yesterday
    first = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=0, microsecond=0))
    CrmWriter(runtime.engine).write_events(
        [
            make_tagged("fresh@example.com", channel=Channel.CHATBOT, occurred_at=first),
            make_tagged("fresh2@example.com", channel=Channel.CHATBOT, occurred_at=first + timedelta(microseconds=1)),
            make_tagged("fresh3@example.com", occurred_at=first + timedelta(microseconds=2)),
        ]
    )
    page = browser(app, "sam").get("/charts").text
    assert "Leads per channel per day" in page and "Rights requests" not in page
    today = first.date().isoformat()
    assert f"<title>{today} chatbot: 2</title>" in page and f"<title>{today} web_form: 1</title>" in page
    assert f'<th scope="row">{today}</th><td>2</td><td>1</td>' in page  # chatbot, web_form
    tools = DpoTools(runtime, app.state.publisher, migrate=False)
    tools.request(RightKind.ERASURE, by=system_principal("t"), email="fresh@example.com", now=now - timedelta(days=40))
    rights_page = browser(app, "dee").get("/charts").text
    assert "Rights requests answered on time or late" in rights_page and "erasure open, overdue: 1" in rights_page
    reviewer_page = browser(app, "rita").get("/charts").text
    assert "Spam share per channel" in reviewer_page and "Leads per channel per day" not in reviewer_page
    assert 'id="metrics-note"' in reviewer_page  # no worker address configured: said so, not left blank


@pytest.fixture
def worker_metrics_url() -> Iterator[str]:
    """A worker's ``/metrics`` as the worker renders it (``WorkerMetrics``), served over HTTP."""
    metrics = WorkerMetrics()
    by_channel = {("web_form", "accepted"): 2, ("web_form", "quarantined"): 1, ("chatbot", "accepted"): 4}
    metrics.observe_batch("processing", {"accepted": 6, "quarantined": 1}, [], 0.01, by_channel)
    metrics.observe_sink("hubspot", ["failed"], ["hubspot_rejected"])
    metrics.sink_pauses.labels("hubspot").inc(2)
    metrics.observe_sink("crm", ["done"], [])
    with serving_metrics(metrics.render) as url:
        yield url


def test_charts_of_spam_share_and_sink_health_come_from_the_served_metrics(
    make_settings: Callable[..., Settings], worker_metrics_url: str
) -> None:
    silent = "http://127.0.0.1:9/metrics"  # a replica that does not answer: named, the others still drawn
    settings = make_settings(session_cookie_secure=False, console_metrics_urls=[worker_metrics_url, silent], **SSO)
    runtime = Runtime(settings)
    ensure_schema(runtime.engine)
    made = create_api(runtime, RecordingPublisher())  # type: ignore[arg-type]
    for name, role in ROLES.items():
        made.state.authenticator.store.add_principal(
            name, display_name=name.title(), kind=PrincipalKind.PERSON, roles=[role], by=system_principal("t")
        )
    made.state.metrics.refusals.labels("bad_token").inc()  # the API's own counters are read too
    made.state.ingest.metrics.dead_letters.labels("web_form", "invalid_payload").inc(3)
    reviewer = browser(made, "rita").get("/charts").text
    assert "Spam share per channel" in reviewer and "Sink health" not in reviewer
    assert "<li>web_form: 33% held as spam</li>" in reviewer and "<li>chatbot: 0% held as spam</li>" in reviewer
    assert '<th scope="row">web_form</th><td>2</td><td>1</td><td>0</td>' in reviewer  # accepted, quarantined, dropped
    assert silent in reviewer and 'id="metrics-note"' not in reviewer
    dpo = browser(made, "dee").get("/charts").text
    assert "Sink health" in dpo and "Spam share per channel" in dpo  # the DPO reads the CRM too
    assert '<th scope="row">hubspot</th><td>1</td><td>2</td>' in dpo  # dead letters, pauses
    assert '<th scope="row">ingest</th><td>3</td><td>0</td>' in dpo
    assert '<th scope="row">crm</th><td>0</td><td>0</td>' in dpo  # a sink that wrote, with neither
    assert "Sink health" in browser(made, "adam").get("/charts").text  # admins (dlq:read) too


def test_a_dns_address_is_every_replica_it_resolves_to() -> None:
    """``dns+http://name:port/metrics`` (the chart's headless Services) scrapes each address the name resolves to and
    adds them up; a name that resolves to nothing is named unreachable."""
    metrics = WorkerMetrics()
    metrics.observe_batch("processing", {"accepted": 2}, [], 0.01, {("web_form", "accepted"): 2})
    with serving_metrics(metrics.render) as first:
        port = httpx.URL(first).port
        assert port is not None
        with serving_metrics(metrics.render, host="127.0.0.2", port=port):  # a second pod, same port

            async def resolve(host: str, _port: int) -> list[str]:
                return {"workers.test": ["127.0.0.1", "127.0.0.2"], "gone.test": []}[host]

            urls = [f"dns+http://workers.test:{port}/metrics", "dns+http://gone.test:6066/metrics"]
            found = asyncio.run(console_metrics.scrape(urls, b"", resolve=resolve))
            assert console_metrics.spam_share(found) == {("web_form", "accepted"): 4}  # both pods
            assert found.unreachable == ["dns+http://gone.test:6066/metrics"]
            plain = asyncio.run(console_metrics.scrape([first], b"", resolve=resolve))
            assert console_metrics.spam_share(plain) == {("web_form", "accepted"): 2}  # not resolved: one address
    assert "http://127.0.0.1:6066/metrics" in asyncio.run(console_metrics.expand("dns+http://localhost:6066/metrics"))


def test_the_dpo_corrects_a_person_s_data_from_the_form(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    token = dee.csrf_token  # type: ignore[attr-defined]
    assert "Correct a person" in dee.get("/dpo").text and dee.get("/dpo/rectify").status_code == 200
    assert browser(app, "sam").get("/dpo/rectify").status_code == 403
    form = {"csrf_token": token, "who_email": "jane.doe@example.com", "set_last_name": "Kowalska"}
    tracker = RequestTracker(runtime.engine)
    for wrong, says in (
        ({**form, "who_phone": "+4930123456"}, "exactly one of e-mail or phone"),
        ({**form, "set_last_name": ""}, "at least one field"),
        ({**form, "clear_last_name": "yes"}, "not both"),
        ({**form, "set_company": "x" * 501}, "at most 500"),
        ({**form, "set_nickname": "Jay", "set_last_name": ""}, "at least one field"),  # no such field: not read
    ):
        refused = dee.post("/dpo/rectify", data=wrong)
        assert refused.status_code == 422 and says in refused.text, (wrong, refused.text[-600:])
        assert 'value="jane.doe@example.com"' in refused.text  # what was typed is kept
    assert tracker.requests() == []
    done = dee.post("/dpo/rectify", data={**form, "clear_position": "yes", "old_address": "alias"})
    assert done.status_code == 303 and done.headers["location"].startswith("/dpo/requests/")
    [view] = tracker.requests()
    assert view.kind is RightKind.RECTIFICATION and view.issuer is not None and view.issuer.display_name == "Dee"
    [command] = [r.value for r in app.state.publisher.records if r.topic == "rights.commands"]
    assert command.sealed is not None
    body = runtime.codec.sealer.open_model(command.sealed, RectificationBody)
    assert body.changes == {"last_name": "Kowalska", "position": None}
    assert body.old_address is None  # the old-address choice applies to a corrected e-mail only


def test_the_dpo_withdraws_consent_for_chosen_purposes_and_lifts_an_objection(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    page = dee.get("/dpo/new").text
    assert 'value="objection_lifted"' in page and 'name="purpose" value="further_contact"' in page
    assert 'name="purpose" value="contract_request"' not in page  # rests on a contract: no consent to withdraw
    form = {"csrf_token": dee.csrf_token, "email": "jane.doe@example.com"}  # type: ignore[attr-defined]
    for wrong, says in (
        ({**form, "kind": "erasure", "purpose": "further_contact"}, "withdrawal of consent only"),
        ({**form, "kind": "consent_withdrawal", "purpose": "contract_request"}, "does not rest on consent"),
    ):
        refused = dee.post("/dpo/new", data=wrong)
        assert refused.status_code == 422 and says in refused.text, refused.text[-800:]
    tracker = RequestTracker(runtime.engine)
    assert tracker.requests() == []
    done = dee.post("/dpo/new", data={**form, "kind": "consent_withdrawal", "purpose": "further_contact"})
    assert done.status_code == 303, done.text[-800:]
    lifted = dee.post("/dpo/new", data={**form, "kind": "objection_lifted"})
    assert lifted.status_code == 303, lifted.text[-800:]
    assert sorted(v.kind.value for v in tracker.requests()) == ["consent_withdrawal", "objection_lifted"]
    [withdrawal] = [
        r.value
        for r in app.state.publisher.records
        if r.topic == "rights.commands" and r.value.kind.value == "consent_withdrawal"
    ]
    assert [p.value for p in withdrawal.purposes] == ["further_contact"]


def test_the_dpo_erases_a_website_visitor_by_its_cookie_id(app: Any, runtime: Runtime) -> None:
    dee = browser(app, "dee")
    form = {"csrf_token": dee.csrf_token, "visitor_id": "anon-4711"}  # type: ignore[attr-defined]
    refused = dee.post("/dpo/new", data={**form, "kind": "objection"})
    assert refused.status_code == 422 and "names whom to erase" in refused.text
    both = dee.post("/dpo/new", data={**form, "kind": "erasure", "email": "jane.doe@example.com"})
    assert both.status_code == 422 and "exactly one of" in both.text
    asked = dee.post("/dpo/new", data={**form, "kind": "erasure"})
    assert asked.status_code == 200 and "the website visitor anon-4711" in asked.text
    assert 'name="visitor_id" value="anon-4711"' in asked.text  # carried through the confirmation
    done = dee.post("/dpo/new", data={**form, "kind": "erasure", "confirmed": "yes"})
    assert done.status_code == 303, done.text[-800:]
    [view] = RequestTracker(runtime.engine).requests()
    assert view.kind is RightKind.ERASURE and view.subject_key == visitor_subject(runtime.pepper, "anon-4711")


def test_the_other_subjects_with_the_person_s_phone_are_shown_after_issuing(app: Any, runtime: Runtime) -> None:
    """One who wrote with an address and messaged from their number alone is two subjects: the page the request
    leads to names the other (its key, linked to its contact page), which the request does not reach."""
    pepper = runtime.pepper
    wrote = make_tagged("ana@example.com", phone="+4930999888", pepper=pepper)
    messaged = make_tagged(None, phone="+4930999888", pepper=pepper, channel=Channel.MESSENGER)
    CrmWriter(runtime.engine).write_events([wrote, messaged])
    dee = browser(app, "dee")
    form = {"kind": "objection", "email": "ana@example.com", "csrf_token": dee.csrf_token}  # type: ignore[attr-defined]
    shown = dee.post("/dpo/new", data=form)
    assert shown.status_code == 200 and 'id="related-subjects"' in shown.text
    assert f'href="/contacts/{messaged.event.subject_key}"' in shown.text and "ana@example.com" not in shown.text
    alone = dee.post("/dpo/new", data={**form, "email": "john.smith@example.org"})
    assert alone.status_code == 303  # no one else holds his number: straight to the request


def test_the_dpo_names_a_person_by_a_national_number_and_a_country_s_name_and_picks_among_holders(
    app: Any, runtime: Runtime
) -> None:
    """The form took a two-letter code only and had no way to choose among several people holding one number."""
    dee = browser(app, "dee")
    token = dee.csrf_token  # type: ignore[attr-defined]
    form = {"kind": "objection", "phone": "030 123456", "region": "Germany", "csrf_token": token}
    done = dee.post("/dpo/new", data=form)
    assert done.status_code in (200, 303), done.text
    jane = subject_key(runtime.pepper, email="jane.doe@example.com")
    [view] = RequestTracker(runtime.engine).requests()
    assert view.subject_key == jane  # held under her address: the request is hers
    CrmWriter(runtime.engine).write_events([make_tagged("bo@example.com", phone="+4930123456")])
    refused = dee.post("/dpo/new", data=form)
    assert refused.status_code == 422 and jane in refused.text  # two hold it now: the candidates are named
    bo = subject_key(runtime.pepper, email="bo@example.com")
    chosen = dee.post("/dpo/new", data={**form, "subject_key": bo})
    assert chosen.status_code in (200, 303), chosen.text
    assert {v.subject_key for v in RequestTracker(runtime.engine).requests()} == {jane, bo}


def _restriction_with_a_contact(runtime: Runtime) -> tuple[str, AuditRecord]:
    """A completed restriction under which the person wrote again (the chain set the contact aside, 9.4)."""
    from datetime import UTC, datetime

    tracker = RequestTracker(runtime.engine)
    now = datetime.now(UTC)
    command = build_command(RightKind.RESTRICTION, "sk_" + "9" * 40, issued_by=system_principal("t"), now=now)
    tracker.record(command, ["suppression"])
    tracker.set_sink(
        RightsStatus(
            request_id=command.request_id,
            subject_key=command.subject_key,
            sink="suppression",
            status=SinkStatus.DONE,
            at=now,
            evidence={},
        )
    )
    dropped = AuditRecord.new(
        "processing",
        "dropped",
        at=now + timedelta(minutes=5),
        principal=system_principal("processing"),
        subject_key=command.subject_key,
        event_id=uuid.uuid4(),
        detail={"reason": "subject_restricted", "channel": "web_form", "received_at": now.isoformat()},
    )
    assert tracker.file_contact_while_restricted(dropped) is not None
    return str(command.request_id), dropped


def test_the_dpo_sees_contacts_while_restricted_and_marks_them_reviewed(app: Any, runtime: Runtime) -> None:
    """The console listed such a restriction (it is back among the open requests) with nothing saying why."""
    request_id, dropped = _restriction_with_a_contact(runtime)
    dee = browser(app, "dee")
    listing = dee.get("/dpo").text
    assert 'data-flag="contact-while-restricted"' in listing and "contact while restricted \u00d71" in listing
    page = dee.get(f"/dpo/requests/{request_id}").text
    assert "Contacts while restricted" in page and str(dropped.event_id) in page and "web_form" in page
    assert f'action="/dpo/requests/{request_id}/contacts-reviewed"' in page
    action = f"/dpo/requests/{request_id}/contacts-reviewed"
    assert dee.post(action).status_code == 403  # no CSRF token
    assert browser(app, "sam").post(action, data={"csrf_token": "x"}).status_code == 403
    done = dee.post(action, data={"csrf_token": dee.csrf_token})  # type: ignore[attr-defined]
    assert done.status_code == 303 and done.headers["location"] == f"/dpo/requests/{request_id}"
    view = RequestTracker(runtime.engine).get(request_id)
    assert view is not None and view.contacts_unreviewed == 0
    assert 'data-flag="contact-while-restricted"' not in dee.get("/dpo").text
    reviewed = dee.get(f"/dpo/requests/{request_id}").text
    assert str(dropped.event_id) in reviewed and "contacts-reviewed" not in reviewed  # listed, nothing left to mark
    trail = RequestTracker(runtime.engine).audit_trail(request_id=request_id)
    assert [a.principal.display_name for a in trail if a.action == "rights.contacts_reviewed"] == ["Dee"]  # type: ignore[union-attr]
    again = dee.post(action, data={"csrf_token": dee.csrf_token})  # type: ignore[attr-defined]
    assert again.status_code == 303  # a second look is recorded too (the same service call as the API's)


def test_the_dpo_closes_a_failed_step_by_hand_from_the_request_page(app: Any, runtime: Runtime) -> None:
    from datetime import UTC, datetime

    tracker = RequestTracker(runtime.engine)
    now = datetime.now(UTC)
    command = build_command(RightKind.OBJECTION, "sk_" + "8" * 40, issued_by=system_principal("t"), now=now)
    tracker.record(command, ["suppression", "hubspot"])
    for sink, status in (("suppression", SinkStatus.DONE), ("hubspot", SinkStatus.FAILED)):
        tracker.set_sink(
            RightsStatus(
                request_id=command.request_id,
                subject_key=command.subject_key,
                sink=sink,
                status=status,
                at=now,
                evidence={"reason": "hubspot_404"} if status is SinkStatus.FAILED else {},
            ),
            error="hubspot_404: gone" if status is SinkStatus.FAILED else None,
        )
    request_id = str(command.request_id)
    dee = browser(app, "dee")
    token = dee.csrf_token  # type: ignore[attr-defined]
    page = dee.get(f"/dpo/requests/{request_id}").text
    assert "Close a step by hand" in page and '<option value="hubspot">' in page
    assert '<option value="suppression">' not in page and "No personal data is needed" in page
    action = f"/dpo/requests/{request_id}/close-step"
    form = {"sink": "hubspot", "closed_as": "done_by_hand", "reason": "short", "csrf_token": token}
    short = dee.post(action, data=form)
    assert short.status_code == 422 and "needs a reason" in short.text
    unknown = dee.post(action, data={**form, "sink": "crm", "reason": "Deleted in HubSpot by hand, DPO-7"})
    assert unknown.status_code == 422 and "no &#39;crm&#39; step" in unknown.text
    assert dee.post(action, data={**form, "csrf_token": ""}).status_code == 403
    assert browser(app, "sam").post(action, data=form).status_code == 403
    reason = "Deleted in HubSpot by hand, ticket DPO-7"
    done = dee.post(action, data={**form, "reason": reason})
    assert done.status_code == 303
    view = tracker.get(request_id)
    assert view is not None and view.state.value == "completed"
    step = next(s for s in view.sinks if s.sink == "hubspot")
    assert step.closed is not None and step.closed.closed_by is not None and step.closed.closed_by.display_name == "Dee"
    shown = dee.get(f"/dpo/requests/{request_id}").text
    assert "closed by hand: done by hand" in shown and reason in shown and "Close a step by hand" not in shown
    assert "hubspot: done_by_hand (by hand)" in dee.get("/dpo?state=all").text
