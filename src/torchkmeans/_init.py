"""Initial centers: greedy k-means++ and weighted random rows.

Sampling is by inverse CDF over cumulative weights (one uniform draw, then ``searchsorted``),
so a row of integer weight ``n`` is drawn exactly as ``n`` repeated rows would be, and a row of
weight zero is never drawn. The cumulative sums run over the rows in a canonical order (sorted
by a fixed random projection of their values), not in storage order, so that the seeding, and
with it the whole fit, does not depend on how the rows are ordered: permuting the rows
permutes the labels, and repeated rows act as one weighted row wherever they are. All random numbers come from one CPU ``torch.Generator``, so a seed
gives the same centers on every device. Prior validation of data is assumed.
"""

from __future__ import annotations

import functools
import math

import torch

from . import _sparse
from ._distance import PreparedCenters, pairwise, partial_scores, prepare_rows
from ._distributed import SINGLE, Comm
from ._engines import dispatch
from ._sources import TensorSource


def uniform(generator: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64).to(device)


# The projection that defines the canonical row order is fixed, not drawn from random_state.
_ORDER_SEED = 20240607


@functools.lru_cache(maxsize=64)
def order_direction(d: int) -> torch.Tensor:
    """The fixed random direction of the canonical order for ``d`` features (CPU, float64)."""
    g = torch.Generator().manual_seed(_ORDER_SEED)
    return torch.randn(d, dtype=torch.float64, generator=g)


def canonical_order(source: TensorSource, metric: str = "euclidean") -> torch.Tensor:
    """A permutation of the rows that depends on their values only (ties: identical rows).

    Rows (for cosine: rows normalized to unit length) are sorted by their dot product with a
    fixed random direction, computed in float64 (by the engine of the source).
    """
    engine = dispatch.engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    return engine.canonical_order(source, metric)


def canonical_order_torch(source: TensorSource, metric: str) -> torch.Tensor:
    """:func:`canonical_order` in PyTorch (any device)."""
    direction = order_direction(source.n_features)
    direction = direction.to(source.device)
    keys = torch.empty(source.n_samples, dtype=torch.float64, device=source.device)
    for chunk in source.chunks():
        m = chunk.x.shape[0]
        if source.sparse:
            rows = prepare_rows(chunk.x, metric, None)
            keys[chunk.start : chunk.start + m] = _sparse.matmul(rows, direction[:, None])[:, 0]
            continue
        rows = prepare_rows(chunk.x, metric, None).to(torch.float64)
        keys[chunk.start : chunk.start + m] = rows @ direction
    return torch.argsort(keys, stable=True)


def sample_by_cdf(cumulative: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Indices ``i`` with ``cumulative[i-1] <= u * total < cumulative[i]``.

    Rows whose mass is zero are never returned (their cumulative value equals the previous one).
    """
    targets = u * cumulative[-1]
    idx = torch.searchsorted(cumulative, targets, right=True)
    return idx.clamp_max_(cumulative.shape[0] - 1)


_CACHE_BUDGET = 48 << 20


def draw_rows(
    source: TensorSource,
    order: torch.Tensor,
    cumulative: torch.Tensor,
    u: torch.Tensor,
    comm: Comm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows drawn with probability proportional to mass, over the rows of every rank.

    ``cumulative`` holds this shard's cumulative mass in the canonical ``order``; ``u`` the
    same uniform draws on every rank. The rank whose mass interval holds ``u * total`` picks its
    row by inverse CDF; rows and global indices reach every rank through one SUM. Returns
    ``(rows, global indices)``, identical on every rank. On one process, the plain draw.
    """
    if not comm.distributed:
        idx = order[sample_by_cdf(cumulative, u)]
        return source.rows(idx), idx
    device = source.device
    local_total = (
        cumulative[-1:].clone()
        if cumulative.numel()
        else torch.zeros(1, dtype=torch.float64, device=device)
    )
    totals = torch.cat(comm.all_gather(local_total.to(torch.float64)))
    ends = torch.cumsum(totals, 0)
    targets = u.to(torch.float64) * ends[-1]
    owner = torch.searchsorted(ends, targets, right=True).clamp_max_(comm.world_size - 1)
    # a draw landing past the last positive shard goes to the last rank with mass
    positive = (totals > 0).nonzero().flatten()
    owner = torch.where(totals[owner] > 0, owner, positive[-1])
    t = u.shape[0]
    rows = torch.zeros(t, source.n_features, dtype=torch.float64, device=device)
    index = torch.zeros(t, dtype=torch.float64, device=device)
    mine = (owner == comm.rank).nonzero().flatten()
    if mine.numel():
        start = ends[comm.rank] - totals[comm.rank]
        local_u = ((targets[mine] - start) / totals[comm.rank]).clamp_(0.0, 1.0)
        idx = order[sample_by_cdf(cumulative, local_u)]
        rows[mine] = source.rows(idx).to(torch.float64)
        index[mine] = (idx + source.offset).to(torch.float64)
    flat = torch.cat([rows.reshape(-1), index])
    comm.all_reduce_(flat)
    rows = flat[: t * source.n_features].view(t, source.n_features).to(source.dtype)
    return rows, flat[t * source.n_features :].round().to(torch.long)


def _distances_to(
    source: TensorSource, rows: torch.Tensor, metric: str, shift: torch.Tensor | None
):
    """Yield ``(start, distances chunk x len(rows))`` over the source (cosine: to the rows'
    directions, so that the seeding does not depend on row norms)."""
    if metric == "cosine":
        rows = prepare_rows(rows, metric, None)
    pc = PreparedCenters(rows, metric, shift, sparse=source.sparse)
    for chunk in source.chunks():
        xs = prepare_rows(chunk.x, metric, shift)
        yield chunk.start, pairwise(xs, pc)


# Candidate potentials this close count as tied; the first candidate drawn wins. Potentials are
# sums whose last bits depend on the row order, so an exact comparison would let the storage
# order of the rows decide between equally good candidates.
POTENTIAL_RTOL = 1e-10


def _first_minimum(values: torch.Tensor) -> int:
    """Index of the first value within ``POTENTIAL_RTOL`` of the minimum."""
    low = values.min()
    within = values <= low + POTENTIAL_RTOL * low.abs()
    return int(within.nonzero()[0, 0])


def kmeans_plusplus_(
    source: TensorSource,
    n_clusters: int,
    generator: torch.Generator,
    *,
    metric: str = "euclidean",
    shift: torch.Tensor | None = None,
    n_local_trials: int | None = None,
    comm: Comm = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, with local trials as in scikit-learn).

    Each new center is the best of ``2 + int(log k)`` candidates drawn with probability
    proportional to ``weight * D(x)^2``, where best means the lowest resulting potential.
    Returns ``(centers, indices)``. Extra memory: a few float64 vectors of length n_samples plus
    one chunk. Prior validation of data is assumed.
    """
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    engine = dispatch.engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    return engine.kmeans_plusplus(
        source, n_clusters, generator, metric=metric, shift=shift,
        n_local_trials=n_local_trials, comm=comm,
    )  # fmt: skip


def kmeans_plusplus_torch(
    source: TensorSource,
    n_clusters: int,
    generator: torch.Generator,
    *,
    metric: str,
    shift: torch.Tensor | None,
    n_local_trials: int,
    comm: Comm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`kmeans_plusplus_` in PyTorch (any device, any number of processes)."""
    n, device = source.n_samples, source.device
    # Length-n vectors kept: order (int64), closest and cumulative (float64), and the sorted
    # weights when weighted; everything else is per chunk.
    order = canonical_order(source, metric)
    sw = source.sample_weight
    w_sorted = None if sw is None else sw.to(torch.float64)[order]
    cumulative = _cumulative_weights(w_sorted, n, device)
    first_row, first = draw_rows(source, order, cumulative, uniform(generator, 1, device), comm)
    indices = [first]
    centers = [first_row]

    closest = torch.empty(n, dtype=torch.float64, device=device)
    for start, d in _distances_to(source, centers[0], metric, shift):
        closest[start : start + d.shape[0]] = d[:, 0]

    # The candidates' distances are kept for the pass that adds the winner when they fit in the
    # memory budget (64 MB + 10% of the data, with the three length-n vectors above); otherwise
    # the candidate pass is repeated.
    cache = None
    data_bytes = source.data_bytes
    cache_bytes = n * n_local_trials * source.dtype.itemsize
    if 24 * n + cache_bytes <= _CACHE_BUDGET + 0.10 * data_bytes:
        cache = torch.empty(n, n_local_trials, dtype=source.dtype, device=device)
    pot = torch.zeros(1, n_local_trials, dtype=torch.float64, device=device)
    zero_index = torch.zeros(source.chunk_size, dtype=torch.long, device=device)
    for _ in range(1, n_clusters):
        torch.index_select(closest, 0, order, out=cumulative)
        if w_sorted is not None:
            cumulative.mul_(w_sorted)
        cumulative.cumsum_(0)
        u = uniform(generator, n_local_trials, device)
        local_mass = cumulative[-1:] if n else torch.zeros(1, dtype=torch.float64, device=device)
        mass = comm.all_reduce_(local_mass.clone())
        if not bool(mass[0] > 0):
            # Every weighted row already sits on a center: fall back to sampling by weight.
            # The fit will warn that there are fewer distinct points than clusters.
            fallback = _cumulative_weights(w_sorted, n, device)
            rows, candidates = draw_rows(source, order, fallback, u, comm)
        else:
            rows, candidates = draw_rows(source, order, cumulative, u, comm)
        pot.zero_()
        for start, d in _distances_to(source, rows, metric, shift):
            m = d.shape[0]
            if cache is not None:
                cache[start : start + m] = d
            new = torch.minimum(d, closest[start : start + m, None])
            if sw is not None:
                new.mul_(sw[start : start + m, None].to(torch.float64))
            # index_add_ adds row by row in order: the potentials do not depend on chunking.
            pot.index_add_(0, zero_index[:m], new)
        comm.all_reduce_(pot)
        best = _first_minimum(pot[0])
        best_row = rows[best : best + 1]
        if cache is not None:
            torch.minimum(closest, cache[:, best].to(torch.float64), out=closest)
        else:
            # the same distances as in the candidate pass (same GEMM shape), recomputed
            for start, d in _distances_to(source, rows, metric, shift):
                seg = closest[start : start + d.shape[0]]
                torch.minimum(seg, d[:, best], out=seg)
        indices.append(candidates[best : best + 1])
        centers.append(best_row)
    return torch.cat(centers), torch.cat(indices)


def _cumulative_weights(
    w_sorted: torch.Tensor | None, n: int, device: torch.device
) -> torch.Tensor:
    if w_sorted is None:
        return torch.arange(1, n + 1, dtype=torch.float64, device=device)
    return torch.cumsum(w_sorted, dim=0)


# Draws per center before random init accepts a duplicate point (fewer distinct points than k).
_MAX_REDRAWS = 64


def random_rows_(
    source: TensorSource,
    n_clusters: int,
    generator: torch.Generator,
    metric: str = "euclidean",
    comm: Comm = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_clusters`` distinct points drawn with probability proportional to weight.

    Rows are drawn one at a time by inverse CDF (in the canonical order); a draw equal to an
    already chosen point is redrawn, so repeated rows and one row of the summed weight are
    drawn alike. After ``_MAX_REDRAWS`` redraws for one center a duplicate is accepted (the fit
    then warns about fewer distinct points than clusters). Prior validation assumed.
    """
    order = canonical_order(source, metric)
    sw = source.sample_weight
    cumulative = _cumulative_weights(
        None if sw is None else sw.to(torch.float64)[order], source.n_samples, source.device
    )
    rows: list[torch.Tensor] = []
    indices: list[torch.Tensor] = []
    redraws = 0
    while len(rows) < n_clusters:
        row, idx = draw_rows(source, order, cumulative, uniform(generator, 1, source.device), comm)
        if rows and redraws < _MAX_REDRAWS and bool((torch.cat(rows) == row).all(dim=1).any()):
            redraws += 1
            continue
        redraws = 0
        rows.append(row)
        indices.append(idx)
    return torch.cat(rows), torch.cat(indices)


# k-means|| (Bahmani et al. 2012): rounds of oversampling, then weighted k-means++ on the
# candidates. Five rounds of 2k expected candidates each is the setting the paper found enough.
KMEANS_PARALLEL_ROUNDS = 5


def kmeans_parallel_(
    source: TensorSource,
    n_clusters: int,
    generator: torch.Generator,
    *,
    metric: str = "euclidean",
    shift: torch.Tensor | None = None,
    rounds: int = KMEANS_PARALLEL_ROUNDS,
    oversampling: float | None = None,
    comm: Comm = SINGLE,
) -> torch.Tensor:
    """Scalable k-means++ ("k-means||", Bahmani et al. 2012).

    One first center drawn by weight; then ``rounds`` rounds in which every row is kept
    independently with probability ``min(1, l * w * D(x)^2 / phi)`` (``l = oversampling``,
    default ``2 * n_clusters``; ``phi`` the total weighted potential), so each round adds about
    ``l`` candidates and reads the data twice. The candidates of all ranks are gathered, weighted
    by the total weight of the rows closest to them, and reclustered with greedy weighted
    k-means++ on every rank identically. Returns the ``n_clusters`` centers. Each rank draws its
    rows' coins from its own stream (seeded from ``generator`` and the rank), so a seed gives the
    same centers for the same world size.
    """
    device, n = source.device, source.n_samples
    ell = float(2 * n_clusters if oversampling is None else oversampling)
    order = canonical_order(source, metric)
    sw = source.sample_weight
    w64 = None if sw is None else sw.to(torch.float64)
    cumulative = _cumulative_weights(None if w64 is None else w64[order], n, device)
    first, _ = draw_rows(source, order, cumulative, uniform(generator, 1, device), comm)
    base_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    coins = torch.Generator().manual_seed(base_seed + 1_000_003 * comm.rank)
    candidates = [first]
    closest = torch.empty(n, dtype=torch.float64, device=device)
    for start, d in _distances_to(source, first, metric, shift):
        closest[start : start + d.shape[0]] = d[:, 0]
    for _ in range(rounds):
        mass = closest if w64 is None else closest * w64
        phi = comm.all_reduce_(mass.sum().reshape(1))
        if not bool(phi[0] > 0):
            break
        u = torch.rand(n, generator=coins, dtype=torch.float64).to(device)
        keep = (u * phi[0] < ell * mass).nonzero().flatten()
        new = _gather_rows(source, keep, comm)
        if new.shape[0] == 0:
            continue
        candidates.append(new)
        for start, d in _distances_to(source, new, metric, shift):
            seg = closest[start : start + d.shape[0]]
            torch.minimum(seg, d.amin(dim=1).to(torch.float64), out=seg)
    pool = torch.cat(candidates)
    if pool.shape[0] <= n_clusters:
        # too few candidates (tiny or degenerate data): greedy k-means++ on the data itself
        centers, _ = kmeans_plusplus_(
            source, n_clusters, generator, metric=metric, shift=shift, comm=comm
        )
        return centers
    # weight of each candidate: the total weight of the rows closest to it
    if metric == "cosine":
        pool = prepare_rows(pool, metric, None)
    pc = PreparedCenters(pool, metric, shift, sparse=source.sparse)
    weights = torch.zeros(pool.shape[0], dtype=torch.float64, device=device)
    for chunk in source.chunks():
        scores = partial_scores(prepare_rows(chunk.x, metric, shift), pc)
        lab = scores.argmin(dim=1)
        w = (
            torch.ones(lab.shape[0], dtype=torch.float64, device=device)
            if chunk.w is None
            else chunk.w.to(torch.float64)
        )
        weights.index_add_(0, lab, w)
    comm.all_reduce_(weights)
    seeds = TensorSource(
        pool,
        weights.to(source.dtype),
        device=device,
        dtype=source.dtype,
        chunk_size=source.chunk_size,
    )
    centers, _ = kmeans_plusplus_(seeds, n_clusters, generator, metric=metric, shift=shift)
    return centers


def _gather_rows(source: TensorSource, keep: torch.Tensor, comm: Comm) -> torch.Tensor:
    """The rows at local indices ``keep`` of every rank, concatenated in rank order."""
    rows = (
        source.rows(keep)
        if keep.numel()
        else torch.empty(0, source.n_features, dtype=source.dtype, device=source.device)
    )
    if not comm.distributed:
        return rows
    counts = comm.all_gather_object(int(rows.shape[0]))
    most = max(counts)
    if most == 0:
        return rows
    padded = torch.zeros(most, source.n_features, dtype=source.dtype, device=source.device)
    padded[: rows.shape[0]] = rows
    parts = comm.all_gather(padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)])
