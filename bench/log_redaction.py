"""What PII redaction costs per log line, against the same structlog JSON pipeline without it, in the same run.

Lines carry the fields real code logs (ids, subject keys, counts) plus one free-text field, through a structlog
logger and a stdlib logger (the way faust/aiokafka log). Output goes to a throw-away stream.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid

import structlog

from pipeline.logging import configure_logging, get_logger

N = int(os.environ.get("BENCH_N", "20000"))


def plain_logging(stream: io.StringIO) -> None:
    """configure_logging's pipeline minus the redaction (and minus the scrubbing LogRecord factory)."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel("INFO")


def run() -> float:
    log = get_logger("bench.pipeline")
    lib = logging.getLogger("aiokafka.bench")
    ids = [str(uuid.uuid4()) for _ in range(64)]
    start = time.perf_counter()
    for i in range(N // 2):
        log.info("record accepted", event_id=ids[i % 64], subject_key=f"{i:064x}", partition=i % 6, note="ok")
        lib.info("Sending batch to %s partition %d (%d records)", "contacts.accepted", i % 6, 42)
    return N / (time.perf_counter() - start)


def main() -> None:
    factory = logging.getLogRecordFactory()
    plain_logging(io.StringIO())
    logging.setLogRecordFactory(logging.LogRecord)
    baseline = run()
    logging.setLogRecordFactory(factory)
    configure_logging("INFO", "json", stream=io.StringIO())
    measured = run()
    print(f"lines: {N} (half structlog, half stdlib)")
    print(f"baseline structlog JSON without redaction: {baseline:,.0f} lines/s")
    print(f"with redaction (fields, messages, LogRecord factory): {measured:,.0f} lines/s")
    print(f"ratio redacted/baseline: {measured / baseline:.2f}")


if __name__ == "__main__":
    main()
