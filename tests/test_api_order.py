"""Every API order the docs leave open, end to end: the tap reads each conversation once.

PolyAI does not document the order of `/conversations` (v1 said ascending). The window planner
splits a window after its first page by what that page says of the order (`windows.split`), so
each order takes a different path through it: served here by the benchmark server
(`benchmarks/api_server.py --order`), with pages small enough that windows are split.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import requests
from tap_runner import run_tap

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, PROJECT, KEY = "ws-order", "PROJECT-order", "order-test-key"
END = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def serve(tmp_path: Path, order: str) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp_path / f"{order}.port"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "api_server.py"),
        "--port-file", str(port_file), "--projects", f"{ACCOUNT}/{PROJECT}",
        "--conversations", "1500", "--days", "3", "--end", iso(END), "--seed", "5",
        "--order", order, "--api-key", KEY,
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60  # it renders its conversations before it listens
    while not port_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polls for the port file; nothing is decided by waiting
    assert port_file.exists(), "the benchmark server did not start"
    return proc, f"http://127.0.0.1:{int(port_file.read_text())}"


def every_page(url: str, window: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """What the docs' loop reads: one query, page after page."""
    out: list[dict[str, t.Any]] = []
    params = dict(window)
    while True:
        body = requests.get(
            f"{url}/v3/{ACCOUNT}/{PROJECT}/conversations",
            params=params,
            headers={"x-api-key": KEY},
            timeout=30,
        ).json()
        out.extend(body["conversations"])
        if not body.get("cursor"):
            return out
        params = {**window, "cursor": body["cursor"]}


@pytest.mark.parametrize("order", ["random", "fixed", "time", "newest"])
def test_the_tap_reads_every_conversation_once_whatever_the_api_order(
    tmp_path: Path, order: str
) -> None:
    proc, url = serve(tmp_path, order)
    try:
        start = END - dt.timedelta(days=3)
        window = {"start_time": iso(start), "end_time": iso(END), "limit": 20}
        served = every_page(url, window)
        starts = [c["started_at"] for c in served]
        if order == "time":
            assert starts == sorted(starts)  # the server really serves that order
        elif order == "newest":
            assert starts == sorted(starts, reverse=True)
        else:
            assert starts != sorted(starts)
        requests.delete(f"{url}/_bench/requests", timeout=30).raise_for_status()
        config = {
            "api_url": url,
            "api_key": KEY,
            "projects": [{"account_id": ACCOUNT, "project_id": PROJECT}],
            "start_date": iso(start),
            "end_date": iso(END),
            "page_size": 20,
        }
        run = run_tap(config)
        stats = requests.get(f"{url}/_bench/stats", timeout=30).json()
    finally:
        proc.terminate()
        proc.wait(30)
    ids = [r["id"] for r in run.records()]
    assert len(ids) == len(set(ids)), "a conversation was written twice"
    assert set(ids) == {c["id"] for c in served}
    # Each order is split to the same effect: no window is read one page after another for
    # long (the first 24 h, ~22 pages, is split into 8 parts; later windows hold ~4 pages; 5-7
    # pages at most, measured). A
    # quantile split of a time-ordered first page left ~19 of them to one part.
    pages = -(-len(served) // 20)
    assert stats["longest_chain"] <= 8, json.dumps(stats)
    assert stats["requests"] <= 1.35 * pages, json.dumps({**stats, "pages": pages})
