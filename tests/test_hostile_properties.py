"""Property: whatever a server answers (generated statuses, headers and JSON bodies), a run ends
within a time bound with exit 0 or exactly one named ERROR line, no traceback at the default log
level, and no configured key or phone number anywhere in its output."""

from __future__ import annotations

import itertools
import json
import subprocess
import typing as t
from pathlib import Path

from hostile_server import SECRET, Answer, HostileServer, Seen, conversations, hostile_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tap_runner import TAP_COMMAND

PHONE = "+14155550123"
OTHER_PHONE = "07700 900456"
TIME_BOUND = 60  # seconds: far more than any bounded run here takes, far less than a hang

# Records without phone numbers, so any number in the output came from the hostile parts.
CLEAN = [{**c, "from_number": None, "to_number": None} for c in conversations(6, seed=3)]

echoes = st.sampled_from([SECRET, PHONE, OTHER_PHONE, f"key={SECRET}", f"call {PHONE} now"])
junk_text = st.one_of(echoes, st.text(max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | junk_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(junk_text, children, max_size=3)
    ),
    max_leaves=8,
)
pages = st.fixed_dictionaries(
    {"conversations": st.lists(st.sampled_from(CLEAN) | json_values, max_size=4)},
    optional={
        "cursor": st.none() | junk_text | st.integers() | json_values,
        "next_offset": st.none() | st.integers(-5, 50) | junk_text | st.floats(allow_nan=False),
        "error_message": junk_text,
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "error_code": junk_text,
        "error_message": junk_text,
        "error_id": junk_text,
        "error": json_values,
    },
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Retry-After": st.sampled_from(["nan", "-1", "inf", "0", "0.1", "soon", PHONE]),
        "Content-Length": st.sampled_from(["abc", "-1", "99999999999"]),
        "Location": st.sampled_from(["http://127.0.0.1:9/x", f"/v3?key={SECRET}"]),
        "X-PolyAI-Correlation-Id": junk_text,
        "Content-Type": st.sampled_from(["text/html", "application/json"]),
    },
)
statuses = st.sampled_from([200, 200, 200, 204, 301, 302, 400, 401, 403, 404, 418, 429, 500, 503])
bodies = st.one_of(pages, envelopes, json_values, st.binary(max_size=40))
answers = st.lists(st.tuples(statuses, headers, bodies), min_size=1, max_size=4)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=answers)
# Found by this test (2026-12-02): a header with a line break made urllib3 warn with a traceback.
@example(script=[(200, {"X-PolyAI-Correlation-Id": "\n0"}, {})])
# Found by this test (2026-12-03): a 429 whose Retry-After is a phone number (`+14155550123`)
# was read as 449 years, so the run waited the 15-minute cap before its retry.
@example(script=[(429, {"Retry-After": PHONE}, {"conversations": []})])
def test_any_answer_ends_in_time_named_and_leaks_nothing(
    tmp_path: Path, script: list[tuple[int, dict[str, str], t.Any]]
) -> None:
    counter = itertools.count()

    def respond(seen: Seen) -> Answer:
        status, head, body = script[min(next(counter), len(script) - 1)]
        if isinstance(body, (dict, list)) or body is None or isinstance(body, (int, float, str)):
            body = json.dumps(body).encode()
        if head.get("Content-Length") and status != 200:
            head = {k: v for k, v in head.items() if k != "Content-Length"}
        return status, head, body

    with HostileServer(respond) as api:
        config = hostile_config(api.base_url, request_timeout_seconds=2, page_size=100)
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        proc = subprocess.run(
            [*TAP_COMMAND, "--config", str(config_file)],
            capture_output=True,
            timeout=TIME_BOUND,
            check=False,
        )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    errors = [line for line in err.splitlines() if "| ERROR" in line]
    if proc.returncode == 0:
        assert errors == [], err[-2000:]
    else:
        assert proc.returncode == 1, err[-2000:]
        assert len(errors) == 1, err[-3000:]
        assert "Unexpected error" not in errors[0], errors[0]
    assert "Traceback" not in err
    for secret in (SECRET, PHONE, OTHER_PHONE, "4155550123", "7700900456"):
        assert secret not in out
        assert secret not in err
