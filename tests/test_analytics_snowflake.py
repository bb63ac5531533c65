"""The analytics project (transform/) with the Snowflake adapter, on fakesnow.

No Snowflake account is reachable here. dbt-snowflake 1.12.4 runs in-process with fakesnow's
`patch()`, which answers `snowflake.connector.connect` with DuckDB underneath and translates
Snowflake SQL. So this proves that dbt-snowflake compiles every model with our snowflake__
macros, that dbt's own Snowflake statements (introspection, CREATE OR REPLACE, views) and our
SQL (VARIANT arrays, TIMESTAMP_TZ, percentile_cont, QUALIFY-free dedup) parse and run as
Snowflake SQL, and that every data test passes. It does not prove Snowflake's own execution
semantics (fakesnow executes in DuckDB).

The raw tables are created as meltanolabs-target-snowflake 0.20.4 types them
(tests/test_snowflake_types.py checks that mapping): VARIANT for JSON, FLOAT for durations and
latency, NUMBER for integers, plus its _SDC_* columns. They hold an older duplicate version of
some conversations (an append-only load) and a tombstoned turn, which staging must drop.
conversation_details is loaded too (VARIANT tags and function events, TIMESTAMP_TZ, FLOAT), with
stale versions of some details, and the build enables its models
(`polyai_conversation_details`): the Snowflake branch of the tags macro (LATERAL FLATTEN) runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import typing as t
from pathlib import Path

import pytest

from tests import dbt_support
from tests.conftest import live_conversations, live_details, make_emulator

pytestmark = [pytest.mark.pipeline]

# Runs in the dbt-snowflake venv: load argv[1]'s records and argv[2]'s details into fakesnow with
# Snowflake SQL (FLATTEN over one PARSE_JSON: one statement per table), `dbt build` with the
# detail models, print the marts as JSON on the last line.
FAKESNOW_BUILD = textwrap.dedent(
    """
    import hashlib, json, sys
    import fakesnow
    import snowflake.connector
    from dbt.cli.main import dbtRunner

    versions = json.dumps(json.load(open(sys.argv[1])))
    detail_versions = json.dumps(json.load(open(sys.argv[2])))
    with fakesnow.patch(create_database_on_connect=True, create_schema_on_connect=True):
        cur = snowflake.connector.connect(database="POLYAI_DB", schema="POLYAI").cursor()
        meta = ("_SDC_EXTRACTED_AT TIMESTAMP_NTZ, _SDC_BATCHED_AT TIMESTAMP_NTZ, "
                "_SDC_DELETED_AT TIMESTAMP_NTZ, _SDC_SEQUENCE NUMBER")
        cur.execute(
            "CREATE TABLE POLYAI.CONVERSATIONS (ID VARCHAR, ACCOUNT_ID VARCHAR, "
            "PROJECT_ID VARCHAR, VARIANT_ID VARCHAR, VARIANT_NAME VARCHAR, ENVIRONMENT VARCHAR, "
            "STARTED_AT TIMESTAMP_TZ, CHANNEL VARCHAR, FROM_NUMBER VARCHAR, TO_NUMBER VARCHAR, "
            "IN_PROGRESS BOOLEAN, NUM_TURNS NUMBER, TOTAL_DURATION FLOAT, "
            "POLYAI_DURATION FLOAT, HANDOFF BOOLEAN, HANDOFF_REASON VARCHAR, "
            "HANDOFF_DESTINATION VARCHAR, NUM_SILENCES NUMBER, NUM_OOD NUMBER, "
            "METRICS VARIANT, STATE VARIANT, TURNS VARIANT, " + meta + ")"
        )
        cur.execute(
            "CREATE TABLE POLYAI.CONVERSATION_TURNS (CONVERSATION_ID VARCHAR, "
            "TURN_INDEX NUMBER, ACCOUNT_ID VARCHAR, PROJECT_ID VARCHAR, "
            "STARTED_AT TIMESTAMP_NTZ, USER_INPUT VARCHAR, USER_INPUT_DATETIME TIMESTAMP_NTZ, "
            "AGENT_RESPONSE VARCHAR, AGENT_RESPONSE_DATETIME TIMESTAMP_NTZ, LATENCY FLOAT, "
            "IS_OOD BOOLEAN, IS_SILENCE BOOLEAN, BARGE_IN BOOLEAN, " + meta + ")"
        )
        cur.execute(
            "CREATE TABLE POLYAI.CONVERSATION_DETAILS (CONVERSATION_ID VARCHAR, "
            "ACCOUNT_ID VARCHAR, PROJECT_ID VARCHAR, STARTED_AT TIMESTAMP_TZ, "
            "CREATED_AT TIMESTAMP_TZ, FINISHED_AT TIMESTAMP_TZ, DURATION FLOAT, "
            "LANGUAGE VARCHAR, DIRECTION VARCHAR, TAGS VARIANT, POLY_SCORE FLOAT, "
            "SHORT_SUMMARY VARCHAR, NOTE VARCHAR, DEPLOYMENT_ID VARCHAR, AUDIO_URL VARCHAR, "
            "FUNCTION_EVENTS VARIANT, " + meta + ")"
        )
        cur.execute(
            "INSERT INTO POLYAI.CONVERSATION_DETAILS SELECT v.value:conversation_id::VARCHAR, "
            "v.value:account_id::VARCHAR, v.value:project_id::VARCHAR, "
            "v.value:started_at::TIMESTAMP_TZ, v.value:created_at::TIMESTAMP_TZ, "
            "v.value:finished_at::TIMESTAMP_TZ, v.value:duration::FLOAT, "
            "v.value:language::VARCHAR, v.value:direction::VARCHAR, v.value:tags, "
            "v.value:poly_score::FLOAT, v.value:short_summary::VARCHAR, v.value:note::VARCHAR, "
            "v.value:deployment_id::VARCHAR, v.value:audio_url::VARCHAR, "
            "v.value:function_events, v.value:_extracted_at::TIMESTAMP_NTZ, "
            "v.value:_extracted_at::TIMESTAMP_NTZ, NULL, v.index "
            "FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) v",
            [detail_versions],
        )
        # Every version of every conversation (as an append-only load keeps them), then the
        # turns of the latest versions, then one tombstone.
        cur.execute(
            "INSERT INTO POLYAI.CONVERSATIONS SELECT v.value:id::VARCHAR, "
            "v.value:account_id::VARCHAR, v.value:project_id::VARCHAR, "
            "v.value:variant_id::VARCHAR, v.value:variant_name::VARCHAR, "
            "v.value:environment::VARCHAR, v.value:started_at::TIMESTAMP_TZ, "
            "v.value:channel::VARCHAR, v.value:from_number::VARCHAR, "
            "v.value:to_number::VARCHAR, v.value:in_progress::BOOLEAN, "
            "v.value:num_turns::NUMBER, v.value:total_duration::FLOAT, "
            "v.value:polyai_duration::FLOAT, v.value:handoff::BOOLEAN, "
            "v.value:handoff_reason::VARCHAR, v.value:handoff_destination::VARCHAR, "
            "v.value:num_silences::NUMBER, v.value:num_ood::NUMBER, v.value:metrics, "
            "v.value:state, v.value:turns, v.value:_extracted_at::TIMESTAMP_NTZ, "
            "v.value:_extracted_at::TIMESTAMP_NTZ, NULL, v.index "
            "FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) v",
            [versions],
        )
        cur.execute(
            "INSERT INTO POLYAI.CONVERSATION_TURNS SELECT c.value:id::VARCHAR, t.index, "
            "c.value:account_id::VARCHAR, c.value:project_id::VARCHAR, "
            "c.value:started_at::TIMESTAMP_NTZ, t.value:user_input::VARCHAR, "
            "t.value:user_input_datetime::TIMESTAMP_NTZ, t.value:agent_response::VARCHAR, "
            "t.value:agent_response_datetime::TIMESTAMP_NTZ, t.value:latency::FLOAT, "
            "t.value:is_ood::BOOLEAN, t.value:is_silence::BOOLEAN, t.value:barge_in::BOOLEAN, "
            "c.value:_extracted_at::TIMESTAMP_NTZ, c.value:_extracted_at::TIMESTAMP_NTZ, "
            "NULL, c.index "
            "FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) c, "
            "TABLE(FLATTEN(INPUT => c.value:turns)) t WHERE c.value:_latest::BOOLEAN",
            [versions],
        )
        cur.execute(
            "INSERT INTO POLYAI.CONVERSATION_TURNS (CONVERSATION_ID, TURN_INDEX, "
            "_SDC_DELETED_AT) SELECT ID, NUM_TURNS, CURRENT_TIMESTAMP FROM POLYAI.CONVERSATIONS "
            "WHERE ARRAY_SIZE(TURNS) > 0 ORDER BY ID LIMIT 1"
        )
        # What dbt-snowflake hands the connector, as rendered from profiles.yml: which
        # credentials, and the key's fingerprint (never the key or password itself).
        fake_connect = snowflake.connector.connect
        connects = []

        def recording_connect(*args, **kwargs):
            key = kwargs.get("private_key")
            connects.append({
                "password": bool(kwargs.get("password")),
                "private_key_sha256": hashlib.sha256(key).hexdigest() if key else None,
            })
            return fake_connect(*args, **kwargs)

        snowflake.connector.connect = recording_connect
        result = dbtRunner().invoke(
            ["build", "--threads", "1", "--vars", "{polyai_conversation_details: true}"]
        )
        out = {"success": bool(result.success), "connects": connects}
        for model in (
            "POLYAI_DAILY",
            "POLYAI_VARIANT_COMPARISON",
            "STG_POLYAI__TURNS",
            "STG_POLYAI__CONVERSATION_DETAILS",
            "POLYAI_POLY_SCORE",
            "POLYAI_LANGUAGE_DIRECTION",
            "POLYAI_TAGS",
        ):
            cur.execute("SELECT * FROM ANALYTICS." + model)
            names = [d[0].lower() for d in cur.description]
            out[model.lower()] = [dict(zip(names, row)) for row in cur.fetchall()]
        print(json.dumps(out, default=str))
    """
)


# Runs in the dbt-snowflake venv (it has `cryptography`): an encrypted PKCS#8 key pair as
# Snowflake's key-pair docs make it; prints the SHA-256 of the unencrypted DER dbt must send.
MAKE_KEY = textwrap.dedent(
    """
    import hashlib, sys
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(sys.argv[2].encode()),
    )
    open(sys.argv[1], "wb").write(pem)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    print(hashlib.sha256(der).hexdigest())
    """
)


def _versions(truth: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The latest records, plus an older, different version of every 7th conversation."""
    out = []
    for n, rec in enumerate(truth):
        if n % 7 == 0:
            stale = {**rec, "in_progress": True, "handoff": not rec["handoff"]}
            out.append({**stale, "_extracted_at": "2020-01-01 00:00:00", "_latest": False})
        out.append({**rec, "_extracted_at": "2030-01-01 00:00:00", "_latest": True})
    return out


def _detail_versions(details: dict[str, dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The latest details, plus an older version of every 5th one (no score, another tag)."""
    out = []
    for n, detail in enumerate(details.values()):
        if n % 5 == 0:
            stale = {**detail, "tags": ["stale"], "poly_score": None, "language": "xx-XX"}
            out.append({**stale, "_extracted_at": "2020-01-01 00:00:00"})
        out.append({**detail, "_extracted_at": "2030-01-01 00:00:00"})
    return out


def test_dbt_build_with_snowflake_adapter_on_fakesnow(tmp_path: Path) -> None:
    """dbt build on fakesnow, authenticated with a key pair as the loader is (docs/snowflake.md)."""
    venv = dbt_support.dbt_venv("snowflake")
    key_path, passphrase = tmp_path / "polyai_transformer.p8", "correct horse"
    key_sha = subprocess.run(
        [str(venv / "bin" / "python"), "-c", MAKE_KEY, str(key_path), passphrase],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    with make_emulator() as emulator:
        truth = list(live_conversations(emulator).values())
        details = live_details(emulator)
    records = tmp_path / "records.json"
    records.write_text(json.dumps(_versions(truth)))
    detail_records = tmp_path / "details.json"
    detail_records.write_text(json.dumps(_detail_versions(details)))
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "DBT_TARGET": "snowflake",
        "DBT_SNOWFLAKE_ACCOUNT": "fakesnow",
        "DBT_SNOWFLAKE_USER": "fakesnow",
        # Key-pair authentication, as target-snowflake's documented setup: no password.
        "DBT_SNOWFLAKE_PRIVATE_KEY_PATH": str(key_path),
        "DBT_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": passphrase,
        "DBT_SNOWFLAKE_DATABASE": "POLYAI_DB",
        "DBT_SNOWFLAKE_WAREHOUSE": "WH",
        "DBT_SNOWFLAKE_ROLE": "ANALYST",
        "DBT_SCHEMA": "ANALYTICS",
        "POLYAI_SOURCE_SCHEMA": "POLYAI",
        "DBT_PROFILES_DIR": str(dbt_support.PROFILES_DIR),
        "DBT_PROJECT_DIR": str(dbt_support.PROJECT_DIR),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", FAKESNOW_BUILD, str(records), str(detail_records)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (tmp_path / "dbt-build.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    summary = dbt_support.build_summary(done.stdout)
    assert out["success"], done.stdout[-4000:]
    # profiles.yml passed the decrypted key, and no password, on every connection dbt opened.
    assert out["connects"]
    assert all(c == {"password": False, "private_key_sha256": key_sha} for c in out["connects"])
    assert summary["ERROR"] == summary["SKIP"] == summary["WARN"] == 0
    assert summary["PASS"] >= len(dbt_support.MODELS) + 25

    # The tombstone is gone; every real turn is there once.
    assert len(out["stg_polyai__turns"]) == sum(len(r.get("turns") or []) for r in truth)

    # Stale versions skipped: the marts equal Python's figures from the latest records.
    per_day: dict[tuple[str, str], int] = {}
    for row in out["polyai_daily"]:
        key = (row["project_id"], str(row["day"])[:10])
        per_day[key] = per_day.get(key, 0) + int(row["conversations"])
    assert per_day == dbt_support.conversations_per_day(truth)
    expected = dbt_support.containment(truth)
    variants = dbt_support.variant_metrics(truth)
    got = out["polyai_variant_comparison"]
    assert {(v["project_id"], v["variant_id"]) for v in got} == set(variants)
    for project, (finished, contained, _) in expected.items():
        mine = [v for v in got if v["project_id"] == project]
        assert sum(int(v["finished"]) for v in mine) == finished
        assert sum(int(v["contained"]) for v in mine) == contained
    for v in got:
        want = variants[(v["project_id"], v["variant_id"])]
        for metric, value in want.items():
            assert v[metric] == pytest.approx(value, abs=1e-9), (v["variant_id"], metric)

    # conversation_details: the latest version of each detail, and the marts from it.
    assert len(out["stg_polyai__conversation_details"]) == len(details)
    tags: dict[tuple[str, str], int] = {}
    for detail in details.values():
        for tag in detail["tags"]:
            tags[(detail["project_id"], tag)] = tags.get((detail["project_id"], tag), 0) + 1
    got_tags: dict[tuple[str, str], int] = {}
    for row in out["polyai_tags"]:
        key = (row["project_id"], row["tag"])
        got_tags[key] = got_tags.get(key, 0) + int(row["conversations"])
    assert got_tags == tags
    assert sum(int(r["scored"]) for r in out["polyai_poly_score"]) == len(details)
    weighted = sum(float(r["avg_poly_score"]) * int(r["scored"]) for r in out["polyai_poly_score"])
    scores = [float(d["poly_score"]) for d in details.values()]
    assert weighted / len(scores) == pytest.approx(sum(scores) / len(scores), abs=1e-9)
    assert min(float(r["min_poly_score"]) for r in out["polyai_poly_score"]) == min(scores)
    splits: dict[tuple[str, str], int] = {}
    for detail in details.values():
        key = (detail["language"], detail["direction"])
        splits[key] = splits.get(key, 0) + 1
    got_splits: dict[tuple[str, str], int] = {}
    for row in out["polyai_language_direction"]:
        key = (row["language"], row["direction"])
        got_splits[key] = got_splits.get(key, 0) + int(row["conversations"])
    assert got_splits == splits
