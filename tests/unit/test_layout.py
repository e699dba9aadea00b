"""The folders tell the architecture: each package's docstring names exactly its modules,
imports run one way (no circles, type-only imports included), and the domain packages
import no service machinery."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the project directory
PACKAGE = ROOT / "market"
# What the domain (the databases' state and rules) may import from market: plain values and
# shared vocabulary, never sockets, services, storage or replication.
DOMAIN = ("market.customer", "market.product")
SHARED = {"market.config", "market.errors", "market.fields", "market.keys", "market.paging",
          "market.recent"}


def modules() -> dict[str, Path]:
    """Every module of ``market`` by its dotted name (packages by their ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """The ``market`` modules ``path`` imports, at any depth (``if TYPE_CHECKING`` too)."""
    names = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in candidates if name in names and name != "market"}
    return found


def test_each_packages_docstring_names_exactly_its_modules():
    packages = [path.parent for path in PACKAGE.rglob("__init__.py")]
    assert len(packages) >= 10, "the packages were not found: the test is blind"
    for package in packages:
        doc = importlib.import_module(
            ".".join(package.relative_to(ROOT).parts)).__doc__ or ""
        named = set(re.findall(r"^    (\w+)/?  ", doc, re.M))
        there = ({path.stem for path in package.glob("*.py")} - {"__init__"}) | {
            path.parent.name for path in package.glob("*/__init__.py")}
        assert named == there, (package, sorted(named ^ there))


def test_no_import_circles():
    graph = {name: imports(path) for name, path in modules().items()}
    assert sum(map(len, graph.values())) > 50, "no imports found: the test is blind"

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(name):]
                                                                  + [name]))
        for other in graph[name]:
            visit(other, trail + [name])
    for name in graph:
        visit(name, [])


def test_the_domain_imports_no_service_machinery():
    checked = 0
    for name, path in modules().items():
        if not name.startswith(DOMAIN):
            continue
        checked += 1
        allowed = SHARED | {other for other in modules() if other.startswith(DOMAIN)}
        if name.endswith(".api"):  # an internal API is declared with the net's InternalOp
            allowed.add("market.net.internal")
        assert imports(path) <= allowed, (name, sorted(imports(path) - allowed))
    assert checked >= 10
