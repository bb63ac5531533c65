"""Fetch several windows at once, hand their records over strictly in window order.

Latency dominates a sync against the real API (each page is a round trip), so up to
`max_concurrency` windows are fetched by worker threads while the main thread writes
records. Correctness does not depend on the concurrency:
- the consumer receives window i's records only after every record of windows < i, and a
  window is reported complete only after its last page, so a checkpoint never covers a window
  that is not finished;
- each window's hand-over queue is bounded, so a worker that runs ahead blocks instead of
  holding pages in memory;
- a failure in a worker is raised in the consumer; leaving early stops every worker.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import typing as t
from concurrent.futures import ThreadPoolExecutor

W = t.TypeVar("W")
R = t.TypeVar("R")

_BATCH = 16  # records per hand-over: amortises queue locking without holding much
# (a 300-turn conversation is ~1 MB of Python objects: batches x queue depth x concurrency
# bounds what is held, so keep both small; 16 still makes queue costs negligible)
_QUEUE_BATCHES = 2
_DONE = object()
# A page decodes into ~100 objects per conversation that live until written. With the default
# thresholds the cyclic GC keeps re-scanning them and every object the SDK holds (full
# collections ~15 % of a CPU-bound sync). Records are acyclic: collect less often while
# fetching, and freeze what existed before the sync so full collections skip it.
_GC_THRESHOLDS = (10_000, 100, 100)


class _Stopped(Exception):
    """The consumer went away; the worker should stop quietly."""


def fetch_in_order(
    windows: t.Sequence[W],
    fetch: t.Callable[[W, threading.Event], t.Iterable[R]],
    concurrency: int,
) -> t.Iterator[tuple[W, t.Iterator[R]]]:
    """Yield `(window, records)` in order; consume `records` fully before the next window.

    `fetch(window, stop)` should give up early once `stop` is set: after any failure, or when
    the consumer leaves, no worker starts another request.
    """
    if not windows:
        return
    stop = threading.Event()
    failures: list[BaseException] = []
    queues: list[queue.Queue[t.Any]] = [queue.Queue(_QUEUE_BATCHES) for _ in windows]

    def put(q: queue.Queue[t.Any], item: object) -> None:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def work(index: int) -> None:
        q = queues[index]
        if stop.is_set():
            return
        try:
            batch: list[R] = []
            for record in fetch(windows[index], stop):
                batch.append(record)
                if len(batch) >= _BATCH:
                    put(q, batch)
                    batch = []
            if batch:
                put(q, batch)
            put(q, _DONE)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer thread
            if not stop.is_set():  # else: this worker was told to stop, that is no failure
                failures.append(exc)
                stop.set()  # no other window needs to go on: the sync is failing

    def drain(q: queue.Queue[t.Any]) -> t.Iterator[R]:
        while True:
            try:
                item = q.get(timeout=0.2)
            except queue.Empty:
                if failures:
                    raise failures[0] from None
                continue
            if item is _DONE:
                return
            yield from item

    executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="polyai")
    try:
        with _fewer_collections():
            for index in range(len(windows)):
                executor.submit(work, index)
            for window, q in zip(windows, queues, strict=True):
                yield window, drain(q)
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _fewer_collections() -> t.Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(*(max(o, n) for o, n in zip(old, _GC_THRESHOLDS, strict=False)))
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)
