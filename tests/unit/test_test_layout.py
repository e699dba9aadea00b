"""The tests' own layout: no test module imports another test module or ``conftest``;
what tests share lives in ``tests/helpers`` and is imported as ``helpers``."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent  # tests/


def modules_of_tests() -> list[Path]:
    """Every test module (``test_*.py``) under tests/, the helpers aside."""
    return sorted(path for path in TESTS.rglob("test_*.py")
                  if "helpers" not in path.relative_to(TESTS).parts[:-1])


def python_files() -> list[Path]:
    """Every Python file under tests/ (conftest, helpers, test modules, fixture scripts)."""
    return sorted(TESTS.rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; a relative import is named by its dots
    and module (``.``, ``..helpers``), each name of ``from . import x`` as ``.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.level and not node.module:
                found += [(node.lineno, module + alias.name) for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def is_test_module(module: str) -> bool:
    """``test_x``, ``unit.test_x``, ``tests.test_x``, ``.test_x``, ``conftest`` ..."""
    last = module.lstrip(".").rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = modules_of_tests()
    assert len(modules) > 50, "the test modules were not found: the test is blind"
    wrong = [f"{path.relative_to(TESTS)}:{line}: imports {module}"
             for path in modules for line, module in imported(path) if is_test_module(module)]
    assert wrong == []


def test_nothing_imports_conftest_or_a_test_module_not_even_the_helpers():
    wrong = [f"{path.relative_to(TESTS)}:{line}: imports {module}"
             for path in python_files() for line, module in imported(path)
             if is_test_module(module)]
    assert wrong == []


def test_the_helpers_are_imported_as_helpers_only():
    """One name for one module: ``tests.helpers.market`` beside ``helpers.market`` would be
    two copies (two counters of unique names, two ``Market`` classes)."""
    wrong = [f"{path.relative_to(TESTS)}:{line}: imports {module}"
             for path in python_files() for line, module in imported(path)
             if module.startswith("tests.") or module == "tests"
             or (module.startswith(".") and path.parent.name != "helpers")]
    assert wrong == []


def test_the_checks_see_what_they_look_for(tmp_path):
    """The checks above are not blind: they catch each way of importing a test module."""
    source = tmp_path / "test_sample.py"
    source.write_text("import conftest\nfrom conftest import x\nfrom test_cli import cli\n"
                      "import unit.test_protocol\nfrom . import test_feed\n"
                      "from .test_feed import poll\nfrom helpers.market import listing\n"
                      "import json\n")
    found = [module for _, module in imported(source)]
    assert [is_test_module(module) for module in found] == [True] * 6 + [False] * 2, found
