"""Out-of-core benchmark: exact Lloyd on a memory-mapped file larger than 8 GB.

    python benchmarks/out_of_core.py [--gib 8] [--d 64] [--k 16] [--iters 3] [--workdir DIR]

Writes a float32 .npy file of the requested size (removed afterwards), measures the disk's
sequential read speed on it (page cache dropped with posix_fadvise first), then fits
``KMeans(init=<array>, max_iter=iters, tol=0)`` on ``np.load(path, mmap_mode="r")``:

- cold: the file's pages are dropped from the page cache before every pass (validation,
  moments and each Lloyd iteration read from the disk);
- warm: the same fit with the page cache left alone (the file may be partly cached).

Reports time per Lloyd iteration (from ``history_``), the read throughput it implies against
the measured disk speed, and the peak anonymous memory (RssAnon, sampled every millisecond)
above the process before the fit. Rewrites the "out-of-core" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_file(path: Path, n: int, d: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    block = 1 << 20
    for s in range(0, n, block):
        m = min(block, n - s)
        mm[s : s + m] = centers[rng.integers(0, k, m)]
        mm[s : s + m] += rng.standard_normal((m, d), dtype=np.float32)
    mm.flush()
    first = np.array(mm[: 64 * k : 64])  # k rows spread over the first blocks: the init
    del mm
    return first


def sequential_read(path: Path) -> float:
    """Bytes per second reading the whole file cold, in 16 MiB blocks."""
    drop_cache(path)
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    total = 0
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            got = f.readinto(view)
            if not got:
                break
            total += got
    return total / (time.perf_counter() - t)


class AnonPeak:
    def __enter__(self) -> AnonPeak:
        self.base = rss_anon()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def fit(path: Path, init: np.ndarray, iters: int, cold: bool) -> dict[str, float]:
    import torchkmeans
    from torchkmeans import _sources

    original = _sources.TensorSource.chunks

    def chunks_cold(self):  # type: ignore[no-untyped-def]
        drop_cache(path)  # every pass reads the file from the disk
        yield from original(self)

    if cold:
        _sources.TensorSource.chunks = chunks_cold  # type: ignore[method-assign]
    try:
        X = np.load(path, mmap_mode="r")
        drop_cache(path)
        km = torchkmeans.KMeans(len(init), init=init, max_iter=iters, tol=0.0)
        with AnonPeak() as mem:
            t = time.perf_counter()
            km.fit(X)
            total = time.perf_counter() - t
    finally:
        _sources.TensorSource.chunks = original  # type: ignore[method-assign]
    per_iter = [h["seconds"] for h in km.history_]
    return {
        "total": total,
        "per_iter": float(np.median(per_iter)),
        "iters": len(per_iter),
        "anon": mem.extra,
        "labels": km.labels_.nbytes,
        "inertia": km.inertia_,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gib", type=float, default=8.0, help="file size in GiB (default 8)")
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--workdir", default=None)
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)
    import torch

    import torchkmeans

    n = int(args.gib * 2**30) // (4 * args.d)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = Path(tmp) / "data.npy"
        t = time.perf_counter()
        init = make_file(path, n, args.d, args.k)
        made = time.perf_counter() - t
        size = path.stat().st_size
        print(f"wrote {size / 2**30:.2f} GiB in {made:.0f} s", flush=True)
        disk = sequential_read(path)
        print(f"sequential read: {disk / 1e9:.2f} GB/s", flush=True)
        cold = fit(path, init, args.iters, cold=True)
        print("cold", cold, flush=True)
        warm = fit(path, init, args.iters, cold=False)
        print("warm", warm, flush=True)
        # the same kernel on rows already in memory: the compute-bound rate of this machine
        rows = min(n, (1 << 29) // (4 * args.d))
        sample = np.array(np.load(path, mmap_mode="r")[:rows])
        km = torchkmeans.KMeans(args.k, init=init, max_iter=args.iters, tol=0.0).fit(sample)
        memory_rate = sample.nbytes / float(np.median([h["seconds"] for h in km.history_]))
        del sample
    data_bytes = n * args.d * 4
    command = "python benchmarks/out_of_core.py" + (
        f" --gib {args.gib:g}" if args.gib != 8.0 else ""
    )
    lines = [
        "## Out-of-core: exact Lloyd on a memory-mapped file",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}). Machine: {machine()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchkmeans "
        f"{torchkmeans.__version__}.",
        "",
        f"Data: {n:,} x {args.d} float32 in one .npy file of {size / 2**30:.2f} GiB, opened with "
        f"`np.load(path, mmap_mode='r')`; K = {args.k}, initial centers given, {args.iters} "
        "Lloyd iterations, tol=0. Disk sequential read speed, measured on the same file with the "
        f"page cache dropped: **{disk / 1e9:.2f} GB/s**.",
        "",
        "| run | time / iteration | read throughput | vs disk | whole fit | peak anonymous "
        "memory | of which labels |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in (("cold (page cache dropped before every pass)", cold), ("warm", warm)):
        rate = data_bytes / r["per_iter"]
        lines.append(
            f"| {name} | {r['per_iter']:.2f} s | {rate / 1e9:.2f} GB/s | {rate / disk:.2f}x | "
            f"{r['total']:.1f} s | {r['anon'] / 2**20:.0f} MB | {r['labels'] / 2**20:.0f} MB |"
        )
    lines += [
        "",
        f"The same fit on {rows:,} rows already in memory runs at {memory_rate / 1e9:.2f} GB/s "
        "per iteration: that is the compute-bound rate of the assignment step on this machine, "
        "the ceiling for the memory-mapped fit whatever the disk.",
        "",
        "A fit makes, besides the Lloyd iterations, a validation pass (NaN/inf scan), a moments "
        "pass (mean and variance for tol) and a final assignment pass; each reads the file once. "
        "Anonymous memory excludes the page cache that the memory map fills; it is what the fit "
        "allocates: the int64 labels (8 bytes per row, returned), Hamerly bounds when they fit in "
        "32 MB, and per-chunk buffers, plus what glibc keeps of freed chunk buffers in its arenas "
        "(the tests fix MALLOC_MMAP_THRESHOLD_ to measure live memory only; here the default "
        "allocator is kept, because a fixed threshold makes every chunk buffer a fresh mmap and "
        "the fit about 3x slower).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("out-of-core", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
