"""Deterministic synthetic conversations, and how one looks at a given instant.

Why synthetic and seeded: tests, benchmarks and users' CI must get the same data on every
machine without PolyAI credentials, so every random choice comes from one ``random.Random``
seeded from the caller's seed mixed with the account/project ids through blake2b (Python's
``hash()`` is salted per process and would break reproducibility).

Why the edge cases are forced rather than left to chance: a client must cope with a
transcript-less conversation, duplicate ``started_at`` values, all-empty optional fields and
non-ASCII state in *every* realistic dataset, so any dataset of ``count >= 10`` contains them.

A :class:`StoredConversation` keeps the finished form of a record plus three instants; the
API view at time ``now`` (hidden, in progress, or finished) is derived by :meth:`snapshot`.
"""

from __future__ import annotations

import copy
import functools
import gc
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

UTC = timezone.utc
_FRACTION = re.compile(r"\.(\d+)")

__all__ = [
    "StoredConversation",
    "format_ts",
    "generate_conversations",
    "parse_ts",
]


def format_ts(dt: datetime) -> str:
    """The one timestamp format the emulator emits: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    A fixed width and zone means these strings also sort chronologically as text.
    """
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    elif dt.utcoffset():
        dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}Z"
    )


def parse_ts(value: str) -> datetime:
    """Parse ISO8601 with ``Z`` or an offset, with or without fraction; naive means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python 3.10's fromisoformat only takes 3 or 6 fraction digits: normalise to 6.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text)
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass
class StoredConversation:
    """One conversation as the emulator stores it.

    ``record`` is the finished form exactly as the API returns it (``in_progress`` false).
    ``available_at`` models ingestion delay: a conversation whose ``available_at`` lies after
    its ``ended_at`` is "late" and stays invisible, even while running, until that instant.
    """

    record: dict[str, Any]
    started_at: datetime
    ended_at: datetime
    available_at: datetime

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def is_late(self) -> bool:
        return self.available_at > self.ended_at

    def is_visible(self, now: datetime) -> bool:
        """Visible iff started and either ingested, or running and not a late one."""
        if self.started_at > now:
            return False
        if self.available_at <= now:
            return True
        return self.ended_at > now and not self.is_late

    def is_in_progress(self, now: datetime) -> bool:
        return self.ended_at > now

    def snapshot(self, now: datetime) -> dict[str, Any]:
        """The record as the API shows it at ``now`` (a new dict; the stored one is untouched).

        In progress: turns received so far, partial durations, no handoff yet, and only the
        first half of metrics/state keys, because a running agent has not written the rest.
        """
        if not self.is_in_progress(now):
            return copy.deepcopy(self.record)
        rec = copy.deepcopy(self.record)
        full_turns: list[dict[str, Any]] = rec.get("turns") or []
        elapsed = max(0.0, (now - self.started_at).total_seconds())
        total = max(1e-9, (self.ended_at - self.started_at).total_seconds())
        if full_turns:
            turns = [t for t in full_turns if _turn_time(t) <= now]
            num_turns = len(turns)
        else:
            turns = []
            num_turns = int(int(rec.get("num_turns") or 0) * min(1.0, elapsed / total))
        rec["turns"] = turns
        rec["num_turns"] = num_turns
        rec["in_progress"] = True
        rec["total_duration"] = int(elapsed)
        rec["polyai_duration"] = int(elapsed)
        rec["handoff"] = False
        rec["handoff_reason"] = ""
        rec["handoff_destination"] = ""
        if full_turns:
            rec["num_silences"] = sum(1 for t in turns if t.get("is_silence"))
            rec["num_ood"] = sum(1 for t in turns if t.get("is_ood"))
        else:
            rec["num_silences"] = min(int(rec.get("num_silences") or 0), num_turns)
            rec["num_ood"] = min(int(rec.get("num_ood") or 0), num_turns)
        for key in ("metrics", "state"):
            value = rec.get(key)
            if isinstance(value, dict):
                keys = list(value)[: (len(value) + 1) // 2]
                rec[key] = {k: value[k] for k in keys}
        return rec


def _turn_time(turn: dict[str, Any]) -> datetime:
    raw = turn.get("user_input_datetime")
    if not raw:
        return datetime.min.replace(tzinfo=UTC)
    return parse_ts(str(raw))


# --------------------------------------------------------------------------------------------
# Content pools. Strings are shared between records, which keeps 50k conversations affordable.

_USER_LINES: list[tuple[str, list[str], list[dict[str, Any]]]] = [
    (
        "Hi, I'd like to book a table for four people tomorrow evening.",
        ["book_table"],
        [{"party_size": "4"}, {"date": "tomorrow"}],
    ),
    ("Can I change my reservation to eight o'clock?", ["modify_booking"], [{"time": "20:00"}]),
    ("What time do you close on Sundays?", ["opening_hours"], [{"day": "sunday"}]),
    (
        "Do you have any vegan options on the menu?",
        ["menu_question"],
        [{"diet": ["vegan", "plant-based"]}],
    ),
    ("I need to cancel my booking please.", ["cancel_booking"], []),
    ("Yes, that's right.", ["confirm"], []),
    ("No, that's not what I said.", ["deny"], []),
    ("Can I speak to a human?", ["handoff_request"], []),
    (
        "My name is Zoë Ñúñez and my number ends in 4821.",
        ["provide_details"],
        [{"name": "Zoë Ñúñez"}, {"phone_suffix": "4821"}],
    ),
    ("Is there parking near the restaurant?", ["parking"], []),
    ("Grüße aus München, ich möchte reservieren.", ["book_table"], [{"language": "de"}]),
    ("こんにちは、予約をお願いします。", ["book_table"], [{"language": "ja"}]),
    ("مرحبا، أريد حجز طاولة", ["book_table"], [{"language": "ar"}]),
    ("Thanks, that's perfect 🙂", ["thanks"], []),
    ("Could you repeat that?", ["repeat"], []),
    (
        "It's for a birthday, party of six, around 7:30.",
        ["book_table"],
        [{"party_size": "6"}, {"time": "19:30"}, {"occasion": "birthday"}],
    ),
]

_OOD_LINES = [
    "What's the weather like on Mars?",
    "Play some jazz music.",
    "asdf qwerty",
]

_AGENT_LINES = [
    "Of course! I can help you with a booking. For how many people, and for which day and "
    "time would you like the table?",
    "Thanks. Just to confirm, that's a table for four tomorrow at seven thirty in the evening. "
    "Shall I go ahead and reserve it for you?",
    "We're open from midday until ten thirty at night, Monday to Saturday, and until nine on "
    "Sundays. Is there anything else I can help with?",
    "Yes, we have several vegan dishes, including a mushroom risotto and a seasonal vegetable "
    "tagine. Would you like me to send the menu by text message?",
    "I'm sorry, I didn't quite catch that. Could you say it again, perhaps a little more slowly?",
    "No problem at all. I've cancelled that booking and you'll receive a confirmation message "
    "shortly. Is there anything else?",
    "Let me transfer you to one of my colleagues who can help with that. Please hold the line "
    "for a moment.",
    "Thank you for calling, and have a lovely evening. We look forward to seeing you soon!",
    "There is a public car park two minutes' walk away on Station Road, open until midnight, "
    "and street parking is free after six.",
    "Danke! Ich kann gerne eine Reservierung für Sie vornehmen. Für wie viele Personen?",
]

_HANDOFF = [
    ("caller_requested_human", "reception"),
    ("large_party", "events_team"),
    ("complaint", "manager"),
    ("payment_issue", "billing"),
]

_VARIANT_NAMES = ["Control", "New greeting", "Spring promo"]


def _seed_for(seed: int, account_id: str, project_id: str) -> int:
    digest = hashlib.blake2b(f"{account_id}\x00{project_id}".encode(), digest_size=8).digest()
    return (seed & 0xFFFFFFFFFFFFFFFF) ^ int.from_bytes(digest, "big")


def _phone(rng: random.Random) -> str:
    """A number reserved for fiction, never a real subscriber's: UK 07700 900000-900999
    (Ofcom's drama range) or US NXX-555-0100..0199. One draw, as before, so data is stable."""
    n = rng.randrange(100000)
    if n % 2:
        return f"+447700900{n % 1000:03d}"
    return f"+1{200 + (n // 100) % 800}55501{n % 100:02d}"


def _sized(text: str, chars: int | None) -> str:
    """Repeat/cut an agent line to exactly ``chars`` characters when a size is requested."""
    if chars is None:
        return text
    if chars <= 0:
        return ""
    reps = chars // (len(text) + 1) + 1
    return (" ".join([text] * reps))[:chars]


def _without_cyclic_gc(func: Callable[P, R]) -> Callable[P, R]:
    """Millions of small containers and nothing cyclic: the cyclic GC would only rescan them
    (it roughly doubles the run time for 50k conversations), so it pauses while building."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


@_without_cyclic_gc
def generate_conversations(
    account_id: str,
    project_id: str,
    *,
    count: int,
    start: datetime,
    end: datetime,
    seed: int = 0,
    turns: tuple[int, int] = (4, 14),
    in_progress: int = 0,
    late: int = 0,
    late_delay: timedelta = timedelta(minutes=30),
    duration: tuple[int, int] = (30, 600),
    agent_response_chars: int | None = None,
) -> list[StoredConversation]:
    """Generate ``count`` conversations started in ``[start, end)``, deterministic per seed.

    At clock time ``end`` exactly ``in_progress`` conversations are still running (they end
    hours later) and ``late`` ones are not yet visible (``available_at = ended_at +
    late_delay`` lies after ``end``); every other conversation has ended by ``end`` and is
    visible from its ``started_at``. ``turns=(300, 300)`` gives very long transcripts;
    ``agent_response_chars`` fixes the length of every agent response (default: natural
    lines, about 5 KB of JSON per conversation with ~10 turns).
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    start = _aware(start)
    end = _aware(end)
    if end <= start:
        raise ValueError("end must be after start")
    if in_progress < 0 or late < 0 or in_progress + late > count:
        raise ValueError("in_progress + late must be between 0 and count")
    lo_turns, hi_turns = turns
    lo_dur, hi_dur = duration
    if lo_turns < 0 or hi_turns < lo_turns or lo_dur < 1 or hi_dur < lo_dur:
        raise ValueError("invalid turns or duration range")

    rng = random.Random(_seed_for(seed, account_id, project_id))  # noqa: S311 - not crypto
    n_variants = rng.choice((2, 3))
    variants = [
        (f"VARIANT-{rng.getrandbits(32):08x}", _VARIANT_NAMES[i]) for i in range(n_variants)
    ]
    to_numbers = [_phone(rng) for _ in range(2)]

    forced = 4 if count >= 10 else 0  # indices 0..3 carry the mandatory edge cases
    special_pool = list(range(forced, count))
    rng.shuffle(special_pool)
    in_progress_idx = set(special_pool[:in_progress])
    late_idx = set(special_pool[in_progress : in_progress + late])

    span_us = int((end - start).total_seconds() * 1_000_000)
    seen_ids: set[str] = set()
    out: list[StoredConversation] = []
    first_started: datetime | None = None
    for i in range(count):
        conv_id = "CA" + f"{rng.getrandbits(128):032x}"
        while conv_id in seen_ids:
            conv_id = "CA" + f"{rng.getrandbits(128):032x}"
        seen_ids.add(conv_id)
        dur = rng.randint(lo_dur, hi_dur)
        kind = "running" if i in in_progress_idx else ("late" if i in late_idx else "normal")
        started, ended, available = _timing(
            rng, kind, start=start, end=end, span_us=span_us, dur=dur, late_delay=late_delay
        )
        if i == 2 and first_started is not None and forced:
            started = first_started  # identical started_at with conversation 1
            ended = min(end, started + timedelta(seconds=dur))
            available = started
        if i == 1:
            first_started = started

        record = _make_record(
            rng,
            conv_id=conv_id,
            account_id=account_id,
            project_id=project_id,
            variants=variants,
            to_numbers=to_numbers,
            started=started,
            ended=ended,
            n_turns=rng.randint(lo_turns, hi_turns),
            agent_chars=agent_response_chars,
            special=(i in in_progress_idx or i in late_idx or i < forced),
        )
        if forced and i == 0:
            record["num_turns"] = max(1, record["num_turns"])
            record["turns"] = []  # transcript access disabled for this conversation
        if forced and i == 1:
            record["state"]["caller_name"] = "Zoë Ñúñez — こんにちは 🙂"
            record["state"]["greeting"] = "مرحبا"
        if forced and i == 3:
            _blank_optionals(record)
        out.append(StoredConversation(record, started, ended, available))
    return out


def _timing(
    rng: random.Random,
    kind: str,
    *,
    start: datetime,
    end: datetime,
    span_us: int,
    dur: int,
    late_delay: timedelta,
) -> tuple[datetime, datetime, datetime]:
    """(started_at, ended_at, available_at) for a running, late or normal conversation."""
    if kind == "running":
        # Starts in the last half hour of the range, runs for hours: still live at `end`.
        window = min(span_us, 30 * 60 * 1_000_000)
        started = max(start, end - timedelta(microseconds=rng.randrange(1, max(2, window))))
        return started, started + timedelta(hours=rng.randint(2, 6), seconds=dur), started
    if kind == "late":
        # Ends shortly before `end`; the ingestion delay pushes availability past `end`.
        window = max(1, min(span_us, int(late_delay.total_seconds() * 1_000_000)))
        ended = end - timedelta(microseconds=rng.randrange(0, window))
        started = max(start, ended - timedelta(seconds=dur))
        ended = max(ended, started + timedelta(seconds=1))
        return started, ended, ended + late_delay
    max_us = max(1, span_us - dur * 1_000_000)
    started = start + timedelta(microseconds=rng.randrange(max_us))
    ended = max(min(end, started + timedelta(seconds=dur)), started + timedelta(microseconds=1))
    return started, ended, started


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _make_record(
    rng: random.Random,
    *,
    conv_id: str,
    account_id: str,
    project_id: str,
    variants: list[tuple[str, str]],
    to_numbers: list[str],
    started: datetime,
    ended: datetime,
    n_turns: int,
    agent_chars: int | None,
    special: bool,
) -> dict[str, Any]:
    variant_id, variant_name = variants[0] if rng.random() < 0.6 else rng.choice(variants)
    roll = rng.random()
    environment = (
        "live" if special or roll < 0.85 else ("sandbox" if roll < 0.95 else "pre-release")
    )
    roll = rng.random()
    channel = "VOICE-SIP" if roll < 0.7 else ("WEBCHAT" if roll < 0.9 else "CHAT")
    voice = channel == "VOICE-SIP"
    from_number = _phone(rng) if voice else ""
    to_number = rng.choice(to_numbers) if voice else ""
    total_s = (ended - started).total_seconds()
    handoff = rng.random() < 0.25
    reason, destination = rng.choice(_HANDOFF) if handoff else ("", "")

    turn_list = _make_turns(
        rng, started=started, ended=ended, n_turns=n_turns, agent_chars=agent_chars, voice=voice
    )
    total_duration = int(total_s)
    polyai_duration = int(total_duration * rng.uniform(0.5, 0.95)) if handoff else total_duration

    metrics: dict[str, Any] = {
        "intent_detected": turn_list[0]["intents"][0]
        if turn_list and turn_list[0]["intents"]
        else "none",
        "csat": str(rng.randint(1, 5)),
        "ended_by": rng.choice(("caller", "agent")),
        "steps": ["greeting", rng.choice(("booking", "faq", "cancellation")), "closing"],
        "completed_at": format_ts(ended),
    }
    if rng.random() < 0.3:
        metrics["retry"] = ["asr_low_confidence", "asr_low_confidence"]
    state: dict[str, Any] = {
        "from_": from_number,
        "call_sid": "CA" + f"{rng.getrandbits(64):016x}",
        "booking": {
            "party_size": rng.randint(1, 8),
            "date": (started + timedelta(days=rng.randint(0, 30))).strftime("%Y-%m-%d"),
            "confirmed": rng.random() < 0.7,
            "notes": None if rng.random() < 0.7 else "Window seat, near the garden 🌿",
        },
        "tags": rng.sample(["vip", "returning", "allergy", "birthday", "large_party"], 2),
        "score": round(rng.random(), 2),
    }
    if rng.random() < 0.2:
        state["caller_name"] = rng.choice(("Zoë", "José", "Åsa", "Łukasz", "ゆうこ"))
    return {
        "id": conv_id,
        "account_id": account_id,
        "project_id": project_id,
        "variant_id": variant_id,
        "variant_name": variant_name,
        "environment": environment,
        "started_at": format_ts(started),
        "channel": channel,
        "from_number": from_number,
        "to_number": to_number,
        "in_progress": False,
        "num_turns": len(turn_list),
        "total_duration": total_duration,
        "polyai_duration": polyai_duration,
        "handoff": handoff,
        "handoff_reason": reason,
        "handoff_destination": destination,
        "num_silences": sum(1 for t in turn_list if t["is_silence"]),
        "num_ood": sum(1 for t in turn_list if t["is_ood"]),
        "metrics": metrics,
        "state": state,
        "turns": turn_list,
    }


def _make_turns(
    rng: random.Random,
    *,
    started: datetime,
    ended: datetime,
    n_turns: int,
    agent_chars: int | None,
    voice: bool,
) -> list[dict[str, Any]]:
    if n_turns <= 0:
        return []
    span_us = max(1, int((ended - started).total_seconds() * 1_000_000))
    offsets = sorted(rng.randrange(span_us) for _ in range(n_turns))
    offsets[0] = 0  # the first turn is the greeting, at the very start
    turn_list: list[dict[str, Any]] = []
    intents: list[str]
    entities: list[dict[str, Any]]
    for k, off in enumerate(offsets):
        user_at = started + timedelta(microseconds=off)
        latency = round(rng.uniform(0.25, 2.5), 3)
        agent_at = min(ended, user_at + timedelta(seconds=latency))
        roll = rng.random()
        is_silence = k > 0 and roll < 0.07
        is_ood = k > 0 and not is_silence and roll < 0.12
        if k == 0 or is_silence:
            user_input, intents, entities = "", [], []
        elif is_ood:
            user_input, intents, entities = rng.choice(_OOD_LINES), [], []
        else:
            user_input, intents, entities = rng.choice(_USER_LINES)
        dtmf = (
            "".join(rng.choice("0123456789#") for _ in range(4))
            if (voice and rng.random() < 0.05)
            else ""
        )
        agent = _sized(rng.choice(_AGENT_LINES), agent_chars)
        translated = ""
        english = ""
        if user_input and not user_input.isascii():
            translated = "I would like to make a reservation."
            english = "Of course, for how many people?"
        turn_list.append(
            {
                "user_input": user_input,
                "user_input_dtmf": dtmf,
                "user_input_datetime": format_ts(user_at),
                "agent_response": agent,
                "agent_response_datetime": format_ts(agent_at),
                "latency": latency,
                "translated_user_input": translated,
                "english_agent_response": english,
                "intents": list(intents),
                "entities": [dict(e) for e in entities],
                "is_ood": is_ood,
                "is_silence": is_silence,
                "barge_in": voice and rng.random() < 0.1,
            }
        )
    return turn_list


def _blank_optionals(record: dict[str, Any]) -> None:
    """Every optional string empty, every optional container empty (required fields kept)."""
    for key in (
        "variant_id",
        "variant_name",
        "from_number",
        "to_number",
        "handoff_reason",
        "handoff_destination",
    ):
        record[key] = ""
    record["handoff"] = False
    record["metrics"] = {}
    record["state"] = {}
    for turn in record["turns"]:
        for key in (
            "user_input",
            "user_input_dtmf",
            "agent_response",
            "translated_user_input",
            "english_agent_response",
        ):
            turn[key] = ""
        turn["intents"] = []
        turn["entities"] = []
        turn["is_ood"] = False
    record["num_ood"] = 0
    record["num_silences"] = sum(1 for t in record["turns"] if t["is_silence"])
