"""`conversation_details`: one Agents API request per finished conversation, while records flow.

The list endpoint has no summary, PolyScore, tags, language or direction; PolyAI's Agents API
serves them per conversation (`GET /v1/agents/{agentId}/conversations/{id}`, on
`api.{us|uk|eu}.poly.ai`; `agentId` is the project id, the Agent ID). This module holds what the
stream needs beyond the list's machinery:

- **When a detail is read** (`SettleRule`): only for a conversation the list shows finished,
  and only once it finished at least `details_settle_minutes` ago — PolyAI computes the summary
  and PolyScore after the call ends, and a detail loaded too early would stay incomplete for
  good. "Ago" is by the API's clock (the detail response's `Date` header), so a tap host with
  a skewed clock cannot load early. Before the request, the list's `started_at +
  total_duration` already tells most conversations that cannot have settled: no request is
  spent on them. A conversation that has not settled holds the bookmark at its `started_at`,
  exactly like an in-progress call (`windows.BookmarkHold`, same `in_progress_hold_hours` cap),
  so the next run reads it, and its detail, again. Past the cap, the detail is loaded as it is.
- **Overlap** (`DetailStage`): the writer hands each finished conversation to worker threads
  as it writes it; each worker makes one request through the client's shared gate, adaptive
  pool and retry policy (`client.PolyAIClient.detail`). A window's checkpoint is written only
  once every detail of it (and of every window before it) is written, while later windows'
  conversations keep flowing. So a kill -9 loses no detail: the bookmark never passes a
  conversation whose detail was not written.
- **Records** (`extract`): camelCase to snake_case, fields the list already has left out; the
  result goes through the same drift handling as conversations (`drift.SchemaDrift`).
- **A deleted conversation**: a 404 for one conversation's detail, once the project's detail
  endpoint has answered 2xx in this run, means it was deleted after the list showed it. The
  client returns a `Detail` with `not_found` set; the stream logs a warning (project,
  conversation, status, PolyAI's error_code/error_id), writes no row, does not hold the bookmark
  and goes on; the end-of-stream line counts it. Before any 2xx for that project, a 404 is the
  named error (host, `agents_api_url`): the host or the agent may be wrong, and skipping every
  conversation would load nothing in silence.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import typing as t
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

from tap_polyai.client import Detail
from tap_polyai.schema import CONVERSATION_DETAIL_PROPERTIES
from tap_polyai.settings import Project, parse_datetime

# Fields of ConversationDetailResponse the list endpoint already delivers (in `conversations`).
REPEATED = frozenset(
    {
        "channel",
        "fromNumber",
        "toNumber",
        "variantId",
        "clientEnv",
        "totalDuration",
        "polyaiDuration",
        "inProgress",
        "handoff",
        "handoffDestination",
        "handoffReason",
        "turns",
        "metrics",
    }
)
DATE_TIME_FIELDS = ("started_at", "created_at", "finished_at")
MAX_QUEUED = 1000  # details requested but not yet answered; the writer waits beyond this

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """`polyScore` -> `poly_score`, `functionEvents` -> `function_events`."""
    return _CAMEL.sub("_", name).lower()


def extract(body: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The detail's own fields, snake_case (not yet checked against the schema)."""
    return {snake_case(k): v for k, v in body.items() if k not in REPEATED}


def _parsed(value: t.Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


class SettleRule:
    """Whether a conversation's detail is final enough to load (module docstring)."""

    def __init__(self, settle: dt.timedelta, sync_started_at: dt.datetime) -> None:
        self.settle = settle
        self._now = sync_started_at

    def worth_reading(self, conversation: t.Mapping[str, t.Any]) -> bool:
        """Before any request, from the list's record: finished, and maybe settled."""
        if conversation.get("in_progress") is not False:
            return False
        started = _parsed(conversation.get("started_at"))
        if started is None:
            return True  # cannot tell: the detail's own finishedAt decides
        duration = conversation.get("total_duration")
        seconds = duration if isinstance(duration, (int, float)) and duration > 0 else 0
        return started + dt.timedelta(seconds=seconds) + self.settle <= self._now

    def settled(self, detail: Detail) -> bool:
        """From the detail itself: finished, at least `settle` before the API's own clock."""
        body = detail.body
        finished = _parsed(body.get("finishedAt"))
        if finished is None or body.get("inProgress") is True:
            return False
        now = detail.server_time or self._now
        return finished + self.settle <= now


Marker = t.TypeVar("Marker")  # what the writer checkpoints once a window's details are written
Conversation = t.Mapping[str, t.Any]
FetchDetail = t.Callable[[Project, str, threading.Event], Detail]


class DetailStage(t.Generic[Marker]):
    """Detail requests in worker threads; results back to the writer per window, in order.

    The writer calls `submit` per finished conversation, `end_window(marker)` after each
    window, and takes `ready(block)`: the windows whose details have all arrived, oldest first,
    each with its `(conversation, detail)` pairs. A failed request (retries spent, 401) is
    raised there, in the writer's thread, before that window is checkpointed.
    """

    def __init__(self, fetch: FetchDetail, *, workers: int) -> None:
        self._fetch = fetch
        self._executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="polyai-detail")
        self._stop = threading.Event()
        self._room = threading.BoundedSemaphore(MAX_QUEUED)
        self._current: list[tuple[Conversation, Future[Detail]]] = []
        self._windows: deque[tuple[Marker, list[tuple[Conversation, Future[Detail]]]]] = deque()
        self._failure: BaseException | None = None
        self.requested = 0

    def submit(self, project: Project, conversation: Conversation) -> None:
        self._room.acquire()
        try:
            future = self._executor.submit(self._fetch, project, conversation["id"], self._stop)
        except BaseException:
            self._room.release()
            raise
        future.add_done_callback(self._done)
        self._current.append((conversation, future))
        self.requested += 1

    def _done(self, future: Future[Detail]) -> None:
        self._room.release()
        if not future.cancelled() and future.exception() is not None and self._failure is None:
            self._failure = future.exception()
            self._stop.set()  # one fatal answer is enough: the others would fail alike

    def end_window(self, marker: Marker) -> None:
        self._windows.append((marker, self._current))
        self._current = []

    def ready(self, *, block: bool) -> t.Iterator[tuple[Marker, list[tuple[Conversation, Detail]]]]:
        """Windows whose details are all in (with `block`: every window, waiting for each)."""
        while self._windows:
            marker, pending = self._windows[0]
            futures = [future for _, future in pending]
            if not all(future.done() for future in futures):
                if self._failure is not None:
                    raise self._failure
                if not block:
                    return
                wait(futures)
            for future in futures:
                error = future.exception()
                if error is not None:
                    raise self._failure or error
            self._windows.popleft()
            yield marker, [(conversation, future.result()) for conversation, future in pending]

    def close(self) -> None:
        """Start no new request; wait for the ones under way (they stop at their next try)."""
        self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)


def record_of(extracted: t.Mapping[str, t.Any], conversation: Conversation) -> dict[str, t.Any]:
    """The row before drift handling: keys from the list where the detail lacks them."""
    record = dict(extracted)
    record["conversation_id"] = conversation["id"]
    for key in ("account_id", "project_id", "started_at"):
        if not record.get(key):
            record[key] = conversation.get(key)
    return record


def blank_dates_to_null(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """A date-time sent as "" is no date-time: null, as for turn timestamps."""
    for key in DATE_TIME_FIELDS:
        if record.get(key) == "":
            record[key] = None
    return record


assert set(CONVERSATION_DETAIL_PROPERTIES) >= {"account_id", "project_id", *DATE_TIME_FIELDS}
