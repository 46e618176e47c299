"""rspamd's HTTP API, called at the edge: many messages at once within a time budget, learning per event.

Why asyncio + httpx: one event loop keeps N requests in flight without N threads, and a batch's deadline is one
``asyncio.wait`` (bench/spam.py measures it against a thread pool of blocking clients). Engine faults never raise
into the caller: every message gets an ``EngineVerdict`` or an ``EngineUnavailable`` saying why (timeout,
unreachable, error), and a learn call answers a ``LearnOutcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import orjson

from pipeline.logging import get_logger
from pipeline.models.spam import (
    EngineMessage,
    EngineResult,
    EngineSymbol,
    EngineUnavailable,
    EngineVerdict,
    LearnOutcome,
)

log = get_logger(__name__)

Label = Literal["spam", "ham"]


def _headers(message: EngineMessage) -> dict[str, str]:
    """What the source knew about the connection; rspamd otherwise guesses from Received headers (or nothing)."""
    headers = {"Queue-Id": str(message.event_id)}
    if message.ip:
        headers["IP"] = message.ip
    if message.sender:
        headers["From"] = message.sender
    if message.helo:
        headers["Helo"] = message.helo
    return headers


def parse_verdict(body: bytes) -> EngineVerdict:
    """rspamd's /checkv2 answer -> a verdict: score, action and every symbol that fired with its weight."""
    data: dict[str, Any] = orjson.loads(body)
    symbols = tuple(
        EngineSymbol(name=str(name)[:120], weight=round(float(entry.get("score", 0.0)), 4))
        for name, entry in sorted(data.get("symbols", {}).items())
        if not str(name).startswith("__")  # SpamAssassin's sub-rules: always weight 0, only parts of metas
    )
    return EngineVerdict(score=round(float(data["score"]), 4), action=str(data.get("action", ""))[:40], symbols=symbols)


class SpamEngineClient:
    """One engine (normal worker for scoring, controller for learning), used from one event loop at a time."""

    def __init__(
        self,
        url: str,
        controller_url: str,
        *,
        timeout_s: float = 2.0,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.controller_url = controller_url.rstrip("/")
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=limits, transport=transport)

    async def __aenter__(self) -> SpamEngineClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- scoring --

    async def score(self, message: EngineMessage) -> EngineResult:
        """One message. Never raises for an engine fault: the result says what went wrong."""
        try:
            response = await self._client.post(f"{self.url}/checkv2", content=message.data, headers=_headers(message))
        except httpx.TimeoutException:
            return EngineUnavailable(reason="timeout", detail=f"no answer within {self.timeout_s:g} s")
        except httpx.TransportError as exc:
            return EngineUnavailable(reason="unreachable", detail=type(exc).__name__)
        if response.status_code != 200:
            return EngineUnavailable(reason="error", detail=f"HTTP {response.status_code} from /checkv2")
        try:
            return parse_verdict(response.content)
        except (ValueError, KeyError, TypeError) as exc:
            return EngineUnavailable(reason="error", detail=f"unreadable answer: {type(exc).__name__}")

    async def score_many(self, messages: Sequence[EngineMessage], budget_s: float | None = None) -> list[EngineResult]:
        """Every message, ``concurrency`` at a time; whatever is not answered within ``budget_s`` is a timeout.

        The results are in the order of ``messages``.
        """
        budget = self.timeout_s if budget_s is None else budget_s
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: EngineMessage) -> EngineResult:
            async with gate:
                return await self.score(message)

        tasks = [asyncio.ensure_future(one(m)) for m in messages]
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("spam engine batch over its time budget", pending=len(pending), budget_s=budget)
        results: list[EngineResult] = []
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is None:
                results.append(task.result())
            elif task in done and task.exception() is not None:
                results.append(EngineUnavailable(reason="error", detail=type(task.exception()).__name__))
            else:
                results.append(EngineUnavailable(reason="timeout", detail=f"batch budget {budget:g} s spent"))
        return results

    # -- learning --

    async def learn(self, message: EngineMessage, label: Label) -> LearnOutcome:
        """Teach the engine's Bayes one message. A message learned before in this class answers ``duplicate``
        (rspamd: HTTP 208); ``Learn-Type: bulk`` lets it learn what it already rates confidently."""
        headers = {**_headers(message), "Learn-Type": "bulk"}
        try:
            response = await self._client.post(
                f"{self.controller_url}/learn{label}", content=message.data, headers=headers
            )
        except httpx.TimeoutException:
            return LearnOutcome(event_id=message.event_id, label=label, status="unavailable", detail="timeout")
        except httpx.TransportError as exc:
            return LearnOutcome(event_id=message.event_id, label=label, status="unavailable", detail=type(exc).__name__)
        if response.status_code == 200:
            return LearnOutcome(event_id=message.event_id, label=label, status="learned")
        if response.status_code == 208:
            return LearnOutcome(event_id=message.event_id, label=label, status="duplicate")
        detail = f"HTTP {response.status_code}"
        with contextlib.suppress(ValueError, AttributeError):
            detail += f": {orjson.loads(response.content).get('error', '')}"[:200]
        status: Literal["refused", "unavailable"] = "unavailable" if response.status_code >= 500 else "refused"
        return LearnOutcome(event_id=message.event_id, label=label, status=status, detail=detail)

    async def learn_many(
        self, items: Sequence[tuple[EngineMessage, Label]], budget_s: float | None = None
    ) -> list[LearnOutcome]:
        """Learn a batch, ``concurrency`` at a time (no overall deadline unless ``budget_s``)."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: EngineMessage, label: Label) -> LearnOutcome:
            async with gate:
                return await self.learn(message, label)

        coroutine = asyncio.gather(*(one(m, label) for m, label in items))
        if budget_s is None:
            return list(await coroutine)
        try:
            return list(await asyncio.wait_for(coroutine, budget_s))
        except TimeoutError:
            return [
                LearnOutcome(event_id=m.event_id, label=label, status="unavailable", detail="budget spent")
                for m, label in items
            ]

    async def learned(self) -> dict[str, int]:
        """How many messages the engine's Bayes learned per class (``/stat``, as of the engine's last refresh of its
        statistics, which lags learning by seconds); empty when it does not answer."""
        try:
            response = await self._client.get(f"{self.controller_url}/stat")
            data = orjson.loads(response.content)
        except (httpx.HTTPError, ValueError):
            return {}
        out = {"spam": 0, "ham": 0}
        for statfile in data.get("statfiles", []):
            label = "spam" if statfile.get("symbol") == "BAYES_SPAM" else "ham"
            out[label] += int(statfile.get("revision", 0))
        return out

    async def ready(self) -> bool:
        try:
            response = await self._client.get(f"{self.url}/ping")
        except httpx.HTTPError:
            return False
        return response.text.strip() == "pong"


def score_batch(client_args: dict[str, Any], messages: Sequence[EngineMessage]) -> tuple[list[EngineResult], float]:
    """Score from synchronous code (CLI, bench): a client for one batch, and the seconds the batch took."""

    async def run() -> list[EngineResult]:
        async with SpamEngineClient(**client_args) as client:
            return await client.score_many(messages)

    started = time.perf_counter()
    results = asyncio.run(run())
    return results, time.perf_counter() - started


__all__ = ["Label", "SpamEngineClient", "parse_verdict", "score_batch"]
