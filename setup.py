"""Build of the native CPU kernels (everything else is in pyproject.toml).

The kernels (src/torchkmeans/csrc/lloyd.c) are plain C called through ctypes, so they are built
as setuptools extensions by ``build_ext`` when the package is built or installed (``pip install
.``, ``pip install -e .``, ``python -m build``) and shipped inside the package:

- ``torchkmeans._kernels_generic``: the baseline instruction set of the target (x86-64: SSE2),
  runs on any CPU of the architecture (the only variant on aarch64, macOS arm64, ...);
- ``torchkmeans._kernels_avx2``: the same source with AVX2 and FMA (x86-64 only), loaded only
  when the generic build reports that the processor supports both.

No ``-march=native``: a wheel runs on any x86-64 CPU. Both extensions are optional: without a C
compiler the install still succeeds, and torchkmeans runs its PyTorch engine (and says so once).
"""

from __future__ import annotations

import platform
import sys

from setuptools import Extension, setup

_SOURCES = ["src/torchkmeans/csrc/lloyd.c"]
_DEPENDS = [
    f"src/torchkmeans/csrc/{name}"
    for name in (
        "lloyd_impl.h", "pass_impl.h", "loop_impl.h", "seeding_impl.h", "sparse_impl.h", "batch_impl.h",
        "tk_constants.h",
    )
]


def _kernel(name: str, flags: list[str]) -> Extension:
    compile_args, link_args = [], []
    if sys.platform != "win32":
        # -g0: no debug information (a third of the size); -Wno-psabi: GCC notes that 32-byte
        # vector arguments change ABI without AVX, which does not matter for static functions.
        compile_args = ["-std=gnu11", "-fno-math-errno", "-pthread", "-g0", "-Wno-psabi", *flags]
        link_args = ["-pthread"]
    return Extension(
        f"torchkmeans._kernels_{name}",
        sources=_SOURCES,
        depends=_DEPENDS,
        include_dirs=["src/torchkmeans/csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        optional=True,  # no compiler: install anyway, the PyTorch engine runs
    )


_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# (-O2 for the generic build: GCC takes over a minute at -O3 to split the 32-byte vectors for
# SSE2, and the -O2 code measured as fast or faster; without FMA the two round identically.)
extensions = [_kernel("generic", ["-O2"])]
if _X86_64 and sys.platform != "win32":
    extensions.append(_kernel("avx2", ["-O3", "-mavx2", "-mfma"]))

setup(ext_modules=extensions)
