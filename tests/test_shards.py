"""Shard plans: every instant of `[start, end)` of every project in exactly one shard."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_polyai.shard_run import MeltanoProject
from tap_polyai.shards import Shard, plan_shards, projects_of, shards_at_once

UTC = dt.timezone.utc
BASE = dt.datetime(2024, 1, 1, tzinfo=UTC)
PROJECTS = [("ws-acme", "PROJECT-a"), ("ws-acme", "PROJECT-b"), ("ws-other", "PROJECT-c")]


def _covers_exactly(shards: list[Shard], start: dt.datetime, end: dt.datetime) -> None:
    """Sorted by start, the ranges chain end-to-start from `start` to `end`."""
    ranges = sorted((s.start, s.end) for s in shards)
    assert ranges[0][0] == start
    assert ranges[-1][1] == end
    for (_, previous_end), (next_start, _) in itertools.pairwise(ranges):
        assert previous_end == next_start  # no gap, no overlap ([start, end) ranges)
    assert all(a < b for a, b in ranges if b is not None)


@settings(deadline=None)
@given(
    start_minutes=st.integers(0, 60 * 24 * 400),
    length_minutes=st.integers(1, 60 * 24 * 800),
    pieces=st.integers(1, 40),
    jitter_minutes=st.integers(0, 7),
    projects=st.lists(st.sampled_from(PROJECTS), unique=True, max_size=3),
)
def test_plans_leave_no_gap_and_no_overlap(
    start_minutes: int,
    length_minutes: int,
    pieces: int,
    jitter_minutes: int,
    projects: list[tuple[str, str]],
) -> None:
    start = BASE + dt.timedelta(minutes=start_minutes)
    end = start + dt.timedelta(minutes=length_minutes)
    # Up to ~40 pieces, rarely a divisor of the range: the last piece is usually cut short.
    every = dt.timedelta(minutes=max(1, length_minutes // pieces + jitter_minutes))
    shards = plan_shards(start, end, every=every, projects=projects or None)
    groups = {(s.account_id, s.project_id) for s in shards}
    assert groups == (set(projects) if projects else {(None, None)})
    for account, project in groups:
        _covers_exactly([s for s in shards if s.project_id == project], start, end)
        assert {s.account_id for s in shards if s.project_id == project} == {account}
    # Names are unique (one state ID each) and survive a trip through the orchestrator.
    assert len({s.name for s in shards}) == len(shards)
    assert [Shard.from_dict(json.loads(json.dumps(s.to_dict()))) for s in shards] == shards
    # Date-major, project-minor: neighbours in the plan use different keys.
    if len(projects) > 1:
        assert [s.project_id for s in shards[: len(projects)]] == [p for _, p in projects]


def test_quarters_by_project() -> None:
    shards = plan_shards(
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
        every=dt.timedelta(days=91),
        projects=PROJECTS[:2],
    )
    assert len(shards) == 2 * 5  # four of 91 days and the 1 day left (2024 is a leap year)
    assert shards[0].to_dict() == {
        "name": f"ws_acme_PROJECT_a_20240101T0000_20240401T0000_{shards[0].digest}",
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-04-01T00:00:00Z",
        "account_id": "ws-acme",
        "project_id": "PROJECT-a",
    }
    assert shards[-1].end == dt.datetime(2025, 1, 1, tzinfo=UTC)


def test_open_ended_plan_is_one_incremental_shard_per_project() -> None:
    shards = plan_shards("2024-01-01", projects=PROJECTS)
    assert [(s.end, s.project_id) for s in shards] == [(None, p) for _, p in PROJECTS]
    assert shards[0].name == f"ws_acme_PROJECT_a_20240101T0000_open_{shards[0].digest}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"end": "2023-01-01T00:00:00Z", "every": dt.timedelta(days=1)}, "end must be later"),
        ({"end": "2025-01-01T00:00:00Z", "every": dt.timedelta(0)}, "every must be positive"),
        ({"projects": [PROJECTS[0], PROJECTS[0]]}, "projects must not repeat"),
    ],
)
def test_impossible_plans_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_shards("2024-01-01T00:00:00Z", **kwargs)  # type: ignore[arg-type]


def test_a_shard_gets_its_range_and_only_its_own_projects_key() -> None:
    environ = {
        "TAP_POLYAI_PROJECTS": json.dumps(
            [
                {"account_id": "ws-acme", "project_id": "PROJECT-a", "api_key": "key-a"},
                {"account_id": "ws-acme", "project_id": "PROJECT-b", "api_key": "key-b"},
            ]
        )
    }
    assert projects_of(environ) == PROJECTS[:2]
    shard = plan_shards(
        "2024-01-01", "2024-03-01", every=dt.timedelta(days=30), projects=projects_of(environ)
    )[1]
    env = shard.env(environ)
    assert env["TAP_POLYAI_START_DATE"] == "2024-01-01T00:00:00Z"
    assert env["TAP_POLYAI_END_DATE"] == "2024-01-31T00:00:00Z"
    assert json.loads(env["TAP_POLYAI_PROJECTS"]) == [
        {"account_id": "ws-acme", "project_id": "PROJECT-b", "api_key": "key-b"}
    ]
    assert "key" not in json.dumps(shard.to_dict())  # the plan itself carries no key
    assert "TAP_POLYAI_END_DATE" not in plan_shards("2024-01-01")[0].env({})
    with pytest.raises(ValueError, match="PROJECT-c is not in TAP_POLYAI_PROJECTS"):
        Shard(BASE, None, "ws-other", "PROJECT-c").env(environ)


@pytest.mark.parametrize(
    ("budget", "max_concurrency", "expected"), [(8, 2, 4), (8, 3, 2), (2, 4, 1), (16, 16, 1)]
)
def test_shards_at_once_keeps_requests_per_key_in_budget(
    budget: int, max_concurrency: int, expected: int
) -> None:
    at_once = shards_at_once(budget, max_concurrency)
    assert at_once == expected
    assert at_once * max_concurrency <= max(budget, max_concurrency)


def test_each_shard_runs_in_its_own_system_dir_sharing_the_installed_plugins(
    tmp_path: Path,
) -> None:
    for name in ("extractors", "loaders"):
        (tmp_path / ".meltano" / name).mkdir(parents=True)
    project = MeltanoProject(tmp_path, tmp_path / "meltano")
    a, b = plan_shards("2024-01-01", "2024-01-03", every=dt.timedelta(days=1))
    uri = {"MELTANO_DATABASE_URI": "postgresql+psycopg://db/meltano"}
    env_a, env_b = project.shard_env(a, uri), project.shard_env(b, uri)
    assert env_a["MELTANO_SYS_DIR_ROOT"] != env_b["MELTANO_SYS_DIR_ROOT"]
    for env in (env_a, env_b):
        sys_dir = Path(env["MELTANO_SYS_DIR_ROOT"])
        assert (sys_dir / "extractors").resolve() == (tmp_path / ".meltano" / "extractors")
        assert (sys_dir / "loaders").resolve() == (tmp_path / ".meltano" / "loaders")
        assert env["MELTANO_DATABASE_URI"] == uri["MELTANO_DATABASE_URI"]
    assert project.run_command(a)[-5:] == [
        "--state-id-suffix",
        a.name,
        "--force",
        "tap-polyai",
        "target-postgres",
    ]
    # SQLite (the default) cannot be shared between workers: refused, with the reason.
    with pytest.raises(RuntimeError, match="shared PostgreSQL system database"):
        project.shard_env(a, {})


def test_names_differ_where_sanitising_would_merge_them() -> None:
    projects = [("ws-a", "PROJECT-1"), ("ws-b", "PROJECT-1"), ("ws-c", "PROJECT.1")]
    shards = plan_shards("2024-01-01", "2024-02-01", projects=projects)
    names = [s.name for s in shards]
    assert len(set(names)) == 3
    for shard, (account, project) in zip(shards, projects, strict=True):
        assert shard.name.startswith(f"{account}_{project}_".replace("-", "_").replace(".", "_"))
        assert shard.name.endswith(f"_{shard.digest}")
    clean = Shard(BASE, None, "ws1", "P1")
    assert clean.name == "ws1_P1_20240101T0000_open", "nothing lost: no hash"


def test_the_planner_refuses_shards_that_would_share_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a hash collision could do it: simulate one.
    monkeypatch.setattr(Shard, "digest", property(lambda self: "00000000"))
    with pytest.raises(ValueError, match="unique; repeated: ws_a_P_1_20240101T0000_open"):
        plan_shards("2024-01-01", projects=[("ws-a", "P-1"), ("ws-a", "P.1")])


ids = st.text(alphabet=st.sampled_from("aZ09-_. é/"), min_size=1, max_size=6)


@settings(deadline=None, max_examples=200)
@given(projects=st.lists(st.tuples(ids, ids), unique=True, min_size=1, max_size=6))
def test_shard_names_are_unique_and_safe_for_any_ids(projects: list[tuple[str, str]]) -> None:
    shards = plan_shards("2024-01-01", "2024-01-03", every=dt.timedelta(days=1), projects=projects)
    names = [s.name for s in shards]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in names)


def test_the_runner_makes_its_dirs_0700_and_never_writes_through_planted_links(
    tmp_path: Path,
) -> None:
    for name in ("extractors", "loaders"):
        (tmp_path / ".meltano" / name).mkdir(parents=True)
    project = MeltanoProject(tmp_path, tmp_path / "meltano", run_root=tmp_path / "runs")
    uri = {"MELTANO_DATABASE_URI": "postgresql+psycopg://db/meltano"}
    a, b, c = plan_shards("2024-01-01", "2024-01-04", every=dt.timedelta(days=1))
    sys_dir = Path(project.shard_env(a, uri)["MELTANO_SYS_DIR_ROOT"])
    assert stat.S_IMODE(sys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o700

    # A planted directory symlink, and a planted plugin link: refused, nothing written there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project.shard_dir(b).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RuntimeError, match="symlink this runner did not make"):
        project.shard_env(b, uri)
    project.shard_dir(c).mkdir(mode=0o700)
    (project.shard_dir(c) / "extractors").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(RuntimeError, match="symlink this runner did not make"):
        project.shard_env(c, uri)
    assert list(elsewhere.iterdir()) == []


def test_the_pid_file_is_never_written_through_a_planted_symlink(tmp_path: Path) -> None:
    for name in ("extractors", "loaders"):
        (tmp_path / ".meltano" / name).mkdir(parents=True)
    meltano = tmp_path / "meltano"
    meltano.write_text("#!/bin/sh\nexit 0\n")
    meltano.chmod(0o700)
    project = MeltanoProject(tmp_path, meltano, run_root=tmp_path / "runs")
    (shard,) = plan_shards("2024-01-01", "2024-01-02")
    uri = {"MELTANO_DATABASE_URI": "postgresql+psycopg://db/meltano"}
    project.shard_env(shard, uri)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (project.shard_dir(shard) / "meltano.pid").symlink_to(victim)
    project.run(shard, uri)
    assert victim.read_text() == "precious"
    pid_file = project.shard_dir(shard) / "meltano.pid"
    assert not pid_file.is_symlink()
    assert pid_file.read_text().isdigit()
