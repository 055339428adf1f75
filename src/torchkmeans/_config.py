"""What torchkmeans runs on: versions, the engine per device and why, threads, BLAS, CUDA.

:func:`show_config` prints it (as ``numpy.show_config()`` and ``torch.__config__.show()`` do);
:func:`config_info` returns the same as a dict of plain values (JSON-serializable).

``config_info(import_torch=False)`` (``torchkmeans --version``) reads only what is known without
importing torch, numpy or scikit-learn: versions from the installed packages' metadata, the
native kernels from their loader (which needs no torch), whether torch was built with CUDA from
its ``version.py``, the GPUs from the NVIDIA driver's files in ``/proc``. What only torch can
tell (its thread count, BLAS, the CUDA devices' capability and memory) is then None.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._engines import _library

# The instruction set each build of the native kernels is compiled for (see setup.py).
_INSTRUCTION_SETS = {
    "avx2-fma": "AVX2 and FMA",
    "generic": f"the baseline {platform.machine() or 'CPU'} instruction set",
}
# Which CPU fits the native kernels run (``_engines.dispatch.engine_for``: Euclidean, computed
# in float32 or float64; half precision is computed in float32).
_NATIVE_SCOPE = "Euclidean fits in every float dtype; cosine fits run the torch engine"
_NVIDIA_PROC = Path("/proc/driver/nvidia")
SHOW_CONFIG_HINT = "python -c 'import torchkmeans; torchkmeans.show_config()'"


def config_info(import_torch: bool = True) -> dict[str, Any]:
    """The configuration :func:`show_config` prints, as a dict of sections.

    Parameters
    ----------
    import_torch : bool, default=True
        False reads only what is known without importing torch, numpy or scikit-learn (fast);
        the values that need them are None.

    Returns
    -------
    info : dict
        ``versions``, ``engines`` (``cpu`` and ``cuda``: the engine that runs there and why),
        ``cpu``, ``threads``, ``blas`` and ``cuda`` (availability and each device), and
        ``imported_torch``.
    """
    return {
        "versions": _versions(import_torch),
        "engines": _engines(),
        "cpu": _cpu(import_torch),
        "threads": _threads(import_torch),
        "blas": _blas() if import_torch else {"torch": None, "torch_detail": None, "numpy": None},
        "cuda": _cuda_from_torch() if import_torch else _cuda_without_torch(),
        "imported_torch": import_torch,
    }


def show_config(file: TextIO | None = None) -> None:
    """Print the versions, the engine that runs on each device and why, the instruction set of
    the native kernels, thread counts, the BLAS and the CUDA devices.

    Parameters
    ----------
    file : file-like, default=None
        Where to write; ``sys.stdout`` when None.

    See Also
    --------
    torchkmeans._config.config_info : the same information as a dict.
    """
    (file if file is not None else sys.stdout).write(format_config(config_info()))


def format_config(info: dict[str, Any]) -> str:
    """The text :func:`show_config` prints for ``info`` (from :func:`config_info`)."""
    full = info["imported_torch"]
    rows = _version_rows(info["versions"]) + _engine_rows(info["engines"])
    rows += _cpu_rows(info["cpu"], info["engines"]["cpu"], info["threads"], full)
    if full:
        rows += _blas_rows(info["blas"])
    rows += _cuda_rows(info["cuda"])
    width = max(len(key) for key, value in rows if value) + 2
    lines = [
        f"  {(key + ':') if key else '':<{width}}{value}" if value else f"{key}:"
        for key, value in rows
    ]
    if not full:
        lines.append(
            "for torch's thread count and kernels, the BLAS, and the CUDA devices' capability "
            f"and memory, run `{SHOW_CONFIG_HINT}`"
        )
    return "\n".join(lines) + "\n"


# A section is a list of (key, value) rows: a row without a value is a heading; a row without a
# key continues the row above.
_Rows = list[tuple[str, str]]


def _version_rows(v: dict[str, str | None]) -> _Rows:
    rows = [("versions", "")]
    rows += [(k, _or(v[k], "not installed")) for k in ("torchkmeans", "torch", "numpy")]
    rows += [("scikit-learn", _or(v["scikit-learn"], "not installed"))]
    return rows + [("python", _or(v["python"], "")), ("platform", _or(v["platform"], ""))]


def _engine_rows(engines: dict[str, Any]) -> _Rows:
    cpu, cuda = engines["cpu"], engines["cuda"]
    rows = [("engines", "")]
    if cpu["engine"] == "native":
        rows += [("cpu", f"native, {cpu['variant']} kernels ({cpu['reason']})")]
        rows += [("", f"({_NATIVE_SCOPE})"), ("native library", cpu["library"])]
    else:
        rows += [("cpu", f"torch ({cpu['reason']})")]
        if cpu.get("install_hint"):
            rows += [("", f"for the native kernels, {cpu['install_hint']}")]
    setting = cpu["TORCHKMEANS_NATIVE"]
    rows += [
        (
            "TORCHKMEANS_NATIVE",
            repr(setting) if setting is not None else "not set (0: off, generic: generic build)",
        )
    ]
    return rows + [("cuda", f"{cuda['engine']} ({cuda['reason']})")]


def _cpu_rows(cpu: dict[str, Any], native: dict[str, Any], th: dict[str, Any], full: bool) -> _Rows:
    rows = [("cpu", ""), ("processor", cpu["processor"])]
    isa = f"{native['instruction_set']} ({native['variant']} build)" if native["variant"] else None
    rows += [("native kernels", _or(isa, "none loaded"))]
    if full:
        rows += [("torch kernels", _or(cpu["torch_capability"], "unknown"))]
    rows += [("threads", "")]
    if full:
        backend = f"{th['parallel_backend']}; " if th["parallel_backend"] else ""
        rows += [("torch", f"{th['torch']} ({backend}the native kernels use as many)")]
    usable = f", {th['affinity']} usable by this process" if th["affinity"] is not None else ""
    rows += [("cpus", f"{_or(th['cpu_count'], 'unknown')}{usable}")]
    return rows + [(k, _or(th[k], "not set")) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")]


def _blas_rows(blas: dict[str, str | None]) -> _Rows:
    torch_blas = blas["torch"]
    if torch_blas is not None and blas["torch_detail"]:
        torch_blas = f"{torch_blas} ({blas['torch_detail']})"
    return [
        ("blas", ""),
        ("torch", _or(torch_blas, "unknown")),
        ("numpy", _or(blas["numpy"], "unknown")),
    ]


def _cuda_rows(cuda: dict[str, Any]) -> _Rows:
    word = {True: "yes", False: "no", None: "not checked without torch"}[cuda["available"]]
    rows = [("cuda", ""), ("available", f"{word} ({cuda['reason']})" if cuda["reason"] else word)]
    rows += [("driver", _or(cuda["driver"], "no NVIDIA driver found"))]
    if cuda["CUDA_VISIBLE_DEVICES"] is not None:
        rows += [("CUDA_VISIBLE_DEVICES", repr(cuda["CUDA_VISIBLE_DEVICES"]))]
    for dev in cuda["devices"]:
        if dev["index"] is None:  # from the driver's files: no capability or memory
            rows += [("gpu", f"{dev['name']} (PCI {dev['bus']})")]
        else:
            rows += [
                (
                    f"cuda:{dev['index']}",
                    f"{dev['name']}, capability {dev['capability']}, "
                    f"{dev['memory_gib']:.1f} GiB, {dev['multiprocessors']} multiprocessors",
                )
            ]
    return rows if cuda["devices"] else rows + [("devices", "none")]


def _or(value: Any, default: str) -> str:
    return default if value is None else str(value)


# ----------------------------------------------------------------------------------- sections


def _versions(import_torch: bool) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"torchkmeans": __version__}
    for dist, module in (("torch", "torch"), ("numpy", "numpy"), ("scikit-learn", "sklearn")):
        versions[dist] = _module_version(module) if import_torch else _dist_version(dist)
    impl = platform.python_implementation()
    versions["python"] = f"{platform.python_version()} ({impl}, {sys.executable})"
    versions["platform"] = _platform()
    return versions


def _platform() -> str:
    """Like ``platform.platform()``, which runs ``uname -p`` in a subprocess to name the CPU."""
    text = f"{platform.system()}-{platform.release()}-{platform.machine()}"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")  # e.g. "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        libc = None
    return f"{text}-with-{libc.replace(' ', '')}" if libc else text


def _module_version(module: str) -> str | None:
    """The version of the module that runs (a source build's metadata may say otherwise)."""
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return None


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _engines() -> dict[str, Any]:
    status = _library.status()
    cpu: dict[str, Any] = {
        "engine": "native" if status.library is not None else "torch",
        "variant": status.variant,
        "instruction_set": _INSTRUCTION_SETS.get(status.variant or ""),
        "library": str(status.path) if status.path is not None else None,
        "reason": status.reason,
        "TORCHKMEANS_NATIVE": os.environ.get("TORCHKMEANS_NATIVE"),
    }
    if status.missing:
        cpu["install_hint"] = _library.INSTALL_HINT
    cuda = {
        "engine": "torch",
        "reason": "the native kernels run on the CPU only",
    }
    return {"cpu": cpu, "cuda": cuda}


def _cpu(import_torch: bool) -> dict[str, Any]:
    machine = platform.machine()
    name = _cpuinfo_model()
    capability = None
    if import_torch:
        import torch

        get = getattr(torch.backends.cpu, "get_cpu_capability", None)
        capability = get() if get is not None else None
    return {
        "processor": f"{name} ({machine})" if name else machine,
        "machine": machine,
        "torch_capability": capability,
    }


def _cpuinfo_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return None


def _threads(import_torch: bool) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    torch_threads = backend = None
    if import_torch:
        import torch

        torch_threads = torch.get_num_threads()
        match = re.search(r"ATen parallel backend: *(.+)", torch.__config__.parallel_info())
        backend = match.group(1).strip() if match else None
    return {
        "torch": torch_threads,
        "parallel_backend": backend,
        "cpu_count": os.cpu_count(),
        "affinity": affinity,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
    }


def _blas() -> dict[str, str | None]:
    import torch

    show = torch.__config__.show()
    match = re.search(r"BLAS_INFO=([^,\s]+)", show)
    # e.g. "Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for ..."
    mkl = next((line.strip(" -") for line in show.splitlines() if "Math Kernel" in line), None)
    detail = mkl.split(" for ")[0] if mkl else None
    return {
        "torch": match.group(1) if match else None,
        "torch_detail": detail,
        "numpy": _numpy_blas(),
    }


def _numpy_blas() -> str | None:
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # numpy < 1.26 has no mode="dicts"; a build may lack the entry
        return None
    name, version = blas.get("name"), blas.get("version")
    return f"{name} {version}" if name and version else name


def _cuda_from_torch() -> dict[str, Any]:
    import torch

    available = torch.cuda.is_available()
    devices = []
    for i in range(torch.cuda.device_count() if available else 0):
        p = torch.cuda.get_device_properties(i)
        devices.append(
            {
                "index": i,
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_gib": round(p.total_memory / 2**30, 1),
                "multiprocessors": p.multi_processor_count,
                "bus": None,
            }
        )
    built = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    if available:
        reason = f"torch built with CUDA {built}" if built else f"torch built with ROCm {hip}"
    elif not built and not hip:
        reason = f"torch {torch.__version__} was built without CUDA"
    else:
        reason = f"torch {torch.__version__} sees no CUDA device"
    return {
        "available": available,
        "reason": reason,
        "torch_cuda": built,
        "driver": _nvidia_driver(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": devices,
    }


def _cuda_without_torch() -> dict[str, Any]:
    build = _torch_build()
    driver = _nvidia_driver()
    available: bool | None = None
    reason = None
    built = build.get("cuda") if build else None
    if build is None:
        reason = "torch is not installed" if _dist_version("torch") is None else None
        available = False if reason else None
    elif not built and not build.get("hip"):
        available, reason = False, f"torch {build.get('__version__')} was built without CUDA"
    elif built and sys.platform.startswith("linux") and driver is None:
        available, reason = False, f"torch built with CUDA {built}, but no NVIDIA driver is loaded"
    elif built:
        reason = f"torch built with CUDA {built}"
    return {
        "available": available,
        "reason": reason,
        "torch_cuda": built,
        "driver": driver,
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": _proc_gpus(),
    }


# ------------------------------------------------------------------------- torch-free sources


def _torch_build() -> dict[str, Any] | None:
    """``__version__``, ``cuda`` and ``hip`` from torch's ``version.py``, read without
    importing torch; None when torch is not installed or the file cannot be read."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    values: dict[str, Any] = {}
    try:
        path = Path(list(spec.submodule_search_locations)[0]) / "version.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("__version__", "cuda", "hip"):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return values if "__version__" in values else None


def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver's version, from ``/proc/driver/nvidia/version`` (Linux)."""
    try:
        text = (_NVIDIA_PROC / "version").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"Kernel Module(?: for [^ ]+)?\s+([0-9][0-9.]*)", text)
    return match.group(1) if match else text.splitlines()[0].strip() if text else None


def _proc_gpus() -> list[dict[str, Any]]:
    """The GPUs the NVIDIA driver lists in ``/proc/driver/nvidia/gpus/*/information`` (PCI
    order, which need not be CUDA's device order; CUDA_VISIBLE_DEVICES is not applied)."""
    gpus = []
    try:
        folders = sorted((_NVIDIA_PROC / "gpus").iterdir())
    except OSError:
        return []
    for folder in folders:
        fields: dict[str, str] = {}
        try:
            text = (folder / "information").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        gpus.append(
            {
                "index": None,
                "name": fields.get("Model") or "unknown NVIDIA GPU",
                "capability": None,
                "memory_gib": None,
                "multiprocessors": None,
                "bus": fields.get("Bus Location") or folder.name,
            }
        )
    return gpus
