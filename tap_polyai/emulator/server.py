"""The HTTP server and the :class:`Emulator` facade that owns data, clock, faults and logs.

Why a real socket server (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive) instead of
mocking ``requests``: the tap's retry, timeout, chunked-decoding and connection-reuse code
paths only run against real bytes on a real connection. Responses are written from the
pre-encoded bytes kept by :mod:`.store`; bodies over ``chunked_threshold`` are streamed with
``Transfer-Encoding: chunked`` without ever being joined in memory.

Admin endpoints under ``/_emulator/`` (no auth, never logged, never faulted) drive the same
controls over HTTP when the emulator runs as a separate process (see :mod:`.cli`). They are for
local tests only: anyone who can reach them can rewrite the data, the clock and the faults, so
the emulator binds 127.0.0.1 by default and must not be exposed on a network.
"""

from __future__ import annotations

import contextlib
import email.utils
import gc
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import msgspec

from .clock import Clock
from .data import StoredConversation, format_ts, parse_ts
from .details import SUMMARY_DELAY, detail_view
from .faults import Fault, Faults, RetryAfter
from .store import ApiError, Page, ProjectStore, parse_query

__all__ = ["Emulator"]

UTC = timezone.utc
ProjectKey = tuple[str, str]

_API_PATH = re.compile(r"^/(v1|v2|v3)/([^/]+)/([^/]+)/conversations/?$")
# The Agents API's conversation detail; agentId is the project id (Agent ID).
_DETAIL_PATH = re.compile(r"^/v1/agents/([^/]+)/conversations/([^/]+)/?$")
_CHUNK = 64 * 1024
_SERVER_ERROR_CODES = {
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
_GARBAGE = b'{"conversations": [{"id": "CA\x00<html><body>502 Bad Gateway</body></html>'


def _retry_after_header(value: RetryAfter) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = datetime.now(UTC) + value
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return email.utils.format_datetime(aware.astimezone(UTC), usegmt=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._conns.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are routine (fault tests); stay quiet about them."""
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Unblock keep-alive handler threads so stop() leaves nothing behind."""
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # stall every response by ~40 ms on keep-alive connections.
    disable_nagle_algorithm = True
    server_version = "polyai-emulator"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: per-request stderr lines would swamp benchmark output."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- plumbing ------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(
        self, status: int, payload: Any, corr: str, extra: dict[str, str] | None = None
    ) -> None:
        body = msgspec.json.encode(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-PolyAI-Correlation-Id", corr)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(
        self, status: int, code: str, message: str, corr: str, extra: dict[str, str] | None = None
    ) -> None:
        envelope = {
            "success": False,
            "error": message,
            "error_id": corr,
            "error_code": code,
            "error_message": message,
            "data": None,
        }
        self._send_json(status, envelope, corr, extra)

    def _dispatch(self, method: str) -> None:
        corr = str(uuid.uuid4())
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        try:
            body = self._read_body()
            if url.path.startswith("/_emulator/"):
                self._admin(method, url.path, params, body, corr)
                return
            self._api(method, url.path, params, corr)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- the API -------------------------------------------------------------------------------

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header from the emulator's clock: the API's "now" (clients may use it)."""
        if timestamp is None:
            timestamp = self.server.emulator.clock.now().timestamp()
        return email.utils.formatdate(timestamp, usegmt=True)

    def _api(self, method: str, path: str, params: dict[str, list[str]], corr: str) -> None:
        emu = self.server.emulator
        detail = _DETAIL_PATH.match(path)
        if detail is not None:
            self._detail(method, path, detail.group(1), detail.group(2), corr)
            return
        match = _API_PATH.match(path)
        version, account_id, project_id = match.groups() if match else (None, None, None)
        entry: dict[str, Any] = {
            "time": time.monotonic(),
            "endpoint": "conversations",
            "method": method,
            "path": path,
            "version": version,
            "account_id": account_id,
            "project_id": project_id,
            "params": params,
            "status": None,
            "fault": None,
            "returned": 0,
        }
        emu._log(entry)
        try:
            if match is None or version is None or account_id is None or project_id is None:
                raise ApiError(404, "NOT_FOUND", f"No such endpoint: {path}")
            if method != "GET":
                raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here.")
            if emu.faults.latency_ms > 0:
                time.sleep(emu.faults.latency_ms / 1000.0)
            fault = emu.faults.take(project_id)
            truncate: Fault | None = None
            if fault is not None:
                entry["fault"] = fault.kind
                if self._apply_fault(fault, corr, entry):
                    return
                if fault.kind == "truncate":
                    truncate = fault
            emu._authorize(account_id, project_id, self.headers.get("x-api-key"))
            query = parse_query(params, account_id, project_id)
            store = emu._stores[(account_id, project_id)]
            cursor_style = emu._pagination_style(version, account_id, project_id) == "cursor"
            page = store.page(query, emu.clock.now(), cursor_style=cursor_style)
            entry["returned"] = len(page.ids)
            emu._served(page.ids)
            entry["status"] = 200
            self._send_page(page, corr, truncate)
        except ApiError as exc:
            entry["status"] = exc.status
            self._send_error(exc.status, exc.code, exc.message, corr)

    def _detail(
        self, method: str, path: str, agent_id: str, conversation_id: str, corr: str
    ) -> None:
        """One conversation's detail: same keys, faults, visibility and clock as the list."""
        emu = self.server.emulator
        entry: dict[str, Any] = {
            "time": time.monotonic(),
            "endpoint": "details",
            "method": method,
            "path": path,
            "version": "v1",
            "account_id": None,
            "project_id": agent_id,
            "conversation_id": conversation_id,
            "params": {},
            "status": None,
            "fault": None,
            "returned": 0,
        }
        emu._log(entry)
        try:
            if method != "GET":
                raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here.")
            if emu.faults.latency_ms > 0:
                time.sleep(emu.faults.latency_ms / 1000.0)
            fault = emu.faults.take(agent_id, "details", conversation_id)
            if fault is not None:
                entry["fault"] = fault.kind
                if fault.kind == "truncate":
                    fault = Fault("reset")  # a detail is small: cut short is a reset
                if self._apply_fault(fault, corr, entry):
                    return
            account_id = emu._authorize_agent(agent_id, self.headers.get("x-api-key"))
            entry["account_id"] = account_id
            now = emu.clock.now()
            conv = emu._stores[(account_id, agent_id)].get(conversation_id)
            if conv is None or not conv.is_visible(now):
                raise ApiError(404, "CONVERSATIONS_NOT_FOUND", "Conversation ID does not exist.")
            payload = detail_view(
                conv, now, summary_delay=emu.summary_delay, drift=emu.detail_drift
            )
            entry["returned"] = 1
            entry["status"] = 200
            self._send_json(200, payload, corr)
        except ApiError as exc:
            entry["status"] = exc.status
            self._send_error(exc.status, exc.code, exc.message, corr)

    def _apply_fault(self, fault: Fault, corr: str, entry: dict[str, Any]) -> bool:
        """Act on a fault; True when the response has been dealt with entirely."""
        if fault.kind == "latency":
            time.sleep(max(0.0, fault.seconds))
        elif fault.kind == "rate_limit":
            entry["status"] = 429
            header = _retry_after_header(fault.retry_after)
            self._send_error(
                429,
                "RATE_LIMITED",
                "Too many requests; retry later.",
                corr,
                {"Retry-After": header} if header is not None else None,
            )
        elif fault.kind == "server_error":
            entry["status"] = fault.status
            code = _SERVER_ERROR_CODES.get(fault.status, "INTERNAL_SERVER_ERROR")
            self._send_error(fault.status, code, "Injected server error.", corr)
        elif fault.kind == "invalid_json":
            entry["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-PolyAI-Correlation-Id", corr)
            self.send_header("Content-Length", str(len(_GARBAGE)))
            self.end_headers()
            self.wfile.write(_GARBAGE)
        elif fault.kind == "deleted":
            entry["status"] = 404
            self._send_error(
                404, "CONVERSATIONS_NOT_FOUND", "Conversation ID does not exist.", corr
            )
        elif fault.kind == "reset":
            # SO_LINGER 0: closing sends RST instead of a graceful FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.close()
        return fault.kind not in ("latency", "truncate")

    def _send_page(self, page: Page, corr: str, truncate: Fault | None) -> None:
        emu = self.server.emulator
        if emu.pretty:
            page = page.pretty()
        size = page.size
        chunked = emu.chunked or size > emu.chunked_threshold
        if truncate is not None and truncate.chunked is not None:
            chunked = truncate.chunked
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-PolyAI-Correlation-Id", corr)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunked(page.pieces(), size // 2 if truncate else None)
        else:
            self.send_header("Content-Length", str(size))
            self.end_headers()
            body = page.body()
            self.wfile.write(body if truncate is None else body[: len(body) // 2])
        if truncate is not None:
            self.close_connection = True

    def _write_chunked(self, pieces: Iterator[bytes], stop_after: int | None) -> None:
        """Write the body in ~64 KiB chunks; with ``stop_after``, stop mid-stream (no end)."""
        buf: list[bytes] = []
        buffered = 0
        sent = 0
        for piece in pieces:
            buf.append(piece)
            buffered += len(piece)
            if buffered >= _CHUNK or (stop_after is not None and sent + buffered >= stop_after):
                self.wfile.write(b"%X\r\n%s\r\n" % (buffered, b"".join(buf)))
                sent += buffered
                buf, buffered = [], 0
                if stop_after is not None and sent >= stop_after:
                    return
        if buffered:
            self.wfile.write(b"%X\r\n%s\r\n" % (buffered, b"".join(buf)))
        if stop_after is None:
            self.wfile.write(b"0\r\n\r\n")

    # -- admin ---------------------------------------------------------------------------------

    def _admin(
        self, method: str, path: str, params: dict[str, list[str]], body: bytes, corr: str
    ) -> None:
        route = path[len("/_emulator/") :].rstrip("/")
        try:
            payload: Any = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            payload = None
        try:
            if not isinstance(payload, dict):
                raise ApiError(400, "BAD_REQUEST", "Body must be a JSON object.")
            action = self._ADMIN_ROUTES.get((method, route))
            if action is None:
                raise ApiError(404, "NOT_FOUND", f"No such admin endpoint: {method} {path}")
            result = action(self, params, payload)
        except ApiError as exc:
            self._send_error(exc.status, exc.code, exc.message, corr)
            return
        self._send_json(200, result, corr)

    def _admin_health(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        emu = self.server.emulator
        return {
            "ok": True,
            "now": format_ts(emu.clock.now()),
            "projects": [f"{a}/{p}" for a, p in emu._stores],
        }

    def _admin_stats(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        return self.server.emulator.stats()

    def _admin_requests(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        return {"requests": self.server.emulator._requests_snapshot()}

    def _admin_reset(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        self.server.emulator.reset_stats()
        return {"ok": True}

    def _admin_truth(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        emu = self.server.emulator
        account = (params.get("account_id") or [""])[-1]
        project = (params.get("project_id") or [""])[-1]
        store = emu._stores.get((account, project))
        if store is None:
            raise ApiError(404, "PROJECT_NOT_FOUND", "Unknown account_id/project_id.")
        now = emu.clock.now()
        return {"now": format_ts(now), "conversations": store.visible_summary(now)}

    def _admin_details(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        """Every visible conversation's detail as the Agents API answers it now (the truth the
        demo checks PolyScore, tags, language and direction against)."""
        emu = self.server.emulator
        account = (params.get("account_id") or [""])[-1]
        project = (params.get("project_id") or [""])[-1]
        if (account, project) not in emu._stores:
            raise ApiError(404, "PROJECT_NOT_FOUND", "Unknown account_id/project_id.")
        return {"now": format_ts(emu.clock.now()), "details": emu.details(account, project)}

    def _admin_clear_faults(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        self.server.emulator.faults.clear()
        return {"ok": True}

    def _admin_clock(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        clock = self.server.emulator.clock
        try:
            if "now" in payload:
                clock.set(parse_ts(str(payload["now"])))
            elif "advance_seconds" in payload:
                clock.advance(timedelta(seconds=float(payload["advance_seconds"])))
            else:
                raise ApiError(400, "BAD_REQUEST", "Give 'now' or 'advance_seconds'.")
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "BAD_REQUEST", f"Invalid clock value: {exc}") from None
        return {"now": format_ts(clock.now())}

    def _admin_fault(self, params: dict[str, list[str]], payload: dict[str, Any]) -> Any:
        faults = self.server.emulator.faults
        if "latency_ms" in payload and "kind" not in payload:
            faults.latency_ms = int(payload["latency_ms"])
            return {"latency_ms": faults.latency_ms}
        retry_after: RetryAfter = payload.get("retry_after", "1")
        if "retry_after_date_in" in payload:
            retry_after = timedelta(seconds=float(payload["retry_after_date_in"]))
        try:
            faults.add(
                str(payload.get("kind")),
                times=int(payload.get("times", 1)),
                project_id=payload.get("project_id"),
                status=int(payload.get("status", 500)),
                retry_after=retry_after,
                seconds=float(payload.get("seconds", 1.0)),
                chunked=payload.get("chunked"),
                endpoint=payload.get("endpoint"),
                conversation_id=payload.get("conversation_id"),
            )
        except (ValueError, TypeError) as exc:
            raise ApiError(400, "BAD_REQUEST", str(exc)) from None
        return {"pending": len(faults)}

    _ADMIN_ROUTES: ClassVar[dict[tuple[str, str], Callable[..., Any]]] = {
        ("GET", "health"): _admin_health,
        ("GET", "stats"): _admin_stats,
        ("GET", "requests"): _admin_requests,
        ("DELETE", "requests"): _admin_reset,
        ("GET", "truth"): _admin_truth,
        ("GET", "details"): _admin_details,
        ("POST", "clock"): _admin_clock,
        ("POST", "faults"): _admin_fault,
        ("DELETE", "faults"): _admin_clear_faults,
    }


class Emulator:
    """A PolyAI Conversations API emulator on a real local HTTP server.

    Keys in ``api_keys`` are per project; a project without one accepts ``default_api_key``.
    ``pagination`` maps a project to ``"cursor"`` or ``"offset"``; unconfigured projects use
    cursor style on v3 and offset style (no ``cursor`` key at all) on v1/v2.

    The same server also answers the Agents API's conversation detail
    (``/v1/agents/{project_id}/conversations/{id}``, see :mod:`.details`), with the project's
    key unless ``agents_api_keys`` gives that project (by project id) a key of its own.
    """

    def __init__(
        self,
        *,
        projects: dict[ProjectKey, list[StoredConversation]] | None = None,
        api_keys: dict[ProjectKey, str] | None = None,
        default_api_key: str = "test-key",
        clock: Clock | None = None,
        pagination: dict[ProjectKey, str] | None = None,
        latency_ms: int = 0,
        chunked: bool = False,
        chunked_threshold: int = 8 << 20,
        pretty: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        agents_api_keys: dict[str, str] | None = None,
        summary_delay: timedelta = SUMMARY_DELAY,
        detail_drift: bool = False,
    ) -> None:
        self.clock = clock if clock is not None else Clock()
        self.agents_api_keys: dict[str, str] = dict(agents_api_keys or {})
        self.summary_delay = summary_delay
        self.detail_drift = detail_drift
        self.faults = Faults(latency_ms)
        self.api_keys: dict[ProjectKey, str] = dict(api_keys or {})
        self.default_api_key = default_api_key
        self.pagination: dict[ProjectKey, str] = {}
        for key, style in (pagination or {}).items():
            self.set_pagination(key[0], key[1], style)
        self.chunked = chunked
        self.chunked_threshold = chunked_threshold
        self.pretty = pretty  # pages indented, keys reordered, non-ASCII escaped (Page.pretty)
        self.host = host
        self.port = port
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._served_ids: set[str] = set()
        self._served_records = 0
        self._stores: dict[ProjectKey, ProjectStore] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for key in self.api_keys:
            self.add_project(*key)
        for (account_id, project_id), convs in (projects or {}).items():
            self.add_conversations(account_id, project_id, convs)

    # -- configuration -------------------------------------------------------------------------

    def add_project(
        self,
        account_id: str,
        project_id: str,
        *,
        api_key: str | None = None,
        pagination: str | None = None,
    ) -> None:
        """Make a project known (possibly empty), optionally with its own key and style."""
        with self._lock:
            if (account_id, project_id) not in self._stores:
                self._stores[(account_id, project_id)] = ProjectStore(account_id, project_id)
        if api_key is not None:
            self.api_keys[(account_id, project_id)] = api_key
        if pagination is not None:
            self.set_pagination(account_id, project_id, pagination)

    def set_pagination(self, account_id: str, project_id: str, style: str) -> None:
        if style not in ("cursor", "offset"):
            raise ValueError("pagination style must be 'cursor' or 'offset'")
        self.pagination[(account_id, project_id)] = style

    def add_conversations(
        self, account_id: str, project_id: str, conversations: list[StoredConversation]
    ) -> None:
        """Store conversations (an existing id is replaced); safe while serving."""
        self.add_project(account_id, project_id)
        self._stores[(account_id, project_id)].add(conversations)

    def warm(self, *, include_latency: bool = False) -> None:
        """Pre-encode all finished conversations now, so benchmarks do not time the encoding.

        Done lazily otherwise; one cache per ``include_latency`` value.
        """
        now = self.clock.now()
        was_enabled = gc.isenabled()
        gc.disable()  # only short-lived temporaries: spare the GC rescans of all records
        try:
            for store in list(self._stores.values()):
                store.warm(now, include_latency)
        finally:
            if was_enabled:
                gc.enable()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, serve on a background daemon thread, and return the base URL."""
        if self._server is not None:
            return self.base_url
        server = _Server((self.host, self.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="polyai-emulator",
            daemon=True,
        )
        self._thread.start()
        host, port = server.server_address[:2]
        self.port = int(port)
        self.base_url = f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"
        return self.base_url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, account_id: str, project_id: str, version: str = "v3") -> str:
        """Full URL of the conversations endpoint for a project."""
        return f"{self.base_url}/{version}/{account_id}/{project_id}/conversations"

    def detail_url(self, project_id: str, conversation_id: str) -> str:
        """Full URL of one conversation's detail (the Agents API; agentId is the project id)."""
        return f"{self.base_url}/v1/agents/{project_id}/conversations/{conversation_id}"

    def detail(self, account_id: str, project_id: str, conversation_id: str) -> dict[str, Any]:
        """What the detail endpoint would return right now for a conversation (KeyError if
        the API would answer 404)."""
        conv = self._stores[(account_id, project_id)].get(conversation_id)
        now = self.clock.now()
        if conv is None or not conv.is_visible(now):
            raise KeyError(conversation_id)
        return detail_view(conv, now, summary_delay=self.summary_delay, drift=self.detail_drift)

    def details(self, account_id: str, project_id: str) -> list[dict[str, Any]]:
        """The detail of every conversation the API shows now (all environments), in API
        order, as the detail endpoint would return each."""
        now = self.clock.now()
        store = self._stores[(account_id, project_id)]
        return [
            detail_view(conv, now, summary_delay=self.summary_delay, drift=self.detail_drift)
            for conv in (store.get(c["id"]) for c in store.visible_summary(now))
            if conv is not None
        ]

    # -- truth and statistics ------------------------------------------------------------------

    def visible(
        self, account_id: str, project_id: str, *, include_latency: bool = True
    ) -> list[dict[str, Any]]:
        """What the API would return right now (all environments), in API order."""
        store = self._stores.get((account_id, project_id))
        if store is None:
            raise KeyError(f"unknown project {account_id}/{project_id}")
        return store.visible(self.clock.now(), include_latency)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": len(self.requests),
                "served_ids": len(self._served_ids),
                "served_records": self._served_records,
            }

    def reset_stats(self) -> None:
        """Forget the request log and served counters (faults and data are kept)."""
        with self._lock:
            self.requests.clear()
            self._served_ids.clear()
            self._served_records = 0

    # -- used by the handler -------------------------------------------------------------------

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _requests_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.requests]

    def _served(self, ids: list[str]) -> None:
        with self._lock:
            self._served_ids.update(ids)
            self._served_records += len(ids)

    def _authorize(self, account_id: str, project_id: str, key: str | None) -> None:
        """401 for a missing/unknown key, 404 for an unknown project, 403 for another's key."""
        if not key:
            raise ApiError(401, "UNAUTHORIZED", "Missing API key (x-api-key header).")
        default_in_use = any(k not in self.api_keys for k in self._stores) or not self._stores
        known = key in self.api_keys.values() or (key == self.default_api_key and default_in_use)
        if not known:
            raise ApiError(401, "UNAUTHORIZED", "Invalid API key.")
        if (account_id, project_id) not in self._stores:
            raise ApiError(404, "PROJECT_NOT_FOUND", "Project ID does not exist.")
        expected = self.api_keys.get((account_id, project_id), self.default_api_key)
        if key != expected:
            raise ApiError(403, "FORBIDDEN", "This API key has no access to this project.")

    def _authorize_agent(self, project_id: str, key: str | None) -> str:
        """As `_authorize`, for the Agents API: the agent is the project; returns its account.

        The key is the project's own (or the default key), unless `agents_api_keys` gives the
        project an Agents API key of its own.
        """
        if not key:
            raise ApiError(401, "UNAUTHORIZED", "Missing API key (x-api-key header).")
        accounts = [a for a, p in self._stores if p == project_id]
        default_in_use = any(k not in self.api_keys for k in self._stores) or not self._stores
        known = (
            key in self.api_keys.values()
            or key in self.agents_api_keys.values()
            or (key == self.default_api_key and default_in_use)
        )
        if not known:
            raise ApiError(401, "UNAUTHORIZED", "Invalid API key.")
        if not accounts:
            raise ApiError(404, "AGENT_NOT_FOUND", "Agent ID does not exist.")
        account_id = accounts[0]
        expected = self.agents_api_keys.get(
            project_id, self.api_keys.get((account_id, project_id), self.default_api_key)
        )
        if key != expected:
            raise ApiError(403, "FORBIDDEN", "This API key has no access to this agent.")
        return account_id

    def _pagination_style(self, version: str, account_id: str, project_id: str) -> str:
        style = self.pagination.get((account_id, project_id))
        if style is not None:
            return style
        return "cursor" if version == "v3" else "offset"
