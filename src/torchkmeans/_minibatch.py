"""Mini-batch k-means (Sculley 2010) with scikit-learn's semantics, on any source.

The algorithm follows :class:`sklearn.cluster.MiniBatchKMeans`: each step assigns a mini-batch
to the nearest centers and moves every center that received rows to the weighted mean of its
past and new rows (a per-center learning rate of ``batch weight / total weight seen``); centers
absent from a batch do not move, so no center becomes NaN or zero. Every ``10 * n_clusters``
rows, or whenever a center has seen no weight, centers whose accumulated weight is below
``reassignment_ratio`` times the largest are moved to random rows of the batch. A fit stops
after ``max_iter`` passes' worth of steps, when the smoothed batch inertia has not improved for
``max_no_improvement`` steps, or when the squared center change of a step is below ``tol``
(relative to the mean feature variance).

This module is the algorithm only: :class:`torchkmeans.MiniBatchKMeans` (in ``_estimator``)
checks the parameters and the data at the fit boundary and calls :func:`fit`, or :func:`start`
/ :func:`resume` and :func:`partial_step` for ``partial_fit``. Prior validation of data is
assumed: every function takes a prepared source and checked parameters.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ._bounds import Workspace
from ._core import InitSpec, _sample_shard, data_moments, init_centers, seeding_shift
from ._distance import PreparedCenters, prepare_rows
from ._distributed import SINGLE, Comm
from ._engines.dispatch import engine_for
from ._functional import assign_labels
from ._init import canonical_order, random_rows_, sample_by_cdf
from ._params import warn as _warn
from ._progress import Progress
from ._sources import BatchSource, Source, TensorSource, sample_indices


@dataclass
class MiniBatchState:
    """Centers, the weight each has absorbed, and the counters of the reassignment rule."""

    centers: torch.Tensor
    counts: torch.Tensor  # float64 (K,)
    since_reassign: float = 0.0
    n_steps: int = 0
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def minibatch_step(
    batch: TensorSource,
    state: MiniBatchState,
    generator: torch.Generator,
    *,
    metric: str,
    reassign: bool,
    reassignment_ratio: float,
    workspace: Workspace,
    comm: Comm = SINGLE,
) -> tuple[float, torch.Tensor]:
    """One mini-batch update of ``state`` in place. Returns (batch inertia, old centers).

    Distributed: the batch is the union of every rank's part, its statistics SUM-reduced.
    """
    old = state.centers
    pc = PreparedCenters(old, metric, None, sparse=batch.sparse)
    engine = engine_for(batch.device, batch.dtype, metric, sparse=batch.sparse)
    stats = engine.accumulate(batch, pc, None, workspace)
    stats.reduce_(comm)
    acc = stats.sums.dtype
    bw = stats.weights
    sums = stats.sums
    if pc.shift is not None:  # sums are of rows shifted by pc.shift
        sums = sums + bw[:, None] * pc.shift.to(acc)
    counts = state.counts.to(acc)
    hit = bw > 0
    total = counts + bw
    moved = (old.to(acc) * counts[:, None] + sums) / torch.where(hit, total, 1.0)[:, None]
    if metric == "cosine":
        norms = torch.linalg.vector_norm(moved, dim=1, keepdim=True)
        hit = hit & (norms[:, 0] > 0)
        moved = moved / torch.where(norms > 0, norms, 1.0)
    new = torch.where(hit[:, None], moved.to(old.dtype), old)
    counts = torch.where(bw > 0, total, counts)
    if reassign and reassignment_ratio > 0:
        new, counts = _reassign(batch, new, counts, generator, reassignment_ratio, metric, comm)
    state.centers = new
    state.counts = counts.to(torch.float64)
    return float(stats.inertia.sum()), old


def _reassign(
    batch: TensorSource,
    centers: torch.Tensor,
    counts: torch.Tensor,
    generator: torch.Generator,
    ratio: float,
    metric: str,
    comm: Comm = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move centers that absorbed little weight to random distinct points of the batch, drawn
    with probability proportional to weight (so weights act as repeated rows)."""
    low = counts < ratio * counts.max()
    half = 0.5 * _batch_weight(batch, comm)
    if float(low.sum()) > half:
        keep = torch.argsort(counts, stable=True)[int(half) :]
        low[keep] = False
    n_low = int(low.sum())
    if n_low == 0:
        return centers, counts
    rows, _ = random_rows_(batch, n_low, generator, metric, comm=comm)
    targets = low.nonzero().flatten()
    centers = centers.clone()
    centers[targets] = prepare_rows(rows, metric, None).to(centers.dtype)
    counts = counts.clone()
    # reset the counts of reassigned centers, but not so low that they are reassigned at once
    if bool((~low).any()):
        counts[targets] = counts[~low].min()
    return centers, counts


_ORDER_BYTES = 32 << 20


class _RowSampler:
    """Draws rows with replacement with probability proportional to their weight; the drawn
    rows then count with weight one (for unweighted data: scikit-learn's uniform draw).

    The draw runs over the rows in the canonical, value-defined order, so a row of weight n is
    drawn exactly as n repeated rows would be, and a memory-mapped file is drawn as the same
    data in memory would be. Only memory-mapped data whose order index would exceed
    ``_ORDER_BYTES`` is drawn in storage order (its fit stays within a fixed memory).
    """

    def __init__(self, source: TensorSource) -> None:
        self.source = source
        use_order = not source.out_of_core or 16 * source.n_samples <= _ORDER_BYTES
        self.order = canonical_order(source).cpu() if use_order else None
        self.cumulative = None
        w = source.sample_weight
        if w is not None:
            w64 = w.to(torch.float64)
            self.cumulative = torch.cumsum(w64 if self.order is None else w64[self.order], 0)

    def draw(self, size: int, generator: torch.Generator) -> TensorSource:
        n = self.source.n_samples
        u = torch.rand(size, generator=generator, dtype=torch.float64)
        if self.cumulative is None:
            pos = (u * n).long().clamp_max_(n - 1)
        else:
            pos = sample_by_cdf(self.cumulative, u.to(self.cumulative.device)).cpu()
        idx = pos if self.order is None else self.order[pos]
        batch = self.source.sample(torch.sort(idx).values)
        batch.sample_weight = None
        return batch


def _batches(source: Source, batch_size: int, generator: torch.Generator, comm: Comm = SINGLE):
    """Endless mini-batches: drawn by :class:`_RowSampler` from sources with random access
    (when ``batch_size`` covers the data, every step sees all rows with their weights), and
    consecutive slices of the stream, in order, from sources of batches. Distributed: each rank
    draws its share of ``batch_size`` (proportional to its rows) from its shard, with its own
    stream."""
    if isinstance(source, TensorSource):
        if batch_size >= source.n_total:
            while True:
                yield source
        if comm.distributed:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            generator = torch.Generator().manual_seed(seed + 1_000_003 * comm.rank)
            batch_size = round(batch_size * source.n_samples / source.n_total)
            if batch_size == 0 or source.n_samples == 0:
                empty = source.sample(torch.zeros(0, dtype=torch.long))
                while True:
                    yield empty
        sampler = _RowSampler(source)
        while True:
            yield sampler.draw(batch_size, generator)
    else:
        while True:
            yield from _rechunk(source, batch_size)


def _rechunk(source: BatchSource, batch_size: int):
    """The stream of a source of batches as in-memory sources of at most ``batch_size`` rows."""
    view = copy.copy(source)
    view.chunk_size = batch_size
    for chunk in view.chunks():
        yield TensorSource(
            chunk.x,
            chunk.w,
            device=source.device,
            dtype=source.dtype,
            chunk_size=source.chunk_size,
        )


def _reduced(value: float, comm: Comm) -> float:
    if not comm.distributed:
        return value
    return float(comm.all_reduce_(torch.tensor([value], dtype=torch.float64))[0])


def _batch_weight(batch: TensorSource, comm: Comm = SINGLE) -> float:
    if batch.sample_weight is None:
        return _reduced(float(batch.n_samples), comm)
    return _reduced(float(batch.sample_weight.to(torch.float64).sum()), comm)


# --------------------------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------------------------


def seed_size(
    init_size: int | None, batch_size: int, n_samples: int, n_clusters: int, warn: bool = True
) -> int:
    """Rows that seeding runs on and that judge the ``n_init`` seedings: ``init_size``, by
    default ``3 * batch_size`` (``3 * n_clusters`` when that is fewer than ``n_clusters``), at
    most ``n_samples``. An ``init_size`` below ``n_clusters`` warns (when ``warn``)."""
    size = init_size
    if size is None:
        size = 3 * int(batch_size)
        if size < n_clusters:
            size = 3 * n_clusters
    elif size < n_clusters:
        if warn:
            _warn(
                f"init_size={size} should be larger than n_clusters={n_clusters}. Setting it "
                "to min(3*n_clusters, n_samples)",
                RuntimeWarning,
            )
        size = 3 * n_clusters
    return min(int(size), n_samples)


def seed(
    source: Source,
    n_clusters: int,
    init: InitSpec,
    generator: torch.Generator,
    *,
    n_init: int,
    size: int,
    metric: str,
    mean: torch.Tensor,
    comm: Comm = SINGLE,
) -> torch.Tensor:
    """Best of ``n_init`` seedings on ``size`` rows, judged on a validation sample of ``size``
    rows. Prior validation of data is assumed."""
    k = n_clusters
    shift = seeding_shift(source, metric, mean)
    partial = size < source.n_total
    sampler = None
    if not partial:
        valid: Source = source
    elif comm.distributed:
        valid = _sample_shard(source, sample_indices(source.n_total, size, generator))
    elif isinstance(source, TensorSource):
        sampler = _RowSampler(source)
        valid = sampler.draw(size, generator)
    else:
        valid = source.sample(sample_indices(source.n_samples, size, generator))
    best, best_inertia = None, math.inf
    for _ in range(n_init):
        if sampler is not None:
            seeds = sampler.draw(size, generator)
            centers = init_centers(seeds, k, init, generator, metric=metric, shift=shift)
        else:
            centers = init_centers(
                source,
                k,
                init,
                generator,
                metric=metric,
                shift=shift,
                init_size=size if partial else None,
                comm=comm,
            )
        inertia = _reduced(assign_labels(valid, centers, metric)[1], comm)
        if best is None or inertia < best_inertia:
            best, best_inertia = centers, inertia
    assert best is not None
    return best


# --------------------------------------------------------------------------------------------
# steps and stopping
# --------------------------------------------------------------------------------------------


def step(
    batch: TensorSource,
    state: MiniBatchState,
    generator: torch.Generator,
    *,
    metric: str,
    rows: float,
    reassignment_ratio: float,
    workspace: Workspace,
    comm: Comm = SINGLE,
) -> tuple[float, torch.Tensor]:
    """One mini-batch step, reassigning starved centers when the rule says so. Returns (batch
    inertia, old centers)."""
    reassign = _reassign_due(state, rows, int(state.centers.shape[0]))
    return minibatch_step(
        batch,
        state,
        generator,
        metric=metric,
        reassign=reassign,
        reassignment_ratio=reassignment_ratio,
        workspace=workspace,
        comm=comm,
    )


def _reassign_due(state: MiniBatchState, rows: float, k: int) -> bool:
    """Every ``10 * n_clusters`` rows, or whenever a center has seen no weight."""
    state.since_reassign += rows
    if bool((state.counts == 0).any()) or state.since_reassign >= 10 * k:
        state.since_reassign = 0
        return True
    return False


def converged(
    state: MiniBatchState,
    i: int,
    n: float,
    batch_rows: float,
    shift: float,
    tol: float,
    inertia: float,
    max_no_improvement: int | None,
) -> str | None:
    """scikit-learn's early stopping: tol on the center change, or no improvement of the
    exponentially weighted average of the per-row batch inertia (``i``: the step, from 0).
    Returns why the fit stops (scikit-learn's words), or None to go on."""
    inertia /= batch_rows
    if i == 0:  # the first step's inertia is from the seeding
        return None
    if state.ewa_inertia is None:
        state.ewa_inertia = inertia
    else:
        alpha = min(1.0, batch_rows * 2.0 / (n + 1))
        state.ewa_inertia = state.ewa_inertia * (1 - alpha) + inertia * alpha
    if tol > 0.0 and shift <= tol:
        return "small centers change"
    if state.ewa_inertia_min is None or state.ewa_inertia < state.ewa_inertia_min:
        state.no_improvement = 0
        state.ewa_inertia_min = state.ewa_inertia
    else:
        state.no_improvement += 1
    if max_no_improvement is not None and state.no_improvement >= max_no_improvement:
        return "lack of improvement in inertia"
    return None


# --------------------------------------------------------------------------------------------
# fit and partial_fit
# --------------------------------------------------------------------------------------------


@dataclass
class MiniBatchFit:
    """The outcome of :func:`fit`: the final state, mini-batch steps and passes over the data."""

    state: MiniBatchState
    n_steps: int
    n_iter: int


def fit(
    source: Source,
    n_clusters: int,
    *,
    init: InitSpec,
    generator: torch.Generator,
    n_init: int,
    max_iter: int,
    batch_size: int,
    tol: float,
    max_no_improvement: int | None,
    reassignment_ratio: float,
    init_size: int | None,
    metric: str,
    verbose: int,
    comm: Comm = SINGLE,
) -> MiniBatchFit:
    """Seed, then take mini-batch steps until ``max_iter`` passes or early stopping.

    Distributed: each step's batch is drawn from every shard in proportion to its rows and its
    statistics are SUM-reduced, so every rank ends with the same centers. Prior validation of
    data is assumed.
    """
    k = n_clusters
    n = source.n_total
    # Row counts enter the reassignment and smoothing rules as weight totals (the same for
    # unweighted data), so that a weight of n acts as n repeated rows.
    mean, variance, total = data_moments(source, metric, comm)
    size = seed_size(init_size, batch_size, n, k)
    centers = seed(
        source, k, init, generator, n_init=n_init, size=size, metric=metric, mean=mean, comm=comm
    )
    tol = tol * variance
    state = MiniBatchState(centers, torch.zeros(k, dtype=torch.float64, device=source.device))
    batch_size = min(batch_size, n)
    workspace = Workspace(source.chunk_size, k, source.dtype, source.device)
    n_steps = (max_iter * n) // batch_size
    progress = Progress(bool(verbose) and comm.is_main)
    i = 0
    for i, batch in zip(range(n_steps), _batches(source, batch_size, generator, comm)):
        rows = _batch_weight(batch, comm)
        inertia, old = step(
            batch,
            state,
            generator,
            metric=metric,
            rows=rows,
            reassignment_ratio=reassignment_ratio,
            workspace=workspace,
            comm=comm,
        )
        shift = 0.0
        if tol > 0.0:
            shift = float(((state.centers - old).to(torch.float64) ** 2).sum())
        reason = converged(state, i, total, rows, shift, tol, inertia, max_no_improvement)
        progress.minibatch_step(i + 1, n_steps, inertia / rows, state.ewa_inertia)
        if reason is not None:
            progress.minibatch_converged(reason, i + 1, n_steps)
            break
    steps_done = i + 1 if n_steps else 0
    return MiniBatchFit(state, steps_done, int(math.ceil(steps_done * batch_size / n)))


def start(
    source: Source,
    n_clusters: int,
    *,
    init: InitSpec,
    generator: torch.Generator,
    n_init: int,
    init_size: int | None,
    batch_size: int,
    metric: str,
) -> MiniBatchState:
    """The state before the first ``partial_fit`` step: centers seeded on ``source``, no weight
    seen. Prior validation of data is assumed."""
    mean, _, _ = data_moments(source, metric)
    size = seed_size(init_size, batch_size, source.n_total, n_clusters)
    centers = seed(
        source, n_clusters, init, generator, n_init=n_init, size=size, metric=metric, mean=mean
    )
    return MiniBatchState(
        centers, torch.zeros(n_clusters, dtype=torch.float64, device=source.device)
    )


def resume(
    centers: torch.Tensor,
    counts: torch.Tensor | None,
    since_reassign: float,
    n_clusters: int,
    device: torch.device,
) -> MiniBatchState:
    """The state of a fitted model for the next ``partial_fit`` step; centers set without a fit
    (no ``counts``) count as seen once each."""
    if counts is None:
        counts = torch.ones(n_clusters, dtype=torch.float64)
    return MiniBatchState(
        centers,
        torch.as_tensor(counts, dtype=torch.float64).to(device),
        since_reassign=since_reassign,
    )


def partial_step(
    source: Source,
    state: MiniBatchState,
    generator: torch.Generator,
    *,
    n_clusters: int,
    metric: str,
    reassignment_ratio: float,
) -> None:
    """One step of ``state`` on all of ``source`` (a ``partial_fit`` call), in place. Prior
    validation of data is assumed."""
    batch = (
        source
        if isinstance(source, TensorSource)
        else source.sample(torch.arange(source.n_samples))
    )
    workspace = Workspace(source.chunk_size, n_clusters, source.dtype, source.device)
    step(
        batch,
        state,
        generator,
        metric=metric,
        rows=_batch_weight(batch),
        reassignment_ratio=reassignment_ratio,
        workspace=workspace,
    )


def summarize(
    source: Source,
    state: MiniBatchState,
    *,
    compute_labels: bool,
    training: bool,
    out_dtype: torch.dtype,
    metric: str,
    comm: Comm = SINGLE,
) -> tuple[torch.Tensor | None, float | None]:
    """``(labels, inertia)`` of ``source`` after a fit (``training``) or a partial_fit step:
    from a full assignment pass with ``compute_labels``; else, after a fit, no labels and the
    smoothed batch inertia scaled to the data; else ``(None, None)``."""
    if compute_labels:
        centers = state.centers.to(out_dtype).to(source.dtype)
        labels, inertia = assign_labels(source, centers, metric)
        return labels, _reduced(float(inertia), comm)
    if training and state.ewa_inertia is not None:
        return None, float(state.ewa_inertia * source.n_total)
    return None, None
