"""Tests of the PolyAI Conversations API emulator (offline, real sockets on 127.0.0.1)."""

from __future__ import annotations

import email.utils
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tap_polyai.emulator import Clock, Emulator, StoredConversation, generate_conversations
from tap_polyai.emulator.data import format_ts

UTC = timezone.utc
END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=7)
A = ("ws-alpha", "PROJECT-alpha")
B = ("ws-beta", "PROJECT-beta")
KEY = "test-key"
KEY_B = "key-beta"
ROOT = Path(__file__).resolve().parents[1]
ENVELOPE_KEYS = {"success", "error", "error_id", "error_code", "error_message", "data"}


@pytest.fixture(scope="module")
def convs() -> list[StoredConversation]:
    return generate_conversations(
        *A, count=120, start=START, end=END, seed=7, in_progress=3, late=2
    )


@pytest.fixture
def emu(convs: list[StoredConversation]) -> Iterator[Emulator]:
    conv_b = generate_conversations(*B, count=20, start=START, end=END, seed=1)
    emulator = Emulator(projects={A: convs, B: conv_b}, api_keys={B: KEY_B}, clock=Clock(END))
    with emulator:
        yield emulator


def get(
    emu: Emulator,
    params: Any = None,
    *,
    key: str | None = KEY,
    project: tuple[str, str] = A,
    version: str = "v3",
) -> requests.Response:
    headers = {"x-api-key": key} if key is not None else {}
    return requests.get(
        emu.url(*project, version=version), params=params, headers=headers, timeout=10
    )


def page_all(
    emu: Emulator, params: dict[str, Any] | None = None, *, style: str = "cursor", **kw: Any
) -> list[dict[str, Any]]:
    params = dict(params or {})
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        resp = get(emu, params, **kw)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out.extend(body["conversations"])
        if style == "cursor":
            assert "cursor" in body
            if body["cursor"] is None:
                assert "next_offset" not in body
                return out
            params["cursor"] = body["cursor"]
        else:
            assert "cursor" not in body
            if "next_offset" not in body:
                return out
            params["offset"] = body["next_offset"]
    raise AssertionError("pagination did not terminate")


def live_truth(emu: Emulator, project: tuple[str, str] = A) -> list[dict[str, Any]]:
    return [c for c in emu.visible(*project) if c["environment"] == "live"]


def assert_envelope(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False
    assert body["data"] is None
    assert body["error_code"] == code
    assert body["error"] == body["error_message"]
    assert resp.headers["X-PolyAI-Correlation-Id"] == body["error_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", body["error_id"])
    return body


# -- data --------------------------------------------------------------------------------------


def test_generation_is_deterministic_and_has_edge_cases(convs: list[StoredConversation]) -> None:
    again = generate_conversations(
        *A, count=120, start=START, end=END, seed=7, in_progress=3, late=2
    )
    assert [c.record for c in again] == [c.record for c in convs]
    other = generate_conversations(*A, count=120, start=START, end=END, seed=8)
    assert {c.id for c in other}.isdisjoint({c.id for c in convs})

    ids = [c.id for c in convs]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"CA[0-9a-f]{32}", i) for i in ids)
    assert any(c.record["turns"] == [] and c.record["num_turns"] > 0 for c in convs)
    starts = [c.record["started_at"] for c in convs]
    assert len(set(starts)) < len(starts)
    assert any(
        c.record["from_number"] == ""
        and c.record["variant_name"] == ""
        and c.record["metrics"] == {}
        and c.record["state"] == {}
        for c in convs
    )
    assert any(not str(v).isascii() for c in convs for v in c.record["state"].values())
    assert any(
        isinstance(v, list) and len(v) >= 2 for c in convs for v in c.record["metrics"].values()
    )
    assert sum(c.is_in_progress(END) for c in convs) == 3
    assert sum(not c.is_visible(END) for c in convs) == 2
    for c in convs:
        rec = c.record
        assert START <= c.started_at < END
        assert (rec["account_id"], rec["project_id"]) == A
        assert rec["in_progress"] is False
        if rec["turns"]:
            assert rec["num_turns"] == len(rec["turns"])
            assert rec["num_silences"] == sum(t["is_silence"] for t in rec["turns"])
            assert rec["num_ood"] == sum(t["is_ood"] for t in rec["turns"])
        for t in rec["turns"]:
            assert format_ts(c.started_at) <= t["user_input_datetime"] <= format_ts(c.ended_at)
            assert t["agent_response_datetime"] <= format_ts(c.ended_at)
            assert isinstance(t["barge_in"], bool)


def test_generation_size_knobs() -> None:
    long = generate_conversations(*A, count=2, start=START, end=END, turns=(300, 300))
    assert all(len(c.record["turns"]) == 300 for c in long)
    normal = generate_conversations(*A, count=200, start=START, end=END)
    sizes = [len(orjson.dumps(c.record)) for c in normal if len(c.record["turns"]) == 10]
    assert 3000 < sum(sizes) / len(sizes) < 8000
    fixed = generate_conversations(*A, count=12, start=START, end=END, agent_response_chars=500)
    assert all(len(t["agent_response"]) == 500 for t in fixed[5].record["turns"])


# -- auth and routing --------------------------------------------------------------------------


def test_auth_and_routing_errors(emu: Emulator) -> None:
    assert_envelope(get(emu, key=None), 401, "UNAUTHORIZED")
    assert_envelope(get(emu, key="nope"), 401, "UNAUTHORIZED")
    assert_envelope(get(emu, key=KEY_B), 403, "FORBIDDEN")
    assert_envelope(get(emu, key=KEY, project=B), 403, "FORBIDDEN")
    assert_envelope(get(emu, project=("ws-alpha", "PROJECT-missing")), 404, "PROJECT_NOT_FOUND")
    resp = requests.get(f"{emu.base_url}/v3/ws-alpha/PROJECT-alpha/calls", timeout=10)
    assert_envelope(resp, 404, "NOT_FOUND")
    assert get(emu, key=KEY_B, project=B).status_code == 200
    for entry in emu.requests:
        assert KEY not in repr(entry)
        assert KEY_B not in repr(entry)
    assert [e["status"] for e in emu.requests] == [401, 401, 403, 403, 404, 404, 200]


# -- paging ------------------------------------------------------------------------------------


def test_cursor_paging_returns_each_visible_conversation_once(emu: Emulator) -> None:
    first = get(emu, {"limit": 7})
    assert re.fullmatch(r"[0-9a-f-]{36}", first.headers["X-PolyAI-Correlation-Id"])
    assert first.json()["next_offset"] == 7
    assert re.fullmatch(r"[A-Za-z0-9_-]+", first.json()["cursor"])
    got = page_all(emu, {"limit": 7})
    ids = [c["id"] for c in got]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(c["id"] for c in live_truth(emu))
    starts = [c["started_at"] for c in got]
    assert starts != sorted(starts)
    assert starts != sorted(starts, reverse=True)
    assert page_all(emu, {"limit": 1000}) == got  # order independent of page size
    assert emu.stats()["served_ids"] == len(ids)


def test_cursor_is_stable_while_new_conversations_arrive(emu: Emulator) -> None:
    before = {c["id"] for c in live_truth(emu)}
    resp = get(emu, {"limit": 10}).json()
    seen = [c["id"] for c in resp["conversations"]]
    extra = generate_conversations(*A, count=30, start=START, end=END, seed=99)
    emu.add_conversations(*A, extra)
    cursor = resp["cursor"]
    while cursor:
        resp = get(emu, {"limit": 10, "cursor": cursor}).json()
        seen.extend(c["id"] for c in resp["conversations"])
        cursor = resp["cursor"]
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_offset_paging_on_v2_and_configured_projects(emu: Emulator) -> None:
    truth = sorted(c["id"] for c in live_truth(emu))
    got = page_all(emu, {"limit": 9}, style="offset", version="v2")
    assert sorted(c["id"] for c in got) == truth
    body = get(emu, {"limit": 9, "offset": 9}, version="v2").json()
    assert body["next_offset"] == 18
    assert "cursor" not in body
    emu.set_pagination(*A, "offset")
    assert sorted(c["id"] for c in page_all(emu, {"limit": 50}, style="offset")) == truth


def test_offset_param_on_cursor_style_and_cursor_wins(emu: Emulator) -> None:
    all_ids = [c["id"] for c in page_all(emu, {"limit": 5})]
    body = get(emu, {"limit": 5, "offset": 5}).json()
    assert [c["id"] for c in body["conversations"]] == all_ids[5:10]
    cursor = get(emu, {"limit": 5}).json()["cursor"]
    body = get(emu, {"limit": 5, "offset": 50, "cursor": cursor}).json()
    assert [c["id"] for c in body["conversations"]] == all_ids[5:10]


def test_time_bounds_start_inclusive_end_exclusive(
    emu: Emulator, convs: list[StoredConversation]
) -> None:
    c = next(c for c in convs[10:] if c.record["environment"] == "live" and c.is_visible(END))
    iso_z = c.record["started_at"]
    iso_offset = c.started_at.isoformat()  # "+00:00" form
    ids = {x["id"] for x in page_all(emu, {"start_time": iso_z, "end_time": format_ts(END)})}
    assert c.id in ids
    ids = {x["id"] for x in page_all(emu, {"start_time": format_ts(START), "end_time": iso_z})}
    assert c.id not in ids
    ids = {x["id"] for x in page_all(emu, {"start_time": iso_offset, "end_time": iso_offset})}
    assert ids == set()
    later = c.started_at + timedelta(seconds=1)
    no_fraction = later.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = {
        x["id"] for x in page_all(emu, {"start_time": format_ts(START), "end_time": no_fraction})
    }
    assert c.id in ids
    expected = {
        x["id"]
        for x in live_truth(emu)
        if x["started_at"] < format_ts(c.started_at + timedelta(hours=12))
        and x["started_at"] >= iso_z
    }
    ids = {
        x["id"]
        for x in page_all(
            emu, {"start_time": iso_z, "end_time": format_ts(c.started_at + timedelta(hours=12))}
        )
    }
    assert ids == expected


@pytest.mark.parametrize(
    ("params", "code", "needle"),
    [
        ({"limit": 0}, "INVALID_PARAMETER", "limit"),
        ({"limit": 1001}, "INVALID_PARAMETER", "limit"),
        ({"limit": "ten"}, "INVALID_PARAMETER", "limit"),
        ({"offset": -1}, "INVALID_PARAMETER", "offset"),
        ({"start_time": "yesterday"}, "INVALID_PARAMETER", "start_time"),
        ({"end_time": "2026-13-01T00:00:00Z"}, "INVALID_PARAMETER", "end_time"),
        ({"client_env": "production"}, "INVALID_PARAMETER", "client_env"),
        ({"in_progress": "maybe"}, "INVALID_PARAMETER", "in_progress"),
        ({"variant_id": "x", "variant_name": "y"}, "INVALID_PARAMETER", "variant"),
        ({"cursor": "not-a-cursor!!"}, "INVALID_CURSOR", "cursor"),
        ({"cursor": "eyJ2IjoxfQ"}, "INVALID_CURSOR", "cursor"),
        ({"query_type": "transcript", "query": "hi"}, "UNSUPPORTED_BY_EMULATOR", "query_type"),
        ({"sample": "random"}, "UNSUPPORTED_BY_EMULATOR", "sample"),
    ],
)
def test_invalid_parameters(emu: Emulator, params: dict[str, Any], code: str, needle: str) -> None:
    body = assert_envelope(get(emu, params), 400, code)
    assert needle in body["error"]


def test_cursor_reused_with_other_filters_is_rejected(emu: Emulator) -> None:
    cursor = get(emu, {"limit": 3, "channel": "VOICE-SIP"}).json()["cursor"]
    assert get(emu, {"limit": 3, "channel": "VOICE-SIP", "cursor": cursor}).status_code == 200
    assert get(emu, {"limit": 50, "channel": "VOICE-SIP", "cursor": cursor}).status_code == 200
    assert_envelope(get(emu, {"limit": 3, "cursor": cursor}), 400, "INVALID_CURSOR")
    assert_envelope(
        get(emu, {"limit": 3, "cursor": cursor}, project=B, key=KEY_B), 400, "INVALID_CURSOR"
    )


def test_filters(emu: Emulator) -> None:
    truth = emu.visible(*A)
    for env in ("sandbox", "pre-release", "live"):
        got = page_all(emu, {"client_env": env})
        assert sorted(c["id"] for c in got) == sorted(
            c["id"] for c in truth if c["environment"] == env
        )
    got = page_all(emu, {"channel": ["WEBCHAT", "CHAT"]})
    assert {c["channel"] for c in got} <= {"WEBCHAT", "CHAT"}
    assert len(got) == sum(1 for c in live_truth(emu) if c["channel"] in ("WEBCHAT", "CHAT"))
    variant = next(c for c in live_truth(emu) if c["variant_name"])
    by_id = page_all(emu, {"variant_id": variant["variant_id"]})
    by_name = page_all(emu, {"variant_name": variant["variant_name"]})
    assert by_id == by_name
    assert all(c["variant_id"] == variant["variant_id"] for c in by_id)
    running = page_all(emu, {"in_progress": "true"})
    assert len(running) == 3
    assert all(c["in_progress"] for c in running)
    done = page_all(emu, {"in_progress": "false"})
    assert not any(c["in_progress"] for c in done)
    assert len(done) + 3 == len(live_truth(emu))


def test_include_latency(emu: Emulator) -> None:
    plain = get(emu, {"limit": 20}).json()["conversations"]
    turns = [t for c in plain for t in c["turns"]]
    assert turns
    assert all(t["latency"] is None for t in turns)
    with_latency = get(emu, {"limit": 20, "include_latency": "true"}).json()["conversations"]
    turns = [t for c in with_latency for t in c["turns"]]
    assert all(isinstance(t["latency"], float) for t in turns)
    assert [c["id"] for c in plain] == [c["id"] for c in with_latency]


# -- time: in-progress and late-arriving -------------------------------------------------------


def test_in_progress_conversation_finishes_after_clock_advance(
    emu: Emulator, convs: list[StoredConversation]
) -> None:
    running = {c["id"]: c for c in page_all(emu, {"in_progress": "true"})}
    stored = {c.id: c for c in convs}
    for cid, rec in running.items():
        full = stored[cid].record
        assert rec["in_progress"] is True
        assert rec["handoff"] is False
        assert rec["num_turns"] == len(rec["turns"]) <= full["num_turns"]
        assert rec["total_duration"] <= full["total_duration"]
        assert all(t["user_input_datetime"] <= format_ts(END) for t in rec["turns"])
    emu.clock.advance(timedelta(hours=8))
    after = {c["id"]: c for c in page_all(emu)}
    for cid in running:
        assert after[cid]["in_progress"] is False
        assert after[cid]["num_turns"] == stored[cid].record["num_turns"]
        assert after[cid]["turns"] == [{**t, "latency": None} for t in stored[cid].record["turns"]]


def test_late_conversations_invisible_until_available(
    emu: Emulator, convs: list[StoredConversation]
) -> None:
    late = [c for c in convs if c.is_late]
    assert len(late) == 2
    visible_now = {c["id"] for c in emu.visible(*A)}
    assert not visible_now & {c.id for c in late}
    returned = {c["id"] for c in page_all(emu)}
    assert not returned & {c.id for c in late}
    emu.clock.set(max(c.available_at for c in late))
    returned = {c["id"] for c in page_all(emu)}
    assert {c.id for c in late} <= returned


# -- faults ------------------------------------------------------------------------------------


def test_rate_limit_fault(emu: Emulator) -> None:
    emu.faults.add("rate_limit", times=2, retry_after="1")
    for _ in range(2):
        resp = get(emu)
        assert_envelope(resp, 429, "RATE_LIMITED")
        assert resp.headers["Retry-After"] == "1"
    assert get(emu).status_code == 200
    emu.faults.add("rate_limit", retry_after=timedelta(seconds=5))
    resp = get(emu)
    when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"])
    assert 0 <= (when - datetime.now(UTC)).total_seconds() <= 6
    assert [(e["fault"], e["status"]) for e in emu.requests] == [
        ("rate_limit", 429),
        ("rate_limit", 429),
        (None, 200),
        ("rate_limit", 429),
    ]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_fault(emu: Emulator, status: int) -> None:
    emu.faults.add("server_error", status=status)
    resp = get(emu)
    assert resp.status_code == status
    assert resp.json()["success"] is False
    assert resp.headers["X-PolyAI-Correlation-Id"] == resp.json()["error_id"]
    assert get(emu).status_code == 200


def test_fault_scoped_to_project(emu: Emulator) -> None:
    emu.faults.add("server_error", project_id=B[1])
    assert get(emu).status_code == 200
    assert get(emu, project=B, key=KEY_B).status_code == 500
    assert [e["fault"] for e in emu.requests] == [None, "server_error"]


@pytest.mark.parametrize("chunked", [False, True])
def test_truncate_fault(emu: Emulator, chunked: bool) -> None:
    emu.faults.add("truncate", chunked=chunked)
    with pytest.raises((requests.RequestException, ValueError)):
        get(emu).json()
    assert emu.requests[-1]["fault"] == "truncate"
    assert get(emu).status_code == 200


def test_reset_fault(emu: Emulator) -> None:
    emu.faults.add("reset")
    with pytest.raises(requests.ConnectionError):
        get(emu)
    assert emu.requests[-1]["fault"] == "reset"
    assert emu.requests[-1]["status"] is None
    assert get(emu).status_code == 200


def test_invalid_json_fault(emu: Emulator) -> None:
    emu.faults.add("invalid_json")
    resp = get(emu)
    assert resp.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        resp.json()
    assert emu.requests[-1]["fault"] == "invalid_json"


def test_latency_fault_and_persistent_latency(emu: Emulator) -> None:
    emu.faults.add("latency", seconds=0.2)
    t0 = time.monotonic()
    assert get(emu).status_code == 200
    assert time.monotonic() - t0 >= 0.2
    assert emu.requests[-1]["fault"] == "latency"
    emu.faults.latency_ms = 100
    t0 = time.monotonic()
    assert get(emu).status_code == 200
    assert time.monotonic() - t0 >= 0.1


def test_bad_fault_kind() -> None:
    emulator = Emulator()
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator.faults.add("explode")


# -- transfer encodings ------------------------------------------------------------------------


def test_chunked_response_parses_to_same_data(convs: list[StoredConversation]) -> None:
    with Emulator(projects={A: convs}, clock=Clock(END)) as plain:
        ref = get(plain, {"limit": 50})
        assert "Content-Length" in ref.headers
        assert "Transfer-Encoding" not in ref.headers
    with Emulator(projects={A: convs}, clock=Clock(END), chunked=True) as chunky:
        resp = get(chunky, {"limit": 50})
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.json() == ref.json()
        assert page_all(chunky, {"limit": 50}) == page_all(chunky, {"limit": 7})
    with Emulator(projects={A: convs}, clock=Clock(END), chunked_threshold=10_000) as big:
        resp = get(big, {"limit": 50})
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.json() == ref.json()
        small = get(big, {"limit": 1})
        assert "Content-Length" in small.headers


# -- admin and CLI -----------------------------------------------------------------------------


def test_admin_endpoints(emu: Emulator) -> None:
    base = f"{emu.base_url}/_emulator"
    assert requests.get(f"{base}/health", timeout=10).json()["ok"] is True
    truth = requests.get(
        f"{base}/truth", params={"account_id": A[0], "project_id": A[1]}, timeout=10
    ).json()
    assert sorted(c["id"] for c in truth["conversations"]) == sorted(
        c["id"] for c in emu.visible(*A)
    )
    resp = requests.post(f"{base}/clock", json={"advance_seconds": 3600}, timeout=10)
    assert resp.json()["now"] == format_ts(END + timedelta(hours=1))
    resp = requests.post(f"{base}/clock", json={"now": "2026-11-01T00:00:00Z"}, timeout=10)
    assert emu.clock.now() == END
    resp = requests.post(f"{base}/faults", json={"kind": "server_error", "status": 503}, timeout=10)
    assert resp.json() == {"pending": 1}
    assert get(emu).status_code == 503
    assert requests.post(f"{base}/faults", json={"kind": "nope"}, timeout=10).status_code == 400
    stats = requests.get(f"{base}/stats", timeout=10).json()
    assert stats == {"requests": 1, "served_ids": 0, "served_records": 0}


def test_cli_serves_with_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tap_polyai.emulator",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--conversations",
            "60",
            "--end",
            "2026-11-01T00:00:00Z",
            "--api-key",
            "cli-key",
            "--late",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.05)
        port = int(port_file.read_text())
        url = f"http://127.0.0.1:{port}/v3/ws-demo/PROJECT-demo/conversations"
        resp = requests.get(url, headers={"x-api-key": "cli-key"}, timeout=10)
        assert resp.status_code == 200
        body = resp.json()
        assert 0 < len(body["conversations"]) <= 60
        assert body["cursor"] is None
        assert sum(c["in_progress"] for c in body["conversations"]) == 3
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"polyai-emulator listening on http://127.0.0.1:{port}" in err


def test_cli_on_a_taken_port_says_so_in_one_line_and_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "tap_polyai.emulator", "--port", str(port), "--days", "1"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "--port 0" in lines[0]
