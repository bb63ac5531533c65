"""Airbyte per-stream state <-> the tap's Singer state, so both faces resume alike.

Out: each configured stream's `stream_state` is the tap's Singer bookmark of the stream that
owns it (`bookmark_owner`): its own, or for a child stream (`conversation_turns`) its root
parent's, since the parent's per-project bookmarks govern what both read. So with
`conversations` and `conversation_turns` configured, every checkpoint writes the same
`{"partitions": [...]}` (one bookmark per project) under both names.

In (`--state`): a list of STATE messages of type STREAM, as the platform and PyAirbyte store
them. Each stream's piece is checked as the tap checks a Singer state (`tap_polyai.state`:
malformed, foreign or future bookmarks are refused with the same message). The owner then
resumes from the earliest piece of the streams it feeds, per project: a stream that has no
state yet (just added to the connection, or reset) or is configured `full_refresh` makes its
owner read from `start_date`, so no configured stream misses data another one already has.
Airbyte's legacy state (one JSON object) and GLOBAL state are not this source's: refused.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import typing as t

from tap_polyai.settings import Settings, parse_datetime
from tap_polyai.state import InvalidStateError, check_state

if t.TYPE_CHECKING:
    from singer_sdk import Stream

FULL_REFRESH = "full_refresh"
RESET_HINT = (
    "Clear the connection's state to start again (Airbyte: the connection's 'Clear data'; "
    "PyAirbyte: `source.read(..., force_full_refresh=True)`)."
)


def bookmark_owners(streams: t.Mapping[str, Stream]) -> dict[str, str]:
    """Stream name -> the stream whose Singer bookmark governs it: its root parent, or itself."""
    by_type = {type(stream): stream for stream in streams.values()}

    def root(stream: Stream) -> str:
        while stream.parent_stream_type is not None:
            stream = by_type[stream.parent_stream_type]
        return stream.name

    return {name: root(stream) for name, stream in streams.items()}


def _refuse(problem: str) -> t.NoReturn:
    raise InvalidStateError(f"State (--state): {problem} {RESET_HINT}")


def stream_pieces(airbyte_state: t.Any, known: t.Collection[str]) -> dict[str, dict[str, t.Any]]:
    """`stream_state` by stream name, after checking the state's form."""
    if airbyte_state is None:
        return {}
    if isinstance(airbyte_state, dict):
        _refuse(
            "this is Airbyte's legacy state (one JSON object); source-polyai reads per-stream "
            "state only: a JSON list of STATE messages of type STREAM."
        )
    if not isinstance(airbyte_state, list):
        _refuse(f"must be a JSON list of STATE messages, not {type(airbyte_state).__name__}.")
    pieces: dict[str, dict[str, t.Any]] = {}
    for index, message in enumerate(airbyte_state):
        if not isinstance(message, dict):
            _refuse(f"entry {index} is not a STATE message object.")
        kind = message.get("type") or "LEGACY"  # the protocol: no type means LEGACY
        if kind != "STREAM":
            _refuse(
                f"entry {index} is of type {kind}; source-polyai writes and reads per-stream "
                "state only (type STREAM), one entry per stream."
            )
        stream = message.get("stream")
        descriptor = stream.get("stream_descriptor") if isinstance(stream, dict) else None
        name = descriptor.get("name") if isinstance(descriptor, dict) else None
        if not isinstance(name, str):
            _refuse(f"entry {index} has no 'stream.stream_descriptor.name'.")
        if name not in known:
            _refuse(f"entry {index} is for stream '{name}', which source-polyai does not have.")
        piece = t.cast(dict, stream).get("stream_state")
        if piece is None:
            continue
        if not isinstance(piece, dict):
            _refuse(f"the stream_state of '{name}' must be an object.")
        pieces[name] = piece
    return pieces


def _key(partition: dict[str, t.Any]) -> str:
    return json.dumps(partition.get("context"), sort_keys=True)


def _bookmark(partition: dict[str, t.Any]) -> dt.datetime:
    value = partition.get("replication_key_value")
    return parse_datetime(value) if value else dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _earliest(pieces: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Per project, the partition with the earliest bookmark; a project missing from any
    piece has none (it starts at 'start_date')."""
    if all(piece == pieces[0] for piece in pieces):
        return copy.deepcopy(pieces[0])
    by_project: list[dict[str, dict[str, t.Any]]] = [
        {_key(p): p for p in piece.get("partitions", [])} for piece in pieces
    ]
    common = set(by_project[0]).intersection(*by_project[1:])
    partitions = [
        min((found[key] for found in by_project), key=_bookmark)
        for key in by_project[0]
        if key in common
    ]
    return {"partitions": copy.deepcopy(partitions)}


def singer_state(
    airbyte_state: t.Any,
    sync_modes: t.Mapping[str, str],
    owners: t.Mapping[str, str],
    settings: Settings,
    now: dt.datetime,
) -> dict[str, t.Any]:
    """The Singer state a read resumes from, for the streams in `sync_modes` (configured).

    Raises InvalidStateError (the tap's own, same messages) for a state it cannot use.
    """
    pieces = stream_pieces(airbyte_state, owners)
    for name, piece in pieces.items():
        # Each piece as the tap would see it alone: its messages name the project.
        check_state({"bookmarks": {owners[name]: piece}}, settings, now)
    bookmarks: dict[str, t.Any] = {}
    for owner in sorted({owners[name] for name in sync_modes}):
        fed = [name for name in sync_modes if owners[name] == owner]
        if any(sync_modes[name] == FULL_REFRESH or name not in pieces for name in fed):
            continue
        bookmarks[owner] = _earliest([pieces[name] for name in fed])
    return {"bookmarks": bookmarks} if bookmarks else {}


def per_stream(
    state: t.Mapping[str, t.Any], streams: t.Iterable[str], owners: t.Mapping[str, str]
) -> list[tuple[str, dict[str, t.Any]]]:
    """Each configured stream with its `stream_state`, from a Singer state."""
    bookmarks = state.get("bookmarks") or {}
    return [(name, copy.deepcopy(bookmarks.get(owners[name]) or {})) for name in streams]
