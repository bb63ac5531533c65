"""What Airbyte is told about the connector (`spec`, `discover`) and what it asks for (the
configured catalog), all derived from the tap: its settings schema and its streams.

Nothing here names a stream: a stream the tap gains appears in `discover` as it is, with its
primary key and `started_at` as the source-defined cursor.
"""

from __future__ import annotations

import copy
import typing as t

from tap_polyai.airbyte.state import FULL_REFRESH
from tap_polyai.settings import SDK_BUILTIN_SETTINGS

if t.TYPE_CHECKING:
    from singer_sdk import Stream, Tap

SYNC_MODES = [FULL_REFRESH, "incremental"]


class CatalogError(Exception):
    """The configured catalog cannot be read; the message is for the user."""


def _mark_secrets(schema: t.Any) -> t.Any:
    """The SDK's `secret: true` settings also get Airbyte's `airbyte_secret: true`, so the
    platform masks them in its UI and logs."""
    if isinstance(schema, dict):
        marked = {key: _mark_secrets(value) for key, value in schema.items()}
        if schema.get("secret") is True:
            marked["airbyte_secret"] = True
        return marked
    if isinstance(schema, list):
        return [_mark_secrets(value) for value in schema]
    return schema


def spec(config_schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """The SPEC message: the tap's own settings schema, without the SDK's built-ins (stream
    maps, flattening, batch), which the SDK adds to the same dict once a tap is built."""
    own = copy.deepcopy(config_schema)
    own["properties"] = {
        name: value for name, value in own["properties"].items() if name not in SDK_BUILTIN_SETTINGS
    }
    connection = {
        **_mark_secrets(own),
        "$schema": "http://json-schema.org/draft-07/schema#",  # what the platform validates with
        "title": "PolyAI Conversations",
    }
    return {
        "type": "SPEC",
        "spec": {
            "connectionSpecification": connection,
            "supportsIncremental": True,
        },
    }


def airbyte_stream(stream: Stream) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {
        "name": stream.name,
        "json_schema": stream.schema,
        "supported_sync_modes": SYNC_MODES,
        "source_defined_primary_key": [[key] for key in stream.primary_keys or ()],
        "is_resumable": True,
    }
    if stream.replication_key:
        entry["source_defined_cursor"] = True
        entry["default_cursor_field"] = [stream.replication_key]
    return entry


def catalog(tap: Tap) -> dict[str, t.Any]:
    """The CATALOG message: every stream of the tap, selected by default or not."""
    streams = [airbyte_stream(stream) for stream in tap.streams.values()]
    return {"type": "CATALOG", "catalog": {"streams": streams}}


def sync_modes(configured: t.Any, known: t.Collection[str]) -> dict[str, str]:
    """Configured stream name -> sync mode, in the configured catalog's order."""
    streams = configured.get("streams") if isinstance(configured, dict) else None
    if not isinstance(streams, list):
        raise CatalogError("The configured catalog (--catalog) has no 'streams' list.")
    modes: dict[str, str] = {}
    for index, entry in enumerate(streams):
        stream = entry.get("stream") if isinstance(entry, dict) else None
        name = stream.get("name") if isinstance(stream, dict) else None
        if not isinstance(name, str):
            raise CatalogError(f"The configured catalog's stream {index} has no 'stream.name'.")
        if name not in known:
            raise CatalogError(
                f"The configured catalog names stream '{name}', which source-polyai does not "
                f"have (it has: {', '.join(known)}). Run discover again."
            )
        mode = entry.get("sync_mode")
        if mode not in SYNC_MODES:
            raise CatalogError(
                f"Stream '{name}': sync_mode {mode!r} is not one of {', '.join(SYNC_MODES)}."
            )
        modes[name] = mode
    return modes


def singer_catalog(tap: Tap, selected: t.Collection[str]) -> dict[str, t.Any]:
    """The tap's own catalog with exactly the configured streams selected."""
    singer = copy.deepcopy(tap.catalog_dict)
    for stream in singer["streams"]:
        for entry in stream.get("metadata", []):
            if not entry.get("breadcrumb"):
                entry["metadata"]["selected"] = stream["tap_stream_id"] in selected
    return singer
