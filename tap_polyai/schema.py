"""Singer schemas of the streams, from PolyAI's v3 OpenAPI (ConversationSummaryResponse,
ConversationTurn) plus `barge_in`, which PolyAI's prose documents and the OpenAPI omits.

Every property is nullable except the keys: PolyAI returns "" or null for absent values and
the schema must admit both. `state` is free-form JSON, so warehouses get one JSON column
(jsonb, VARIANT) rather than a column per agent variable. `records.py` checks each record
against the same field list, so what the tap emits always matches what it announces.

Every free-form object also declares `"properties": {}`: SDK-based targets (target-snowflake
among them) conform each record recursively and index an object schema's `properties`
without checking it exists, so `additionalProperties` alone crashes their load.

Types wider than the OpenAPI, on purpose (issue #10, schema drift):
- `total_duration`, `polyai_duration` are `number`, not `integer`: durations in seconds are the
  fields most likely to arrive fractional (12.25), and a column declared wide from the start
  never has to change type mid-load. Targets make them PostgreSQL `numeric` (exact), Snowflake
  `FLOAT`, DuckDB `double`; integral values stay JSON integers in the records.
- `latency` (seconds, fractional by nature) was `number` already.
- Counts (`num_turns`, `num_silences`, `num_ood`) stay `integer`: a fraction there would be an
  API bug. Should one arrive anyway, `drift.py` widens that property to `number` at run time
  and announces the SCHEMA again (PostgreSQL alters `bigint` to `numeric`; DuckDB renames the
  old column to `<name>_<timestamp>` and adds a new one — see README "Schema drift").
Everything else drift-related (coercion, new fields, nulling) is in `drift.py`.
"""

from __future__ import annotations

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
    "num_turns": th.IntegerType(),
    # Seconds. The OpenAPI says integer; declared `number` so a fractional duration loads
    # without a column change (see the module docstring).
    "total_duration": th.NumberType(),
    "polyai_duration": th.NumberType(),
    "handoff": th.BooleanType(),
    "handoff_reason": th.StringType(),
    "handoff_destination": th.StringType(),
    "num_silences": th.IntegerType(),
    "num_ood": th.IntegerType(),
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
