"""k-means on TF-IDF-like sparse data (scipy CSR, float64) against scikit-learn's sparse k-means
and scikit-learn-intelex's (oneDAL; it takes CSR input), when installed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py [--quick]

The data (:func:`tfidf_like`): documents of 20-500 terms drawn from a Zipf law over the
vocabulary (half of each document's terms from its topic's own ranking of the vocabulary, half
from the shared one), raw counts times smoothed idf, rows scaled to unit length, as
``TfidfVectorizer`` makes them. Per case (K, metric):

- time per iteration from the same initial centers (K distinct rows): the difference between
  fits of ``hi`` and ``lo`` iterations (``tol=0``), over ``hi - lo``, so validation, the final
  labels pass and other fixed costs cancel (the fastest of ``REPEATS`` fits of each length when
  K <= 100); whether the labels agree after ``hi`` iterations;
- default fits (``KMeans(K, random_state=s).fit(X)``: k-means++, one run) for each seed: mean
  time and mean inertia of each library.

scikit-learn has no cosine metric; for "cosine" its peer is its Euclidean k-means on the same
unit rows (the usual practice), so labels are not compared there. Rewrites the "sparse" section
of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, publish  # noqa: E402

# (documents, terms, K, metric, (lo, hi) iterations for ours, for scikit-learn, default-fit seeds)
CASES = [
    (100_000, 50_000, 20, "euclidean", (2, 12), (2, 12), 5),
    (100_000, 50_000, 20, "cosine", (2, 12), (2, 12), 5),
    (100_000, 50_000, 1000, "euclidean", (1, 3), (1, 2), 0),
    (100_000, 50_000, 1000, "cosine", (1, 3), (1, 2), 0),
]
QUICK = [
    (20_000, 10_000, 20, "euclidean", (2, 6), (2, 6), 2),
    (20_000, 10_000, 100, "cosine", (1, 3), (1, 3), 1),
]


def tfidf_like(n_docs: int, n_terms: int, *, n_topics: int = 50, seed: int = 0) -> sp.csr_matrix:
    """TF-IDF rows (float64, unit length, canonical CSR) of Zipf-distributed documents."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_terms + 1, dtype=np.float64)
    cdf = np.cumsum(1.0 / ranks**1.07)
    cdf /= cdf[-1]
    lengths = rng.integers(20, 501, size=n_docs)
    doc = np.repeat(np.arange(n_docs), lengths)
    rank = np.searchsorted(cdf, rng.random(doc.size)).clip(max=n_terms - 1)
    topic = rng.integers(0, n_topics, size=n_docs)
    rankings = np.stack([rng.permutation(n_terms) for _ in range(n_topics)]).astype(np.int32)
    own = rng.random(doc.size) < 0.5
    term = np.where(own, rankings[topic[doc], rank], rank)
    counts = sp.csr_matrix((np.ones(doc.size), (doc, term)), shape=(n_docs, n_terms))
    counts.sum_duplicates()
    idf = np.log((1 + n_docs) / (1 + np.bincount(counts.indices, minlength=n_terms))) + 1
    X = sp.csr_matrix(counts.multiply(idf[None, :]))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1.0 / norms) @ X)
    X.sort_indices()
    return X


def _timed(fit, *args):
    gc.collect()
    t = time.perf_counter()
    model = fit(*args)
    return time.perf_counter() - t, model


def _fit_ours(KMeans, X, k, init, metric, iters, seed=None):
    """From ``init`` for ``iters`` iterations (tol=0), or a default fit with ``seed``."""
    if seed is None:
        return KMeans(k, init=init, max_iter=iters, tol=0, metric=metric).fit(X)
    return KMeans(k, random_state=seed, metric=metric).fit(X)


def _fit_theirs(Sk, X, k, init, iters, seed=None):
    if seed is None:
        return Sk(k, init=init, n_init=1, max_iter=iters, tol=0).fit(X)
    return Sk(k, random_state=seed, n_init=1).fit(X)


# Fits of each length per per-iteration measurement (K <= 100; one above): the fastest counts,
# for every library alike (the machine is shared and noisy).
REPEATS = 3


def _per_iteration(fit, lo, hi, repeats):
    """(fastest time of ``hi`` iterations - fastest of ``lo``) / (hi - lo), and the last model
    of ``hi`` iterations."""
    t_lo = min(_timed(fit, lo)[0] for _ in range(repeats))
    runs = [_timed(fit, hi) for _ in range(repeats)]
    return (min(t for t, _ in runs) - t_lo) / (hi - lo), runs[-1][1]


def cosine_inertia(X: sp.csr_matrix, model) -> float:
    """Sum over rows of 1 - cos(row, its center) for a fitted model of unit rows."""
    c = model.cluster_centers_ / np.linalg.norm(model.cluster_centers_, axis=1, keepdims=True)
    row = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    dots = np.bincount(row, weights=X.data * c[model.labels_[row], X.indices], minlength=X.shape[0])
    return float(np.sum(1.0 - dots))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--k", type=int, action="append", help="run only the cases of this K")
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import KMeans as Sk

    import torchkmeans
    from torchkmeans import KMeans

    try:  # Intel's oneDAL k-means, which accepts CSR input
        from sklearnex.cluster import KMeans as SkX
    except ImportError:
        SkX = None

    rows = []
    data: dict[tuple[int, int], sp.csr_matrix] = {}
    cases = [c for c in (QUICK if args.quick else CASES) if not args.k or c[2] in args.k]
    for n, d, k, metric, (lo, hi), (slo, shi), seeds in cases:
        if (n, d) not in data:
            data.clear()
            data[n, d] = tfidf_like(n, d)
        X = data[n, d]
        init = X[np.random.RandomState(0).choice(n, k, replace=False)].toarray()
        KMeans(k, init=init, max_iter=1, metric=metric).fit(X[:2000])  # warm-up
        Sk(k, init=init, n_init=1, max_iter=1).fit(X[:2000])

        fit_ours = functools.partial(_fit_ours, KMeans, X, k, init, metric)
        fit_theirs = functools.partial(_fit_theirs, Sk, X, k, init)
        repeats = REPEATS if k <= 100 else 1
        per_ours, a = _per_iteration(fit_ours, lo, hi, repeats)
        per_sk, b = _per_iteration(fit_theirs, slo, shi, repeats)
        per_x = float("nan")
        if SkX is not None:
            fit_x = functools.partial(_fit_theirs, SkX, X, k, init)
            SkX(k, init=init, n_init=1, max_iter=1).fit(X[:2000])  # warm-up
            per_x, _ = _per_iteration(fit_x, slo, shi, repeats)
        same = "-"
        if metric == "euclidean" and (lo, hi) == (slo, shi):
            same = f"{np.mean(a.labels_ == b.labels_):.4f}"
        fits: list[tuple] = []
        intelex_error: list[str] = []
        for seed in range(seeds):
            ta, fa = _timed(fit_ours, None, seed)
            tb, fb = _timed(fit_theirs, None, seed)
            tx = float("nan")
            if SkX is not None and not intelex_error:
                try:
                    tx = _timed(fit_x, None, seed)[0]
                except RuntimeError as exc:  # (its default fit can fail on CSR input)
                    intelex_error.append(f"{type(exc).__name__}: {str(exc).strip()}")
            # cosine: scikit-learn's partition scored by our objective, sum of 1 - cos
            ib = fb.inertia_ if metric == "euclidean" else cosine_inertia(X, fb)
            fits.append((ta, tb, fa.inertia_, ib, fa.n_iter_, fb.n_iter_, tx))
            print(f"  seed {seed}: ours {ta:.2f} s ({fa.n_iter_} it), sklearn {tb:.2f} s "
                  f"({fb.n_iter_} it), intelex {tx:.2f} s, inertia ratio {fa.inertia_ / ib:.5f}",
                  flush=True)  # fmt: skip
        row = (
            f"{n:,} x {d:,}, {X.nnz / n:.0f}/row", k, metric, per_ours, per_sk, per_x, same, fits,
            intelex_error[0] if intelex_error else None,
        )  # fmt: skip
        print(row[:7], flush=True)
        rows.append(row)

    blas = "unset" if "OPENBLAS_CORETYPE" not in os.environ else os.environ["OPENBLAS_CORETYPE"]
    lines = [
        "## Sparse input: TF-IDF-like data against scikit-learn",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sparse.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__} (its default "
        f"threads), torchkmeans {torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}.",
        "",
        "Data: scipy CSR float64, TF-IDF of Zipf-distributed documents of 20-500 terms (half "
        "from one of 50 topics), smoothed idf, unit rows (`tfidf_like` in the script). Per "
        "iteration: from the same K initial rows, (time of a fit of hi iterations - time of lo) "
        "/ (hi - lo), tol=0; 'same labels': the fraction of equal labels after the same "
        "iterations; the fastest of 3 fits of each length (K <= 100). Intel's scikit-learn-intelex "
        "(oneDAL, which takes CSR input) is timed the same way. Default fit: `KMeans(K, "
        "random_state=s)` (k-means++, one run), mean over "
        "the seeds. Cosine: ours is spherical k-means; scikit-learn's peer is its Euclidean "
        "k-means on the same unit rows, and its partition is scored by our objective (sum of 1 - "
        "cos to the normalized centers) for the inertia ratio.",
        "",
        "| data | K | metric | per iteration: ours | sklearn | ratio | intelex | ratio "
        "| same labels | seeds | default fit: ours | sklearn | ratio | intelex | ratio "
        "| mean inertia ours / sklearn |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failures = []
    for name, k, metric, po, ps, px, same, fits, intelex_error in rows:
        if fits:
            ta, tb = np.mean([f[0] for f in fits]), np.mean([f[1] for f in fits])
            tx = np.mean([f[6] for f in fits])
            ia, ib = np.mean([f[2] for f in fits]), np.mean([f[3] for f in fits])
            x_cells = f"{tx:.2f} s | {ta / tx:.2f}"
            if intelex_error:
                x_cells = "fails (1) | -"
                failures.append(intelex_error)
            fit_cells = (
                f"{len(fits)} | {ta:.2f} s | {tb:.2f} s | {ta / tb:.2f} | {x_cells} | {ia / ib:.4f}"
            )
        else:
            fit_cells = "0 | not run | not run | - | not run | - | -"
        lines.append(
            f"| {name} | {k} | {metric} | {po:.3f} s | {ps:.3f} s | {po / ps:.2f} | "
            f"{px:.3f} s | {po / px:.2f} | {same} | {fit_cells} |"
        )
    if failures:
        lines += ["", f"(1) scikit-learn-intelex's default fit raised `{failures[0]}`."]
    publish("sparse", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
