"""Benchmark torchkmeans against its peers and write benchmarks/RESULTS.md.

    python benchmarks/run.py            # the full grid (about an hour on 2 cores)
    python benchmarks/run.py --quick    # a few minutes
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py   # as recorded

Every peer runs in a fresh subprocess (benchmarks/peers.py) on the same data, from the same
initial centers, for the same iterations, under a time limit and a resident-memory limit (the
parent polls the child's RSS and kills it above the limit), so a peer that runs out of memory
or time is recorded with its status instead of ending the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS = [
    "torchkmeans",
    "sklearn-lloyd",
    "sklearn-elkan",
    "sklearnex",
    "faiss",
    "fastkmeans",
    "fast-pytorch-kmeans",
    "kmeans-pytorch",
    "torch-kmeans",
    "tutorial",
]
FAST_PEERS = ["torchkmeans", "sklearn-lloyd", "faiss"]


@dataclass(frozen=True)
class Shape:
    n: int
    d: int
    k: int

    def __str__(self) -> str:
        return f"{self.n:,} x {self.d} x {self.k}"


GRID = [
    Shape(300, 2, 4),
    Shape(1_000_000, 2, 16),
    Shape(1_000_000, 32, 256),
    Shape(200_000, 128, 1024),
    Shape(100_000, 768, 100),
]
SCALING = [Shape(1_000_000, 32, 256), Shape(2_000_000, 32, 256), Shape(4_000_000, 32, 256)]
SWEEP_DIMS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
QUICK_GRID = [
    Shape(300, 2, 4),
    Shape(200_000, 2, 16),
    Shape(100_000, 32, 256),
    Shape(20_000, 128, 1024),
    Shape(20_000, 768, 100),
]
QUICK_SCALING = [Shape(100_000, 32, 64), Shape(400_000, 32, 64)]
QUICK_SWEEP_DIMS = [2, 8, 32, 128, 512]


def make_data(
    shape: Shape, folder: Path, seed: int = 0, uniform: bool = False
) -> tuple[Path, Path]:
    """Blobs around k random centers (or, with ``uniform``, rows uniform in the unit cube: no
    cluster structure), float32, and k distinct rows as initial centers."""
    kind = "uniform" if uniform else "blobs"
    data = folder / f"X_{kind}_{shape.n}_{shape.d}_{shape.k}.npy"
    init = folder / f"C_{kind}_{shape.n}_{shape.d}_{shape.k}.npy"
    if data.exists() and init.exists():
        return data, init
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(shape.k, shape.d))
    X = np.lib.format.open_memmap(data, mode="w+", dtype=np.float32, shape=(shape.n, shape.d))
    for s in range(0, shape.n, 262144):
        e = min(shape.n, s + 262144)
        if uniform:
            X[s:e] = rng.random(size=(e - s, shape.d))
        else:
            X[s:e] = centers[rng.integers(0, shape.k, e - s)] + rng.normal(size=(e - s, shape.d))
    X.flush()
    np.save(init, np.asarray(X[rng.choice(shape.n, shape.k, replace=False)]))
    del X
    return data, init


def run_peer(spec: dict[str, Any], timeout: float, mem_limit: int) -> dict[str, Any]:
    """Run one measurement in a subprocess; record oom / timeout / error as a status."""
    import psutil

    cmd = [sys.executable, str(HERE / "peers.py"), json.dumps(spec)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    status = None
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if rss > mem_limit:
            proc.kill()
            status = f"out of memory (> {mem_limit / 2**30:.0f} GiB)"
        elif time.time() - t0 > timeout:
            proc.kill()
            status = f"timeout (> {timeout:.0f} s)"
        time.sleep(0.05)
    out, err = proc.communicate()
    if status is None and proc.returncode != 0:
        last = (err.strip().splitlines() or ["?"])[-1]
        status = "error: " + last[:120]
    if status is not None:
        return {"peer": spec["peer"], "status": status}
    result = json.loads(out.strip().splitlines()[-1])
    result["status"] = "ok" if result.get("finite", True) else "NaN centers"
    result["peak_rss"] = peak
    return result


def gemm_gflops(shape: Shape, reps: int = 20) -> float:
    """torch.mm GFLOP/s on this machine for the assignment GEMM (rows x D) @ (D x K)."""
    import torch

    rows = min(shape.n, 65536)
    a = torch.randn(rows, shape.d)
    b = torch.randn(shape.d, shape.k)
    for _ in range(3):
        torch.mm(a, b)
    t = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2.0 * rows * shape.d * shape.k * reps / (time.perf_counter() - t) / 1e9


def fmt_time(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _cpu_engine() -> str:
    """Which engine serves CPU fits, as torchkmeans.show_config() reports it."""
    from torchkmeans._engines import _library

    status = _library.status()
    if status.library is None:
        return f"torch ({status.reason})"
    return f"native, {status.variant} kernels ({status.reason})"


def environment() -> dict[str, str]:
    import sklearn
    import torch

    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads, BLAS: "
        + ("MKL" if torch.backends.mkl.is_available() else "other")
        + ")",
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "unset"),
        "torchkmeans CPU engine": _cpu_engine(),
    }
    try:
        from threadpoolctl import threadpool_info

        libs = {
            f"{p['internal_api']} {p.get('version')} ({p['num_threads']} threads)"
            for p in threadpool_info()
        }
        info["numpy/sklearn thread pools"] = ", ".join(sorted(libs))
    except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    for name in ("faiss", "fastkmeans", "fast_pytorch_kmeans", "kmeans_pytorch", "torch_kmeans"):
        try:
            from importlib.metadata import version

            info[name] = version(name.replace("_", "-") if name != "faiss" else "faiss-cpu")
        except Exception:
            info[name] = "not installed"
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small shapes, a few minutes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=10, help="Lloyd iterations timed per peer")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per peer measurement")
    p.add_argument("--mem-limit-gib", type=float, default=8.0, help="resident memory per peer")
    p.add_argument("--fit-seeds", type=int, default=3)
    p.add_argument("--workdir", default=None, help="where the data files go (default: a temp dir)")
    p.add_argument("--output", default=str(HERE / "RESULTS.md"))
    p.add_argument("--json", default=None, help="also write raw results here")
    p.add_argument("--reuse", default=None, help="start from the raw results of an earlier run")
    p.add_argument(
        "--only", default=None, help="N,D,K: measure only this grid shape (with --reuse)"
    )
    args = p.parse_args(argv)
    only = Shape(*map(int, args.only.split(","))) if args.only else None

    grid, scaling, dims = (
        (QUICK_GRID, QUICK_SCALING, QUICK_SWEEP_DIMS) if args.quick else (GRID, SCALING, SWEEP_DIMS)
    )
    sweep_n, sweep_k = (20_000, 64) if args.quick else (200_000, 100)
    mem_limit = int(args.mem_limit_gib * 2**30)
    records: list[dict[str, Any]] = []
    previous_gflops: dict[str, float] = {}
    if args.reuse:
        saved = json.loads(Path(args.reuse).read_text())
        records, previous_gflops = saved["records"], saved.get("gemm_gflops", {})
    tmp = tempfile.TemporaryDirectory(dir=args.workdir)
    folder = Path(tmp.name)

    def measure(shape: Shape, peers: list[str], section: str, fit: bool, pp: bool) -> None:
        if only is not None and shape != only:
            return
        data, init = make_data(shape, folder)
        for peer in peers:
            spec = {
                "peer": peer,
                "data": str(data),
                "init": str(init),
                "iters": args.iters,
                "device": args.device,
                "k": shape.k,
                "mode": "iter",
            }
            r = run_peer(spec, args.timeout, mem_limit)
            # default fits and k-means++ run in processes of their own, so that a slow one
            # cannot take the per-iteration numbers down with it
            if fit and peer in ("torchkmeans", "sklearn-lloyd", "sklearnex"):
                extra = run_peer(
                    dict(spec, mode="fit", fit_seeds=args.fit_seeds), 3 * args.timeout, mem_limit
                )
                r.update({k: v for k, v in extra.items() if k.startswith("fit_")})
                if extra["status"] != "ok":
                    r["fit_status"] = extra["status"]
            if pp and peer in ("torchkmeans", "sklearn-lloyd"):
                extra = run_peer(
                    dict(spec, mode="plusplus", plusplus=True), args.timeout, mem_limit
                )
                r.update({k: v for k, v in extra.items() if k.startswith("plusplus_")})
                if extra["status"] != "ok":
                    r["plusplus_status"] = extra["status"]
            r.update(
                section=section,
                n=shape.n,
                d=shape.d,
                k=shape.k,
                data_bytes=data.stat().st_size - 128,
            )
            records[:] = [
                q
                for q in records
                if (q["section"], q["n"], q["d"], q["k"], q["peer"])
                != (section, shape.n, shape.d, shape.k, peer)
            ]
            records.append(r)
            print(
                f"[{section}] {shape} {peer:20s} {r['status']:>10s} "
                f"{fmt_time(r.get('per_iter'))}/iter",
                flush=True,
            )
        for f in (data, init):
            f.unlink(missing_ok=True)

    started = time.time()
    for shape in grid:
        # default fits (3 seeds each, to convergence) only where they take minutes, not hours
        measure(shape, PEERS, "grid", fit=shape.n * shape.d * shape.k <= 2e10, pp=True)
    for shape in scaling:
        measure(shape, FAST_PEERS, "scaling", fit=False, pp=False)
    for d in dims:
        measure(Shape(sweep_n, d, sweep_k), FAST_PEERS, "sweep", fit=False, pp=False)
    gflops = dict(previous_gflops)
    gflops.update(
        {
            str(s): gemm_gflops(s)
            for s in grid
            if s.d >= 32 and s.k >= 256 and (only is None or s == only)
        }
    )
    elapsed = time.time() - started
    env = environment()
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    if args.timeout != 300.0:
        command += f" --timeout {args.timeout:.0f}"
    if env["OPENBLAS_CORETYPE"] == "unset" and env["OPENBLAS_L2_SIZE"] == "unset":
        command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " + command
    text = render(records, gflops, env, command, elapsed, args)
    write_section("lloyd", text, Path(args.output))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"records": records, "gemm_gflops": gflops, "env": env}, indent=1)
        )
    print(f"wrote {args.output}")
    return 0


def _cells(rows: dict[str, Any]) -> str:
    """Time per iteration of each fast peer, or its status when it did not finish."""
    return " | ".join(
        fmt_time(rows[p].get("per_iter"))
        if p in rows and rows[p]["status"] == "ok"
        else rows.get(p, {}).get("status", "")
        for p in FAST_PEERS
    )


def _by(records, section, n, d, k):
    return {
        r["peer"]: r
        for r in records
        if r["section"] == section and (r["n"], r["d"], r["k"]) == (n, d, k)
    }


def render(records, gflops, env, command, elapsed, args) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}` (regenerates this file). Run took {elapsed / 60:.1f} min.",
        f"Lloyd iterations timed per peer: {args.iters}, from the same initial centers (k distinct "
        "rows of the data), float32 data (blobs around k random centers). Time per iteration is "
        "(T(I) - T(1)) / (I - 1), so fixed costs cancel. Inertia is that of each peer's centers "
        "after the same iterations, relative to scikit-learn (lloyd). Extra peak memory is the "
        "peak resident memory of the fit above the process with the data loaded. Default fit: "
        "`KMeans(k, random_state=seed).fit(X)` for seeds 0, 1, 2, mean time and mean inertia; "
        "k-means++: seed 0. Problems under 10^7 row x feature x center products take well under "
        "a millisecond per call, so every timing there is the best of 20 repeats (100 under "
        "10^5). Every peer ran "
        f"in a fresh process with a {args.timeout:.0f} s and {args.mem_limit_gib:.0f} GiB limit.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += ["", "## Grid", ""]
    shapes = sorted(
        {(r["n"], r["d"], r["k"]) for r in records if r["section"] == "grid"},
        key=lambda s: (
            [x for x in (GRID + QUICK_GRID)].index(Shape(*s))
            if Shape(*s) in GRID + QUICK_GRID
            else 0
        ),
    )
    for n, d, k in shapes:
        rows = _by(records, "grid", n, d, k)
        sk = rows.get("sklearn-lloyd", {})
        ok = {
            p: r
            for p, r in rows.items()
            if r["status"] == "ok" and p != "torchkmeans" and r.get("per_iter", 0) > 0
        }
        fastest = min(ok, key=lambda p: ok[p]["per_iter"]) if ok else None
        lines += [
            f"### {n:,} samples x {d} features x {k} clusters",
            "",
            "| peer | status | time / iteration | vs torchkmeans | inertia / sklearn | extra peak memory | k-means++ | default fit (3 seeds) | fit inertia / sklearn |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ours = rows.get("torchkmeans", {})
        for peer in PEERS:
            r = rows.get(peer)
            if r is None:
                continue
            if r["status"] not in ("ok", "NaN centers"):
                lines.append(f"| {peer} | {r['status']} | | | | | | | |")
                continue
            ratio = f"{r['per_iter'] / ours['per_iter']:.2f}x" if ours.get("per_iter") else "n/a"
            inert = r["inertia"] / sk["inertia"] if sk.get("inertia") else float("nan")
            fit_rel = (
                (r["fit_inertia"] / sk["fit_inertia"])
                if r.get("fit_inertia") and sk.get("fit_inertia")
                else None
            )
            lines.append(
                f"| {peer} | {r['status']} | {fmt_time(r['per_iter'])} | {ratio} | {inert:.6f} | "
                f"{r['extra_peak'] / 2**20:.1f} MB | "
                f"{r.get('plusplus_status') or fmt_time(r.get('plusplus_seconds'))} | "
                f"{fmt_time(r.get('fit_seconds')) if 'fit_status' not in r else r['fit_status']} | "
                f"{'' if fit_rel is None else f'{fit_rel:.4f}'} |"
            )
        if fastest and ours.get("per_iter") is not None:
            lines += [
                "",
                f"torchkmeans time per iteration / fastest peer ({fastest}): "
                f"**{ours['per_iter'] / ok[fastest]['per_iter']:.2f}x** (target <= 0.8x).",
            ]
            if sk.get("fit_seconds") and ours.get("fit_seconds"):
                lines.append(
                    f"Default fit time / scikit-learn's: **{ours['fit_seconds'] / sk['fit_seconds']:.2f}x** "
                    f"(target <= 0.7x), mean inertia ratio {ours['fit_inertia'] / sk['fit_inertia']:.4f}."
                )
            ex = rows.get("sklearnex", {})
            if ex.get("fit_seconds") and ours.get("fit_seconds"):
                lines.append(
                    f"Default fit time / scikit-learn-intelex's: **{ours['fit_seconds'] / ex['fit_seconds']:.2f}x** "
                    f"(target <= 0.4x, issue 15)."
                )
            if sk.get("plusplus_seconds") and ours.get("plusplus_seconds"):
                lines.append(
                    f"k-means++ time / scikit-learn's: **{ours['plusplus_seconds'] / sk['plusplus_seconds']:.2f}x**."
                )
            key = str(Shape(n, d, k))
            if key in gflops:
                ach = 2.0 * n * d * k / ours["per_iter"] / 1e9
                lines.append(
                    f"Effective rate {ach:.1f} GFLOP/s of assignment work (2NKD per iteration; pruned rows "
                    f"skip their share) = **{ach / gflops[key]:.0%}** "
                    f"of torch.mm at this shape ({gflops[key]:.1f} GFLOP/s; target >= 60%)."
                )
        lines.append("")
    lines += [
        "## Scaling in n_samples",
        "",
        "| shape | " + " | ".join(FAST_PEERS) + " |",
        "|---|" + "---|" * len(FAST_PEERS),
    ]
    sc = sorted({(r["n"], r["d"], r["k"]) for r in records if r["section"] == "scaling"})
    for n, d, k in sc:
        rows = _by(records, "scaling", n, d, k)
        lines.append(f"| {n:,} x {d} x {k} | " + _cells(rows) + " |")
    if len(sc) >= 2:
        a = _by(records, "scaling", *sc[0]).get("torchkmeans", {})
        b = _by(records, "scaling", *sc[-1]).get("torchkmeans", {})
        if a.get("per_iter") and b.get("per_iter"):
            lines += [
                "",
                f"torchkmeans: {sc[-1][0] / sc[0][0]:.0f}x the rows took "
                f"**{b['per_iter'] / a['per_iter']:.2f}x** the time per iteration (target <= {1.1 * sc[-1][0] / sc[0][0]:.1f}x).",
            ]
    lines += [
        "",
        "## Time per iteration across dimensions",
        "",
        "| n_features | " + " | ".join(FAST_PEERS) + " | torchkmeans / fastest peer |",
        "|---|" + "---|" * (len(FAST_PEERS) + 1),
    ]
    for n, d, k in sorted(
        {(r["n"], r["d"], r["k"]) for r in records if r["section"] == "sweep"}, key=lambda s: s[1]
    ):
        rows = _by(records, "sweep", n, d, k)
        peers_ok = [
            rows[p]["per_iter"] for p in FAST_PEERS[1:] if p in rows and rows[p]["status"] == "ok"
        ]
        ours = rows.get("torchkmeans", {}).get("per_iter")
        rel = f"{ours / min(peers_ok):.2f}x" if ours and peers_ok else ""
        lines.append(f"| {d} (n={n:,}, k={k}) | " + _cells(rows) + f" | {rel} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
