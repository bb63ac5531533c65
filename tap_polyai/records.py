"""Turn API conversations into records that match `schema.py`, cheaply.

The SDK's default per-field conformance walked every value of every turn in Python and cost
about two thirds of a sync. Here msgspec checks each conversation against typed dicts in C
(`msgspec.convert`), which both guarantees the record matches the announced schema and drops
fields the schema does not know. Fields PolyAI adds later are therefore dropped, not fatal;
their *names* are logged once so a schema update is visible. A value of the wrong type is a
broken API contract: the sync stops with the conversation id and the field path, never the
value (values are transcripts and phone numbers).
"""

from __future__ import annotations

import logging
import typing as t

import msgspec

from tap_polyai.schema import CONVERSATION_PROPERTIES, TURN_PROPERTIES

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
    num_turns: int | None
    total_duration: int | None
    polyai_duration: int | None
    handoff: bool | None
    handoff_reason: str | None
    handoff_destination: str | None
    num_silences: int | None
    num_ood: int | None
    metrics: dict[str, StringOrStrings] | None
    state: dict[str, t.Any] | None
    turns: list[Turn] | None


CONVERSATION_FIELDS = frozenset(Conversation.__annotations__)
TURN_FIELDS = frozenset(Turn.__annotations__)
# Turn timestamps come back as "" when absent; "" is not a date-time, so they become null.

assert {"id", *CONVERSATION_PROPERTIES} == CONVERSATION_FIELDS, "records.py and schema.py drifted"
assert set(TURN_PROPERTIES) == TURN_FIELDS, "records.py and schema.py drifted"


class InvalidConversationError(Exception):
    """A conversation that does not match PolyAI's documented schema."""


class RecordConformer:
    """Validates conversations; remembers which unknown field names it already reported."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._reported: set[str] = set()

    def conform(self, raw: dict[str, t.Any], project_label: str) -> dict[str, t.Any]:
        # Hot path (once per conversation): subset tests build no sets unless a field is new.
        turns = raw.get("turns")
        if not raw.keys() <= CONVERSATION_FIELDS or (
            type(turns) is list
            and not all(type(turn) is not dict or turn.keys() <= TURN_FIELDS for turn in turns)
        ):
            self._report_unknown(raw, project_label)
        try:
            record: dict[str, t.Any] = msgspec.convert(raw, Conversation, strict=False)
        except msgspec.ValidationError as exc:
            conversation_id = raw.get("id") if isinstance(raw.get("id"), str) else "?"
            # msgspec's message names the expected type and the path (`$.turns[3].latency`),
            # never the offending value.
            msg = (
                f"Project {project_label}: conversation {conversation_id} does not match "
                f"PolyAI's schema: {exc}"
            )
            raise InvalidConversationError(msg) from None
        for turn in record.get("turns") or ():
            if turn.get("user_input_datetime") == "":
                turn["user_input_datetime"] = None
            if turn.get("agent_response_datetime") == "":
                turn["agent_response_datetime"] = None
        return record

    def _report_unknown(self, raw: dict[str, t.Any], project_label: str) -> None:
        unknown = raw.keys() - CONVERSATION_FIELDS
        for turn in raw.get("turns") or ():
            if isinstance(turn, dict):
                unknown |= {f"turns[].{name}" for name in turn.keys() - TURN_FIELDS}
        if unknown - self._reported:
            self._reported |= unknown
            self._logger.warning(
                "Project %s: the API returned fields the schema does not know; they are "
                "dropped (update tap-polyai to load them): %s",
                project_label,
                ", ".join(sorted(unknown)),
            )
