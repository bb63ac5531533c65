"""HTTP to PolyAI: requests, pagination within one window, retries and rate limiting.

Why not the SDK's RESTStream: it parses every page twice, ignores `Retry-After`, cannot stream
a page, and fetches one request at a time. This client keeps the SDK's shape (one class owns
requests and the retry policy; `errors.classify_response` owns what a status means) and adds
what PolyAI needs:
- a `RateGate` shared by all workers, so a 429's `Retry-After` pauses every request, not one;
- exponential backoff with jitter for 5xx, resets, timeouts and broken bodies, bounded by
  `max_retries`;
- a page that fails halfway is fetched again from the same cursor, and conversations already
  handed out from it are skipped, so a retry neither loses nor repeats records;
- an `AdaptivePool` (pool.py) shared by all workers bounds the requests waiting on the API at
  once: a 429 halves it, a run of successes grows it back.
The same request path (`_send`, `_wait_to_retry`) serves the second host, the Agents API's
conversation detail (`detail`, for `conversation_details`): one gate, one pool, one policy.
Each request is one `http_request_duration` METRIC line, as the SDK's REST streams log it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import threading
import time
import typing as t
from urllib.parse import quote

import msgspec
import requests
from singer_sdk import metrics

from tap_polyai.decoding import ConversationPayload
from tap_polyai.errors import (
    DetailNotFoundError,
    PolyAIError,
    RetriableError,
    RetriesExhaustedError,
    classify_detail_response,
    classify_response,
    describe_transport_error,
)
from tap_polyai.pages import BrokenBodyError, NextPage, PageReader
from tap_polyai.pool import AdaptivePool
from tap_polyai.settings import Project, Settings
from tap_polyai.transport import KeyedSession, KeyGuardRefused
from tap_polyai.windows import Window

MAX_BACKOFF_SECONDS = 60.0
AGENTS_URL_SETTING = "'agents_api_url' (default from 'region', or 'api_url')"
# Paging bounds of one window (docs/security.md): an API whose paging loops must not be
# followed for as long as it answers.
MAX_FRUITLESS_PAGES = 3  # pages in a row that bring no conversation new to the window
MAX_CONVERSATIONS_PER_SECOND = 50  # far above any project's rate: 4.3 million a day
SPARE_PAGES = 10
# The `endpoint` tag of each request's METRIC line: the path template, as the SDK's streams
# tag it (never the ids or the query, which the `context` tag and the settings already say).
LIST_ENDPOINT = "/{api_version}/{account_id}/{project_id}/conversations"
DETAIL_ENDPOINT = "/v1/agents/{project_id}/conversations/{conversation_id}"


def max_pages_per_window(window: Window, page_size: int) -> int:
    """The most pages a window may return: what `MAX_CONVERSATIONS_PER_SECOND` would fill,
    plus `SPARE_PAGES`. More means the API's paging does not end."""
    seconds = max((window.end - window.start).total_seconds(), 0.0)
    return SPARE_PAGES + math.ceil(seconds * MAX_CONVERSATIONS_PER_SECOND / max(page_size, 1))


# Transport failures worth retrying. requests wraps most urllib3 errors; a body cut short
# while streaming surfaces as ChunkedEncodingError or ConnectionError.
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    BrokenBodyError,
)


class Cancelled(Exception):
    """The sync is stopping; this worker should not start another request."""


class RateGate:
    """A pause every worker honours: set by a 429's Retry-After, read before each request."""

    def __init__(self, sleep: t.Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._sleep = sleep

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self, stop: threading.Event | None = None) -> None:
        """Until the pause is over, or at once when `stop` is set (a signal, a failure)."""
        while (remaining := self._until - time.monotonic()) > 0:
            if stop is None:
                self._sleep(remaining)
            elif stop.wait(remaining):
                return


class PageWatch(t.Protocol):
    """Told about each page of a window (fetcher.py: memory budget, splitting a window)."""

    def page_started(self, reader: PageReader) -> None: ...

    def page_done(self, more: bool) -> bool:
        """After a page; False stops paging this window."""
        ...


class PolyAIClient:
    """Fetches every conversation of one window of one project, page by page."""

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        self._settings = settings
        self._logger = logger
        self._local = threading.local()
        self.gate = RateGate()
        self.pool = AdaptivePool(settings.max_concurrency, logger)
        # Projects whose detail endpoint answered 2xx in this run: host and key are right, so a
        # 404 there is one deleted conversation, not a wrong `agents_api_url` (`detail`).
        self._details_answered: set[tuple[str, str]] = set()
        self._details_lock = threading.Lock()

    def _session(self, agents: bool = False) -> KeyedSession:
        # requests.Session is not safe to share between threads: one per worker thread and
        # host. Each only talks to its configured origin and follows no redirect
        # (transport.py): the list's (`api_url`/`region`), the Agents API's (`agents_api_url`).
        sessions: dict[bool, KeyedSession] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(agents)
        if session is None:
            s = self._settings
            session = sessions[agents] = (
                KeyedSession(s.agents_base_url, AGENTS_URL_SETTING)
                if agents
                else KeyedSession(s.base_url)
            )
        return session

    def url(self, project: Project) -> str:
        s = self._settings
        return (
            f"{s.base_url}/{s.api_version}/{project.account_id}/{project.project_id}/conversations"
        )

    def window_params(self, window: Window) -> dict[str, t.Any]:
        """Every filter of one window; identical on each of its pages, as the API requires."""
        s = self._settings
        params: dict[str, t.Any] = {
            "start_time": window.start_param,
            "end_time": window.end_param,
            "limit": s.page_size,
            "client_env": s.client_env,
            "include_latency": "true" if s.include_latency else "false",
        }
        if s.channels:
            params["channel"] = list(s.channels)
        if s.variant_id:
            params["variant_id"] = s.variant_id
        if s.variant_name:
            params["variant_name"] = s.variant_name
        return params

    def conversations(
        self,
        project: Project,
        window: Window,
        stop: threading.Event | None = None,
        watch: PageWatch | None = None,
    ) -> t.Iterator[ConversationPayload]:
        """Yield the conversations of `window`, each page read once, in API order.

        Once `stop` is set (another window failed, or the consumer left) no new request starts.
        """
        params = self.window_params(window)
        page: NextPage | None = None
        seen_pages: set[NextPage] = set()
        seen: set[str] = set()  # conversation ids handed out from this window
        limit = max_pages_per_window(window, self._settings.page_size)
        pages = fruitless = 0
        while True:
            before = len(seen)
            reader = yield from self._page(
                project, {**params, **(page.params() if page else {})}, stop, watch, seen
            )
            pages += 1
            page = reader.next_page
            if watch is not None and not watch.page_done(page is not None):
                return
            if page is None:
                return
            fruitless = 0 if len(seen) > before else fruitless + 1
            where = f"Project {project.label}: window [{window.start_param}, {window.end_param})"
            if fruitless >= MAX_FRUITLESS_PAGES:
                msg = (
                    f"{where}: {fruitless} pages in a row held only conversations already seen "
                    "in this window, and the API still says more follow: its paging loops. "
                    "Stopping; no checkpoint is written past this window."
                )
                raise PolyAIError(msg)
            if pages >= limit:
                msg = (
                    f"{where}: more pages than a window this long can hold ({limit} at "
                    f"'page_size' = {self._settings.page_size}), and the API still says more "
                    "follow. Stopping; no checkpoint is written past this window."
                )
                raise PolyAIError(msg)
            if page in seen_pages:
                # A cursor that comes back would page forever; stop loudly instead.
                msg = f"Project {project.label}: the API repeated a page token; stopping."
                raise PolyAIError(msg)
            seen_pages.add(page)

    def _page(
        self,
        project: Project,
        params: dict[str, t.Any],
        stop: threading.Event | None,
        watch: PageWatch | None,
        handed_out: set[str],
    ) -> t.Generator[ConversationPayload, None, PageReader]:
        """One page, retried from its start; conversations in `handed_out` are skipped (a retry
        of a page that broke halfway, or a conversation an earlier page of the window had)."""
        attempt = 0
        while True:
            try:
                response = self._send(
                    self.url(project),
                    params,
                    project.api_key,
                    stop,
                    metric=("conversations", LIST_ENDPOINT, project),
                )
                with response:
                    classify_response(response, project)
                    self.pool.succeeded()
                    reader = PageReader(response)
                    if watch is not None:
                        watch.page_started(reader)
                    for conversation in reader.conversations():
                        conversation_id = conversation.id
                        if conversation_id in handed_out:
                            continue
                        handed_out.add(conversation_id)
                        yield conversation
                    return reader
            except KeyGuardRefused as exc:
                raise PolyAIError(f"Project {project.label}: {exc}") from None
            except (RetriableError, *_TRANSIENT) as exc:
                attempt += 1
                self._wait_to_retry(exc, attempt, project, stop)

    def detail_url(self, project: Project, conversation_id: str) -> str:
        """The Agents API's conversation detail; its `agentId` is the project id (Agent ID)."""
        agent, conversation = (quote(v, safe="") for v in (project.project_id, conversation_id))
        return f"{self._settings.agents_base_url}/v1/agents/{agent}/conversations/{conversation}"

    def detail(
        self, project: Project, conversation_id: str, stop: threading.Event | None = None
    ) -> Detail:
        """One conversation's detail (`conversation_details`): one request, retried as a page.

        It shares the gate, the pool and the retry policy with the list pages, so a 429 on
        either host slows both: the key and the rate limit belong to the same account.

        A 404 is fatal (`DetailNotFoundError`, naming the host and `agents_api_url`) until this
        project's detail endpoint has answered 2xx in this run. After that, host and key are
        known to be right, and a 404 means the conversation was deleted after the list showed
        it: the result is a `Detail` with `not_found` set (the stream warns and writes no row
        for it) and the sync goes on. Not retried: a deleted conversation stays deleted.
        """
        url = self.detail_url(project, conversation_id)
        key = (project.account_id, project.project_id)
        attempt = 0
        while True:
            try:
                response = self._send(
                    url,
                    None,
                    project.agents_api_key,
                    stop,
                    metric=("conversation_details", DETAIL_ENDPOINT, project),
                    stream=False,
                    agents=True,
                )
                with response:
                    try:
                        classify_detail_response(response, project, conversation_id)
                    except DetailNotFoundError as exc:
                        with self._details_lock:
                            answered = key in self._details_answered
                        if not answered:
                            raise
                        self.pool.succeeded()  # an answer, not a sign of overload
                        reason = f"HTTP 404 from {exc.host} ({exc.envelope})"
                        return Detail({}, _server_date(response), not_found=reason)
                    self.pool.succeeded()
                    with self._details_lock:
                        self._details_answered.add(key)
                    try:
                        body = msgspec.json.decode(response.content)
                    except msgspec.DecodeError:
                        msg = f"conversation {conversation_id}: the detail is not JSON"
                        raise BrokenBodyError(msg) from None
                    if not isinstance(body, dict):
                        msg = f"conversation {conversation_id}: the detail is not a JSON object"
                        raise BrokenBodyError(msg)
                    return Detail(body, _server_date(response))
            except KeyGuardRefused as exc:
                raise PolyAIError(f"Project {project.label}: {exc}") from None
            except (RetriableError, *_TRANSIENT) as exc:
                attempt += 1
                self._wait_to_retry(exc, attempt, project, stop)

    def _send(
        self,
        url: str,
        params: dict[str, t.Any] | None,
        key: str,
        stop: threading.Event | None,
        *,
        metric: tuple[str, str, Project],
        stream: bool = True,
        agents: bool = False,
    ) -> requests.Response:
        """One GET through the shared gate and pool; the slot is held until the headers are in.

        `metric` (stream, endpoint, project) tags its `http_request_duration` METRIC line: the
        time to the response's headers (requests' `elapsed`, as the SDK's REST streams), its
        status, or `failed` without one when no response came (a timeout, a reset).
        """
        self.gate.wait(stop)
        if stop is not None and stop.is_set():
            raise Cancelled
        with self.pool.slot(stop):
            if stop is not None and stop.is_set():
                raise Cancelled
            started = time.monotonic()
            try:
                response = self._session(agents).get(
                    url,
                    params=params,
                    headers={"x-api-key": key, "Accept": "application/json"},
                    timeout=self._settings.request_timeout_seconds,
                    stream=stream,
                )
            except requests.RequestException:
                _log_request(metric, time.monotonic() - started, None)
                raise
            _log_request(metric, response.elapsed.total_seconds(), response.status_code)
            return response

    def _wait_to_retry(
        self, exc: BaseException, attempt: int, project: Project, stop: threading.Event | None
    ) -> None:
        """After failed attempt number `attempt`: give up (PolyAIError) or wait for the next.

        Every wait ends at once when `stop` is set (a signal, a failure elsewhere).
        """
        reason = _reason(exc, project)
        if attempt > self._settings.max_retries:
            msg = (
                f"Project {project.label}: giving up after {attempt} attempts "
                f"(setting 'max_retries' = {self._settings.max_retries}); last: {reason}"
            )
            raise RetriesExhaustedError(msg) from None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            self.gate.pause(retry_after)
            self.pool.throttled()
            delay = retry_after
        else:
            delay = self._backoff(attempt)
        self._logger.warning(
            "%s; retry %d/%d in %.1f s", reason, attempt, self._settings.max_retries, delay
        )
        if retry_after is None:  # (a Retry-After is waited in `gate.wait` by every worker)
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise Cancelled from None

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter: base * 2^(attempt-1), capped, times 0.5..1."""
        ceiling = min(MAX_BACKOFF_SECONDS, self._settings.retry_base_seconds * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


_METRICS = metrics.get_metrics_logger()


def _log_request(metric: tuple[str, str, Project], seconds: float, status: int | None) -> None:
    """One request's `http_request_duration` METRIC line (`PolyAIClient._send`)."""
    if not _METRICS.isEnabledFor(logging.INFO):
        return
    stream, endpoint, project = metric
    tags: dict[str, t.Any] = {metrics.Tag.STREAM: stream, metrics.Tag.ENDPOINT: endpoint}
    if status is not None:
        tags[metrics.Tag.HTTP_STATUS_CODE] = status
    ok = status is not None and status < 400
    tags[metrics.Tag.STATUS] = metrics.Status.SUCCEEDED if ok else metrics.Status.FAILED
    tags[metrics.Tag.CONTEXT] = {"account_id": project.account_id, "project_id": project.project_id}
    metrics.log(
        _METRICS, metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, seconds, tags)
    )


class Detail(t.NamedTuple):
    """A conversation's detail as the Agents API sent it, and the API's clock (`Date`).

    `not_found`: the API answered 404 for this conversation after it had answered others of
    the project (deleted since the list showed it): why, for the warning; `body` is empty.
    """

    body: dict[str, t.Any]
    server_time: dt.datetime | None
    not_found: str | None = None


def _server_date(response: requests.Response) -> dt.datetime | None:
    """The response's `Date` header: what time it is for the API (None if absent or bad)."""
    try:
        value = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _reason(exc: BaseException, project: Project) -> str:
    """A short cause for logs: host and cause (refused, DNS, TLS, timeout), never key or body."""
    if isinstance(exc, RetriableError):
        return str(exc)
    if isinstance(exc, BrokenBodyError):
        return f"Project {project.label}: broken response body: {exc}"
    return f"Project {project.label}: {describe_transport_error(exc)}"
