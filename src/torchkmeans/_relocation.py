"""Refilling empty clusters with the rows farthest from their centers (as scikit-learn does).

Prior validation of data is assumed.
"""

from __future__ import annotations

import torch

from ._bounds import Workspace
from ._distance import PreparedCenters, prepare_rows, take_rows
from ._distributed import SINGLE, Comm
from ._engines import dispatch
from ._sources import Chunk, Source, TensorSource
from ._statistics import LloydStats


def _farthest_rows(
    source: Source, pc: PreparedCenters, workspace: Workspace, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``m`` rows of positive weight farthest from their nearest center, in one pass.

    Returns ``(distances, indices, labels, prepared rows, weights)`` sorted by decreasing
    distance, ties by index. The rows are collected during the pass, so sources without
    random access (loaders) work too.
    """
    device = source.device
    found: dict[str, torch.Tensor] = {
        "d": torch.empty(0, dtype=torch.float64, device=device),
        "i": torch.empty(0, dtype=torch.long, device=device),
        "l": torch.empty(0, dtype=torch.long, device=device),
        "x": torch.empty(0, source.n_features, dtype=source.dtype, device=device),
        "w": torch.empty(0, dtype=source.dtype, device=device),
    }

    def collect(chunk: Chunk, lab: torch.Tensor, dist: torch.Tensor) -> None:
        n = dist.shape[0]
        dist = dist.to(torch.float64)
        if chunk.w is not None:
            dist = torch.where(chunk.w > 0, dist, torch.full_like(dist, -1.0))
        top = torch.topk(dist, min(m, n)).indices
        picked = take_rows(chunk.x, top) if source.sparse else chunk.x[top]
        rows = prepare_rows(picked.to(source.dtype), pc.metric, pc.shift)
        wt = torch.ones(top.shape[0], dtype=source.dtype, device=device)
        parts = {
            "d": dist[top],
            "i": top + chunk.start,
            "l": lab[top],
            "x": rows,
            "w": wt if chunk.w is None else chunk.w[top].to(source.dtype),
        }
        merged = {key: torch.cat([found[key], parts[key]]) for key in found}
        order = torch.argsort(merged["i"], stable=True)
        order = order[torch.argsort(-merged["d"][order], stable=True)][:m]
        found.update({key: value[order] for key, value in merged.items()})

    engine = dispatch.engine_for(source.device, source.dtype, pc.metric, sparse=source.sparse)
    engine.assign_blocks(source, pc, workspace, collect)
    best_d, best_i, best_l, best_x, best_w = (found[key] for key in "dilxw")
    return best_d, best_i, best_l, best_x, best_w


def _farthest_stored(
    source: Source, pc: PreparedCenters, labels: torch.Tensor, distances: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_farthest_rows` from the distances the last pass kept (same order and ties)."""
    assert isinstance(source, TensorSource)
    dist = distances.to(torch.float64)
    w = source.sample_weight
    if w is not None:
        dist = torch.where(w > 0, dist, torch.full_like(dist, -1.0))
    top = torch.topk(dist, min(m, dist.shape[0])).indices
    order = torch.argsort(top, stable=True)
    top = top[order]
    top = top[torch.argsort(-dist[top], stable=True)]
    rows = prepare_rows(source.rows(top), pc.metric, pc.shift)
    weights = torch.ones(top.shape[0], dtype=source.dtype) if w is None else w[top].to(source.dtype)
    return dist[top], top, labels[top], rows, weights


def _gather_farthest(
    comm: Comm,
    m: int,
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``m`` farthest rows over all ranks, identical on every rank (ties: global index)."""
    d, i, lab, x, w = parts
    pad = m - d.shape[0]
    if pad > 0:  # a shard with fewer rows than m: pad with entries that can never be chosen
        d = torch.cat([d, torch.full((pad,), -2.0, dtype=d.dtype, device=d.device)])
        i = torch.cat([i, torch.full((pad,), -1, dtype=i.dtype, device=i.device)])
        lab = torch.cat([lab, torch.zeros(pad, dtype=lab.dtype, device=lab.device)])
        x = torch.cat([x, torch.zeros(pad, x.shape[1], dtype=x.dtype, device=x.device)])
        w = torch.cat([w, torch.zeros(pad, dtype=w.dtype, device=w.device)])
    d = torch.cat(comm.all_gather(d))
    i = torch.cat(comm.all_gather(i))
    lab = torch.cat(comm.all_gather(lab))
    x = torch.cat(comm.all_gather(x))
    w = torch.cat(comm.all_gather(w))
    order = torch.argsort(i, stable=True)
    order = order[torch.argsort(-d[order], stable=True)][:m]
    return d[order], i[order], lab[order], x[order], w[order]


def relocate_empty_clusters(
    stats: LloydStats,
    source: Source,
    pc: PreparedCenters,
    workspace: Workspace,
    comm: Comm = SINGLE,
    labels: torch.Tensor | None = None,
) -> int:
    """Move the rows farthest from their centers into the empty clusters (as scikit-learn does).

    ``labels``, the labels of the pass that produced ``stats``, lets the distances that pass
    kept (:meth:`Workspace.keep_distances`) stand in for a pass over the data.

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
    m = min(source.n_total, n_empty + k)
    if labels is not None and workspace.distances_for is pc and workspace.distances is not None:
        farthest = _farthest_stored(source, pc, labels, workspace.distances, m)
    else:
        farthest = _farthest_rows(source, pc, workspace, m)
    if comm.distributed:
        d_, i_, l_, x_, w_ = farthest
        farthest = _gather_farthest(comm, m, (d_, i_ + source.offset, l_, x_, w_))
    dist, idx, lab, rows, weights = farthest
    rows = rows.to(stats.sums.dtype)
    weights = weights.to(stats.sums.dtype)
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
