"""Files: atomic writes (a temporary file in the same folder, then rename), model files
(safetensors tensors plus JSON metadata, never pickle), and reading data files for the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import DataError

__all__ = [
    "Table",
    "atomic_path",
    "atomic_paths",
    "check_labels_path",
    "load_model",
    "read_table",
    "save_model",
    "select_columns",
    "write_labels",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    If the body raises (or the process dies), ``path`` is left untouched and the temporary file
    is removed, so no partial or empty output is ever left behind. Errors name ``path``, never
    the hidden temporary file.
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[tuple[Path, ...]]:
    """:func:`atomic_path` for several outputs at once, all or nothing: each gets a temporary
    path, and only when the body has written every one are they renamed onto their targets."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            folder = target.parent if str(target.parent) else Path(".")
            try:
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=folder
                )
            except OSError as exc:
                raise OSError(exc.errno, f"{target}: cannot write ({exc.strerror})") from None
            os.close(fd)
            temps.append(Path(name))
        try:
            yield tuple(temps)
        except OSError as exc:  # name the user's file, not the temporary one
            if exc.filename is not None and Path(exc.filename) in temps:
                target = targets[temps.index(Path(exc.filename))]
                raise OSError(exc.errno, f"{target}: cannot write ({exc.strerror})") from None
            raise
        umask = os.umask(0)
        os.umask(umask)
        for tmp in temps:
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()


# --------------------------------------------------------------------------------------------
# model files: safetensors tensors + JSON metadata; nothing in them can execute code
# --------------------------------------------------------------------------------------------

FORMAT_NAME = "torchkmeans-model"
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024


def _json_param(name: str, value: Any) -> Any:
    """A constructor parameter as JSON; arrays and callables cannot be stored."""
    import numpy as np
    import torch

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if name == "init":
        return "array" if not callable(value) else "callable"
    if name == "random_state":
        return None  # a generator object: the fit is done, its state is not needed to predict
    return repr(value)


def save_model(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Write a fitted estimator to ``path`` atomically (see ``KMeans.save``)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from . import __version__

    centers = torch.as_tensor(estimator.cluster_centers_).detach().cpu().contiguous()
    labels = None
    if hasattr(estimator, "labels_"):
        labels = torch.as_tensor(estimator.labels_).detach().cpu().to(torch.int64).contiguous()
    params = {k: _json_param(k, v) for k, v in estimator.get_params(deep=False).items()}
    names = getattr(estimator, "feature_names_in_", None)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "torchkmeans_version": __version__,
        "torch_version": torch.__version__,
        "estimator": type(estimator).__name__,
        "params": params,
        "dtype": str(centers.dtype).removeprefix("torch."),
        "container": "torch" if isinstance(estimator.cluster_centers_, torch.Tensor) else "numpy",
        "n_clusters": int(centers.shape[0]),
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if names is None else [str(n) for n in np.asarray(names)],
        "inertia": float(estimator.inertia_) if hasattr(estimator, "inertia_") else None,
        "n_iter": int(estimator.n_iter_) if hasattr(estimator, "n_iter_") else None,
        "history": getattr(estimator, "history_", []),
    }
    tensors = {"cluster_centers": centers}
    if labels is not None:
        tensors["labels"] = labels
    # mini-batch state, so that partial_fit can continue after load
    if hasattr(estimator, "n_steps_"):
        meta["n_steps"] = int(estimator.n_steps_)
        meta["since_reassign"] = float(getattr(estimator, "_since_reassign", 0.0))
    if hasattr(estimator, "_state_counts"):
        tensors["counts"] = torch.as_tensor(estimator._state_counts).detach().cpu().contiguous()
    if hasattr(estimator, "_rng_state"):
        tensors["rng_state"] = estimator._rng_state.detach().cpu().contiguous()
    tree = getattr(estimator, "_tree", None)
    if tree is not None:  # BisectingKMeans: the hierarchy predict descends
        tensors["tree_children"] = tree.children.contiguous()
        tensors["tree_centers"] = tree.centers.contiguous()
        tensors["tree_leaf_labels"] = tree.leaf_labels.contiguous()
    init = estimator.get_params(deep=False).get("init")
    if params.get("init") == "array":
        tensors["init"] = torch.as_tensor(
            np.asarray(init.cpu() if hasattr(init, "cpu") else init)
        ).contiguous()
    with atomic_path(path) as tmp:
        save_file(
            tensors,
            str(tmp),
            metadata={"torchkmeans": json.dumps(meta)},
        )


def _read_header(path: Path) -> dict[str, Any]:
    """Check the file is a safetensors file and return its JSON header, without running code."""
    from .exceptions import ModelFileError

    try:
        with open(path, "rb") as f:
            # the size of the file opened (a path's stat could be of the file an atomic save
            # replaces in between)
            size = os.fstat(f.fileno()).st_size
            head = f.read(9)
            # a safetensors file: 8-byte header length, then the JSON header's "{"; a pickle
            # starts with the PROTO opcode 0x80, a torch.save zip file with "PK"
            looks_safetensors = len(head) == 9 and head[8:9] == b"{"
            if not looks_safetensors and (head[:1] == b"\x80" or head[:2] == b"PK"):
                raise ModelFileError(
                    f"{path}: this is a pickle or torch.save file, not a torchkmeans model; it was "
                    "not loaded because unpickling can execute code. Re-save the model with "
                    "KMeans.save()."
                )
            if len(head) < 8:
                raise ModelFileError(f"{path}: file is truncated ({size} bytes); not a model file.")
            n = int.from_bytes(head[:8], "little")
            f.seek(8)
            if n <= 0 or n > _MAX_HEADER or 8 + n > size:
                raise ModelFileError(
                    f"{path}: not a safetensors model file, or truncated (header of {n} bytes "
                    f"in a file of {size} bytes)."
                )
            header = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, expected a model file.") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"{path}: corrupt model file (its header is not valid JSON)."
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupt model file (unexpected header).")
    data_end = max(
        (
            int(v["data_offsets"][1])
            for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
        ),
        default=0,
    )
    if 8 + n + data_end > size:
        raise ModelFileError(
            f"{path}: model file is truncated ({size} bytes, expected {8 + n + data_end})."
        )
    return header


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked torchkmeans metadata of a model file (format name and version included),
    read from its header without loading tensors or running code."""
    from .exceptions import ModelFileError

    p = Path(path)
    header = _read_header(p)
    raw = (header.get("__metadata__") or {}).get("torchkmeans")
    if raw is None:
        raise ModelFileError(
            f"{p}: a safetensors file, but not a torchkmeans model (no torchkmeans metadata)."
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelFileError(f"{p}: corrupt torchkmeans metadata.") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: corrupt torchkmeans metadata (not a JSON object).")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{p}: unknown model format {meta.get('format')!r}, expected {FORMAT_NAME!r}."
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: model format version {meta.get('format_version')!r}, but this torchkmeans "
            f"reads version {FORMAT_VERSION}. Load it with the torchkmeans version that wrote it "
            f"({meta.get('torchkmeans_version', 'unknown')}) and re-save, or refit."
        )
    problem = _meta_problem(meta)
    if problem is not None:
        raise ModelFileError(f"{p}: corrupt model file ({problem}).")
    return meta  # type: ignore[no-any-return]


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a model file's metadata, or None (the schema)."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def count(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    checks: list[tuple[str, bool]] = [
        ("estimator", isinstance(meta.get("estimator"), str)),
        ("params", isinstance(meta.get("params"), dict)),
        ("dtype", meta.get("dtype") in ("float16", "bfloat16", "float32", "float64")),
        ("container", meta.get("container") in ("torch", "numpy")),
        ("n_clusters", count(meta.get("n_clusters"), 1)),
        ("n_features_in", count(meta.get("n_features_in"), 1)),
        ("inertia", meta.get("inertia") is None or number(meta.get("inertia"))),
        ("n_iter", meta.get("n_iter") is None or count(meta.get("n_iter"), 0)),
        (
            "history",
            isinstance(meta.get("history", []), list)
            and all(isinstance(h, dict) for h in meta.get("history", [])),
        ),
        ("n_steps", "n_steps" not in meta or count(meta["n_steps"], 0)),
        ("since_reassign", "since_reassign" not in meta or number(meta["since_reassign"])),
    ]
    names = meta.get("feature_names_in")
    checks.append(
        (
            "feature_names_in",
            names is None
            or (
                isinstance(names, list)
                and all(isinstance(n, str) for n in names)
                and len(names) == meta.get("n_features_in")
            ),
        )
    )
    for field_name, ok in checks:
        if not ok:
            return f"the field {field_name!r} is missing or has a wrong type or value"
    return None


# Parameters of a run, not of a model: never restored from a file (a file must not choose where a
# later fit writes checkpoints, which device it needs, or whether it joins a process group).
RUN_PARAMS = ("checkpoint", "device", "distributed")


def _model_params(
    path: Path, cls: type, saved: Any, tensors: dict[str, Any], k: int, d: int
) -> dict[str, Any]:
    """The constructor parameters a model file restores, each checked as the estimator checks
    it; the run's own parameters (:data:`RUN_PARAMS`) keep their defaults."""
    import inspect

    from ._params import PARAMS
    from .exceptions import ModelFileError, TorchKMeansError

    if not isinstance(saved, dict):
        raise ModelFileError(f"{path}: corrupt model file (params is not a JSON object).")
    known = set(inspect.signature(cls).parameters)
    params: dict[str, Any] = {}
    for name, value in saved.items():
        if name not in known:
            raise ModelFileError(
                f"{path}: corrupt model file (unknown parameter {name!r} for {cls.__name__})."
            )
        if name in RUN_PARAMS:
            continue
        if name == "init" and value in ("array", "callable"):
            init = tensors.get("init")
            if value == "array" and init is not None:
                if tuple(init.shape) != (k, d) or not bool(init.isfinite().all()):
                    raise ModelFileError(f"{path}: corrupt model file (bad init array).")
                params[name] = init.numpy()
            else:  # a callable cannot be stored; predicting does not need it
                params[name] = "k-means++"
            continue
        if name == "init" and not isinstance(value, str):
            raise ModelFileError(f"{path}: corrupt model file (init is {value!r}).")
        if name in PARAMS:
            try:
                PARAMS[name](name, value)
            except TorchKMeansError as exc:
                raise ModelFileError(f"{path}: corrupt model file (parameter {exc})") from None
        elif value is not None and not isinstance(value, (bool, int, float, str)):
            raise ModelFileError(f"{path}: corrupt model file (parameter {name}={value!r}).")
        params[name] = value
    return params


def load_model(cls: type, path: str | os.PathLike[str], device: Any = None) -> Any:
    """Read a model written by ``save_model`` (see ``KMeans.load``)."""
    import numpy as np
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .exceptions import ModelFileError

    p = Path(path)
    meta = read_metadata(p)
    if meta.get("estimator") != cls.__name__:
        raise ModelFileError(f"{p}: holds a {meta.get('estimator')} model, not a {cls.__name__}.")
    try:
        tensors = load_file(str(p))
        centers = tensors["cluster_centers"]
        labels = tensors.get("labels")
    except (SafetensorError, KeyError, OSError, RuntimeError) as exc:
        raise ModelFileError(f"{p}: corrupt model file ({exc}).") from None
    k, d = int(meta["n_clusters"]), int(meta["n_features_in"])
    if tuple(centers.shape) != (k, d):
        raise ModelFileError(
            f"{p}: corrupt model file (centers of shape {tuple(centers.shape)}, expected ({k}, {d}))."
        )
    if not centers.is_floating_point() or not bool(torch.isfinite(centers.float()).all()):
        raise ModelFileError(f"{p}: corrupt model file (the centers hold NaN or infinity).")
    est = cls(**_model_params(p, cls, meta["params"], tensors, k, d))
    if labels is not None and (labels.dim() != 1 or labels.dtype != torch.int64):
        raise ModelFileError(f"{p}: corrupt model file (labels of the wrong shape or type).")
    if meta.get("container") == "torch" or device is not None:
        dev = torch.device(device) if device is not None else torch.device("cpu")
        est.cluster_centers_ = centers.to(dev)
        if labels is not None:
            est.labels_ = labels.to(dev)
    else:
        est.cluster_centers_ = (
            centers.numpy() if centers.dtype != torch.bfloat16 else centers.float().numpy()
        )
        if labels is not None:
            est.labels_ = labels.numpy()
    if meta.get("inertia") is not None:
        est.inertia_ = float(meta["inertia"])
    if meta.get("n_iter") is not None:
        est.n_iter_ = int(meta["n_iter"])
    if "n_steps" in meta:
        est.n_steps_ = int(meta["n_steps"])
        est._since_reassign = float(meta.get("since_reassign", 0.0))
    if "counts" in tensors:
        if tuple(tensors["counts"].shape) != (k,):
            raise ModelFileError(f"{p}: corrupt model file (counts of the wrong shape).")
        est._state_counts = tensors["counts"].to(torch.float64)
    if "rng_state" in tensors:
        if tensors["rng_state"].dtype != torch.uint8 or tensors["rng_state"].dim() != 1:
            raise ModelFileError(f"{p}: corrupt model file (not a generator state).")
        est._rng_state = tensors["rng_state"]
    if "tree_children" in tensors:
        est._tree = _read_tree(p, tensors, k, d)
    est.history_ = list(meta.get("history") or [])
    est.n_features_in_ = d
    est._n_features_out = k
    if meta.get("feature_names_in") is not None:
        est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    return est


def _read_tree(path: Path, tensors: dict[str, Any], k: int, d: int) -> Any:
    """BisectingKMeans' tree from a model file, checked so that predict cannot go astray."""
    import torch

    from ._bisect import Tree
    from .exceptions import ModelFileError

    try:
        children = tensors["tree_children"]
        centers = tensors["tree_centers"]
        leaf_labels = tensors["tree_leaf_labels"]
    except KeyError as exc:
        raise ModelFileError(f"{path}: corrupt model file (missing {exc}).") from None
    n = int(children.shape[0]) if children.dim() == 2 else -1
    split = children[:, 0] >= 0 if n > 0 else None
    ok = (
        n == 2 * k - 1
        and split is not None
        and children.dtype == torch.int64
        and tuple(children.shape) == (n, 2)
        and tuple(centers.shape) == (n, d)
        and tuple(leaf_labels.shape) == (n,)
        and bool(torch.isfinite(centers.float()).all())
        # a split node's children come after it (so a descent ends); a leaf has none
        and bool((children[split] > torch.arange(n)[split][:, None]).all())
        and bool((children[split] < n).all())
        and bool((children[~split] == -1).all())
        and bool((leaf_labels[split] == -1).all())
        and sorted(leaf_labels[~split].tolist()) == list(range(k))
    )
    if not ok:
        raise ModelFileError(f"{path}: corrupt model file (the tree of splits is inconsistent).")
    return Tree(children, centers, leaf_labels)


# --------------------------------------------------------------------------------------------
# data files for the command line
# --------------------------------------------------------------------------------------------

DATA_FORMATS = (".npy", ".npz", ".csv", ".tsv", ".txt", ".pt")


@dataclass
class Table:
    """Data read from a file: a 2-D array (or tensor) and column names when there were any."""

    X: Any
    columns: list[str] | None


def _fail(source: str, message: str) -> DataError:
    return DataError(f"{source}: {message}")


def _parse_float(cell: str) -> float:
    cell = cell.strip()
    if cell == "":
        raise ValueError("empty cell")
    return float(cell)


def _read_delimited(text: Iterator[str], source: str, delimiter: str, header: bool | None) -> Table:
    import csv

    import numpy as np

    reader = csv.reader(text, delimiter=delimiter)
    rows: list[list[float]] = []
    columns: list[str] | None = None
    width = None
    try:
        numbered = list(enumerate(reader, start=1))
    except csv.Error as exc:
        raise _fail(
            source,
            f"is not readable CSV ({exc}). Save it with ordinary line endings (\\n or \\r\\n).",
        ) from None
    for line_no, cells in numbered:
        if line_no == 1 and cells and cells[0].startswith("\ufeff"):  # a byte-order mark
            cells[0] = cells[0][1:]
        if not cells or all(c.strip() == "" for c in cells):
            continue
        if width is None:
            width = len(cells)
            first_numeric = True
            try:
                [_parse_float(c) for c in cells]
            except ValueError:
                first_numeric = False
            if header or (header is None and not first_numeric):
                columns = [c.strip() for c in cells]
                continue
        if len(cells) != width:
            raise _fail(
                source,
                f"line {line_no} has {len(cells)} cells, expected {width} like the first row.",
            )
        values = []
        for j, cell in enumerate(cells):
            try:
                values.append(_parse_float(cell))
            except ValueError:
                name = f"'{columns[j]}'" if columns else str(j + 1)
                raise _fail(
                    source,
                    f"line {line_no}, column {name}: {cell.strip()!r} is not a number. Fix the "
                    "cell, or pick numeric columns with --columns.",
                ) from None
        rows.append(values)
    if not rows:
        raise _fail(source, "no data rows found.")
    return Table(np.asarray(rows, dtype=np.float64), columns)


def _lines(stream: Any) -> Iterator[str]:
    """The lines of a text stream, any of \\n, \\r\\n or a lone \\r ending a line."""
    for line in iter(stream.readline, ""):
        yield from line.replace("\r\n", "\n").replace("\r", "\n").splitlines(keepends=True)


# The arrays scipy.sparse.save_npz writes for every format (np.savez archives name theirs).
_SPARSE_NPZ_KEYS = {"format", "shape", "data"}


def read_table(path: str, *, key: str | None = None, header: bool | None = None) -> Table:
    """Read a data file: .npy (memory-mapped), .npz (``key``; a sparse matrix written by
    ``scipy.sparse.save_npz`` is read as one), .csv/.tsv/.txt (a header row
    detected, or forced with ``header``), .pt (a tensor, loaded with ``weights_only=True``), or
    ``-`` for CSV on stdin."""
    import sys

    import numpy as np

    if path == "-":
        return _read_delimited(_lines(sys.stdin), "<stdin>", ",", header)
    p = Path(path)
    if not p.exists():
        raise _fail(path, "no such file.")
    if p.is_dir():
        raise _fail(path, "is a folder, expected a data file.")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            return Table(np.load(p, mmap_mode="r", allow_pickle=False), None)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is None and _SPARSE_NPZ_KEYS <= set(keys):
                    import scipy.sparse

                    return Table(scipy.sparse.load_npz(p), None)  # written by save_npz
                if key is None:
                    if len(keys) != 1:
                        raise _fail(path, f"holds arrays {keys}; pick one with --key.")
                    key = keys[0]
                if key not in keys:
                    raise _fail(path, f"has no array {key!r}; it holds {keys}.")
                return Table(z[key], None)
        if suffix in (".csv", ".tsv", ".txt"):
            delimiter = "\t" if suffix == ".tsv" else ","
            with open(p, newline="", encoding="utf-8-sig") as f:  # (a byte-order mark is no cell)
                return _read_delimited(_lines(f), path, delimiter, header)
        if suffix == ".pt":
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and key is not None:
                obj = obj.get(key)
            if not isinstance(obj, torch.Tensor):
                raise _fail(
                    path,
                    f"holds a {type(obj).__name__}, expected a tensor (use --key for a dict of tensors).",
                )
            return Table(obj, None)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise _fail(path, "is not a UTF-8 text file.") from None
    except Exception as exc:  # numpy / torch / zip errors on unreadable or corrupt files
        raise _fail(path, f"could not be read as {suffix} ({type(exc).__name__}: {exc}).") from None
    raise _fail(
        path,
        f"unknown file type {suffix!r}; expected one of {', '.join(DATA_FORMATS)} or '-' for CSV on stdin.",
    )


def select_columns(table: Table, spec: str | None, source: str) -> Any:
    """Pick columns by comma-separated names (needs a header) or 0-based indices."""
    if spec is None:
        return table.X
    X = table.X.tocsr() if hasattr(table.X, "tocsr") else table.X  # sparse: rows by columns
    picks: list[int] = []
    n = X.shape[1] if getattr(X, "ndim", 0) == 2 else 0
    for item in (s.strip() for s in spec.split(",")):
        if item.lstrip("-").isdigit():
            j = int(item)
        elif table.columns and item in table.columns:
            j = table.columns.index(item)
        else:
            known = (
                f"; columns are {table.columns}" if table.columns else " (the file has no header)"
            )
            raise _fail(source, f"no column {item!r}{known}.")
        if not -n <= j < n:
            raise _fail(source, f"column index {j} out of range for {n} columns.")
        picks.append(j)
    return X[:, picks]


def check_labels_path(path: str) -> str:
    """The suffix of a labels file, one of .npy, .csv and .txt."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".csv", ".txt"):
        raise DataError(f"{path}: unknown labels file type {suffix!r}; use .npy, .csv or .txt.")
    return suffix


def write_labels(labels: Any, path: str | None) -> None:
    """Labels to .npy, .csv or .txt by extension (atomically), or one per line on stdout."""
    import sys

    import numpy as np

    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64)
    if path is None or path == "-":
        sys.stdout.write("\n".join(str(int(v)) for v in arr) + "\n")
        return
    suffix = check_labels_path(path)
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr)
        else:
            header = "label\n" if suffix == ".csv" else ""
            tmp.write_text(header + "\n".join(str(int(v)) for v in arr) + "\n")
