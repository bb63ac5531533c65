"""A small HTTP server on 127.0.0.1 that answers whatever a test tells it to: hostile cases.

The emulator plays a well-behaved PolyAI with known faults; this one plays a broken or
malicious server (redirects, echoed keys, endless cursors, junk headers). `respond` gets each
request and returns `(status, headers, body)`; every request is recorded, headers included, so a
test can prove what reached the server (a key it must never have seen).
"""

from __future__ import annotations

import json
import threading
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]


Body = bytes | str | dict[str, t.Any] | list[t.Any] | None
Answer = tuple[int, dict[str, str], Body]


@dataclass
class HostileServer:
    respond: t.Callable[[Seen], Answer]
    requests: list[Seen] = field(default_factory=list)
    base_url: str = ""

    def __enter__(self) -> HostileServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen("GET", parts.path, parse_qs(parts.query), dict(self.headers.items()))
                server.requests.append(seen)
                status, headers, body = server.respond(seen)
                data = encode(body)
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                if not any(k.lower() == "content-length" for k in headers):
                    headers["Content-Length"] = str(len(data))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: t.Any) -> None:
                """Quiet: pytest shows the test's own output."""

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def host(self) -> str:
        return self.base_url.removeprefix("http://")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that hangs up early (the tap giving up on a bad page) is no news."""


def encode(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def page(conversations: list[dict[str, t.Any]], cursor: str | None = None) -> dict[str, t.Any]:
    """A v3 page as PolyAI sends it."""
    return {"conversations": conversations, "cursor": cursor}


ACCOUNT = "ws-hostile"
PROJECT = "PROJECT-h"
SECRET = "sk-live-hostile-5eCr3t-9a8b7c"
START = "2026-01-01T00:00:00Z"
END = "2026-01-02T00:00:00Z"


def hostile_config(base_url: str, **overrides: t.Any) -> dict[str, t.Any]:
    """One project, key `SECRET`, one day, fast retries: what a hostile-server test runs."""
    config: dict[str, t.Any] = {
        "api_url": base_url,
        "account_id": ACCOUNT,
        "project_id": PROJECT,
        "api_key": SECRET,
        "start_date": START,
        "end_date": END,
        "window_hours": 24,
        "page_size": 5,
        "max_retries": 1,
        "retry_base_seconds": 0.01,
        "max_concurrency": 1,
    }
    config.update(overrides)
    return config


def conversations(count: int, *, seed: int = 0) -> list[dict[str, t.Any]]:
    """`count` well-formed conversations inside `[START, END)`."""
    from tap_polyai.emulator import generate_conversations
    from tap_polyai.settings import parse_datetime

    stored = generate_conversations(
        ACCOUNT,
        PROJECT,
        count=count,
        start=parse_datetime(START),
        end=parse_datetime(END),
        seed=seed,
    )
    return [s.record for s in stored]
