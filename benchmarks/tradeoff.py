"""The speed/quality trade-off users face: inertia against wall time for several settings of
each library.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/tradeoff.py [--quick]

faiss is often chosen because a capped, subsampled run is fast and "good enough". For each data
set and each setting of each library (ours: max_iter, tol, init, init_size; scikit-learn and
scikit-learn-intelex: max_iter, tol; faiss: niter, max_points_per_centroid), the mean wall time
and mean inertia of a fit over 3 seeds; each library runs in a fresh process, its settings one
after another. Inertia is computed here, in float64, from each fit's centers, and shown relative
to the lowest found on that data set. A peer's point is matched when some torchkmeans setting is
at least as fast and at least as good. Rewrites the "tradeoff" section of
benchmarks/RESULTS.md and draws benchmarks/tradeoff.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, publish  # noqa: E402

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1, 2)
LIBRARIES = ("torchkmeans", "sklearn", "sklearnex", "faiss")


def dataset(name: str, quick: bool) -> tuple[np.ndarray, int]:
    """float32 rows and the number of clusters."""
    rng = np.random.default_rng(0)
    if name == "blobs":
        from sklearn.datasets import make_blobs

        n = 20_000 if quick else 200_000
        return make_blobs(n, n_features=32, centers=100, random_state=0)[0].astype(np.float32), 100
    if name == "digits":  # a real data set that scikit-learn ships: 1,797 images of 8 x 8
        from sklearn.datasets import load_digits

        return load_digits().data.astype(np.float32), 10
    if name == "embeddings":  # sentence-embedding-like: a Gaussian mixture on a 24-dim subspace
        n, d, rank, k = (10_000 if quick else 100_000), 384, 24, 100
        basis = rng.normal(size=(rank, d)) / np.sqrt(rank)
        means = rng.normal(size=(k, rank)) * 1.5
        z = means[rng.integers(0, k, n)] + rng.normal(size=(n, rank))
        X = z @ basis + 0.05 * rng.normal(size=(n, d))
        return X.astype(np.float32), k
    raise ValueError(name)


# the settings scikit-learn's API offers every library that follows it
SKLEARN_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("max_iter=20", {"max_iter": 20}),
    ("max_iter=10", {"max_iter": 10}),
    ("max_iter=5", {"max_iter": 5}),
    ("tol=1e-2", {"tol": 1e-2}),
]


def settings(library: str, n: int, k: int) -> list[tuple[str, dict[str, Any]]]:
    if library == "torchkmeans":
        small = min(n, max(20 * k, 4096))
        return SKLEARN_SETTINGS + [
            (f"init_size={small}", {"init_size": small}),
            (f"init_size={small}, max_iter=10", {"init_size": small, "max_iter": 10}),
            (f"init_size={small}, max_iter=5", {"init_size": small, "max_iter": 5}),
            ("init=random, max_iter=10", {"init": "random", "n_init": 1, "max_iter": 10}),
        ]
    if library in ("sklearn", "sklearnex"):
        return SKLEARN_SETTINGS
    if library == "faiss":
        return [
            ("default (niter=25, 256 points per centroid)", {}),
            ("niter=10", {"niter": 10}),
            ("niter=5", {"niter": 5}),
            ("64 points per centroid", {"max_points_per_centroid": 64}),
            ("niter=10, 64 points per centroid", {"niter": 10, "max_points_per_centroid": 64}),
            ("niter=50, all points", {"niter": 50, "max_points_per_centroid": 10**9}),
        ]
    raise ValueError(library)


def fit(library: str, X: np.ndarray, k: int, seed: int, params: dict[str, Any]) -> np.ndarray:
    """One fit; returns its centers."""
    if library == "torchkmeans":
        from torchkmeans import KMeans

        return np.asarray(KMeans(k, random_state=seed, **params).fit(X).cluster_centers_)
    if library == "sklearn":
        from sklearn.cluster import KMeans as SkKMeans

        return SkKMeans(k, random_state=seed, **params).fit(X).cluster_centers_
    if library == "sklearnex":
        from sklearnex.cluster import KMeans as ExKMeans

        return ExKMeans(k, random_state=seed, **params).fit(X).cluster_centers_
    if library == "faiss":
        import faiss

        km = faiss.Kmeans(X.shape[1], k, seed=seed + 1, verbose=False, **params)
        km.train(np.ascontiguousarray(X))
        return km.centroids
    raise ValueError(library)


def worker(library: str, name: str, quick: bool) -> None:
    """Every setting of one library on one data set, as JSON lines on stdout."""
    X, k = dataset(name, quick)
    fit(library, X[: max(k, 500)], k, 0, {})  # imports and kernels, outside the timing
    for label, params in settings(library, X.shape[0], k):
        times, centers = [], []
        for seed in SEEDS:
            t = time.perf_counter()
            centers.append(fit(library, X, k, seed, params).tolist())
            times.append(time.perf_counter() - t)
        print(json.dumps({"setting": label, "seconds": times, "centers": centers}), flush=True)


def inertia(X: np.ndarray, centers: np.ndarray) -> float:
    import torch

    x = torch.as_tensor(X, dtype=torch.float64)
    c = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    total = 0.0
    for s in range(0, x.shape[0], 8192):
        total += float(torch.cdist(x[s : s + 8192], c).min(dim=1).values.square().sum())
    return total


def measure(name: str, quick: bool, timeout: float) -> list[dict[str, Any]]:
    X, _ = dataset(name, quick)
    points = []
    for library in LIBRARIES:
        cmd = [sys.executable, __file__, "--worker", library, name] + (["--quick"] * quick)
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{name} {library}: timeout", flush=True)
            continue
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name} {library}: error: {last}", flush=True)
            continue
        for line in out.stdout.splitlines():
            r = json.loads(line)
            value = float(np.mean([inertia(X, c) for c in r["centers"]]))
            points.append(
                {
                    "library": library,
                    "setting": r["setting"],
                    "seconds": float(np.mean(r["seconds"])),
                    "inertia": value,
                }  # fmt: skip
            )
            print(name, library, r["setting"], f"{points[-1]['seconds']:.3f} s", value, flush=True)
    best = min(p["inertia"] for p in points)
    for p in points:
        p["relative"] = p["inertia"] / best
    return points


def matched_by(point: dict[str, Any], ours: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest of our settings at least as fast and at least as good as ``point``."""
    ok = [o for o in ours if o["seconds"] <= point["seconds"] and o["inertia"] <= point["inertia"]]
    return min(ok, key=lambda o: o["seconds"]) if ok else None


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5))
    markers = {"torchkmeans": "o", "sklearn": "s", "sklearnex": "^", "faiss": "D"}
    for ax, (name, points) in zip(np.atleast_1d(axes), results.items()):
        for library in LIBRARIES:
            mine = [p for p in points if p["library"] == library]
            if mine:
                ax.scatter([p["seconds"] for p in mine], [p["relative"] for p in mine],
                           marker=markers[library], label=library, alpha=0.8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("wall time of a fit (s, mean of 3 seeds)")
        ax.set_ylabel("inertia / lowest found")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--worker", nargs=2, metavar=("LIBRARY", "DATASET"))
    args = p.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.quick)
        return 0
    started = time.time()
    results = {
        name: measure(name, args.quick, args.timeout) for name in ("blobs", "digits", "embeddings")
    }
    import torch

    lines = [
        "## The speed/quality trade-off",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/tradeoff.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}, {(time.time() - started) / 60:.1f} min). Machine: "
        f"{machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads). Plot: "
        "[tradeoff.png](tradeoff.png).",
        "",
        "Per data set and setting, the mean wall time of a fit and the mean inertia over seeds "
        "0-2 (each library in a fresh process), inertia relative to the lowest found on that "
        "data set. Matched by: the fastest torchkmeans setting at least as fast and at least "
        "as good as that point. Target (issue 15): every peer point matched.",
    ]
    total = matched = 0
    for name, points in results.items():
        X, k = dataset(name, args.quick)
        ours = [q for q in points if q["library"] == "torchkmeans"]
        lines += [
            "",
            f"### {name}: {X.shape[0]:,} x {X.shape[1]}, K = {k}",
            "",
            "| library | setting | time | inertia / lowest | matched by |",
            "|---|---|---|---|---|",
        ]
        for q in sorted(points, key=lambda q: (LIBRARIES.index(q["library"]), q["seconds"])):
            m = None if q["library"] == "torchkmeans" else matched_by(q, ours)
            if q["library"] != "torchkmeans":
                total += 1
                matched += m is not None
            cell = "" if q["library"] == "torchkmeans" else (m["setting"] if m else "**none**")
            lines.append(
                f"| {q['library']} | {q['setting']} | {q['seconds'] * 1e3:.1f} ms | "
                f"{q['relative']:.4f} | {cell} |"
            )
    lines += ["", f"Peer points matched: **{matched} of {total}**."]
    publish("tradeoff", lines, write=not args.no_write)
    if not args.no_write:
        plot(results, HERE / "tradeoff.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
