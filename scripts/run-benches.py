"""Run every benchmark in bench/ (each prints its own ratios against a baseline measured in the same run).

A broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else the launcher's test broker, started here and released after.
PostgreSQL: ``LEADPIPE_TEST_POSTGRES_URL`` (``make bench`` sets it from scripts/ensure-postgres.sh).
Exits non-zero when a benchmark fails or when there is none to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.kafka.launcher import LocalKafka

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    scripts = sorted(p for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        print("run-benches: no benchmark in bench/", file=sys.stderr)
        return 1
    env = dict(os.environ)
    broker = None
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker = LocalKafka.for_tests()
        broker.up()
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    failed: list[str] = []
    try:
        for script in scripts:
            print(f"\n== {script.relative_to(REPO)}", flush=True)
            start = time.monotonic()
            result = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, check=False)
            status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
            print(f"== {script.relative_to(REPO)}: {status} in {time.monotonic() - start:.0f}s", flush=True)
            if result.returncode != 0:
                failed.append(script.name)
    finally:
        if broker is not None:
            broker.release()
    if failed:
        print(f"run-benches: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
