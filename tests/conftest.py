"""Shared fixtures: an emulator with known data, a matching tap config, and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

import pytest

from tap_polyai.emulator import Clock, Emulator, apply_drift, generate_conversations, parse_ts
from tests.pipeline_support import fresh_database, require_postgres, target_postgres_executable

# The emulated "now": in the past, so that `end_date` can always be set to it (the tap caps
# the range at its own start time) and the tap's clock and the emulator's agree.
NOW = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).replace(
    minute=0, second=0, microsecond=0
)
DATA_START = NOW - dt.timedelta(days=3)
ACCOUNT = "ws-acme"
PROJECTS = ("PROJECT-alpha", "PROJECT-beta")
KEYS = {"PROJECT-alpha": "key-alpha-9f3b2c", "PROJECT-beta": "key-beta-77d1e0"}


def iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def make_emulator(**kwargs: t.Any) -> Emulator:
    """Two projects with their own keys; alpha pages by cursor, beta by offset (v2-like)."""
    emulator = Emulator(
        clock=Clock(NOW),
        api_keys={(ACCOUNT, p): KEYS[p] for p in PROJECTS},
        pagination={(ACCOUNT, "PROJECT-alpha"): "cursor", (ACCOUNT, "PROJECT-beta"): "offset"},
        **kwargs,
    )
    for seed, project in enumerate(PROJECTS):
        emulator.add_conversations(
            ACCOUNT,
            project,
            generate_conversations(
                ACCOUNT,
                project,
                count=240,
                start=DATA_START,
                end=NOW,
                seed=seed,
                in_progress=3,
                late=3,
            ),
        )
    return emulator


def drift_emulator(*, count: int) -> Emulator:
    """Both projects' conversations with every drift the emulator applies (issue #10),
    fractional counts included."""
    emulator = Emulator(clock=Clock(NOW), api_keys={(ACCOUNT, p): KEYS[p] for p in PROJECTS})
    for seed, project in enumerate(PROJECTS):
        convs = generate_conversations(
            ACCOUNT, project, count=count, start=DATA_START, end=NOW, seed=seed, in_progress=2
        )
        apply_drift(convs, fractional_counts=True)
        emulator.add_conversations(ACCOUNT, project, convs)
    return emulator


def live_conversations(emulator: Emulator) -> dict[str, dict[str, t.Any]]:
    """What the API shows now in the tap's default client_env (live), by id."""
    return {
        rec["id"]: rec
        for p in PROJECTS
        for rec in emulator.visible(ACCOUNT, p)
        if rec.get("environment") == "live"
    }


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with make_emulator() as emu:
        yield emu


def tap_config(emulator: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    config: dict[str, t.Any] = {
        "api_url": emulator.base_url,
        "projects": [
            {"account_id": ACCOUNT, "project_id": "PROJECT-alpha"},
            {"account_id": ACCOUNT, "project_id": "PROJECT-beta", "api_key": KEYS["PROJECT-beta"]},
        ],
        "api_key": KEYS["PROJECT-alpha"],
        "start_date": iso(DATA_START - dt.timedelta(hours=1)),
        "end_date": iso(emulator.clock.now()),
        "page_size": 20,
        "window_hours": 12,
        "retry_base_seconds": 0.01,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def admin_url() -> str:
    """The PostgreSQL server's URL, once it answers (checked before any venv is built)."""
    return require_postgres()


@pytest.fixture(scope="module")
def target_postgres(admin_url: str) -> Path:
    return target_postgres_executable()


@pytest.fixture
def database(admin_url: str) -> t.Iterator[str]:
    """A fresh database with a random name (yielded: `postgres_url(database)`), then dropped."""
    with fresh_database(admin_url) as name:
        yield name


# conversation_details: ConversationDetailResponse's fields that `conversations` lacks, and
# their column names (written out here, not derived with the tap's own conversion).
DETAIL_COLUMNS = {
    "conversationId": "conversation_id",
    "accountId": "account_id",
    "projectId": "project_id",
    "startedAt": "started_at",
    "createdAt": "created_at",
    "finishedAt": "finished_at",
    "duration": "duration",
    "language": "language",
    "direction": "direction",
    "tags": "tags",
    "polyScore": "poly_score",
    "shortSummary": "short_summary",
    "note": "note",
    "deploymentId": "deployment_id",
    "audioUrl": "audio_url",
    "functionEvents": "function_events",
}
DETAIL_SETTLE = dt.timedelta(minutes=30)  # the default `details_settle_minutes`
_DETAIL_TIMES = ("started_at", "created_at", "finished_at")
_DETAIL_JSON = ("tags", "function_events")
_DETAIL_NUMBERS = ("duration", "poly_score")


def live_details(emulator: Emulator) -> dict[str, dict[str, t.Any]]:
    """The detail row the API shows now for every finished live conversation whose detail has
    settled (finished at least DETAIL_SETTLE before the emulator's clock), by id."""
    rows = {}
    now = emulator.clock.now()
    for cid, conv in live_conversations(emulator).items():
        if conv["in_progress"]:
            continue
        detail = emulator.detail(ACCOUNT, conv["project_id"], cid)
        finished = detail.get("finishedAt")
        if not finished or parse_ts(finished) + DETAIL_SETTLE > now:
            continue
        rows[cid] = {col: detail[f] for f, col in DETAIL_COLUMNS.items() if f in detail}
    return rows


def _loaded_value(column: str, value: t.Any) -> t.Any:
    """A warehouse value as the JSON value it was loaded from (time, JSON text, decimals)."""
    if value is None or value == "":
        return None  # target-duckdb loads "" as NULL
    if column in _DETAIL_TIMES:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if column in _DETAIL_JSON and isinstance(value, str):
        return json.loads(value)
    if column in _DETAIL_NUMBERS:
        return float(value)
    return value


def assert_loaded_details(
    loaded: t.Iterable[dict[str, t.Any]], expected: dict[str, dict[str, t.Any]]
) -> None:
    """One loaded row per expected detail, each column equal to the API's value."""
    rows = [{k.lower(): v for k, v in row.items()} for row in loaded]
    by_id = {row["conversation_id"]: row for row in rows}
    assert len(by_id) == len(rows), "one row per conversation_id"
    assert by_id.keys() == expected.keys()
    for cid, want in expected.items():
        got = by_id[cid]
        for column, value in want.items():
            wanted = None if value == "" else value
            if column in _DETAIL_TIMES:
                wanted = parse_ts(value)
            elif column in _DETAIL_NUMBERS and value is not None:
                wanted = float(value)
            assert _loaded_value(column, got.get(column)) == wanted, (cid, column)
