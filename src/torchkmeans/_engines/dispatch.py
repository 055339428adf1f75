"""The one place that decides which engine runs the Lloyd pass (and its layout, update,
moments, order and k-means++) for some data.

:func:`engine_for` decides, from the compute device, dtype, metric and layout of the rows:

- :class:`~.native_engine.NativeEngine` (``native_engine.py`` + ``../csrc/``): CPU,
  float32/float64, Euclidean, when the kernels compiled at install are loaded;
- :class:`~.torch_engine.TorchEngine` (``torch_engine.py``): everything else: CUDA and any
  torch device, cosine, float16/bfloat16 compute, sparse rows (scipy.sparse and torch sparse
  input), and the CPU when the kernels are missing or turned off with ``TORCHKMEANS_NATIVE=0``.
  Same algorithm, results equal up to rounding. For sparse rows on the CPU, the two steps
  whose cost grows with the stored values (the products with the centers and the per-cluster
  sums) run in the native kernels when they are loaded (:func:`sparse_products_native`).

Many problems of one shape on the CPU (``kmeans_batched``) are fitted together by the native
batch engine (``native_batch.py``) when :func:`native_batch` says so.

Within the torch engine, the assignment of dense rows on CUDA runs in the fused Triton kernel
(:mod:`.triton_assign`) when asked for with ``TORCHKMEANS_TRITON=1`` (:func:`triton_assignment`;
opt-in until it has run on a GPU).

When the kernels are missing (torchkmeans was installed without a C compiler), the first fit
that would have used them warns once (:class:`~torchkmeans.exceptions.EngineWarning`).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

import torch

from . import _library, triton_assign
from .native_engine import LOOP_WORK, NativeEngine
from .torch_engine import TorchEngine

Engine = TorchEngine  # the interface; NativeEngine extends it

TORCH = TorchEngine()
NATIVE = NativeEngine()
_NATIVE_DTYPES = (torch.float32, torch.float64)

_warned = threading.Event()
# Set in a forked child whose thread count was lowered (see _after_fork_in_child).
_forked = threading.Event()
_fork_warned = threading.Event()


def _after_fork_in_child() -> None:
    """PyTorch's OpenMP thread pool does not survive ``fork``: the first parallel operation
    in a forked child of a process that used it hangs forever. Children run on one thread."""
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)
        _forked.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def engine_for(
    device: torch.device, dtype: torch.dtype, metric: str, *, sparse: bool = False
) -> TorchEngine:
    """The engine for data of ``dtype`` computed on ``device`` with ``metric``; ``sparse``:
    the rows are sparse (CSR chunks), which only the torch engine reads."""
    if _forked.is_set() and not _fork_warned.is_set():
        _fork_warned.set()
        warnings.warn(
            "torchkmeans runs on one thread in this forked process: PyTorch's thread pool "
            "cannot be used after fork (the first parallel operation would hang). To keep every "
            "core, start workers with the 'spawn' method (multiprocessing.get_context('spawn'), "
            "or joblib's default loky backend).",
            RuntimeWarning,
            stacklevel=_caller_level(),
        )
    if sparse or device.type != "cpu" or dtype not in _NATIVE_DTYPES or metric != "euclidean":
        return TORCH
    return NATIVE if _native_loaded() else TORCH


def sparse_products_native(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the products of sparse rows with dense centers and their per-cluster sums run
    in the native kernels (``tk_spmm``, ``tk_sparse_sums``; CPU, float32/float64, kernels
    loaded) rather than in torch's sparse kernels. The rest of a sparse pass is the torch
    engine's."""
    return device.type == "cpu" and dtype in _NATIVE_DTYPES and _native_loaded()


def native_batch(
    device: torch.device, dtype: torch.dtype, metric: str, count: int, work: int
) -> bool:
    """Whether ``count`` dense problems of one shape, each a pass of ``work`` rows x centers x
    features, are fitted together by the native batch engine (``native_batch.py``): CPU,
    float32/float64, Euclidean (where a single problem runs the native engine), and either
    small problems (the whole loop of each would be one native call) or at least two per
    thread (each problem runs on one thread; fewer large ones go faster alone on every
    thread)."""
    if engine_for(device, dtype, metric) is not NATIVE:
        return False
    return work <= LOOP_WORK or count >= 2 * max(1, torch.get_num_threads())


# The environment variable that turns the Triton kernel on (opt-in until proven on a GPU).
TRITON_ENV = "TORCHKMEANS_TRITON"


def triton_assignment(x: torch.Tensor) -> bool:
    """Whether the assignment of the dense rows ``x`` runs in the fused Triton kernel: asked for
    (``TORCHKMEANS_TRITON=1``), Triton installed, rows on a CUDA device (or on the CPU under
    Triton's interpreter, for the tests), of a dtype the kernel takes."""
    if os.environ.get(TRITON_ENV, "0").strip().lower() not in ("1", "on", "true", "yes"):
        return False
    if x.layout != torch.strided or x.dtype not in triton_assign.DTYPES:
        return False
    on_device = x.device.type == "cuda" or (x.device.type == "cpu" and triton_assign.interpreted())
    return on_device and triton_assign.available()


def _native_loaded() -> bool:
    """Whether the native kernels are loaded; when they are missing, warn once."""
    status = _library.status()
    if status.library is not None:
        return True
    if status.missing and not _warned.is_set():
        _warned.set()
        warnings.warn(_missing_message(status), _engine_warning(), stacklevel=_caller_level())
    return False


def _missing_message(status: _library.NativeStatus) -> str:
    fix = _library.INSTALL_HINT if status.built is False else "reinstall torchkmeans"
    return (
        f"torchkmeans is running its PyTorch engine on the CPU: {status.reason}. Results are "
        "the same up to floating-point rounding, but fits are slower (typically 2-10x). To get "
        f"the native engine, {fix}; check with torchkmeans.show_config(). Set "
        "TORCHKMEANS_NATIVE=0 to choose the PyTorch engine and silence this warning."
    )


_PACKAGE = str(Path(__file__).resolve().parent.parent)


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside torchkmeans (the user's call)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _engine_warning() -> type[Warning]:
    from ..exceptions import EngineWarning

    return EngineWarning
