"""Default-fit quality against scikit-learn over many seeds: how much of an inertia difference
over the lloyd benchmark's 3 seeds is which local minimum a seed lands in.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/quality.py [--seeds 10]

Both run their default fit (`KMeans(k, random_state=seed)`: greedy k-means++, one run, tol 1e-4)
on the data of benchmarks/run.py (blobs around k random centers, float32) for seeds 0..S-1. The
two use different random streams, so seed s of one is not paired with seed s of the other: what
compares is the mean inertia, with its standard error. Rewrites the "quality" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402
from run import Shape, make_data  # noqa: E402

# the grid's default-fit shapes (1M x 32 x 256 at a fifth of the rows: 10 of scikit-learn's
# fits there take 8 minutes)
SHAPES = [
    Shape(300, 2, 4),
    Shape(1_000_000, 2, 16),
    Shape(200_000, 32, 256),
    Shape(100_000, 768, 100),
]
QUICK = [Shape(300, 2, 4), Shape(20_000, 16, 32)]


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    err = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
    return float(a.mean()), err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import KMeans as SkKMeans

    import torchkmeans
    from torchkmeans import KMeans

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in QUICK if args.quick else SHAPES:
            path, _ = make_data(shape, Path(tmp))
            X = np.load(path)
            res = {}
            for label, make in (
                ("torchkmeans", lambda s, k=shape.k: KMeans(k, random_state=s)),
                ("scikit-learn", lambda s, k=shape.k: SkKMeans(k, random_state=s)),
            ):
                inertias, times = [], []
                for seed in range(args.seeds):
                    t = time.perf_counter()
                    est = make(seed).fit(X)
                    times.append(time.perf_counter() - t)
                    inertias.append(float(est.inertia_))
                res[label] = (mean_and_error(inertias), float(np.mean(times)))
                print(shape, label, res[label], flush=True)
            rows.append((shape, res))
    blas = os.environ.get("OPENBLAS_CORETYPE", "unset")
    lines = [
        "## Default-fit quality over many seeds",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/quality.py"
        + (" --quick" if args.quick else "")
        + (f" --seeds {args.seeds}" if args.seeds != 10 else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}.",
        "",
        f"`KMeans(k, random_state=seed).fit(X)` for seeds 0..{args.seeds - 1}, both libraries, "
        "on the data of benchmarks/run.py (float32 blobs). The random streams differ, so seeds "
        "are not paired: the mean inertia of each, with its standard error, is what compares. "
        "A ratio within about two combined standard errors of 1 is which local minimum the "
        "seeds land in, not a difference between the algorithms (both are greedy k-means++ "
        "with 2 + log k trials, then Lloyd to tol 1e-4).",
        "",
        "| n x d x k | torchkmeans mean inertia | scikit-learn mean inertia | ratio | "
        "combined standard error of the ratio | mean fit time ratio |",
        "|---|---|---|---|---|---|",
    ]
    for shape, res in rows:
        ((ma, ea), ta), ((mb, eb), tb) = res["torchkmeans"], res["scikit-learn"]
        ratio = ma / mb
        err = ratio * float(np.hypot(ea / ma, eb / mb))
        lines.append(
            f"| {shape.n:,} x {shape.d} x {shape.k} | {ma:.6g} ± {ea:.2g} | {mb:.6g} ± {eb:.2g} "
            f"| {ratio:.4f} | {err:.4f} | {ta / tb:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("quality", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
