"""One benchmark measurement in a fresh process: ``python benchmarks/peers.py SPEC_JSON``.

The spec names the peer, the data file (.npy), the initial centers (.npy) and what to measure;
the result is one JSON line on stdout. The parent (run.py) enforces time and memory limits.

Measures, for the peer:
- ``per_iter``: seconds per Lloyd iteration, as (T(I) - T(1)) / (iterations(I) - iterations(1))
  from the same initial centers, so fixed costs (conversion, validation, final pass) cancel;
- ``inertia``: inertia of its centers after I iterations (computed here, the same way for all);
- ``extra_peak``: extra peak resident memory of the I-iteration fit (VmHWM reset before it);
- ``fit_seconds`` / ``fit_inertia``: default fit with k-means++ init (where the peer has one);
- ``plusplus_seconds``: k-means++ seeding alone (where the peer has one).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def inertia(X: np.ndarray, centers: np.ndarray) -> float:
    """Sum of squared distances to the closest center, in float64, chunk by chunk."""
    import torch

    C = torch.as_tensor(np.asarray(centers, dtype=np.float64))
    c_sq = (C * C).sum(1)
    total = 0.0
    for s in range(0, X.shape[0], 65536):
        x = torch.as_tensor(np.asarray(X[s : s + 65536], dtype=np.float64))
        d = (x * x).sum(1, keepdim=True) - 2 * x @ C.T + c_sq
        total += float(d.min(1).values.clamp_min(0).sum())
    return total


# Each runner: (X, init, iters, device) -> (centers as numpy, iterations actually run)
Runner = Callable[[np.ndarray, np.ndarray, int, str], tuple[np.ndarray, int]]


def run_torchkmeans(X, init, iters, device):
    from torchkmeans import KMeans

    km = KMeans(init.shape[0], init=init, max_iter=iters, tol=0.0, device=device).fit(X)
    return np.asarray(km.cluster_centers_), km.n_iter_


def _sklearn(algorithm: str, intel: bool = False) -> Runner:
    def run(X, init, iters, device):
        if intel:  # scikit-learn-intelex: oneDAL's k-means behind scikit-learn's API
            from sklearnex.cluster import KMeans
        else:
            from sklearn.cluster import KMeans

        km = KMeans(
            init.shape[0], init=init, n_init=1, max_iter=iters, tol=0.0, algorithm=algorithm
        )
        km.fit(X)
        return km.cluster_centers_, km.n_iter_

    return run


def run_faiss(X, init, iters, device):
    import faiss

    km = faiss.Kmeans(
        X.shape[1],
        init.shape[0],
        niter=iters,
        max_points_per_centroid=10**9,
        min_points_per_centroid=1,
        seed=0,
        verbose=False,
    )
    km.train(
        np.ascontiguousarray(X, dtype=np.float32),
        init_centroids=np.ascontiguousarray(init, dtype=np.float32),
    )
    return km.centroids, iters


def run_fast_pytorch_kmeans(X, init, iters, device):
    import torch
    from fast_pytorch_kmeans import KMeans

    km = KMeans(n_clusters=init.shape[0], max_iter=iters, tol=-1.0, verbose=0)
    km.fit(torch.as_tensor(X, device=device), centroids=torch.as_tensor(init, device=device))
    return km.centroids.cpu().numpy(), iters


_ROWS_FOUND: dict[tuple[int, int], np.ndarray | None] = {}


def _rows_of(X: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    """The index in X of each of ``rows``, found by their bytes; None if one is not in X.
    (Searched once per pair of arrays: the timed calls reuse the answer.)"""
    key = (id(X), id(rows))
    if key not in _ROWS_FOUND:
        _ROWS_FOUND[key] = _search_rows(X, rows)
    return _ROWS_FOUND[key]


def _search_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
    wanted = {np.asarray(r).tobytes(): j for j, r in enumerate(rows)}
    where = np.full(len(rows), -1, dtype=np.int64)
    for s in range(0, X.shape[0], 65536):
        block = np.ascontiguousarray(X[s : s + 65536])
        for i, r in enumerate(block):
            j = wanted.get(r.tobytes())
            if j is not None and where[j] < 0:
                where[j] = s + i
    return None if (where < 0).any() else where


def run_fastkmeans(X, init, iters, device):
    """fastkmeans (CPU mode). It seeds with rows drawn by torch.randperm and takes no initial
    centers, so the draw is made to return the rows the other peers start from (the first rows
    of X for the warm-up call, whose data need not hold them); tol=-1 runs every iteration."""
    import torch
    from fastkmeans import FastKMeans

    where = _rows_of(X, init)
    X = np.ascontiguousarray(X, dtype=np.float32)
    first = torch.arange(init.shape[0]) if where is None else torch.as_tensor(where)
    randperm = torch.randperm

    def seeded(n, *args, **kwargs):
        rest = torch.ones(n, dtype=torch.bool)
        rest[first] = False
        return torch.cat([first, rest.nonzero().flatten()])

    km = FastKMeans(X.shape[1], init.shape[0], niter=iters, tol=-1.0, gpu=device != "cpu")
    torch.randperm = seeded
    try:
        km.train(X)
    finally:
        torch.randperm = randperm
    return km.centroids, iters


class _Stop(Exception):
    pass


def run_kmeans_pytorch(X, init, iters, device):
    """kmeans-pytorch has no iteration limit nor initial centers: patch both in (its loop
    updates the initial-centers tensor in place and calls pairwise_distance once per step)."""
    import kmeans_pytorch as kp
    import torch

    calls = {"n": 0}
    original = kp.pairwise_distance
    centers = torch.tensor(init, dtype=torch.float32, device=device)

    def counting(*args, **kwargs):
        if calls["n"] == iters:
            raise _Stop
        calls["n"] += 1
        return original(*args, **kwargs)

    kp.initialize = lambda Xt, k: centers
    kp.pairwise_distance = counting
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            kp.kmeans(torch.as_tensor(X), init.shape[0], tol=-1.0, device=torch.device(device))
    except _Stop:
        pass
    finally:
        kp.pairwise_distance = original
    return centers.cpu().numpy(), calls["n"]


def run_torch_kmeans(X, init, iters, device):
    import torch
    from torch_kmeans import KMeans

    km = KMeans(n_clusters=init.shape[0], max_iter=iters, tol=1e-12, num_init=1, verbose=False)
    x = torch.as_tensor(X, device=device)[None]
    km.fit(x, centers=torch.as_tensor(init, device=device)[None])
    return km._result.centers[0].cpu().numpy(), iters


def run_tutorial(X, init, iters, device):
    """The 15-line loop the project grew from: cdist, argmin, per-cluster mean."""
    import torch

    x = torch.as_tensor(X, device=device)
    c = torch.as_tensor(init, device=device).clone()
    for _ in range(iters):
        labels = torch.cdist(x, c).argmin(dim=1)
        c = torch.stack([x[labels == j].mean(dim=0) for j in range(c.shape[0])])
    return c.cpu().numpy(), iters


RUNNERS: dict[str, Runner] = {
    "torchkmeans": run_torchkmeans,
    "sklearn-lloyd": _sklearn("lloyd"),
    "sklearn-elkan": _sklearn("elkan"),
    "sklearnex": _sklearn("lloyd", intel=True),
    "faiss": run_faiss,
    "fastkmeans": run_fastkmeans,
    "fast-pytorch-kmeans": run_fast_pytorch_kmeans,
    "kmeans-pytorch": run_kmeans_pytorch,
    "torch-kmeans": run_torch_kmeans,
    "tutorial": run_tutorial,
}


def _fit_fn(peer: str):
    """The peer's default fit (k-means++, one run), imported before any timing; None if none."""
    k = int(SPEC["k"])
    if peer == "torchkmeans":
        from torchkmeans import KMeans

        return lambda X, seed, device: KMeans(k, random_state=seed, device=device).fit(X)
    if peer == "sklearn-lloyd":
        from sklearn.cluster import KMeans as SkKMeans

        return lambda X, seed, device: SkKMeans(k, random_state=seed).fit(X)
    if peer == "sklearnex":
        from sklearnex.cluster import KMeans as ExKMeans

        return lambda X, seed, device: ExKMeans(k, random_state=seed).fit(X)
    return None


def _plusplus_fn(peer: str):
    k = int(SPEC["k"])
    if peer == "torchkmeans":
        from torchkmeans import kmeans_plusplus

        return lambda X, device: kmeans_plusplus(X, k, random_state=0, device=device)
    if peer == "sklearn-lloyd":
        from sklearn.cluster import kmeans_plusplus as sk_pp

        return lambda X, device: sk_pp(X, k, random_state=0)
    return None


def _timed(f: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


SPEC: dict[str, Any] = {}


def main() -> None:
    """Modes: "iter" (time per iteration, inertia, memory), "fit" (default fits), "plusplus";
    the default "all" does the three in one process."""
    SPEC.update(json.loads(sys.argv[1]))
    peer, iters, device = SPEC["peer"], int(SPEC["iters"]), SPEC.get("device", "cpu")
    if SPEC.get("threads"):
        import torch

        torch.set_num_threads(int(SPEC["threads"]))
    mode = SPEC.get("mode", "all")
    X = np.load(SPEC["data"])
    init = np.load(SPEC["init"])
    runner = RUNNERS[peer]
    out: dict[str, Any] = {"peer": peer}
    small = X[: min(len(X), 2000)]
    # tiny problems take well under a millisecond per call: time the best of several repeats
    work = X.shape[0] * X.shape[1] * init.shape[0]
    repeats = 100 if work < 10**5 else 20 if work < 10**7 else 1
    if mode in ("iter", "all"):
        runner(small, init[: min(len(init), len(small))], 1, device)  # warm up imports, kernels
        gc.collect()
        t1 = min(_timed(lambda: runner(X, init, 1, device))[0] for _ in range(repeats))
        gc.collect()
        _reset_peak()
        base = _rss()
        times, results = zip(
            *(_timed(lambda: runner(X, init, iters, device)) for _ in range(repeats))
        )
        out["extra_peak"] = max(0, _peak() - base)  # (the process may shrink meanwhile)
        centers, n = results[0]
        tn = min(times)
        out["iterations"] = n
        # (a difference of two best times; below the timer's resolution it can come out
        # negative, which means "too small to measure": recorded as 0)
        out["per_iter"] = max(0.0, (tn - t1) / (n - 1)) if n > 1 else tn
        out["inertia"] = inertia(X, centers)
        out["finite"] = bool(np.isfinite(centers).all())
        # (identical centers give identical digests: results must not depend on threads)
        out["centers_sha256"] = hashlib.sha256(np.ascontiguousarray(centers).tobytes()).hexdigest()
    fit_fn = _fit_fn(peer)
    if mode in ("fit", "all") and SPEC.get("fit_seeds") and fit_fn is not None:
        fit_fn(small, 0, device)  # warm up outside the timing
        fits = []
        for s in range(int(SPEC["fit_seeds"])):
            # (tiny problems: the best of the repeats of each seed, as for the iterations)
            runs = [_timed(lambda s=s: fit_fn(X, s, device)) for _ in range(repeats)]
            fits.append(min(runs, key=lambda r: r[0]))
        out["fit_seconds"] = float(np.mean([t for t, _ in fits]))
        out["fit_inertia"] = float(np.mean([float(km.inertia_) for _, km in fits]))
    pp_fn = _plusplus_fn(peer)
    if mode in ("plusplus", "all") and SPEC.get("plusplus") and pp_fn is not None:
        pp_fn(small, device)
        out["plusplus_seconds"] = min(_timed(lambda: pp_fn(X, device))[0] for _ in range(repeats))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
