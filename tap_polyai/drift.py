"""Schema drift: conversations that do not match the announced schema are delivered anyway.

This is the slow path of `records.RecordConformer`: it runs only for a conversation that the
typed check rejected (a value of another type, or a field the schema does not know), and walks
it against the stream's *current* JSON schema, which it may grow. Per value:

- **coerced** (lossless): a numeric string where a number or integer is declared (`"0.53"`),
  an integral float where an integer is declared (`7.0`), `"true"`/`"false"` (any case) where
  a boolean is declared, a number or boolean where a string is declared (its JSON text).
- **widened**: a fractional number (or numeric string) where an integer is declared is kept;
  the property's type becomes `number` and the stream's SCHEMA is announced again before the
  record. The tap declares no `integer` property of its own (schema.py: targets do not widen
  a loaded column reliably), so this happens only where a catalog declares one.
- **nulled**: what no declared type can hold (an object where a boolean is declared, a list
  where a string is declared, `"yes"` where a number is declared) becomes null and a warning
  names the conversation id and the field path, never the value. With
  `on_schema_mismatch: fail` a widening or a nulling stops the sync instead (lossless
  coercions still happen).
- **new fields** (a top-level key or a turn key the schema does not declare) are declared
  with the JSON type of their first non-null value (string, number for any number, boolean,
  an object as free JSON with `"properties": {}`, an array as an untyped JSON array) and the
  SCHEMA is announced again before the first record that carries them. Targets add a column of
  that type; later values of the field follow the rules above against it. A new field whose
  values are all null so far is left out of records (null is what its column will hold).
  New turn fields reach both nested `turns` and `conversation_turns`.

The fast path (typed decoding, `records.py`, and any page decoder built on the same typed
dicts) must accept only conversations this module would return unchanged: strict types (no
numeric strings, no integral floats for integers, no strings for booleans) and no unknown
fields. Everything else must come here.

Per project, the counts and the new field names are logged as one summary line at the end of
the project's sync (`summary`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import typing as t

import msgspec

# `conversation_turns` fields that are not turn fields (not in `conversations.turns`).
TURN_ROW_HEAD = (
    "conversation_id",
    "turn_index",
    "account_id",
    "project_id",
    "started_at",
    "_sdc_deleted_at",
)
MODES = ("warn", "fail")
# A JSON number, as text: what `"0.53"` must look like to be coerced (no "NaN", " 1", "1_0").
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WARNINGS_PER_PROJECT = 20


class InvalidConversationError(Exception):
    """A conversation that does not match the schema, where the sync must stop."""


@dataclasses.dataclass
class DriftCounts:
    """What drift handling did for one project."""

    coerced: int = 0
    widened: int = 0
    nulled: int = 0
    new_fields: list[str] = dataclasses.field(default_factory=list)
    warnings: int = 0


def _types(schema: dict[str, t.Any]) -> set[str] | None:
    """The JSON types a schema allows, or None for "anything"."""
    declared = schema.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def schema_of_new_field(value: t.Any) -> dict[str, t.Any]:
    """The permissive, nullable JSON schema a new field is declared with, from a value."""
    if isinstance(value, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(value, (int, float)):
        # Never `integer`: targets do not widen an integer column later (schema.py).
        return {"type": ["number", "null"]}
    if isinstance(value, str):
        return {"type": ["string", "null"]}
    if isinstance(value, dict):
        # "properties": {} as well: SDK-based targets recurse into object schemas and expect it.
        return {"type": ["object", "null"], "properties": {}, "additionalProperties": True}
    # No "items": SQL targets then make one JSON column (jsonb, VARIANT) for the whole array.
    return {"type": ["array", "null"]}


class SchemaDrift:
    """The current schemas of both streams, and the walk that makes a conversation fit them.

    `conversation_schema` and `turn_row_schema` are private copies; they grow (new fields,
    widened types) and `take_changes` says which streams need their SCHEMA announced again.
    The turn properties are one set of dicts shared by `conversations.turns.items` (when the
    catalog types it) and `conversation_turns`, so a change to a turn field reaches both.
    """

    def __init__(
        self,
        conversation_schema: dict[str, t.Any],
        turn_row_schema: dict[str, t.Any] | None,
        default_turn_properties: dict[str, t.Any],
        *,
        mode: str,
        logger: logging.Logger,
        stream: str = "conversations",
        required: tuple[str, str] = ("id", "started_at"),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"on_schema_mismatch must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self._logger = logger
        # The stream whose top-level schema this is (`conversation_details` uses this walk
        # too), and the fields a record cannot do without: its key and its replication value.
        self._stream = stream
        self._key, self._replication = required
        self.conversation_schema = copy.deepcopy(conversation_schema)
        self.turn_row_schema = copy.deepcopy(turn_row_schema)
        self._conversation_properties: dict[str, t.Any] = self.conversation_schema.setdefault(
            "properties", {}
        )
        turns = self._conversation_properties.get("turns") or {}
        nested = turns.get("items") if isinstance(turns.get("items"), dict) else None
        self._nested_turn_properties: dict[str, t.Any] | None = (
            nested.setdefault("properties", {}) if nested is not None else None
        )
        self._row_properties: dict[str, t.Any] | None = (
            self.turn_row_schema.setdefault("properties", {})
            if self.turn_row_schema is not None
            else None
        )
        # One dict object per turn field, shared by every schema that declares it.
        self.turn_properties: dict[str, t.Any] = copy.deepcopy(default_turn_properties)
        for source in (self._nested_turn_properties, self._row_properties):
            for name, prop in (source or {}).items():
                if name not in TURN_ROW_HEAD:
                    self.turn_properties[name] = prop
        for target in (self._nested_turn_properties, self._row_properties):
            if target is not None:
                target.update(self.turn_properties)
        # What was declared before any drift: the fields each project reports as new.
        self._declared_fields = frozenset(self._conversation_properties)
        self._declared_turn_fields = frozenset(self.turn_properties)
        self._widened: set[int] = set()
        self._changed: set[str] = set()
        self._counts: dict[str, DriftCounts] = {}
        # Per conversation walk:
        self._conversation_id = "?"
        self._project = ""
        self._in_turn = False

    # -- results ---------------------------------------------------------------------------

    def counts(self, project_label: str) -> DriftCounts:
        return self._counts.setdefault(project_label, DriftCounts())

    def take_changes(self) -> set[str]:
        """Streams whose schema changed since the last call: announce them again."""
        changed, self._changed = self._changed, set()
        return changed

    def summary(self, project_label: str) -> str:
        c = self.counts(project_label)
        new = ", ".join(c.new_fields) if c.new_fields else "none"
        return (
            f"Project {project_label}: schema drift: {c.coerced} value(s) coerced, "
            f"{c.widened} widened, {c.nulled} nulled; new fields: {new}"
        )

    # -- the walk --------------------------------------------------------------------------

    def conform(self, raw: dict[str, t.Any], project_label: str) -> dict[str, t.Any]:
        """`raw` as a record of the current schema (a new dict; `raw` is not modified)."""
        conversation_id = raw.get(self._key)
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
            conversation_id = str(conversation_id)
        self._conversation_id = conversation_id if isinstance(conversation_id, str) else "?"
        self._project = project_label
        if not isinstance(conversation_id, str) or not isinstance(raw.get(self._replication), str):
            # No key or no replication value: it can be neither upserted nor bookmarked.
            raise InvalidConversationError(
                f"Project {project_label}: conversation {self._conversation_id} has no string "
                f"`{self._key}` and `{self._replication}`; it cannot be loaded or bookmarked."
            )
        counts = self.counts(project_label)
        record: dict[str, t.Any] = {}
        for key, value in raw.items():
            if key == "turns":
                record[key] = self._turns(value)
                continue
            schema = self._conversation_properties.get(key)
            if schema is None:
                if value is None:
                    continue
                schema = self._declare(key, value)
            if key not in self._declared_fields and key not in counts.new_fields:
                counts.new_fields.append(key)
            record[key] = self._value(value, schema, key)
        return record

    def _declare(self, name: str, value: t.Any) -> dict[str, t.Any]:
        schema = schema_of_new_field(value)
        if self._in_turn:
            self.turn_properties[name] = schema
            for target in (self._nested_turn_properties, self._row_properties):
                if target is not None:
                    target[name] = schema
            self._turn_schema_changed()
            label = f"turns[].{name}"
        else:
            self._conversation_properties[name] = schema
            self._changed.add(self._stream)
            label = name
        self._logger.warning(
            "Project %s: new field %s (declared as %s); the stream's SCHEMA is announced again "
            "so targets add the column",
            self._project,
            label,
            schema["type"][0],
        )
        return schema

    def _turn_schema_changed(self) -> None:
        if self._nested_turn_properties is not None:
            self._changed.add("conversations")
        if self._row_properties is not None:
            self._changed.add("conversation_turns")

    def _turns(self, value: t.Any) -> t.Any:
        schema = self._conversation_properties.get("turns", {})
        if not isinstance(value, list):
            if value is None:
                return None
            return self._null("turns", schema)
        turns: list[dict[str, t.Any]] = []
        counts = self.counts(self._project)
        self._in_turn = True
        try:
            for index, turn in enumerate(value):
                path = f"turns[{index}]"
                if not isinstance(turn, dict):
                    # Kept as an empty turn, so the indexes of the following turns stay true.
                    self._null(path, {"type": "object"})
                    turns.append({})
                    continue
                fitted: dict[str, t.Any] = {}
                for key, item in turn.items():
                    field_schema = self.turn_properties.get(key)
                    if field_schema is None:
                        if item is None:
                            continue
                        field_schema = self._declare(key, item)
                    if key not in self._declared_turn_fields:
                        label = f"turns[].{key}"
                        if label not in counts.new_fields:
                            counts.new_fields.append(label)
                    fitted[key] = self._value(item, field_schema, f"{path}.{key}")
                turns.append(fitted)
        finally:
            self._in_turn = False
        return turns

    def _value(self, value: t.Any, schema: dict[str, t.Any], path: str) -> t.Any:  # noqa: PLR0911, PLR0912
        if value is None:
            return None
        if "anyOf" in schema:
            schema = self._branch(value, schema["anyOf"])
        types = _types(schema)
        if types is None:
            return value
        kind = type(value)
        if kind is bool:
            if "boolean" in types:
                return value
            if "string" in types:
                return self._coerced("true" if value else "false")
        elif kind is int:
            if "integer" in types or "number" in types:
                return value
            if "string" in types:
                return self._coerced(str(value))
        elif kind is float:
            if "number" in types:
                if id(schema) in self._widened and not value.is_integer():
                    self.counts(self._project).widened += 1
                return value
            if "integer" in types:
                if value.is_integer():
                    return self._coerced(int(value))
                return self._widen(value, schema, path)
            if "string" in types:
                return self._coerced(msgspec.json.encode(value).decode())
        elif kind is str:
            if "string" in types:
                return value
            if ("integer" in types or "number" in types) and _JSON_NUMBER.fullmatch(value):
                return self._number_from_text(value, schema, types, path)
            if "boolean" in types and value.lower() in ("true", "false"):
                return self._coerced(value.lower() == "true")
        elif kind is dict:
            if "object" in types:
                return self._object(value, schema, path)
        elif kind is list:
            if "array" in types:
                return self._array(value, schema, path)
        else:  # not a JSON value; cannot come from a JSON page
            return value
        return self._null(path, schema)

    def _number_from_text(
        self, text: str, schema: dict[str, t.Any], types: set[str], path: str
    ) -> t.Any:
        if not any(c in text for c in ".eE"):
            return self._coerced(int(text))
        number = float(text)
        if not math.isfinite(number):
            return self._null(path, schema)
        if "number" in types:
            if id(schema) in self._widened and not number.is_integer():
                self.counts(self._project).widened += 1
            return self._coerced(number)
        if number.is_integer():
            return self._coerced(int(number))
        return self._widen(number, schema, path)

    @staticmethod
    def _branch(value: t.Any, branches: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        """The anyOf branch for a value's JSON kind (arrays to the array branch, and so on)."""
        wanted = "array" if isinstance(value, list) else "object" if isinstance(value, dict) else ""
        for branch in branches:
            types = _types(branch) or set()
            if (wanted and wanted in types) or (not wanted and types - {"array", "object"}):
                return branch
        return branches[0]

    def _object(self, value: dict[str, t.Any], schema: dict[str, t.Any], path: str) -> t.Any:
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out: dict[str, t.Any] = {}
        for key, item in value.items():
            item_schema = properties.get(key)
            if item_schema is None:
                item_schema = extra if isinstance(extra, dict) else {}
            out[key] = self._value(item, item_schema, f"{path}.{key}")
        return out

    def _array(self, value: list[t.Any], schema: dict[str, t.Any], path: str) -> t.Any:
        items = schema.get("items")
        if not isinstance(items, dict):
            return value
        item_types = _types(items)
        nullable_items = item_types is None or "null" in item_types
        out = []
        before = self.counts(self._project).nulled
        for index, item in enumerate(value):
            fitted = self._value(item, items, f"{path}[{index}]")
            if fitted is None and not nullable_items:
                # The array cannot hold a null item: the whole field goes (an item nulled
                # above was counted and named; count the field once).
                self.counts(self._project).nulled = before
                return self._null(path, schema)
            out.append(fitted)
        return out

    # -- outcomes --------------------------------------------------------------------------

    def _coerced(self, value: t.Any) -> t.Any:
        self.counts(self._project).coerced += 1
        return value

    def _widen(self, value: float, schema: dict[str, t.Any], path: str) -> float:
        if self.mode == "fail":
            self._stop(path, "integer", "a fractional number")
        declared = schema["type"]
        schema["type"] = (
            "number"
            if declared == "integer"
            else ["number" if kind == "integer" else kind for kind in declared]
        )
        self._widened.add(id(schema))
        self.counts(self._project).widened += 1
        if self._in_turn:
            self._turn_schema_changed()
        else:
            self._changed.add(self._stream)
        self._logger.warning(
            "Project %s: conversation %s: `%s` holds a fractional number where an integer is "
            "declared; the field is widened to `number` and its SCHEMA announced again",
            self._project,
            self._conversation_id,
            _pattern(path),
        )
        return value

    def _null(self, path: str, schema: dict[str, t.Any]) -> None:
        expected = "/".join(sorted((_types(schema) or {"any"}) - {"null"}))
        if self.mode == "fail":
            self._stop(path, expected, "another type")
        counts = self.counts(self._project)
        counts.nulled += 1
        counts.warnings += 1
        if counts.warnings <= _WARNINGS_PER_PROJECT:
            self._logger.warning(
                "Project %s: conversation %s: `%s` is not %s; delivered as null%s",
                self._project,
                self._conversation_id,
                path,
                expected,
                " (further such warnings for this project are not logged; the summary counts them)"
                if counts.warnings == _WARNINGS_PER_PROJECT
                else "",
            )

    def _stop(self, path: str, expected: str, got: str) -> t.NoReturn:
        raise InvalidConversationError(
            f"Project {self._project}: conversation {self._conversation_id} does not match the "
            f"schema: `{path}` is {got} where {expected} is declared (on_schema_mismatch is "
            "'fail'; set it to 'warn' to widen or null such values and keep syncing)"
        )


def _pattern(path: str) -> str:
    """`turns[3].latency` -> `turns[].latency`: one name per field, whatever the turn."""
    return re.sub(r"\[[0-9]+\]", "[]", path)
