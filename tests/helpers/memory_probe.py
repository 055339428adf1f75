"""Run one fit in this fresh process and report its extra peak resident memory (JSON).

usage: python memory_probe.py N D K [dtype] [mode]
mode: fit (default), predict, transform, plusplus
"""

import json
import resource
import sys

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_bytes() -> int:
    """The peak resident set size (VmHWM) since the last reset_peak()."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    n, d, k = (int(a) for a in sys.argv[1:4])
    dtype = np.dtype(sys.argv[4] if len(sys.argv) > 4 else "float32")
    mode = sys.argv[5] if len(sys.argv) > 5 else "fit"
    import torch

    import torchkmeans

    rng = np.random.default_rng(0)
    centers = rng.normal(scale=10.0, size=(k, d))
    X = np.empty((n, d), dtype=dtype)
    block = 65536
    for s in range(0, n, block):  # filled block by block: no temporary of the data's size
        e = min(n, s + block)
        X[s:e] = centers[rng.integers(0, k, e - s)] + rng.normal(size=(e - s, d))
    chunk = int(sys.argv[6]) if len(sys.argv) > 6 else None
    km = torchkmeans.KMeans(k, random_state=0, max_iter=3, chunk_size=chunk)
    warm = X[: min(n, 50_000)]
    km.fit(warm)  # warm up kernels, thread pools and their allocator arenas outside the measurement
    km.predict(warm)
    km.transform(warm)
    torchkmeans.kmeans_plusplus(warm, k, random_state=0)
    import gc

    gc.collect()
    reset_peak()
    base = rss_bytes()
    before_peak = peak_bytes()
    if mode == "fit":
        km = torchkmeans.KMeans(k, random_state=0, max_iter=5, tol=0.0, chunk_size=chunk).fit(X)
        kept = km.labels_.nbytes
    elif mode == "predict":
        kept = km.predict(X).nbytes
    elif mode == "transform":
        kept = km.transform(X).nbytes
    else:
        torchkmeans.kmeans_plusplus(X, k, random_state=0)
        kept = 0
    extra = peak_bytes() - base
    print(
        json.dumps(
            {
                "extra": extra,
                "data": X.nbytes,
                "kept": kept,
                "base": base,
                "before_peak": before_peak,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
