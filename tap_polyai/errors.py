"""The one place that decides what an HTTP answer from PolyAI means.

Every response goes through `classify_response`: 2xx passes, 429 and 5xx are retriable, every
other status is fatal with a message a data engineer can act on. Messages name the project,
the HTTP status, the host and PolyAI's `error_code` / `error_id` (the correlation id support
asks for). They never carry the API key, and never the response body beyond PolyAI's own
error fields (a body can hold transcripts).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import socket
import ssl
import typing as t
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from tap_polyai.redaction import redact, shorten
from tap_polyai.settings import Project

MAX_RETRY_AFTER_SECONDS = 900.0
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class PolyAIError(Exception):
    """A failure the sync cannot recover from; its message is safe to log (redacted here)."""

    def __init__(self, message: str = "", *args: t.Any) -> None:
        super().__init__(redact(str(message)), *args)


class RequestRefusedError(PolyAIError):
    """PolyAI refused the request (a 4xx other than 429): the settings must change
    (key, region, project IDs, filters); retrying the same request cannot help."""


class DetailNotFoundError(PolyAIError):
    """A 404 for one conversation's detail. Fatal (its message names the host and
    `agents_api_url`) unless this project's detail endpoint has answered in this run: then the
    conversation was deleted after the list showed it, and the client skips it
    (`client.PolyAIClient.detail`). `host` and `envelope` (PolyAI's error fields) are kept for
    that warning."""

    def __init__(self, message: str, *, host: str, envelope: str) -> None:
        super().__init__(message)
        self.host = host
        self.envelope = envelope


class RetriesExhaustedError(PolyAIError):
    """Retriable failures (429, 5xx, network) outlasted 'max_retries': the service or the
    network, not the settings; a later run may well succeed."""


class RetriableError(Exception):
    """A failure worth another attempt; `retry_after` is PolyAI's requested wait, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(redact(message))
        self.retry_after = retry_after


def _envelope(response: requests.Response) -> dict[str, t.Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def describe_envelope(response: requests.Response) -> str:
    """PolyAI's error fields, for the end of an error message."""
    body = _envelope(response)
    error_id = body.get("error_id") or response.headers.get("X-PolyAI-Correlation-Id")
    parts = []
    if body.get("error_code"):
        parts.append(f"error_code={shorten(body['error_code'], 80)}")
    message = body.get("error_message") or body.get("error")
    if message:
        # The server's words, not ours: redacted and shortened (it may echo the request).
        parts.append(f"error_message={shorten(message)!r}")
    if error_id:
        parts.append(f"error_id={shorten(error_id, 80)}")
    return ", ".join(parts) if parts else "no PolyAI error envelope in the response"


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date.

    None when there is no usable value (missing, `nan`, `inf`, negative, garbage): the caller
    then falls back to its own backoff, so junk never means retrying back to back. Delta-seconds
    are digits (RFC 9110; a decimal fraction is accepted too): a sign or an exponent makes a
    value junk, so a phone number a hostile server echoes (`+14155550123`) is not read as 449
    years, i.e. the longest wait, 15 minutes, before every retry. A date in the past means now;
    any wait is capped at `MAX_RETRY_AFTER_SECONDS`.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = max((when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds(), 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def classify_response(response: requests.Response, project: Project) -> None:
    """Return on success; raise RetriableError or PolyAIError otherwise.

    A 3xx never gets here: `transport.KeyedSession` refuses redirects itself.
    """
    status = response.status_code
    if status < 400:
        return
    host = urlsplit(response.url).netloc
    where = f"Project {project.label}: HTTP {status} from {host}"
    if status == 429:
        raise RetriableError(
            f"{where} (rate limited)",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise RetriableError(f"{where} (server error; {describe_envelope(response)})")
    if status in (401, 403):
        hint = (
            "the API key was rejected"
            if status == 401
            else "the API key is not allowed to read this project"
        )
        raise RequestRefusedError(
            f"{where}: {hint}. v3 keys are scoped to one project and one region: check that "
            "'api_key' (or this entry's 'api_key' in 'projects') belongs to this project, and "
            f"that 'region' (or 'api_url') points at the region the project lives in. "
            f"{describe_envelope(response)}"
        )
    if status == 404:
        raise RequestRefusedError(
            f"{where}: account '{project.account_id}' / project '{project.project_id}' not "
            f"found on this host. Check 'account_id' (Workspace ID), 'project_id' (Agent ID) "
            f"and 'region'/'api_url'. {describe_envelope(response)}"
        )
    raise RequestRefusedError(f"{where}: request refused. {describe_envelope(response)}")


AGENTS_API_HINT = (
    "'conversation_details' reads PolyAI's Agents API, another host than the conversation "
    "list: check 'agents_api_url' (default from 'region': us-1 https://api.us.poly.ai, uk-1 "
    "https://api.uk.poly.ai, euw-1 https://api.eu.poly.ai) and 'agents_api_key' (or this "
    "entry's 'agents_api_key' in 'projects'; by default the project's 'api_key')"
)


def classify_detail_response(
    response: requests.Response, project: Project, conversation_id: str
) -> None:
    """As `classify_response`, for one conversation's detail (the Agents API).

    401/403/404 name the host and the settings of that host (`agents_api_url`,
    `agents_api_key`): the list may work with the same project while the detail host does not.
    A 404 is a `DetailNotFoundError`, which the client may turn into a skipped conversation.
    """
    status = response.status_code
    if status < 400 or status == 429 or status >= 500:
        classify_response(response, project)
        return
    host = urlsplit(response.url).netloc
    where = (
        f"Project {project.label}: HTTP {status} from {host} for the detail of conversation "
        f"{conversation_id}"
    )
    hints = {
        401: "the Agents API key was rejected",
        403: "the Agents API key is not allowed to read this agent (project)",
        404: (
            f"agent (project) '{project.project_id}' or the conversation was not found on this host"
        ),
    }
    hint = hints.get(status, "request refused")
    envelope = describe_envelope(response)
    message = f"{where}: {hint}. {AGENTS_API_HINT}. {envelope}"
    if status == 404:
        raise DetailNotFoundError(message, host=host, envelope=envelope)
    raise PolyAIError(message)


def _causes(exc: BaseException) -> t.Iterator[BaseException]:
    """`exc` and what it wraps: requests wraps urllib3, which wraps the socket error."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner += list(current.args)
        todo += [e for e in inner if isinstance(e, BaseException)]


def describe_transport_error(exc: BaseException) -> str:
    """What failed on the wire, naming the host and the cause: refused, DNS, TLS, timeout.

    A bare `ConnectionError while talking to the API` after a minute of retries leaves an
    operator guessing between a typo in `api_url`, a firewall and an outage; the cause tells.
    """
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or ""
    host = urlsplit(url).netloc or "the API host"
    causes = list(_causes(exc))

    def has(*kinds: type[BaseException]) -> BaseException | None:
        return next((c for c in causes if isinstance(c, kinds)), None)

    def detail(error: BaseException | None, *attrs: str) -> str:
        values = [getattr(error, a, None) for a in attrs]
        return next((str(v) for v in values if v), type(error).__name__)

    name = urlsplit(url).hostname or host
    # Most specific first: urllib3's NewConnectionError (DNS, refused) subclasses its
    # ConnectTimeoutError.
    rules: list[tuple[tuple[type[BaseException], ...], t.Callable[[BaseException], str]]] = [
        (
            (ssl.SSLError,),
            lambda e: f"TLS handshake with {host} failed ({detail(e, 'verify_message', 'reason')})",
        ),
        (
            (socket.gaierror, urllib3.exceptions.NameResolutionError),
            lambda e: f"DNS lookup of {name} failed ({detail(has(socket.gaierror), 'strerror')})",
        ),
        (
            (ConnectionRefusedError,),
            lambda e: f"connection to {host} refused (nothing listening there?)",
        ),
        (
            (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError),
            lambda e: (
                f"timed out connecting to {host} (connect timeout; 'request_timeout_seconds')"
            ),
        ),
        (
            (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError),
            lambda e: f"{host} sent nothing for too long (read timeout; 'request_timeout_seconds')",
        ),
        (
            (ConnectionResetError, ConnectionAbortedError, BrokenPipeError),
            lambda e: f"connection to {host} reset",
        ),
        (
            (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError),
            lambda e: f"the response from {host} was cut short",
        ),
        ((OSError,), lambda e: f"cannot connect to {host} ({detail(e, 'strerror')})"),
    ]
    for kinds, describe in rules:
        if (error := has(*kinds)) is not None:
            return describe(error)
    return f"{type(exc).__name__} while talking to {host}"
