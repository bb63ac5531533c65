"""The `conversations` stream (and, fed from the same pages, `conversation_turns`).

Data flows one way: settings -> windows per project (`windows.py`) -> pages (`client.py`,
`pages.py`) -> records (`records.py`) -> a STATE checkpoint per finished window.

Bookmarks are ours, not the SDK's. The SDK would move an unsorted stream's bookmark to the
largest `started_at` seen, and only at the end of a partition; that skips in-progress
conversations and loses a killed sync's progress. Here the per-record bookmark update is
switched off and `_checkpoint` writes the bookmark `windows.BookmarkHold` allows after each
complete window.
"""

from __future__ import annotations

import datetime as dt
import functools
import typing as t

from singer_sdk import Stream
from singer_sdk.helpers._typing import TypeConformanceLevel

from tap_polyai.client import PolyAIClient
from tap_polyai.fetcher import fetch_in_order
from tap_polyai.records import RecordConformer
from tap_polyai.schema import CONVERSATIONS_SCHEMA
from tap_polyai.settings import Settings
from tap_polyai.windows import BookmarkHold, isoformat, plan_windows, read_range

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_polyai.tap import TapPolyAI

REPLICATION_KEY = "started_at"


class ConversationsStream(Stream):
    """PolyAI conversations with metadata, `state`, `metrics`, handoffs and turns."""

    name = "conversations"
    primary_keys = ("id",)
    replication_key = REPLICATION_KEY
    is_sorted = False
    schema = CONVERSATIONS_SCHEMA
    # records.RecordConformer already guarantees every record matches the schema (in C);
    # the SDK's Python walk over every field would cost two thirds of the sync.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapPolyAI) -> None:
        super().__init__(tap)
        self._polyai_tap = tap
        self._conformer = RecordConformer(self.logger)

    @functools.cached_property
    def _settings(self) -> Settings:
        # Read lazily: discovery and --about work without a complete config.
        return self._polyai_tap.settings

    @functools.cached_property
    def _client(self) -> PolyAIClient:
        return PolyAIClient(self._settings, self.logger)

    @property
    def partitions(self) -> list[dict]:
        return [p.context for p in self._settings.projects]

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """Switched off: the bookmark moves only in `_checkpoint`, after a complete window."""

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        assert context is not None, "conversations is always synced per project partition"
        project = next(
            p
            for p in self._settings.projects
            if (p.account_id, p.project_id) == (context["account_id"], context["project_id"])
        )
        started = self._polyai_tap.sync_started_at
        state = self.get_context_state(context)
        start, end = read_range(self._settings, state.get("replication_key_value"), started)
        windows = plan_windows(start, end, self._settings.window)
        self.logger.info(
            "Project %s: reading %s to %s in %d window(s) of %s",
            project.label,
            isoformat(start),
            isoformat(end),
            len(windows),
            self._settings.window,
        )
        hold = BookmarkHold(self._settings, end, self.logger)
        total = 0
        for window, raw_records in fetch_in_order(
            windows,
            lambda w, stop: self._client.conversations(project, w, stop),
            self._settings.max_concurrency,
        ):
            count = 0
            for raw in raw_records:
                record = self._conformer.conform(raw, project.label)
                hold.observe(record)
                count += 1
                yield record
            total += count
            self._checkpoint(context, hold.bookmark_after(window))
            self.logger.info(
                "Project %s: window %d of %d [%s, %s) done: %d conversation(s), %d so far",
                project.label,
                window.index,
                window.total,
                window.start_param,
                window.end_param,
                count,
                total,
            )

    def _checkpoint(self, context: Context, bookmark: dt.datetime) -> None:
        """Write the bookmark for `context` and emit STATE, after a complete window."""
        state = self.get_context_state(context)
        state["replication_key"] = REPLICATION_KEY
        state["replication_key_value"] = isoformat(bookmark)
        self.finalize_state_progress_markers(state)
