"""Regenerate the settings tables of docs/configuration.md from `tap-polyai --about`.

`--check` exits 1 when the page has drifted (the test suite runs it), so the table users read is
always the one the code declares: type, default, allowed values and ranges, and the environment
variable Meltano (and `tap-polyai --config ENV`) reads. The SDK's built-in settings (stream maps,
flattening, batch files) get a table of their own, after the tap's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
MARKERS = {
    "tap": ("<!-- settings:begin -->", "<!-- settings:end -->"),
    "sdk": ("<!-- sdk-settings:begin -->", "<!-- sdk-settings:end -->"),
}
ENV_PREFIX = "TAP_POLYAI_"


def about() -> dict[str, t.Any]:
    """`tap-polyai --about --format=json`, from this checkout's code."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tap_polyai.tap import TapPolyAI; TapPolyAI.cli()",
            "--about",
            "--format=json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return t.cast(dict[str, t.Any], json.loads(out))


def _types(prop: dict[str, t.Any]) -> list[str]:
    declared = prop.get("type") or []
    if isinstance(declared, str):
        declared = [declared]
    for alternative in prop.get("oneOf") or prop.get("anyOf") or []:
        if isinstance(alternative, dict):
            declared = [*declared, *(x for x in _types(alternative) if x not in declared)]
    return [x for x in declared if x != "null"]


def type_of(prop: dict[str, t.Any]) -> str:
    types = _types(prop)
    name = " or ".join(types) or "any"
    if prop.get("format") == "date-time":
        name = "date-time (ISO8601)"
    if prop.get("secret"):
        name += " (secret)"
    return name


def allowed(prop: dict[str, t.Any]) -> str:  # noqa: PLR0911 (one return per kind of rule)
    """Allowed values or range, as a reader wants them."""
    if "enum" in prop:
        return ", ".join(f"`{v}`" for v in prop["enum"])
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"≥ {low}"
    if high is not None:
        return f"≤ {high}"
    items = prop.get("items") or {}
    if "object" in _types(items) and items.get("properties"):
        required = set(items.get("required") or [])
        keys = [k if k in required else f"{k}?" for k in items["properties"]]
        return "list of `{" + ", ".join(keys) + "}`"
    if _types(items):
        return f"list of {' or '.join(_types(items))}"
    return ""


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def default(prop: dict[str, t.Any]) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def tap_table(props: dict[str, dict[str, t.Any]], required: set[str]) -> str:
    lines = [
        "| Setting | Environment variable | Type | Default | Allowed | Description |",
        "|:--|:--|:--|:--|:--|:--|",
    ]
    for name, prop in props.items():
        setting = f"`{name}`" + (" **(required)**" if name in required else "")
        lines.append(
            f"| {setting} | `{ENV_PREFIX}{name.upper()}` | {type_of(prop)} | {default(prop)} "
            f"| {allowed(prop)} | {cell(prop.get('description', ''))} |"
        )
    return "\n".join(lines)


def sdk_table(props: dict[str, dict[str, t.Any]]) -> str:
    """One row per SDK setting, then its sub-keys (set inside the object's JSON)."""
    lines = [
        "| Setting | Environment variable | Type | Allowed | Description |",
        "|:--|:--|:--|:--|:--|",
    ]

    def rows(name: str, prop: dict[str, t.Any], env: str) -> None:
        lines.append(
            f"| `{name}` | {env} | {type_of(prop)} | {allowed(prop)} "
            f"| {cell(prop.get('description', ''))} |"
        )
        for key, sub in (prop.get("properties") or {}).items():
            if key.startswith("__"):
                continue
            rows(f"{name}.{key}", sub, "")

    for name, prop in props.items():
        rows(name, prop, f"`{ENV_PREFIX}{name.upper()}`")
    return "\n".join(lines)


def tables() -> dict[str, str]:
    from tap_polyai.settings import SDK_BUILTIN_SETTINGS

    settings = about()["settings"]
    props = settings["properties"]
    required = set(settings.get("required") or [])
    own = {k: v for k, v in props.items() if k not in SDK_BUILTIN_SETTINGS}
    sdk = {k: v for k, v in props.items() if k in SDK_BUILTIN_SETTINGS}
    return {"tap": tap_table(own, required), "sdk": sdk_table(sdk)}


def render(page: str) -> str:
    for key, table in tables().items():
        begin, end = MARKERS[key]
        head, rest = page.split(begin, 1)
        _, tail = rest.split(end, 1)
        page = f"{head}{begin}\n{table}\n{end}{tail}"
    return page


def main() -> int:
    sys.path.insert(0, str(ROOT))
    current = PAGE.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        if wanted != current:
            print(
                "docs/configuration.md settings tables are stale: run `make settings`",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
