"""When the API cannot be reached, the error names the host and the cause."""

from __future__ import annotations

import socket
import typing as t

import pytest
from conftest import tap_config
from tap_runner import run_tap

from tap_polyai.emulator import Emulator
from tap_polyai.errors import PolyAIError

FAST = {"max_retries": 1, "retry_base_seconds": 0.01, "max_concurrency": 1}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failure(config: dict[str, t.Any]) -> str:
    with pytest.raises(PolyAIError) as caught:
        run_tap(config)
    return str(caught.value)


def test_connection_refused_names_host_and_cause(emulator: Emulator) -> None:
    port = closed_port()
    message = failure(tap_config(emulator, api_url=f"http://127.0.0.1:{port}", **FAST))
    assert f"connection to 127.0.0.1:{port} refused" in message
    assert "'max_retries' = 1" in message
    assert "ws-acme/PROJECT-alpha" in message


def test_dns_failure_names_host_and_cause(emulator: Emulator) -> None:
    message = failure(
        tap_config(emulator, api_url="http://nonexistent.invalid", allow_insecure_http=True, **FAST)
    )
    assert "DNS lookup of nonexistent.invalid failed" in message


def test_tls_failure_names_host_and_cause(emulator: Emulator) -> None:
    # The emulator speaks plain HTTP: a TLS handshake with it fails.
    https = emulator.base_url.replace("http://", "https://")
    message = failure(tap_config(emulator, api_url=https, **FAST))
    host = https.removeprefix("https://")
    assert f"TLS handshake with {host} failed" in message
    assert emulator.requests == []


def test_read_timeout_names_host_and_the_setting(emulator: Emulator) -> None:
    emulator.faults.add("latency", seconds=2.5, times=5, project_id="PROJECT-alpha")
    config = tap_config(emulator, request_timeout_seconds=1, **{**FAST, "max_retries": 0})
    message = failure(config)
    assert emulator.base_url.removeprefix("http://") in message
    assert "read timeout" in message
    assert "'request_timeout_seconds'" in message
