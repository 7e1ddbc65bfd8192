"""dvc.yaml lists, for every stage, all the project code the stage's script imports.

A module missing from a stage's deps means editing it would not re-run the stage (stale
outputs); the import graph is read statically from the source, lazy imports included.
"""

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Plumbing that never changes what a stage writes: package init (env hygiene), the error
# type, the CLI wrapper, the SIGTERM handler and the params-changed-under-us guard.
PLUMBING = {
    "visionops/__init__.py",
    "visionops/errors.py",
    "visionops/stage.py",
    "visionops/interrupts.py",
    "visionops/invocation.py",
}
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of a `visionops...` module (package -> its __init__.py)."""
    path = SRC.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def imported_files(script: Path) -> set[Path]:
    """Every project file reachable from `script` through import statements."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                found = module_file(name) if name.startswith("visionops") else None
                if found and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_imported_project_module(stage):
    spec = STAGES[stage]
    script = ROOT / spec["cmd"].split()[-1]
    deps = [ROOT / (d if isinstance(d, str) else next(iter(d))) for d in spec["deps"]]
    missing = sorted(
        str(path.relative_to(SRC))
        for path in imported_files(script)
        if str(path.relative_to(SRC)) not in PLUMBING
        and not any(path == dep or dep in path.parents for dep in deps)
    )
    assert not missing, f"dvc.yaml stage {stage!r} imports but does not list: {missing}"


@pytest.mark.parametrize("module", ["tracking/registry.py", "evaluation/gate.py"])
def test_editing_the_registry_or_the_gate_reruns_register_only(module):
    """Issue 16: the promotion gate and the registry are register's alone, so editing them
    never re-trains (tracking is a leaf: stages hand it files and plain values)."""
    path = SRC / "visionops" / module
    dependent = {
        stage
        for stage, spec in STAGES.items()
        for dep in (ROOT / (d if isinstance(d, str) else next(iter(d))) for d in spec["deps"])
        if path == dep or dep in path.parents
    }
    assert dependent == {"register"}
