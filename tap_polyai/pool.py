"""How many requests may wait on the API at once: halved by a 429, grown back by successes.

PolyAI publishes no rate limit, so the tap cannot know the right concurrency in advance. It
starts at `max_concurrency` and lets the API say when that is too much (additive increase,
multiplicative decrease, as TCP does):
- a 429 halves the limit (never below 1); the `Retry-After` pause itself is `client.RateGate`'s;
- after `GROW_AFTER` successful requests in a row the limit grows by one, up to the maximum.
A slot is held from sending a request until its response headers are in: that is the time the
API works on it. Reading a body, and a worker waiting for the memory budget (`fetcher.py`), hold
no slot, so no wait on our side can starve a request the writer needs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import typing as t

GROW_AFTER = 16  # successes in a row before one more slot


class AdaptivePool:
    """A counting limit whose size moves between 1 and `maximum`."""

    def __init__(self, maximum: int, logger: logging.Logger | None = None) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self._in_flight = 0
        self._successes = 0
        self._cond = threading.Condition()
        self._logger = logger or logging.getLogger(__name__)

    @contextlib.contextmanager
    def slot(self, stop: threading.Event | None = None) -> t.Iterator[None]:
        """Hold one request slot; waits while `limit` requests are in flight."""
        with self._cond:
            while self._in_flight >= self.limit:
                if stop is not None and stop.is_set():
                    break  # the caller checks `stop` itself before sending
                self._cond.wait(0.2)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify()

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self._successes >= GROW_AFTER and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
                self._logger.info(
                    "Concurrency raised to %d after %d successes", self.limit, GROW_AFTER
                )
                self._cond.notify()

    def throttled(self) -> None:
        """A 429: halve the limit."""
        with self._cond:
            self._successes = 0
            lowered = max(1, self.limit // 2)
            if lowered < self.limit:
                self.limit = lowered
                self._logger.warning("Concurrency lowered to %d after HTTP 429", self.limit)
