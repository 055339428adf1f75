"""The ``torchkmeans`` command line: ``main(argv=None) -> int`` over the library.

Errors from the library become one line on stderr and exit code 1; usage errors exit with 2.
The library (torch, numpy, scikit-learn) is imported inside the commands, so ``--help`` and
``--version`` answer without importing it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from . import __version__


def _demo(args: argparse.Namespace) -> int:
    import numpy as np
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


def _load_data(args: argparse.Namespace, path: str) -> Any:
    from .io import read_table, select_columns

    header = True if args.header else (False if args.no_header else None)
    table = read_table(path, key=args.key, header=header)
    X = select_columns(table, args.columns, path)
    return _named(X, table, args.columns)


def _named(X: Any, table: Any, columns: str | None) -> Any:
    """Give CSV data with a header its column names (recorded as feature_names_in_)."""
    if table.columns is None:
        return X
    try:
        import pandas as pd
    except ImportError:
        return X
    names = table.columns
    if columns is not None:
        picks = [c.strip() for c in columns.split(",")]
        names = [table.columns[int(c)] if c.lstrip("-").isdigit() else c for c in picks]
    return pd.DataFrame(X, columns=names)


def _check_output_folders(*paths: str | None) -> None:
    """Fail before any work when an output cannot be written, so nothing is left half done."""
    from pathlib import Path

    for path in paths:
        if path and path != "-":
            folder = Path(path).parent
            if not folder.is_dir():
                raise OSError(f"{path}: the folder {str(folder)!r} does not exist.")


def _start_distributed(device: str | None) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL for
    CUDA devices); returns ``(rank, world_size)``."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise OSError("--distributed needs a PyTorch build with torch.distributed.")
    if not dist.is_initialized():
        missing = [
            k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
        ]
        if missing:
            raise OSError(
                "--distributed expects to be launched by torchrun (missing environment "
                f"{', '.join(missing)}), e.g. torchrun --nproc-per-node 2 -m torchkmeans fit "
                "DATA.npy -k 8 --distributed"
            )
        cuda = device is not None and device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _shard(X: Any, rank: int, world: int) -> Any:
    """Rows ``[rank * n // world, (rank + 1) * n // world)``: a view of a memory-mapped file."""
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    lo, hi = rank * n // world, (rank + 1) * n // world
    return X.iloc[lo:hi] if hasattr(X, "iloc") else X[lo:hi]


def _gather_labels(labels: Any) -> Any:
    """Every rank's labels, in rank order (one O(N) gather at the end of a CLI fit)."""
    import numpy as np
    import torch
    import torch.distributed as dist

    local = torch.as_tensor(np.asarray(_cpu(labels)), dtype=torch.int64)
    counts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(counts, int(local.numel()))
    most = max(counts)
    padded = torch.zeros(most, dtype=torch.int64)
    padded[: local.numel()] = local
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).numpy()


def _fit(args: argparse.Namespace) -> int:
    from ._estimator import KMeans
    from .exceptions import TorchKMeansError

    rank, world = (0, 1)
    if args.distributed:
        rank, world = _start_distributed(args.device)
    main_rank = rank == 0
    _check_output_folders(args.output, args.labels, args.plot)
    if args.labels:
        from .io import check_labels_path

        check_labels_path(args.labels)
    X = _load_data(args, args.data)
    if args.distributed:
        X = _shard(X, rank, world)
    km = KMeans(
        n_clusters=args.k,
        init=args.init,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        metric=args.metric,
        random_state=args.seed,
        device=args.device,
        dtype=args.dtype,
        verbose=1 if args.verbose and main_rank else 0,
        distributed=bool(args.distributed),
    )
    t0 = time.perf_counter()
    try:
        # (verbose lines go to stdout in the library, as scikit-learn's; here to stderr)
        with contextlib.redirect_stdout(sys.stderr):
            km.fit(X)
    except TorchKMeansError as exc:
        raise type(exc)(f"{args.data}: {exc}") from None
    seconds = time.perf_counter() - t0
    if args.distributed:
        km.labels_ = _gather_labels(km.labels_)  # the model file holds every training label
        km.distributed = False  # the saved model predicts on one process
    if main_rank:
        _write_fit_outputs(args, km, X, seconds, world)
    if args.distributed:
        import torch.distributed as dist

        dist.barrier()  # nobody exits before rank 0 has written the outputs
        dist.destroy_process_group()
    return 0


def _write_fit_outputs(
    args: argparse.Namespace, km: Any, X: Any, seconds: float, world: int
) -> None:
    """The model, labels and plot, all or nothing: each is written to a temporary file and they
    are renamed into place only when every one was written."""
    from .io import atomic_paths, write_labels

    outputs = [args.output] + [path for path in (args.labels, args.plot) if path]
    with atomic_paths(*outputs) as temps:
        files = dict(zip(outputs, temps))
        km.save(files[args.output])
        if args.labels:
            write_labels(km.labels_, str(files[args.labels]))
        if args.plot:
            if world > 1:
                X = _load_data(args, args.data)
            _save_plot(X, km, str(files[args.plot]))
    if not args.quiet:
        import numpy as np

        sizes = np.bincount(np.asarray(_cpu(km.labels_)), minlength=args.k)
        on = f" on {world} processes" if world > 1 else ""
        print(
            f"fitted {args.k} clusters on {km.n_features_in_} features in {seconds:.2f} s "
            f"({km.n_iter_} iterations{on}), inertia {km.inertia_:.6g}",
            file=sys.stderr,
        )
        print(f"cluster sizes: {', '.join(str(int(v)) for v in sizes)}", file=sys.stderr)
        print(f"model: {args.output}", file=sys.stderr)


def _cpu(a: Any) -> Any:
    return a.cpu() if hasattr(a, "cpu") else a


def _save_plot(X: Any, km: Any, path: str) -> None:
    """The clusters plot, written to ``path`` (the caller makes it atomic)."""
    from .plot import plot_clusters

    fig, _ = plot_clusters(X, km.labels_, km.cluster_centers_)
    fig.savefig(path, dpi=100)


def _predict(args: argparse.Namespace) -> int:
    from ._estimator import KMeans
    from .exceptions import TorchKMeansError
    from .io import write_labels

    _check_output_folders(args.output)
    km = KMeans.load(args.model, device=args.device)
    X = _load_data(args, args.data)
    try:
        with warnings.catch_warnings():
            # a .npy has no column names even when the model was fitted on a CSV with a header
            warnings.filterwarnings("ignore", message=".*feature names", category=UserWarning)
            labels = km.predict(X)
    except TorchKMeansError as exc:
        raise type(exc)(f"{args.data}: {exc}") from None
    write_labels(labels, args.output)
    return 0


def _info(args: argparse.Namespace) -> int:
    from ._estimator import KMeans
    from .io import read_metadata

    km = KMeans.load(args.model)  # also checks the tensors
    meta = read_metadata(args.model)
    names = meta.get("feature_names_in")
    print(f"model: {args.model}")
    print(f"estimator: {meta['estimator']} (format version {meta['format_version']})")
    print(f"written by: torchkmeans {meta['torchkmeans_version']}, torch {meta['torch_version']}")
    print(f"n_clusters: {meta['n_clusters']}")
    print(f"n_features: {meta['n_features_in']}")
    print(f"feature names: {', '.join(names) if names else '(none)'}")
    print(f"dtype: {meta['dtype']}")
    print(f"inertia: {meta['inertia']:.6g}")
    print(f"iterations: {meta['n_iter']}")
    print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in sorted(km.get_params().items())))
    return 0


def _k_values(text: str) -> list[int]:
    """``2:12`` (both ends included), ``2:20:2`` (with a step) or ``2,3,5``."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            start, stop = parts[0], parts[1]
            ks = list(range(start, stop + 1, parts[2] if len(parts) == 3 else 1))
        else:
            ks = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:STOP, START:STOP:STEP or a comma-separated list of ints, got {text!r}"
        ) from None
    if not ks or min(ks) < 2:
        raise argparse.ArgumentTypeError(f"every k must be >= 2, got {text!r}")
    return ks


def _sweep(args: argparse.Namespace) -> int:
    from ._sweep import sweep_k
    from .exceptions import TorchKMeansError

    _check_output_folders(args.plot)
    X = _load_data(args, args.data)
    n_init: Any = args.n_init
    try:
        result = sweep_k(
            X,
            args.k,
            silhouette_sample_size=args.silhouette_sample,
            init=args.init,
            n_init=n_init,
            max_iter=args.max_iter,
            metric=args.metric,
            random_state=args.seed,
            device=args.device,
        )
    except TorchKMeansError as exc:
        raise type(exc)(f"{args.data}: {exc}") from None
    print(result)
    if args.plot:
        from .io import atomic_path
        from .plot import plot_sweep

        fig, _ = plot_sweep(result)
        with atomic_path(args.plot) as tmp:
            fig.savefig(tmp, dpi=100)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0


class _VersionAction(argparse.Action):
    """``--version``: the version line, then the configuration known without importing torch
    (versions, the CPU engine, CPU count, CUDA devices from the driver); exits 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and configuration (engine, threads, CUDA)")
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from ._config import config_info, format_config

        sys.stdout.write(f"torchkmeans {__version__}\n")
        sys.stdout.write(format_config(config_info(import_torch=False)))
        parser.exit()


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", help="array name inside a .npz (or key of a dict of tensors in a .pt)")
    p.add_argument("--columns", help="comma-separated column names or 0-based indices to use")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--header", action="store_true", help="the CSV's first row is a header")
    g.add_argument("--no-header", action="store_true", help="the CSV has no header row")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchkmeans",
        description="K-means clustering on PyTorch, from the shell.",
    )
    parser.add_argument("--version", action=_VersionAction)
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

    formats = (
        ".npy (memory-mapped), .npz (--key; a scipy.sparse.save_npz file is read as a sparse "
        "matrix), .csv/.tsv (header detected), .pt, or - for CSV on stdin"
    )
    fit = sub.add_parser(
        "fit",
        help="cluster a data file and save the model",
        description=f"Cluster the rows of DATA into K groups and save the model. DATA: {formats}.",
    )
    fit.add_argument("data", metavar="DATA")
    fit.add_argument(
        "-k", "--n-clusters", dest="k", type=int, required=True, help="number of clusters"
    )
    fit.add_argument(
        "-o", "--output", default="kmeans.safetensors", help="model file (default: %(default)s)"
    )
    fit.add_argument("--init", default="k-means++", choices=["k-means++", "random"])
    fit.add_argument(
        "--n-init", default="auto", type=_n_init, help="runs from different seeds (default: auto)"
    )
    fit.add_argument("--max-iter", type=int, default=300)
    fit.add_argument("--tol", type=float, default=1e-4)
    fit.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    fit.add_argument("--seed", type=int, default=None, help="random_state (default: fresh entropy)")
    fit.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")
    fit.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32", "float64"])
    fit.add_argument("--labels", help="also write the training labels (.npy, .csv or .txt)")
    fit.add_argument("--plot", metavar="PNG", help="also plot the clusters to this image")
    _add_data_options(fit)
    fit.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel fit under torchrun: each rank takes a contiguous slice of the rows "
        "(gloo on CPU, NCCL with --device cuda); rank 0 writes the outputs",
    )
    loud = fit.add_mutually_exclusive_group()
    loud.add_argument(
        "--verbose", "-v", action="store_true", help="a line per iteration (inertia) on stderr"
    )
    loud.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    fit.set_defaults(func=_fit)

    predict = sub.add_parser(
        "predict",
        help="label the rows of a data file with a saved model",
        description=f"Write the cluster of each row of DATA. DATA: {formats}.",
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA")
    predict.add_argument(
        "-o", "--output", help="labels file (.npy, .csv, .txt); stdout when omitted"
    )
    predict.add_argument("--device", default=None)
    _add_data_options(predict)
    predict.set_defaults(func=_predict)

    sweep = sub.add_parser(
        "sweep",
        help="fit several k and score them to choose k",
        description="Fit k-means for every k, print inertia, silhouette, Calinski-Harabasz and "
        "Davies-Bouldin per k and the suggested k (best silhouette) and the elbow of the "
        f"inertia curve. DATA: {formats}.",
    )
    sweep.add_argument("data", metavar="DATA")
    sweep.add_argument(
        "--k",
        "-k",
        type=_k_values,
        default=list(range(2, 11)),
        help="ks to try: START:STOP (inclusive), START:STOP:STEP or 2,3,5 (default: 2:10)",
    )
    sweep.add_argument("--plot", metavar="PNG", help="also plot the four curves to this image")
    sweep.add_argument(
        "--silhouette-sample",
        type=int,
        default=None,
        help="rows the silhouette is computed on (default: all up to 10000, else 10000)",
    )
    sweep.add_argument("--init", default="k-means++", choices=["k-means++", "random"])
    sweep.add_argument("--n-init", default="auto", type=_n_init)
    sweep.add_argument("--max-iter", type=int, default=300)
    sweep.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    sweep.add_argument("--seed", type=int, default=None, help="random_state")
    sweep.add_argument("--device", default=None)
    _add_data_options(sweep)
    sweep.set_defaults(func=_sweep)

    info = sub.add_parser(
        "info", help="describe a saved model", description="Print what a model file holds."
    )
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(func=_info)
    return parser


def _n_init(value: str) -> int | str:
    """--n-init: "auto" or a positive integer."""
    if value == "auto":
        return value
    try:
        runs = int(value)
    except ValueError:
        runs = 0
    if runs < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {value!r}")
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from .exceptions import TorchKMeansError  # after parsing: imports scikit-learn

    try:
        return int(args.func(args))
    except (TorchKMeansError, OSError, ImportError, ValueError) as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"torchkmeans {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("torchkmeans: interrupted", file=sys.stderr)
        return 130
