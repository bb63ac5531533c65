"""The tap: settings, streams, and the Singer message writer."""

from __future__ import annotations

import datetime as dt
import functools
import typing as t
from types import FrameType

from singer_sdk import Stream, Tap

from tap_polyai.output import BufferedMsgSpecWriter
from tap_polyai.settings import CONFIG_SCHEMA, Settings, load_settings
from tap_polyai.streams import ConversationsStream, ConversationTurnsStream


class TapPolyAI(Tap):
    """Singer tap for PolyAI conversations (Conversations API v3)."""

    name = "tap-polyai"
    config_jsonschema = CONFIG_SCHEMA
    # msgspec encodes a conversation several times faster than the default simplejson writer;
    # buffering (flushed at each STATE, see output.py) saves a system call per message.
    message_writer_class = BufferedMsgSpecWriter

    def __init__(self, *args: t.Any, validate_config: bool = True, **kwargs: t.Any) -> None:
        # Frozen once: the default `end_date` and the in-progress hold are relative to it.
        self.sync_started_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        super().__init__(*args, validate_config=validate_config, **kwargs)
        if validate_config:
            _ = self.settings  # bad settings fail here, before any request

    @functools.cached_property
    def settings(self) -> Settings:
        settings = load_settings(self.config)
        for level, message in settings.notices:  # once per run: unknown keys, naive dates
            self.logger.log(level, message)
        return settings

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: the SDK's final STATE, once the message being written is complete."""
        writer = self.message_writer
        handle = functools.partial(super()._handle_termination, signum, frame)
        if isinstance(writer, BufferedMsgSpecWriter):
            writer.defer_signal(handle)
        else:
            handle()

    def discover_streams(self) -> list[Stream]:
        return [ConversationsStream(self), ConversationTurnsStream(self)]


if __name__ == "__main__":
    TapPolyAI.cli()
