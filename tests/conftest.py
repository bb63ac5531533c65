"""Shared fixtures: an emulator with known data, a matching tap config, and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import pytest

from tap_polyai.emulator import Clock, Emulator, apply_drift, generate_conversations
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
