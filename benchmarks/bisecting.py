"""BisectingKMeans against flat KMeans (k-means++) and scikit-learn's BisectingKMeans: fit time
as the number of clusters grows.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bisecting.py [--quick]

Same float32 blobs for every fit, default settings, one fit per (estimator, K) after a warm-up.
Reports the fit time, its growth from one K to the next (4x more clusters each), the inertia of
each fit's own labels relative to flat KMeans, and the depth of our tree, and rewrites the
"bisect" section of benchmarks/RESULTS.md.
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

SHAPE, KS = (200_000, 32), (64, 256, 1024, 4096)
QUICK_SHAPE, QUICK_KS = (20_000, 16), (16, 64, 256)
BLOBS = 1000  # centers of the generated data, whatever K is fitted


def data(shape: tuple[int, int]) -> np.ndarray:
    from sklearn.datasets import make_blobs

    n, d = shape
    X, _ = make_blobs(n, d, centers=BLOBS, cluster_std=3.0, center_box=(-50, 50), random_state=0)
    return X.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    import sklearn
    import torch
    from sklearn.cluster import BisectingKMeans as SkBisecting

    import torchkmeans
    from torchkmeans import BisectingKMeans, KMeans

    shape, ks = (QUICK_SHAPE, QUICK_KS) if args.quick else (SHAPE, KS)
    load_before = os.getloadavg()[0]
    X = data(shape)
    for make in (BisectingKMeans, KMeans, SkBisecting):  # warm-up
        make(8, random_state=0).fit(X[:5000])
    peers = {
        "torchkmeans BisectingKMeans": lambda k: BisectingKMeans(k, random_state=0),
        "torchkmeans KMeans (k-means++)": lambda k: KMeans(k, random_state=0),
        "scikit-learn BisectingKMeans": lambda k: SkBisecting(k, random_state=0),
    }
    results: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in peers}
    depth: dict[int, int] = {}
    for k in ks:
        for name, make in peers.items():
            est = make(k)
            t = time.perf_counter()
            est.fit(X)
            seconds = time.perf_counter() - t
            results[name][k] = (seconds, float(est.inertia_))
            if isinstance(est, BisectingKMeans):
                depth[k] = est._tree.depth
            print(f"K={k} {name}: {seconds:.2f} s, inertia {est.inertia_:.6g}", flush=True)
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    blas = "unset" if "OPENBLAS_CORETYPE" not in os.environ else os.environ["OPENBLAS_CORETYPE"]
    n, d = shape
    lines = [
        "## BisectingKMeans: time as K grows",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bisecting.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, torchkmeans "
        f"{torchkmeans.__version__}; OPENBLAS_CORETYPE {blas}; 1-minute load average {load} "
        "(other work shared the machine: absolute times are noisy, the growth with K is the "
        "point).",
        "",
        f"{n:,} x {d} float32 blobs ({BLOBS} centers), one fit per cell with default settings "
        "and random_state=0: BisectingKMeans (init='random', n_init=1, biggest_inertia), "
        "KMeans (greedy k-means++, n_init=1, Lloyd to tol=1e-4). Growth: the time over the "
        "time at the previous K (4x fewer clusters). Inertia: of each fit's own labels, over "
        "that of flat KMeans. Depth: splits from the root to the deepest leaf of our tree.",
        "",
        "| K | " + " | ".join(f"{name} time (growth)" for name in peers) + " | bisecting "
        "inertia / flat (ours, sklearn) | depth |",
        "|---|" + "---|" * len(peers) + "---|---|",
    ]
    flat = "torchkmeans KMeans (k-means++)"
    for i, k in enumerate(ks):
        cells = []
        for name in peers:
            seconds = results[name][k][0]
            growth = "" if i == 0 else f" ({seconds / results[name][ks[i - 1]][0]:.1f}x)"
            cells.append(f"{seconds:.2f} s{growth}")
        ours = results["torchkmeans BisectingKMeans"][k][1] / results[flat][k][1]
        theirs = results["scikit-learn BisectingKMeans"][k][1] / results[flat][k][1]
        lines.append(
            f"| {k} | " + " | ".join(cells) + f" | {ours:.3f}, {theirs:.3f} | {depth[k]} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("bisect", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
