"""k-means on sparse data (scipy CSR) against scikit-learn's sparse k-means.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py [--quick]

Per case: Lloyd from the same initial centers (time, iterations, whether the labels agree,
inertia relative to scikit-learn), then a default fit (k-means++, one run) of each. Rewrites the
"sparse" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from _results import machine, write_section  # noqa: E402
from sparse_memory_probe import sparse_rows  # noqa: E402

# (rows, features, stored values per row, K)
CASES = [
    (20_000, 5_000, 40, 10),
    (100_000, 20_000, 50, 20),
    (100_000, 20_000, 50, 100),
    (200_000, 50_000, 50, 10),
]
QUICK = [(20_000, 5_000, 40, 10), (50_000, 20_000, 50, 32)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both libraries (torch and scikit-learn's OpenMP); default: theirs",
    )
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import KMeans as Sk
    from threadpoolctl import threadpool_limits

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    import torchkmeans
    from torchkmeans import KMeans

    rows = []
    for n, d, per_row, k in QUICK if args.quick else CASES:
        X = sparse_rows(n, d, per_row, k, np.float64)
        init = X[np.random.RandomState(0).choice(n, k, replace=False)].toarray()
        KMeans(k, init=init, max_iter=2).fit(X[:2000])  # warm-up
        Sk(k, init=init, n_init=1, max_iter=2).fit(X[:2000])
        t = time.perf_counter()
        ours = KMeans(k, init=init, max_iter=50).fit(X)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        sk = Sk(k, init=init, n_init=1, max_iter=50, algorithm="lloyd").fit(X)
        t_sk = time.perf_counter() - t
        same = bool(np.array_equal(ours.labels_, sk.labels_)) and ours.n_iter_ == sk.n_iter_
        t = time.perf_counter()
        ours_pp = KMeans(k, random_state=0).fit(X)
        t_ours_pp = time.perf_counter() - t
        t = time.perf_counter()
        sk_pp = Sk(k, random_state=0, n_init=1).fit(X)
        t_sk_pp = time.perf_counter() - t
        row = (
            f"{n:,} x {d:,}, {X.nnz / n:.0f}/row",
            k,
            (t_ours, t_sk, ours.n_iter_, sk.n_iter_, same, ours.inertia_ / sk.inertia_),
            (t_ours_pp, t_sk_pp, ours_pp.inertia_ / sk_pp.inertia_),
        )
        print(row, flush=True)
        rows.append(row)
    blas = "unset" if "OPENBLAS_CORETYPE" not in os.environ else os.environ["OPENBLAS_CORETYPE"]
    lines = [
        "## Sparse input (scipy CSR, float64) against scikit-learn",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py"
        + (" --quick" if args.quick else "")
        + (f" --threads {args.threads}" if args.threads is not None else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}.",
        "",
        "Synthetic rows with about the given number of stored values each, half of them in a "
        "column range of the row's cluster. Lloyd: both from the same initial centers (K "
        "distinct rows), max_iter=50; 'same' means the same labels and n_iter. Default fit: "
        "k-means++ (one run), seed 0 for both; the inertia ratio compares different seedings. "
        "Times are whole fits (validation, seeding, final labels pass included).",
        "",
        "| data | K | Lloyd: ours | sklearn | iterations (ours / sklearn) | same | inertia "
        "ratio | default fit: ours | sklearn | inertia ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, k, (ta, tb, ia, ib, same, r), (pa, pb, pr) in rows:
        lines.append(
            f"| {name} | {k} | {ta:.2f} s | {tb:.2f} s | {ia} / {ib} | {'yes' if same else 'no'} "
            f"| {r:.9f} | {pa:.2f} s | {pb:.2f} s | {pr:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("sparse", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
