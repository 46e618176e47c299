"""The console as people use it, in a real headless Chromium (Debian's, driven by Playwright for Python).

Everything is real: the broker, the faust worker (processing chain, sinks, rights agent), the fake HubSpot over HTTP,
the OpenID Connect provider (Ory Hydra) with its login form, and ``leadpipe serve``'s app under uvicorn. Sales sign
in and find a lead that was just sent to the ingest API; a reviewer confirms a spam item with the keyboard and the
decision carries her name; the DPO erases a person from the form, confirms, and watches every sink's evidence
arrive; a salesperson asking for the DPO's page is refused. Every page of ours passes axe-core with no serious or
critical violation, and is screenshotted into ``LEADPIPE_CONSOLE_SCREENSHOTS`` (``.ci/run`` prints where).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx
import pytest
import uvicorn
from fakes.hubspot import FakeHubSpot, running_fake
from identity_helpers import person as person_named
from metrics_helpers import serving_metrics
from oidc_provider import API_AUDIENCE, CONSOLE_CLIENT, CONSOLE_SECRET, GROUP_ROLES, USERS, Hydra
from playwright.sync_api import expect
from worker_thread import WorkerThread

from pipeline.agents import processing, rights, sinks
from pipeline.agents.metrics import WorkerMetrics, worker_metrics
from pipeline.agents.worker import create_app as create_worker
from pipeline.api.app import create_api
from pipeline.config import Settings
from pipeline.crm.read import CrmReadModel
from pipeline.db import ensure_schema
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher
from pipeline.models.identity import Role
from pipeline.models.review import ReviewDecision
from pipeline.review.service import ReviewService
from pipeline.rights.tracker import RequestTracker
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[3]
SOURCE_TOKEN = "console-test-source-token"
#: The flags this machine's Chromium needs: no sandbox as root, no GPU, and no calls home (the network is closed).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_until(check: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    """``check()``'s first truthy answer, polled until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _script(name: str) -> str:
    done = subprocess.run([str(REPO / "scripts" / name)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def chromium() -> str:
    return _script("ensure-chromium.sh")


@pytest.fixture(scope="module")
def axe_source() -> str:
    return Path(_script("vendor-console-assets.sh")).read_text()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    folder = Path(os.environ.get("LEADPIPE_CONSOLE_SCREENSHOTS", REPO / "build" / "console-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Server:
    """The API app under uvicorn on a thread, at the address the provider sends the browser back to."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="console-server")

    def __enter__(self) -> Server:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout_s=30, what="uvicorn to start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@dataclass
class World:
    settings: Settings
    runtime: Runtime
    hub: FakeHubSpot
    base: str
    crm: CrmReadModel

    publisher: ConfirmingPublisher

    def ingest(self, body: str) -> str:
        """A web-form submission through the ingest API, as a WordPress form sends it; the event id."""
        answer = httpx.post(
            f"{self.base}/v1/sources/site-form",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {SOURCE_TOKEN}"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["event_ids"][0])


@pytest.fixture
def world(kafka_settings: Settings, make_settings: Callable[..., Settings], oidc_provider: Hydra) -> Iterator[World]:
    # Hydra makes its signing keys on first use, and on a busy 2-core machine that outlasts its own 15 s write
    # timeout (it hangs up, then serves them once made): made here, not during a sign-in
    def provider_ready() -> bool:
        try:
            for document in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
                httpx.get(oidc_provider.issuer + document, timeout=60).raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    wait_until(provider_ready, timeout_s=240, what="the provider's signing keys")
    port = urlparse(oidc_provider.redirect_uri).port
    assert port is not None
    base = f"http://127.0.0.1:{port}"
    served: list[WorkerMetrics] = []  # the in-thread worker's metrics: the thread runs no faust web server
    with (
        serving_metrics(lambda: served[0].render() if served else b"") as metrics_url,
        running_fake(rate_limit=None, search_rate_limit=None) as hub,
    ):
        settings = make_settings(
            console_metrics_urls=[metrics_url],
            kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
            topic_prefix=kafka_settings.topic_prefix,
            hubspot_access_token=hub.token,
            hubspot_base_url=hub.url,
            hubspot_backoff_base_s=0.05,
            rights_retry_base_s=0.05,
            batch_timeout_s=0.05,
            api_key_pepper="console-pepper",
            sources={"site-form": {"channel": "web_form", "bearer_token": SOURCE_TOKEN}},
            oidc_issuer=oidc_provider.issuer,
            oidc_client_id=CONSOLE_CLIENT,
            oidc_client_secret=CONSOLE_SECRET,
            oidc_audience=API_AUDIENCE,
            oidc_group_roles=GROUP_ROLES,
            session_cookie_secure=False,
            public_url=base,
            oidc_http_timeout_s=30,
        )
        runtime = Runtime(settings)
        ensure_schema(runtime.engine)
        publisher = ConfirmingPublisher(settings)
        worker_app = create_worker(runtime, [processing.register, sinks.register, rights.register])
        served.append(worker_metrics(worker_app))
        worker = WorkerThread(worker_app)
        worker.start(wait_for_topics=(settings.topic("rights.commands"), settings.topic("contacts.accepted")))
        try:
            with Server(create_api(runtime, publisher), port):
                yield World(settings, runtime, hub, base, CrmReadModel(runtime.engine), publisher)
        finally:
            worker.stop()
            publisher.close()
            runtime.engine.dispose()


class Person:
    """One person at the browser: signs in through the provider's form, looks at pages, checks each with axe-core."""

    def __init__(self, context: Any, base: str, axe_source: str, screenshots: Path) -> None:
        self.context = context
        self.base = base
        self.axe_source = axe_source
        self.screenshots = screenshots
        self.page = context.pages[0] if context.pages else context.new_page()
        self.csp_errors: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp_errors.append(message.text)

    def sign_in(self, username: str, path: str) -> None:
        """Open ``path`` signed out: the console sends the browser to the provider, back here once signed in."""
        self.context.clear_cookies()
        self.page.goto(self.base + path)
        assert not self.page.url.startswith(self.base), f"not sent to the provider: {self.page.url}"
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", USERS[username].password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(
            lambda url: url.startswith(self.base) and urlparse(url).path == path.split("?", maxsplit=1)[0]
        )

    def check(self, name: str) -> None:
        """axe-core on the page as it is now: no serious or critical violation; then a screenshot."""
        self.page.evaluate(self.axe_source + "\n;undefined")
        violations = self.page.evaluate(
            """async () => (await axe.run(document)).violations
                 .filter(v => v.impact === "serious" || v.impact === "critical")
                 .map(v => `${v.id} (${v.impact}): ${v.help} x${v.nodes.length}: ${v.nodes[0].html}`)"""
        )
        assert violations == [], f"{name}: {violations}"
        assert self.csp_errors == [], f"{name}: {self.csp_errors}"
        self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)


@pytest.fixture
def browser_context(chromium: str, tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


LEAD = {
    "your-name": "Jürgen Müller",
    "your-email": "juergen.mueller@example.de",
    "tel-123": "030 1234567",
    "your-company": "Müller Maschinenbau GmbH",
    "your-message": "Could you call me next week about the ERP project?",
    "acceptance-marketing": "1",
}
SPAM = {
    "your-name": "Best SEO",
    "your-email": "seo.master@example.com",
    "your-message": "We can put your website on Google first page!!!",
    "honeypot-521": "http://cheap-links.example",
}


def test_sales_reviewer_and_dpo_do_their_work_in_the_browser(
    world: World, browser_context: Any, axe_source: str, screenshots: Path
) -> None:
    person = Person(browser_context, world.base, axe_source, screenshots)
    page = person.page
    run = uuid.uuid4().hex[:6]
    lead = {**LEAD, "your-message": f"{LEAD['your-message']} ({run})"}
    world.ingest(urlencode(lead))
    other = {**LEAD, "your-name": "Olivia Other", "your-email": f"olivia.{run}@example.org", "your-company": "Other AG"}
    world.ingest(urlencode({k: v for k, v in other.items() if k != "tel-123"}))
    spam_id = world.ingest(urlencode({**SPAM, "your-message": f"{SPAM['your-message']} {run}"}))
    other_spam = {**SPAM, "your-email": f"seo.{run}@example.com", "your-message": f"Cheap links {run}!!!"}
    taken_id = world.ingest(urlencode(other_spam))  # another reviewer decides it while Rita's page shows it

    # ---- sales: the lead that just came in, found by name as they type, and its contact page ----------------
    key = wait_until(
        lambda: world.crm.subject_key_for(email=LEAD["your-email"]), timeout_s=60, what="the CRM to hold the lead"
    )
    wait_until(lambda: world.crm.search(name="olivia"), timeout_s=60, what="the CRM to hold the other lead")
    person.sign_in("sam", "/leads")
    assert "Sam Sales" in page.inner_text("header")
    assert page.locator("#lead-rows tr a").count() == 2
    # a lead that arrives while the inbox is open appears on top without a reload (server-sent events)
    world.ingest(
        urlencode(
            {**LEAD, "your-name": "Lena Live", "your-email": f"lena.{run}@example.net", "your-company": "Live GmbH"}
        )
    )
    expect(page.locator("#lead-rows tr a")).to_have_count(3, timeout=60_000)
    assert "Lena Live" in page.locator("#lead-rows tr").first.inner_text()
    person.check("sales-lead-inbox")
    page.fill("input[name=q]", "Müller")
    page.wait_for_url(lambda url: "q=M" in url)  # the search is in the address, so it can be shared and reloaded
    expect(page.locator("#lead-rows tr a")).to_have_count(1)
    assert "Müller Maschinenbau GmbH" in page.inner_text("#lead-rows") and "Other AG" not in page.inner_text("main")
    person.check("sales-lead-search")
    page.click("#lead-rows a")
    page.wait_for_url(f"{world.base}/contacts/{key}")
    assert "ERP project" in page.inner_text("main") and "web_form" in page.inner_text("main")
    person.check("sales-contact")
    page.goto(f"{world.base}/charts")
    assert "Leads per channel per day" in page.inner_text("main")
    person.check("sales-charts")

    # ---- a salesperson may not open the DPO's pages ------------------------------------------------------------
    refused = page.goto(f"{world.base}/dpo")
    assert refused is not None and refused.status == 403
    assert "Your role may not see this page" in page.inner_text("main")
    person.check("sales-refused-dpo-page")

    # ---- the reviewer confirms the spam items with the keyboard, in her name; each is re-read first ------------
    person.sign_in("rita", "/review")
    deadline = time.monotonic() + 60
    while f"/review/{spam_id}" not in page.content() or f"/review/{taken_id}" not in page.content():
        assert time.monotonic() < deadline, "the spam items never reached the review queue"
        time.sleep(1)
        page.reload()
    assert "honeypot" in page.inner_text("#queue")
    person.check("reviewer-queue")
    page.click(f"a[href='/review/{spam_id}']")
    assert "cheap-links" in page.inner_text("main") or "honeypot" in page.inner_text("main")
    person.check("reviewer-item")
    page.go_back()
    rows = page.locator("#queue tr.queue-item")
    positions = sorted(
        next(i for i in range(rows.count()) if event_id in rows.nth(i).inner_html()) for event_id in (spam_id, taken_id)
    )
    # while her page shows both, another reviewer releases one of them
    ReviewService(world.runtime, world.publisher).decide(
        uuid.UUID(taken_id), "release", person_named("bob", "Bob Review", Role.REVIEWER)
    )
    page.locator("body").click()
    at = -1
    for position in positions:
        for _ in range(position - at):
            page.keyboard.press("j")
        page.keyboard.press("x")
        at = position
    page.keyboard.press("c")
    page.wait_for_url(lambda url: "confirmed=1" in url)
    assert "Confirmed 1 as spam" in page.inner_text("main")
    assert "1 left alone: decided by someone else meanwhile" in page.inner_text("#decided")
    person.check("reviewer-decided")
    decisions = [
        ReviewDecision.model_validate_json(r.value or b"")
        for r in read_to_end(world.settings, ["contacts.review.decisions"])
    ]
    [decision] = [d for d in decisions if str(d.event_id) == spam_id]
    assert decision.decision == "confirm" and decision.principal is not None
    assert decision.principal.display_name == "Rita Review"
    [taken] = [d for d in decisions if str(d.event_id) == taken_id]  # not decided a second time
    assert taken.decision == "release" and taken.principal is not None and taken.principal.display_name == "Bob Review"
    page.goto(f"{world.base}/charts")
    assert "Spam share per channel" in page.inner_text("main") and "Sink health" not in page.inner_text("main")
    assert "web_form: 40% held as spam" in page.inner_text("#spam-shares")  # 3 leads accepted, 2 held as spam
    person.check("reviewer-charts")

    # ---- the DPO erases the lead's person from the form, and watches every sink's evidence arrive --------------
    wait_until(lambda: world.hub.contact(LEAD["your-email"]) is not None, timeout_s=60, what="HubSpot to hold it")
    person.sign_in("ana", "/dpo")
    person.check("dpo-requests")
    page.click("text=Issue a request")
    page.select_option("select[name=kind]", "erasure")
    page.fill("input[name=email]", LEAD["your-email"])
    person.check("dpo-issue-form")
    page.click("button:has-text('Continue')")
    assert "Erasure cannot be undone" in page.inner_text("#confirm-question")
    person.check("dpo-issue-confirm")
    page.click("button:has-text('Yes, erasure')")
    page.wait_for_url(lambda url: "/dpo/requests/" in url)
    request_id = urlparse(page.url).path.rsplit("/", 1)[-1]
    # htmx refreshes the evidence every 2 s while the request is open (no reload): wait for it to say completed
    expect(page.locator("#request-state")).to_have_text("completed", timeout=90_000)
    sinks_seen = {
        row.get_attribute("data-sink"): row.get_attribute("data-status") for row in page.query_selector_all("tr.sink")
    }
    # every place the person's data lived says done; the export step had no export of theirs to delete
    expected = {**dict.fromkeys(("crm", "hubspot", "kafka", "suppression"), "done"), "export": "not_applicable"}
    assert sinks_seen == expected, sinks_seen
    assert "interactions_deleted" in page.inner_text("#sinks") and "Ana Garcia" in page.inner_text("main")
    person.check("dpo-erasure-evidence")
    page.goto(f"{world.base}/charts")
    assert "Sink health" in page.inner_text("main")
    assert '<th scope="row">hubspot</th><td>0</td><td>0</td>' in page.content()  # it wrote, never dead-lettered
    person.check("dpo-charts")
    page.goto(f"{world.base}/dpo/retention")
    person.check("dpo-retention-preview")
    other_key = world.crm.subject_key_for(email=other["your-email"])
    page.goto(f"{world.base}/contacts/{other_key}")
    person.check("dpo-contact")
    # the DPO corrects another person's company from the rectification form
    page.goto(f"{world.base}/dpo/rectify")
    page.fill("input[name=who_email]", other["your-email"])
    person.check("dpo-rectify-form")
    page.fill("input[name=set_company]", "Other Maschinen AG")
    page.check("input[name=clear_company]")
    page.click("button:has-text('Correct everywhere')")
    assert "either a corrected value or empty" in page.inner_text("#rectify-error")
    person.check("dpo-rectify-refused")
    page.uncheck("input[name=clear_company]")
    page.click("button:has-text('Correct everywhere')")
    page.wait_for_url(lambda url: "/dpo/requests/" in url)
    expect(page.locator("#request-state")).to_have_text("completed", timeout=90_000)
    person.check("dpo-rectification-evidence")
    corrected = world.crm.show(other_key)
    assert corrected is not None and corrected.company == "Other Maschinen AG"
    page.goto(f"{world.base}/contacts/not-a-subject")
    person.check("dpo-not-found")
    view = RequestTracker(world.runtime.engine).get(request_id)
    assert view is not None and view.issuer is not None and view.issuer.display_name == "Ana Garcia"
    erased = world.crm.show(key)
    assert erased is not None and erased.status == "erased" and erased.email is None
    assert world.hub.contact(LEAD["your-email"]) is None

    # ---- and sales now see the person as erased, nothing personal left -----------------------------------------
    person.sign_in("sam", f"/contacts/{key}")
    assert "Erased" in page.inner_text("main") and "Müller" not in page.content()
