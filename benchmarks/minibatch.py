"""MiniBatchKMeans against scikit-learn's, same settings, same data, 3 seeds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/minibatch.py [--quick]

Reports the mean fit time and the mean final inertia (on all rows, computed the same way for
both from their centers) and rewrites the "minibatch" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

CASES = [
    ("digits (1797 x 64)", None, 10),
    ("blobs 200k x 32", (200_000, 32), 64),
    ("blobs 1M x 16", (1_000_000, 16), 100),
    ("blobs 100k x 256", (100_000, 256), 256),
]
QUICK = [("digits (1797 x 64)", None, 10), ("blobs 50k x 16", (50_000, 16), 32)]


def data(shape: tuple[int, int] | None, k: int) -> np.ndarray:
    if shape is None:
        from sklearn.datasets import load_digits

        return load_digits().data.astype(np.float32)
    from sklearn.datasets import make_blobs

    n, d = shape
    return make_blobs(n, d, centers=k, cluster_std=3.0, random_state=0)[0].astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import MiniBatchKMeans as Sk

    import torchkmeans
    from torchkmeans import MiniBatchKMeans, metrics

    rows = []
    for name, shape, k in QUICK if args.quick else CASES:
        X = data(shape, k)
        Sk(k, n_init=1, random_state=0).fit(X[:5000])  # warm-up
        MiniBatchKMeans(k, random_state=0).fit(X[:5000])
        res = {}
        for label, make in (
            ("torchkmeans", lambda s, k=k: MiniBatchKMeans(k, random_state=s)),
            ("scikit-learn", lambda s, k=k: Sk(k, random_state=s, n_init="auto")),
        ):
            times, inertias, steps = [], [], []
            for seed in range(args.seeds):
                est = make(seed)
                t = time.perf_counter()
                est.fit(X)
                times.append(time.perf_counter() - t)
                inertias.append(metrics.inertia(X, np.asarray(est.cluster_centers_)))
                steps.append(est.n_steps_)
            res[label] = (float(np.mean(times)), float(np.mean(inertias)), float(np.mean(steps)))
            print(name, label, res[label], flush=True)
        rows.append((name, k, res))
    blas = "unset" if "OPENBLAS_CORETYPE" not in os.environ else os.environ["OPENBLAS_CORETYPE"]
    lines = [
        "## MiniBatchKMeans against scikit-learn",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/minibatch.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}.",
        "",
        f"Default settings for both (batch_size=1024, max_iter=100, max_no_improvement=10, "
        f"k-means++ on init_size=3072 rows), {args.seeds} seeds each, float32 data. Inertia is "
        "on all rows, computed the same way for both; time is the whole fit including the "
        "final labels pass.",
        "",
        "| data | K | torchkmeans time | sklearn time | time ratio | torchkmeans inertia / "
        "sklearn | mean steps (ours / sklearn) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, k, res in rows:
        (ta, ia, sa), (tb, ib, sb) = res["torchkmeans"], res["scikit-learn"]
        lines.append(
            f"| {name} | {k} | {ta:.3f} s | {tb:.3f} s | {ta / tb:.2f}x | {ia / ib:.4f} | "
            f"{sa:.0f} / {sb:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("minibatch", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
