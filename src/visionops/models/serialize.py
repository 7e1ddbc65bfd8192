"""Model files without pickled code: {spec, state_dict, meta} loaded with weights_only=True.

A pruned network has fewer channels than `create_model(spec)` builds, so loading resizes
each Conv2d / BatchNorm2d / Linear to the saved tensor shapes before load_state_dict.
(torch-pruning's own tp.state_dict pickles module objects, which weights_only refuses.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionops.errors import VisionOpsError
from visionops.io import write_torch
from visionops.models.zoo import create_model


def save_model(path: Path, model: nn.Module, spec: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write spec + weights + metadata atomically; loadable by `load_model` on any device."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_torch(path, {"format": "visionops-model/1", "spec": spec, "state_dict": state, "meta": meta})


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from a model file in eval mode; return (model, payload sans weights)."""
    try:
        payload = torch.load(Path(path), map_location=device, weights_only=True)
    except FileNotFoundError:
        raise VisionOpsError(f"model file not found: {path}", "run the train stage first") from None
    except Exception as exc:  # includes UnpicklingError for pickled code
        raise VisionOpsError(
            f"refusing to load {path}: it is not a plain visionops model file ({type(exc).__name__})",
            "re-create it with the pipeline (`dvc repro train`); never load model files from "
            "untrusted sources with weights_only=False",
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "visionops-model/1":
        raise VisionOpsError(f"{path} is not a visionops model file", "re-run `dvc repro train`")
    model = create_model(payload["spec"] | {"pretrained": False})  # the weights are in the file
    resize_to_state_dict(model, payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return model, {k: v for k, v in payload.items() if k != "state_dict"}


def save_program(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """The model as a torch.export program file (.pt2) with a dynamic batch dimension: it
    loads and runs without this package's model code (what tracking logs to MLflow).
    `example` needs batch >= 2, or export would freeze the batch at 1."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.cpu().eval(), (example.cpu(),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def resize_to_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Shrink modules of `model` in place so their parameter shapes match `state_dict`."""
    for name, module in model.named_modules():
        saved = {
            key: state_dict[f"{name}.{key}" if name else key]
            for key in list(module._parameters) + list(module._buffers)
            if (f"{name}.{key}" if name else key) in state_dict
        }
        current = {k: v for k, v in [*module._parameters.items(), *module._buffers.items()] if v is not None}
        if all(k not in current or current[k].shape == v.shape for k, v in saved.items()):
            continue
        _set_widths(name, module, saved)
        for key, tensor in saved.items():
            if key in module._parameters and module._parameters[key] is not None:
                module._parameters[key] = nn.Parameter(torch.empty_like(tensor))
            elif key in module._buffers and module._buffers[key] is not None:
                module._buffers[key] = torch.empty_like(tensor)


def _set_widths(name: str, module: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    if isinstance(module, nn.Conv2d):
        out_channels = saved["weight"].shape[0]
        if module.groups > 1 and module.groups == module.in_channels:  # depthwise: groups shrink too
            module.groups = module.in_channels = out_channels
        else:
            module.in_channels = saved["weight"].shape[1] * module.groups
        module.out_channels = out_channels
    elif isinstance(module, nn.BatchNorm2d):
        module.num_features = saved["weight"].shape[0]
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = saved["weight"].shape
    else:
        raise VisionOpsError(
            f"cannot resize layer '{name}' ({type(module).__name__}) to the saved shapes",
            "this layer type is not supported in pruned model files; exclude it from pruning",
        )
