"""`visionops preset FILE`: put a preset's values into params.yaml (its comments and order kept),
then `dvc repro` runs with them. A preset (`params/*.yaml`) holds only the `section: {key:
value}` it changes, like a list of `dvc exp run -S section.key=value`: every other key keeps
params.yaml's value, so a preset cannot fall behind when params.yaml gains a key.

    visionops preset params/cifar10-fast.yaml && dvc repro
    visionops preset params/cifar10-fast.yaml --print      # the resulting `-S` flags instead
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from visionops.errors import VisionOpsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", type=Path, help="a preset file, e.g. params/cifar10-fast.yaml")
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file to change (default %(default)s)"
    )
    parser.add_argument(
        "--print", action="store_true", help="print the `dvc exp run -S ...` line instead of writing"
    )


def run(args: argparse.Namespace) -> int:
    """Check the preset against params.yaml, then write it in (or print it as -S flags)."""
    from visionops.tuning.winner import exp_run_line, write_params

    values = preset_values(args.preset, args.params)
    merged(args.preset, args.params)  # the result must be valid params before anything is written
    if args.print:
        print(exp_run_line(values))
        return 0
    write_params(args.params, values)
    print(f"preset: {len(values)} value(s) from {args.preset} written into {args.params}; now `dvc repro`")
    return 0


def preset_values(preset: Path, params: Path = Path("params.yaml")) -> dict[str, Any]:
    """{"section.key": value} of `preset`, each key one that `params` has."""
    base, changes = _read(params), _read(preset)
    values: dict[str, Any] = {}
    for section, keys in changes.items():
        if section not in base or not isinstance(keys, dict):
            raise VisionOpsError(
                f"{preset}: '{section}' is not a section of {params} holding keys",
                f"use the sections of {params}: {', '.join(base)}",
            )
        for key, value in keys.items():
            if key not in base[section]:
                raise VisionOpsError(
                    f"{preset}: '{section}.{key}' is not a key of {params}",
                    f"check the spelling against {params}'s '{section}' section (or add the key there first)",
                )
            values[f"{section}.{key}"] = value
    return values


def merged(preset: Path, params: Path = Path("params.yaml")) -> dict[str, Any]:
    """params.yaml's values with the preset's in their place, checked by the params schema."""
    from visionops.config import validate_section

    result = _read(params)
    for dotted, value in preset_values(preset, params).items():
        section, key = dotted.split(".", 1)
        result[section][key] = value
    for section, values in result.items():
        validate_section(section, values, preset)
    return result


def _read(path: Path) -> dict[str, Any]:
    from visionops.config import read_params_file

    return read_params_file(path)  # YAML 1.2 floats (1e-3), a clear error for a bad file
