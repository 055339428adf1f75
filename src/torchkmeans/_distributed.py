"""Collectives for data-parallel fits on ``torch.distributed``, and their no-op on one process.

Every rank holds a shard of the rows. Only additive statistics cross processes (one packed
``all_reduce(SUM)`` per Lloyd iteration: O(K x D) bytes, never O(N)), plus, rarely, a few rows:
the seeding candidates and the farthest rows for empty clusters. Every rank takes the same
decisions from the same reduced values, so no rank can leave a collective early.

The process group is the caller's (``torch.distributed.init_process_group``, gloo on CPU, NCCL
on GPUs); this module never creates one.
"""

from __future__ import annotations

from typing import Any

import torch


class Comm:
    """One process: every collective is the identity."""

    world_size = 1
    rank = 0
    distributed = False

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        return [t]

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        return t

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        return obj

    def barrier(self) -> None:
        return None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class ProcessGroupComm(Comm):
    """The default process group of ``torch.distributed``.

    Tensors cross it on the group's device: CUDA for NCCL, CPU for gloo; results come back on
    the device they were given on.
    """

    distributed = True

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        backend = str(dist.get_backend()).lower()
        if "nccl" in backend:
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")

    def _out(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device) if t.device != self.device else t

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        buf = self._out(t)
        self.dist.all_reduce(buf, op=self.dist.ReduceOp.SUM)
        if buf is not t:
            t.copy_(buf)
        return t

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        buf = self._out(t.contiguous())
        parts = [torch.empty_like(buf) for _ in range(self.world_size)]
        self.dist.all_gather(parts, buf)
        return [p.to(t.device) for p in parts]

    def all_gather_object(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        buf = self._out(t)
        self.dist.broadcast(buf, src=src)
        if buf is not t:
            t.copy_(buf)
        return t

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        self.dist.barrier()


SINGLE = Comm()


def get_comm(distributed: bool) -> Comm:
    """The communicator of a fit: the default process group, or the single-process no-op."""
    if not distributed:
        return SINGLE
    return ProcessGroupComm()
