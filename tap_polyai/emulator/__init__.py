"""A local emulator of PolyAI's Conversations API, usable without the tap.

Why it exists: the tap's tests, benchmarks and demo, and users' own CI, need the real HTTP
behaviour (auth errors, both pagination styles, in-progress and late-arriving conversations,
429/5xx/truncated/reset responses, chunked bodies) without PolyAI credentials.

Typical use::

    from tap_polyai.emulator import Clock, Emulator, generate_conversations

    convs = generate_conversations("ws-a", "PROJECT-a", count=200, start=t0, end=t1)
    with Emulator(projects={("ws-a", "PROJECT-a"): convs}, clock=Clock(t1)) as emu:
        requests.get(emu.url("ws-a", "PROJECT-a"), headers={"x-api-key": "test-key"})
        # one conversation's detail (Agents API), as PolyAI's /v1/agents/{agentId}/... serves it
        requests.get(emu.detail_url("PROJECT-a", convs[0].id), headers={"x-api-key": "test-key"})
"""

from .clock import Clock
from .data import StoredConversation, format_ts, generate_conversations, parse_ts
from .details import SUMMARY_DELAY, detail_view
from .drift import apply_drift
from .faults import FAULT_KINDS, Fault, Faults
from .server import Emulator
from .store import ApiError, Query, parse_query

__all__ = [
    "FAULT_KINDS",
    "SUMMARY_DELAY",
    "ApiError",
    "Clock",
    "Emulator",
    "Fault",
    "Faults",
    "Query",
    "StoredConversation",
    "apply_drift",
    "detail_view",
    "format_ts",
    "generate_conversations",
    "parse_query",
    "parse_ts",
]
