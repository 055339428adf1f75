"""Many problems of one shape, fitted together by the native kernels (``tk_moments_many``,
``tk_fit_many``): the CPU engine of :func:`torchkmeans.kmeans_batched` for dense Euclidean
problems.

Each problem gets the arithmetic of the single-problem fit on the native engine (the data
moments and the tolerance, greedy k-means++ with the problem's own draws, the Lloyd loop with
Hamerly's bounds, the final assignment pass), on one thread, while the threads share out the
problems; so problem ``b`` equals ``kmeans(X[b], ...)`` bit for bit, and nothing in the loop
over problems or iterations is Python's. A problem whose pass leaves a cluster empty stops with
its state kept; its empty clusters are refilled here, by the single-problem fit's own
:func:`~torchkmeans._relocation.relocate_empty_clusters`, and the kernel resumes it. Prior
validation of data is assumed: ``x`` is a contiguous (B, N, D) CPU tensor of float32 or float64, ``w`` (B, N) of
the same dtype or None.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from .. import _init
from .._bounds import Bounds, Workspace
from .._core import PRUNE
from .._distributed import SINGLE
from .._relocation import relocate_empty_clusters
from .._sources import TensorSource
from .._statistics import LloydStats
from . import _kernels
from ._constants import BATCH_NO_MEMORY, BATCH_REFILL, EXACT_MAX_D, STRIPE_ROWS
from .dispatch import NATIVE
from .native_engine import KPP_THREAD_WORK, fused_stripes

# Clusters from which the per-problem inertia is summed problem by problem (see fit_many).
_ROW_SUM_K = 4096


class BatchFit(NamedTuple):
    """What :func:`fit_many` returns (CPU tensors, one entry per problem along dim 0)."""

    centers: torch.Tensor  # (B, K, D), the compute dtype
    labels: torch.Tensor  # int64, every problem's labels one after the other (sum of N_b,)
    inertia: torch.Tensor  # (B,) float64: the final pass's inertia, summed over clusters
    counts: torch.Tensor  # (B, K) float64: rows of positive weight per cluster
    n_iter: torch.Tensor  # (B,) int64


def tolerances(problems: _kernels.Problems, w: torch.Tensor | None, tol: float) -> torch.Tensor:
    """Each problem's absolute tolerance: ``tol`` times the mean over features of its
    (weighted) variance, computed as :func:`torchkmeans._core.data_moments` does."""
    count, d = problems.count, problems.d
    first = torch.empty(count, d, dtype=torch.float64)
    s1 = torch.zeros(count, d, dtype=torch.float64)
    s2 = torch.zeros(count, d, dtype=torch.float64)
    total = torch.zeros(count, dtype=torch.float64)
    _kernels.moments_many(problems=problems, w=w, first=first, s1=s1, s2=s2, total=total)
    mean_shift = s1 / total[:, None]
    variance = (s2 / total[:, None] - mean_shift * mean_shift).clamp_min(0.0)
    return variance.mean(dim=1) * tol


def _decisions(xs: list[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each problem's bounds and stripe decisions, as the single fit takes them for its size
    (taken once per distinct row count)."""
    seen: dict[int, tuple[int, int]] = {}
    bounds, stripe = [], []
    for x in xs:
        n = int(x.shape[0])
        if n not in seen:
            source = TensorSource(x, None, device=torch.device("cpu"), dtype=x.dtype, chunk_size=n)
            use = PRUNE and Bounds.affordable(source)
            seen[n] = (int(use), STRIPE_ROWS if fused_stripes(source, k) else 0)
        bounds.append(seen[n][0])
        stripe.append(seen[n][1])
    return torch.tensor(bounds, dtype=torch.int64), torch.tensor(stripe, dtype=torch.int64)


def fit_many(
    xs: list[torch.Tensor],
    ws: list[torch.Tensor] | None,
    n_clusters: int,
    *,
    centers: torch.Tensor | None,
    generators: list[torch.Generator] | None,
    tol: float,
    max_iter: int,
) -> BatchFit:
    """Fit every problem (``xs``: contiguous (N_b, D) CPU tensors of one dtype; ``ws``: their
    weights in that dtype, or None) from ``centers`` (B, K, D) when given, else by k-means++
    with each problem's generator drawing what the single-problem fit draws."""
    problems = _kernels.Problems(xs)
    count, d, k, dtype = problems.count, problems.d, n_clusters, problems.dtype
    w = None if ws is None else torch.cat(ws).contiguous()
    tol_abs = tolerances(problems, w, tol)
    u = None
    trials = 2 + int(math.log(k))
    if centers is None:
        assert generators is not None and len(generators) == count
        draws = 1 + (k - 1) * trials
        u = torch.stack([_init.uniform(g, draws, torch.device("cpu")) for g in generators])
        out = torch.empty(count, k, d, dtype=dtype)
    else:
        out = centers.to(dtype).contiguous().clone()
    bounds, stripe = _decisions(xs, k)
    n_all = problems.total
    state: dict[str, torch.Tensor | None] = {
        "labels": torch.empty(n_all, dtype=torch.int64),
        "dist": torch.empty(n_all, dtype=dtype),
        "lower": torch.empty(n_all, dtype=torch.float64) if bool(bounds.any()) else None,
        "drift": torch.zeros(count, dtype=torch.float64),
        "valid": torch.zeros(count, dtype=torch.int64),
        "sums": torch.zeros(count, k, d, dtype=torch.float64),
        "weights": torch.zeros(count, k, dtype=torch.float64),
        "counts": torch.zeros(count, k, dtype=torch.float64),
        "inertia": torch.zeros(count, k, dtype=torch.float64),
        "changed": torch.zeros(count, dtype=torch.int64),
        "relocated": torch.zeros(count, dtype=torch.int64),
        "n_iter": torch.zeros(count, dtype=torch.int64),
        "status": torch.zeros(count, dtype=torch.int64),
    }
    run = functools.partial(
        _kernels.fit_many, problems=problems, w=w, centers=out, u=u, trials=trials,
        direction=_init.order_direction(d), tol=tol_abs.contiguous(), max_iter=max_iter,
        bounds=bounds, exact=d <= EXACT_MAX_D, stripe=stripe, thread_work=KPP_THREAD_WORK,
        rtol=_init.POTENTIAL_RTOL, state=state,
    )  # fmt: skip
    threads = max(1, torch.get_num_threads())
    run(which=None, resume=False, threads=min(threads, count))
    status, relocated = state["status"], state["relocated"]
    assert status is not None and relocated is not None
    while True:
        if bool((status == BATCH_NO_MEMORY).any()):
            raise MemoryError("the native kernel tk_fit_many could not allocate its buffers")
        pending = (status == BATCH_REFILL).nonzero().flatten()
        if pending.numel() == 0:
            break
        for b in pending.tolist():  # refill as the single-problem fit does, then go on
            relocated[b] = _refill(problems, w, b, out, state)
        run(which=pending, resume=True, threads=min(threads, int(pending.numel())))
    labels, inertia, counts, n_iter = (
        state[key] for key in ("labels", "inertia", "counts", "n_iter")
    )
    assert labels is not None and inertia is not None and counts is not None and n_iter is not None
    # each problem's inertia summed as the single fit sums it (a 1-D sum: at large K torch may
    # split it between threads, differently from a row of a 2-D sum)
    total = inertia.sum(dim=1) if k < _ROW_SUM_K else torch.stack([q.sum() for q in inertia])
    return BatchFit(out, labels, total, counts, n_iter)


def _refill(
    problems: _kernels.Problems,
    w: torch.Tensor | None,
    b: int,
    centers: torch.Tensor,
    state: dict[str, torch.Tensor | None],
) -> int:
    """Problem ``b``'s empty clusters refilled from the statistics and distances of the pass
    that emptied them (:meth:`NativeLoop.relocate`, on the batch's buffers); returns how many
    were refilled."""
    x, k = problems.tensors[b], centers.shape[1]
    at, n = int(problems.offsets[b]), int(x.shape[0])
    source = TensorSource(
        x, None if w is None else w[at : at + n], device=torch.device("cpu"), dtype=x.dtype,
        chunk_size=n,
    )  # fmt: skip
    pc = NATIVE.prepare_centers(centers[b], "euclidean")
    workspace = Workspace(1, k, x.dtype, torch.device("cpu"))
    dist, labels, sums, weights, counts, inertia = (
        state[key] for key in ("dist", "labels", "sums", "weights", "counts", "inertia")
    )
    assert dist is not None and labels is not None and sums is not None
    assert weights is not None and counts is not None and inertia is not None
    workspace.distances, workspace.distances_for = dist[at : at + n], pc
    stats = LloydStats(
        sums[b], weights[b], counts[b], inertia[b], torch.zeros((), dtype=torch.int64)
    )
    return relocate_empty_clusters(stats, source, pc, workspace, SINGLE, labels[at : at + n])
