"""The key goes only to the configured origin: never along a redirect, never to another host,
never over plain http to a host that is not loopback unless the operator opted in."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_server import SECRET, Answer, HostileServer, Seen, hostile_config, page
from singer_sdk.exceptions import ConfigValidationError
from tap_runner import run_cli, run_tap

from tap_polyai.errors import PolyAIError
from tap_polyai.settings import load_settings
from tap_polyai.transport import ForeignOriginRefused, KeyedSession


def _empty(_: Seen) -> Answer:
    return 200, {}, page([])


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_the_key_does_not_follow(status: int) -> None:
    with HostileServer(_empty) as elsewhere:

        def redirect(seen: Seen) -> Answer:
            return status, {"Location": f"{elsewhere.base_url}{seen.path}"}, b""

        with HostileServer(redirect) as api, pytest.raises(PolyAIError) as failure:
            run_tap(hostile_config(api.base_url))
    message = str(failure.value)
    assert f"HTTP {status}" in message
    assert f"to {elsewhere.host}" in message
    assert "'api_url'" in message
    assert "'region'" in message
    assert elsewhere.requests == [], "the redirect was not followed"
    assert len(api.requests) == 1, "a redirect is not retried"


def test_preflight_reports_a_redirect_as_failed(tmp_path: Path) -> None:
    with HostileServer(_empty) as elsewhere:

        def redirect(seen: Seen) -> Answer:
            return 302, {"Location": f"{elsewhere.base_url}/v3/x"}, b""

        with HostileServer(redirect) as api:
            run = run_cli(hostile_config(api.base_url), tmp_path, "--test")
    assert run.returncode == 1
    assert "Pre-flight FAILED" in run.stderr
    assert f"HTTP 302 from {api.host}: a redirect to {elsewhere.host}" in run.stderr
    assert "Pre-flight OK" not in run.stderr
    assert elsewhere.requests == []


def test_the_session_refuses_any_other_origin_before_sending() -> None:
    with (
        HostileServer(_empty) as api,
        HostileServer(_empty) as other,
        KeyedSession(api.base_url) as session,
    ):
        assert session.get(api.base_url + "/ok", timeout=5).status_code == 200
        for url in (other.base_url, api.base_url.replace("http://", "https://")):
            with pytest.raises(ForeignOriginRefused) as refused:
                session.get(url + "/x", headers={"x-api-key": SECRET}, timeout=5)
            assert "configured origin" in str(refused.value)
    assert other.requests == []
    assert all(s.path == "/ok" for s in api.requests)


def test_plain_http_to_a_remote_host_needs_the_opt_in() -> None:
    config = hostile_config("http://api.example.com")
    with pytest.raises(ConfigValidationError) as refused:
        load_settings(config)
    (error,) = refused.value.errors
    assert "'allow_insecure_http'" in error
    assert "api.example.com" in error
    assert SECRET not in error

    settings = load_settings({**config, "allow_insecure_http": True})
    warnings = [m for _, m in settings.notices if "allow_insecure_http" in m]
    assert len(warnings) == 1
    assert "plain http" in warnings[0]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:2", "https://a.example"]
)
def test_https_and_loopback_http_need_no_opt_in(url: str) -> None:
    settings = load_settings(hostile_config(url))
    assert not [m for _, m in settings.notices if "allow_insecure_http" in m]
