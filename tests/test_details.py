"""conversation_details: one Agents API request per finished conversation, settled, complete.

The expected rows are built from the emulator's detail with the OpenAPI's field names written
out (conftest.DETAIL_COLUMNS), not with the tap's own camelCase conversion.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

import pytest
from conftest import (
    ACCOUNT,
    DETAIL_COLUMNS,
    DETAIL_SETTLE,
    KEYS,
    NOW,
    PROJECTS,
    live_conversations,
    live_details,
    make_emulator,
    tap_config,
)
from hostile_server import SECRET, Answer, HostileServer, Seen, hostile_config, page
from hostile_server import conversations as hostile_conversations
from singer_sdk.exceptions import ConfigValidationError
from tap_runner import (
    assert_records_match_announced_schemas,
    bookmark,
    discover,
    run_cli,
    run_cli_until_killed,
    run_tap,
    selecting,
)

from tap_polyai.emulator import Emulator, parse_ts
from tap_polyai.errors import PolyAIError
from tap_polyai.settings import load_settings

STREAM = "conversation_details"
SETTLE = DETAIL_SETTLE


def details_catalog(config: dict[str, t.Any]) -> dict[str, t.Any]:
    return selecting(discover(config), STREAM)


def expected_row(emulator: Emulator, project_id: str, conversation_id: str) -> dict[str, t.Any]:
    detail = emulator.detail(ACCOUNT, project_id, conversation_id)
    return {column: detail[field] for field, column in DETAIL_COLUMNS.items() if field in detail}


def expected_rows(emulator: Emulator) -> dict[str, dict[str, t.Any]]:
    return live_details(emulator)


def detail_requests(emulator: Emulator) -> list[dict[str, t.Any]]:
    return [r for r in emulator.requests if "/v1/agents/" in r["path"]]


def test_off_by_default_and_a_deselected_run_makes_no_detail_request(emulator: Emulator) -> None:
    config = tap_config(emulator)
    catalog = discover(config)
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == STREAM)
    root = next(m["metadata"] for m in entry["metadata"] if not m["breadcrumb"])
    assert root["selected-by-default"] is False
    assert root["selected"] is False
    assert list(entry["key_properties"]) == ["conversation_id"]
    run = run_tap(config)
    assert run.records()
    assert run.records(STREAM) == []
    assert STREAM not in [m["stream"] for m in run.of_type("SCHEMA")]
    assert detail_requests(emulator) == []


def test_one_row_per_settled_finished_conversation_equal_to_the_api(emulator: Emulator) -> None:
    config = tap_config(emulator)
    run = run_tap(config, catalog=details_catalog(config))
    assert_records_match_announced_schemas(run)
    rows = {r["conversation_id"]: r for r in run.records(STREAM)}
    assert len(rows) == len(run.records(STREAM)), "one row per conversation"
    expected = expected_rows(emulator)
    assert len(expected) > 300
    assert rows == expected
    assert any(r.get("poly_score") is not None and r.get("short_summary") for r in rows.values())
    # Exactly one request per finished conversation read; none for those in progress.
    finished = [c["id"] for c in run.records() if c["in_progress"] is False]
    requested = [r["path"].rsplit("/", 1)[1] for r in detail_requests(emulator)]
    assert sorted(requested) == sorted(finished)
    running = {c["id"] for c in run.records() if c["in_progress"]}
    assert running
    assert not running & set(rows)
    # The list's fields are not repeated.
    assert not {"channel", "from_number", "turns", "metrics", "total_duration"} & {
        k for r in rows.values() for k in r
    }


def test_a_detail_waits_for_its_summary_and_holds_the_bookmark_until_then() -> None:
    with make_emulator() as emulator:
        running = next(
            c
            for c in live_conversations(emulator).values()
            if c["in_progress"] and c["project_id"] == "PROJECT-alpha"
        )
        stored = emulator._stores[(ACCOUNT, "PROJECT-alpha")].get(running["id"])
        assert stored is not None
        # Five minutes after the call ended: finished, but PolyAI's summary is not there yet.
        emulator.clock.set(stored.ended_at + dt.timedelta(minutes=5))
        config = tap_config(emulator)
        catalog = details_catalog(config)
        early = run_tap(config, catalog=catalog)
        assert running["id"] in {c["id"] for c in early.records() if not c["in_progress"]}
        assert running["id"] not in {r["conversation_id"] for r in early.records(STREAM)}
        held = bookmark(early.final_state, "PROJECT-alpha")
        assert held is not None
        assert parse_ts(held) <= parse_ts(running["started_at"])

        emulator.clock.set(stored.ended_at + SETTLE + dt.timedelta(minutes=1))
        later = run_tap(tap_config(emulator), state=early.final_state, catalog=catalog)
        rows = {r["conversation_id"]: r for r in later.records(STREAM)}
        assert rows[running["id"]] == expected_row(emulator, "PROJECT-alpha", running["id"])
        assert rows[running["id"]]["short_summary"]
        assert rows[running["id"]]["poly_score"] is not None


def test_a_sync_killed_and_faulted_ends_with_every_detail_exactly_once(tmp_path: Path) -> None:
    """The runs a user schedules: one killed with SIGKILL, its resumption through 429s and
    5xx on both hosts, and a later one once the calls in progress have finished."""
    with make_emulator(latency_ms=15) as emulator:
        config = tap_config(emulator, max_concurrency=1)
        catalog = details_catalog(config)
        killed = run_cli_until_killed(config, tmp_path, states=4, catalog=catalog)
        last = max(i for i, m in enumerate(killed) if m["type"] == "STATE")
        checkpoint = killed[last]["value"]
        before = killed[:last]
        # The checkpoint passes no conversation whose detail is not written before it.
        written = {
            m["record"]["conversation_id"]
            for m in before
            if m["type"] == "RECORD" and m["stream"] == STREAM
        }
        assert bookmark(checkpoint, "PROJECT-alpha") is not None
        for project in PROJECTS:
            mark = bookmark(checkpoint, project)
            if mark is None:
                continue  # not started when killed
            covered = {
                cid
                for cid, conv in expected_rows(emulator).items()
                if conv["project_id"] == project and parse_ts(conv["started_at"]) < parse_ts(mark)
            }
            assert covered, project
            assert covered <= written, project

        emulator.reset_stats()
        emulator.faults.add("rate_limit", times=3, endpoint="details", retry_after="0")
        emulator.faults.add("server_error", times=2, endpoint="details", status=503)
        emulator.faults.add("reset", times=1, endpoint="details")
        emulator.faults.add("server_error", times=2, endpoint="conversations", status=502)
        resumed = run_tap(config, state=checkpoint, catalog=catalog)
        assert len(emulator.faults) == 0
        finished = [c["id"] for c in resumed.records() if c["in_progress"] is False]
        answered = [r for r in detail_requests(emulator) if r["status"] == 200]
        assert sorted(r["conversation_id"] for r in answered) == sorted(finished)
        assert len(detail_requests(emulator)) == len(finished) + 6, "+ one per fault"

        # Hours later every call in progress has ended and settled: the next run loads them.
        emulator.clock.set(NOW + dt.timedelta(hours=7))
        later = run_tap(tap_config(emulator), state=resumed.final_state, catalog=catalog)
        rows: dict[str, dict[str, t.Any]] = {}
        for run in (before, resumed.messages, later.messages):
            for message in run:
                if message["type"] == "RECORD" and message["stream"] == STREAM:
                    rows[message["record"]["conversation_id"]] = message["record"]
        expected = expected_rows(emulator)
        in_progress_at_first = {c["id"] for c in resumed.records() if c["in_progress"]}
        assert in_progress_at_first
        assert in_progress_at_first <= set(expected)
        assert rows == expected


def test_keys_and_hosts_of_the_agents_api() -> None:
    base = {"account_id": ACCOUNT, "project_id": "PROJECT-alpha", "api_key": "k"}
    base["start_date"] = "2026-01-01T00:00:00Z"
    for region, host in [
        ("us-1", "https://api.us.poly.ai"),
        ("uk-1", "https://api.uk.poly.ai"),
        ("euw-1", "https://api.eu.poly.ai"),
    ]:
        assert load_settings({**base, "region": region}).agents_base_url == host
    proxied = load_settings({**base, "api_url": "http://127.0.0.1:9/polyai/v3"})
    assert proxied.agents_base_url == "http://127.0.0.1:9/polyai"
    own = load_settings({**base, "api_url": "https://a:1", "agents_api_url": "https://b/v1/"})
    assert own.agents_base_url == "https://b"
    settings = load_settings(
        {
            **base,
            "agents_api_key": "top",
            "projects": [
                {"account_id": ACCOUNT, "project_id": "P2", "agents_api_key": "own"},
                {"account_id": ACCOUNT, "project_id": "P3", "api_key": "k3"},
            ],
        }
    )
    assert [p.agents_api_key for p in settings.projects] == ["top", "own", "top"]
    assert load_settings(base).projects[0].agents_api_key == "k"
    assert "k" not in repr(load_settings(base).projects[0])
    assert load_settings(base).details_settle == SETTLE


def test_a_project_with_its_own_agents_api_key() -> None:
    with make_emulator(agents_api_keys={"PROJECT-beta": "agents-beta-5e1"}) as emulator:
        config = tap_config(emulator)
        config["projects"][1]["agents_api_key"] = "agents-beta-5e1"
        run = run_tap(config, catalog=details_catalog(config))
        assert {r["project_id"] for r in run.records(STREAM)} == set(PROJECTS)


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"agents_api_key": "wrong-key-123"}, 401, ["agents_api_key", "rejected"]),
        ({"agents_api_key": KEYS["PROJECT-beta"]}, 403, ["agents_api_key", "not allowed"]),
        ({"agents_api_url": "{base}/elsewhere"}, 404, ["agents_api_url", "not found"]),
    ],
)
def test_auth_and_host_errors_name_the_host_and_the_setting(
    emulator: Emulator, change: dict[str, str], status: int, words: list[str]
) -> None:
    change = {k: v.format(base=emulator.base_url) for k, v in change.items()}
    config = tap_config(
        emulator,
        projects=[{"account_id": ACCOUNT, "project_id": "PROJECT-alpha"}],
        max_concurrency=1,
        **change,
    )
    with pytest.raises(PolyAIError) as failure:
        run_tap(config, catalog=details_catalog(config))
    message = str(failure.value)
    assert f"HTTP {status} from 127.0.0.1:{emulator.port}" in message
    assert f"{ACCOUNT}/PROJECT-alpha" in message
    assert "error_id=" in message
    for word in words:
        assert word in message
    for key in (*KEYS.values(), "wrong-key-123"):
        assert key not in message
    assert [r["status"] for r in detail_requests(emulator)] == [status], "no retry"


def test_a_conversation_deleted_before_its_detail_is_read_is_skipped_with_a_warning(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Once the project's detail endpoint has answered in this run, a 404 for one conversation
    (deleted since the list showed it) is a warning naming it, the project, the status and
    PolyAI's error fields; it gets no row, and the sync goes on to the end."""
    config = tap_config(emulator)
    expected = expected_rows(emulator)
    alpha = sorted(
        (r["started_at"], cid) for cid, r in expected.items() if r["project_id"] == "PROJECT-alpha"
    )
    # Well after the first max_concurrency requests: its request starts once others answered.
    victim = alpha[len(alpha) // 2][1]
    emulator.faults.add("deleted", conversation_id=victim)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(details_catalog(config)))
    run = run_cli(config, tmp_path, "--catalog", str(catalog_file))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r["conversation_id"]: r for r in run.records(STREAM)}
    assert victim not in rows
    assert rows == {cid: row for cid, row in expected.items() if cid != victim}
    assert victim in {c["id"] for c in run.records()}, "its conversation row is loaded"
    warning = next(line for line in run.stderr.splitlines() if f"conversation {victim}:" in line)
    assert "WARNING" in warning
    assert f"Project {ACCOUNT}/PROJECT-alpha" in warning
    assert f"HTTP 404 from 127.0.0.1:{emulator.port}" in warning
    assert "error_code=CONVERSATIONS_NOT_FOUND" in warning
    assert "error_id=" in warning
    assert "the sync goes on" in warning
    assert f"Project {ACCOUNT}/PROJECT-alpha: conversation_details: " in run.stderr
    assert "1 not found (HTTP 404" in run.stderr
    assert f"Project {ACCOUNT}/PROJECT-beta: conversation_details: " in run.stderr
    assert "0 not found (HTTP 404" in run.stderr
    statuses = {r["conversation_id"]: r["status"] for r in detail_requests(emulator)}
    assert statuses.pop(victim) == 404
    assert set(statuses.values()) == {200}
    assert [r["conversation_id"] for r in detail_requests(emulator)].count(victim) == 1, (
        "not retried"
    )
    for key in KEYS.values():
        assert key not in run.stderr


def test_a_404_before_the_detail_endpoint_answered_stops_the_sync(emulator: Emulator) -> None:
    """The project's first detail answer is a 404: host or agent may be wrong, so it is the
    named error (host, `agents_api_url`), not a skipped conversation."""
    config = tap_config(
        emulator,
        projects=[{"account_id": ACCOUNT, "project_id": "PROJECT-alpha"}],
        max_concurrency=1,
    )
    emulator.faults.add("deleted", project_id="PROJECT-alpha")
    with pytest.raises(PolyAIError) as failure:
        run_tap(config, catalog=details_catalog(config))
    message = str(failure.value)
    (first,) = detail_requests(emulator)
    assert first["status"] == 404
    assert f"HTTP 404 from 127.0.0.1:{emulator.port}" in message
    assert f"conversation {first['conversation_id']}" in message
    assert "agents_api_url" in message
    assert "error_code=CONVERSATIONS_NOT_FOUND" in message


def test_detail_drift_is_coerced_and_new_fields_are_declared() -> None:
    with make_emulator(detail_drift=True) as emulator:
        config = tap_config(emulator)
        run = run_tap(config, catalog=details_catalog(config))
        assert_records_match_announced_schemas(run)
        rows = run.records(STREAM)
        assert all(isinstance(r.get("poly_score"), (float, type(None))) for r in rows)
        assert any(r.get("call_outcome") for r in rows)
        schemas = [m["schema"] for m in run.of_type("SCHEMA", STREAM)]
        assert "call_outcome" not in schemas[0]["properties"]
        assert "call_outcome" in schemas[-1]["properties"]


def test_preflight_checks_the_agents_api_when_the_stream_is_selected(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tap_config(emulator)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(details_catalog(config)))
    # `--test` before `--catalog`: click has not parsed the catalog when `--test` runs.
    run = run_cli(config, tmp_path, "--test", "--catalog", str(catalog_file))
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Agents API key accepted") == 2
    assert len(detail_requests(emulator)) == 2

    emulator.reset_stats()
    run = run_cli(config, tmp_path, "--test")  # not selected: the Agents API is not asked
    assert run.returncode == 0, run.stderr
    assert detail_requests(emulator) == []

    wrong = tap_config(emulator, agents_api_key="wrong-key-123")
    run = run_cli(wrong, tmp_path, "--catalog", str(catalog_file), "--test")
    assert run.returncode == 1
    failed = [line for line in run.stderr.splitlines() if "Pre-flight FAILED" in line]
    assert len(failed) == 2
    assert all("HTTP 401" in line and "agents_api_key" in line for line in failed)
    assert "wrong-key-123" not in run.stderr

    # An empty range: an id that cannot exist; CONVERSATIONS_NOT_FOUND proves host and key.
    empty = {"start_date": "2020-01-01T00:00:00Z", "end_date": "2020-01-02T00:00:00Z"}
    run = run_cli(tap_config(emulator, **empty), tmp_path, "--catalog", str(catalog_file), "--test")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Agents API key accepted") == 2
    elsewhere = tap_config(emulator, agents_api_url=f"{emulator.base_url}/elsewhere", **empty)
    run = run_cli(elsewhere, tmp_path, "--catalog", str(catalog_file), "--test")
    assert run.returncode == 1
    assert run.stderr.count("HTTP 404") == 2
    assert "agents_api_url" in run.stderr


def test_the_agents_api_host_gets_the_same_key_guard() -> None:
    """A redirect from the detail host is refused (the key stays), and plain http to a remote
    Agents API host needs the same opt-in as `api_url`."""
    listed = hostile_conversations(2)
    with HostileServer(lambda seen: (200, {}, {})) as elsewhere:

        def answer(seen: Seen) -> Answer:
            if "/v1/agents/" in seen.path:
                return 302, {"Location": f"{elsewhere.base_url}{seen.path}"}, b""
            return 200, {}, page(listed)

        with HostileServer(answer) as api:
            config = hostile_config(api.base_url)
            catalog = details_catalog(config)
            with pytest.raises(PolyAIError) as failure:
                run_tap(config, catalog=catalog)
    message = str(failure.value)
    assert "HTTP 302" in message
    assert "'agents_api_url'" in message
    assert elsewhere.requests == [], "the redirect was not followed"
    assert SECRET not in message

    remote = hostile_config("https://api.example.com", agents_api_url="http://agents.example.com")
    with pytest.raises(ConfigValidationError) as refused:
        load_settings(remote)
    (error,) = refused.value.errors
    assert "'agents_api_url'" in error
    assert "'allow_insecure_http'" in error
