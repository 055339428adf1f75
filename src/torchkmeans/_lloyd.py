"""One Lloyd iteration, split into an additive per-chunk update and a finalize step.

``accumulate`` walks the source once and returns :class:`LloydStats`, whose every field is a sum
over rows, so statistics from chunks, loaders or ranks combine with a plain SUM. ``finalize``
turns them into new centers. Empty clusters are refilled by :func:`relocate_empty_clusters`.
Prior validation of data is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._distance import PreparedCenters, assign, prepare_rows
from ._sources import TensorSource


def accumulation_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """Per-cluster sums are kept in float64 on the CPU (exact, order-fixed), float32 on GPUs
    for float32 data (float64 atomics are slow there)."""
    if dtype == torch.float64 or device.type == "cpu":
        return torch.float64
    return torch.float32


@dataclass
class LloydStats:
    """Sufficient statistics of one assignment pass. Every field reduces across ranks by SUM."""

    sums: torch.Tensor  # (K, D) weighted sums of prepared rows      reduce: SUM
    weights: torch.Tensor  # (K,) sum of sample weights per cluster   reduce: SUM
    counts: torch.Tensor  # (K,) rows of positive weight per cluster  reduce: SUM
    inertia: torch.Tensor  # (K,) weighted distances per cluster      reduce: SUM
    changed: torch.Tensor  # () labels that differ from the last pass reduce: SUM

    @classmethod
    def zeros(cls, k: int, d: int, dtype: torch.dtype, device: torch.device) -> LloydStats:
        return cls(
            sums=torch.zeros(k, d, dtype=dtype, device=device),
            weights=torch.zeros(k, dtype=dtype, device=device),
            counts=torch.zeros(k, dtype=dtype, device=device),
            inertia=torch.zeros(k, dtype=dtype, device=device),
            changed=torch.zeros((), dtype=torch.int64, device=device),
        )


class Workspace:
    """Buffers allocated once per fit and reused by every chunk of every pass."""

    def __init__(self, chunk_size: int, n_clusters: int, dtype: torch.dtype, device: torch.device):
        self.scores = torch.empty(chunk_size, n_clusters, dtype=dtype, device=device)

    def scores_for(self, rows: int) -> torch.Tensor:
        return self.scores[:rows]


def accumulate(
    source: TensorSource,
    pc: PreparedCenters,
    labels: torch.Tensor | None,
    workspace: Workspace,
    *,
    update: bool = True,
) -> LloydStats:
    """Assign every row to its nearest center and sum what the update step needs.

    ``labels`` (int64, length n_samples), when given, is overwritten with the new labels and the
    number of rows whose label changed is counted. With ``update=False`` only labels, counts,
    weights and inertia are computed (the final assignment pass and ``predict``).
    """
    k, d = pc.n_clusters, source.n_features
    acc = accumulation_dtype(source.dtype, source.device)
    stats = LloydStats.zeros(k, d, acc, source.device)
    for chunk in source.chunks():
        m = chunk.x.shape[0]
        xs = prepare_rows(chunk.x, pc.metric, pc.shift)
        lab, dist = assign(xs, pc, out=workspace.scores_for(m))
        if labels is not None:
            seg = labels[chunk.start : chunk.start + m]
            stats.changed += (seg != lab).sum()
            seg.copy_(lab)
        w = chunk.w
        if w is None:
            stats.weights.index_add_(0, lab, torch.ones(m, dtype=acc, device=lab.device))
            stats.counts.index_add_(0, lab, torch.ones(m, dtype=acc, device=lab.device))
            stats.inertia.index_add_(0, lab, dist.to(acc))
        else:
            wa = w.to(acc)
            stats.weights.index_add_(0, lab, wa)
            stats.counts.index_add_(0, lab, (wa > 0).to(acc))
            stats.inertia.index_add_(0, lab, dist.to(acc) * wa)
        if update:
            xa = xs.to(acc)
            if w is not None:
                xa = xa * w.to(acc)[:, None]
            # index_add_ adds rows in order on the CPU: sums do not depend on the chunk size.
            stats.sums.index_add_(0, lab, xa)
    return stats


def _farthest_rows(
    source: TensorSource, pc: PreparedCenters, workspace: Workspace, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``m`` rows of positive weight farthest from their nearest center.

    Returns ``(distances, indices, labels)`` sorted by decreasing distance, ties by index.
    """
    device = source.device
    best_d = torch.empty(0, dtype=torch.float64, device=device)
    best_i = torch.empty(0, dtype=torch.long, device=device)
    best_l = torch.empty(0, dtype=torch.long, device=device)
    for chunk in source.chunks():
        n = chunk.x.shape[0]
        xs = prepare_rows(chunk.x, pc.metric, pc.shift)
        lab, dist = assign(xs, pc, out=workspace.scores_for(n))
        dist = dist.to(torch.float64)
        if chunk.w is not None:
            dist = torch.where(chunk.w > 0, dist, torch.full_like(dist, -1.0))
        top = torch.topk(dist, min(m, n)).indices
        d = torch.cat([best_d, dist[top]])
        i = torch.cat([best_i, top + chunk.start])
        lb = torch.cat([best_l, lab[top]])
        order = torch.argsort(i, stable=True)
        order = order[torch.argsort(-d[order], stable=True)][:m]
        best_d, best_i, best_l = d[order], i[order], lb[order]
    return best_d, best_i, best_l


def relocate_empty_clusters(
    stats: LloydStats, source: TensorSource, pc: PreparedCenters, workspace: Workspace
) -> int:
    """Move the rows farthest from their centers into the empty clusters (as scikit-learn does).

    Each empty cluster receives one row of positive weight, taken from a cluster that keeps at
    least one row, with the largest distance to its center; rows at distance zero are never
    moved. ``stats`` is updated in place. Returns how many clusters were refilled; clusters
    that could not be refilled stay empty (their centers are kept by ``finalize``).
    """
    empty = (stats.counts == 0).nonzero().flatten()
    n_empty = int(empty.numel())
    if n_empty == 0:
        return 0
    k = pc.n_clusters
    dist, idx, lab = _farthest_rows(source, pc, workspace, min(source.n_samples, n_empty + k))
    rows = prepare_rows(source.rows(idx), pc.metric, pc.shift).to(stats.sums.dtype)
    weights = source.weights_at(idx).to(stats.sums.dtype)
    filled = 0
    for j in range(idx.numel()):
        if filled == n_empty or not bool(dist[j] > 0):
            break
        donor = int(lab[j])
        if not bool(stats.counts[donor] > 1):
            continue
        target = int(empty[filled])
        contribution = rows[j] * weights[j]
        stats.sums[donor] -= contribution
        stats.weights[donor] -= weights[j]
        stats.counts[donor] -= 1
        stats.sums[target] = contribution
        stats.weights[target] = weights[j]
        stats.counts[target] = 1
        filled += 1
    return filled


def finalize(stats: LloydStats, pc: PreparedCenters) -> torch.Tensor:
    """New centers from the sums: weighted means (cosine: renormalized to unit length).

    A cluster that is still empty, or whose sum has no direction (cosine), keeps its center, so
    the result never holds NaN or zero vectors that did not come from the data.
    """
    old = pc.centers
    filled = stats.counts > 0
    denom = torch.where(filled, stats.weights, torch.ones_like(stats.weights))
    means = stats.sums / denom[:, None]
    if pc.metric == "euclidean":
        new = means.to(old.dtype)
        if pc.shift is not None:
            new = new + pc.shift
    else:
        norms = torch.linalg.vector_norm(means, dim=1, keepdim=True)
        filled = filled & (norms[:, 0] > 0)
        new = (means / torch.where(norms > 0, norms, torch.ones_like(norms))).to(old.dtype)
    return torch.where(filled[:, None], new, old)
