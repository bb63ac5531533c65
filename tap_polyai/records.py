"""Turn API conversations into records that match the announced schema, cheaply.

The SDK's default per-field conformance walked every value of every turn in Python and cost
about two thirds of a sync. Here msgspec checks each conversation against typed dicts in C
(`msgspec.convert`, strict): a conversation with exactly the documented fields and types passes
as it is. Anything else — a field the schema does not know, a value of another type — goes to
the slow path, `drift.SchemaDrift`, which coerces, widens, nulls or declares new fields and
asks the streams to announce their SCHEMA again (`on_schema_change`). Errors and warnings name
the conversation id and the field path, never the value (transcripts, phone numbers).

`Conversation`/`Turn` are the one place the typed shape lives: a fast decoder built from them
must stay strict (no numeric strings, no integral floats for integers, no strings for
booleans, no unknown fields), so that everything drift handling would change reaches
`RecordConformer.conform` as a plain dict.
"""

from __future__ import annotations

import logging
import typing as t

import msgspec

from tap_polyai.drift import MODES, InvalidConversationError, SchemaDrift
from tap_polyai.schema import (
    CONVERSATION_PROPERTIES,
    CONVERSATION_TURNS_SCHEMA,
    CONVERSATIONS_SCHEMA,
    TURN_PROPERTIES,
    TURN_SCHEMA,
)

StringOrStrings = str | list[str] | None


class Turn(t.TypedDict, total=False):
    user_input: str | None
    user_input_dtmf: str | None
    user_input_datetime: str | None
    agent_response: str | None
    agent_response_datetime: str | None
    latency: float | None
    translated_user_input: str | None
    english_agent_response: str | None
    intents: list[str] | None
    entities: list[dict[str, StringOrStrings] | None] | None
    is_ood: bool | None
    is_silence: bool | None
    barge_in: bool | None


class _ConversationRequired(t.TypedDict):
    id: str
    started_at: str


class Conversation(_ConversationRequired, total=False):
    account_id: str | None
    project_id: str | None
    variant_id: str | None
    variant_name: str | None
    environment: str | None
    channel: str | None
    from_number: str | None
    to_number: str | None
    in_progress: bool | None
    num_turns: int | float | None
    total_duration: int | float | None
    polyai_duration: int | float | None
    handoff: bool | None
    handoff_reason: str | None
    handoff_destination: str | None
    num_silences: int | float | None
    num_ood: int | float | None
    metrics: dict[str, StringOrStrings] | None
    state: dict[str, t.Any] | None
    turns: list[Turn] | None


CONVERSATION_FIELDS = frozenset(Conversation.__annotations__)
TURN_FIELDS = frozenset(Turn.__annotations__)
# Turn timestamps come back as "" when absent; "" is not a date-time, so they become null.

assert {"id", *CONVERSATION_PROPERTIES} == CONVERSATION_FIELDS, "records.py and schema.py drifted"
assert set(TURN_PROPERTIES) == TURN_FIELDS, "records.py and schema.py drifted"


__all__ = ["Conversation", "InvalidConversationError", "RecordConformer", "Turn"]


class RecordConformer:
    """Fast typed check per conversation; drift handling (`drift.py`) for the rest."""

    def __init__(self, logger: logging.Logger, *, on_schema_mismatch: str = "warn") -> None:
        if on_schema_mismatch not in MODES:
            raise ValueError(
                f"on_schema_mismatch must be one of {MODES}, not {on_schema_mismatch!r}"
            )
        self._logger = logger
        self._mode = on_schema_mismatch
        self._drift: SchemaDrift | None = None
        self._on_schema_change: t.Callable[[set[str]], None] | None = None

    @property
    def drift(self) -> SchemaDrift:
        """The drift handling: against the catalog's schemas once `bind` gave them, else the
        tap's own. Built on first use: a stream binds before its sync, and copying both
        schemas for nothing cost every run (and `--discover`) a few ms of start-up."""
        if self._drift is None:
            self._drift = SchemaDrift(
                CONVERSATIONS_SCHEMA,
                CONVERSATION_TURNS_SCHEMA,
                TURN_SCHEMA["properties"],
                mode=self._mode,
                logger=self._logger,
            )
        return self._drift

    def bind(
        self,
        conversation_schema: dict[str, t.Any],
        turn_row_schema: dict[str, t.Any] | None,
        *,
        on_schema_mismatch: str,
        on_schema_change: t.Callable[[set[str]], None],
    ) -> None:
        """Check against the streams' own schemas (the catalog's); `on_schema_change` gets
        the names of the streams whose schema grew, before the record that needs it."""
        self._drift = SchemaDrift(
            conversation_schema,
            turn_row_schema,
            TURN_SCHEMA["properties"],
            mode=on_schema_mismatch,
            logger=self._logger,
        )
        self._on_schema_change = on_schema_change

    def conform(self, raw: dict[str, t.Any], project_label: str) -> dict[str, t.Any]:
        # Hot path (once per conversation): subset tests build no sets unless a field is new.
        turns = raw.get("turns")
        record: dict[str, t.Any]
        if raw.keys() <= CONVERSATION_FIELDS and (
            type(turns) is not list
            or all(type(turn) is dict and turn.keys() <= TURN_FIELDS for turn in turns)
        ):
            try:
                record = msgspec.convert(raw, Conversation)
            except msgspec.ValidationError:
                record = self._drifted(raw, project_label)
        else:
            record = self._drifted(raw, project_label)
        for turn in record.get("turns") or ():
            if turn.get("user_input_datetime") == "":
                turn["user_input_datetime"] = None
            if turn.get("agent_response_datetime") == "":
                turn["agent_response_datetime"] = None
        return record

    def _drifted(self, raw: dict[str, t.Any], project_label: str) -> dict[str, t.Any]:
        record = self.drift.conform(raw, project_label)
        changed = self.drift.take_changes()
        if changed and self._on_schema_change is not None:
            self._on_schema_change(changed)
        return record

    def summary(self, project_label: str) -> str:
        """One line: what drift handling did for this project (counts, new field names)."""
        return self.drift.summary(project_label)
