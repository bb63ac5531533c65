"""The Agents API's conversation detail (`GET /v1/agents/{agentId}/conversations/{id}`).

Why derived, not generated with the list: the detail must agree with the list endpoint on every
field both show (ids, times, numbers, handoff), so it is computed from the same stored
conversation, at the same instant. What only the detail has (language, direction, tags,
PolyScore, summary, note, deployment, audio URL, function events) is drawn from a
``random.Random`` seeded by the conversation id (blake2b, like every other choice in
:mod:`.data`), so it is deterministic from the dataset's seed and does not disturb the
generation of the list data.

How it changes over time, as PolyAI's post-call processing does:
- in progress: ``inProgress`` true, no ``finishedAt``, the turns so far, no tags, summary or
  PolyScore;
- finished less than ``summary_delay`` ago (default 10 minutes): ``finishedAt`` set, but still
  no tags, ``shortSummary`` or ``polyScore`` (being computed);
- afterwards: everything.
Field names are camelCase, as the OpenAPI's ``ConversationDetailResponse``; turns are sent as
the list endpoint sends them. With ``drift`` (the emulator's ``--drift``), about a third of the
details send ``polyScore`` as a numeric string and another third carry a field the OpenAPI
does not list (``callOutcome``), as a drifting API would.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Any

from .data import StoredConversation, format_ts

__all__ = ["NEW_DETAIL_FIELD", "SUMMARY_DELAY", "detail_view"]

NEW_DETAIL_FIELD = "callOutcome"

SUMMARY_DELAY = timedelta(minutes=10)

_LANGUAGES = ("en-GB", "en-GB", "en-GB", "en-US", "en-US", "de-DE", "fr-FR", "ja-JP")
_TAGS = ("booking", "faq", "cancellation", "complaint", "vip", "follow_up", "spam")
_SUMMARIES = (
    "Caller booked a table for four tomorrow evening.",
    "Caller asked about opening hours on Sundays.",
    "Caller cancelled an existing reservation.",
    "Caller asked for vegan options and requested the menu by text.",
    "Caller asked to speak to a human and was transferred.",
    "Caller changed the time of a reservation.",
)
_NOTES = (
    "Call back about the birthday cake.",
    "Asked for a quieter table.",
    "Regular guest.",
)
_FUNCTIONS = ("check_availability", "create_booking", "cancel_booking", "send_sms", "transfer")


def _rng(conv_id: str) -> random.Random:
    digest = hashlib.blake2b(f"detail\x00{conv_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))  # noqa: S311 - not cryptography


def _function_events(rng: random.Random, conv: StoredConversation, now: datetime) -> Any:
    """Function name -> its calls (time, duration, success), only calls made by `now`."""
    events: dict[str, list[dict[str, Any]]] = {}
    span = max(1.0, (conv.ended_at - conv.started_at).total_seconds())
    for _ in range(rng.randrange(0, 4)):
        name = rng.choice(_FUNCTIONS)
        called = conv.started_at + timedelta(seconds=rng.uniform(0, span))
        call = {
            "calledAt": format_ts(called),
            "durationMs": rng.randint(20, 900),
            "success": rng.random() < 0.9,
        }
        if called <= now:
            events.setdefault(name, []).append(call)
    return events


def detail_view(
    conv: StoredConversation,
    now: datetime,
    *,
    summary_delay: timedelta = SUMMARY_DELAY,
    drift: bool = False,
) -> dict[str, Any]:
    """The detail of `conv` as the Agents API shows it at `now` (a new dict)."""
    rng = _rng(conv.id)
    rec = conv.snapshot(now)
    voice = rec.get("channel") == "VOICE-SIP"
    language = rng.choice(_LANGUAGES)
    direction = "outbound" if voice and rng.random() < 0.15 else "inbound"
    deployment = f"DEPLOYMENT-{rng.getrandbits(24):06x}"
    tags = rng.sample(_TAGS, rng.randrange(0, 3))
    if rec.get("handoff_reason") == "complaint" and "complaint" not in tags:
        tags.append("complaint")
    score = round(rng.uniform(0.35, 1.0), 2)
    summary = rng.choice(_SUMMARIES)
    note = rng.choice(_NOTES) if rng.random() < 0.2 else ""
    events = _function_events(rng, conv, now)
    in_progress = conv.is_in_progress(now)
    detail: dict[str, Any] = {
        "conversationId": conv.id,
        "accountId": rec.get("account_id"),
        "projectId": rec.get("project_id"),
        "createdAt": rec.get("started_at"),
        "startedAt": rec.get("started_at"),
    }
    if not in_progress:
        detail["finishedAt"] = format_ts(conv.ended_at)
    detail.update(
        {
            "channel": rec.get("channel"),
            "fromNumber": rec.get("from_number"),
            "toNumber": rec.get("to_number"),
            "language": language,
            "variantId": rec.get("variant_id"),
            "clientEnv": rec.get("environment"),
            "totalDuration": rec.get("total_duration"),
            "polyaiDuration": rec.get("polyai_duration"),
            "duration": rec.get("total_duration"),
            "inProgress": in_progress,
            "handoff": rec.get("handoff"),
            "handoffDestination": rec.get("handoff_destination"),
            "handoffReason": rec.get("handoff_reason"),
            "direction": direction,
            "deploymentId": deployment,
            "note": note,
            "audioUrl": (
                f"https://recordings.example.invalid/{rec.get('project_id')}/{conv.id}.wav"
                if voice and not in_progress
                else ""
            ),
            "turns": rec.get("turns") or [],
            "metrics": rec.get("metrics") or {},
            "functionEvents": events,
        }
    )
    if not in_progress and now >= conv.ended_at + summary_delay:
        detail["tags"] = tags
        detail["polyScore"] = score
        detail["shortSummary"] = summary
    else:
        detail["tags"] = []
    if drift:
        roll = rng.random()
        if roll < 1 / 3 and "polyScore" in detail:
            detail["polyScore"] = str(detail["polyScore"])
        elif roll < 2 / 3:
            detail[NEW_DETAIL_FIELD] = "resolved" if not rec.get("handoff") else "transferred"
    return detail
