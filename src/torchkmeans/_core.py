"""The functional k-means loop: initialize, iterate Lloyd steps, converge, pick the best run.

Prior validation of data is assumed: the caller passes a source and checked
parameters. Nothing here inspects user input or prints; per-iteration statistics are returned
as data and logged at DEBUG level.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._bounds import Bounds, Workspace
from ._checkpoint import BestRun, Checkpoint, FitState, data_fingerprint
from ._distance import PreparedCenters, prepare_rows
from ._distributed import SINGLE, Comm
from ._engines._constants import LOOP_CALL
from ._engines._kernels import Mode, Status
from ._engines.dispatch import engine_for
from ._engines.torch_engine import WholeLoop
from ._init import kmeans_parallel_, kmeans_plusplus_, random_rows_
from ._progress import Progress
from ._relocation import relocate_empty_clusters
from ._sources import Source, TensorSource, sample_indices
from ._statistics import LloydStats, accumulation_dtype
from .exceptions import ConvergenceWarning, DataError

logger = logging.getLogger(__name__)

_INERTIA_RTOL = 1e-10
# Skip rows whose nearest center provably did not change (exact: same results either way).
PRUNE = True

# An init is a name, explicit centers, or a function of the generator that returns centers
# (the public boundary wraps user callables into the latter).
InitSpec = str | torch.Tensor | Callable[[torch.Generator], torch.Tensor]


@dataclass
class FitResult:
    """Outcome of the best run, with tensors on the compute device."""

    centers: torch.Tensor
    labels: torch.Tensor
    inertia: float
    n_iter: int
    history: list[dict[str, Any]] = field(default_factory=list)
    n_nonempty: int = 0
    # (K,) weighted inertia of each cluster against ``centers``, when the run computed it
    cluster_inertia: torch.Tensor | None = None


def data_moments(
    source: Source, metric: str, comm: Comm = SINGLE
) -> tuple[torch.Tensor, float, float]:
    """Weighted mean of the (prepared) rows, the mean over features of their variance, and the
    total weight (the number of rows when unweighted).

    One pass; sums are shifted by the first row (sparse rows: not shifted) and accumulated in
    float64 in row order. Across ranks, the per-shard weights, means and squared deviations are
    combined (Chan et al.'s pairwise formula, in rank order, identically on every rank).
    """
    d = source.n_features
    s1 = torch.zeros(1, d, dtype=torch.float64, device=source.device)
    s2 = torch.zeros(1, d, dtype=torch.float64, device=source.device)
    total = torch.zeros(1, dtype=torch.float64, device=source.device)
    engine = engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    try:
        first64, failure = engine.moment_sums(source, metric, s1, s2, total), None
    except Exception as exc:  # on one rank of many: join the collective, then raise
        if not comm.distributed:
            raise
        first64, failure = None, exc
    if comm.distributed:
        return _combine_moments(source, s1[0], s2[0], total, first64, comm, failure)
    assert first64 is not None
    mean_shift = s1[0] / total
    variance = (s2[0] / total - mean_shift * mean_shift).clamp_min(0.0)
    mean = (first64 + mean_shift).to(source.dtype)
    return mean, float(variance.mean()), float(total[0])


def _combine_moments(
    source: Source,
    s1: torch.Tensor,
    s2: torch.Tensor,
    total: torch.Tensor,
    first64: torch.Tensor | None,
    comm: Comm,
    failure: Exception | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Chan's pairwise combination of the shards' moments, in one all_gather that also
    carries a failure flag: a rank whose pass raised makes every rank raise here."""
    d = source.n_features
    w = total.clone()
    if first64 is None or not bool(w[0] > 0):
        local = torch.zeros(1 + 2 * d, dtype=torch.float64, device=s1.device)
    else:
        mean_shift = s1 / w
        mean = first64 + mean_shift
        m2 = (s2 - s1 * mean_shift).clamp_min(0.0)  # sum of w * (x - mean)^2
        local = torch.cat([w, mean, m2])
    flag = torch.full((1,), float(failure is not None), dtype=torch.float64, device=s1.device)
    gathered = comm.all_gather(torch.cat([local, flag]))
    if failure is not None:
        raise failure
    failed = sum(int(q[-1]) for q in gathered)
    if failed:
        raise DataError(
            f"{failed} other rank(s) failed while reading their data for its mean and variance "
            "(the error is reported on that rank). Every rank stops here."
        )
    parts = [q[:-1] for q in gathered]
    w_all = torch.stack([q[0] for q in parts])
    total_w = w_all.sum()
    mean = torch.stack([q[0] * q[1 : 1 + d] for q in parts]).sum(dim=0) / total_w
    m2 = torch.stack([q[1 + d :] + q[0] * (q[1 : 1 + d] - mean) ** 2 for q in parts]).sum(dim=0)
    variance = (m2 / total_w).clamp_min(0.0)
    return mean.to(source.dtype), float(variance.mean()), float(total_w)


def seeding_shift(source: Source, metric: str, mean: torch.Tensor) -> torch.Tensor | None:
    """The shift of seeding's distances: the data's mean (Euclidean), zero for sparse rows
    (never shifted), None for cosine."""
    if metric != "euclidean":
        return None
    return torch.zeros_like(mean) if source.sparse else mean


def init_centers(
    source: Source,
    n_clusters: int,
    init: InitSpec,
    generator: torch.Generator,
    *,
    metric: str,
    shift: torch.Tensor | None,
    init_size: int | None = None,
    comm: Comm = SINGLE,
) -> torch.Tensor:
    """Initial centers in the compute dtype on the device (cosine: unit length).

    With ``init_size`` below the number of rows, "k-means++" and "random" run on that many rows
    drawn uniformly without replacement (with their weights), gathered in one pass.
    """
    if isinstance(init, str):
        seeds: Source = source
        if init_size is not None and init_size < source.n_total:
            seeds = _sample_shard(source, sample_indices(source.n_total, init_size, generator))
        elif not isinstance(source, TensorSource):  # no random access: read the rows once
            seeds = _sample_shard(source, torch.arange(source.n_total))
        assert isinstance(seeds, TensorSource)
        if init == "k-means++":
            centers, _ = kmeans_plusplus_(
                seeds, n_clusters, generator, metric=metric, shift=shift, comm=comm
            )
        elif init == "k-means||":
            centers = kmeans_parallel_(
                seeds, n_clusters, generator, metric=metric, shift=shift, comm=comm
            )
        else:
            centers, _ = random_rows_(seeds, n_clusters, generator, metric, comm=comm)
    elif isinstance(init, torch.Tensor):
        centers = comm.broadcast_(init.clone())  # rank 0's centers, should ranks differ
    else:
        centers = init(generator)
        if comm.distributed:
            centers = comm.broadcast_(
                centers.to(device=source.device, dtype=source.dtype).contiguous()
            )
    centers = centers.to(device=source.device, dtype=source.dtype)
    if metric == "cosine":
        centers = prepare_rows(centers, "cosine", None)
    return centers


def _sample_shard(source: Source, index: torch.Tensor) -> TensorSource:
    """This shard's part of a sample drawn by global row index (every rank draws the same)."""
    local = index[(index >= source.offset) & (index < source.offset + source.n_samples)]
    sample = source.sample(local - source.offset)
    sample.n_total = int(index.numel())
    sample.offset = int((index < source.offset).sum())
    return sample


# Called after every iteration with (iteration, centers used, new centers, history, stopped).
IterationHook = Callable[[int, torch.Tensor, torch.Tensor, list[dict[str, Any]], bool], None]


def lloyd_(
    source: Source,
    centers: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    metric: str,
    labels: torch.Tensor,
    workspace: Workspace,
    progress: Progress | None = None,
    bounds: Bounds | None = None,
    start: int = 0,
    history: list[dict[str, Any]] | None = None,
    on_iteration: IterationHook | None = None,
    comm: Comm = SINGLE,
) -> tuple[torch.Tensor, int, list[dict[str, Any]]]:
    """Lloyd iterations from ``centers`` until strict convergence, ``tol`` or ``max_iter``.

    ``tol`` is absolute here: the run stops when the squared center shift summed over centers
    is ``<= tol``, or when no label changed and no cluster was refilled. Returns
    ``(centers, n_iter, history)``; ``labels`` holds the labels of the last pass. ``labels``
    must hold the labels of the previous pass (or -1 before the first). ``start`` iterations
    (recorded in ``history``) are already done when a fit resumes.
    """
    history = [] if history is None else history
    engine = engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    loop = engine.whole_loop(source, centers.shape[0], metric, labels, workspace, bounds, comm)
    if loop is not None:
        return _lloyd_native(
            loop,
            centers,
            max_iter=max_iter,
            tol=tol,
            progress=progress,
            start=start,
            history=history,
            on_iteration=on_iteration,
        )
    n_iter = start
    for it in range(start, max_iter):
        t0 = time.perf_counter()
        pc = engine.prepare_centers(centers, metric, sparse=source.sparse)
        stats = _pass_or_report(
            functools.partial(engine.accumulate, source, pc, labels, workspace, bounds=bounds),
            source,
            pc.n_clusters,
            comm,
            f"iteration {it + 1}",
        )
        relocated = relocate_empty_clusters(stats, source, pc, workspace, comm, labels)
        new, shift, largest, inertia = engine.update(stats, pc)
        if bounds is not None:
            bounds.age(largest)
        changed = int(stats.changed)
        _record(
            history, progress, it + 1, inertia, shift, changed, relocated, time.perf_counter() - t0
        )
        stop = (changed == 0 and relocated == 0) or shift <= tol  # strict convergence, or tol
        if on_iteration is not None:
            on_iteration(it + 1, centers, new, history, stop or it + 1 == max_iter)
        centers = new
        n_iter = it + 1
        if stop:
            break
    return centers, n_iter, history


def _record(
    history: list[dict[str, Any]],
    progress: Progress | None,
    iteration: int,
    inertia: float,
    shift: float,
    changed: int,
    relocated: int,
    seconds: float,
) -> None:
    """Append one iteration to the history, log it and report it (``verbose``)."""
    record = {
        "iteration": iteration,
        "inertia": inertia,
        "center_shift": shift,
        "n_changed": changed,
        "n_relocated": relocated,
        "seconds": seconds,
    }
    history.append(record)
    logger.debug(
        "iteration %(iteration)d: inertia %(inertia).6g shift %(center_shift).3g "
        "changed %(n_changed)d relocated %(n_relocated)d",
        record,
    )
    if progress is not None:
        progress.iteration(iteration, inertia)


def _lloyd_native(
    loop: WholeLoop,
    centers: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    progress: Progress | None,
    start: int,
    history: list[dict[str, Any]],
    on_iteration: IterationHook | None,
) -> tuple[torch.Tensor, int, list[dict[str, Any]]]:
    """:func:`lloyd_` through an engine's whole-loop runner (the native engine's
    :class:`~torchkmeans._engines.native_engine.NativeLoop`): all iterations in one call, or
    one per call when ``on_iteration`` must see each (checkpoints); the arithmetic is the same either way."""
    centers = centers.clone(memory_format=torch.contiguous_format)
    it, mode, given = start, Mode.ITERATE, (0, 0)
    while it < max_iter:
        used = centers.clone() if on_iteration is not None else None
        # (at most LOOP_CALL iterations per call: the history buffer stays small)
        steps = 1 if on_iteration is not None else min(max_iter - it, LOOP_CALL)
        done, status, hist = loop.run(centers, mode, steps, tol, given)
        mode, given = Mode.ITERATE, (0, 0)
        for row in hist[:done].tolist():
            it += 1
            _record(history, progress, it, row[0], row[1], int(row[2]), int(row[3]), row[4])
        if on_iteration is not None and done:
            assert used is not None
            stopped = status == Status.STOPPED or it == max_iter
            on_iteration(it, used, centers.clone(), history, stopped)
        if status == Status.STOPPED:
            break
        if status == Status.EMPTY:  # the pass of iteration it + 1 left clusters empty: refill
            mode, given = Mode.FINISH, (int(hist[done, 2]), loop.relocate(centers))
    return centers, it, history


def final_pass(
    source: Source,
    centers: torch.Tensor,
    metric: str,
    labels: torch.Tensor,
    workspace: Workspace,
    bounds: Bounds | None = None,
    comm: Comm = SINGLE,
) -> LloydStats:
    """Assign every row to ``centers`` (labels agree with predict); no center update."""
    engine = engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    loop = engine.whole_loop(source, centers.shape[0], metric, labels, workspace, bounds, comm)
    if loop is not None:
        return loop.assign(centers)
    pc = PreparedCenters(centers, metric, None, sparse=source.sparse)
    return _pass_or_report(
        lambda: engine.accumulate(source, pc, labels, workspace, update=False, bounds=bounds),
        source,
        pc.n_clusters,
        comm,
        "the final assignment pass",
    )


def _pass_or_report(
    run_pass: Callable[[], LloydStats], source: Source, k: int, comm: Comm, where: str
) -> LloydStats:
    """Run a pass and SUM its statistics over ranks. In a distributed fit, a rank whose pass
    raises (its loader failed, say) still joins the reduction with a failure flag, so every
    rank stops at this collective: that rank with its own error, the others with a DataError
    naming what happened, instead of waiting for the process-group timeout."""
    try:
        stats, failure = run_pass(), None
    except Exception as exc:
        if not comm.distributed:
            raise
        acc = accumulation_dtype(source.dtype, source.device)
        stats, failure = LloydStats.zeros(k, source.n_features, acc, source.device), exc
    failed = stats.reduce_(comm, failed=failure is not None)
    if failure is not None:
        raise failure
    if failed:
        raise DataError(
            f"{failed} other rank(s) failed during {where} (their data source raised; the "
            "error is reported on that rank). Every rank stops here."
        )
    return stats


def fit(
    source: Source,
    n_clusters: int,
    *,
    init: InitSpec,
    n_init: int,
    max_iter: int,
    tol: float,
    metric: str,
    generator: torch.Generator,
    out_dtype: torch.dtype,
    verbose: int = 0,
    init_size: int | None = None,
    checkpoint: Checkpoint | None = None,
    comm: Comm = SINGLE,
    warn_empty: bool = True,
) -> FitResult:
    """Run ``n_init`` k-means fits and return the one with the lowest inertia.

    ``tol`` is relative to the mean feature variance of the (weighted) data. The centers of each
    run are rounded to ``out_dtype`` (the dtype of the fitted attributes) before the final
    assignment pass, so ``labels`` and ``inertia`` describe the centers the user gets.
    With ``checkpoint``, the state is saved after every iteration and a matching saved state is
    resumed from; the result is the same, bit for bit, as without interruption.
    """
    mean, variance, _ = data_moments(source, metric, comm)
    tol_abs = tol * variance
    engine = engine_for(source.device, source.dtype, metric, sparse=source.sparse)
    workspace = engine.workspace(source, n_clusters)
    labels = torch.empty(source.n_samples, dtype=torch.long, device=source.device)
    # (sparse passes are dominated by per-value work that bounds cannot skip; measured slower
    # with them, they run unpruned)
    use_bounds = PRUNE and not source.sparse and Bounds.affordable(source)
    shift = seeding_shift(source, metric, mean)
    best: FitResult | None = None
    best_run = -1
    resume: FitState | None = None
    if checkpoint is not None:
        resume = checkpoint.load(
            data_fingerprint(
                source.n_total, source.n_features, source.dtype, source.weighted, mean, variance
            ),
            source.n_features,
        )
    first_run = 0
    if resume is not None:
        logger.info(
            "resuming from %s: run %d, iteration %d",
            checkpoint.path if checkpoint else "",
            resume.run + 1,
            resume.iteration,
        )
        generator.set_state(resume.rng_state)
        first_run = resume.run
        if resume.best is not None:
            b = resume.best
            best_run = b.run
            best = FitResult(
                centers=b.centers.to(device=source.device, dtype=source.dtype),
                labels=labels,
                inertia=b.inertia,
                n_iter=b.n_iter,
                history=b.history,
                n_nonempty=b.n_nonempty,
            )
    for run in range(first_run, n_init):
        start, history, stopped = 0, None, False
        if resume is not None and run == resume.run:
            centers = resume.centers.to(device=source.device, dtype=source.dtype)
            start, history, stopped = resume.iteration, resume.history, resume.stopped
            labels.fill_(-1)
            if resume.previous is not None:
                # the labels of the last pass before the interruption, for the change count
                previous = resume.previous.to(device=source.device, dtype=source.dtype)
                final_pass(source, previous, metric, labels, workspace, comm=comm)
        else:
            centers = init_centers(
                source,
                n_clusters,
                init,
                generator,
                metric=metric,
                shift=shift,
                init_size=init_size,
                comm=comm,
            )
            labels.fill_(-1)
        hook = None
        if checkpoint is not None and comm.is_main:  # one writer: rank 0
            hook = _checkpoint_hook(checkpoint, run, generator, best, best_run)
            if start == 0:
                hook(0, centers, centers, [], False)
        progress = Progress(bool(verbose) and comm.is_main)
        progress.initialized()
        bounds = Bounds(source.n_samples, source.device) if use_bounds else None
        centers, n_iter, history = lloyd_(
            source,
            centers,
            max_iter=start if stopped else max_iter,
            tol=tol_abs,
            metric=metric,
            labels=labels,
            workspace=workspace,
            progress=progress,
            bounds=bounds,
            start=start,
            history=history,
            on_iteration=hook,
            comm=comm,
        )
        progress.run_finished(history, tol_abs)
        rounded = centers.to(out_dtype).to(source.dtype)
        if bounds is not None:
            bounds.moved(centers, rounded)
        centers = rounded
        stats = final_pass(source, centers, metric, labels, workspace, bounds, comm=comm)
        inertia = float(stats.inertia.sum())
        logger.info("run %d/%d: inertia %.6g after %d iterations", run + 1, n_init, inertia, n_iter)
        # A later run must be clearly better: equal inertias (symmetric solutions) differ only
        # in rounding, which depends on row order, and must not decide.
        if best is None or inertia < best.inertia - _INERTIA_RTOL * abs(best.inertia):
            best_run = run
            best = FitResult(
                centers=centers,
                labels=labels,
                inertia=inertia,
                n_iter=n_iter,
                history=history,
                n_nonempty=int((stats.counts > 0).sum()),
                cluster_inertia=stats.inertia.clone(),
            )
    assert best is not None
    if best_run != n_init - 1:
        final_pass(source, best.centers, metric, labels, workspace, comm=comm)
        best.labels = labels
    if checkpoint is not None:
        comm.barrier()  # every rank has read the checkpoint before rank 0 removes it
        if comm.is_main:
            checkpoint.remove()
        comm.barrier()  # and no rank returns before it is gone
    if warn_empty and best.n_nonempty < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({best.n_nonempty}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X, or fewer rows "
            "of positive weight than clusters.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return best


def _checkpoint_hook(
    checkpoint: Checkpoint,
    run: int,
    generator: torch.Generator,
    best: FitResult | None,
    best_run: int,
) -> IterationHook:
    """Save the state of run ``run`` after each of its iterations."""
    best_saved = None
    if best is not None:
        best_saved = BestRun(
            run=best_run,
            centers=best.centers,
            inertia=best.inertia,
            n_iter=best.n_iter,
            history=best.history,
            n_nonempty=best.n_nonempty,
        )

    def save(
        iteration: int,
        used: torch.Tensor,
        new: torch.Tensor,
        history: list[dict[str, Any]],
        stopped: bool,
    ) -> None:
        checkpoint.save(
            FitState(
                run=run,
                iteration=iteration,
                stopped=stopped,
                centers=new,
                previous=used if iteration > 0 else None,
                history=history,
                rng_state=generator.get_state(),
                best=best_saved,
            )
        )

    return save
