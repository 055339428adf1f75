"""Mini-batch k-means (Sculley 2010) with scikit-learn's semantics, on any source.

The algorithm follows :class:`sklearn.cluster.MiniBatchKMeans`: each step assigns a mini-batch
to the nearest centers and moves every center that received rows to the weighted mean of its
past and new rows (a per-center learning rate of ``batch weight / total weight seen``); centers
absent from a batch do not move, so no center becomes NaN or zero. Every ``10 * n_clusters``
rows, or whenever a center has seen no weight, centers whose accumulated weight is below
``reassignment_ratio`` times the largest are moved to random rows of the batch. A fit stops
after ``max_iter`` passes' worth of steps, when the smoothed batch inertia has not improved for
``max_no_improvement`` steps, or when the squared center change of a step is below ``tol``
(relative to the mean feature variance). Prior validation of data is assumed below the
estimator.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from . import _validation as v
from ._core import _sample_shard, data_moments, init_centers
from ._distance import PreparedCenters, prepare_rows
from ._distributed import SINGLE, Comm, get_comm
from ._estimator import _KMeansBase
from ._functional import (
    Prepared,
    agree,
    assign_labels,
    join_shards,
    prepare,
    resolve_init,
)
from ._init import canonical_order, random_rows_, sample_by_cdf
from ._lloyd import Workspace, accumulate
from ._params import MINIBATCH_N_INIT, check_param, check_params, make_generator, warn
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
    pc = PreparedCenters(old, metric, None)
    stats = accumulate(batch, pc, None, workspace)
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


class MiniBatchKMeans(_KMeansBase):
    """Mini-batch k-means, a drop-in for :class:`sklearn.cluster.MiniBatchKMeans`.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"}, array or callable, default="k-means++"
        As for :class:`KMeans`; seeding runs on ``init_size`` rows.
    max_iter : int, default=100
        Passes over the data (in steps of ``batch_size`` rows) before stopping.
    batch_size : int, default=1024
        Rows per mini-batch.
    verbose : int, default=0
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` with a full assignment pass after the fit.
    random_state : int, RandomState, Generator, torch.Generator or None, default=None
    tol : float, default=0.0
        Stop when the squared change of the centers in one step is at most ``tol`` times the
        mean feature variance (0 disables it).
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed batch inertia.
    init_size : int or None, default=None
        Rows used for seeding and for choosing among ``n_init`` seedings:
        ``3 * batch_size`` (at least ``3 * n_clusters``, at most n_samples).
    n_init : "auto" or int, default="auto"
        Seedings tried (the best on a validation sample of ``init_size`` rows is kept):
        "auto" is 1 for k-means++ and arrays, 3 for random and callables.
    reassignment_ratio : float, default=0.01
        Centers with less than this fraction of the largest accumulated weight are moved to
        random rows of the batch (every ``10 * n_clusters`` rows).
    metric : {"euclidean", "cosine"}, default="euclidean"
    device, dtype, chunk_size :
        As for :class:`KMeans`.
    distributed : bool, default=False
        Data-parallel fit over the default ``torch.distributed`` process group: every rank
        passes its shard to ``fit``; each step's mini-batch is drawn from every shard in
        proportion to its rows and its statistics are SUM-reduced, so every rank ends with the
        same centers (``labels_`` for its own rows). ``partial_fit`` stays local.

    Data may be any container :class:`KMeans` accepts, including memory-mapped arrays (random
    rows are read per step) and re-iterable sources of batches such as a DataLoader (each batch,
    split at ``batch_size`` rows, is one mini-batch, in the order the source yields them).

    Attributes
    ----------
    cluster_centers_, labels_, inertia_, n_iter_, n_steps_, n_features_in_, feature_names_in_
        As in scikit-learn. ``n_iter_`` counts passes over the data, ``n_steps_`` mini-batches.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        metric: str = "euclidean",
        device: Any = None,
        dtype: Any = None,
        chunk_size: int | None = None,
        distributed: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.metric = metric
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.distributed = distributed

    # ------------------------------------------------------------------------- parameters

    def _check_params(self, *skip: str) -> dict[str, Any]:
        """The parameters checked from the table, but for ``distributed`` and ``skip``."""
        params = self.get_params(deep=False)
        for name in ("distributed", *skip):
            del params[name]
        return check_params(params, MINIBATCH_N_INIT)

    def _init_size(self, n: int, k: int) -> int:
        size = self.init_size
        if size is None:
            size = 3 * int(self.batch_size)
            if size < k:
                size = 3 * k
        elif size < k:
            warn(
                f"init_size={size} should be larger than n_clusters={k}. Setting it to "
                f"min(3*n_clusters, n_samples)",
                RuntimeWarning,
            )
            size = 3 * k
        return min(int(size), n)

    def _prepare_fit(
        self, X: Any, sample_weight: Any, p: dict[str, Any], allow_empty: bool = False
    ) -> Prepared:
        return prepare(
            X,
            sample_weight,
            n_clusters=p["n_clusters"],
            metric=p["metric"],
            device=p["device"],
            dtype=p["dtype"],
            chunk_size=p["chunk_size"],
            allow_empty=allow_empty,
        )

    def _seed(
        self,
        prepared: Prepared,
        k: int,
        n_init: int,
        generator: torch.Generator,
        mean: torch.Tensor,
        comm: Comm = SINGLE,
    ) -> torch.Tensor:
        """Best of ``n_init`` seedings, judged on a validation sample of ``init_size`` rows."""
        source = prepared.source
        init = resolve_init(self.init, prepared, k)
        size = self._init_size(source.n_total, k)
        shift = mean if prepared.metric == "euclidean" else None
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
                centers = init_centers(
                    seeds, k, init, generator, metric=prepared.metric, shift=shift
                )
            else:
                centers = init_centers(
                    source,
                    k,
                    init,
                    generator,
                    metric=prepared.metric,
                    shift=shift,
                    init_size=size if partial else None,
                    comm=comm,
                )
            inertia = _reduced(assign_labels(valid, centers, prepared.metric)[1], comm)
            if best is None or inertia < best_inertia:
                best, best_inertia = centers, inertia
        assert best is not None
        return best

    # ------------------------------------------------------------------------------- fit

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centers with mini-batch steps over X (any container KMeans accepts).

        With ``distributed=True`` every rank passes its shard; each step's batch is drawn from
        every shard in proportion to its rows and its statistics are SUM-reduced, so every rank
        ends with the same centers.
        """
        comm = get_comm(check_param("distributed", self.distributed))

        def setup() -> tuple[Any, ...]:
            p = self._check_params()
            generator = make_generator(p["random_state"])
            prepared = self._prepare_fit(X, sample_weight, p, comm.distributed)
            return p, generator, prepared

        p, generator, prepared = agree(comm, setup)
        k = p["n_clusters"]
        source = prepared.source
        if comm.distributed:
            agree(comm, lambda: join_shards(comm, prepared, generator))
        n = source.n_total
        agree(comm, lambda: v.check_n_samples(n, k))
        # Row counts enter the reassignment and smoothing rules as weight totals (the same for
        # unweighted data), so that a weight of n acts as n repeated rows.
        mean, variance, total = data_moments(source, prepared.metric, comm)
        centers = self._seed(prepared, k, p["n_init"], generator, mean, comm)
        tol = p["tol"] * variance
        state = MiniBatchState(centers, torch.zeros(k, dtype=torch.float64, device=source.device))
        batch_size = min(p["batch_size"], n)
        workspace = Workspace(source.chunk_size, k, source.dtype, source.device)
        n_steps = (p["max_iter"] * n) // batch_size
        progress = None
        if p["verbose"] and comm.is_main:
            from tqdm.auto import tqdm

            progress = tqdm(total=n_steps, desc="mini-batch k-means", leave=False)
        step = 0
        try:
            for step, batch in zip(range(n_steps), _batches(source, batch_size, generator, comm)):
                rows = _batch_weight(batch, comm)
                inertia, old = self._step(
                    batch, state, generator, prepared.metric, rows, workspace, comm
                )
                shift = 0.0
                if tol > 0.0:
                    shift = float(((state.centers - old).to(torch.float64) ** 2).sum())
                if progress is not None:
                    progress.update(1)
                if self._converged(state, step, total, rows, shift, tol, inertia):
                    break
        finally:
            if progress is not None:
                progress.close()
        self.n_steps_ = step + 1 if n_steps else 0
        self.n_iter_ = int(math.ceil(self.n_steps_ * batch_size / n))
        self._rng_state = generator.get_state()
        self._since_reassign = state.since_reassign
        self._finish(prepared, state, X_is_training=True, comm=comm)
        return self

    def _step(
        self,
        batch: TensorSource,
        state: MiniBatchState,
        generator: torch.Generator,
        metric: str,
        rows: float,
        workspace: Workspace,
        comm: Comm = SINGLE,
    ) -> tuple[float, torch.Tensor]:
        """One mini-batch step, reassigning starved centers when the rule says so."""
        reassign = self._random_reassign(state, rows, int(state.centers.shape[0]))
        return minibatch_step(
            batch,
            state,
            generator,
            metric=metric,
            reassign=reassign,
            reassignment_ratio=float(self.reassignment_ratio),
            workspace=workspace,
            comm=comm,
        )

    def _random_reassign(self, state: MiniBatchState, rows: float, k: int) -> bool:
        state.since_reassign += rows
        if bool((state.counts == 0).any()) or state.since_reassign >= 10 * k:
            state.since_reassign = 0
            return True
        return False

    def _converged(
        self,
        state: MiniBatchState,
        step: int,
        n: float,
        batch_rows: float,
        shift: float,
        tol: float,
        inertia: float,
    ) -> bool:
        """scikit-learn's early stopping: tol on the center change, or no improvement of the
        exponentially weighted average of the per-row batch inertia."""
        inertia /= batch_rows
        if step == 0:  # the first step's inertia is from the seeding
            return False
        if state.ewa_inertia is None:
            state.ewa_inertia = inertia
        else:
            alpha = min(1.0, batch_rows * 2.0 / (n + 1))
            state.ewa_inertia = state.ewa_inertia * (1 - alpha) + inertia * alpha
        if tol > 0.0 and shift <= tol:
            return True
        if state.ewa_inertia_min is None or state.ewa_inertia < state.ewa_inertia_min:
            state.no_improvement = 0
            state.ewa_inertia_min = state.ewa_inertia
        else:
            state.no_improvement += 1
        mni = self.max_no_improvement
        return mni is not None and state.no_improvement >= mni

    def _finish(
        self,
        prepared: Prepared,
        state: MiniBatchState,
        X_is_training: bool,
        comm: Comm = SINGLE,
    ) -> None:
        kind = prepared.checked.kind
        source = prepared.source
        self._state_counts = state.counts.cpu()
        self.cluster_centers_ = kind.wrap(state.centers.to(prepared.out_dtype))
        self.n_features_in_ = int(source.n_features)
        self._n_features_out = int(state.centers.shape[0])
        names = prepared.checked.feature_names
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if self.compute_labels:
            centers = state.centers.to(prepared.out_dtype).to(source.dtype)
            labels, inertia = assign_labels(source, centers, prepared.metric)
            self.labels_ = kind.wrap(labels)
            self.inertia_ = _reduced(float(inertia), comm)
        elif X_is_training and state.ewa_inertia is not None:
            self.inertia_ = float(state.ewa_inertia * source.n_total)

    # ------------------------------------------------------------------------ partial_fit

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centers with one mini-batch step on X (the first call also seeds)."""
        first = not hasattr(self, "cluster_centers_")
        # later steps keep the dtype of the centers, as predict does
        p = self._check_params() if first else self._check_params("dtype")
        k = p["n_clusters"]
        if first:
            generator = make_generator(p["random_state"])
            prepared = self._prepare_fit(X, sample_weight, p)
            v.check_n_samples(prepared.source.n_samples, k)
            mean, _, _ = data_moments(prepared.source, prepared.metric)
            centers = self._seed(prepared, k, p["n_init"], generator, mean)
            state = MiniBatchState(
                centers, torch.zeros(k, dtype=torch.float64, device=prepared.source.device)
            )
            self.n_steps_ = 0
        else:
            prepared, centers_t = self._prepare_new_data(X, sample_weight, p)
            src = prepared.source
            generator = make_generator(p["random_state"])
            if hasattr(self, "_rng_state"):
                generator.set_state(self._rng_state)
            counts = getattr(self, "_state_counts", None)
            if counts is None:  # centers set without a fit: treat every center as seen once
                counts = torch.ones(k, dtype=torch.float64)
            state = MiniBatchState(
                centers_t,
                torch.as_tensor(counts, dtype=torch.float64).to(src.device),
                since_reassign=getattr(self, "_since_reassign", 0),
            )
            if not hasattr(self, "n_steps_"):
                self.n_steps_ = 0
        source = prepared.source
        batch = (
            source
            if isinstance(source, TensorSource)
            else source.sample(torch.arange(source.n_samples))
        )
        workspace = Workspace(source.chunk_size, k, source.dtype, source.device)
        self._step(batch, state, generator, prepared.metric, _batch_weight(batch), workspace)
        self._rng_state = generator.get_state()
        self._since_reassign = state.since_reassign
        self.n_steps_ += 1
        self._finish(prepared, state, X_is_training=False)
        return self
