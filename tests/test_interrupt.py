"""An interrupted sync says so: final STATE, where each project resumes, exit 130 / 143.

The tap runs as a real process against an emulator that answers slowly; the signal goes out
as soon as the first checkpoint STATE arrives on the pipe (no sleeping), and a second run
from the final STATE must deliver everything the interrupted one did not.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import ACCOUNT, PROJECTS, make_emulator, tap_config
from tap_runner import TAP_COMMAND, bookmark, parse_messages, run_tap


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_writes_state_says_where_to_resume_and_exits_non_zero(
    tmp_path: Path, signum: int, code: int
) -> None:
    with make_emulator(latency_ms=40) as emulator:
        config = tap_config(emulator, window_hours=2, max_concurrency=1)
        (tmp_path / "config.json").write_text(json.dumps(config))
        proc = subprocess.Popen(
            [*TAP_COMMAND, "--config", str(tmp_path / "config.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        lines: list[bytes] = []
        for line in proc.stdout:  # read until the first checkpoint, then interrupt
            lines.append(line)
            message = json.loads(line)
            if message["type"] == "STATE" and message["value"].get("bookmarks"):
                proc.send_signal(signum)
                break
        rest, stderr = proc.communicate(timeout=60)
        messages = parse_messages(b"".join(lines) + rest)  # every line complete JSON
        log = stderr.decode()

        assert proc.returncode == code, log[-3000:]
        assert messages[-1]["type"] == "STATE", "the final message is the STATE"
        final = messages[-1]["value"]
        alpha = bookmark(final, "PROJECT-alpha")
        assert alpha is not None
        assert f"Interrupted by {signal.Signals(signum).name}" in log
        assert f"Project {ACCOUNT}/PROJECT-alpha: the next run resumes at {alpha}" in log
        assert f"Project {ACCOUNT}/PROJECT-beta: no checkpoint yet" in log
        assert "Gracefully shutting down" not in log

        # Resume from the final STATE: together the two runs deliver every conversation.
        first = {
            m["record"]["id"]
            for m in messages
            if m["type"] == "RECORD" and m["stream"] == "conversations"
        }
        emulator.faults.latency_ms = 0  # the slow answers were only needed to interrupt
        second = {r["id"] for r in run_tap(config, state=final).records()}
        truth = {
            rec["id"]
            for project in PROJECTS
            for rec in emulator.visible(ACCOUNT, project)
            if rec.get("environment") == "live"
        }
        assert truth - first, "the first run was really interrupted"
        assert truth <= first | second
