"""The functional k-means loop: initialize, iterate Lloyd steps, converge, pick the best run.

Prior validation of data is assumed: the caller passes a :class:`TensorSource` and checked
parameters. Nothing here inspects user input or prints; per-iteration statistics are returned
as data and logged at DEBUG level.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._distance import PreparedCenters, prepare_rows
from ._init import kmeans_plusplus_, random_rows_
from ._lloyd import (
    Bounds,
    LloydStats,
    Workspace,
    accumulate,
    finalize,
    relocate_empty_clusters,
)
from ._sources import TensorSource
from .exceptions import ConvergenceWarning

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


def data_moments(source: TensorSource, metric: str) -> tuple[torch.Tensor, float]:
    """Weighted mean of the (prepared) rows and the mean over features of their variance.

    One pass; sums are shifted by the first row and accumulated in float64 in row order.
    """
    first = prepare_rows(source.rows(torch.zeros(1, dtype=torch.long)), metric, None)[0]
    first64 = first.to(torch.float64)
    d = source.n_features
    s1 = torch.zeros(1, d, dtype=torch.float64, device=source.device)
    s2 = torch.zeros(1, d, dtype=torch.float64, device=source.device)
    total = torch.zeros(1, dtype=torch.float64, device=source.device)
    zero = torch.zeros(source.chunk_size, dtype=torch.long, device=source.device)
    for chunk in source.chunks():
        m = chunk.x.shape[0]
        y = prepare_rows(chunk.x, metric, None).to(torch.float64) - first64
        w = (
            torch.ones(m, dtype=torch.float64, device=source.device)
            if chunk.w is None
            else chunk.w.to(torch.float64)
        )
        total.index_add_(0, zero[:m], w)
        s1.index_add_(0, zero[:m], y * w[:, None])
        s2.index_add_(0, zero[:m], y * y * w[:, None])
    mean_shift = s1[0] / total
    variance = (s2[0] / total - mean_shift * mean_shift).clamp_min(0.0)
    mean = (first64 + mean_shift).to(source.dtype)
    return mean, float(variance.mean())


def init_centers(
    source: TensorSource,
    n_clusters: int,
    init: InitSpec,
    generator: torch.Generator,
    *,
    metric: str,
    shift: torch.Tensor | None,
) -> torch.Tensor:
    """Initial centers in the compute dtype on the device (cosine: unit length)."""
    if isinstance(init, str):
        if init == "k-means++":
            centers, _ = kmeans_plusplus_(source, n_clusters, generator, metric=metric, shift=shift)
        else:
            centers, _ = random_rows_(source, n_clusters, generator, metric)
    elif isinstance(init, torch.Tensor):
        centers = init
    else:
        centers = init(generator)
    centers = centers.to(device=source.device, dtype=source.dtype)
    if metric == "cosine":
        centers = prepare_rows(centers, "cosine", None)
    return centers


def lloyd_(
    source: TensorSource,
    centers: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    metric: str,
    labels: torch.Tensor,
    workspace: Workspace,
    progress: Any = None,
    bounds: Bounds | None = None,
) -> tuple[torch.Tensor, int, list[dict[str, Any]]]:
    """Lloyd iterations from ``centers`` until strict convergence, ``tol`` or ``max_iter``.

    ``tol`` is absolute here: the run stops when the squared center shift summed over centers
    is ``<= tol``, or when no label changed and no cluster was refilled. Returns
    ``(centers, n_iter, history)``; ``labels`` holds the labels of the last pass.
    """
    labels.fill_(-1)
    history: list[dict[str, Any]] = []
    n_iter = 0
    for it in range(max_iter):
        t0 = time.perf_counter()
        pc = PreparedCenters(centers, metric, None)
        stats = accumulate(source, pc, labels, workspace, bounds=bounds)
        relocated = relocate_empty_clusters(stats, source, pc, workspace)
        new = finalize(stats, pc)
        if bounds is not None:
            bounds.moved(centers, new)
        shift = float(((new - centers).to(torch.float64) ** 2).sum())
        changed = int(stats.changed)
        record = {
            "iteration": it + 1,
            "inertia": float(stats.inertia.sum()),
            "center_shift": shift,
            "n_changed": changed,
            "n_relocated": relocated,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        logger.debug(
            "iteration %(iteration)d: inertia %(inertia).6g shift %(center_shift).3g "
            "changed %(n_changed)d relocated %(n_relocated)d",
            record,
        )
        if progress is not None:
            progress.update(1)
            progress.set_postfix(inertia=f"{record['inertia']:.6g}", shift=f"{shift:.3g}")
        centers = new
        n_iter = it + 1
        if changed == 0 and relocated == 0:
            break  # strict convergence
        if shift <= tol:
            break
    return centers, n_iter, history


def final_pass(
    source: TensorSource,
    centers: torch.Tensor,
    metric: str,
    labels: torch.Tensor,
    workspace: Workspace,
    bounds: Bounds | None = None,
) -> LloydStats:
    """Assign every row to ``centers`` (labels agree with predict); no center update."""
    pc = PreparedCenters(centers, metric, None)
    return accumulate(source, pc, labels, workspace, update=False, bounds=bounds)


def fit(
    source: TensorSource,
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
) -> FitResult:
    """Run ``n_init`` k-means fits and return the one with the lowest inertia.

    ``tol`` is relative to the mean feature variance of the (weighted) data. The centers of each
    run are rounded to ``out_dtype`` (the dtype of the fitted attributes) before the final
    assignment pass, so ``labels`` and ``inertia`` describe the centers the user gets.
    """
    mean, variance = data_moments(source, metric)
    tol_abs = tol * variance
    workspace = Workspace(source.chunk_size, n_clusters, source.dtype, source.device)
    labels = torch.empty(source.n_samples, dtype=torch.long, device=source.device)
    use_bounds = PRUNE and Bounds.affordable(source)
    best: FitResult | None = None
    best_run = -1
    for run in range(n_init):
        centers = init_centers(
            source,
            n_clusters,
            init,
            generator,
            metric=metric,
            shift=mean if metric == "euclidean" else None,
        )
        progress = None
        if verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=max_iter, desc=f"k-means run {run + 1}/{n_init}", leave=False)
        bounds = Bounds(source.n_samples, source.device) if use_bounds else None
        try:
            centers, n_iter, history = lloyd_(
                source,
                centers,
                max_iter=max_iter,
                tol=tol_abs,
                metric=metric,
                labels=labels,
                workspace=workspace,
                progress=progress,
                bounds=bounds,
            )
        finally:
            if progress is not None:
                progress.close()
        rounded = centers.to(out_dtype).to(source.dtype)
        if bounds is not None:
            bounds.moved(centers, rounded)
        centers = rounded
        stats = final_pass(source, centers, metric, labels, workspace, bounds)
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
            )
    assert best is not None
    if best_run != n_init - 1:
        final_pass(source, best.centers, metric, labels, workspace)
    if best.n_nonempty < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({best.n_nonempty}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X, or fewer rows "
            "of positive weight than clusters.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return best
