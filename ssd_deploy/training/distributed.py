"""Multi-process training with ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node 2 -m ssd_deploy.cli.train ...`` (or ``torchrun ... $(which ssd-train)``)
starts one process per GPU (or per CPU worker, on the gloo backend); ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` come from the environment torchrun sets. Multi-node runs add ``--nnodes``
and ``--rdzv-endpoint``. Only rank 0 writes logs, checkpoints and progress bars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a collective may wait before the process group aborts the run. Rank 0 alone recomputes
# BatchNorm statistics and validates at the end of an epoch while the other ranks wait in
# barrier(): on a large validation set that outlasts NCCL's default of 10 minutes, whose watchdog
# would then kill every process. One hour covers COCO-sized validation on a slow GPU.
PROCESS_GROUP_TIMEOUT = timedelta(hours=1)

@dataclass(frozen=True)
class DistContext:
    """This process's place in the run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's GPU if CUDA is available, else the CPU; errors name what is missing."""
    if device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    from ..devices import torch_device

    chosen = torch_device("pytorch", device)  # the same checks (and messages) as running a model
    return torch.device("cuda", local_rank) if chosen.type == "cuda" and chosen.index is None else chosen


def init_distributed(device: str, timeout: timedelta = PROCESS_GROUP_TIMEOUT) -> DistContext:
    """Join the process group when started by torchrun (gloo on CPU, NCCL on CUDA).

    Args:
        device: ``auto``, ``cpu`` or ``cuda[:N]`` (see :func:`resolve_device`).
        timeout: longest wait of one collective (barrier, all-reduce) before the run is aborted.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=target)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo", timeout=timeout)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, target)


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def any_rank(context: DistContext, value: bool) -> bool:
    """True on every rank when ``value`` is true on any rank (e.g. "Ctrl-C was pressed"), so that
    all processes stop after the same step."""
    if not context.distributed:
        return value
    flag = torch.tensor([1 if value else 0], device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def broadcast_int(context: DistContext, value: int) -> int:
    """The main process's ``value`` on every rank (a decision each process would measure
    differently, such as how many steps a time limit allows)."""
    if not context.distributed:
        return value
    number = torch.tensor([int(value)], dtype=torch.int64, device=context.device if context.device.type == "cuda" else "cpu")
    dist.broadcast(number, src=0)
    return int(number.item())


def shutdown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def weights_in_sync(model: torch.nn.Module, context: DistContext) -> bool:
    """Whether every rank holds exactly rank 0's parameters (DDP keeps them equal; a mismatch means
    the processes diverged, e.g. different data or code). BatchNorm statistics are buffers, which
    each rank updates from its own last batch; checkpoints hold rank 0's."""
    if not context.distributed:
        return True
    device = context.device if context.device.type == "cuda" else torch.device("cpu")
    mine = torch.cat([p.detach().reshape(-1).to(device, torch.float64) for p in model.parameters()])
    reference = mine.clone()
    dist.broadcast(reference, src=0)
    same = torch.tensor([1 if torch.equal(mine, reference) else 0], device=device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())
