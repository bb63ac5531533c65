"""Bookmark rules: which time range a run reads, in which windows, and where it may checkpoint.

The rules, and why:
- A run reads `[max(start_date, bookmark - lookback), end)` where `end` is `end_date` or the
  moment the sync started, frozen for the run. The lookback re-reads a margin so conversations
  that reach the API late (ingestion delay) are still caught.
- The range is cut into windows of `window_hours`; each is requested as `start_time`/`end_time`
  `[start, end)`. After a window is complete the bookmark may move to its end, so a killed sync
  resumes at the last finished window.
- The API promises no order, so nothing is inferred from the order of records within a window;
  the bookmark is the window's end, never "the largest started_at seen".
- A conversation still `in_progress` will change. The bookmark is held at the earliest
  `started_at` of any in-progress conversation seen in this run, so the next run reads it again
  once finished. Conversations in progress for longer than `in_progress_hold_hours` stop
  holding it (and are named in a warning): one stuck conversation must not pin every run.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import dataclass

from tap_polyai.settings import Settings, parse_datetime


def isoformat(value: dt.datetime) -> str:
    """UTC, 'Z'-suffixed, microseconds only when present: what PolyAI accepts and emits."""
    text = value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    return f"{text}Z"


@dataclass(frozen=True)
class Window:
    """One `[start, end)` slice of one project's range."""

    start: dt.datetime
    end: dt.datetime
    index: int  # 1-based, for progress messages
    total: int

    @property
    def start_param(self) -> str:
        return isoformat(self.start)

    @property
    def end_param(self) -> str:
        return isoformat(self.end)


def read_range(
    settings: Settings, bookmark: str | None, sync_started_at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The `[start, end)` one project reads in this run."""
    end = min(settings.end_date or sync_started_at, sync_started_at)
    start = settings.start_date
    if bookmark:
        start = max(start, parse_datetime(bookmark) - settings.lookback)
    return start, end


def plan_windows(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> list[Window]:
    bounds: list[tuple[dt.datetime, dt.datetime]] = []
    cursor = start
    while cursor < end:
        bounds.append((cursor, min(cursor + size, end)))
        cursor += size
    return [Window(s, e, i + 1, len(bounds)) for i, (s, e) in enumerate(bounds)]


class BookmarkHold:
    """Tracks the earliest in-progress conversation that must be read again next run."""

    def __init__(self, settings: Settings, range_end: dt.datetime, logger: logging.Logger):
        self._oldest_held = range_end - settings.in_progress_hold
        self._logger = logger
        self.held_at: dt.datetime | None = None

    def observe(self, record: t.Mapping[str, t.Any]) -> None:
        if not record.get("in_progress"):
            return
        started_at = parse_datetime(record["started_at"])
        if started_at < self._oldest_held:
            self._logger.warning(
                "Conversation %s has been in progress since %s, longer than "
                "'in_progress_hold_hours'; it no longer holds the bookmark.",
                record.get("id"),
                record["started_at"],
            )
            return
        if self.held_at is None or started_at < self.held_at:
            self.held_at = started_at

    def bookmark_after(self, window: Window) -> dt.datetime:
        """Where the bookmark may stand once `window` and all windows before it are complete."""
        return window.end if self.held_at is None else min(self.held_at, window.end)
