"""Every benchmark in ``bench/`` runs to its end on tiny sizes, against the real broker and PostgreSQL.

A benchmark that no longer runs is otherwise found on the day its figures are needed (``bench/erasure.py`` was once
broken by a refactoring for a whole session). Nothing here is timed and no figure is asserted: speed is read from
full runs (``make bench``), never from tests. A new script in ``bench/`` must get its tiny sizes in ``SIZES``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[3] / "bench"

#: Environment of each script's smallest meaningful run (its own knobs, documented in its docstring).
SIZES: dict[str, dict[str, str]] = {
    "crm_sink.py": {"BENCH_N": "400", "BENCH_BATCH": "200"},
    "erasure.py": {
        "BENCH_RATE": "100",
        "BENCH_IDLE_ERASURES": "2",
        "BENCH_LOADED_ERASURES": "2",
        "BENCH_SPACING_S": "0.1",
        "BENCH_SUBJECTS": "20",
    },
    "hubspot_sink.py": {"BENCH_REQUESTS": "4", "BENCH_WINDOW_S": "1", "BENCH_WINDOWS": "1"},
    "ingest.py": {"BENCH_N": "60"},
    "ingest_http.py": {
        "BENCH_HTTP_N": "128",
        "BENCH_HTTP_ROUNDS": "1",
        "BENCH_HTTP_RATE": "100",
        "BENCH_HTTP_OPEN_S": "1",
    },
    "kafka_publish.py": {"BENCH_N": "300"},
    "log_redaction.py": {"BENCH_N": "300"},
    "processing.py": {"BENCH_N": "300", "BENCH_LATENCY_N": "20", "BENCH_LATENCY_RATE": "100"},
    "processing_step.py": {"BENCH_STEP_N": "500", "BENCH_REPS": "1"},
    "spam.py": {"BENCH_SPAM_N": "40", "BENCH_SPAM_CONCURRENCY": "2"},
    "spam_corpus.py": {"BENCH_SPAM_PER_GROUP": "12"},
    "spam_eval.py": {"BENCH_SPAM_PER_GROUP": "12", "BENCH_SPAM_LEARN": "20"},
    "speed_to_lead.py": {"BENCH_RATES": "20", "BENCH_SECONDS": "1", "BENCH_PROBES": "1", "BENCH_WARMUP": "3"},
}


def scripts() -> list[str]:
    """What ``make bench`` runs (scripts/run-benches.py): every ``bench/*.py`` not starting with ``_``."""
    return sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_has_tiny_sizes() -> None:
    assert set(scripts()) == set(SIZES), "give each bench/ script its tiny sizes in SIZES (and drop gone ones)"


#: Other modes of a script, run as well: (script, extra environment, a line the mode must print).
VARIANTS = [("erasure.py", {"BENCH_COMBINED": "1"}, "layout: combined")]


@pytest.mark.parametrize(
    ("script", "extra", "expected"),
    [(name, {}, "") for name in scripts()] + VARIANTS,
    ids=[*scripts(), *(f"{name}-{'-'.join(extra)}" for name, extra, _ in VARIANTS)],
)
def test_benchmark_runs_to_its_end(
    script: str, extra: dict[str, str], expected: str, kafka_bootstrap: str, pg_admin_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADPIPE_", "BENCH_"))}
    env.update(SIZES.get(script, {}), KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, LEADPIPE_TEST_POSTGRES_URL=pg_admin_url)
    env.update(extra)
    result = subprocess.run(
        [sys.executable, str(BENCH / script)],
        cwd=BENCH.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tail = (result.stdout[-3000:] + "\n---- stderr ----\n" + result.stderr[-3000:]).strip()
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{tail}"
    assert any(c.isdigit() for c in result.stdout), f"{script} printed no figure:\n{tail}"
    assert expected in result.stdout, f"{script} with {extra} did not say {expected!r}:\n{tail}"
