"""Many independent k-means problems at once: :func:`kmeans_batched`.

X is a (B, N, D) array or tensor, or a list of B 2-D arrays with their own row counts. Problem
``b`` is exactly ``kmeans(X[b], n_clusters, random_state=seed_b, ...)``: it is checked, seeded
and iterated on its own, converges on its own, and gives that result bit for bit; errors name
the problem. The per-problem seed is documented so a problem can be rerun alone: with an int
``random_state`` s, problem b uses ``s + b``; with a numpy RandomState/Generator or a torch
Generator, B seeds are drawn from it first, in order; None draws fresh entropy per problem.

Engines. Dense Euclidean float32/float64 problems on the CPU (of one shape, or a ragged list)
with the native kernels (k-means++, "random" or given initial centers, one init) are fitted
together by :mod:`torchkmeans._engines.native_batch`: every problem on one thread, the threads
sharing out the problems, and nothing per problem or per iteration in Python but the random
draws of the seeding and the refill of a cluster left empty (by the single fit's own code).
Everything else (cosine, other devices and dtypes, callables, several inits, fewer problems than
twice the threads when each is large) runs the problems one after the other through
:func:`kmeans`, whose engines use every thread on each. Both give the same results.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from . import _validation as v
from ._engines import dispatch, native_batch
from ._functional import kmeans
from ._init import random_rows_
from ._params import check_params, compute_dtype, make_generator, warn
from ._sources import TensorSource
from .exceptions import ConvergenceWarning, DataError, TorchKMeansError

# The dtypes the native batch engine fits in.
_FLOATS = (torch.float32, torch.float64)


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
    checked = check_params(
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

    short: dict[int, int] = {}  # problems with fewer distinct clusters: how many they have

    def alone(b: int) -> Any:
        """Problem ``b`` through :func:`kmeans`; its errors and warnings name the problem."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = kmeans(
                    problems[b], n_clusters, sample_weight=weights[b], init=inits[b],
                    n_init=n_init, max_iter=max_iter, tol=tol, metric=metric,
                    random_state=seeds[b], device=device, dtype=dtype,
                )  # fmt: skip
            except TorchKMeansError as exc:
                raise type(exc)(f"problem {b}: {exc}") from None
        for w in caught:
            found = _DISTINCT.search(str(w.message))
            if found and issubclass(w.category, ConvergenceWarning):
                short[b] = int(found.group(1))  # (one warning for all, below)
            else:
                warn(f"problem {b}: {w.message}", w.category)
        return result

    together = _native_together(
        X, weights, init, n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, tol=tol,
        metric=metric, seeds=seeds, device=checked["device"], dtype=checked["dtype"],
    )  # fmt: skip
    if together is not None:
        return together.result(is_tensor)
    results = [alone(b) for b in range(count)]
    _warn_fewer_clusters(short, n_clusters)
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


# The single fit's warning about fewer distinct clusters than asked for (see _core.fit).
_DISTINCT = re.compile(r"Number of distinct clusters \((\d+)\) found smaller than n_clusters")


def _warn_fewer_clusters(short: dict[int, int], n_clusters: int) -> None:
    """One warning for every problem that found fewer distinct clusters than ``n_clusters``
    (``short``: problem -> clusters found), whichever path fitted them."""
    if not short:
        return
    problems = sorted(short)
    shown = ", ".join(f"{b} ({short[b]})" for b in problems[:10])
    more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
    which = f"problem {shown}" if len(problems) == 1 else f"problems {shown}{more}"
    warn(
        f"{which}: Number of distinct clusters (in parentheses) found smaller than n_clusters "
        f"({n_clusters}). Possibly due to duplicate points in X, or fewer rows of positive "
        "weight than clusters.",
        ConvergenceWarning,
    )


class _Together(NamedTuple):
    """Problems fitted by the native batch engine."""

    centers: torch.Tensor
    labels: Any  # (B, N), or a list of B label tensors when the problems are ragged
    inertia: torch.Tensor
    n_iter: torch.Tensor
    counts: torch.Tensor
    n_clusters: int

    def result(self, is_tensor: bool) -> BatchedResult:
        found = (self.counts > 0).sum(dim=1)
        short = (found < self.n_clusters).nonzero().flatten().tolist()
        _warn_fewer_clusters({b: int(found[b]) for b in short}, self.n_clusters)
        if is_tensor:
            return BatchedResult(self.centers, self.labels, self.inertia, self.n_iter)
        labels = (
            [t.numpy() for t in self.labels]
            if isinstance(self.labels, list)
            else self.labels.numpy()
        )
        return BatchedResult(
            self.centers.numpy(), labels, self.inertia.numpy(), self.n_iter.numpy()
        )


def _native_together(
    X: Any,
    weights: list[Any],
    init: Any,
    *,
    n_clusters: int,
    n_init: Any,
    max_iter: int,
    tol: float,
    metric: str,
    seeds: list[Any],
    device: torch.device | None,
    dtype: torch.dtype | None,
) -> _Together | None:
    """Fit the problems with the native batch engine when it serves them, else None.

    Served: a C-contiguous (B, N, D) CPU tensor or in-memory numpy array of float32/float64, or
    a list of C-contiguous (N_b, D) ones of one dtype, clustered in their own dtype (a
    conversion would make the single fit read the rows differently), finite, with one init
    ("k-means++", "random" or a (B, K, D) array) and, when given, finite non-negative weights of
    positive sum per problem. Anything else goes to the per-problem path, which checks each
    problem and names it in its errors; the checks here only route (they never raise) and make
    no temporary of the data's size.
    """
    random_init = isinstance(init, str) and init == "random"
    if not (n_init == 1 or (n_init == "auto" and not random_init)):
        return None
    if isinstance(init, str) and init not in ("k-means++", "random") or callable(init):
        return None
    if device is not None and device.type != "cpu":
        return None
    if isinstance(X, (list, tuple)):
        stored = [_rows_as_stored(q, 2) for q in X]
        if any(t is None for t in stored):
            return None
        xs: list[torch.Tensor] = [t for t in stored if t is not None]
        max_abs = max(_finite_max_abs(t) for t in xs)
    else:
        x = _rows_as_stored(X, 3)
        if x is None:
            return None
        xs = list(x.unbind(0))
        max_abs = _finite_max_abs(x)
    dt, count = xs[0].dtype, len(xs)
    d = int(xs[0].shape[1])
    rows = [int(t.shape[0]) for t in xs]
    if any(t.dtype != dt or int(t.shape[1]) != d for t in xs) or dt != (dtype or dt):
        return None
    if min(rows) < n_clusters or d == 0 or max_abs == math.inf:
        return None
    if not dispatch.native_batch(
        torch.device("cpu"), dt, metric, count, max(rows) * n_clusters * d
    ):
        return None
    centers = None
    if not isinstance(init, str):
        try:
            centers = torch.as_tensor(init if isinstance(init, torch.Tensor) else np.asarray(init))
        except (TypeError, ValueError, RuntimeError):
            return None
        if centers.shape != (count, n_clusters, d) or not centers.dtype.is_floating_point:
            return None
        max_abs = max(max_abs, _finite_max_abs(centers))
        if max_abs == math.inf:
            return None
    try:
        v.check_fits_dtype(max_abs, dt)
        if v.compute_dtype_for(compute_dtype(dt), max_abs, d, metric) != dt:
            return None
    except DataError:
        return None
    ws = _weights_as_given(weights, rows, dt)
    if ws is False:
        return None
    generators = None
    if centers is None:
        generators = [make_generator(seed) for seed in seeds]
    if random_init:
        assert generators is not None
        centers = torch.stack(
            [
                random_rows_(
                    TensorSource(xs[b], None if ws is None else ws[b], device=torch.device("cpu"),
                                 dtype=dt, chunk_size=rows[b]),
                    n_clusters, generators[b],
                )[0]
                for b in range(count)
            ]
        )  # fmt: skip
    fit = native_batch.fit_many(
        xs, ws, n_clusters, centers=centers, generators=generators, tol=tol, max_iter=max_iter
    )
    ragged = isinstance(X, (list, tuple))
    labels: Any = list(fit.labels.split(rows)) if ragged else fit.labels.view(count, rows[0])
    return _Together(fit.centers, labels, fit.inertia, fit.n_iter, fit.counts, n_clusters)


def _weights_as_given(
    weights: list[Any], rows: list[int], dtype: torch.dtype
) -> list[torch.Tensor] | None | Literal[False]:
    """Each problem's weights as a contiguous tensor of ``dtype`` (None: no weights), or False
    when they are not all given, finite, non-negative and of positive sum per problem."""
    if all(q is None for q in weights):
        return None
    if any(q is None for q in weights):
        return False
    try:
        ws = [torch.as_tensor(np.asarray(q)).to(dtype).contiguous() for q in weights]
    except (TypeError, ValueError, RuntimeError):
        return False
    if any(q.shape != (n,) for q, n in zip(ws, rows)):
        return False
    flat = torch.cat(ws)
    if not bool(torch.isfinite(flat).all()) or bool((flat < 0).any()):
        return False
    if not all(float(q.sum()) > 0 for q in ws):
        return False
    return ws


def _rows_as_stored(X: Any, ndim: int) -> torch.Tensor | None:
    """X as a C-contiguous ``ndim``-D CPU tensor of float32/float64 without a copy (a view of a
    numpy array in memory), or None when it is not one."""
    if isinstance(X, torch.Tensor):
        ok = X.device.type == "cpu" and not X.requires_grad and X.layout == torch.strided
        ok = ok and X.dim() == ndim and X.dtype in _FLOATS and X.is_contiguous()
        return X if ok else None
    if not isinstance(X, np.ndarray) or X.dtype not in (np.float32, np.float64):
        return None
    if X.ndim != ndim or not (X.flags.c_contiguous and X.dtype.isnative):
        return None
    if v.is_memory_mapped(X):
        return None  # (a memory map is read problem by problem)
    with warnings.catch_warnings():  # read-only arrays are wrapped, never written
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(X)


def _finite_max_abs(t: torch.Tensor) -> float:
    """The largest absolute value of ``t`` (inf when any value is not finite), with no
    temporary of its size."""
    if t.numel() == 0:
        return 0.0
    low, high = (float(v) for v in torch.aminmax(t))
    return max(-low, high) if math.isfinite(low) and math.isfinite(high) else math.inf
