"""Data-parallel training under ``torchrun`` (``python -m torch.distributed.run``).

``torchrun`` starts one process per rank and sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`setup` joins them into a process group (NCCL on GPUs, gloo on CPUs). Every rank builds
the same global batch (a pure function of the seed and the batch number) and trains on its own
contiguous slice of it (:meth:`Group.shard`); DDP averages the gradients, and the loss of each
rank is scaled so that the average equals the whole batch's mean loss. Rank 0 alone validates
and writes files; the others wait at a barrier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from benchmark.errors import UsageError


@dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world`` (1 = not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: validates, chooses the best epoch, writes weights and checkpoints."""
        return self.rank == 0

    def shard(self, count: int) -> slice:
        """This rank's contiguous slice of a batch of ``count`` items (may be empty)."""
        base, extra = divmod(count, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is true on any rank (e.g. Ctrl-C seen by one)."""
        if not self.active:
            return flag
        value = torch.tensor([float(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks in place (a no-op alone)."""
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    def gather_text(self, text: str) -> list[str]:
        """``text`` of every rank, in rank order."""
        if not self.active:
            return [text]
        texts: list[str] = [""] * self.world
        dist.all_gather_object(texts, text)
        return texts

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: torch.device) -> tuple[Group, torch.device]:
    """Join the ``torchrun`` process group if there is one: ``(group, this rank's device)``.

    Alone (no ``WORLD_SIZE`` > 1 in the environment) nothing changes. Under ``torchrun`` on
    CUDA each rank takes GPU ``LOCAL_RANK`` and the ranks talk over NCCL; on the CPU, gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Group(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"torchrun rank {rank} wants GPU {local_rank}, but torch sees "
                f"{torch.cuda.device_count()}; use --nproc_per_node <= the GPU count"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Group(rank, world, local_rank), device
