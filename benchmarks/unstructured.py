"""Lloyd iterations on data without cluster structure (uniform rows): torchkmeans against faiss,
scikit-learn and scikit-learn-intelex, and torchkmeans on 1 thread against 2.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/unstructured.py

On blobs, bounds skip most rows after a few iterations; on uniform rows at large K and D there
is little to skip, so this is where the assignment kernel itself is measured. Each measurement
runs in a fresh process (benchmarks/peers.py, as benchmarks/run.py does) from the same initial
centers (K distinct rows of the data): time per iteration over the first 10 and the first 50
iterations, (T(I) - T(1)) / (I - 1). torchkmeans also runs with torch.set_num_threads(1): its
centers must be the same, bit for bit (compared by digest), and the ratio of the two times says
how the work scales. Writes the "unstructured" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402
from run import Shape, environment, fmt_time, make_data, run_peer  # noqa: E402

SHAPES = [Shape(100_000, 256, 2000), Shape(200_000, 128, 1024)]
QUICK_SHAPES = [Shape(20_000, 128, 1000)]
PEERS = ["faiss", "sklearn-lloyd", "sklearnex"]
LENGTHS = (10, 50)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one small shape")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    p.add_argument("--mem-limit-gib", type=float, default=8.0)
    p.add_argument("--output", default=str(Path(__file__).with_name("RESULTS.md")))
    args = p.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    mem_limit = int(args.mem_limit_gib * 2**30)
    started = time.time()
    results: dict[tuple[Shape, int], dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            data, init = make_data(shape, Path(tmp), uniform=True)
            for iters in LENGTHS:
                rows: dict[str, dict[str, Any]] = {}
                runs = [
                    ("torchkmeans", "torchkmeans", None),
                    ("torchkmeans, 1 thread", "torchkmeans", 1),
                ]
                runs += [(peer, peer, None) for peer in PEERS]
                for label, peer, threads in runs:
                    spec = {
                        "peer": peer,
                        "data": str(data),
                        "init": str(init),
                        "iters": iters,
                        "device": "cpu",
                        "k": shape.k,
                        "mode": "iter",
                        "threads": threads,
                    }
                    rows[label] = run_peer(spec, args.timeout, mem_limit)
                    r = rows[label]
                    print(
                        f"{shape} I={iters} {label:22s} {r['status']:>8s} "
                        f"{fmt_time(r.get('per_iter'))}/iter",
                        flush=True,
                    )
                results[shape, iters] = rows
            for f in (data, init):
                f.unlink(missing_ok=True)
    text = render(results, environment(), time.time() - started, args.quick)
    write_section("unstructured", text, Path(args.output))
    print(f"wrote {args.output}")
    return 0


def render(
    results: dict[tuple[Shape, int], dict[str, dict[str, Any]]],
    env: dict[str, str],
    elapsed: float,
    quick: bool,
) -> str:
    command = "python benchmarks/unstructured.py" + (" --quick" if quick else "")
    if env["OPENBLAS_CORETYPE"] == "unset" and env["OPENBLAS_L2_SIZE"] == "unset":
        command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " + command
    lines = [
        "## Data without cluster structure (uniform rows)",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min). "
        f"Machine: {env['machine']}; torch {env['torch']}; {env.get('numpy/sklearn thread pools', '')}. "
        "Rows uniform in the unit cube (float32), initial centers K distinct rows, every "
        "measurement in a fresh process; time per iteration = (T(I) - T(1)) / (I - 1) over the "
        "first I iterations. Target (issue 15, part 3): torchkmeans at most 0.7x the best of "
        "faiss, scikit-learn and scikit-learn-intelex over 10 iterations, at most 0.5x over 50.",
        "",
        "| shape | iterations | torchkmeans | 1 thread | same centers | faiss | sklearn | "
        "sklearnex | torchkmeans / best peer | 2 threads / 1 thread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (shape, iters), rows in results.items():

        def cell(label: str, rows: dict[str, dict[str, Any]] = rows) -> str:
            r = rows.get(label, {})
            return fmt_time(r.get("per_iter")) if r.get("status") == "ok" else r.get("status", "")

        ours, one = rows.get("torchkmeans", {}), rows.get("torchkmeans, 1 thread", {})
        peers = [
            rows[p]["per_iter"]
            for p in PEERS
            if rows.get(p, {}).get("status") == "ok" and rows[p].get("per_iter")
        ]
        ok = ours.get("status") == "ok" and one.get("status") == "ok"
        same = "yes" if ok and ours["centers_sha256"] == one["centers_sha256"] else "no"
        best = f"**{ours['per_iter'] / min(peers):.2f}x**" if ok and peers else ""
        scale = f"{ours['per_iter'] / one['per_iter']:.2f}" if ok and one["per_iter"] else ""
        lines.append(
            f"| {shape} | {iters} ({ours.get('iterations', '?')} run) | {cell('torchkmeans')} | "
            f"{cell('torchkmeans, 1 thread')} | {same if ok else ''} | {cell('faiss')} | "
            f"{cell('sklearn-lloyd')} | {cell('sklearnex')} | {best} | {scale} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
