"""PyTorch DDP under torchrun: NCCL on GPUs, gloo on CPU. Nothing home-made: torchrun sets
RANK/WORLD_SIZE/LOCAL_RANK, torch.distributed does the rest.

Each rank trains on its shard of the same shuffled order with batch_size / world images
per step, so the global batch and the number of optimizer steps match one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


SINGLE_PROCESS = Dist()


def init_from_env() -> Dist:
    """Join the process group torchrun describes; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE_PROCESS
    info = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers across ranks (identity for one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(nproc: int, script: str, *args: str) -> list[str]:
    """The torchrun command that re-launches `script` on `nproc` local processes."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        script,
        *args,
    ]
