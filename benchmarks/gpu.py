"""The GPU check in one command (issue 16): the CUDA tests, then the GPU benchmark.

    python benchmarks/gpu.py            # on a machine with a CUDA device (at most ~8 minutes)
    python benchmarks/gpu.py --smoke    # tiny shapes on the CPU: checks this script, times nothing

What it does, in order:

1. Makes torchkmeans importable from this checkout (``src/`` on ``sys.path``: the GPU path
   needs no compiled kernel) and installs the peers' wheels it finds in ``.whl/`` (the GPU
   machine reaches no package index; fetch them beforehand with ``python -m pip download
   --no-deps -d .whl flash-kmeans==0.3.1 fastkmeans==0.5.0``) into a scratch folder.
2. Runs ``tests/test_cuda.py`` and ``tests/test_triton.py`` under pytest and records the outcome
   (the Triton kernel is opt-in until this step has passed on a GPU).
3. Times each engine, after a warm-up, CUDA-synchronized: the time per Lloyd iteration as
   (T(hi) - T(lo)) / (iterations(hi) - iterations(lo)) from the same initial centers (K rows of
   the data) with no tolerance, for torchkmeans' torch engine, torchkmeans with the Triton
   assignment kernel (``TORCHKMEANS_TRITON=1``), flash-kmeans (Triton), fastkmeans (random
   initial centers from its seed; it streams the rows from host memory), faiss-gpu and cuML
   where they import; and the GEMM floor, 2 N K D / (torch.mm's rate at that shape and dtype).
   Shapes: (1) 32 x 131,072 x 128, K = 1000, fp16; (2) 1M x 128, K = 1024, fp32; (3) 10M x 128,
   K = 4096, fp32 and bf16; (4) 10M x 16, K = 1024, fp32. Rows are standard normal (no cluster
   structure: no library can skip work).
4. Writes the "gpu" section of benchmarks/RESULTS.md and benchmarks/gpu_results.json (the raw
   numbers), and copies both into $OUT when that is set.

Targets (issue 16): at most 0.8x flash-kmeans' time per iteration on (1) and (2), within 1.5x
of the GEMM floor on (3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# name -> (B or None for one problem, N, D, K, dtype name, (lo, hi) iterations)
SHAPES = {
    "(1) 32 x 131,072 x 128, K=1000, fp16": (32, 131_072, 128, 1000, "float16", (2, 5)),
    "(2) 1M x 128, K=1024, fp32": (None, 1_000_000, 128, 1024, "float32", (2, 6)),
    "(3a) 10M x 128, K=4096, fp32": (None, 10_000_000, 128, 4096, "float32", (1, 3)),
    "(3b) 10M x 128, K=4096, bf16": (None, 10_000_000, 128, 4096, "bfloat16", (1, 3)),
    "(4) 10M x 16, K=1024, fp32": (None, 10_000_000, 16, 1024, "float32", (1, 4)),
}
SMOKE = {
    "(s1) 3 x 300 x 8, K=5, fp32": (3, 300, 8, 5, "float32", (1, 3)),
    "(s2) 500 x 20, K=7, fp32": (None, 500, 20, 7, "float32", (1, 3)),
}


def install_wheels(folder: Path) -> list[str]:
    """Install the wheels in ``folder`` (no index, no dependencies) into a scratch folder put
    on sys.path; returns their file names."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if wheels:
        target = Path("/tmp/torchkmeans-gpu-peers")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--upgrade", "--target", str(target), *map(str, wheels)],
            check=True,
        )  # fmt: skip
        sys.path.insert(0, str(target))
    return [w.name for w in wheels]


def run_tests(smoke: bool) -> dict[str, Any]:
    """pytest on the CUDA and Triton tests; the summary line and the exit status."""
    env = dict(
        os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    files = ["tests/test_cuda.py", "tests/test_triton.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    if smoke:
        cmd += ["-k", "ties"]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in out.stdout.strip().splitlines() if line.strip()]
    return {
        "command": " ".join(["python", "-m", "pytest", "-q", *files]),
        "returncode": out.returncode,
        "summary": lines[-1] if lines else out.stderr.strip()[-300:],
        "seconds": time.perf_counter() - t,
    }


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fit) -> tuple[float, float]:
    """(seconds, iterations) of ``fit()``, CUDA-synchronized."""
    sync()
    t = time.perf_counter()
    iters = fit()
    sync()
    return time.perf_counter() - t, float(iters)


def per_iteration(fit_for, lo: int, hi: int) -> float:
    """(T(hi) - T(lo)) / (iterations(hi) - iterations(lo)), after a warm-up fit."""
    fit_for(lo)  # warm-up: kernels compiled, memory pools filled
    t_lo, i_lo = timed(lambda: fit_for(lo))
    t_hi, i_hi = timed(lambda: fit_for(hi))
    return (t_hi - t_lo) / max(i_hi - i_lo, 1e-9)


def engines(x, c, batched: bool) -> dict[str, Any]:
    """name -> (iterations -> iterations run) for every engine that imports."""
    import numpy as np

    k = c.shape[-2]
    out: dict[str, Any] = {}

    def ours(triton: bool):
        def fit(iters: int) -> float:
            os.environ["TORCHKMEANS_TRITON"] = "1" if triton else "0"
            from torchkmeans import KMeans, kmeans_batched

            if batched:
                r = kmeans_batched(x, k, init=c, max_iter=iters, tol=0.0)
                return float(r.n_iter.float().mean())
            return KMeans(k, init=c, max_iter=iters, tol=0.0).fit(x).n_iter_

        return fit

    out["torchkmeans (torch engine)"] = ours(False)
    out["torchkmeans (Triton kernel)"] = ours(True)
    with contextlib.suppress(Exception):
        from flash_kmeans.kmeans_triton_impl import batch_kmeans_Euclid

        if x.is_cuda:
            xb, cb = (x, c) if batched else (x[None], c[None])
            out["flash-kmeans"] = lambda iters: (
                batch_kmeans_Euclid(xb, k, max_iters=iters, tol=0.0, init_centroids=cb.clone()),
                iters,
            )[1]
    with contextlib.suppress(Exception):
        from fastkmeans import FastKMeans

        if x.is_cuda and not batched:
            host = x.float().cpu().numpy()
            out["fastkmeans"] = lambda iters: (
                FastKMeans(x.shape[1], k, niter=iters, tol=-1.0, seed=0).train(host),
                iters,
            )[1]
    with contextlib.suppress(Exception):
        import faiss

        if x.is_cuda and not batched and faiss.get_num_gpus() > 0:
            host = np.ascontiguousarray(x.float().cpu().numpy())
            init = np.ascontiguousarray(c.float().cpu().numpy())

            def faiss_fit(iters: int) -> float:
                km = faiss.Kmeans(x.shape[1], k, niter=iters, gpu=True, seed=0,
                                  max_points_per_centroid=10**9)  # fmt: skip
                km.train(host, init_centroids=init)
                return iters

            out["faiss-gpu"] = faiss_fit
    with contextlib.suppress(Exception):
        from cuml.cluster import KMeans as CuKMeans

        if x.is_cuda and not batched:
            xf, cf = x.float(), c.float()
            out["cuML"] = lambda iters: (
                CuKMeans(n_clusters=k, init=cf, n_init=1, max_iter=iters, tol=0.0).fit(xf).n_iter_
            )
    return out


def gemm_floor(n: int, k: int, d: int, dtype, device) -> tuple[float, float]:
    """(seconds of 2 N K D multiply-adds at torch.mm's measured rate, that rate in TFLOP/s)."""
    import torch

    rows = min(n, 1 << 20)
    a = torch.randn(rows, d, device=device).to(dtype)
    b = torch.randn(d, k, device=device).to(dtype)
    torch.mm(a, b)
    sync()
    t = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    sync()
    rate = 5 * 2 * rows * k * d / (time.perf_counter() - t)
    return 2 * n * k * d / rate, rate / 1e12


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU; write nothing")
    p.add_argument("--no-tests", action="store_true")
    args = p.parse_args()
    import torch

    wheels = install_wheels(ROOT / ".whl")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "wheels": wheels,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.smoke and device.type == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # (before Triton is imported)
    report["tests"] = None if args.no_tests else run_tests(args.smoke)
    print("tests:", report["tests"], flush=True)
    results = []
    for name, (b, n, d, k, dtype_name, (lo, hi)) in (SMOKE if args.smoke else SHAPES).items():
        dtype = getattr(torch, dtype_name)
        g = torch.Generator(device=device).manual_seed(0)
        shape = (b, n, d) if b else (n, d)
        x = torch.randn(*shape, generator=g, device=device).to(dtype)
        c = (x[:, :k] if b else x[:k]).clone()
        floor, tflops = gemm_floor(n * (b or 1), k, d, dtype, device)
        row: dict[str, Any] = {"shape": name, "gemm_floor_s": floor, "mm_tflops": tflops}
        for engine, fit_for in engines(x, c, batched=b is not None).items():
            try:
                row[engine] = per_iteration(fit_for, lo, hi)
            except Exception as exc:  # a peer that fails is reported, not fatal
                row[engine] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            print(name, engine, row[engine], flush=True)
        results.append(row)
        del x, c
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["results"] = results
    write(report, smoke=args.smoke)


def write(report: dict[str, Any], smoke: bool) -> None:
    from _results import publish

    tests = report["tests"]
    lines = [
        "## GPU",
        "",
        f"Command: `python benchmarks/gpu.py` ({report['date']}). Device: {report['device']}; "
        f"torch {report['torch']}; peers' wheels: {', '.join(report['wheels']) or 'none'}.",
        "",
        "Tests: " + ("not run" if tests is None else f"`{tests['command']}`: {tests['summary']}"),
        "",
        "Time per Lloyd iteration (ms; CUDA-synchronized, after a warm-up, from the same "
        "initial centers), and the GEMM floor (2 N K D at torch.mm's measured rate).",
        "",
    ]
    names = sorted(
        {key for row in report["results"] for key in row} - {"shape", "gemm_floor_s", "mm_tflops"}
    )
    lines.append("| shape | GEMM floor | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for row in report["results"]:
        cells = []
        for name in names:
            value = row.get(name, "-")
            cells.append(f"{value * 1e3:.2f}" if isinstance(value, float) else str(value))
        lines.append(
            f"| {row['shape']} | {row['gemm_floor_s'] * 1e3:.2f} ({row['mm_tflops']:.0f} TFLOP/s) "
            f"| " + " | ".join(cells) + " |"
        )
    publish("gpu", lines, write=not smoke)
    raw = json.dumps(report, indent=1)
    if not smoke:
        (ROOT / "benchmarks" / "gpu_results.json").write_text(raw)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_results.json").write_text(raw)
        with contextlib.suppress(OSError):
            shutil.copy(ROOT / "benchmarks" / "RESULTS.md", Path(out) / "RESULTS.md")


if __name__ == "__main__":
    main()
