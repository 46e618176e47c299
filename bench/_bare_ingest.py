"""The baseline of ``bench/ingest_http.py``: a bare FastAPI endpoint that only produces the body and waits for the ack.

``POST /bare`` reads the body, produces it to ``BARE_TOPIC`` with leadpipe's producer settings (idempotent,
acks=all, the same linger and compression) and answers 202 once librdkafka reported the delivery; delivery reports
are served by a thread of their own. Nothing else: no authentication, parsing, sealing or key store. Served by the
same uvicorn set-up as ``leadpipe serve`` (uvloop, httptools, no access log), one process.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from confluent_kafka import KafkaError, Message
from fastapi import FastAPI, Request, Response

from pipeline.config import explicit_settings
from pipeline.kafka.producer import make_producer

settings = explicit_settings(kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"])
producer = make_producer(settings)
TOPIC = os.environ["BARE_TOPIC"]


def _poll() -> None:
    while True:
        producer.poll(0.1)


threading.Thread(target=_poll, daemon=True).start()
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/bare")
async def bare(request: Request) -> Response:
    body = await request.body()
    loop = asyncio.get_running_loop()
    acked: asyncio.Future[Any] = loop.create_future()

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        loop.call_soon_threadsafe(acked.set_result, err)

    producer.produce(TOPIC, body, on_delivery=delivered)
    if await acked is not None:
        return Response(b'{"status":"refused"}', status_code=503, media_type="application/json")
    return Response(b'{"status":"accepted"}', status_code=202, media_type="application/json")
