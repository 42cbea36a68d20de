"""The Python examples of the repository's README.md, as the tests that run them read them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section(heading: str) -> str:
    """The text under the README heading that starts with ``heading`` (say "## Python"), up to the
    next heading of the same level."""
    level = heading.split(" ", 1)[0]
    return README.read_text().split("\n" + heading, 1)[1].split(f"\n{level} ", 1)[0]


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks of that section, in order."""
    return re.findall(r"```python\n(.*?)```", section(heading), flags=re.S)
