"""One typed pass from a conversation's JSON bytes to the RECORD line the tap writes.

Decoding a page into dicts and then checking them (`msgspec.convert`) walks every value of
every conversation twice, and encoding the record walks it a third time. Here each
conversation is decoded once, straight into msgspec structs derived from the `Conversation`
and `Turn` typed dicts of `records.py` (the single description of a record, kept equal to
`schema.py`). The decode is strict and rejects unknown fields, so a conversation it accepts
is exactly a record of the announced schema, and its bytes as received *are* the record:
they are spliced into the RECORD line without re-encoding. Two things change a record:
- a turn timestamp sent as "" (not a date-time) becomes null: that conversation is encoded
  from its structs instead;
- a stream with stream maps, flattening or a deselected property needs the SDK's own path:
  it gets plain dicts (`msgspec.to_builtins`), as before.
`conversation_turns` rows are the conversation's keys followed by each turn struct, encoded
once straight into the output buffer (`output.write_indexed_records`).

Anything the strict decode rejects — an unknown field, a value of another type, a number
where an integer is declared — is decoded as plain JSON and handed to
`RecordConformer.conform`, which decides what the tap does with schema drift (the slow path,
only for those conversations).
"""

from __future__ import annotations

import operator
import types
import typing as t

import msgspec

from tap_polyai.records import Conversation, InvalidConversationError, RecordConformer
from tap_polyai.schema import TURN_PROPERTIES

# Bytes of one JSON value: `bytes`, or a `msgspec.Raw` slice of the page it came from.
JSONBytes: t.TypeAlias = "bytes | msgspec.Raw"


def _struct_of(typed_dict: type, made: dict[type, type[msgspec.Struct]]) -> type[msgspec.Struct]:
    """A strict struct with the typed dict's fields; absent optional fields stay UNSET, so
    encoding the struct gives back exactly the keys that were received."""
    if typed_dict not in made:
        required = typed_dict.__required_keys__  # type: ignore[attr-defined]
        fields: list[tuple[str, t.Any] | tuple[str, t.Any, t.Any]] = []
        for name, hint in t.get_type_hints(typed_dict).items():
            typ = _translate(hint, made)
            if name in required:
                fields.append((name, typ))
            else:
                fields.append((name, t.Union[typ, msgspec.UnsetType], msgspec.UNSET))  # noqa: UP007
        made[typed_dict] = msgspec.defstruct(
            f"{typed_dict.__name__}Struct",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,  # acyclic; keeps the cyclic GC from scanning every decoded record
        )
    return made[typed_dict]


def _translate(hint: t.Any, made: dict[type, type[msgspec.Struct]]) -> t.Any:
    """`hint` with every typed dict in it replaced by its struct (`list[Turn] | None` ...)."""
    if t.is_typeddict(hint):
        return _struct_of(hint, made)
    args = t.get_args(hint)
    if not args:
        return hint
    new = tuple(_translate(arg, made) for arg in args)
    if new == args:
        return hint
    origin = t.get_origin(hint)
    if origin in (t.Union, types.UnionType):
        return t.Union[new]  # noqa: UP007
    return origin[new]


_STRUCTS: dict[type, type[msgspec.Struct]] = {}
ConversationStruct = _struct_of(Conversation, _STRUCTS)
_typed_decoder = msgspec.json.Decoder(ConversationStruct)
_plain_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode

# Turn timestamps come back as "" when absent; "" is not a date-time, so they become null.
_TURN_DATETIMES = tuple(
    name for name, type_ in TURN_PROPERTIES.items() if type_.type_dict.get("format") == "date-time"
)
_turn_datetimes = operator.attrgetter(*_TURN_DATETIMES)
# What the SDK (partition keys), the bookmark hold and `conversation_turns` read of a record.
SUMMARY_FIELDS = ("id", "started_at", "account_id", "project_id", "in_progress")


class ConversationPayload:
    """One conversation as received, decoded once (in the fetching thread).

    `typed` is the strict struct, or None when the strict decode rejected the conversation;
    then `plain` holds it as plain JSON for the slow path.
    """

    __slots__ = ("plain", "raw", "typed")

    def __init__(self, raw: JSONBytes) -> None:
        self.raw = raw
        self.plain: t.Any = None
        try:
            self.typed: t.Any = _typed_decoder.decode(raw)
        except msgspec.ValidationError:
            self.typed = None
            self.plain = _plain_decoder.decode(raw)  # DecodeError: not JSON at all

    @property
    def id(self) -> str:
        if self.typed is not None:
            return t.cast(str, self.typed.id)
        return str(self.plain.get("id") if isinstance(self.plain, dict) else None)

    @property
    def nbytes(self) -> int:
        """Size of the conversation's JSON. Held ahead of the writer, a payload costs about
        three times this: the bytes plus the decoded structs (~2x, measured on emulator data)."""
        return len(self.raw)


class SplicedRecord(dict[str, t.Any]):
    """A record written from bytes: the conversation's JSON as received (or re-encoded).

    As a dict it holds only `SUMMARY_FIELDS` — what the SDK and the tap read of a record on
    the way to the writer — not the whole record. The SDK adds a partition key that the
    conversation lacks (`_process_record`); such additions are put in front of the bytes.
    """

    __slots__ = ("_body", "_own", "typed")

    def __init__(self, typed: t.Any, body: JSONBytes) -> None:
        super().__init__()
        for name in SUMMARY_FIELDS:
            value = getattr(typed, name)
            if value is not msgspec.UNSET:
                self[name] = value
        self.typed = typed
        self._body = body
        self._own = len(self)

    def body(self) -> JSONBytes:
        """The record's JSON object, on one line."""
        if len(self) == self._own:
            return self._body
        added = {k: v for k, v in self.items() if getattr(self.typed, k, None) is msgspec.UNSET}
        return b"{" + _encode(added)[1:-1] + b"," + bytes(self._body)[1:]

    def turns(self) -> list[t.Any]:
        return self.typed.turns or []


def _null_blank_datetimes(typed: t.Any) -> bool:
    """Set "" turn timestamps to None; True when any was."""
    changed = False
    for turn in typed.turns or ():
        if "" in _turn_datetimes(turn):
            for name in _TURN_DATETIMES:
                if getattr(turn, name) == "":
                    setattr(turn, name, None)
            changed = True
    return changed


class RecordDecoder:
    """Turns payloads into records: spliced bytes when the stream writes them straight out
    (`spliced`), plain dicts for the SDK's path, and the conformer for what the strict
    decode rejected."""

    def __init__(self, conformer: RecordConformer, *, spliced: bool) -> None:
        self._conformer = conformer
        self._spliced = spliced

    def record(self, payload: ConversationPayload, project_label: str) -> dict[str, t.Any]:
        typed = payload.typed
        if typed is None:
            plain = payload.plain
            if not isinstance(plain, dict):
                msg = (
                    f"Project {project_label}: a conversation is a JSON "
                    f"{type(plain).__name__}, not an object"
                )
                raise InvalidConversationError(msg)
            return self._conformer.conform(plain, project_label)
        changed = _null_blank_datetimes(typed)
        if not self._spliced:
            return t.cast(dict[str, t.Any], msgspec.to_builtins(typed))
        return SplicedRecord(typed, _encode(typed) if changed else payload.raw)


def turn_dicts(record: SplicedRecord) -> list[dict[str, t.Any]]:
    """The turns of a spliced record as plain dicts, for the SDK's path."""
    return t.cast(list[dict[str, t.Any]], msgspec.to_builtins(record.turns()))
