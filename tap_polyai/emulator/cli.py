"""Console entry point: ``polyai-emulator`` serves generated data until SIGTERM/SIGINT.

Why a CLI: users run the emulator as a separate process in their own CI (or a demo) and
point the tap's ``api_url`` at it; ``--port 0 --port-file`` lets scripts avoid port clashes.
The clock is frozen at ``--end`` so the data (and which conversations are in progress or
late) is identical on every run; move it with ``POST /_emulator/clock``.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType

from .clock import Clock
from .data import generate_conversations, parse_ts
from .drift import apply_drift
from .server import Emulator

__all__ = ["build_parser", "main"]


def _turns(value: str) -> tuple[int, int]:
    try:
        lo, _, hi = value.partition(",")
        low = int(lo)
        high = int(hi) if hi else low
    except ValueError:
        raise argparse.ArgumentTypeError("expected MIN,MAX (e.g. 4,14)") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError("expected 0 <= MIN <= MAX")
    return (low, high)


def _projects(value: str) -> list[tuple[str, str]]:
    out = []
    for item in value.split(","):
        account, sep, project = item.strip().partition("/")
        if not sep or not account or not project or "/" in project:
            raise argparse.ArgumentTypeError(f"expected ACCOUNT/PROJECT, got {item!r}")
        out.append((account, project))
    return out


def _end(value: str) -> datetime:
    try:
        return parse_ts(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO8601 date-time: {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="polyai-emulator",
        description=(
            "Local emulator of PolyAI's Conversations API (GET .../conversations) and of the "
            "Agents API's conversation detail (GET /v1/agents/{project}/conversations/{id})."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--projects",
        type=_projects,
        default=[("ws-demo", "PROJECT-demo")],
        help="comma-separated ACCOUNT/PROJECT pairs (default ws-demo/PROJECT-demo)",
    )
    p.add_argument("--conversations", type=int, default=500, help="per project")
    p.add_argument("--days", type=float, default=14.0, help="data spans [end - days, end)")
    p.add_argument(
        "--end",
        type=_end,
        default=None,
        help="end of the data and frozen clock time (default: now, whole hour)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-progress", type=int, default=3, help="running at --end, per project")
    p.add_argument("--late", type=int, default=0, help="not yet ingested at --end, per project")
    p.add_argument("--api-key", default="demo-key", help="accepted for every project")
    p.add_argument("--latency-ms", type=int, default=0, help="delay added to every request")
    p.add_argument(
        "--pagination",
        choices=("cursor", "offset"),
        default=None,
        help="force a pagination style (default: cursor on v3, offset on v1/v2)",
    )
    p.add_argument("--chunked", action="store_true", help="always use chunked transfer")
    p.add_argument("--turns", type=_turns, default=(4, 14), help="MIN,MAX turns per conversation")
    p.add_argument(
        "--drift",
        action="store_true",
        help="schema drift: fractional durations, numeric strings, new fields, an object "
        "where a boolean is declared (see tap_polyai/emulator/drift.py)",
    )
    p.add_argument(
        "--port-file",
        type=Path,
        default=None,
        help="write the bound port to this file once listening",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    end: datetime = args.end or datetime.now(timezone.utc).replace(
        minute=0, second=0, microsecond=0
    )
    start = end - timedelta(days=args.days)
    emulator = Emulator(
        default_api_key=args.api_key,
        clock=Clock(end),
        latency_ms=args.latency_ms,
        chunked=args.chunked,
        host=args.host,
        port=args.port,
        detail_drift=args.drift,
    )
    for i, (account, project) in enumerate(args.projects):
        convs = generate_conversations(
            account,
            project,
            count=args.conversations,
            start=start,
            end=end,
            seed=args.seed + i,
            turns=args.turns,
            in_progress=args.in_progress,
            late=args.late,
        )
        if args.drift:
            apply_drift(convs)
        emulator.add_conversations(account, project, convs)
        if args.pagination:
            emulator.set_pagination(account, project, args.pagination)

    # This process only serves: move the generated data out of the cyclic GC's way, so
    # collections do not rescan millions of never-freed containers while pages are served.
    gc.collect()
    gc.freeze()
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        url = emulator.start()
    except OSError as exc:  # port taken, host not local, no permission: one line, no traceback
        reason = exc.strerror or str(exc)
        print(
            f"polyai-emulator: cannot listen on {args.host}:{args.port}: {reason} "
            "(choose another --port, or --port 0 for a free one)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.port_file is not None:
            tmp = args.port_file.with_name(args.port_file.name + ".tmp")
            tmp.write_text(f"{emulator.port}\n")
            tmp.replace(args.port_file)  # atomic: readers never see a half-written file
        print(f"polyai-emulator listening on {url}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
