"""Data-parallel k-means on torch.distributed (gloo, 127.0.0.1): time per Lloyd iteration and
bytes communicated per iteration, for 1 and 2 processes (more with --worlds on a bigger host).

    python benchmarks/distributed.py [--n 2000000] [--d 32] [--k 256] [--worlds 1,2]

Every process generates its contiguous shard of the same data, fits
``KMeans(init=<array>, max_iter=iters, tol=0, distributed=True)`` and reports the median
per-iteration time from ``history_``; the bytes each rank sends are counted by wrapping the
collectives of torchkmeans' communicator. Rewrites the "distributed" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402


def shard(n: int, d: int, k: int, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=1.0, size=(k, d)).astype(np.float32)  # overlapping clusters
    lo, hi = rank * n // world, (rank + 1) * n // world
    rows = np.random.default_rng(1 + rank).integers(0, k, hi - lo)
    noise = np.random.default_rng(100 + rank).standard_normal((hi - lo, d), dtype=np.float32)
    init = centers + np.random.default_rng(7).normal(scale=0.5, size=centers.shape)
    return centers[rows] + noise, init.astype(np.float32)


def worker(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    import torch
    import torch.distributed as dist

    torch.set_num_threads(cfg["threads"])
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    import torchkmeans
    from torchkmeans import _distributed

    sent = {"bytes": 0, "calls": 0}
    for name in ("all_reduce_", "broadcast_"):
        original = getattr(_distributed.ProcessGroupComm, name)

        def counted(self, t, *a, _original=original, **kw):  # type: ignore[no-untyped-def]
            sent["bytes"] += t.numel() * t.element_size()
            sent["calls"] += 1
            return _original(self, t, *a, **kw)

        setattr(_distributed.ProcessGroupComm, name, counted)
    X, init = shard(cfg["n"], cfg["d"], cfg["k"], rank, world)
    start = dict(sent)
    torchkmeans.KMeans(cfg["k"], init=init, max_iter=1, tol=0.0, distributed=True).fit(X)
    one_iter = sent["bytes"] - start["bytes"], sent["calls"] - start["calls"]
    before = dict(sent)
    dist.barrier()
    t = time.perf_counter()
    km = torchkmeans.KMeans(
        cfg["k"], init=init, max_iter=cfg["iters"], tol=0.0, distributed=True
    ).fit(X)
    total = time.perf_counter() - t
    per_iter = float(np.median([h["seconds"] for h in km.history_]))
    # the difference to a one-iteration fit is what the extra iterations sent
    extra = max(1, km.n_iter_ - 1)
    fit_bytes = (sent["bytes"] - before["bytes"] - one_iter[0]) * km.n_iter_ / extra
    fit_calls = (sent["calls"] - before["calls"] - one_iter[1]) * km.n_iter_ / extra
    if rank == 0:
        Path(out).write_text(
            json.dumps(
                {
                    "per_iter": per_iter,
                    "total": total,
                    "iters": km.n_iter_,
                    "bytes_per_iter": fit_bytes / km.n_iter_,
                    "calls_per_iter": fit_calls / km.n_iter_,
                    "inertia": km.inertia_,
                }
            )
        )
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2_000_000)
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--k", type=int, default=256)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--worlds", default="1,2")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    import torch
    import torch.multiprocessing as mp

    cores = os.cpu_count() or 1
    rows = []
    for world in [int(w) for w in args.worlds.split(",")]:
        threads = max(1, cores // world)
        cfg = dict(n=args.n, d=args.d, k=args.k, iters=args.iters, threads=threads)
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "r.json")
            mp.spawn(worker, args=(world, free_port(), cfg, out), nprocs=world, join=True)
            r = json.loads(Path(out).read_text())
        print(world, r, flush=True)
        rows.append((world, threads, r))
    base = rows[0][2]["per_iter"]
    lines = [
        "## Distributed: data-parallel Lloyd on torch.distributed (gloo)",
        "",
        f"Command: `python benchmarks/distributed.py` ({time.strftime('%Y-%m-%d')}). Machine: "
        f"{machine()}; torch {torch.__version__}; all processes on this one host, gloo over "
        "127.0.0.1.",
        "",
        f"Data: {args.n:,} x {args.d} float32 split in contiguous shards, K = {args.k}, initial "
        f"centers given, {args.iters} Lloyd iterations, tol=0. Threads per process: cores / "
        "processes, so every row of the table uses the whole machine.",
        "",
        "| processes | threads each | time / iteration | speed-up | bytes reduced per rank per "
        "iteration | collectives per iteration |",
        "|---|---|---|---|---|---|",
    ]
    for world, threads, r in rows:
        lines.append(
            f"| {world} | {threads} | {r['per_iter'] * 1000:.0f} ms | {base / r['per_iter']:.2f}x "
            f"| {r['bytes_per_iter'] / 1024:.1f} KiB | {r['calls_per_iter']:.1f} |"
        )
    packed = (args.k * args.d + 3 * args.k + 1) * 8
    lines += [
        "",
        f"The one collective of an iteration is a SUM of the per-cluster sums, weights, counts "
        f"and inertia packed in float64: (K x D + 3K + 1) x 8 = {packed / 1024:.1f} KiB, "
        "independent of the number of rows (measured: the bytes of the fit minus those of a "
        "one-iteration fit, per extra iteration; on one process gloo completes the same "
        "collective locally). On one host the "
        "processes share the same cores, so the speed-up measures overhead, not scaling; on "
        "several nodes each adds its own cores and memory bandwidth.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("distributed", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
