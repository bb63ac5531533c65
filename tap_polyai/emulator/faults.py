"""Fault injection: one-shot failures consumed by the next matching API requests.

Why a queue of one-shot faults: retry logic is tested by saying "the next request fails like
this, then things recover" and asserting on the request log, without timing games. Faults are
taken in FIFO order by API requests only (never by the ``/_emulator/`` admin endpoints), and
can be restricted to one project and to one endpoint (``"conversations"``, the list, or
``"details"``, the Agents API's conversation detail), and a detail fault to one conversation.
``deleted`` answers a detail request 404 ``CONVERSATIONS_NOT_FOUND``, as the API does for a
conversation deleted after the list showed it. ``latency_ms`` is the persistent per-request
delay used by benchmarks to make page round-trips realistic.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["FAULT_KINDS", "Fault", "Faults", "RetryAfter"]

ENDPOINTS = ("conversations", "details")
FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "truncate",
    "reset",
    "invalid_json",
    "latency",
    "deleted",
)

#: ``Retry-After`` value: seconds (int/float/str sent verbatim), an absolute ``datetime`` or a
#: ``timedelta`` from the real wall-clock time (both sent as an HTTP-date), or None (no header).
RetryAfter = int | float | str | datetime | timedelta | None


@dataclass
class Fault:
    """One queued fault. ``times`` is how many more requests it will hit."""

    kind: str
    times: int = 1
    project_id: str | None = None
    status: int = 500  # server_error: 500, 502, 503 or 504
    retry_after: RetryAfter = "1"  # rate_limit
    seconds: float = 1.0  # latency
    chunked: bool | None = None  # truncate: None = whatever the response would have used
    endpoint: str | None = None  # "conversations" or "details"; None: either
    conversation_id: str | None = None  # details only: this conversation's requests only


class Faults:
    """Thread-safe FIFO of :class:`Fault` plus the persistent ``latency_ms`` setting."""

    def __init__(self, latency_ms: int = 0) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.latency_ms = latency_ms

    def add(
        self,
        kind: str,
        *,
        times: int = 1,
        project_id: str | None = None,
        status: int = 500,
        retry_after: RetryAfter = "1",
        seconds: float = 1.0,
        chunked: bool | None = None,
        endpoint: str | None = None,
        conversation_id: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` matching requests and return it.

        ``deleted`` and ``conversation_id`` concern the detail endpoint only (``endpoint`` is
        then ``"details"``).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times < 1:
            raise ValueError("times must be >= 1")
        if kind == "server_error" and not 500 <= status <= 599:
            raise ValueError("server_error status must be 5xx")
        if endpoint not in (None, *ENDPOINTS):
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
        if kind == "deleted" or conversation_id is not None:
            if endpoint == "conversations":
                raise ValueError("'deleted' and conversation_id apply to the details endpoint")
            endpoint = "details"
        fault = Fault(
            kind,
            times,
            project_id,
            status,
            retry_after,
            seconds,
            chunked,
            endpoint,
            conversation_id,
        )
        with self._lock:
            self._queue.append(fault)
        return fault

    def take(
        self,
        project_id: str | None,
        endpoint: str = "conversations",
        conversation_id: str | None = None,
    ) -> Fault | None:
        """Consume one use of the first fault matching ``project_id``, ``endpoint`` and (for a
        detail) ``conversation_id``."""
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.endpoint not in (None, endpoint):
                    continue
                if fault.conversation_id not in (None, conversation_id):
                    continue
                if fault.project_id is None or fault.project_id == project_id:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._queue[i]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(f.times for f in self._queue)
