"""Reading the docs pages (docs/*.md) and README.md the way the docs tests need them.

A fenced ```bash block is a command block. The tests run it as printed unless the line right
above it is an HTML comment starting with `<!-- not run`, which says why it is not run (a
crontab line, a Snowflake account, an install step another test covers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOT_RUN = "<!-- not run"
_BLOCK = re.compile(r"^(?P<lead>[^\n]*)\n```bash\n(?P<body>.*?)\n```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One ```bash block: its text, and whether the docs say it is not run."""

    body: str
    runs: bool
    lead: str


def text(name: str) -> str:
    """README.md, or a docs page by file name (`postgres.md`)."""
    path = ROOT / name if name == "README.md" else DOCS / name
    return path.read_text()


def pages() -> list[str]:
    return sorted(p.name for p in DOCS.glob("*.md"))


def bash_blocks(name: str) -> list[Block]:
    blocks = []
    for match in _BLOCK.finditer("\n" + text(name)):
        lead = match.group("lead").strip()
        blocks.append(Block(match.group("body"), not lead.startswith(NOT_RUN), lead))
    return blocks


def block_after(name: str, marker: str, language: str = "bash") -> str:
    """The fenced block (```bash, or `language`) right after `marker` on a page."""
    page = text(name)
    after = page[page.index(marker) + len(marker) :].lstrip("\n")
    fence = f"```{language}\n"
    assert after.startswith(fence), f"the marker must sit right above a {fence.strip()} block"
    return after[len(fence) : after.index("\n```")] + "\n"
