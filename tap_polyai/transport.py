"""Where the API key may travel: only to the configured origin, and never along a redirect.

Every request that carries a key goes through a `KeyedSession`, bound to one origin (scheme,
host, port) when it is made: the base URL of `api_url`/`region`. Why a session of its own and
not care at each call site:
- requests follows redirects by default, and strips `Authorization` when the host changes but
  never a custom header such as `x-api-key`: a 301 to another host would hand it the key. Here
  redirects are switched off in `request` *and* `send` (the path requests itself uses to follow
  them), and a 3xx answer is an error naming the status and the target host.
- Any request to another origin is refused before a byte is sent, so a second API host (another
  base URL setting) gets a session of its own and the same protection by construction.
Proxies are requests' own: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured (docs/security.md).
"""

from __future__ import annotations

import typing as t
from urllib.parse import urljoin, urlsplit

import requests

from tap_polyai import __version__
from tap_polyai.errors import PolyAIError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(t.NamedTuple):
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of `url`, the port made explicit; raises ValueError if it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    if not parts.hostname or port is None:
        raise ValueError("not an http(s) URL with a host")
    return Origin(scheme, parts.hostname.lower(), port)


class KeyGuardRefused(PolyAIError):
    """A request or an answer that would take the key elsewhere; its message names no project."""


class RedirectRefused(KeyGuardRefused):
    """The API answered with a redirect; the tap does not follow it (the key would go along)."""


class ForeignOriginRefused(KeyGuardRefused):
    """A request to an origin other than the session's: refused before anything is sent."""


class KeyedSession(requests.Session):
    """A requests session that only talks to `base_url`'s origin and never follows a redirect.

    Not thread-safe, as any requests session: one per worker thread.
    """

    def __init__(self, base_url: str, setting: str = "'api_url'/'region'") -> None:
        super().__init__()
        self.origin = origin_of(base_url)
        self.setting = setting  # what names the origin, for messages
        self.headers["User-Agent"] = f"tap-polyai/{__version__}"

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, **kwargs: t.Any
    ) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().request(method, url, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        url = request.url or ""
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin != self.origin:
            host = urlsplit(url).netloc or "(no host)"
            raise ForeignOriginRefused(
                f"Refused to send a request to {host}: the API key only goes to the configured "
                f"origin {self.origin} ({self.setting})."
            )
        response = super().send(request, **kwargs)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location")
            target = urlsplit(urljoin(url, location)).netloc if location else None
            response.close()
            where = urlsplit(url).netloc
            to = f"to {target}" if target else "without a Location"
            raise RedirectRefused(
                f"HTTP {response.status_code} from {where}: a redirect {to}. The tap never "
                f"follows redirects (the API key would go along): fix {self.setting} so "
                "that it names the API host itself."
            )
        return response
