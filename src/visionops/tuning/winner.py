"""The study's winner, handed back to DVC: the `dvc exp run -S ...` line that trains it, or its
values written into params.yaml (comments and order kept), so that the model that reaches the
registry is made by the pipeline as always and judged once by the gate on the test images."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def exp_run_line(values: dict[str, Any]) -> str:
    """`dvc exp run -S train.lr=0.0123 -S model.width=16`."""
    return "dvc exp run " + " ".join(
        f"-S {key}={_yaml_scalar(value)}" for key, value in sorted(values.items())
    )


def write_params(path: Path, values: dict[str, Any]) -> None:
    """Set each `section.key` in params.yaml (ruamel round-trip: comments and layout stay),
    atomically."""
    from ruamel.yaml import YAML

    from visionops.io import write_text

    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(Path(path).read_text())
    for key, value in values.items():
        section, name = key.split(".", 1)
        if document.get(section) is None:
            document[section] = {}
        document[section][name] = value
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    write_text(Path(path), buffer.getvalue())


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)
