"""dvc.yaml and the stage scripts agree, both ways: code, params and files.

For every stage, read statically from its script (lazy imports included):
* code: every project module it imports is listed in `deps:`, and every listed code dep is
  imported (a listed folder: every module in it), so editing a file re-runs exactly the
  stages that use it;
* params: the sections its `load_params(...)` call reads are its `params:`, no more;
* files: the `visionops.paths` constants it uses are its data deps, outs and metrics, no more.
The checkers are also run on broken copies of dvc.yaml, to show they fail. What the stages
really write is checked after the session's `dvc repro` (`test_a_reproduced_project_holds_
only_declared_outputs`).
"""

import ast
import copy
from pathlib import Path

import pytest
import yaml

from visionops import paths

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Plumbing that never changes what a stage writes: package init (env hygiene), the error
# type, the CLI wrapper, the SIGTERM handler, the params-changed-under-us guard, the
# benchmarks' opt-in timing marks, and the path constants (their values are checked against
# dvc.yaml below).
PLUMBING = {
    "visionops/__init__.py",
    "visionops/errors.py",
    "visionops/cli/stage.py",
    "visionops/interrupts.py",
    "visionops/invocation.py",
    "visionops/paths.py",
    "visionops/timings.py",
}
# Files a stage loads on purpose without importing them: each is walked like the script.
LOADED_BY_PATH = {
    # MLflow imports the registered model's code from this file (serving/packaging.pyfunc_spec)
    "register": ["src/visionops/serving/pyfunc_model.py"],
}
# Paths a stage writes on purpose outside its DVC outs (reasons in visionops/paths.py).
UNDECLARED_ON_PURPOSE = {
    paths.ENGINE,
    paths.CHECKPOINT,
    paths.SCAN_STAMPS,
    paths.VALIDATE_STAMPS,
    paths.VALIDATE_CONFIRMED,
    *paths.PIPELINE_FILES,
}
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def entries(spec: dict, key: str) -> list[Path]:
    """The stage's paths under `key`."""
    return [Path(d if isinstance(d, str) else next(iter(d))) for d in spec.get(key, [])]


def plumbing(path: Path) -> bool:
    """Listed in PLUMBING, or a package __init__.py that holds only its docstring."""
    if not path.is_relative_to(SRC):
        return False
    if str(path.relative_to(SRC)) in PLUMBING:
        return True
    if path.name == "__init__.py":
        body = ast.parse(path.read_text()).body
        return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)
    return False


def is_code(path: Path) -> bool:
    return path.parts[0] in ("src", "pipeline")


def module_file(name: str) -> Path | None:
    """The file of a `visionops...` module (package -> its __init__.py)."""
    path = SRC.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def imported_files(*roots: Path) -> set[Path]:
    """Every project file reachable from `roots` through import statements (roots included)."""
    seen: set[Path] = set(roots)
    todo = list(roots)
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if not name.startswith("visionops"):
                    continue
                parts = name.split(".")  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                for found in (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)):
                    if found and found not in seen:
                        seen.add(found)
                        todo.append(found)
    return seen


def script_of(spec: dict) -> Path:
    return ROOT / spec["cmd"].split()[-1]


def code_problems(stage: str, spec: dict) -> list[str]:
    """Imported but not listed, and listed but not imported."""
    roots = [script_of(spec), *(ROOT / p for p in LOADED_BY_PATH.get(stage, []))]
    used = {p for p in imported_files(*roots) if not plumbing(p)}
    listed = [ROOT / d for d in entries(spec, "deps") if is_code(d)]
    problems = [
        f"imports {p.relative_to(ROOT)} but does not list it"
        for p in sorted(used)
        if not any(p == dep or dep in p.parents for dep in listed)
    ]
    for dep in listed:
        files = sorted(dep.rglob("*.py")) if dep.is_dir() else [dep]
        unused = [f for f in files if f not in used and not plumbing(f)]
        problems += [f"lists {f.relative_to(ROOT)} but never imports it" for f in unused]
    return problems


def sections_read(script: Path) -> set[str]:
    """The params sections named in the script's load_params(...) calls."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_params":
            found |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)}
    return found


def params_problems(spec: dict) -> list[str]:
    read, listed = sections_read(script_of(spec)), set(spec.get("params", []))
    return [f"reads params section {s!r} but does not list it" for s in sorted(read - listed)] + [
        f"lists params section {s!r} but never reads it" for s in sorted(listed - read)
    ]


def paths_used(script: Path) -> set[Path]:
    """Values of the visionops.paths constants the script names (`from visionops.paths
    import X` or `paths.X`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "visionops.paths":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "paths":
            names.add(node.attr)
    used: set[Path] = set()
    for name in names:
        value = getattr(paths, name)
        used |= set(value) if isinstance(value, tuple) else {value}
    return used


def file_problems(spec: dict) -> list[str]:
    used = paths_used(script_of(spec)) - UNDECLARED_ON_PURPOSE
    declared = {d for d in entries(spec, "deps") if not is_code(d)}
    declared |= set(entries(spec, "outs")) | set(entries(spec, "metrics"))
    return [f"uses {p} but does not declare it" for p in sorted(used - declared)] + [
        f"declares {p} but never uses it" for p in sorted(declared - used)
    ]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_code_deps_are_exactly_what_it_imports(stage):
    assert code_problems(stage, STAGES[stage]) == []


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_are_exactly_the_sections_it_reads(stage):
    assert params_problems(STAGES[stage]) == []


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_data_deps_and_outs_are_exactly_the_paths_it_uses(stage):
    assert file_problems(STAGES[stage]) == []


def test_the_checkers_fail_on_a_broken_dvc_yaml():
    """An unused code dep, an unread params section, an undeclared out and a stale path each
    make the contract fail, naming the culprit."""
    spec = copy.deepcopy(STAGES["evaluate"])
    spec["deps"].append("src/visionops/export/tensorrt.py")
    assert code_problems("evaluate", spec) == ["lists src/visionops/export/tensorrt.py but never imports it"]
    spec = copy.deepcopy(STAGES["train"])
    spec["deps"].remove("src/visionops/training/loop.py")
    assert any(
        "src/visionops/training/loop.py but does not list it" in p for p in code_problems("train", spec)
    )
    spec["params"].append("augment")
    assert params_problems(spec) == ["lists params section 'augment' but never reads it"]
    spec = copy.deepcopy(STAGES["evaluate"])
    spec["outs"] = [o for o in spec["outs"] if next(iter(o)) != "reports/evaluate.json"]
    assert file_problems(spec) == ["uses reports/evaluate.json but does not declare it"]
    spec["outs"].append("reports/eval_renamed.json")
    assert "declares reports/eval_renamed.json but never uses it" in file_problems(spec)


def test_editing_the_registry_or_the_gate_reruns_register_only():
    """Issue 16: the promotion gate and the registry are register's alone, so editing them
    never re-trains."""
    for module in ("tracking/registry.py", "gate/decision.py"):
        path = SRC / "visionops" / module
        dependent = {
            stage
            for stage, spec in STAGES.items()
            for dep in entries(spec, "deps")
            if path == ROOT / dep or ROOT / dep in path.parents
        }
        assert dependent == {"register"}, module


def declared_outputs() -> set[Path]:
    return {p for spec in STAGES.values() for key in ("outs", "metrics") for p in entries(spec, key)}


@pytest.mark.e2e
def test_a_reproduced_project_holds_only_declared_outputs(pipeline_template):
    """After the session's `dvc repro`, every file in the project is git's, under a declared
    out, or one of the stated exceptions (MLflow's store, DVC's own state, git-ignored caches):
    no stage writes a path DVC does not know about."""
    import subprocess

    repo, _ = pipeline_template
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.split()
    )
    outs = declared_outputs() | UNDECLARED_ON_PURPOSE
    state = {".git", ".dvc", ".venv", "mlartifacts", ".visionops", "dvc_plots"}
    strays = []
    for path in repo.rglob("*"):
        rel = path.relative_to(repo)
        if path.is_dir() or rel.parts[0] in state or rel.name in ("mlflow.db", ".gitignore"):
            continue
        if str(rel) in tracked or any(rel == out or out in rel.parents for out in outs):
            continue
        strays.append(str(rel))
    assert strays == [], f"files no stage declares: {strays[:20]}"


def test_the_folder_source_is_watched_by_the_scan_stage_alone():
    """Issue 33: a `data.source: folder` tree was no dependency, so `dvc repro` said "didn't
    change" after images were added. The scan stage runs on every repro and its listing is
    download's dependency; no stage depends on the tree itself (DVC would hash it six times)."""
    assert STAGES["scan"].get("always_changed") is True
    assert str(paths.SOURCE_LISTING) in STAGES["download"]["deps"]
    always = [name for name, spec in STAGES.items() if spec.get("always_changed")]
    assert always == ["scan"]  # any other would make every `dvc repro` do real work
    templated = [d for spec in STAGES.values() for d in spec.get("deps", []) if "${" in str(d)]
    assert templated == []
