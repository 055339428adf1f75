"""Many k-means problems at once (B x N x D): torchkmeans.kmeans_batched against the peers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/batched.py [--quick]

Cases (issue 16): 256 problems of 4,096 x 32 with K = 256 (a product-quantization codebook),
8 problems of 16,384 x 128 with K = 100 (per-head clustering), 10,000 problems of 200 x 2 with
K = 3. Data, float32: blobs (K Gaussian clusters per problem) and standard normal rows (no
cluster structure: the work no pruning can skip) for the first two shapes, uniform rows for the
small problems. Every library starts from the same
initial centers (K rows of each problem) with no tolerance, and its time per iteration of the
whole batch is (T(hi) - T(lo)) / (iterations(hi) - iterations(lo)), where iterations is the mean
over problems of the iterations run (ours and scikit-learn's stop a problem when its labels no
longer change; the others run every iteration), so fixed costs (conversion, validation, the
final labels pass) cancel. Each measurement runs in a fresh process. Peers:

- ours: ``kmeans_batched`` (the native batch engine) and a Python loop over ``kmeans``;
- scikit-learn and faiss in a Python loop over the problems;
- fast-pytorch-kmeans ``MultiKMeans``, torch-kmeans ``KMeans`` and flash-kmeans'
  ``torch_fallback.batch_kmeans_Euclid_torch_native``, which take the (B, N, D) tensor.

Where a library would take too long on all problems (the loops on the 10,000-problem case,
torch-kmeans on the large ones), it runs the first problems and its time is scaled to B (its
cost is linear in B), marked (*) in the table. The inertia column is the mean over problems of each library's inertia after ``hi`` iterations
(computed here, identically for all), relative to ours. Rewrites the "batched" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, publish  # noqa: E402

# name -> (B, N, D, K, data, (lo, hi) iterations, {library: problems it runs, scaled to B})
CASES = {
    "pq": (256, 4096, 32, 256, "blobs", (2, 7), {"torch-kmeans": 8}),
    "pq-normal": (256, 4096, 32, 256, "normal", (2, 7), {"torch-kmeans": 8}),
    "heads": (8, 16384, 128, 100, "blobs", (2, 7), {"torch-kmeans": 1}),
    "heads-normal": (8, 16384, 128, 100, "normal", (2, 7), {"torch-kmeans": 1}),
    "small": (10_000, 200, 2, 3, "uniform", (1, 4), {
        "torchkmeans (loop)": 1000, "scikit-learn (loop)": 1000, "faiss (loop)": 1000}),
}  # fmt: skip
QUICK = {
    "pq": (32, 1024, 16, 64, "normal", (2, 5), {"torch-kmeans": 8}),
    "small": (2000, 200, 2, 3, "uniform", (1, 4), {
        "torchkmeans (loop)": 200, "scikit-learn (loop)": 200, "faiss (loop)": 200}),
}  # fmt: skip
LIBRARIES = [
    "torchkmeans (batched)",
    "torchkmeans (loop)",
    "scikit-learn (loop)",
    "faiss (loop)",
    "fast-pytorch-kmeans",
    "torch-kmeans",
    "flash-kmeans (torch fallback)",
]
# Fits of each length per measurement; the fastest counts (the machine is shared and noisy).
REPEATS = 3


def make_data(b, n, d, kind, k=None, seed=0):
    """``b`` problems of ``n`` rows: standard normal, uniform, or blobs (``k`` Gaussian
    clusters per problem, unit noise around centers spread with standard deviation 3)."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal((b, n, d), dtype=np.float32)
    if kind == "uniform":
        return rng.random((b, n, d), dtype=np.float32)
    out = rng.standard_normal((b, n, d), dtype=np.float32)
    for p in range(b):
        centers = rng.standard_normal((k, d), dtype=np.float32) * 3
        out[p] += centers[rng.integers(0, k, n)]
    return out


def _fit(lib, X, C, iters):
    """Fit every problem of X from C with ``iters`` iterations at most; returns (centers,
    mean iterations per problem)."""
    import torch

    k = C.shape[1]
    if lib == "torchkmeans (batched)":
        from torchkmeans import kmeans_batched

        r = kmeans_batched(X, k, init=C, max_iter=iters, tol=0.0)
        return r.centers, float(r.n_iter.mean())
    if lib == "torchkmeans (loop)":
        from torchkmeans import kmeans

        rs = [kmeans(X[b], k, init=C[b], n_init=1, max_iter=iters, tol=0.0) for b in range(len(X))]
        return np.stack([r.centers for r in rs]), float(np.mean([r.n_iter for r in rs]))
    if lib == "scikit-learn (loop)":
        from sklearn.cluster import KMeans

        ms = [
            KMeans(k, init=C[b], n_init=1, max_iter=iters, tol=0.0).fit(X[b]) for b in range(len(X))
        ]
        return np.stack([m.cluster_centers_ for m in ms]), float(np.mean([m.n_iter_ for m in ms]))
    if lib == "faiss (loop)":
        import faiss

        out = []
        for b in range(len(X)):
            km = faiss.Kmeans(X.shape[2], k, niter=iters, max_points_per_centroid=10**9,
                              min_points_per_centroid=1, seed=0, verbose=False)  # fmt: skip
            km.train(np.ascontiguousarray(X[b]), init_centroids=np.ascontiguousarray(C[b]))
            out.append(km.centroids)
        return np.stack(out), float(iters)
    x, c = torch.as_tensor(X), torch.as_tensor(C)
    if lib == "fast-pytorch-kmeans":
        from fast_pytorch_kmeans import MultiKMeans

        km = MultiKMeans(n_clusters=k, max_iter=iters, tol=-1.0, verbose=0)
        km.fit_predict(x, centroids=c.clone())
        return km.centroids.numpy(), float(iters)
    if lib == "torch-kmeans":
        from torch_kmeans import KMeans

        km = KMeans(n_clusters=k, max_iter=iters, tol=1e-12, num_init=1, verbose=False)
        km.fit(x, centers=c.clone())
        return km._result.centers.numpy(), float(iters)
    if lib == "flash-kmeans (torch fallback)":
        from flash_kmeans.torch_fallback import batch_kmeans_Euclid_torch_native

        _, centers, done = batch_kmeans_Euclid_torch_native(
            x, k, max_iters=iters, tol=0.0, init_centroids=c.clone()
        )
        return centers.numpy(), float(done)
    raise ValueError(lib)


def mean_inertia(X, centers):
    import torch

    x, c = torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(centers, dtype=torch.float64)
    total = 0.0
    for s in range(0, x.shape[0], 256):
        d = torch.cdist(x[s : s + 256], c[s : s + 256]) ** 2
        total += float(d.min(dim=2).values.sum())
    return total / x.shape[0]


def measure(lib, case, cases):
    """One (library, case) in this process: JSON with per-iteration seconds and inertia."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    b, n, d, k, kind, (lo, hi), subsets = cases[case]
    X = make_data(b, n, d, kind, k)
    scale = 1.0
    if lib in subsets:
        scale = b / subsets[lib]
        X = X[: subsets[lib]]
    C = np.ascontiguousarray(X[:, :k])
    _fit(lib, X[: min(len(X), 4)], C[: min(len(X), 4)], 1)  # warm-up (imports, thread pools)
    times = {lo: [], hi: []}
    for _ in range(REPEATS):
        for iters in (lo, hi):
            t = time.perf_counter()
            centers, done = _fit(lib, X, C, iters)
            times[iters].append(time.perf_counter() - t)
            if iters == lo:
                it_lo = done
            else:
                it_hi, last = done, centers
    per_iter = (min(times[hi]) - min(times[lo])) / max(it_hi - it_lo, 1e-9) * scale
    m = min(subsets.values(), default=b)  # the inertia over the problems every library ran
    return {"per_iter": per_iter, "iters": it_hi, "inertia": mean_inertia(X[:m], last[:m]),
            "scaled": scale != 1.0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--case", action="append", help="run only this case (repeatable)")
    p.add_argument("--one", nargs=2, metavar=("LIBRARY", "CASE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    cases = QUICK if args.quick else CASES
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], cases)))
        return
    lines = [
        "## Many problems at once (kmeans_batched)",
        "",
        f"Machine: {machine()}; torch threads: {os.cpu_count()}. Command: `env -u "
        "OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/batched.py"
        + (" --quick" if args.quick else "")
        + "`. Time per iteration of the whole batch, each measurement in a fresh process; "
        "ratio = ours (batched) / that library (the fastest of 3 fits of each length); mean inertia "
        "over the problems every library ran, relative to ours, after the same iterations. (*m): ran the first m problems, time scaled to all.",
        "",
    ]
    for case, (b, n, d, k, kind, (lo, hi), subsets) in cases.items():
        if args.case and case not in args.case:
            continue
        lines += [
            f"### {case}: {b:,} problems of {n:,} x {d}, K = {k} ({kind}, float32; "
            f"iterations {lo} -> {hi})",
            "",
            "| library | per iteration | ours / it | mean iterations | inertia vs ours |",
            "|---|---|---|---|---|",
        ]
        ours = None
        ours_inertia = None
        for lib in LIBRARIES:
            cmd = [sys.executable, __file__, "--one", lib, case] + (
                ["--quick"] if args.quick else []
            )
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
            except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                err = getattr(exc, "stderr", "") or str(exc)
                lines.append(f"| {lib} | failed: {err.strip().splitlines()[-1][:80]} | | | |")
                continue
            if ours is None:
                ours, ours_inertia = r["per_iter"], r["inertia"]
            star = f" (*{subsets[lib]})" if r["scaled"] else ""
            lines.append(
                f"| {lib} | {r['per_iter'] * 1e3:.1f} ms{star} | {ours / r['per_iter']:.2f} | "
                f"{r['iters']:.2f} | {r['inertia'] / ours_inertia:.4f} |"
            )
            print(lines[-1], flush=True)
        lines.append("")
    publish("batched", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
