"""Run one call on a large scipy CSR matrix in this fresh process and report its extra peak
resident memory and time (JSON).

usage: python sparse_memory_probe.py N D NNZ_PER_ROW K [dtype] [mode]
mode: fit (default), predict, plusplus, minibatch
"""

import json
import sys
import time

import numpy as np
from memory_probe import peak_bytes, reset_peak, rss_bytes


def sparse_rows(n, d, per_row, k, dtype, seed=0):
    """A CSR matrix of n rows with about ``per_row`` distinct sorted columns each, half of them
    in a column range of the row's cluster; built block by block (no temporary of its size)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    width = max(1, d // k)
    indptr = np.zeros(n + 1, dtype=np.int64)
    cols, vals = [], []
    block = 20_000
    for s in range(0, n, block):
        e = min(n, s + block)
        m = e - s
        counts = rng.poisson(per_row, m).clip(1, d)
        rows = np.repeat(np.arange(m), counts)
        topic = rng.integers(0, k, m)[rows]
        own = rng.random(rows.shape[0]) < 0.5
        c = np.where(
            own,
            topic * width + rng.integers(0, width, rows.shape[0]),
            rng.integers(0, d, rows.shape[0]),
        ).clip(0, d - 1)
        key = np.unique(rows.astype(np.int64) * d + c)  # sorted, no duplicate in a row
        r, c = key // d, key % d
        indptr[s + 1 : e + 1] = indptr[s] + np.cumsum(np.bincount(r, minlength=m))
        cols.append(c.astype(np.int32))
        vals.append(rng.random(key.shape[0]).astype(dtype) + 0.1)
    indices = np.concatenate(cols)
    data = np.concatenate(vals)
    del cols, vals
    return sp.csr_matrix((data, indices, indptr.astype(np.int32)), shape=(n, d))


def main() -> None:
    n, d, per_row, k = (int(a) for a in sys.argv[1:5])
    dtype = np.dtype(sys.argv[5] if len(sys.argv) > 5 else "float64")
    mode = sys.argv[6] if len(sys.argv) > 6 else "fit"
    import torch

    import torchkmeans

    X = sparse_rows(n, d, per_row, k, dtype)
    data_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    warm = X[:5000]
    km = torchkmeans.KMeans(k, random_state=0, max_iter=3).fit(warm)  # warm up outside
    km.predict(warm)
    torchkmeans.kmeans_plusplus(warm, k, random_state=0)
    torchkmeans.MiniBatchKMeans(k, random_state=0, max_iter=1).fit(warm)
    import gc

    gc.collect()
    reset_peak()
    base = rss_bytes()
    t0 = time.perf_counter()
    n_iter = 0
    if mode == "fit":
        km = torchkmeans.KMeans(k, random_state=0, max_iter=5, tol=0.0).fit(X)
        kept = km.labels_.nbytes
        n_iter = km.n_iter_
    elif mode == "predict":
        kept = km.predict(X).nbytes
    elif mode == "minibatch":
        km = torchkmeans.MiniBatchKMeans(k, random_state=0, max_iter=1, batch_size=4096).fit(X)
        kept = km.labels_.nbytes
    else:
        torchkmeans.kmeans_plusplus(X, k, random_state=0)
        kept = 0
    seconds = time.perf_counter() - t0
    extra = peak_bytes() - base
    print(
        json.dumps(
            {
                "extra": extra,
                "data": data_bytes,
                "dense": n * d * dtype.itemsize,
                "centers": k * d * dtype.itemsize,
                "nnz": int(X.nnz),
                "kept": kept,
                "seconds": seconds,
                "n_iter": n_iter,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
