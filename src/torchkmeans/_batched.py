"""Many independent k-means problems at once: :func:`kmeans_batched`.

X is a (B, N, D) array or tensor, or a list of B 2-D arrays with their own row counts. Problem
``b`` is exactly ``kmeans(X[b], n_clusters, random_state=seed_b, ...)``: it is checked, seeded
and iterated on its own, converges on its own, and gives that result bit for bit; errors name
the problem. The per-problem seed is documented so a problem can be rerun alone: with an int
``random_state`` s, problem b uses ``s + b``; with a numpy RandomState/Generator or a torch
Generator, B seeds are drawn from it first, in order; None draws fresh entropy per problem.

Today the problems run one after the other through the same engines as :func:`kmeans` (each
on the native CPU kernels or the torch engine); a batched engine that runs them together is
the next step (issue 16).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from ._functional import kmeans
from ._params import check_params
from .exceptions import DataError, TorchKMeansError


class BatchedResult(NamedTuple):
    """What :func:`kmeans_batched` returns, in the input's kind (numpy in, numpy out; a tensor
    in, tensors out on its device)."""

    centers: Any  # (B, K, D)
    labels: Any  # (B, N), or a list of B label arrays when the problems are ragged
    inertia: Any  # (B,)
    n_iter: Any  # (B,)


def _problems(X: Any, name: str) -> tuple[list[Any], bool, bool]:
    """The B problems of ``X`` (views, never copies), whether they are ragged, and whether the
    input was a tensor (or a list of tensors)."""
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise DataError(f"{name} is an empty list; expected B >= 1 problems.")
        tensors = [isinstance(x, torch.Tensor) for x in X]
        if any(tensors) and not all(tensors):
            raise DataError(
                f"{name} mixes tensors and arrays; pass a list of one kind (all numpy arrays or "
                "all tensors)."
            )
        rows = {int(np.shape(x)[0]) if np.ndim(x) >= 1 else -1 for x in X}
        return list(X), len(rows) > 1, all(tensors)
    if isinstance(X, torch.Tensor):
        if X.dim() != 3:
            raise DataError(
                f"{name} must be a (B, N, D) tensor or a list of B 2-D arrays, got a "
                f"{X.dim()}-D tensor of shape {tuple(X.shape)}."
            )
        if X.shape[0] == 0:
            raise DataError(f"{name} has B = 0 problems; expected at least one.")
        return list(X.unbind(0)), False, True
    try:
        arr = np.asarray(X)
    except Exception as exc:  # anything numpy cannot read
        raise DataError(f"{name} is not an array: {exc}") from None
    if arr.ndim != 3:
        raise DataError(
            f"{name} must be a (B, N, D) array or a list of B 2-D arrays, got an array of shape "
            f"{arr.shape}. For one problem use torchkmeans.kmeans(X, n_clusters)."
        )
    if arr.shape[0] == 0:
        raise DataError(f"{name} has B = 0 problems; expected at least one.")
    return [arr[b] for b in range(arr.shape[0])], False, False


def _per_problem(value: Any, count: int, name: str, ragged_ok: bool = True) -> list[Any]:
    """``value`` split by problem: None for all, or one entry per problem."""
    if value is None:
        return [None] * count
    if isinstance(value, (list, tuple)) or (
        isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1
    ):
        if len(value) != count:
            raise DataError(f"{name} has {len(value)} entries, expected one per problem ({count}).")
        return list(value)
    raise DataError(f"{name} must be None or have one entry per problem ({count}).")


def _seeds(random_state: Any, count: int) -> list[Any]:
    """The random_state of each problem (see the module docstring)."""
    if random_state is None:
        return [None] * count
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return [int(random_state) + b for b in range(count)]
    if isinstance(random_state, torch.Generator):
        return [int(s) for s in torch.randint(0, 2**62, (count,), generator=random_state)]
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(0, np.iinfo(np.int32).max, size=count)]
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(0, 2**62, size=count)]
    return [random_state] * count  # (rejected by the parameter check)


def kmeans_batched(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    init: Any = "k-means++",
    n_init: int | str = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    metric: str = "euclidean",
    random_state: Any = None,
    device: Any = None,
    dtype: Any = None,
) -> BatchedResult:
    """Cluster B independent problems, each into ``n_clusters`` groups.

    Parameters
    ----------
    X : array or tensor of shape (B, N, D), or list of B arrays of shape (N_b, D)
        The problems. A list may have a different row count per problem (ragged).
    n_clusters : int
        Clusters per problem.
    sample_weight : array of shape (B, N), list of B arrays of shape (N_b,), or None
        Per-row weights of each problem.
    init : "k-means++", "random", array of shape (B, n_clusters, D), or callable
        An array gives each problem its initial centers; a callable is called per problem as
        for :func:`kmeans`.
    n_init, max_iter, tol, metric, device, dtype
        As for :func:`kmeans`, for every problem.
    random_state : int, numpy RandomState or Generator, torch.Generator or None
        Problem ``b`` uses ``random_state + b`` (an int); other generators give B seeds drawn
        in order. So ``kmeans(X[b], n_clusters, random_state=random_state + b, ...)`` gives
        problem ``b``'s result, bit for bit on the CPU.

    Returns
    -------
    BatchedResult
        ``centers`` (B, n_clusters, D), ``labels`` (B, N) or a list when ragged, ``inertia``
        (B,) and ``n_iter`` (B,), as numpy arrays for numpy (or list) input and tensors on the
        input's device for tensor input.
    """
    check_params(
        {
            "n_clusters": n_clusters,
            "init": init if isinstance(init, str) or callable(init) else "random",
            "n_init": n_init,
            "max_iter": max_iter,
            "tol": tol,
            "metric": metric,
            "random_state": random_state,
            "device": device,
            "dtype": dtype,
        }
    )
    problems, ragged, is_tensor = _problems(X, "X")
    count = len(problems)
    weights = _per_problem(sample_weight, count, "sample_weight")
    inits = [init] * count
    if not isinstance(init, str) and not callable(init):
        inits = _per_problem(init, count, "init")
    seeds = _seeds(random_state, count)
    results = []
    for b, (x, w, c, seed) in enumerate(zip(problems, weights, inits, seeds)):
        try:
            results.append(
                kmeans(
                    x,
                    n_clusters,
                    sample_weight=w,
                    init=c,
                    n_init=n_init,
                    max_iter=max_iter,
                    tol=tol,
                    metric=metric,
                    random_state=seed,
                    device=device,
                    dtype=dtype,
                )  # fmt: skip
            )
        except TorchKMeansError as exc:
            raise type(exc)(f"problem {b}: {exc}") from None
    centers: Any
    inertia: Any
    n_iter: Any
    if is_tensor:
        dev = results[0].centers.device
        centers = torch.stack([r.centers for r in results])
        inertia = torch.tensor([r.inertia for r in results], dtype=torch.float64, device=dev)
        n_iter = torch.tensor([r.n_iter for r in results], dtype=torch.int64, device=dev)
        labels: Any = [r.labels for r in results]
        if not ragged:
            labels = torch.stack(labels)
    else:
        centers = np.stack([r.centers for r in results])
        inertia = np.array([r.inertia for r in results], dtype=np.float64)
        n_iter = np.array([r.n_iter for r in results], dtype=np.int64)
        labels = [r.labels for r in results]
        if not ragged:
            labels = np.stack(labels)
    return BatchedResult(centers, labels, inertia, n_iter)
