"""The README's layout table and ``market``'s module map name exactly the files there are."""
from __future__ import annotations

import re
from pathlib import Path

import market

ROOT = Path(__file__).resolve().parent.parent.parent  # the project directory


def project_files() -> set[str]:
    """Every file the layout table must name: the top level's programs and scripts, and the
    modules of ``market`` and ``bench`` (a package's ``__init__.py`` holds its own map)."""
    found = {path.name for pattern in ("*.py", "*.sh") for path in ROOT.glob(pattern)}
    for package in ("market", "bench"):
        found |= {f"{package}/{path.name}" for path in (ROOT / package).glob("*.py")
                  if path.name != "__init__.py"}
    return found


def layout_table() -> set[str]:
    """The files in the first column of the README's "How the code is laid out" table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## How the code is laid out\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_the_layout_table_names_every_file_and_only_files_there_are():
    table, files = layout_table(), project_files()
    assert len(table) > 40, "the table was not found: the test is blind"
    assert sorted(files - table) == [], "files missing from README's layout table"
    assert sorted(table - files) == [], "README's layout table names files that do not exist"


def test_the_module_map_of_market_names_every_module():
    mapped = set(re.findall(r"^    (\w+)  ", market.__doc__, re.M))
    modules = {path.stem for path in (ROOT / "market").glob("*.py")} - {"__init__"}
    assert len(mapped) > 20, "the map was not found: the test is blind"
    assert sorted(modules - mapped) == [], "modules missing from market/__init__.py's map"
    assert sorted(mapped - modules) == [], "market/__init__.py maps modules that do not exist"
