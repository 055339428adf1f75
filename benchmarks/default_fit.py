"""Default fits (k-means++, one run, Lloyd to tol 1e-4) against scikit-learn-intelex and
scikit-learn, where users spend their time.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/default_fit.py [--quick]

Per shape (float32 blobs, as benchmarks/run.py makes them): ``KMeans(k, random_state=s).fit(X)``
for seeds 0..4, each library in a fresh process (benchmarks/peers.py, mode "fit"), mean time
and mean inertia. scikit-learn runs only where its fits take minutes, not hours. Rewrites the
"default-fit" section of benchmarks/RESULTS.md. Targets (issue 15): at most 0.4x
scikit-learn-intelex's time, mean inertia within 0.5% of scikit-learn's or lower.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, publish  # noqa: E402
from run import Shape, environment, make_data, run_peer  # noqa: E402

SHAPES = [Shape(100_000, 128, 1024), Shape(1_000_000, 32, 256), Shape(200_000, 32, 256)]
QUICK = [Shape(20_000, 32, 64)]
PEERS = ["torchkmeans", "sklearnex", "sklearn-lloyd"]
# scikit-learn's default fit only up to this many row x feature x center products
SKLEARN_WORK = 2e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in QUICK if args.quick else SHAPES:
            data, init = make_data(shape, Path(tmp))
            got = {}
            for peer in PEERS:
                if peer == "sklearn-lloyd" and shape.n * shape.d * shape.k > SKLEARN_WORK:
                    continue
                spec = {"peer": peer, "data": str(data), "init": str(init), "iters": 1,
                        "k": shape.k, "mode": "fit", "fit_seeds": args.seeds}  # fmt: skip
                got[peer] = run_peer(spec, args.timeout, 16 << 30)
                print(shape, peer, got[peer], flush=True)
            rows.append((shape, got))
            data.unlink()
            init.unlink()
    env = environment()
    lines = [
        "## Default fits against scikit-learn-intelex",
        "",
        "Command: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/default_fit.py"
        + (" --quick" if args.quick else "")
        + f"` ({time.strftime('%Y-%m-%d')}, {(time.time() - started) / 60:.1f} min). "
        f"Machine: {machine()}; torch {env.get('torch', '?')}; "
        f"scikit-learn-intelex from the `bench` extra; OPENBLAS_CORETYPE "
        f"{env.get('OPENBLAS_CORETYPE', '?')}.",
        "",
        f"`KMeans(k, random_state=s).fit(X)` for seeds 0..{args.seeds - 1}, float32 blobs, each "
        "library in a fresh process: mean time and mean inertia. scikit-learn runs where "
        f"n x d x K <= {SKLEARN_WORK:.0e}. Targets (issue 15): at most 0.4x "
        "scikit-learn-intelex's time, mean inertia within 0.5% of scikit-learn's or lower.",
        "",
        "| rows x features x K | torchkmeans | scikit-learn-intelex | scikit-learn | ours / "
        "intelex (time) | inertia: ours / intelex | inertia: ours / scikit-learn |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(r):
        if r is None:
            return "not run"
        if r["status"] != "ok":
            return r["status"]
        return f"{r['fit_seconds']:.2f} s"

    def ratio(a, b, key, fmt):
        ok = a and b and a["status"] == "ok" and b["status"] == "ok"
        return fmt.format(a[key] / b[key]) if ok else "n/a"

    for shape, got in rows:
        ours, ex, sk = got.get("torchkmeans"), got.get("sklearnex"), got.get("sklearn-lloyd")
        lines.append(
            f"| {shape} | {cell(ours)} | {cell(ex)} | {cell(sk)} | "
            f"{ratio(ours, ex, 'fit_seconds', '{:.2f}x')} | "
            f"{ratio(ours, ex, 'fit_inertia', '{:.4f}')} | "
            f"{ratio(ours, sk, 'fit_inertia', '{:.4f}')} |"
        )
    publish("default-fit", lines, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
