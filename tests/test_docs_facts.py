"""Facts README.md, the docs pages and meltano.yml state, checked where a test can check them.

Each contradiction issue 17 found between the docs and the code has a test here (or names the
test that guards it), so it cannot come back.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from tap_polyai.emulator import Emulator
from tap_polyai.schema import CONVERSATION_TURNS_SCHEMA, CONVERSATIONS_SCHEMA
from tap_polyai.shards import plan_shards
from tests.conftest import ACCOUNT, live_details
from tests.docs_support import ROOT, bash_blocks, pages, text

PATH = re.compile(
    r"(?<![\w$/.-])((?:tests|scripts|tap_polyai|transform|benchmarks|orchestration|docs)/[\w./-]*\w)"
)
MELTANO = yaml.safe_load((ROOT / "meltano.yml").read_text())
DOCUMENTS = ["README.md", *pages()]
EVERYWHERE = [*DOCUMENTS, "meltano.yml", "scripts/demo.sh", "Makefile"]


def _source(name: str) -> str:
    """A document by name: README.md / a docs page / a repository file."""
    if name in DOCUMENTS:
        return text(name)
    return (ROOT / name).read_text()


def _ignored(path: str) -> bool:
    """Generated output (git-ignored, such as dbt's target/) need not exist in a clone."""
    check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return check.returncode == 0


@pytest.mark.parametrize("name", [*DOCUMENTS, "meltano.yml"])
def test_every_repository_path_mentioned_exists(name: str) -> None:
    mentioned = set(PATH.findall(_source(name)))
    missing = sorted(p for p in mentioned if not (ROOT / p).exists() and not _ignored(p))
    assert missing == [], f"{name} mentions files that do not exist"
    assert "README.pipelines.md" not in _source(name)


def test_the_readme_links_only_to_files_that_exist() -> None:
    links = re.findall(r"\]\(((?!https?://)[^)#]+)", text("README.md"))
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_files_the_docs_write_into_the_repository_are_git_ignored() -> None:
    written = ("out.jsonl", "catalog.json", "state.json", "state.out", ".env", "tap.json")
    for name in (*written, "target-postgres.json", "target-duckdb.json"):
        assert _ignored(name), f"{name} is not git-ignored"
    assert "> out.jsonl" in text("quickstart.md")


@pytest.mark.parametrize("name", EVERYWHERE)
def test_meltano_state_clear_always_has_force(name: str) -> None:
    clears = re.findall(r"meltano[^\n`]*state clear[^\n`]*", _source(name))
    assert all("--force" in line for line in clears), clears


def test_the_env_example_points_dev_at_the_emulator() -> None:
    page = text("configuration.md")
    env_block = page[page.index("# .env (git-ignored)") :].split("```")[0]
    assert "TAP_POLYAI_API_URL=http://127.0.0.1:8765" in env_block


def test_the_docs_say_how_to_reload_into_a_new_database() -> None:
    page = text("incremental.md")
    assert "not the database or schema" in page
    assert "--full-refresh" in page
    assert "--state-id-suffix" in page


def test_the_demo_checks_rows_against_the_emulators_truth(emulator: Emulator) -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert "scripts/demo_truth.py" in demo
    assert '--expect-conversations "$EXPECTED"' in demo
    assert "served_ids" not in demo

    script = str(ROOT / "scripts" / "demo_truth.py")
    proc = subprocess.run(
        [sys.executable, script, emulator.base_url, ACCOUNT, "PROJECT-alpha", "--client-env=live"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    visible = emulator.visible(ACCOUNT, "PROJECT-alpha")
    live = {c["id"] for c in visible if c["environment"] == "live"}
    assert 0 < len(live) < len({c["id"] for c in visible}), "the data has non-live conversations"
    assert int(proc.stdout) == len(live)
    assert f"{len(visible)} conversations, {len(live)} live" in proc.stderr
    assert [r for r in emulator.requests if "/conversations" in r.get("path", "")] == []


def test_the_demos_detail_truth_is_the_settled_details(emulator: Emulator, tmp_path: Path) -> None:
    """demo_truth.py's detail figures come from the conversations whose detail the tap loads
    (tests.conftest.live_details: finished, settled), counted from the API's own details."""
    out = tmp_path / "details.json"
    script = str(ROOT / "scripts" / "demo_truth.py")
    args = [emulator.base_url, ACCOUNT, "PROJECT-alpha", "--details-out", str(out)]
    subprocess.run([sys.executable, script, *args], capture_output=True, check=True, timeout=60)
    figures = json.loads(out.read_text())
    details = {
        cid: d for cid, d in live_details(emulator).items() if d["project_id"] == "PROJECT-alpha"
    }
    assert figures["details"] == len(details) > 0
    tags: collections.Counter[str] = collections.Counter()
    for detail in details.values():
        tags.update(detail["tags"])
    assert figures["tags"] == dict(tags)
    scores = [d["poly_score"] for d in details.values() if d.get("poly_score") is not None]
    assert sum(v["scored"] for v in figures["poly_score"].values()) == len(scores)
    assert sum(v["scored"] for v in figures["poly_score_per_day"].values()) == len(scores)
    assert sum(figures["language_direction"].values()) == len(details)
    assert [r for r in emulator.requests if "/conversations" in r.get("path", "")] == []


# --- The README is a front door -------------------------------------------------------------


def test_the_readme_is_short_and_reaches_a_postgres_load_early() -> None:
    lines = text("README.md").splitlines()
    assert len(lines) <= 200
    postgres = next(i for i, line in enumerate(lines) if "target-postgres --config" in line)
    assert postgres < 60, "a newcomer reaches the PostgreSQL load within 60 lines"
    first_sync = next(i for i, line in enumerate(lines) if "tap-polyai --config tap.json" in line)
    assert first_sync < postgres
    readme = "\n".join(lines)
    for command in ("make demo", "make test", "--test"):
        assert command in readme
    # The README's load block is one the docs tests run, not one marked as not run.
    (load,) = [b for b in bash_blocks("README.md") if "target-postgres --config" in b.body]
    assert load.runs


def test_ci_runs_make_test() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_every_docs_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", nav, re.MULTILINE))
    assert listed == set(pages())


def test_each_topic_has_one_page() -> None:
    """The topics the old README explained twice now have one home each."""
    homes = {
        "## Schema drift": "streams.md",
        "### The tap checks the state it is given": "incremental.md",
        "## Large backfills in parallel": "scheduling.md",
        "## The tap and the emulator in your own CI": "emulator.md",
        "<!-- settings:begin -->": "configuration.md",
    }
    for heading, home in homes.items():
        holders = [name for name in DOCUMENTS if heading in text(name)]
        assert holders == [home], (heading, holders)


# --- Contradictions issue 17 listed, each guarded -------------------------------------------


def _cli(*args: str) -> str:
    """`tap-polyai ARGS` from this checkout's code; its stdout."""
    tap = "from tap_polyai.tap import TapPolyAI; TapPolyAI.cli()"
    run = subprocess.run(
        [sys.executable, "-c", tap, *args], capture_output=True, text=True, check=True
    )
    return run.stdout


def _environment(name: str) -> dict[str, t.Any]:
    (env,) = [e for e in MELTANO["environments"] if e["name"] == name]
    return env


def test_prod_sets_no_tap_defaults() -> None:
    """prod reads everything from the environment: no tap setting is pinned there."""
    plugins = _environment("prod")["config"]["plugins"]
    assert [e for e in plugins.get("extractors", []) if e.get("config")] == []
    assert "max_concurrency: 4" not in (ROOT / "meltano.yml").read_text()


def test_the_tap_help_describes_test_as_the_preflight_check() -> None:
    help_text = " ".join(_cli("--help").split())
    assert "Pre-flight check: one request per project" in help_text
    assert "sync a single record" not in help_text


@pytest.mark.parametrize(
    "name", [*EVERYWHERE, "tap_polyai/shard_run.py", ".github/workflows/ci.yml"]
)
def test_meltano_install_takes_plugin_names_only(name: str) -> None:
    """Meltano 4 reads `extractor`, `loader`, `utility` after `install` as plugin names."""
    source = _source(name).replace("\\\n", " ")
    installs = re.findall(r"meltano\S*(?:\s+--?[\w-]+(?:\s+\w+)?)*\s+install\b[^\n`|;&]*", source)
    for found in installs:
        words = re.sub(r"--plugin-type[ =]\w+", "", found)  # the Meltano 4 way to name a type
        assert not re.search(r"\b(extractor|loader|utility|transformer)\b", words), found


def test_what_meltano_yml_says_make_demo_runs_is_what_it_runs() -> None:
    comment = (ROOT / "meltano.yml").read_text()
    said = re.search(r"#\s+bash scripts/meltano\.sh (--environment demo run [^\n#]+)", comment)
    assert said, "meltano.yml's header shows the demo's run command"
    demo = " ".join((ROOT / "scripts" / "demo.sh").read_text().replace("\\\n", " ").split())
    assert " ".join(said.group(1).split()) in demo
    assert "polyai-to-duckdb" not in said.group(1)


def test_the_demo_commands_verification_shows_are_what_demo_sh_runs() -> None:
    """docs/verification.md shows the demo's Meltano commands (not run there: tests/test_demo.py
    runs scripts/demo.sh); each is in demo.sh, as `bash scripts/meltano.sh ...`."""
    (block,) = [b for b in bash_blocks("verification.md") if "--environment demo" in b.body]
    assert not block.runs
    assert "scripts/demo.sh" in block.lead
    demo = " ".join((ROOT / "scripts" / "demo.sh").read_text().replace("\\\n", " ").split())
    for line in block.body.splitlines():
        assert line.startswith("meltano "), line
        assert "bash scripts/meltano.sh " + " ".join(line.split()[1:]) in demo, line


@pytest.mark.parametrize("name", EVERYWHERE)
def test_postgres_loader_urls_name_psycopg(name: str) -> None:
    """target-postgres URLs in docs and meltano.yml are `postgresql+psycopg://`, as tested."""
    source = _source(name)
    plain = re.findall(r"(?:SQLALCHEMY_URL=|\"sqlalchemy_url\":\s*\")postgresql://", source)
    assert plain == [], name


def test_dbt_snowflake_takes_a_key_pair_as_the_loader_does() -> None:
    """Every variable the Snowflake profile reads is a declared dbt-snowflake setting, and the
    key-pair ones are there (tests/test_analytics_snowflake.py runs dbt with a key pair)."""
    profile = (ROOT / "transform" / "profiles" / "profiles.yml").read_text()
    snowflake = profile.split("    snowflake:", 1)[1]
    read = set(re.findall(r"env_var\('(DBT_SNOWFLAKE_\w+)'", snowflake))
    (utility,) = [u for u in MELTANO["plugins"]["utilities"] if u["name"] == "dbt-snowflake"]
    declared = {s["env"] for s in utility["settings"] if s.get("env", "").startswith("DBT_SNOW")}
    assert {"DBT_SNOWFLAKE_PRIVATE_KEY_PATH", "DBT_SNOWFLAKE_PRIVATE_KEY"} <= read
    assert read == declared
    (loader,) = [p for p in MELTANO["plugins"]["loaders"] if p["name"] == "target-snowflake"]
    assert "private_key_path" in {s["name"] for s in loader["settings"]}


def test_without_end_one_shard_reads_every_project() -> None:
    (shard,) = plan_shards("2024-01-01T00:00:00Z")
    assert shard.project_id is None
    assert shard.end is None
    page = " ".join(text("scheduling.md").split())
    assert "one open-ended, incremental shard that reads every configured project" in page
    assert "incremental shard per project" not in page


@pytest.mark.parametrize("name", DOCUMENTS)
def test_make_test_is_not_called_the_whole_suite(name: str) -> None:
    assert "whole offline test suite" not in _source(name)


def test_the_docs_say_what_make_test_leaves_out() -> None:
    readme = " ".join(text("README.md").split())
    assert "`make test` leaves out the Dagster/Airflow recipes" in readme
    verification = " ".join(text("verification.md").split())
    assert '-m "not orchestration"' in verification
    makefile = (ROOT / "Makefile").read_text()
    assert '-m "not orchestration"' in makefile


# --- Release hygiene --------------------------------------------------------------------------


def _project(key: str) -> str:
    """A string field of pyproject.toml's [project] (tomllib is 3.11+; 3.10 is supported)."""
    found = re.search(rf'^{key} = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found, key
    return found.group(1)


def test_the_version_is_the_same_everywhere() -> None:
    version = _project("version")
    out = _cli("--version")
    assert f"tap-polyai v{version}," in out
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M)
    assert "## [Unreleased]" in changelog
    assert f"@v{version}" in text("README.md")


def test_the_license_is_the_apache_2_text() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert len(license_text.split()) > 1500
    assert _project("license") == "Apache-2.0"


@pytest.mark.parametrize("stream", ["conversations", "conversation_turns"])
def test_the_streams_page_lists_every_field(stream: str) -> None:
    schema = {
        "conversations": CONVERSATIONS_SCHEMA,
        "conversation_turns": CONVERSATION_TURNS_SCHEMA,
    }
    page = text("streams.md")
    table = page.split(f"<!-- fields:{stream} -->", 1)[1].split("\n\n", 1)[0]
    named = set(
        re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in table.splitlines()[2:]))
    )
    assert named == set(schema[stream]["properties"])
