"""HubSpot sink throughput against the fake HubSpot at the default budget, as a fraction of the budget's ceiling.

Ceiling: 190 requests per rolling 10 s x 100 contacts = 1,900 contacts/s. The fake enforces the same budget (a 429
for every request over it) and records each request's arrival, so the figures are measured where HubSpot would
measure them. The sink is fed batches of 500 accepted events (5 upserts each) as fast as it takes them, with its
replay guard on (the rights history read from a SQLite tracker database before every call).

Reported:
- fraction of the ceiling over the first ``BENCH_WINDOWS`` complete budget windows: contacts in the upserts that
  arrived at the fake within [first arrival, first arrival + windows x window) / (windows x 190 x 100). Counting
  whole windows keeps the initial burst (a sliding window lets 190 requests through at once) from flattering it;
- end-to-end contacts/s over the whole run, 429s received, and losses (events fed - contacts the fake holds).

    .venv/bin/python bench/hubspot_sink.py                 # default budget, 3 windows (about 35 s)
    BENCH_WINDOW_S=2 .venv/bin/python bench/hubspot_sink.py  # a scaled budget: 190 requests per 2 s
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.contacts import make_tagged

from pipeline.config import explicit_settings
from pipeline.db import make_engine
from pipeline.models.tagged import TaggedEvent
from pipeline.rights.history import RightsHistory
from pipeline.sinks.base import WriteOutcome
from pipeline.sinks.hubspot.gateway import HubSpotGateway
from pipeline.sinks.hubspot.ratelimit import make_limiters
from pipeline.sinks.hubspot.sink import HubSpotSink

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "190"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "10"))
WINDOWS = int(os.environ.get("BENCH_WINDOWS", "3"))
BATCH = 500
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def batch_of(template: TaggedEvent, start: int) -> list[TaggedEvent]:
    """500 distinct contacts, cheaply derived from one template (fresh event id and e-mail each)."""
    out = []
    for n in range(start, start + BATCH):
        event = template.event
        person = event.person.model_copy(update={"email": f"bench{n}@example{n % 50}.com"})
        out.append(
            template.model_copy(update={"event": event.model_copy(update={"event_id": uuid.uuid4(), "person": person})})
        )
    return out


def fake_stats(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/__fake__/stats?window={WINDOW_S}&path_prefix={UPSERT}", timeout=30) as answer:
        stats: dict[str, object] = json.loads(answer.read())
    return stats


def main() -> None:
    logging.disable(logging.INFO)  # one line per retry would measure the terminal
    template = make_tagged("template@example.com", consent=True, position="CTO")
    # Everything the run could need, built before the clock starts (the agent's decrypting is not the sink's cost).
    needed = int(REQUESTS * 100 * (WINDOWS + 1.5) * 1.1)
    batches = [batch_of(template, start) for start in range(0, needed, BATCH)]
    gc.collect()
    gc.freeze()
    # The fake runs in a process of its own: HubSpot's servers do not share our CPU (or our GIL).
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parent.parent / "tests" / "fakes" / "hubspot.py"),
            str(REQUESTS),
            str(WINDOW_S),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    home = tempfile.mkdtemp(prefix="lp-bench-hubspot-")
    try:
        assert server.stdout is not None
        url, token = server.stdout.readline().split()
        settings = explicit_settings(
            environment="test",
            hubspot_access_token=token,
            hubspot_base_url=url,
            hubspot_rate_limit_requests=REQUESTS,
            hubspot_rate_limit_window_s=WINDOW_S,
        )
        limiters = make_limiters(
            REQUESTS, WINDOW_S, settings.hubspot_search_rate_per_s, settings.hubspot_rate_limit_margin_s
        )
        engine = make_engine(f"sqlite:///{home}/rights.sqlite3")
        sink = HubSpotSink.from_settings(settings, HubSpotGateway(settings, limiters), guard=RightsHistory(engine))
        sink.setup()
        fed = written = 0
        started = time.monotonic()
        stop_at = started + WINDOWS * WINDOW_S + 1.0  # a little past the last whole window
        for batch in batches:
            if time.monotonic() >= stop_at:
                break
            fed += len(batch)
            results = sink.write(batch)
            written += sum(r.outcome is WriteOutcome.WRITTEN for r in results)
        elapsed = time.monotonic() - started
        stats = fake_stats(url)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)
        shutil.rmtree(home, ignore_errors=True)
    upserts = [r for r in stats["requests"] if r["method"] == "POST"]  # type: ignore[attr-defined]
    first = upserts[0]["at"]
    contacts_in_windows = sum(
        r["inputs"] for r in upserts if r["at"] < first + WINDOWS * WINDOW_S and r["status"] == 200
    )
    ceiling = WINDOWS * REQUESTS * 100
    held = int(stats["contacts"])  # type: ignore[call-overload]
    print(
        f"budget: {REQUESTS} requests / {WINDOW_S:g} s, 100 contacts per request, "
        f"limiter margin {settings.hubspot_rate_limit_margin_s:g} s"
    )
    print(f"ceiling          : {REQUESTS * 100 / WINDOW_S:10,.0f} contacts/s")
    print(
        f"first {WINDOWS} windows : {contacts_in_windows / (WINDOWS * WINDOW_S):10,.0f} contacts/s = "
        f"{contacts_in_windows / ceiling:.3f} of the ceiling (target >= 0.9)"
    )
    print(f"whole run        : {written / elapsed:10,.0f} contacts/s end to end ({fed} fed in {elapsed:.1f} s)")
    print(f"max requests in any rolling {WINDOW_S:g} s at the fake: {stats['max_in_window']} (budget {REQUESTS})")
    print(f"429s received: {stats['rate_limited']}; losses: {fed - held} (fed {fed}, held by the fake {held})")


if __name__ == "__main__":
    main()
