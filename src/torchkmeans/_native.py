"""Native CPU kernels: built from ``csrc/`` with the system C compiler on first use.

The assignment and accumulation of a Lloyd pass on CPU tensors run in one C call (fused
distance, argmin, runner-up, pruning and per-cluster sums; see ``csrc/lloyd.c``). The library
is compiled once per machine into a cache folder (``$TORCHKMEANS_CACHE_DIR``, else
``$XDG_CACHE_HOME/torchkmeans`` or ``~/.cache/torchkmeans``), named by a hash of the sources,
the compiler command and the processor, and loaded with :mod:`ctypes`, whose calls release the
GIL. Nothing here is required: when no compiler is found, the build fails, or
``TORCHKMEANS_NATIVE=0`` is set, :func:`library` returns ``None`` and the torch path runs
instead, with the same results.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

logger = logging.getLogger("torchkmeans")

_ABI_VERSION = 4
_SOURCES = ("lloyd.c", "lloyd_impl.h")
_FLAGS = ["-O3", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-std=gnu11"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def enabled() -> bool:
    """Whether native kernels may be used (``TORCHKMEANS_NATIVE=0`` turns them off)."""
    return os.environ.get("TORCHKMEANS_NATIVE", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def _cache_dir() -> Path:
    explicit = os.environ.get("TORCHKMEANS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "torchkmeans"


def _processor_id() -> str:
    """What ``-march=native`` depends on: the machine and its instruction-set flags."""
    parts = [platform.machine(), platform.system()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    parts.append(line.strip())
                if len(parts) > 6:
                    break
    except OSError:
        parts.append(platform.processor())
    return "\n".join(parts)


def _compiler() -> str | None:
    cc = os.environ.get("CC", "").strip()
    if cc:
        return shutil.which(cc) or (cc if Path(cc).exists() else None)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _build(cc: str, sources: Path, target: Path) -> None:
    """Compile to a temporary file in the cache folder, then rename it into place (atomic, so
    processes building at the same time never load a half-written library)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        errors = ""
        for arch in (["-march=native"], []):
            cmd = [cc, *_FLAGS, *arch, "-I", str(sources), str(sources / "lloyd.c"), "-o", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                os.replace(tmp, target)
                return
            errors = proc.stderr.strip()[-2000:]
        raise RuntimeError(f"{cc} failed: {errors}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load() -> ctypes.CDLL | None:
    from ._engines import _library
    lib = _library.library()
    if lib is None:
        return None
    p, i64, dbl, cint = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"tk_pass_{suffix}")
        fn.restype = i64
        fn.argtypes = [i64, i64, i64, p, i64, p, p, p, p, p, dbl, cint, p, p, p, dbl,
                       p, p, p, p, p, p, cint, cint, i64, i64]  # fmt: skip
        fn = getattr(lib, f"tk_prepare_{suffix}")
        fn.restype = dbl
        fn.argtypes = [i64, i64, p, p, p, p]
        fn = getattr(lib, f"tk_order_{suffix}")
        fn.restype = cint
        fn.argtypes = [i64, i64, p, i64, p, p]
        fn = getattr(lib, f"tk_moments_{suffix}")
        fn.restype = None
        fn.argtypes = [i64, i64, p, i64, p, p, p, p, p]
        fn = getattr(lib, f"tk_gaps_{suffix}")
        fn.restype = cint
        fn.argtypes = [i64, i64, p, p, p, p, dbl, cint, p, cint]
        fn = getattr(lib, f"tk_update_{suffix}")
        fn.restype = None
        fn.argtypes = [i64, i64, p, p, p, p, p, p, p, p]
        fn = getattr(lib, f"tk_lloyd_{suffix}")
        fn.restype = i64
        fn.argtypes = [i64, i64, i64, p, i64, p, p, p, p, p, p, p, cint, cint, cint, i64, cint,
                       i64, dbl, i64, i64, p, p, p, p, p, p]  # fmt: skip
        fn = getattr(lib, f"tk_kpp_all_{suffix}")
        fn.restype = cint
        fn.argtypes = [i64, i64, p, i64, p, p, p, i64, i64, p, p, dbl, cint, i64]
        fn = getattr(lib, f"tk_kpp_{suffix}")
        fn.restype = cint
        fn.argtypes = [i64, i64, p, i64, p, p, i64, p, i64, p, p, i64, cint, p, cint]
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded native library, or ``None`` when unavailable (built at most once)."""
    return _load()


def available() -> bool:
    return library() is not None


def supports_dtype(dtype: torch.dtype) -> bool:
    """Whether native kernels can run on CPU data of this dtype."""
    return dtype in (torch.float32, torch.float64) and enabled() and library() is not None


def supports(x: torch.Tensor, metric: str) -> bool:
    """Whether a pass over ``x`` can run natively (CPU float tensors, Euclidean metric)."""
    return metric == "euclidean" and x.device.type == "cpu" and supports_dtype(x.dtype)
