"""Collectives for data-parallel fits on ``torch.distributed``, and their no-op on one process.

Every rank holds a shard of the rows. Only additive statistics cross processes (one packed
``all_reduce(SUM)`` per Lloyd iteration: O(K x D) bytes, never O(N)), plus, rarely, a few rows:
the seeding candidates and the farthest rows for empty clusters. Every rank takes the same
decisions from the same reduced values, so no rank can leave a collective early.

The process group is the caller's (``torch.distributed.init_process_group``, gloo on CPU, NCCL
on GPUs); this module never creates one. Before a fit, the ranks agree: a validation step that
fails on one rank raises on every rank (:func:`agree`), the parameters that decide the result
are compared (:func:`same_params_on_every_rank`), and the shards are checked and numbered
(:func:`join_shards`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from . import exceptions
from .exceptions import DataError, ParameterError, TorchKMeansError

if TYPE_CHECKING:
    from ._functional import Prepared


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


def agree(comm: Comm, step: Callable[[], Any]) -> Any:
    """Run a validation step on every rank; if it fails on any rank, raise on every rank.

    The rank that failed raises its own error; the others raise the same kind of error naming
    that rank and its message. On one process, just run the step.
    """
    if not comm.distributed:
        return step()
    try:
        value, failure = step(), None
    except TorchKMeansError as exc:
        value, failure = None, exc
    reports = comm.all_gather_object(
        None if failure is None else (type(failure).__name__, str(failure))
    )
    if failure is not None:
        raise failure
    for rank, report in enumerate(reports):
        if report is not None:
            kind = getattr(exceptions, report[0], DataError)
            raise kind(f"rank {rank} failed: {report[1]}")
    return value


# Parameters that decide the result and must be equal on every rank of a distributed fit (the
# random stream and initial centers come from rank 0; device and chunk size are each rank's own).
_AGREED = (
    "n_clusters", "init", "n_init", "max_iter", "tol", "metric", "algorithm", "dtype",
    "init_size", "checkpoint", "batch_size", "max_no_improvement", "reassignment_ratio",
    "compute_labels",
)  # fmt: skip


def same_params_on_every_rank(comm: Comm, params: Mapping[str, Any]) -> None:
    """Raise the same ParameterError on every rank when a rank was given other parameters
    (one all_gather; every rank compares the same lists, so every rank raises or none)."""

    def describe(name: str, value: Any) -> str:
        if name == "init" and not isinstance(value, str):
            return "a callable" if callable(value) else "an array"
        return repr(str(value) if name in ("checkpoint", "dtype") else value)

    mine = {name: describe(name, params[name]) for name in _AGREED if name in params}
    everyone = comm.all_gather_object(mine)
    for rank, theirs in enumerate(everyone):
        diff = [
            f"{name}={theirs.get(name)} on rank {rank} but {value} on rank 0"
            for name, value in everyone[0].items()
            if theirs.get(name) != value
        ]
        if diff:
            raise ParameterError(
                f"the ranks of a distributed fit were given different parameters: "
                f"{'; '.join(diff)}. Pass the same parameters on every rank."
            )


def join_shards(comm: Comm, prepared: Prepared, generator: torch.Generator) -> None:
    """Check that the shards agree (features, dtype), record the global row count and this
    shard's offset, and give every rank rank 0's random stream."""
    source = prepared.source
    w = source.sample_weight
    positive = source.n_samples > 0 and (w is None or bool((w > 0).any()))
    mine = (source.n_samples, source.n_features, str(prepared.out_dtype), positive)
    shards = comm.all_gather_object(mine)
    for rank, (_, d, dtype, _) in enumerate(shards):
        if d != shards[0][1]:
            raise DataError(
                f"rank {rank} has data with {d} features, rank 0 with {shards[0][1]}: every "
                "shard must have the same columns."
            )
        if dtype != shards[0][2]:
            raise DataError(
                f"rank {rank} computes in {dtype}, rank 0 in {shards[0][2]}: pass shards of "
                "one dtype (or set dtype=)."
            )
    source.n_total = sum(s[0] for s in shards)
    source.offset = sum(s[0] for s in shards[: comm.rank])
    if source.n_total == 0:
        raise DataError("every shard is empty: the fit needs at least one row on some rank.")
    if not any(s[3] for s in shards):
        raise DataError(
            "sample_weight is zero for every row of every shard; expected a positive weight."
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    generator.manual_seed(int(comm.broadcast_object(seed)))
