"""Incoming state is input: bad or foreign state stops the tap with a clear error, writes no STATE.

Messages are checked through the real CLI (stderr, exit code, stdout) because that is what a
user sees; the states that a shard really writes come from in-process runs.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import pytest
from conftest import ACCOUNT, DATA_START, NOW, iso, tap_config
from tap_runner import TapRun, run_cli, run_tap

from tap_polyai.emulator import Emulator

ALPHA = f"{ACCOUNT}/PROJECT-alpha"
RESET = "meltano state clear --force <state-id>"


def _state(**partition: t.Any) -> dict[str, t.Any]:
    entry = {"context": {"account_id": ACCOUNT, "project_id": "PROJECT-alpha"}, **partition}
    return {"bookmarks": {"conversations": {"partitions": [entry]}}}


def _partition(state: dict[str, t.Any], project_id: str) -> dict[str, t.Any]:
    for entry in state["bookmarks"]["conversations"]["partitions"]:
        if entry["context"]["project_id"] == project_id:
            return t.cast(dict[str, t.Any], entry)
    raise AssertionError(f"no partition for {project_id} in {state}")


def _refused(run: TapRun, emulator: Emulator, *expected: str) -> str:
    """The run stopped before any request with one readable error; returns that error."""
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.of_type("STATE") == []  # nothing overwritten
    assert emulator.requests == []  # not one request
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr[-3000:]
    for text in expected:
        assert text in errors[0], (text, errors[0])
    return errors[0]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            _state(replication_key_value="yesterday"),
            ["project ws-acme/PROJECT-alpha", "'yesterday'"],
        ),
        (_state(replication_key_value=1700000000), ["project ws-acme/PROJECT-alpha", "ISO8601"]),
        ({"bookmarks": []}, ["'bookmarks' must be an object", "not a list"]),
        ({"bookmarks": {"conversations": []}}, ["'bookmarks.conversations' must be an object"]),
        (
            {"bookmarks": {"conversations": {"partitions": {"x": 1}}}},
            ["'bookmarks.conversations.partitions' must be a list"],
        ),
        (
            {"bookmarks": {"conversations": {"partitions": [{"replication_key_value": "x"}]}}},
            ["partitions[0]' has no project context"],
        ),
    ],
    ids=[
        "bookmark-not-a-date",
        "bookmark-a-number",
        "bookmarks-a-list",
        "stream-a-list",
        "partitions-an-object",
        "partition-without-context",
    ],
)
def test_malformed_state_is_a_clear_error_naming_the_state(
    emulator: Emulator, tmp_path: Path, state: dict[str, t.Any], expected: list[str]
) -> None:
    run = run_cli(tap_config(emulator), tmp_path, state=state)
    _refused(run, emulator, "State (--state)", RESET, "--full-refresh", *expected)


def test_bookmark_far_in_the_future_is_wrong_state_with_how_to_reset(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tap_config(emulator)
    del config["end_date"]  # an incremental run, up to its own start
    run = run_cli(config, tmp_path, state=_state(replication_key_value="2099-01-01T00:00:00Z"))
    _refused(run, emulator, ALPHA, "is wrong", "2099-01-01T00:00:00Z", RESET, "--full-refresh")


def test_clock_skew_within_the_lookback_is_harmless(emulator: Emulator, tmp_path: Path) -> None:
    config = tap_config(emulator, lookback_minutes=60)
    del config["end_date"]
    ahead = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=20)
    run = run_cli(config, tmp_path, state=_state(replication_key_value=iso(ahead)))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ERROR" not in run.stderr
    # Read from the bookmark less the lookback, as usual; the bookmark then stands at the end
    # of what was read (this run's start), a little before the skewed one: nothing skipped.
    starts = {
        r["params"]["start_time"][0]
        for r in emulator.requests
        if r["project_id"] == "PROJECT-alpha" and "start_time" in r["params"]
    }
    assert starts == {iso(ahead - dt.timedelta(minutes=60))}
    assert _partition(run.final_state, "PROJECT-alpha")["replication_key_value"] <= iso(ahead)


def test_a_shard_given_a_later_shards_state_stops_and_overwrites_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    middle = NOW - dt.timedelta(days=1)
    later_shard = tap_config(emulator, start_date=iso(middle), end_date=iso(NOW))
    later_state = run_tap(later_shard).final_state
    emulator.requests.clear()

    earlier_shard = tap_config(emulator, start_date=iso(DATA_START), end_date=iso(middle))
    run = run_cli(earlier_shard, tmp_path, state=later_state)
    error = _refused(run, emulator, ALPHA, f"after this run's 'end_date' {iso(middle)}")
    assert "another shard or a shared state file" in error
    assert "--state-id-suffix" in error


def test_a_checkpoint_made_with_another_range_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    # Same end, different start: the bookmark is inside this run's range, only the recorded
    # range shows that the checkpoint belongs to another shard.
    middle = NOW - dt.timedelta(days=1)
    other = tap_config(emulator, start_date=iso(middle), end_date=iso(NOW))
    other_state = run_tap(other).final_state
    assert _partition(other_state, "PROJECT-alpha")["start_date"] == iso(middle)
    emulator.requests.clear()

    mine = tap_config(emulator, start_date=iso(DATA_START), end_date=iso(NOW))
    run = run_cli(mine, tmp_path, state=other_state)
    _refused(
        run,
        emulator,
        ALPHA,
        f"made with start_date={iso(middle)}, this run has start_date={iso(DATA_START)}",
        "another shard or a shared state file",
        "changed 'start_date' or 'end_date' on purpose",
        "--full-refresh",
    )


def test_a_deliberate_start_date_change_runs_once_without_state_then_resumes_as_usual(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The documented way: `--full-refresh` (no incoming state) once with the new range."""
    old = tap_config(emulator)
    old_state = run_tap(old).final_state
    new = tap_config(emulator, start_date=iso(DATA_START + dt.timedelta(days=1)))
    (tmp_path / "refused").mkdir()
    refused = run_cli(new, tmp_path / "refused", state=old_state)
    assert refused.returncode == 1
    assert "changed 'start_date' or 'end_date' on purpose" in refused.stderr
    assert refused.of_type("STATE") == []

    (tmp_path / "full-refresh").mkdir()
    refreshed = run_cli(new, tmp_path / "full-refresh")  # what --full-refresh runs
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    alpha = _partition(refreshed.final_state, "PROJECT-alpha")
    assert (alpha["start_date"], alpha["end_date"]) == (new["start_date"], new["end_date"])

    (tmp_path / "next").mkdir()
    again = run_cli(new, tmp_path / "next", state=refreshed.final_state)
    assert again.returncode == 0, again.stderr[-3000:]


def test_moving_end_date_on_continues_from_the_bookmark(emulator: Emulator, tmp_path: Path) -> None:
    """A backfill extended, or an orchestrator passing each interval's end: no error."""
    first_end = NOW - dt.timedelta(days=1)
    state = run_tap(tap_config(emulator, end_date=iso(first_end))).final_state
    assert _partition(state, "PROJECT-alpha")["replication_key_value"] == iso(first_end)
    emulator.requests.clear()

    run = run_cli(tap_config(emulator), tmp_path, state=state)  # end_date = NOW
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        f"Project {ALPHA}: the checkpoint was made with end_date={iso(first_end)}, this run has "
        f"end_date={iso(NOW)}; going on from its bookmark {iso(first_end)}."
    ) in run.stderr
    starts = {
        r["params"]["start_time"][0]
        for r in emulator.requests
        if r["project_id"] == "PROJECT-alpha" and "start_time" in r["params"]
    }
    assert min(starts) == iso(first_end - dt.timedelta(minutes=60))  # the bookmark less lookback
    alpha = _partition(run.final_state, "PROJECT-alpha")
    assert alpha["end_date"] == iso(NOW)
    assert alpha["replication_key_value"] > iso(first_end)  # moved on (held by in-progress)


def test_state_from_the_previous_release_without_a_range_is_accepted(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tap_config(emulator)
    state = run_tap(config).final_state
    for entry in state["bookmarks"]["conversations"]["partitions"]:
        del entry["start_date"], entry["end_date"]  # as the previous release wrote it
    emulator.requests.clear()

    run = run_cli(config, tmp_path, state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ERROR" not in run.stderr
    assert emulator.requests  # it read again from its bookmark
    alpha = _partition(run.final_state, "PROJECT-alpha")
    assert (alpha["start_date"], alpha["end_date"]) == (config["start_date"], config["end_date"])


def test_a_removed_projects_partition_is_carried_along_untouched(emulator: Emulator) -> None:
    foreign = {
        "context": {"account_id": ACCOUNT, "project_id": "PROJECT-gone"},
        "replication_key": "started_at",
        "replication_key_value": "2099-01-01T00:00:00Z",
        "start_date": "2001-01-01T00:00:00Z",
        "end_date": None,
    }
    state = {"bookmarks": {"conversations": {"partitions": [foreign]}}}
    run = run_tap(tap_config(emulator), state=state)
    assert _partition(run.final_state, "PROJECT-gone") == foreign
    assert _partition(run.final_state, "PROJECT-alpha")["replication_key_value"]
