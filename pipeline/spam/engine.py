"""rspamd's HTTP API, called at the edge: many messages at once within a time budget, learning per event.

Why a thread pool of blocking calls and not asyncio: measured on this machine (bench/spam.py, the same
messages, the same engine), 8 threads reached 276-310 /checkv2 calls/s where httpx's asyncio client reached
142-163 at the same concurrency: per request, the event loop's machinery costs more than the engine's answer.
Why urllib3 and not httpx: the client's own CPU per call is what the engine waits for on a 2-core machine; measured
(300 calls each in one process, docs/processing.md) urllib3 spends 0.59 ms per /checkv2 call, httpx 1.1-1.2 ms.
A batch's deadline is one ``concurrent.futures.wait``; a request still running when it passes is answered as a
timeout (its thread ends at the per-request timeout). Async callers (the faust agents) run ``score_many`` with
``asyncio.to_thread``. Engine faults never raise into the caller: every message gets an ``EngineVerdict`` or an
``EngineUnavailable`` saying why (timeout, unreachable, error), and a learn call answers a ``LearnOutcome``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Literal

import orjson
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as UrllibTimeout

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
    """One engine (normal worker for scoring, controller for learning); thread-safe, ``concurrency`` calls at once."""

    def __init__(self, url: str, controller_url: str, *, timeout_s: float = 2.0, concurrency: int = 8) -> None:
        self.url = url.rstrip("/")
        self.controller_url = controller_url.rstrip("/")
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        # no retries: a message the engine did not answer is a typed result, and the batch's budget is the caller's
        self._http = urllib3.PoolManager(
            num_pools=2, maxsize=concurrency, retries=False, timeout=urllib3.Timeout(timeout_s)
        )
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="spam-engine")

    def __enter__(self) -> SpamEngineClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.clear()

    def _call(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> urllib3.BaseHTTPResponse | EngineUnavailable:
        """One request's answer (read whole), or why there is none (timeout, unreachable, error)."""
        try:
            return self._http.request(method, url, body=body, headers=headers)
        except NewConnectionError:  # before TimeoutError: urllib3 2 derives it from ConnectTimeoutError
            return EngineUnavailable(reason="unreachable", detail="NewConnectionError")
        except UrllibTimeout:
            return EngineUnavailable(reason="timeout", detail=f"no answer within {self.timeout_s:g} s")
        except ProtocolError as exc:  # the connection was refused, reset or closed mid-answer
            return EngineUnavailable(reason="unreachable", detail=type(exc).__name__)
        except HTTPError as exc:
            return EngineUnavailable(reason="error", detail=type(exc).__name__)

    # -- scoring --

    def score(self, message: EngineMessage) -> EngineResult:
        """One message. Never raises for an engine fault: the result says what went wrong."""
        response = self._call("POST", f"{self.url}/checkv2", message.data, _headers(message))
        if isinstance(response, EngineUnavailable):
            return response
        if response.status != 200:
            return EngineUnavailable(reason="error", detail=f"HTTP {response.status} from /checkv2")
        try:
            return parse_verdict(response.data)
        except (ValueError, KeyError, TypeError) as exc:
            return EngineUnavailable(reason="error", detail=f"unreadable answer: {type(exc).__name__}")

    def score_many(self, messages: Sequence[EngineMessage], budget_s: float | None = None) -> list[EngineResult]:
        """Every message, ``concurrency`` at a time; whatever is not answered within ``budget_s`` (default: the
        per-request timeout) is a timeout. The results are in the order of ``messages``."""
        return self.collect(self.submit(messages), self.timeout_s if budget_s is None else budget_s)

    def submit(self, messages: Sequence[EngineMessage]) -> list[Future[EngineResult]]:
        """Start scoring and return at once: the caller does its own work while the engine does its (``collect``)."""
        return [self._pool.submit(self.score, m) for m in messages]

    def collect(self, futures: Sequence[Future[EngineResult]], budget: float) -> list[EngineResult]:
        """The results of ``submit``, waiting at most ``budget`` seconds more; the rest are timeouts."""
        if not futures:
            return []
        _, pending = wait(futures, timeout=max(budget, 0.0))
        for future in pending:
            future.cancel()  # not started yet: never sent; started: ends at the per-request timeout
        if pending:
            log.warning("spam engine batch over its time budget", pending=len(pending), budget_s=budget)
        return [self._result(future, budget) for future in futures]

    @staticmethod
    def _result(future: Future[EngineResult], budget: float) -> EngineResult:
        if not future.done() or future.cancelled():
            return EngineUnavailable(reason="timeout", detail=f"batch budget {budget:g} s spent")
        error = future.exception()
        if error is not None:
            return EngineUnavailable(reason="error", detail=type(error).__name__)
        return future.result()

    # -- learning --

    def learn(self, message: EngineMessage, label: Label) -> LearnOutcome:
        """Teach the engine's Bayes one message. A message learned before in this class answers ``duplicate``
        (rspamd: HTTP 208); ``Learn-Type: bulk`` lets it learn what it already rates confidently."""
        headers = {**_headers(message), "Learn-Type": "bulk"}
        response = self._call("POST", f"{self.controller_url}/learn{label}", message.data, headers)
        if isinstance(response, EngineUnavailable):
            detail = "timeout" if response.reason == "timeout" else response.detail
            return LearnOutcome(event_id=message.event_id, label=label, status="unavailable", detail=detail)
        status = response.status
        if status == 200:
            return LearnOutcome(event_id=message.event_id, label=label, status="learned")
        if status == 208:
            return LearnOutcome(event_id=message.event_id, label=label, status="duplicate")
        detail = f"HTTP {status}"
        with contextlib.suppress(ValueError, AttributeError):
            detail += f": {orjson.loads(response.data).get('error', '')}"[:200]
        outcome: Literal["refused", "unavailable"] = "unavailable" if status >= 500 else "refused"
        return LearnOutcome(event_id=message.event_id, label=label, status=outcome, detail=detail)

    def learn_many(self, items: Sequence[tuple[EngineMessage, Label]]) -> list[LearnOutcome]:
        """Learn a batch, ``concurrency`` at a time, in order."""
        return list(self._pool.map(lambda item: self.learn(*item), items))

    def learned(self) -> dict[str, int]:
        """How many messages the engine's Bayes learned per class (``/stat``, as of the engine's last refresh of its
        statistics, which lags learning by seconds); empty when it does not answer."""
        response = self._call("GET", f"{self.controller_url}/stat")
        if isinstance(response, EngineUnavailable) or response.status != 200:
            return {}
        try:
            data = orjson.loads(response.data)
        except ValueError:
            return {}
        out = {"spam": 0, "ham": 0}
        for statfile in data.get("statfiles", []):
            label = "spam" if statfile.get("symbol") == "BAYES_SPAM" else "ham"
            out[label] += int(statfile.get("revision", 0))
        return out

    def ready(self) -> bool:
        response = self._call("GET", f"{self.url}/ping")
        return not isinstance(response, EngineUnavailable) and response.data.strip() == b"pong"


__all__ = ["Label", "SpamEngineClient", "parse_verdict"]
