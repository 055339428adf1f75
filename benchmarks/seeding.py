"""Greedy k-means++ seeding: torchkmeans against scikit-learn's, and against one assignment pass.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/seeding.py [--quick]

Per shape (float32 blobs, as benchmarks/run.py makes them): the time of
``torchkmeans.kmeans_plusplus`` and ``sklearn.cluster.kmeans_plusplus`` (both greedy, 2 + ln K
trials per center; seed 0, best of ``--repeats``), and the time of one full, unpruned
assignment pass of the same shape (``torch.addmm`` of the row block with the K x D centers and
an argmin, in blocks of 8192 rows: the GEMM a Lloyd pass without pruning costs). Rewrites the
"seeding" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, publish  # noqa: E402

SHAPES = [(200_000, 128, 1024), (1_000_000, 32, 256), (200_000, 32, 256)]
QUICK = [(50_000, 32, 128)]


def blobs(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import make_blobs

    return make_blobs(n, n_features=d, centers=k, random_state=seed)[0].astype(np.float32)


def one_pass(X: np.ndarray, C: np.ndarray) -> float:
    """Seconds for one unpruned assignment pass: scores by one GEMM per block, then argmin."""
    import torch

    x, c = torch.from_numpy(X), torch.from_numpy(C)
    c_sq = (c * c).sum(1)
    ct = c.t().contiguous()
    t = time.perf_counter()
    for s in range(0, x.shape[0], 8192):
        torch.addmm(c_sq, x[s : s + 8192], ct, alpha=-2).argmin(dim=1)
    return time.perf_counter() - t


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import kmeans_plusplus as sk_kpp

    import torchkmeans
    from torchkmeans import kmeans_plusplus

    rows = []
    for n, d, k in QUICK if args.quick else SHAPES:
        X = blobs(n, d, k)
        ours = best(lambda: kmeans_plusplus(X, k, random_state=0), args.repeats)  # noqa: B023
        centers, _ = kmeans_plusplus(X, k, random_state=0)
        gemm = best(lambda: one_pass(X, centers), 3)  # noqa: B023
        theirs = best(lambda: sk_kpp(X, k, random_state=0), 1)  # noqa: B023
        row = (n, d, k, ours, gemm, theirs)
        print(row, flush=True)
        rows.append(row)
    blas = "unset" if "OPENBLAS_CORETYPE" not in os.environ else os.environ["OPENBLAS_CORETYPE"]
    lines = [
        "## Seeding: greedy k-means++",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/seeding.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}.",
        "",
        "float32 blobs (K centers). Both seedings are greedy k-means++ with 2 + ln K trials per "
        f"center, seed 0 (ours: best of {args.repeats}; scikit-learn: one run). One pass: a "
        "full, unpruned assignment pass of the same shape (GEMM scores by `torch.addmm` in "
        "blocks of 8192 rows, then argmin; best of 3). Targets (issue 15): at most 4 passes and "
        "at most 0.15x scikit-learn's time.",
        "",
        "| rows x features x K | torchkmeans k-means++ | one pass | in passes | scikit-learn "
        "k-means++ | ours / scikit-learn |",
        "|---|---|---|---|---|---|",
    ]
    for n, d, k, ours, gemm, theirs in rows:
        lines.append(
            f"| {n:,} x {d} x {k} | {ours:.2f} s | {gemm:.3f} s | {ours / gemm:.1f} | "
            f"{theirs:.2f} s | {ours / theirs:.2f}x |"
        )
    publish("seeding", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
