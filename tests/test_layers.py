"""The import layers in pyproject.toml hold, and breaking one fails `lint-imports` (run by
`make lint`): here a tracking module is made to import the training package."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_layer_contracts_hold():
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_tracking_importing_a_stage_package_breaks_the_contracts(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "visionops", src / "visionops", ignore=shutil.ignore_patterns("__pycache__")
    )
    runs = src / "visionops" / "tracking" / "runs.py"
    runs.write_text(runs.read_text() + "\nfrom visionops.training import loop  # noqa\n")
    done = lint_imports(src)
    assert done.returncode != 0
    assert "visionops.tracking.runs -> visionops.training.loop" in done.stdout


def documented_packages(design: str) -> list[str]:
    """The packages named in docs/design.md's package table (rows of "| `visionops.x` | ..."),
    in table order."""
    import re

    section = design.split("### Packages", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `visionops\.(\w+)` \|", section, flags=re.MULTILINE)


def test_the_design_doc_names_every_package_once_and_only_packages():
    design = (ROOT / "docs" / "design.md").read_text()
    packages = {p.parent.name for p in (ROOT / "src" / "visionops").glob("*/__init__.py")}
    rows = documented_packages(design)
    assert sorted(rows) == sorted(packages)
    # the check sees a package without a row, and a row twice
    unlisted = design.replace("| `visionops.stack` |", "| stack |")
    assert sorted(documented_packages(unlisted)) != sorted(packages)
    twice = design.replace("| `visionops.stack` |", "| `visionops.data` | again |\n| `visionops.stack` |")
    assert sorted(documented_packages(twice)) != sorted(packages)


def diagram_layers(design: str) -> list[list[str]]:
    """docs/design.md's layer diagram: per line, its modules (the text before the first run of
    two spaces, split at " | "), each without the leading `visionops.`."""
    block = design.split("### Layers", 1)[1].split("```\n", 2)[1]
    return [sorted(line.split("  ", 1)[0].split(" | ")) for line in block.strip().splitlines()]


def contract_layers() -> list[list[str]]:
    """pyproject's layers contract, in the same form."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(contract for contract in config if contract["type"] == "layers")["layers"]
    return [sorted(name.strip().removeprefix("visionops.") for name in layer.split("|")) for layer in layers]


def test_the_design_docs_layer_diagram_is_the_contract():
    """The picture a newcomer reads is the rule lint-imports enforces: same layers, same order."""
    design = (ROOT / "docs" / "design.md").read_text()
    assert diagram_layers(design) == contract_layers()
    # the check sees a module that moved layers
    assert diagram_layers(design.replace("export | inference", "export", 1)) != contract_layers()


def test_tests_and_benchmarks_import_the_package_without_editing_sys_path():
    """Issue 34: tests and benchmarks import the installed `visionops` (and their own folder's
    helpers, which Python puts on the path itself); a path edit would hide an import that only
    works from one folder."""
    import re

    edit = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*=")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("tests", "benchmarks", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if edit.search(line)
    ]
    assert not found, found
