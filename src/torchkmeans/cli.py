"""The ``torchkmeans`` command line: ``main(argv=None) -> int`` over the library.

Errors from the library become one line on stderr and exit code 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import __version__
from .exceptions import TorchKMeansError


def _demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import make_blobs

    from ._estimator import KMeans

    X, _ = make_blobs(n_samples=300, centers=4, cluster_std=0.60, random_state=0)
    km = KMeans(n_clusters=4, random_state=args.seed, device=args.device)
    t0 = time.perf_counter()
    km.fit(X)
    seconds = time.perf_counter() - t0
    labels = np.asarray(km.labels_)
    centers = np.asarray(km.cluster_centers_)
    sizes = np.bincount(labels, minlength=4)
    print("torchkmeans demo: 300 points in 4 blobs (make_blobs, cluster_std=0.60), K=4")
    print(f"  cluster sizes: {', '.join(str(int(s)) for s in sizes)}")
    print("  centers:")
    for j, c in enumerate(centers):
        print(f"    {j}: ({c[0]: .3f}, {c[1]: .3f})")
    print(f"  inertia: {km.inertia_:.4f}")
    print(f"  iterations: {km.n_iter_}")
    print(f"  time: {seconds * 1000:.1f} ms")
    if not args.no_plot:
        from .io import atomic_path
        from .plot import plot_clusters

        fig, _ = plot_clusters(X, labels, centers, title="torchkmeans: 300 points, K=4")
        with atomic_path(args.output) as tmp:
            fig.savefig(tmp, dpi=100)
        print(f"  plot: {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchkmeans",
        description="K-means clustering on PyTorch, from the shell.",
    )
    parser.add_argument("--version", action="version", version=f"torchkmeans {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="cluster 300 2-D points in 4 blobs and plot them",
        description="Reproduce the tutorial: 300 points in 4 blobs, K=4; print a summary and "
        "write a plot (points coloured by cluster, centers as red X markers).",
    )
    demo.add_argument(
        "--output", "-o", default="clusters.png", help="plot file (default: %(default)s)"
    )
    demo.add_argument("--no-plot", action="store_true", help="skip the figure")
    demo.add_argument("--seed", type=int, default=0, help="random_state (default: %(default)s)")
    demo.add_argument("--device", default=None, help="compute device, e.g. cpu or cuda")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (TorchKMeansError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"torchkmeans {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("torchkmeans: interrupted", file=sys.stderr)
        return 130
