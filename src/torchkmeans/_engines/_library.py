"""Find and load the native kernels that were compiled into the installed package.

``setup.py`` builds ``csrc/lloyd.c`` twice on x86-64: ``_kernels_generic`` (the baseline
instruction set, runs on any CPU of the architecture) and ``_kernels_avx2`` (AVX2 and FMA).
The generic build is loaded first and asked what the processor supports; the AVX2/FMA build is
loaded only when both are there. Libraries are looked up in the package folder only, never on
a search path, in the user's home or in a temp folder, and nothing is compiled at run time: a
file writable by other users, or not owned by this user or root, is refused.

``TORCHKMEANS_NATIVE`` chooses: ``0`` (or off/false/no) turns the kernels off, ``generic``
forces the generic build, anything else (the default) takes the best one the CPU runs. The
setting is read at every engine decision, so tests can switch it; each setting loads once.

This module does not import torch (``torchkmeans --version`` uses it).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from . import _constants as tk

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Variant name -> (module name of the extension, instruction-set bits it needs).
VARIANTS = {
    "avx2-fma": ("_kernels_avx2", tk.ISA_AVX2_FMA),
    "generic": ("_kernels_generic", 0),
}
INSTALL_HINT = (
    "install a C compiler (gcc or clang; e.g. `apt install gcc`, `xcode-select --install`) "
    "and reinstall torchkmeans (`pip install --force-reinstall --no-deps --no-binary torchkmeans "
    "torchkmeans`, or `pip install -e .` in a checkout)"
)


@dataclass(frozen=True)
class NativeStatus:
    """What the loader found: the library (None when the torch engine must run), its variant,
    its file, and why this is the choice."""

    library: ctypes.CDLL | None
    variant: str | None
    path: Path | None
    reason: str
    # True when the kernels are missing although nobody asked for that (the fit warns once).
    missing: bool = False
    # False when the package holds no kernels (installed without a C compiler).
    built: bool = True


_lock = threading.Lock()
_loaded: dict[str, NativeStatus] = {}


def setting() -> str:
    """``TORCHKMEANS_NATIVE`` normalized: ``"off"``, ``"generic"`` or ``"auto"``."""
    value = os.environ.get("TORCHKMEANS_NATIVE", "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    return "generic" if value == "generic" else "auto"


def find(variant: str) -> Path | None:
    """The file of a variant inside the installed package, or None if it was not built."""
    module = VARIANTS[variant][0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = PACKAGE_DIR / f"{module}{suffix}"
        if path.is_file():
            return path
    return None


def _unsafe(path: Path) -> str | None:
    """Why loading ``path`` could run another user's code, or None when it cannot."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    for item in (path, path.parent):
        st = item.stat()
        if uid is not None and st.st_uid not in (uid, 0):
            return f"{item} is owned by another user (uid {st.st_uid})"
        if st.st_mode & stat.S_IWOTH:
            return f"{item} is writable by every user"
    return None


def _open(path: Path) -> ctypes.CDLL:
    problem = _unsafe(path)
    if problem is not None:
        raise OSError(f"refusing to load {path.name}: {problem}")
    lib = ctypes.CDLL(str(path))
    abi = int(lib.tk_abi_version())
    if abi != tk.ABI_VERSION:
        raise OSError(f"{path.name} has ABI version {abi}, expected {tk.ABI_VERSION}")
    return lib


def _load(choice: str) -> NativeStatus:
    if choice == "off":
        return NativeStatus(None, None, None, "turned off by TORCHKMEANS_NATIVE=0")
    generic = find("generic")
    if generic is None:
        return NativeStatus(
            None,
            None,
            None,
            "torchkmeans was installed without its native kernels (no C compiler was found "
            "when it was built)",
            missing=True,
            built=False,
        )
    try:
        lib = _open(generic)
        cpu = int(lib.tk_cpu_features())
        best = find("avx2-fma")
        if choice == "generic":
            return NativeStatus(lib, "generic", generic, "forced by TORCHKMEANS_NATIVE=generic")
        if best is None:
            return NativeStatus(lib, "generic", generic, "no AVX2/FMA build in this package")
        if not cpu & tk.ISA_AVX2_FMA:
            return NativeStatus(lib, "generic", generic, "this CPU lacks AVX2 or FMA")
        return NativeStatus(_open(best), "avx2-fma", best, "this CPU has AVX2 and FMA")
    except OSError as exc:
        logger.info("native kernels unavailable: %s", exc)
        return NativeStatus(None, None, None, f"the native kernels could not be loaded ({exc})",
                            missing=True)  # fmt: skip


def status() -> NativeStatus:
    """The native kernels for the current ``TORCHKMEANS_NATIVE`` setting (loaded once each)."""
    choice = setting()
    found = _loaded.get(choice)
    if found is None:
        with _lock:
            found = _loaded.get(choice)
            if found is None:
                found = _loaded[choice] = _load(choice)
                if found.library is not None:
                    logger.debug("native kernels: %s from %s", found.variant, found.path)
    return found


def library() -> ctypes.CDLL | None:
    """The loaded native library, or None when the torch engine must run."""
    return status().library
