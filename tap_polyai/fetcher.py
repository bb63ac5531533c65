"""Fetch windows ahead of the writer, within one memory budget; hand them over in window order.

Latency dominates a sync against the real API (every page is a round trip, and the pages of
one window follow each other: a cursor cannot be shared). So worker threads fetch whole pages
of the windows ahead — of this project and, once its range is handed out, of the next one —
while the main thread writes. What bounds them is memory, not a number of records:
- Every page is charged to one budget (`max_buffer_mb`), shared by all workers and projects,
  from the moment it is requested until the writer takes its records. Before a worker sends a
  request it reserves the page's expected charge (the largest page read whole so far; a piece of
  `_FLUSH_BYTES` for a streamed page; nothing before the first page) and waits while that
  does not fit, so pages in flight are inside the budget too, whatever `max_concurrency` is.
  Once the page is read its real charge replaces the reservation: JSON size times
  `DECODED_BYTES_PER_JSON_BYTE` (what decoded conversations take). A streamed page waits for
  the budget before reading more, so a huge page stays flat in memory: it is handed over in
  pieces of about `_FLUSH_BYTES`.
- The window the writer is on (the head) waits for the budget only while the writer has some of
  it left to take, and reserves without waiting: a page bigger than the whole budget still
  progresses, and the writer can never be starved by read-ahead.
- Workers take the earliest window not yet started, so the head (of a split window being
  written: its first part not done) is always being fetched;
  while a project's planner waits for a result (its first page), they start the next
  project's windows rather than idle.
Correctness does not depend on any of this:
- the writer receives window i's records only after every record of windows before it, and a
  window is reported complete only after its last page, so a checkpoint never covers a window
  that is not finished;
- a failure in a worker stops every worker at once; the writer still writes the windows that
  were complete before it, in order, then raises the failure where it would have to wait;
- a window split after its first page (`windows.WindowPlanner`) is replaced by its parts before
  any of its records are handed over; the writer takes the parts as one window (pages in the
  order they arrive, from any part), reported complete once every part is.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
import typing as t
from collections import deque

from tap_polyai.windows import BucketCounter, Window, WindowPlanner, profiled

S = t.TypeVar("S")  # what a window is fetched from (a project)
R = t.TypeVar("R")  # a conversation

# Decoded into Python objects, a conversation takes about this many times its JSON size
# (measured with tracemalloc on emulator pages decoded by msgspec: 2.6-2.8x). An estimate.
DECODED_BYTES_PER_JSON_BYTE = 3
_FLUSH_BYTES = 4 << 20  # hand a page over at its end, or in pieces of this much
# A page decodes into ~100 objects per conversation that live until written. With the default
# thresholds the cyclic GC keeps re-scanning them and every object the SDK holds (full
# collections ~15 % of a CPU-bound sync). Records are acyclic: collect less often while
# fetching, and freeze what existed before the sync so full collections skip it.
_GC_THRESHOLDS = (10_000, 100, 100)
CLOSE_GRACE_SECONDS = 3.0

# The stages a worker runs, in order, as `Fetcher(on_stage=...)` is told of them: a test seam
# (raising there is a failure at that stage, in the worker's thread).
STAGES = ("pick", "page", "record", "page_done", "hand_over")


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _one_malloc_arena() -> None:
    """Have worker threads allocate from the main heap, not one glibc arena each.

    glibc gives every thread that allocates its own arena; memory a worker frees (a page body,
    its decoded conversations) stays in that worker's arena, so peak RSS grew with the number of
    workers times the page size whatever the budget (CPU path: 177 MB with 8 workers against
    138 MB with one arena, benchmarks/RESULTS.md). Every allocation here happens under the GIL,
    so one arena costs no contention. Skipped where glibc is absent or the user chose
    `MALLOC_ARENA_MAX` themselves.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # no glibc (musl has no such parameter)
        return


class Reader(t.Protocol):
    """What the fetcher reads of a page being parsed (pages.PageReader)."""

    bytes_read: int


# `client.PolyAIClient.conversations(source, window, stop, watch)`: the records of one window,
# page after page. It calls `watch.page_started(reader)` when a page's response arrives and
# `watch.page_done(more)` after each page, stops paging when that returns False, and starts no
# request once `stop` is set.
Fetch = t.Callable[[S, Window, threading.Event, t.Any], t.Iterable[R]]
# A conversation's `(id, started_at)`: to split a window after its first page.
Identify = t.Callable[[R], tuple[str, str | None]]


class _Stopped(Exception):
    """The sync is stopping; the worker should leave quietly."""


class _Project(t.Generic[S]):
    def __init__(self, source: S, planner: WindowPlanner) -> None:
        self.source = source
        self.planner = planner
        self.slots: list[_Slot] = []
        self.written = 0  # slots[:written] were handed over completely
        self.scan = 0  # every slot before this one has been started


class _Slot:
    """One window's place in the write order, and the pages fetched for it."""

    __slots__ = ("batches", "buckets", "committed", "count", "done", "project", "started", "window")

    def __init__(self, window: Window, project: _Project[t.Any], started: bool) -> None:
        self.window = window
        self.project = project
        self.started = started
        self.committed = False  # records handed over (or done): it can no longer be split
        self.done = False
        self.count = 0  # conversations, known once done
        self.buckets: dict[t.Any, int] | None = None  # and when they started (`BucketCounter`)
        self.batches: deque[tuple[list[t.Any], int]] = deque()


class Fetcher(t.Generic[S, R]):
    """Worker threads shared by every project of one stream; one writer (the main thread).

    Per project, in the order they are synced: `add(source, planner)` (ahead of time, so its
    windows may be fetched while the project before it is written), then iterate
    `windows(source)` to the end. `close()` stops and joins the workers.
    """

    def __init__(
        self,
        fetch: Fetch[S, R],
        identify: Identify[R],
        *,
        workers: int,
        budget_bytes: int,
        logger: logging.Logger | None = None,
        on_stage: t.Callable[[str], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self.on_stage = on_stage
        self.identify = identify
        self._workers = max(1, workers)
        self.budget = max(1, budget_bytes)
        self._logger = logger or logging.getLogger(__name__)
        self._cond = threading.Condition()
        self._projects: list[_Project[S]] = []
        self._current = 0  # index of the project the writer is on
        self.held = 0  # bytes charged for pages not yet taken by the writer
        self.reserved = 0  # bytes reserved for pages requested but not read yet
        self.peak_held = 0  # the most `held + reserved` has been
        self._whole_page_charge = 0  # the largest charge of a page read whole so far
        self._streamed = False  # the latest page was streamed: it is charged piece by piece
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._threads: list[threading.Thread] = []

    # -- the writer's side --------------------------------------------------------------------

    def has_next(self, source: S) -> bool:
        """Whether `source` is the project this fetcher expects to be written next."""
        with self._cond:
            return (
                self._failure is None
                and self._current < len(self._projects)
                and self._projects[self._current].source == source
            )

    def queued(self, source: S) -> bool:
        """Whether `source` is queued and not yet written."""
        with self._cond:
            return self._queued(source)

    def _queued(self, source: S) -> bool:
        return any(p.source == source for p in self._projects[self._current :])

    def add(self, source: S, planner: WindowPlanner) -> None:
        """Queue a project (once). Its windows are fetched when the ones before are handed out,
        or while their planners wait for a result (a first page, a window's last)."""
        with self._cond:
            if self._queued(source):
                return
            self._projects.append(_Project(source, planner))
            if not self._threads:
                _one_malloc_arena()  # before the workers' first allocation
                for i in range(self._workers):
                    thread = threading.Thread(target=self._work, name=f"polyai-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify_all()

    def windows(self, source: S) -> t.Iterator[tuple[Window, t.Iterator[R]]]:
        """Yield `(window, records)` in order; consume `records` fully before the next window."""
        with self._cond:
            project = self._projects[self._current]
            assert project.source == source, "projects are written in the order they were added"
        with _fewer_collections():
            while True:
                with self._cond:
                    slots = self._wait_for_next_slots(project)
                if slots is None:
                    break
                yield slots[0].window.parent or slots[0].window, self._drain(slots)
                with self._cond:
                    project.written += len(slots)
                    self._cond.notify_all()
        with self._cond:
            self._current += 1
            self._cond.notify_all()

    def _wait_for_next_slots(self, project: _Project[S]) -> list[_Slot] | None:
        """The next window to write: one slot, or every part of a split window (`_parts_at`)."""
        while True:
            if project.written < len(project.slots):
                slot = project.slots[project.written]
                if slot.window.parent is not None:  # parts are final: they are not split again
                    return _parts_at(project.slots, project.written)
                if slot.committed:
                    return [slot]
            elif project.planner.exhausted:
                return None
            self._raise_failure()
            self._cond.wait(1.0)

    def _drain(self, slots: list[_Slot]) -> t.Iterator[R]:
        """The records of one window, or of all parts of a split one: pages as they arrive,
        from the earliest part that has one. A split window is one window to the writer (one
        checkpoint, after its last part), so nothing orders its parts' records, and a long
        part no longer holds the others' pages in memory: in part order, the writer waited on
        the first part's chain while the others' pages filled the budget, and the pool fetched
        a page at a time (a dense first day of 89 pages in 8 parts: 8.3 s instead of 4.2)."""
        while True:
            with self._cond:
                while True:
                    slot = next((s for s in slots if s.batches), None)
                    if slot is not None or all(s.done for s in slots):
                        break
                    self._raise_failure()
                    self._cond.wait(1.0)
                if slot is None:
                    return
                records, charge = slot.batches.popleft()
                self.held -= charge
                self._cond.notify_all()
            yield from records

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stop.is_set():
            raise RuntimeError("the fetcher was closed")

    def close(self) -> None:
        """Stop every worker (no new request starts) and wait for them, `CLOSE_GRACE_SECONDS` at
        most: every wait of a worker wakes on the stop, but a request on the wire ends only with
        its timeout, and a signal must end the run within seconds (the threads are daemons)."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    # -- the workers' side --------------------------------------------------------------------

    def _head(self) -> _Slot | None:
        """The slot the writer waits for, which never waits for the budget: of a split window
        being written, its first part not done yet."""
        if self._current >= len(self._projects):
            return None
        project = self._projects[self._current]
        if project.written >= len(project.slots):
            return None
        slot = project.slots[project.written]
        if slot.window.parent is not None:
            for part in _parts_at(project.slots, project.written):
                if not part.done:
                    return part
        return slot

    def _budget_left(self) -> bool:
        return self.held + self.reserved < self.budget

    def _expected_charge(self) -> int:
        """What the next page is expected to cost once read (see the module docstring)."""
        if self._streamed:
            return _FLUSH_BYTES
        return self._whole_page_charge

    def _reserve(self, slot: _Slot) -> int:
        """Reserve the next page's expected charge before its request; wait while it does not
        fit (the head does not wait). Returns what was reserved."""
        with self._cond:
            while True:
                amount = self._expected_charge()
                if slot is self._head() or self.held + self.reserved + amount <= self.budget:
                    break  # (once stopped, the client itself starts no request)
                if self._stop.is_set():
                    raise _Stopped
                self._cond.wait(1.0)
            self.reserved += amount
            self.peak_held = max(self.peak_held, self.held + self.reserved)
            return amount

    def _release(self, amount: int) -> None:
        if amount:
            with self._cond:
                self.reserved -= amount
                self._cond.notify_all()

    def _page_read(self, charge: int, streamed: bool) -> None:
        with self._cond:
            self._streamed = streamed
            if not streamed:
                self._whole_page_charge = max(self._whole_page_charge, charge)

    def _pick(self) -> _Slot | None:
        """The next window to fetch: the earliest not started, else a newly planned one."""
        while not self._stop.is_set():
            for project in self._projects[self._current :]:
                while project.scan < len(project.slots) and project.slots[project.scan].started:
                    project.scan += 1
                if project.scan < len(project.slots):
                    slot = project.slots[project.scan]
                    if slot is self._head() or self._budget_left():
                        slot.started = True
                        return slot
                    break  # the budget is spent: nothing later may start either
                if project.planner.exhausted:
                    continue  # all of it is under way: read ahead into the next project
                if not self._budget_left() and self._head() is not None:
                    break
                window = project.planner.next_window()
                if window is None:
                    continue  # the planner waits for a result: meanwhile, the next project
                slot = _Slot(window, project, started=True)
                project.slots.append(slot)
                return slot
            self._cond.wait(1.0)
        return None

    def _work(self) -> None:
        # Everything a worker runs is inside the try: planning a window, fetching it, handing it
        # over. Any exception ends the run with that error (the writer re-raises it) rather than
        # leaving the writer waiting for a thread that is gone.
        try:
            while True:
                if self.on_stage is not None:
                    self.on_stage("pick")
                with self._cond:
                    slot = self._pick()
                if slot is None:
                    return
                self._fetch_slot(slot)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the writer's thread
            with self._cond:
                if not self._stop.is_set():  # else: told to stop, that is no failure
                    self._failure = exc
                    self._stop.set()
                self._cond.notify_all()

    def _fetch_slot(self, slot: _Slot) -> None:
        run = _WindowRun(self, slot)
        run.reserve()  # for the first page
        try:
            for record in self._fetch(slot.project.source, slot.window, self._stop, run):
                run.add(record)
        finally:
            run.release()
        if run.parts:
            first = self._replace(slot, run.parts)
            self._fetch_slot(first)
            return
        run.finish()

    def _replace(self, slot: _Slot, parts: list[Window]) -> _Slot:
        """Put the parts of a split window in its place; the caller goes on with the first."""
        with self._cond:
            project = slot.project
            index = project.slots.index(slot)
            new = [_Slot(w, project, started=i == 0) for i, w in enumerate(parts)]
            project.slots[index : index + 1] = new
            project.scan = min(project.scan, index)
            self._logger.info(
                "Window [%s, %s) holds more than a page: split into %d parts",
                slot.window.start_param,
                slot.window.end_param,
                len(parts),
            )
            self._cond.notify_all()
            return new[0]

    def _hand_over(
        self, slot: _Slot, records: list[t.Any], charge: int, done: bool, release: int = 0
    ) -> None:
        """Give records to the writer (and drop the reservation `release`, which their charge
        replaces); then, unless this is the head, wait for the budget."""
        if self.on_stage is not None:
            self.on_stage("hand_over")
        with self._cond:
            self.reserved -= release
            if records or charge:
                slot.batches.append((records, charge))
                self.held += charge
                self.peak_held = max(self.peak_held, self.held + self.reserved)
            slot.committed = True
            if done:
                slot.done = True
                slot.project.planner.finished(slot.window, slot.count, slot.buckets)
            self._cond.notify_all()
            # The head waits too while the writer has some of it to take; it goes on whatever
            # the budget once the writer has taken everything (so a huge page progresses).
            while (
                not done
                and self.held + self.reserved > self.budget
                and (slot.batches or slot is not self._head())
            ):
                if self._stop.is_set():
                    raise _Stopped
                self._cond.wait(1.0)
            if self._stop.is_set():
                raise _Stopped


class _WindowRun:
    """One worker's fetch of one window: batches records, charges bytes, decides a split."""

    def __init__(self, fetcher: Fetcher[t.Any, t.Any], slot: _Slot) -> None:
        self._fetcher = fetcher
        self._slot = slot
        self._window = slot.window
        self._batch: list[t.Any] = []
        self._charge = 0
        self._reader: Reader | None = None
        self._charged_of_reader = 0
        self._reads = 0  # times the current page's byte count grew: 1 for a body read whole
        self._page_charge = 0  # the current page's charge so far
        self._reservation = 0  # reserved for the page requested (`Fetcher._reserve`)
        self._pages = 0
        self._count = 0
        carried = slot.window.split_from_page
        self._carried = dict(carried) if carried is not None else None
        self._may_split = carried is None  # parts of a split window are not split again
        # when its conversations started, for a window a day's profile may be made of
        self._buckets = BucketCounter() if profiled(slot.window) else None
        self.parts: list[Window] = []

    # PageWatch, called by the client between records.
    def page_started(self, reader: Reader) -> None:
        if self._fetcher.on_stage is not None:
            self._fetcher.on_stage("page")
        self._reader = reader
        self._charged_of_reader = 0
        self._reads = 0
        self._page_charge = 0

    def reserve(self) -> None:
        self._reservation = self._fetcher._reserve(self._slot)

    def release(self) -> None:
        amount, self._reservation = self._reservation, 0
        self._fetcher._release(amount)

    def page_done(self, more: bool) -> bool:
        if self._fetcher.on_stage is not None:
            self._fetcher.on_stage("page_done")
        self._pages += 1
        self._take_charge()
        self._fetcher._page_read(self._page_charge, streamed=self._reads > 1)
        if self._pages == 1 and self._may_split and more:
            fetcher = self._fetcher
            with fetcher._cond:
                planner = self._slot.project.planner
                if planner.should_split(self._window):
                    page = [(*fetcher.identify(r), r) for r in self._batch]
                    self.parts = planner.split(self._window, page, planner.split_parts)
            if self.parts:
                return False  # stop paging: the parts are fetched instead
        self._may_split = False
        release, self._reservation = self._reservation, 0
        self._flush(done=False, release=release)  # the page's real charge replaces it
        if more:
            self.reserve()  # for the next page, before the client requests it
        return True

    def add(self, record: t.Any) -> None:
        if self._fetcher.on_stage is not None:
            self._fetcher.on_stage("record")
        if self._buckets is not None or self._carried is not None:
            conversation_id, started = self._fetcher.identify(record)
            if self._buckets is not None:
                self._buckets.add(started)
            if self._carried is not None:
                self._carried.pop(conversation_id, None)  # a fresher copy
        self._batch.append(record)
        self._count += 1
        self._take_charge()
        if self._may_split and self._reads > 1:
            # A streamed page: holding it whole for a split decision would defeat streaming.
            self._may_split = False
        if not self._may_split and self._charge >= _FLUSH_BYTES:
            self._flush(done=False)

    def finish(self) -> None:
        if self._carried:
            self._batch.extend(self._carried.values())
            self._count += len(self._carried)
            if self._buckets is not None:
                for record in self._carried.values():
                    self._buckets.add(self._fetcher.identify(record)[1])
        if self._buckets is not None:
            self._slot.buckets = self._buckets.starts()
        self._take_charge()
        self._slot.count = self._count
        self._flush(done=True)

    def _take_charge(self) -> None:
        reader = self._reader
        if reader is not None:
            read = reader.bytes_read
            if read > self._charged_of_reader:
                self._reads += 1
                charge = (read - self._charged_of_reader) * DECODED_BYTES_PER_JSON_BYTE
                self._charge += charge
                self._page_charge += charge
                self._charged_of_reader = read

    def _flush(self, done: bool, release: int = 0) -> None:
        batch, charge = self._batch, self._charge
        self._batch, self._charge = [], 0
        self._fetcher._hand_over(self._slot, batch, charge, done, release)


def _parts_at(slots: list[_Slot], index: int) -> list[_Slot]:
    """The parts of one split window, from `slots[index]` on (`_replace` put them together)."""
    parent = slots[index].window.parent
    end = index + 1
    while end < len(slots) and slots[end].window.parent is parent:
        end += 1
    return slots[index:end]


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
