"""Every loop and every wait is bounded: paging that never ends stops with a named error and
no checkpoint past the window; a stop signal ends any wait at once; junk Retry-After falls
back to the backoff."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import pytest
from hostile_server import (
    START,
    Answer,
    HostileServer,
    Seen,
    conversations,
    hostile_config,
    page,
)
from tap_runner import TAP_COMMAND, parse_messages, run_cli

from tap_polyai.client import max_pages_per_window
from tap_polyai.errors import parse_retry_after
from tap_polyai.settings import parse_datetime
from tap_polyai.windows import Window

CONVERSATIONS = conversations(10)


def endless_cursor(seen: Seen) -> Answer:
    """A fresh cursor on every page, the same conversations every time."""
    return (
        200,
        {},
        page(
            CONVERSATIONS[:5],
            cursor=f"c{len(seen.params.get('cursor', ['']))}-{time.monotonic_ns()}",
        ),
    )


def endless_offset(seen: Seen) -> Answer:
    """v2: the offset moves on, the conversations repeat."""
    offset = int(seen.params.get("offset", ["0"])[0])
    return 200, {}, {"conversations": CONVERSATIONS[:5], "next_offset": offset + 5}


def endless_fresh(seen: Seen) -> Answer:
    """New ids forever: only the page bound can stop it."""
    n = len(seen.params.get("cursor", [""])[0])
    fresh = [
        {**c, "id": f"{c['id']}-{time.monotonic_ns()}-{i}"} for i, c in enumerate(CONVERSATIONS[:5])
    ]
    return 200, {}, page(fresh, cursor=f"x{n}-{time.monotonic_ns()}")


@pytest.mark.parametrize(
    ("respond", "words"),
    [
        (endless_cursor, "already seen"),
        (endless_offset, "already seen"),
        (endless_fresh, "more pages than"),
    ],
    ids=["cursor", "offset", "fresh-ids"],
)
def test_paging_that_never_ends_stops_with_a_named_error_and_no_checkpoint(
    tmp_path: Path, respond: t.Callable[[Seen], Answer], words: str
) -> None:
    # One minute: the page bound of such a window is small.
    config = hostile_config("", end_date="2026-01-01T00:01:00Z", window_hours=1, page_size=100)
    with HostileServer(respond) as api:
        config["api_url"] = api.base_url
        run = run_cli(config, tmp_path, timeout=60)
        requests = len(api.requests)
    assert run.returncode == 1, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert words in errors[0]
    assert "ws-hostile/PROJECT-h" in errors[0]
    window = Window(parse_datetime(START), parse_datetime("2026-01-01T00:01:00Z"))
    assert requests <= max_pages_per_window(window, 100) + 1
    assert not [
        s for s in run.states if s.get("bookmarks", {}).get("conversations", {}).get("partitions")
    ], "no checkpoint"


# Not delta-seconds (digits) nor an HTTP date; `+14155550123` is a phone number a hostile
# server echoed, which float() read as 449 years (then the 15-minute cap, before each retry).
@pytest.mark.parametrize(
    "value", ["nan", "-5", "inf", "-inf", "1e999", "soon", "", "NaN", "+14155550123", "+5", "1e3"]
)
def test_junk_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_is_capped_and_dates_in_the_past_mean_now() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("100000") == 900
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0


@pytest.mark.parametrize("junk", ["nan", "-1", "inf"])
def test_junk_retry_after_falls_back_to_the_backoff(tmp_path: Path, junk: str) -> None:
    times: list[float] = []

    def respond(seen: Seen) -> Answer:
        times.append(time.monotonic())
        if len(times) == 1:
            return 429, {"Retry-After": junk}, {"error_code": "RATE_LIMITED"}
        return 200, {}, page([])

    with HostileServer(respond) as api:
        config = hostile_config(api.base_url, retry_base_seconds=0.6, max_retries=2)
        run = run_cli(config, tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    # The backoff of the first retry is retry_base_seconds times 0.5..1.
    assert times[1] - times[0] >= 0.3


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("wait", ["retry_after", "backoff"])
def test_a_signal_ends_a_long_wait_at_once_with_the_final_state(
    tmp_path: Path, signum: int, code: int, wait: str
) -> None:
    asked = threading.Event()

    def respond(seen: Seen) -> Answer:
        asked.set()
        if wait == "retry_after":
            return 429, {"Retry-After": "900"}, {}
        return 503, {}, {}

    with HostileServer(respond) as api:
        config = hostile_config(api.base_url, retry_base_seconds=60, max_retries=5)
        (tmp_path / "config.json").write_text(json.dumps(config))
        proc = subprocess.Popen(
            [*TAP_COMMAND, "--config", str(tmp_path / "config.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert asked.wait(60), "the tap never asked"
            # The tap is now waiting (900 s or about a minute); the signal must end it.
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == code, err.decode()[-2000:]
    messages = parse_messages(out)
    assert messages[-1]["type"] == "STATE"
    assert "final STATE is written" in err.decode()
