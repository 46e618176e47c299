"""The processing worker with its step replaced by a pass-through: what the Kafka harness alone costs per event.

``bench/processing.py`` runs ``leadpipe worker --only _passthrough_agent:register`` (this directory on PYTHONPATH;
the leading underscore keeps ``make bench`` from running it as a benchmark) next to the real worker. Everything but
the step is the production code path: the batch agent, the exactly_once transactions, the commit lock, the
transactional sender's record batches, delivery waits and acknowledgements. Each consumed record is written
unchanged to ``contacts.accepted``: no parse, no opening, no rules. The difference between this figure and the real
worker's is the step's cost inside a worker process; the difference between it and the raw confluent-kafka
pass-through is the harness's.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.agents import processing
from pipeline.agents.app import LeadpipeApp
from pipeline.agents.sender import Out
from pipeline.agents.views import ProcessingState
from pipeline.runtime import Runtime
from pipeline.topics import ACCEPTED_TOPIC


def passthrough(batch: Sequence[processing.Consumed], state: ProcessingState) -> processing.BatchResult:
    """Every record to ``contacts.accepted`` as it came."""
    result = processing.BatchResult()
    for item in batch:
        result.add(item.partition, [Out(ACCEPTED_TOPIC, item.key, item.value)], "accepted")
    return result


def register(app: LeadpipeApp, runtime: Runtime) -> None:
    """The processing agent's registrar with ``passthrough`` as its step."""
    processing.register(app, runtime, process=passthrough)
