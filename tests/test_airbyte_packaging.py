"""The Airbyte platform packaging (airbyte-connector/): the Dockerfile and metadata.yaml.

No Docker daemon runs here, so the image is never built: the Dockerfile is linted (hadolint, and
the rules below that Airbyte adds), its entry point command runs outside Docker, and the
versions and names of the Dockerfile, metadata.yaml and pyproject.toml agree.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

import tomllib
import yaml
from airbyte_support import assert_protocol_messages
from pipeline_support import HADOLINT, ROOT, require_venv
from tap_runner import parse_messages

DOCKERFILE = ROOT / "airbyte-connector" / "Dockerfile"
METADATA = ROOT / "airbyte-connector" / "metadata.yaml"
# ConnectorMetadataDefinitionV0's required fields (Airbyte's metadata service).
REQUIRED = {
    "name",
    "definitionId",
    "connectorType",
    "dockerRepository",
    "dockerImageTag",
    "license",
    "documentationUrl",
    "githubIssueLabel",
    "connectorSubtype",
    "releaseStage",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def args_of(kind: str) -> list[str]:
    return [rest for word, rest in instructions() if word == kind]


def labels() -> dict[str, str]:
    pairs = re.findall(r'([\w.-]+)="([^"]*)"', " ".join(args_of("LABEL")))
    return dict(pairs)


def metadata() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], yaml.safe_load(METADATA.read_text())["data"])


def project() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def entrypoint() -> list[str]:
    (form,) = args_of("ENTRYPOINT")
    return t.cast(list[str], json.loads(form))  # exec form: a JSON array


def test_hadolint_passes() -> None:
    venv = require_venv("hadolint", HADOLINT)
    done = subprocess.run(
        [str(venv / "bin" / "hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_source_polyai_as_airbyte_expects() -> None:
    (base,) = args_of("FROM")
    assert re.fullmatch(r"python:3\.\d+-slim", base), base  # a pinned Python, not `latest`
    assert metadata()["connectorBuildOptions"]["baseImage"] == f"docker.io/library/{base}"
    assert entrypoint() == ["source-polyai"]
    assert project()["scripts"]["source-polyai"] == "tap_polyai.airbyte.cli:main"
    env = dict(re.findall(r'(\w+)="([^"]*)"', " ".join(args_of("ENV"))))
    assert env["AIRBYTE_ENTRYPOINT"] == " ".join(entrypoint())  # the platform reads it
    for copy in args_of("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    assert args_of("USER")[-1] not in ("root", "0")


def test_metadata_names_the_image_and_version_the_dockerfile_builds() -> None:
    data = metadata()
    assert set(data) >= REQUIRED, REQUIRED - set(data)
    assert data["connectorType"] == "source"
    assert str(uuid.UUID(data["definitionId"])) == data["definitionId"]
    assert data["dockerImageTag"] == project()["version"]
    assert labels() == {
        "io.airbyte.name": data["dockerRepository"],
        "io.airbyte.version": data["dockerImageTag"],
    }
    assert data["license"] == project()["license"]


def test_the_entry_point_command_answers_spec(tmp_path: Path) -> None:
    """The image's command, run outside Docker from this install."""
    command = [str(Path(sys.executable).parent / entrypoint()[0]), "spec"]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    messages = parse_messages(done.stdout)
    assert_protocol_messages(messages)
    assert [m["type"] for m in messages] == ["SPEC"]
