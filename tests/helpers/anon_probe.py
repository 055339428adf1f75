"""Fit a memory-mapped file in this fresh process and report its peak anonymous memory (JSON).

usage: python anon_probe.py FILE.npy K MODE   (MODE: kmeans | minibatch | predict)

Anonymous memory (RssAnon) excludes the file's page cache, which a memmap fit legitimately
fills; it is sampled every millisecond by a thread while the fit runs (torch releases the GIL).
"""

import json
import sys
import threading
import time

import numpy as np


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def main() -> None:
    path, k, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import torchkmeans

    X = np.load(path, mmap_mode="r")
    warm = np.asarray(X[:20_000])
    torchkmeans.KMeans(k, random_state=0, max_iter=2).fit(warm).predict(warm)
    torchkmeans.MiniBatchKMeans(k, random_state=0, max_iter=1).fit(warm)
    del warm
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.001)

    base = rss_anon()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    kept = 0
    if mode == "kmeans":
        km = torchkmeans.KMeans(k, random_state=0, max_iter=3, tol=0.0).fit(X)
        kept = km.labels_.nbytes
    elif mode == "minibatch":
        km = torchkmeans.MiniBatchKMeans(k, random_state=0, max_iter=1, compute_labels=True)
        kept = km.fit(X).labels_.nbytes
    else:
        km = torchkmeans.KMeans(k, random_state=0, max_iter=1).fit(X[:50_000])
        base = rss_anon()
        kept = km.predict(X).nbytes
    stop.set()
    thread.join()
    peak[0] = max(peak[0], rss_anon())
    print(json.dumps({"extra": peak[0] - base, "kept": kept, "file": X.nbytes}))


if __name__ == "__main__":
    main()
