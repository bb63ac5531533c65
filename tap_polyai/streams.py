"""The `conversations` stream, and `conversation_turns` and `conversation_details` fed from it.

Data flows one way: settings -> windows per project (`windows.py`) -> pages (`client.py`,
`pages.py`) -> records (`decoding.py`: one typed pass; `records.py` for what it rejects) ->
a STATE checkpoint per finished window.

Bookmarks are ours, not the SDK's. The SDK would move an unsorted stream's bookmark to the
largest `started_at` seen, and only at the end of a partition; that skips in-progress
conversations and loses a killed sync's progress. Here the per-record bookmark update is
switched off and `_checkpoint` writes the bookmark `windows.BookmarkHold` allows after each
complete window.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import functools
import logging
import math
import typing as t

from singer_sdk import Stream
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_polyai.client import PolyAIClient
from tap_polyai.decoding import ConversationPayload, RecordDecoder, SplicedRecord, turn_dicts
from tap_polyai.drift import SchemaDrift
from tap_polyai.fetcher import Fetcher
from tap_polyai.output import BufferedMsgSpecWriter
from tap_polyai.records import RecordConformer
from tap_polyai.schema import (
    CONVERSATION_DETAILS_SCHEMA,
    CONVERSATION_TURNS_SCHEMA,
    CONVERSATION_TURNS_SCHEMA_WITH_TOMBSTONES,
    CONVERSATIONS_SCHEMA,
)
from tap_polyai.settings import Project, Settings, parse_datetime
from tap_polyai.state import checkpoint_marks
from tap_polyai.windows import BookmarkHold, Window, WindowPlanner, isoformat, read_range

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    # details.py is imported where used: a run without `conversation_details` (the default)
    # never loads it and its thread pool (concurrent.futures), ~3 ms of start-up.
    from tap_polyai.details import DetailStage, SettleRule
    from tap_polyai.tap import TapPolyAI

REPLICATION_KEY = "started_at"
# Recorded next to the bookmark: conversations per hour over the last windows read (a hint
# for the next run's first windows, windows.WindowPlanner; absent or not a number: ignored).
RATE_MARK = "recent_conversations_per_hour"


class _PolyAIStream(Stream):
    """What both streams share: cheap record writing.

    Per record the SDK walks the whole record against the catalog to drop deselected properties
    (half the CPU of a sync with turns: every nested turn and entity is visited), conforms types,
    runs the stream map and builds a message object. Records here are already schema-checked
    (decoding.py, records.py), so conformance is off; and when nothing can change a record — no
    deselected property, no `stream_maps`, no flattening — it goes straight into the tap's
    buffered writer, as the JSON bytes received when it is a `SplicedRecord`. Otherwise the
    SDK's own path runs, unchanged, on plain dicts.
    """

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def log(self, message: str, *args: t.Any, level: int = logging.INFO, **kwargs: t.Any) -> None:
        """The SDK's "An unhandled error occurred" goes to DEBUG: the command line reports the
        error itself, once (tap.TapCommand)."""
        if level >= logging.ERROR and message.startswith("An unhandled error occurred"):
            level = logging.DEBUG
        super().log(message, *args, level=level, **kwargs)

    @functools.cached_property
    def _direct_writer(self) -> BufferedMsgSpecWriter | None:
        writer = self._tap.message_writer
        deselects = any(crumb and not selected for crumb, selected in self.mask.items())
        if (
            deselects
            or self.config.get("stream_maps")
            or self.config.get("flattening_enabled")
            # BATCH mode serialises the records `get_records` yields: they must be whole dicts
            or self.get_batch_config(self.config)
            or not isinstance(writer, BufferedMsgSpecWriter)
        ):
            return None
        return writer

    def _write_record_message(self, record: Record) -> None:
        if isinstance(record, SplicedRecord):  # only made when `_direct_writer` is set
            self._write_bodies((record.body(),))
        else:
            self._write_records((record,))

    def _write_bodies(self, bodies: t.Iterable[t.Any]) -> None:
        """Records that are JSON bytes already (`decoding.py`); needs `_direct_writer`."""
        writer = t.cast(BufferedMsgSpecWriter, self._direct_writer)
        now = dt.datetime.now(dt.timezone.utc)
        writer.write_record_bodies(self.name, bodies, self._stream_version, now)
        self.state_manager.is_flushed = False

    def _write_records(self, records: t.Iterable[Record]) -> None:
        writer = self._direct_writer
        if writer is None:
            for record in records:
                super()._write_record_message(record)
            return
        now = dt.datetime.now(dt.timezone.utc)
        writer.write_records(self.name, records, self._stream_version, now)
        self.state_manager.is_flushed = False

    def _announce_schema(self, schema: dict) -> None:
        """Schema drift grew the schema (drift.py): stream maps and targets see it now,
        before the record that needs it (the writer keeps message order)."""
        if self._input_schema is not None:  # a catalog was given: it is the schema
            self._input_schema = schema
        # As the SDK registers a catalog entry: only selected properties are announced.
        selected = get_selected_schema(self.name, schema, self.mask)
        self._tap.mapper.register_raw_stream_schema(self.name, selected, self.primary_keys)
        self._stream_maps = None  # the SDK caches the maps built from the old schema
        self._write_schema_message()


class ConversationsStream(_PolyAIStream):
    """PolyAI conversations with metadata, `state`, `metrics`, handoffs and turns."""

    name = "conversations"
    primary_keys = ("id",)
    replication_key = REPLICATION_KEY
    is_sorted = False
    schema = CONVERSATIONS_SCHEMA

    def __init__(self, tap: TapPolyAI) -> None:
        super().__init__(tap)
        self._polyai_tap = tap
        self._conformer = RecordConformer(self.logger)
        self._drift_bound = False
        self._fetcher: Fetcher[Project, ConversationPayload] | None = None
        self._planners: dict[str, WindowPlanner] = {}  # by project label
        self._recent_rate: dict[str, float] = {}  # conversations per second, by project label

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

    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> t.Iterable[Context | None]:
        """None: no SDK child sync per conversation (see ConversationTurnsStream)."""
        return ()

    def _turns_stream(self) -> ConversationTurnsStream | None:
        for child in self.child_streams:
            if isinstance(child, ConversationTurnsStream) and child.selected:
                return child
        return None

    def _details_stream(self) -> ConversationDetailsStream | None:
        for child in self.child_streams:
            if isinstance(child, ConversationDetailsStream) and child.selected:
                return child
        return None

    def _project(self, context: Context) -> Project:
        return next(
            p
            for p in self._settings.projects
            if (p.account_id, p.project_id) == (context["account_id"], context["project_id"])
        )

    def _read_range(self, project: Project) -> tuple[dt.datetime, dt.datetime]:
        """The `[start, end)` this run reads for `project`, from its bookmark."""
        state = self.get_context_state(project.context)
        started = self._polyai_tap.sync_started_at
        return read_range(self._settings, state.get("replication_key_value"), started)

    def _planner(self, project: Project) -> WindowPlanner:
        start, end = self._read_range(project)
        s = self._settings
        prior = _rate_mark(self.get_context_state(project.context).get(RATE_MARK))
        planner = WindowPlanner(
            start,
            end,
            s.window,
            s.page_size,
            s.max_concurrency,
            prior_rate=prior / 3600 if prior is not None else None,
        )
        self._planners[project.label] = planner
        return planner

    def _windows(
        self, project: Project
    ) -> t.Iterator[tuple[Window, t.Iterator[ConversationPayload]]]:
        """`project`'s windows in order, from a fetcher shared with the projects after it.

        The SDK syncs partitions one after another; the fetcher is told about the projects after
        it now, so their windows are fetched while this one's records are written (and while
        its planner waits for a result, its pool is not idle).
        """
        fetcher = self._fetcher
        if fetcher is None or not fetcher.has_next(project):
            if fetcher is not None:
                fetcher.close()
            fetcher = self._fetcher = Fetcher(
                self._client.conversations,
                _id_and_start,
                workers=self._settings.max_concurrency,
                budget_bytes=self._settings.max_buffer_bytes,
                logger=self.logger,
            )
            fetcher.add(project, self._planner(project))
        projects = list(self._settings.projects)
        following = projects[projects.index(project) + 1 :]
        for later in following:  # each queued once (its planner made once: checkpoints use it)
            if not fetcher.queued(later):
                fetcher.add(later, self._planner(later))
        completed = False
        try:
            yield from fetcher.windows(project)
            completed = True
        finally:
            if not (completed and following):
                fetcher.close()
                self._fetcher = None

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        assert context is not None, "conversations is always synced per project partition"
        project = self._project(context)
        start, end = self._read_range(project)
        self.logger.info(
            "Project %s: reading %s to %s (first window %s, then sized to the data)",
            project.label,
            isoformat(start),
            isoformat(end),
            self._settings.window,
        )
        hold = BookmarkHold(self._settings, end, self.logger)
        turns = self._turns_stream()
        self._bind_drift(turns)
        if turns is not None:
            turns.announce()
        decoder = RecordDecoder(self._conformer, spliced=self._direct_writer is not None)
        details = self._details_stream()
        stage = details.stage(self._client) if details is not None else None
        total = 0
        try:
            for number, (window, payloads) in enumerate(self._windows(project), start=1):
                count = 0
                for payload in payloads:
                    record = decoder.record(payload, project.label)
                    hold.observe(record)
                    count += 1
                    if turns is not None:
                        turns.emit_turns_of(record)
                    if stage is not None:
                        t.cast(ConversationDetailsStream, details).request(
                            stage, project, record, hold
                        )
                    yield record
                total += count
                rate = self._planners[project.label].recent_rate(window)
                if rate is not None:
                    self._recent_rate[project.label] = rate
                if stage is None:
                    self._checkpoint(context, hold.bookmark_after(window))
                else:
                    # Checkpoint only windows whose details are all written (details.py).
                    stage.end_window(window)
                    self._write_details(context, project, stage, hold, block=False)
                self.logger.info(
                    "Project %s: window %d [%s, %s) done: %d conversation(s), %d so far; "
                    "%d request(s) at once",
                    project.label,
                    number,
                    window.start_param,
                    window.end_param,
                    count,
                    total,
                    self._client.pool.limit,
                )
            if stage is not None:
                self._write_details(context, project, stage, hold, block=True)
        finally:
            if stage is not None:
                stage.close()
        self.logger.info("%s", self._conformer.summary(project.label))
        if details is not None:
            self.logger.info("%s", details.summary(project.label))

    def _write_details(
        self,
        context: Context,
        project: Project,
        stage: DetailStage[Window],
        hold: BookmarkHold,
        *,
        block: bool,
    ) -> None:
        """Write the details of the windows whose requests are all answered, and checkpoint
        each of them after its details: the bookmark never passes a detail not written."""
        details = t.cast(ConversationDetailsStream, self._details_stream())
        for window, results in stage.ready(block=block):
            details.write(project, results, hold)
            self._checkpoint(context, hold.bookmark_after(window))

    def _bind_drift(self, turns: ConversationTurnsStream | None) -> None:
        """Drift handling checks against these streams' schemas (the catalog's), once."""
        if self._drift_bound:
            return
        self._drift_bound = True
        self._conformer.bind(
            self.effective_schema,
            turns.effective_schema if turns is not None else None,
            on_schema_mismatch=self._settings.on_schema_mismatch,
            on_schema_change=functools.partial(self._schema_changed, turns),
        )

    def _schema_changed(self, turns: ConversationTurnsStream | None, streams: set[str]) -> None:
        drift = self._conformer.drift
        if "conversations" in streams:
            self._announce_schema(drift.conversation_schema)
        if turns is not None and drift.turn_row_schema and "conversation_turns" in streams:
            turns._announce_schema(drift.turn_row_schema)

    def _checkpoint(self, context: Context, bookmark: dt.datetime) -> None:
        """Write the bookmark for `context` and emit STATE, after a complete window."""
        state = self.get_context_state(context)
        state["replication_key"] = REPLICATION_KEY
        state["replication_key_value"] = isoformat(bookmark)
        state.update(checkpoint_marks(self._settings))  # what it belongs to: see state.py
        rate = self._recent_rate.get(self._project(context).label)
        if rate is not None:
            # How dense the project was lately: the next run sizes its first windows from it.
            # A string: target-postgres reads STATE numbers as Decimal and then cannot write
            # them back out ("Object of type Decimal is not JSON serializable").
            state[RATE_MARK] = f"{rate * 3600:.3f}"
        self.finalize_state_progress_markers(state)


def _rate_mark(value: t.Any) -> float | None:
    """`recent_conversations_per_hour` from a state (written as a string; a number is taken
    too, the SDK reads those as Decimal); None,
    so the run plans blind, when it is absent (a first run, an older release) or not a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal)):
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    return rate if 0 < rate < math.inf else None


def _id_and_start(payload: ConversationPayload) -> tuple[str, str | None]:
    """What the fetcher needs to split a window after its first page."""
    if payload.typed is not None:
        return payload.id, payload.typed.started_at
    started = payload.plain.get("started_at") if isinstance(payload.plain, dict) else None
    return payload.id, started if isinstance(started, str) else None


MAX_TOMBSTONES = 10_000  # per conversation: a larger `num_turns` is not believed


def _missing_turn_indexes(conversation: Record, delivered: int) -> range:
    """Turn indexes a finished conversation counts (`num_turns`) but no longer shows.

    Stale rows appear when PolyAI hides a transcript after it was loaded (`turns` empty while
    `num_turns` > 0). In-progress conversations are skipped: their turns are still arriving.
    """
    source = conversation.typed if isinstance(conversation, SplicedRecord) else None
    if source is not None:
        num_turns, in_progress = source.num_turns, source.in_progress
    else:
        num_turns, in_progress = conversation.get("num_turns"), conversation.get("in_progress")
    if in_progress is not False or not isinstance(num_turns, (int, float)):
        return range(0)
    return range(delivered, min(int(num_turns), MAX_TOMBSTONES))


class ConversationTurnsStream(_PolyAIStream):
    """One row per turn, for analysts; built from the pages `conversations` already fetched.

    Declared as a child of `conversations` so that selecting only this stream still runs the
    fetch. The SDK's child machinery is not used to sync it: that would run one child sync per
    conversation, each writing a SCHEMA and a STATE message and logging the whole context
    (transcript text). Instead `ConversationsStream` calls `announce` once per partition and
    `emit_turns_of` per conversation, before the conversation itself is written (so a
    deselected `conversations.turns` property still feeds this stream). Its bookmark is the
    parent's: turns are re-emitted whenever their conversation is re-read, so the turns of a
    finished call replace the partial ones (upsert on `conversation_id`, `turn_index`).
    """

    name = "conversation_turns"
    parent_stream_type = ConversationsStream
    primary_keys = ("conversation_id", "turn_index")
    replication_key = REPLICATION_KEY
    is_sorted = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    schema = CONVERSATION_TURNS_SCHEMA

    def __init__(self, tap: TapPolyAI) -> None:
        super().__init__(tap)
        if tap.config.get("delete_stale_turns"):
            self.schema = CONVERSATION_TURNS_SCHEMA_WITH_TOMBSTONES

    TYPE_CONFORMANCE_LEVEL = (
        TypeConformanceLevel.NONE
    )  # turns were validated with their conversation

    _announced = False

    def announce(self) -> None:
        """Write this stream's SCHEMA, once per sync."""
        if not self._announced:
            self._announced = True
            self._write_schema_message()

    def emit_turns_of(self, conversation: Record) -> None:
        head = {
            "conversation_id": conversation["id"],
            "account_id": conversation.get("account_id"),
            "project_id": conversation.get("project_id"),
            "started_at": conversation["started_at"],
        }
        if isinstance(conversation, SplicedRecord):
            delivered = len(conversation.turns())
            writer = self._direct_writer
            if writer is not None:
                writer.write_indexed_records(
                    self.name,
                    head,
                    "turn_index",
                    conversation.turns(),
                    version=self._stream_version,
                    extracted=dt.datetime.now(dt.timezone.utc),
                )
                self.state_manager.is_flushed = False
            else:
                self._write_records(
                    {**head, "turn_index": index, **turn}
                    for index, turn in enumerate(turn_dicts(conversation))
                )
        else:
            turns = conversation.get("turns") or ()
            delivered = len(turns)
            if turns:
                self._write_records(
                    {**head, "turn_index": index, **turn} for index, turn in enumerate(turns)
                )
        if self._delete_stale_turns:
            missing = _missing_turn_indexes(conversation, delivered)
            if missing:
                deleted_at = self._deleted_at
                self._write_records(
                    {**head, "turn_index": index, "_sdc_deleted_at": deleted_at}
                    for index in missing
                )

    @functools.cached_property
    def _delete_stale_turns(self) -> bool:
        return bool(self._tap.settings.delete_stale_turns)  # type: ignore[attr-defined]

    @functools.cached_property
    def _deleted_at(self) -> str:
        return isoformat(self._tap.sync_started_at)  # type: ignore[attr-defined]

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """No state of its own: the parent's per-project bookmark governs both streams."""

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        """Never called by the SDK: records come through `emit_turns_of`."""
        return ()


class ConversationDetailsStream(_PolyAIStream):
    """PolyAI's summary, PolyScore, tags, language, direction and function events: one row per
    finished conversation, from the Agents API's conversation detail (`details.py`).

    Off unless selected (one extra request per conversation). A child of `conversations`, fed
    like `conversation_turns`: `ConversationsStream` hands it each conversation it writes
    (`request`) and, per window, the answered details (`write`) before that window's
    checkpoint. Its bookmark is the parent's; a re-read conversation's detail is read again and
    replaces the row (upsert on `conversation_id`).
    """

    name = "conversation_details"
    parent_stream_type = ConversationsStream
    primary_keys = ("conversation_id",)
    replication_key = REPLICATION_KEY
    is_sorted = False
    selected_by_default = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    schema = CONVERSATION_DETAILS_SCHEMA

    _announced = False
    _drift: SchemaDrift | None = None

    @functools.cached_property
    def _settings(self) -> Settings:
        return self._tap.settings  # type: ignore[attr-defined]

    @functools.cached_property
    def _rule(self) -> SettleRule:
        from tap_polyai.details import SettleRule

        return SettleRule(self._settings.details_settle, self._tap.sync_started_at)  # type: ignore[attr-defined]

    def stage(self, client: PolyAIClient) -> DetailStage[Window]:
        """A fetch stage for one project's sync; announces this stream's SCHEMA once."""
        if not self._announced:
            self._announced = True
            self._write_schema_message()
        if self._drift is None:
            self._drift = SchemaDrift(
                self.effective_schema,
                None,
                {},
                mode=self._settings.on_schema_mismatch,
                logger=self.logger,
                stream=self.name,
                required=("conversation_id", "started_at"),
            )
        from tap_polyai.details import DetailStage

        return DetailStage(client.detail, workers=self._settings.max_concurrency)

    def request(
        self,
        stage: DetailStage[Window],
        project: Project,
        conversation: Record,
        hold: BookmarkHold,
    ) -> None:
        """Ask for a finished conversation's detail, or hold the bookmark until it settles."""
        if conversation.get("in_progress") is not False:
            return  # in progress: `BookmarkHold.observe` holds the bookmark already
        if self._rule.worth_reading(conversation) or not self._hold(conversation, hold):
            stage.submit(project, _list_fields(conversation))
            self._count(project)["requested"] += 1
        else:
            self._count(project)["held"] += 1

    def write(
        self,
        project: Project,
        results: list[tuple[t.Mapping[str, t.Any], t.Any]],
        hold: BookmarkHold,
    ) -> None:
        """The details of one window: settled ones written, the others hold the bookmark."""
        from tap_polyai.details import blank_dates_to_null, extract, record_of

        drift = t.cast(SchemaDrift, self._drift)
        rows = []
        counts = self._count(project)
        for conversation, detail in results:
            if detail.not_found is not None:
                counts["not_found"] += 1
                self.logger.warning(
                    "Project %s: conversation %s: %s for its detail, though this project's "
                    "detail endpoint answered before in this run: deleted since the list "
                    "showed it. No conversation_details row for it; the sync goes on.",
                    project.label,
                    conversation.get("id"),
                    detail.not_found,
                )
                continue
            if not self._rule.settled(detail) and self._hold(conversation, hold):
                counts["held"] += 1
                continue
            row = drift.conform(record_of(extract(detail.body), conversation), project.label)
            if drift.take_changes():
                self._announce_schema(drift.conversation_schema)
            rows.append(blank_dates_to_null(row))
        if rows:
            self._write_records(rows)
            counts["written"] += len(rows)

    @functools.cached_property
    def _counts(self) -> collections.defaultdict[str, collections.Counter[str]]:
        """Per project label: details requested, rows written, conversations held (not
        settled), 404s skipped; the end-of-stream line (`summary`) reports them."""
        return collections.defaultdict(collections.Counter)

    def _count(self, project: Project) -> collections.Counter[str]:
        return self._counts[project.label]

    def _hold(self, conversation: t.Mapping[str, t.Any], hold: BookmarkHold) -> bool:
        """Hold the bookmark at the conversation; False when it is too old to hold (cap)."""
        started = conversation.get("started_at")
        try:
            started_at = parse_datetime(started) if isinstance(started, str) else None
        except ValueError:
            started_at = None
        if started_at is not None and hold.hold_at(started_at):
            return True
        self.logger.warning(
            "Conversation %s: its detail has not settled (no finishedAt %s ago), and it started "
            "before 'in_progress_hold_hours'; loading the detail as it is.",
            conversation.get("id"),
            self._rule.settle,
        )
        return False

    def summary(self, project_label: str) -> str:
        """The end-of-stream line: what happened to the details, then their schema drift."""
        c = self._counts[project_label]
        line = (
            f"Project {project_label}: conversation_details: {c['requested']} detail "
            f"request(s), {c['written']} row(s) written, {c['held']} held until they settle, "
            f"{c['not_found']} not found (HTTP 404: deleted since the list showed them)"
        )
        drift = self._drift
        if drift is None:
            return line
        return f"{line}; {drift.summary(project_label).removeprefix(f'Project {project_label}: ')}"

    def _increment_stream_state(
        self, latest_record: Record, *, context: Context | None = None
    ) -> None:
        """No state of its own: the parent's per-project bookmark governs it."""

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        """Never called by the SDK: records come through `write`."""
        return ()


def _list_fields(conversation: Record) -> dict[str, t.Any]:
    """What a detail request keeps of the list's record (not the turns)."""
    return {
        key: conversation.get(key)
        for key in ("id", "account_id", "project_id", "started_at", "total_duration")
    }
