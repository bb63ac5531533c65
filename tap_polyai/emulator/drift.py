"""Schema drift: the API sending what its documentation does not promise.

Why: a tap must keep loading when PolyAI changes a type or adds a field (issue #10). This
rewrites generated conversations, deterministically (by position), the way a drifting API
would, so tests drive drift handling through real HTTP:

- fractional durations (`total_duration: 41.25`), every 4th conversation;
- integral floats for counts (`num_turns: 7.0`), every 4th from the 2nd;
- `latency` as a numeric string (`"0.53"`) on every turn, every 5th conversation;
- `"true"`/`"false"` strings for turn booleans (`is_silence`, `barge_in`), every 6th from the 2nd;
- a numeric string for a count (`num_ood: "2"`), every 11th from the 6th;
- an object where a boolean is declared (`handoff: {"reason": ...}`), every 7th from the 4th;
- a new top-level object field `sentiment`, every 3rd;
- a new turn field `asr_confidence` (a number) on every turn, every 2nd;
- with ``fractional_counts``: `num_silences` fractional (`1.5`), every 9th from the 3rd — a
  value that needs an `integer` column widened at load time.
"""

from __future__ import annotations

from collections.abc import Iterable

from .data import StoredConversation

__all__ = ["NEW_FIELD", "NEW_TURN_FIELD", "apply_drift"]

NEW_FIELD = "sentiment"
NEW_TURN_FIELD = "asr_confidence"


def apply_drift(  # noqa: PLR0912 - one branch per kind of drift
    conversations: Iterable[StoredConversation], *, fractional_counts: bool = False
) -> None:
    """Rewrite the stored records in place (every later snapshot shows the drift)."""
    for i, conv in enumerate(conversations):
        rec = conv.record
        turns = rec.get("turns") or []
        if i % 4 == 0:
            rec["total_duration"] = int(rec["total_duration"]) + 0.25
            rec["polyai_duration"] = int(rec["polyai_duration"]) + 0.5
        if i % 4 == 1:
            rec["num_turns"] = float(rec["num_turns"])
        if i % 5 == 0:
            for turn in turns:
                turn["latency"] = str(turn["latency"])
        if i % 6 == 1:
            for turn in turns:
                turn["is_silence"] = "true" if turn["is_silence"] else "false"
                turn["barge_in"] = "true" if turn["barge_in"] else "false"
        if i % 11 == 5:
            rec["num_ood"] = str(rec["num_ood"])
        if i % 7 == 3:
            rec["handoff"] = {"reason": rec.get("handoff_reason") or "none", "queue": 2}
        if i % 3 == 0:
            rec[NEW_FIELD] = {"label": ("positive", "neutral", "negative")[i % 3], "score": 0.5}
        if i % 2 == 0:
            for k, turn in enumerate(turns):
                turn[NEW_TURN_FIELD] = round(0.5 + (k % 5) / 10, 2)
        if fractional_counts and i % 9 == 2:
            rec["num_silences"] = int(rec["num_silences"]) + 0.5
