"""The torch engine: the Lloyd pass in PyTorch, on any device.

It serves CUDA (and any other torch device), cosine k-means, and the CPU when the native
kernels are missing or turned off (``TORCHKMEANS_NATIVE=0``). Rows are assigned chunk by chunk
with the one distance kernel of :mod:`torchkmeans._distance` (GEMM identity on shifted rows,
near ties re-decided exactly), and the per-cluster statistics are summed with ``index_add_``,
in row order on the CPU. It is the engine of sparse data (chunks of torch CSR rows): the
kernel computes their distances without shifting them, and their sums, moments and canonical
order come from the stored values (:mod:`torchkmeans._sparse`). :class:`~torchkmeans._engines.native_engine.NativeEngine` overrides
what its kernels do faster; tests pin the two to each other (same labels, sums within rounding).
Prior validation of data is assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from .. import _init, _sparse
from .._bounds import Bounds, Workspace
from .._distance import (
    PreparedCenters,
    assign,
    assign_with_bound,
    exact_distance,
    metric_distance,
    prepare_rows,
)
from .._distributed import Comm
from .._sources import Chunk, Source, TensorSource
from .._statistics import LloydStats, accumulation_dtype, finalize
from ._constants import PRUNE_MARGIN
from ._kernels import Mode, Status

# What a pass hands to an observer of each block: (chunk, labels, distances).
BlockObserver = Callable[[Chunk, torch.Tensor, torch.Tensor], None]


class WholeLoop(Protocol):
    """Runs many Lloyd iterations per call (see :class:`~.native_engine.NativeLoop`)."""

    def run(
        self, centers: torch.Tensor, mode: Mode, iters: int, tol: float, given: tuple[int, int]
    ) -> tuple[int, Status, torch.Tensor]: ...

    def relocate(self, centers: torch.Tensor) -> int: ...

    def assign(self, centers: torch.Tensor) -> LloydStats: ...


class TorchEngine:
    """The Lloyd pass and its helpers in PyTorch (any device)."""

    name = "torch"

    def workspace(self, source: Source, n_clusters: int) -> Workspace:
        """Buffers for the passes of one fit (or one predict) over ``source``."""
        return Workspace(source.chunk_size, n_clusters, source.dtype, source.device)

    def prepare_centers(
        self, centers: torch.Tensor, metric: str, *, sparse: bool = False
    ) -> PreparedCenters:
        """The centers laid out for a pass (shifted by their mean, by zero for sparse rows, or
        unit length)."""
        return PreparedCenters(centers, metric, None, sparse=sparse)

    def half_gaps(self, pc: PreparedCenters, dtype: torch.dtype) -> torch.Tensor:
        """:func:`half_gaps` in ``dtype``."""
        return half_gaps(pc).to(dtype)

    def accumulate(
        self,
        source: Source,
        pc: PreparedCenters,
        labels: torch.Tensor | None,
        workspace: Workspace,
        *,
        update: bool = True,
        bounds: Bounds | None = None,
    ) -> LloydStats:
        """Assign every row to its nearest center and sum what the update step needs.

        ``labels`` (int64, length n_samples), when given, is overwritten with the new labels and
        the number of rows whose label changed is counted. With ``update=False`` only labels,
        counts, weights and inertia are computed (the final assignment pass and ``predict``).
        With ``bounds`` (and ``labels`` from the previous pass), rows whose center provably did
        not change skip the distance computation to all centers.
        """
        k, d = pc.n_clusters, source.n_features
        acc = accumulation_dtype(source.dtype, source.device)
        stats = LloydStats.zeros(k, d, acc, source.device)
        gaps = None
        if bounds is not None and bounds.valid and labels is not None:
            gaps = self.half_gaps(pc, source.dtype)
        for chunk in source.chunks():
            m = chunk.x.shape[0]
            xs = prepare_rows(chunk.x, pc.metric, pc.shift)
            if gaps is not None and bounds is not None and labels is not None:
                previous = labels[chunk.start : chunk.start + m]
                lab, dist = _assign_pruned(xs, pc, previous, gaps, bounds, chunk.start, workspace)
            elif bounds is not None:
                lab, dist, lower = assign_with_bound(xs, pc, out=workspace.scores_for(m))
                bounds.store(chunk.start, None, lower)
            else:
                lab, dist = assign(xs, pc, out=workspace.scores_for(m))
            if labels is not None:
                seg = labels[chunk.start : chunk.start + m]
                stats.changed += (seg != lab).sum()
                seg.copy_(lab)
            w = chunk.w
            if w is None:
                # unweighted: weights and counts are the same sums; counts are copied after
                stats.weights.index_add_(0, lab, torch.ones(m, dtype=acc, device=lab.device))
                stats.inertia.index_add_(0, lab, dist.to(acc))
            else:
                wa = w.to(acc)
                stats.weights.index_add_(0, lab, wa)
                stats.counts.index_add_(0, lab, (wa > 0).to(acc))
                stats.inertia.index_add_(0, lab, dist.to(acc) * wa)
            if update and _sparse.is_csr(xs):
                _sparse.add_rows_(stats.sums, lab, xs, w)  # in row order on the CPU too
            elif update:
                xa = xs.to(acc)
                if w is not None:
                    xa = xa * w.to(acc)[:, None]
                # index_add_ adds rows in order on the CPU: sums do not depend on the chunk size.
                stats.sums.index_add_(0, lab, xa)
        if not source.weighted:
            stats.counts.copy_(stats.weights)
        if bounds is not None:
            bounds.valid = True
        return stats

    def assign_blocks(
        self,
        source: Source,
        pc: PreparedCenters,
        workspace: Workspace,
        observe: BlockObserver,
    ) -> None:
        """One assignment pass that hands each block's labels and distances to ``observe``."""
        for chunk in source.chunks():
            xs = prepare_rows(chunk.x, pc.metric, pc.shift)
            lab, dist = assign(xs, pc, out=workspace.scores_for(chunk.x.shape[0]))
            observe(chunk, lab, dist)

    def update(
        self, stats: LloydStats, pc: PreparedCenters
    ) -> tuple[torch.Tensor, float, float, float]:
        """The update step: ``(new centers, squared center shift summed over centers, largest
        squared shift of one center, inertia)``."""
        old = pc.centers
        new = finalize(stats, pc)
        sq = ((new - old).to(torch.float64) ** 2).sum(dim=1)
        return new, float(sq.sum()), float(sq.max()), float(stats.inertia.sum())

    def moment_sums(
        self,
        source: Source,
        metric: str,
        s1: torch.Tensor,
        s2: torch.Tensor,
        total: torch.Tensor,
    ) -> torch.Tensor | None:
        """Weighted sums about the first row, in float64 and row order, added to ``s1``,
        ``s2`` (shape (1, D)) and ``total`` (1,). Returns the first row (float64), None
        without rows."""
        if source.sparse:
            return _sparse_moment_sums(source, metric, s1, s2, total)
        zero = torch.zeros(source.chunk_size, dtype=torch.long, device=source.device)
        first64: torch.Tensor | None = None
        for chunk in source.chunks():
            m = chunk.x.shape[0]
            y = prepare_rows(chunk.x, metric, None).to(torch.float64)
            if first64 is None:
                first64 = y[0].clone()
            y = torch.sub(y, first64)  # a new tensor: y may be the caller's float64 data
            if chunk.w is None:  # (multiplying by weights of one would change nothing but memory)
                total.index_add_(0, zero[:m], torch.ones(m, dtype=torch.float64, device=y.device))
                s1.index_add_(0, zero[:m], y)
                s2.index_add_(0, zero[:m], y.mul_(y))
            else:
                w = chunk.w.to(torch.float64)[:, None]
                total.index_add_(0, zero[:m], w[:, 0])
                s1.index_add_(0, zero[:m], y * w)
                s2.index_add_(0, zero[:m], y.mul_(y).mul_(w))
        return first64

    def canonical_order(self, source: TensorSource, metric: str) -> torch.Tensor:
        """The canonical row order of k-means++ and random init (see :mod:`torchkmeans._init`)."""
        return _init.canonical_order_torch(source, metric)

    def kmeans_plusplus(
        self,
        source: TensorSource,
        n_clusters: int,
        generator: torch.Generator,
        *,
        metric: str,
        shift: torch.Tensor | None,
        n_local_trials: int,
        comm: Comm,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy k-means++ (see :func:`torchkmeans._init.kmeans_plusplus_`)."""
        return _init.kmeans_plusplus_torch(
            source, n_clusters, generator, metric=metric, shift=shift,
            n_local_trials=n_local_trials, comm=comm,
        )  # fmt: skip

    def whole_loop(
        self,
        source: Source,
        n_clusters: int,
        metric: str,
        labels: torch.Tensor,
        workspace: Workspace,
        bounds: Bounds | None,
        comm: Comm,
    ) -> WholeLoop | None:
        """A runner of many Lloyd iterations per call, where the engine has one for this
        problem (see :class:`~torchkmeans._engines.native_engine.NativeLoop`); torch has none."""
        return None


def _sparse_moment_sums(
    source: Source, metric: str, s1: torch.Tensor, s2: torch.Tensor, total: torch.Tensor
) -> torch.Tensor | None:
    """:meth:`TorchEngine.moment_sums` for sparse rows: sums about zero (a shift by the first
    row would make them dense) from the stored values. Returns zeros (the shift), None without
    rows."""
    seen = False
    for chunk in source.chunks():
        if chunk.x.shape[0] == 0:
            continue
        seen = True
        c1, c2, t = _sparse.column_sums(prepare_rows(chunk.x, metric, None), chunk.w)
        s1[0] += c1
        s2[0] += c2
        total += t
    if not seen:
        return None
    return torch.zeros(source.n_features, dtype=torch.float64, device=source.device)


def half_gaps(pc: PreparedCenters) -> torch.Tensor:
    """Half the distance from each center to its nearest other center: a lower bound (float64).

    Distances come from the ``|a|^2 - 2 a.b + |b|^2`` identity, minus its worst-case rounding
    error, so the result never exceeds the true half gap, even for near-duplicate centers. A row
    closer to its center than this cannot be closer to any other center.
    """
    c = pc.c.to(torch.float64)
    k = c.shape[0]
    gaps = torch.empty(k, dtype=torch.float64, device=c.device)
    sq = (c * c).sum(dim=1)
    err = 8.0 * torch.finfo(torch.float64).eps * max(1.0, c.shape[1] ** 0.5)
    step = max(1, (1 << 20) // max(k, 1))
    for start in range(0, k, step):
        block = c[start : start + step]
        bsq = sq[start : start + step, None]
        d2 = bsq - 2.0 * block @ c.T + sq[None, :]
        d2.sub_(err * (bsq + sq[None, :])).clamp_min_(0.0)
        d2[torch.arange(block.shape[0]), torch.arange(start, start + block.shape[0])] = float("inf")
        gaps[start : start + step] = d2.amin(dim=1)
    # (for cosine the centers are unit vectors: these are chordal distances, a metric too)
    return gaps.sqrt_().mul_(0.5 * (1.0 - PRUNE_MARGIN))


def _assign_pruned(
    xs: torch.Tensor,
    pc: PreparedCenters,
    previous: torch.Tensor,
    gaps: torch.Tensor,
    bounds: Bounds,
    start: int,
    workspace: Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and distances of a chunk, recomputing only rows whose center may have changed."""
    dist = exact_distance(xs, pc, previous)
    upper = metric_distance(dist, pc.metric).mul_(1.0 + PRUNE_MARGIN)
    lower = (bounds.lower[start : start + xs.shape[0]] - bounds.drift).to(xs.dtype)
    redo = (upper >= torch.maximum(lower, gaps[previous])).nonzero().flatten()
    labels = previous.clone()
    if redo.numel():
        sub = xs.index_select(0, redo)
        lab, d, low = assign_with_bound(sub, pc, out=workspace.scores_for(redo.numel()))
        labels[redo] = lab
        dist[redo] = d
        bounds.store(start, redo, low)
    return labels, dist
