"""Files. Model files live here (safetensors tensors plus JSON metadata, never pickle); every
file function is exported here: atomic writes (``_atomic.py``) and the data files of the
command line (``_data_files.py``: tables in, labels out)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._atomic import atomic_path, atomic_paths
from ._data_files import Table, check_labels_path, read_table, select_columns, write_labels

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
