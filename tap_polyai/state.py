"""Incoming state is input too: check it before the first request, refuse what is not ours.

Why: a bookmark decides what a run reads *and* what it writes back. A malformed state made the
SDK crash with a traceback; a bookmark in the future (2099) made every run read nothing,
forever, and exit 0; and a bookmark taken from another shard (a shared state ID, a copied state
file) made a run skip its whole range and save the other shard's bookmark as its own — data
lost silently. So the state is checked once, when the tap loads it, before any STATE message is
written (a refused state is never overwritten).

What a checkpoint records (see `checkpoint_marks`), next to `replication_key_value` in the
project's partition (`bookmarks.conversations.partitions[]`):
- the project: the partition's `context` (`account_id`, `project_id`), as the SDK keeps it;
- `start_date` and `end_date`: the range the run was configured with (`end_date` null when
  unbounded);
- `recent_conversations_per_hour` (a string; written by `streams.py`): how dense the project was
  over the last windows read, from which the next run sizes its first windows. A hint only:
  nothing here checks it, and an unreadable value makes the next run plan blind.

A checkpoint is refused when its bookmark cannot be this run's own:
- the bookmark is later than the sync start by more than `lookback_minutes` (wrong state;
  small clock skew within the lookback is accepted);
- the bookmark is later than this run's `end_date` (it belongs to a later range);
- the checkpoint was made with another `start_date`: in a shard plan, project and `start_date`
  identify a shard, so this is another shard's (or the range was changed on purpose: then
  re-read once with `--full-refresh`, see docs/incremental.md).
A different recorded `end_date` alone is accepted: moving `end_date` on (a backfill extended,
or an orchestrator passing each run's interval end) continues from the bookmark, which is
correct, and a bookmark beyond a reduced `end_date` is caught by the rule above.
State from releases before the recorded range (no `start_date`/`end_date` keys) is accepted and
gets the range at its next checkpoint.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_polyai.settings import Project, Settings, parse_datetime
from tap_polyai.windows import isoformat

STREAM = "conversations"
RESET_HINT = (
    "To reset it: `meltano state clear --force <state-id>` (`meltano state list` shows the IDs), "
    "or run once with `meltano run --full-refresh ...`; without Meltano, run without `--state`."
)
FOREIGN_HINT = (
    "It probably came from another shard or a shared state file: give every shard its own "
    "state ID (`meltano run --state-id-suffix <shard> ...`)."
)
RANGE_CHANGE_HINT = (
    "If you changed 'start_date' or 'end_date' on purpose, re-read the new range once with "
    "`meltano run --full-refresh ...` (without Meltano: without `--state`)."
)


class InvalidStateError(Exception):
    """The incoming state cannot be used; the message is for the user (no traceback)."""


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else isoformat(value)


def checkpoint_marks(settings: Settings) -> dict[str, str | None]:
    """What each checkpoint records besides its bookmark: the range this run was given."""
    return {"start_date": _iso(settings.start_date), "end_date": _iso(settings.end_date)}


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _partitions(state: t.Mapping[str, t.Any], settings: Settings) -> list[t.Any]:
    """The conversations partitions, after checking the shape down to them."""
    labels = ", ".join(p.label for p in settings.projects)
    where = f"State (--state) of project(s) {labels}"
    if not isinstance(state, t.Mapping):
        raise InvalidStateError(f"{where} must be a JSON object, not {_kind(state)}. {RESET_HINT}")
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, t.Mapping):
        raise InvalidStateError(
            f"{where}: 'bookmarks' must be an object keyed by stream name, not "
            f"{_kind(bookmarks)}. {RESET_HINT}"
        )
    for name, stream_state in bookmarks.items():
        if not isinstance(stream_state, t.Mapping):
            raise InvalidStateError(
                f"{where}: 'bookmarks.{name}' must be an object, not {_kind(stream_state)}. "
                f"{RESET_HINT}"
            )
    partitions = bookmarks.get(STREAM, {}).get("partitions", [])
    if not isinstance(partitions, list):
        raise InvalidStateError(
            f"{where}: 'bookmarks.{STREAM}.partitions' must be a list (one entry per "
            f"project), not {_kind(partitions)}. {RESET_HINT}"
        )
    for index, partition in enumerate(partitions):
        context = partition.get("context") if isinstance(partition, t.Mapping) else None
        if not isinstance(context, t.Mapping) or not {"account_id", "project_id"} <= set(context):
            raise InvalidStateError(
                f"{where}: 'bookmarks.{STREAM}.partitions[{index}]' has no project context "
                f"({{'context': {{'account_id': ..., 'project_id': ...}}}}). {RESET_HINT}"
            )
    return partitions


def _date(partition: t.Mapping[str, t.Any], key: str, label: str) -> dt.datetime | None:
    value = partition.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return parse_datetime(value)
    except ValueError:
        raise InvalidStateError(
            f"State (--state) for project {label}: '{key}' is not an ISO8601 date-time: "
            f"{_short(value)}. {RESET_HINT}"
        ) from None


def _check_partition(
    partition: t.Mapping[str, t.Any],
    project: Project,
    settings: Settings,
    sync_started_at: dt.datetime,
) -> str | None:
    label = project.label
    where = f"State (--state) for project {label}"
    bookmark = _date(partition, "replication_key_value", label)
    recorded_start = _date(partition, "start_date", label)
    recorded_end = _date(partition, "end_date", label)  # informative (module docstring)
    if bookmark is None:
        return None
    if bookmark > sync_started_at + settings.lookback:
        raise InvalidStateError(
            f"{where} is wrong: its bookmark {_iso(bookmark)} is later than this run's start "
            f"({_iso(sync_started_at)}) by more than 'lookback_minutes'; a run would read "
            f"nothing. {RESET_HINT}"
        )
    if settings.end_date is not None and bookmark > settings.end_date:
        raise InvalidStateError(
            f"{where} is not this run's: its bookmark {_iso(bookmark)} is after this run's "
            f"'end_date' {_iso(settings.end_date)}. {FOREIGN_HINT} {RANGE_CHANGE_HINT}"
        )
    if recorded_start is None:
        return None  # written by a release that did not record the range: accepted as before
    if recorded_start != settings.start_date:
        raise InvalidStateError(
            f"{where} is not this run's: its checkpoint was made with start_date="
            f"{_iso(recorded_start)}, this run has start_date={_iso(settings.start_date)}. "
            f"{FOREIGN_HINT} {RANGE_CHANGE_HINT}"
        )
    if "end_date" in partition and recorded_end != settings.end_date:
        return (
            f"Project {label}: the checkpoint was made with end_date={_iso(recorded_end)}, this "
            f"run has end_date={_iso(settings.end_date)}; going on from its bookmark "
            f"{_iso(bookmark)}."
        )
    return None


def check_state(
    state: t.Mapping[str, t.Any], settings: Settings, sync_started_at: dt.datetime
) -> list[str]:
    """Raise InvalidStateError unless every configured project's checkpoint can be its own.

    Returns notices worth one log line each (a moved `end_date`).
    """
    notices: list[str] = []
    partitions = _partitions(state, settings)
    projects = {(p.account_id, p.project_id): p for p in settings.projects}
    for partition in partitions:
        context = partition["context"]
        project = projects.get((context["account_id"], context["project_id"]))
        if project is None:
            # Another project's bookmark (removed from `projects`): carried along, never read.
            # Its dates must still parse, or it would break the run that reads it.
            label = f"{context['account_id']}/{context['project_id']}"
            for key in ("replication_key_value", "start_date", "end_date"):
                _date(partition, key, label)
            continue
        notice = _check_partition(partition, project, settings, sync_started_at)
        if notice:
            notices.append(notice)
    return notices
