"""Singer schemas of the streams, from PolyAI's v3 OpenAPI (ConversationSummaryResponse,
ConversationTurn, and ConversationDetailResponse for `conversation_details`) plus `barge_in`,
which PolyAI's prose documents and the OpenAPI omits.

Every property is nullable except the keys: PolyAI returns "" or null for absent values and
the schema must admit both. `state` is free-form JSON, so warehouses get one JSON column
(jsonb, VARIANT) rather than a column per agent variable. `records.py` checks each record
against the same field list, so what the tap emits always matches what it announces.

Every free-form object also declares `"properties": {}`: SDK-based targets (target-snowflake
among them) conform each record recursively and index an object schema's `properties`
without checking it exists, so `additionalProperties` alone crashes their load.

Types wider than the OpenAPI, on purpose (issue #10, schema drift): every numeric field is
`number`, none `integer` (the OpenAPI says integer for the durations and counts). A column
has to be wide before a fractional value arrives, because targets do not widen reliably once
loaded, measured: meltanolabs-target-postgres 0.8.1 keeps a `bigint` column when the SCHEMA
says `number` (the SDK's type merge keeps the current type) and PostgreSQL then rounds 12.25 to
12 silently; target-duckdb 0.8.0 renames the old column and starts a new one. Declared
`number`, they are PostgreSQL `numeric` (exact), Snowflake `FLOAT`, DuckDB `double`, and
whole values stay JSON integers in the records. `latency` (seconds) was `number` already.
Everything else drift-related (coercion, new fields, nulling) is in `drift.py`.
"""

from __future__ import annotations

import copy

from singer_sdk import typing as th

_STRING_OR_STRINGS: dict[str, object] = {
    "anyOf": [
        {"type": ["string", "null"]},
        {"type": "array", "items": {"type": "string"}},
    ]
}


def _free_object(values: dict[str, object] | bool) -> dict[str, object]:
    """A nullable object with arbitrary keys (values as `values` says); see module docstring."""
    return {"type": ["object", "null"], "properties": {}, "additionalProperties": values}


# name -> JSON schema of one turn field; shared by the nested `turns` and `conversation_turns`.
TURN_PROPERTIES: dict[str, th.JSONTypeHelper] = {
    "user_input": th.StringType(),
    "user_input_dtmf": th.StringType(),
    "user_input_datetime": th.DateTimeType(),
    "agent_response": th.StringType(),
    "agent_response_datetime": th.DateTimeType(),
    "latency": th.NumberType(),
    "translated_user_input": th.StringType(),
    "english_agent_response": th.StringType(),
    "intents": th.ArrayType(th.StringType),
    "entities": th.ArrayType(th.CustomType(_free_object(_STRING_OR_STRINGS))),
    "is_ood": th.BooleanType(),
    "is_silence": th.BooleanType(),
    "barge_in": th.BooleanType(),
}


def _properties(fields: dict[str, th.JSONTypeHelper]) -> list[th.Property]:
    return [th.Property(name, type_) for name, type_ in fields.items()]


TURN = th.ObjectType(*_properties(TURN_PROPERTIES))
TURN_SCHEMA: dict = TURN.to_dict()

CONVERSATION_PROPERTIES: dict[str, th.JSONTypeHelper] = {
    "account_id": th.StringType(),
    "project_id": th.StringType(),
    "variant_id": th.StringType(),
    "variant_name": th.StringType(),
    "environment": th.StringType(),
    "started_at": th.DateTimeType(),
    "channel": th.StringType(),
    "from_number": th.StringType(),
    "to_number": th.StringType(),
    "in_progress": th.BooleanType(),
    "num_turns": th.NumberType(),
    # Seconds. The OpenAPI says integer: see the module docstring for why `number`.
    "total_duration": th.NumberType(),
    "polyai_duration": th.NumberType(),
    "handoff": th.BooleanType(),
    "handoff_reason": th.StringType(),
    "handoff_destination": th.StringType(),
    "num_silences": th.NumberType(),
    "num_ood": th.NumberType(),
    "metrics": th.CustomType(_free_object(_STRING_OR_STRINGS)),
    "state": th.CustomType(_free_object(True)),
    "turns": th.ArrayType(TURN),
}

CONVERSATIONS_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True, description="Conversation ID."),
    *_properties(CONVERSATION_PROPERTIES),
).to_dict()

CONVERSATION_TURNS_SCHEMA = th.PropertiesList(
    th.Property("conversation_id", th.StringType, required=True),
    th.Property(
        "turn_index",
        th.IntegerType,
        required=True,
        description="0-based position in the conversation's `turns`.",
    ),
    th.Property("account_id", th.StringType),
    th.Property("project_id", th.StringType),
    th.Property("started_at", th.DateTimeType, description="The conversation's `started_at`."),
    *_properties(TURN_PROPERTIES),
).to_dict()

# With `delete_stale_turns` only: tombstone rows carry the Singer soft-delete marker.
CONVERSATION_TURNS_SCHEMA_WITH_TOMBSTONES = copy.deepcopy(CONVERSATION_TURNS_SCHEMA)
CONVERSATION_TURNS_SCHEMA_WITH_TOMBSTONES["properties"]["_sdc_deleted_at"] = {
    **th.DateTimeType().to_dict(),
    "description": "Set on tombstone rows: this turn index no longer exists.",
}

# `conversation_details`: what the Agents API's ConversationDetailResponse has and the list does
# not, snake_case (the API sends camelCase: `polyScore` -> `poly_score`), plus the keys to join
# on. Fields the list already has (channel, numbers, durations, handoff, turns, metrics) are not
# repeated. `duration` and the two durations of the list are the OpenAPI's integers: `number`,
# as above. `function_events` is an object in the OpenAPI, without properties: free JSON.
CONVERSATION_DETAIL_PROPERTIES: dict[str, th.JSONTypeHelper] = {
    "account_id": th.StringType(),
    "project_id": th.StringType(),
    "started_at": th.DateTimeType(),
    "created_at": th.DateTimeType(),
    "finished_at": th.DateTimeType(),
    "duration": th.NumberType(),
    "language": th.StringType(),
    "direction": th.StringType(),
    "tags": th.ArrayType(th.StringType),
    "poly_score": th.NumberType(),
    "short_summary": th.StringType(),
    "note": th.StringType(),
    "deployment_id": th.StringType(),
    "audio_url": th.StringType(),
    "function_events": th.CustomType(_free_object(True)),
}

CONVERSATION_DETAILS_SCHEMA = th.PropertiesList(
    th.Property("conversation_id", th.StringType, required=True, description="Conversation ID."),
    *_properties(CONVERSATION_DETAIL_PROPERTIES),
).to_dict()
