"""Fit with a checkpoint in this process (the test kills it with SIGKILL mid-fit).

usage: python checkpoint_fit.py CHECKPOINT [RESULT.npz]
"""

import sys

import numpy as np

import torchkmeans


def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(40, 8))
    return centers[rng.integers(0, 40, 60_000)] + rng.normal(size=(60_000, 8))


PARAMS = dict(n_clusters=40, init="random", n_init=2, tol=0.0, max_iter=60, random_state=5)


def main() -> None:
    km = torchkmeans.KMeans(**PARAMS, checkpoint=sys.argv[1]).fit(data())
    if len(sys.argv) > 2:
        np.savez(sys.argv[2], centers=km.cluster_centers_, labels=km.labels_, n_iter=km.n_iter_)


if __name__ == "__main__":
    main()
