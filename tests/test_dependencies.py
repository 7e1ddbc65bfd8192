"""Every third-party package the code imports is declared in pyproject.toml (issue 34): one that
only arrives through another package's requirements disappears when that package drops it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("src", "pipeline", "scripts")  # what users and the team stack run (tests: the test extra)


def imported_top_level_modules(folders: tuple[str, ...]) -> dict[str, str]:
    """{top-level module: a file importing it} over every .py file under `folders`."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {_normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_third_party_package_is_declared():
    owners = packages_distributions()
    ours = {"visionops"}
    declared = declared_distributions()
    missing = {}
    for module, where in imported_top_level_modules(CODE).items():
        if module in sys.stdlib_module_names or module in ours or module not in owners:
            continue
        if not {_normalise(d) for d in owners[module]} & declared:
            missing[module] = where
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
