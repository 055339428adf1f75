"""k-means on sparse TF-IDF-like data against scikit-learn (and scikit-learn-intelex when it is
installed and accepts the input), on one machine, in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py [--quick]
        [--docs 100000] [--terms 50000] [--ks 20,1000] [--seeds 5] [--iters 5] [--no-write]

The data: documents of 20-500 terms (uniform), terms drawn from a Zipf law over the vocabulary,
term counts weighted by smooth idf, rows l2-normalized (what TfidfVectorizer gives), float64
scipy CSR. For each K and metric:

- time per Lloyd iteration from the same initial centers (K rows of the data), as
  (T(I) - T(1)) / (I - 1), so fixed costs cancel; cosine for scikit-learn is its Euclidean
  k-means on the same l2-normalized rows (what users run for spherical k-means);
- the default fit (``KMeans(K, random_state=s)``, k-means++ then Lloyd) over ``--seeds`` seeds:
  mean time and mean inertia (Euclidean inertia of each fit's centers, computed the same way).

Rewrites the "sparse" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402


def tfidf(n_docs: int, n_terms: int, seed: int = 0):  # -> scipy.sparse.csr_matrix
    """TF-IDF-like rows: Zipf term frequencies, 20-500 terms per document, smooth idf, l2."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 501, n_docs)
    ranks = np.arange(1, n_terms + 1, dtype=np.float64)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    terms = rng.choice(n_terms, size=int(lengths.sum()), p=p).astype(np.int32)
    terms = rng.permutation(n_terms).astype(np.int32)[terms]  # frequent terms anywhere
    docs = np.repeat(np.arange(n_docs, dtype=np.int32), lengths)
    counts = sp.csr_matrix(
        (np.ones(len(terms)), (docs, terms)), shape=(n_docs, n_terms), dtype=np.float64
    )
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=n_terms)
    idf = np.log((1 + n_docs) / (1 + df)) + 1.0
    X = counts.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-300)) @ X
    return X.tocsr()


def inertia(X, centers: np.ndarray, chunk: int = 4096) -> float:
    """Euclidean inertia of ``centers`` on sparse ``X``, the same way for every peer."""
    c = np.asarray(centers, dtype=np.float64)
    csq = (c * c).sum(axis=1)
    total = 0.0
    for start in range(0, X.shape[0], chunk):
        x = X[start : start + chunk]
        xsq = np.asarray(x.multiply(x).sum(axis=1)).ravel()
        d = xsq[:, None] - 2.0 * (x @ c.T) + csq[None, :]
        total += float(np.maximum(d.min(axis=1), 0.0).sum())
    return total


def peers(metric: str):
    """(name, make(k, **kw)) for every peer installed; cosine for scikit-learn's is Euclidean
    k-means on the (already unit) rows."""
    from sklearn.cluster import KMeans as SkKMeans

    from torchkmeans import KMeans

    found = [
        ("torchkmeans", lambda k, **kw: KMeans(k, metric=metric, **kw)),
        ("scikit-learn", lambda k, **kw: SkKMeans(k, algorithm="lloyd", **kw)),
    ]
    try:
        from sklearnex.cluster import KMeans as ExKMeans

        found.append(("scikit-learn-intelex", lambda k, **kw: ExKMeans(k, **kw)))
    except ImportError:
        pass
    return found


def per_iteration(make, X, k: int, init: np.ndarray, iters: int) -> float:
    def timed(n: int) -> float:
        est = make(k, init=init, n_init=1, max_iter=n, tol=0.0)
        t = time.perf_counter()
        est.fit(X)
        return time.perf_counter() - t

    timed(1)  # warm-up
    return (timed(iters) - timed(1)) / (iters - 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20,000 x 10,000, K = 20 and 100")
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--terms", type=int, default=50_000)
    p.add_argument("--ks", default="20,1000")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.docs, args.terms, args.ks = 20_000, 10_000, "20,100"
    import sklearn
    import torch

    import torchkmeans

    X = tfidf(args.docs, args.terms)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"data: {X.shape}, {X.nnz} stored values ({X.nnz / X.shape[0]:.0f} per row)")
    rows = []
    for k in ks:
        init = X[np.random.default_rng(1).choice(X.shape[0], k, replace=False)].toarray()
        for metric in ("euclidean", "cosine"):
            for name, make in peers(metric):
                if name == "scikit-learn-intelex" and metric == "cosine":
                    continue
                try:
                    it = per_iteration(make, X, k, init, args.iters)
                    times, inertias = [], []
                    for seed in range(args.seeds):
                        est = make(k, random_state=seed)
                        t = time.perf_counter()
                        est.fit(X)
                        times.append(time.perf_counter() - t)
                        inertias.append(inertia(X, np.asarray(est.cluster_centers_)))
                    row = (k, metric, name, it, float(np.mean(times)), float(np.mean(inertias)))
                except Exception as exc:  # a peer that refuses the input is reported, not fatal
                    row = (k, metric, name, float("nan"), float("nan"), float("nan"))
                    print(f"{name}: {type(exc).__name__}: {exc}")
                print(row, flush=True)
                rows.append(row)
    lines = [
        "## Sparse TF-IDF data",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py"
        + (" --quick" if args.quick else "")
        + f" --docs {args.docs} --terms {args.terms} --ks {args.ks} --seeds {args.seeds}` "
        f"({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}.",
        "",
        f"Data: {X.shape[0]:,} documents x {X.shape[1]:,} terms, {X.nnz / X.shape[0]:.0f} stored "
        "values per row (Zipf term frequencies, 20-500 terms per document, smooth idf, "
        "l2-normalized rows), float64 CSR. Time per iteration from the same initial centers, "
        f"over {args.iters} iterations; default fit: mean over {args.seeds} seeds; inertia "
        "relative to scikit-learn's (Euclidean, computed the same way).",
        "",
        "| K | metric | peer | time / iteration | vs scikit-learn | default fit | vs "
        "scikit-learn | fit inertia / scikit-learn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ref = {(k, m): r for (k, m, name, *r) in rows if name == "scikit-learn"}
    for k, metric, name, it, fit, ine in rows:
        base = ref.get((k, metric), [float("nan")] * 3)
        lines.append(
            f"| {k} | {metric} | {name} | {it * 1e3:.1f} ms | {it / base[0]:.2f}x | {fit:.2f} s "
            f"| {fit / base[1]:.2f}x | {ine / base[2]:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("sparse", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
