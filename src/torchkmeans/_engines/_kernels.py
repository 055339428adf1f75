"""Typed Python wrappers of the native kernels: one function per kernel, named arguments.

Each C function ``tk_<kernel>_<f32|f64>`` (csrc/lloyd_impl.h) is declared once in
:data:`_SIGNATURES` with the names and C types of its parameters, in order. A wrapper passes its
arguments by name; :func:`_call` picks the dtype's entry point (one table, :data:`_SUFFIX`),
checks that every parameter was given exactly once, turns tensors into pointers, and turns a
failed allocation into ``MemoryError``. Statuses and modes of the Lloyd loop are enums whose
values come from ``csrc/tk_constants.h``. Prior validation of data is assumed: tensors are
CPU, contiguous where the kernel says so, of the dtype given.
"""

from __future__ import annotations

import ctypes
import enum
from typing import Any

import torch

from . import _constants as tk
from ._library import library

_p, _i64, _dbl, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int

# dtype -> suffix of the C entry points (the kernels exist for these dtypes only)
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}

# kernel -> (return type, [(parameter, C type), ...] in the order of the C prototype)
_SIGNATURES: dict[str, tuple[Any, list[tuple[str, Any]]]] = {
    "tk_pass": (_i64, [
        ("n", _i64), ("d", _i64), ("k", _i64), ("x", _p), ("ldx", _i64), ("w", _p),
        ("shift", _p), ("c", _p), ("craw", _p), ("csq", _p), ("csq_max", _dbl), ("exact", _int),
        ("prev", _p), ("gaps", _p), ("lower", _p), ("drift", _dbl), ("labels", _p), ("dist", _p),
        ("sums", _p), ("weights", _p), ("counts", _p), ("inertia", _p),
        ("assign_threads", _int), ("sum_threads", _int), ("base_row", _i64), ("stripe", _i64),
    ]),
    "tk_prepare": (_dbl, [
        ("k", _i64), ("d", _i64), ("centers", _p), ("shift", _p), ("c", _p), ("csq", _p),
    ]),
    "tk_gaps": (_int, [
        ("k", _i64), ("d", _i64), ("centers", _p), ("shift", _p), ("c", _p), ("csq", _p),
        ("csq_max", _dbl), ("exact", _int), ("gaps", _p), ("nthreads", _int),
    ]),
    "tk_update": (None, [
        ("k", _i64), ("d", _i64), ("sums", _p), ("weights", _p), ("counts", _p),
        ("inertia", _p), ("shift", _p), ("centers", _p), ("fresh", _p), ("out", _p),
    ]),
    "tk_lloyd": (_i64, [
        ("n", _i64), ("d", _i64), ("k", _i64), ("x", _p), ("ldx", _i64), ("w", _p),
        ("centers", _p), ("labels", _p), ("dist", _p), ("lower", _p), ("drift", _p),
        ("bounds_valid", _p), ("exact", _int), ("assign_threads", _int), ("sum_threads", _int),
        ("stripe", _i64), ("mode", _int), ("iters", _i64), ("tol", _dbl),
        ("given_changed", _i64), ("given_relocated", _i64), ("sums", _p), ("weights", _p),
        ("counts", _p), ("inertia", _p), ("hist", _p), ("status", _p),
    ]),
    "tk_moments": (None, [
        ("n", _i64), ("d", _i64), ("x", _p), ("ldx", _i64), ("w", _p), ("first", _p),
        ("s1", _p), ("s2", _p), ("total", _p),
    ]),
    "tk_order": (_int, [
        ("n", _i64), ("d", _i64), ("x", _p), ("ldx", _i64), ("dir", _p), ("order", _p),
    ]),
    "tk_kpp_all": (_int, [
        ("n", _i64), ("d", _i64), ("x", _p), ("ldx", _i64), ("w", _p), ("order", _p),
        ("u", _p), ("k", _i64), ("t", _i64), ("centers", _p), ("indices", _p),
        ("rtol", _dbl), ("nthreads", _int), ("thread_work", _i64),
    ]),
    "tk_moments_many": (None, [
        ("count", _i64), ("d", _i64), ("xs", _p), ("rows", _p), ("offsets", _p), ("w", _p),
        ("first", _p), ("s1", _p), ("s2", _p), ("total", _p),
    ]),
    "tk_fit_many": (None, [
        ("count", _i64), ("d", _i64), ("k", _i64), ("xs", _p), ("rows", _p), ("offsets", _p),
        ("max_rows", _i64), ("w", _p), ("centers", _p), ("u", _p), ("draws", _i64),
        ("trials", _i64), ("dir", _p), ("tol", _p), ("max_iter", _i64), ("bounds", _p),
        ("exact", _int), ("stripe", _p), ("thread_work", _i64), ("rtol", _dbl),
        ("labels", _p), ("dist", _p), ("lower", _p), ("drift", _p), ("valid", _p),
        ("sums", _p), ("weights", _p), ("counts", _p), ("inertia", _p), ("changed", _p),
        ("relocated", _p), ("n_iter", _p), ("status", _p), ("which", _p), ("runs", _i64),
        ("resume", _int), ("nthreads", _int),
    ]),
    "tk_spmm": (None, [
        ("n", _i64), ("d", _i64), ("k", _i64), ("crow", _p), ("col", _p), ("idx64", _int),
        ("val", _p), ("ct", _p), ("out", _p), ("nthreads", _int),
    ]),
    "tk_sparse_assign": (_i64, [
        ("n", _i64), ("d", _i64), ("k", _i64), ("crow", _p), ("col", _p), ("idx64", _int),
        ("val", _p), ("ct", _p), ("csq", _p), ("csq_max", _dbl), ("xsq", _p),
        ("slack_eps", _dbl), ("scores", _p), ("labels", _p), ("dist", _p), ("near", _p),
        ("nthreads", _int),
    ]),
    "tk_divide_rows": (None, [
        ("n", _i64), ("crow", _p), ("idx64", _int), ("val", _p), ("div", _p), ("out", _p),
        ("nthreads", _int),
    ]),
    "tk_sparse_sums": (None, [
        ("n", _i64), ("d", _i64), ("k", _i64), ("crow", _p), ("col", _p), ("idx64", _int),
        ("val", _p), ("w", _p), ("labels", _p), ("sums", _p), ("nthreads", _int),
    ]),
}  # fmt: skip

# Kernels whose integer result is negative (or, for the int ones, non-zero) when a buffer could
# not be allocated.
_FAILS_BELOW_ZERO = {"tk_pass", "tk_lloyd"}
_FAILS_NON_ZERO = {"tk_gaps", "tk_order", "tk_kpp_all"}


class Mode(enum.IntEnum):
    """What one ``tk_lloyd`` call does."""

    ITERATE = tk.MODE_ITERATE  # full iterations
    FINISH = tk.MODE_FINISH  # finish an iteration whose pass is done (after a relocation)
    ASSIGN = tk.MODE_ASSIGN  # one assignment pass, no update


class Status(enum.IntEnum):
    """How a ``tk_lloyd`` call ended."""

    RAN = tk.STATUS_RAN  # every iteration asked for was done
    STOPPED = tk.STATUS_STOPPED  # the stop rule held
    EMPTY = tk.STATUS_EMPTY  # the pass of the next iteration left a cluster empty


_declared: dict[int, set[str]] = {}


def _entry(name: str, dtype: torch.dtype) -> Any:
    lib = library()
    if lib is None:  # the engine decision guarantees a library; reaching here is a bug
        raise RuntimeError(f"{name}: the native kernels are not loaded")
    symbol = f"{name}_{_SUFFIX[dtype]}"
    fn = getattr(lib, symbol)
    done = _declared.setdefault(id(lib), set())
    if symbol not in done:
        restype, params = _SIGNATURES[name]
        fn.restype = restype
        fn.argtypes = [ctype for _, ctype in params]
        done.add(symbol)
    return fn


def _arg(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.data_ptr()
    return value


def _call(name: str, dtype: torch.dtype, **args: Any) -> Any:
    """Call kernel ``name`` for ``dtype`` with its parameters given by name."""
    params = [param for param, _ in _SIGNATURES[name][1]]
    if set(args) != set(params):
        missing, extra = set(params) - set(args), set(args) - set(params)
        raise TypeError(f"{name}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    result = _entry(name, dtype)(*(_arg(args[param]) for param in params))
    if (name in _FAILS_BELOW_ZERO and result < 0) or (name in _FAILS_NON_ZERO and result != 0):
        raise MemoryError(f"the native kernel {name} could not allocate its buffers")
    return result


def _row_stride(x: torch.Tensor) -> int:
    """The leading dimension the kernels read (any value >= d for a single row)."""
    return int(x.stride(0)) if x.shape[0] > 1 else int(x.shape[1])


def lloyd_pass(
    *,
    x: torch.Tensor,
    w: torch.Tensor | None,
    shift: torch.Tensor | None,
    c: torch.Tensor,
    craw: torch.Tensor,
    csq: torch.Tensor,
    csq_max: float,
    exact: bool,
    previous: torch.Tensor | None,
    gaps: torch.Tensor | None,
    lower: torch.Tensor | None,
    drift: float,
    labels: torch.Tensor,
    dist: torch.Tensor,
    sums: torch.Tensor | None,
    weights: torch.Tensor,
    counts: torch.Tensor,
    inertia: torch.Tensor,
    assign_threads: int,
    sum_threads: int,
    base_row: int,
    stripe: int,
) -> int:
    """One assignment + accumulation pass over the rows ``x`` (``tk_pass``). Returns the
    number of labels that differ from ``previous``."""
    n, d = x.shape
    return int(_call(
        "tk_pass", x.dtype, n=n, d=d, k=c.shape[0], x=x, ldx=int(x.stride(0)), w=w, shift=shift,
        c=c, craw=craw, csq=csq, csq_max=csq_max, exact=int(exact), prev=previous, gaps=gaps,
        lower=lower, drift=drift, labels=labels, dist=dist, sums=sums, weights=weights,
        counts=counts, inertia=inertia, assign_threads=assign_threads, sum_threads=sum_threads,
        base_row=base_row, stripe=stripe,
    ))  # fmt: skip


def prepare(
    centers: torch.Tensor, shift: torch.Tensor, c: torch.Tensor, csq: torch.Tensor
) -> float:
    """Lay out ``centers`` (``tk_prepare``): ``shift`` = their mean (summed in float64),
    ``c`` = centers - shift, ``csq`` = squared norms of ``c``. Returns the largest norm."""
    k, d = centers.shape
    return float(_call("tk_prepare", centers.dtype, k=k, d=d, centers=centers, shift=shift,
                       c=c, csq=csq))  # fmt: skip


def half_gaps(
    *,
    centers: torch.Tensor,
    shift: torch.Tensor,
    c: torch.Tensor,
    csq: torch.Tensor,
    csq_max: float,
    exact: bool,
    gaps: torch.Tensor,
    threads: int,
) -> None:
    """Half the distance from each center to its nearest other center, a lower bound
    (``tk_gaps``: an assignment pass with the centers as rows), into ``gaps``."""
    k, d = centers.shape
    _call("tk_gaps", centers.dtype, k=k, d=d, centers=centers, shift=shift, c=c, csq=csq,
          csq_max=csq_max, exact=int(exact), gaps=gaps, nthreads=threads)  # fmt: skip


def update(
    *,
    sums: torch.Tensor,
    weights: torch.Tensor,
    counts: torch.Tensor,
    inertia: torch.Tensor,
    shift: torch.Tensor,
    centers: torch.Tensor,
    fresh: torch.Tensor,
) -> tuple[float, float, float]:
    """The update step (``tk_update``): new centers into ``fresh``; returns (squared center
    shift summed over centers, largest squared shift of one center, inertia)."""
    k, d = centers.shape
    out = (ctypes.c_double * 3)()
    _call("tk_update", centers.dtype, k=k, d=d, sums=sums, weights=weights, counts=counts,
          inertia=inertia, shift=shift, centers=centers, fresh=fresh, out=out)  # fmt: skip
    return out[0], out[1], out[2]


def lloyd_loop(
    *,
    x: torch.Tensor,
    w: torch.Tensor | None,
    centers: torch.Tensor,
    labels: torch.Tensor,
    dist: torch.Tensor,
    lower: torch.Tensor | None,
    drift: float,
    bounds_valid: bool,
    exact: bool,
    assign_threads: int,
    sum_threads: int,
    stripe: int,
    mode: Mode,
    iters: int,
    tol: float,
    given_changed: int,
    given_relocated: int,
    sums: torch.Tensor,
    weights: torch.Tensor,
    counts: torch.Tensor,
    inertia: torch.Tensor,
    hist: torch.Tensor,
) -> tuple[int, Status, float, bool]:
    """Lloyd iterations in one call (``tk_lloyd``; ``centers`` updated in place, ``hist`` gets
    :data:`HISTORY_FIELDS` values per iteration). Returns (iterations completed, status, drift
    of the bounds, whether the bounds are valid)."""
    n, d = x.shape
    drift_ref = ctypes.c_double(drift)
    valid_ref = ctypes.c_int64(int(bounds_valid))
    status = ctypes.c_int64(0)
    done = _call(
        "tk_lloyd", x.dtype, n=n, d=d, k=centers.shape[0], x=x, ldx=_row_stride(x), w=w,
        centers=centers, labels=labels, dist=dist, lower=lower, drift=ctypes.byref(drift_ref),
        bounds_valid=ctypes.byref(valid_ref), exact=int(exact), assign_threads=assign_threads,
        sum_threads=sum_threads, stripe=stripe, mode=int(mode), iters=iters, tol=tol,
        given_changed=given_changed, given_relocated=given_relocated, sums=sums,
        weights=weights, counts=counts, inertia=inertia, hist=hist, status=ctypes.byref(status),
    )  # fmt: skip
    return int(done), Status(status.value), drift_ref.value, bool(valid_ref.value)


HISTORY_FIELDS = tk.HISTORY_FIELDS


def moments(
    *,
    x: torch.Tensor,
    w: torch.Tensor | None,
    first: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    total: torch.Tensor,
) -> None:
    """Add the weighted sums about ``first`` of the rows ``x`` to ``s1``, ``s2``, ``total``
    (``tk_moments``, float64, row order)."""
    n, d = x.shape
    _call("tk_moments", x.dtype, n=n, d=d, x=x, ldx=_row_stride(x), w=w, first=first, s1=s1,
          s2=s2, total=total)  # fmt: skip


def canonical_order(*, x: torch.Tensor, direction: torch.Tensor, order: torch.Tensor) -> None:
    """The rows sorted by their float64 dot product with ``direction`` (``tk_order``: keys
    summed feature by feature, stable radix sort), into ``order``."""
    n, d = x.shape
    ldx = int(x.stride(0)) if n > 1 else 1
    _call("tk_order", x.dtype, n=n, d=d, x=x, ldx=ldx, dir=direction, order=order)


def kmeans_plusplus(
    *,
    x: torch.Tensor,
    w: torch.Tensor | None,
    order: torch.Tensor,
    u: torch.Tensor,
    n_clusters: int,
    n_local_trials: int,
    centers: torch.Tensor,
    indices: torch.Tensor,
    rtol: float,
    threads: int,
    thread_work: int,
) -> None:
    """Greedy k-means++ in one call (``tk_kpp_all``), into ``centers`` and ``indices``."""
    n, d = x.shape
    _call(
        "tk_kpp_all", x.dtype, n=n, d=d, x=x, ldx=_row_stride(x), w=w, order=order, u=u,
        k=n_clusters, t=n_local_trials, centers=centers, indices=indices, rtol=rtol,
        nthreads=threads, thread_work=thread_work,
    )  # fmt: skip


class Problems:
    """Many problems of ``d`` features as the batch kernels read them: the address of each
    problem's rows (contiguous, ``rows[p]`` x ``d``) and where its rows start in flat per-row
    arrays (``offsets``). ``tensors`` keeps the rows alive."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.tensors = tensors
        self.count = len(tensors)
        self.d = int(tensors[0].shape[1])
        self.dtype = tensors[0].dtype
        self.addresses = torch.tensor([t.data_ptr() for t in tensors], dtype=torch.int64)
        self.rows = torch.tensor([int(t.shape[0]) for t in tensors], dtype=torch.int64)
        self.offsets = torch.zeros(self.count, dtype=torch.int64)
        torch.cumsum(self.rows[:-1], 0, out=self.offsets[1:])
        self.total = int(self.rows.sum())
        self.max_rows = int(self.rows.max())


def moments_many(
    *,
    problems: Problems,
    w: torch.Tensor | None,
    first: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    total: torch.Tensor,
) -> None:
    """The data moments of each problem, as ``tk_moments`` sums them (``w``: flat weights)."""
    p = problems
    _call("tk_moments_many", p.dtype, count=p.count, d=p.d, xs=p.addresses, rows=p.rows,
          offsets=p.offsets, w=w, first=first, s1=s1, s2=s2, total=total)  # fmt: skip


def fit_many(
    *,
    problems: Problems,
    w: torch.Tensor | None,
    centers: torch.Tensor,
    u: torch.Tensor | None,
    trials: int,
    direction: torch.Tensor,
    tol: torch.Tensor,
    max_iter: int,
    bounds: torch.Tensor,
    exact: bool,
    stripe: torch.Tensor,
    thread_work: int,
    rtol: float,
    state: dict[str, torch.Tensor | None],
    which: torch.Tensor | None,
    resume: bool,
    threads: int,
) -> None:
    """Fit (or, with ``resume``, go on fitting) the problems named by ``which`` (all when None)
    as the single-problem fit does (``tk_fit_many``; see csrc/batch_impl.h). ``bounds`` and
    ``stripe`` hold each problem's decisions; ``state`` its buffers, by the kernel's names."""
    p = problems
    _call(
        "tk_fit_many", p.dtype, count=p.count, d=p.d, k=int(centers.shape[1]), xs=p.addresses,
        rows=p.rows, offsets=p.offsets, max_rows=p.max_rows, w=w, centers=centers, u=u,
        draws=0 if u is None else int(u.shape[1]), trials=trials, dir=direction, tol=tol,
        max_iter=max_iter, bounds=bounds, exact=int(exact), stripe=stripe,
        thread_work=thread_work, rtol=rtol, which=which,
        runs=0 if which is None else int(which.numel()), resume=int(resume), nthreads=threads,
        **state,
    )  # fmt: skip


# Stored values x centers below which a sparse product stays on the calling thread.
_SPMM_THREAD_WORK = 1 << 18


def _csr_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Row pointers, column indices, values of a CPU CSR tensor (int32 or int64 indices, the
    same for both), and 1 when they are int64."""
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    if crow.dtype != col.dtype:  # (torch keeps them equal; never read mixed widths)
        crow, col = crow.to(torch.int64), col.to(torch.int64)
    return crow.contiguous(), col.contiguous(), val.contiguous(), int(crow.dtype == torch.int64)


def sparse_matmul(x: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
    """``x @ ct`` for CSR rows ``x`` (n, d) and dense ``ct`` (d, k) of the same dtype, dense
    (``tk_spmm``): each row's products add its stored values in order, whatever the threads."""
    crow, col, val, idx64 = _csr_parts(x)
    n, d = x.shape
    k = int(ct.shape[1])
    ct = ct.contiguous()
    out = torch.empty(n, k, dtype=ct.dtype)
    threads = max(1, torch.get_num_threads()) if val.numel() * k >= _SPMM_THREAD_WORK else 1
    _call("tk_spmm", ct.dtype, n=n, d=d, k=k, crow=crow, col=col, idx64=idx64, val=val, ct=ct,
          out=out, nthreads=threads)  # fmt: skip
    return out


def sparse_assign(
    x: torch.Tensor,
    ct: torch.Tensor,
    csq: torch.Tensor | None,
    xsq: torch.Tensor | None,
    slack_eps: float,
    scores: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Products of CSR rows ``x`` (n, d) with ``ct`` (d, k), turned into scores in ``scores``
    (n, k; ``csq - 2 x.c``, or ``-x.c`` when ``csq`` is None), and per row the best center,
    the distance to it and whether the runner-up is within the slack (``tk_sparse_assign``).
    Returns ``(labels, dist, near, number of near rows)``."""
    crow, col, val, idx64 = _csr_parts(x)
    n, d = x.shape
    k = int(ct.shape[1])
    if (csq is None) != (xsq is None) or scores.shape != (n, k) or not scores.is_contiguous():
        raise ValueError("sparse_assign: csq and xsq go together; scores is a contiguous (n, k)")
    labels = torch.empty(n, dtype=torch.int64)
    dist = torch.empty(n, dtype=ct.dtype)
    near = torch.empty(n, dtype=torch.uint8)
    csq_max = 0.0
    if csq is not None:
        csq = csq.contiguous()
        csq_max = float(csq.max())
        xsq = None if xsq is None else xsq.to(ct.dtype).contiguous()
    threads = max(1, torch.get_num_threads()) if val.numel() * k >= _SPMM_THREAD_WORK else 1
    count = _call("tk_sparse_assign", ct.dtype, n=n, d=d, k=k, crow=crow, col=col, idx64=idx64,
                  val=val, ct=ct.contiguous(), csq=csq, csq_max=csq_max, xsq=xsq,
                  slack_eps=slack_eps, scores=scores, labels=labels, dist=dist, near=near,
                  nthreads=threads)  # fmt: skip
    return labels, dist, near, int(count)


def divide_rows(x: torch.Tensor, div: torch.Tensor) -> torch.Tensor:
    """The stored values of CSR rows ``x``, each divided by its row's entry of ``div``
    (``tk_divide_rows``; the same quotients as torch's division)."""
    crow, _, val, idx64 = _csr_parts(x)
    out = torch.empty_like(val)
    div = div.to(val.dtype).contiguous()
    threads = max(1, torch.get_num_threads()) if val.numel() >= _SPMM_THREAD_WORK else 1
    _call("tk_divide_rows", val.dtype, n=int(x.shape[0]), crow=crow, idx64=idx64, val=val,
          div=div, out=out, nthreads=threads)  # fmt: skip
    return out


def sparse_sums(
    sums: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, w: torch.Tensor | None
) -> None:
    """``sums[labels[i]] += w_i * x_i`` (float64 sums, K x D contiguous), the stored values
    added row by row in order (``tk_sparse_sums``; threads split the clusters)."""
    crow, col, val, idx64 = _csr_parts(x)
    n, d = x.shape
    if w is not None:
        w = w.to(val.dtype).contiguous()
    threads = max(1, torch.get_num_threads()) if val.numel() >= _SPMM_THREAD_WORK else 1
    _call("tk_sparse_sums", val.dtype, n=n, d=d, k=int(sums.shape[0]), crow=crow, col=col,
          idx64=idx64, val=val, w=w, labels=labels.contiguous(), sums=sums,
          nthreads=threads)  # fmt: skip
