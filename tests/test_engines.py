"""The engines: which one runs, how the native kernels are found and loaded, the constants C
and Python share, the instruction-set variants, and an install without a compiler."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import torchkmeans
from torchkmeans import KMeans
from torchkmeans._engines import _constants, _library, dispatch
from torchkmeans._engines.native_engine import NativeEngine
from torchkmeans._engines.torch_engine import TorchEngine
from torchkmeans.exceptions import EngineWarning

ROOT = Path(__file__).resolve().parent.parent
needs_native = pytest.mark.skipif(
    _library.library() is None, reason="installed without the native kernels"
)


def _blobs(n=3000, d=5, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 5
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture
def fresh_loader(monkeypatch):
    """Forget which libraries were loaded and whether the missing-kernels warning was given."""
    monkeypatch.setattr(_library, "_loaded", {})
    monkeypatch.setattr(dispatch, "_warned", type(dispatch._warned)())
    return monkeypatch


# ------------------------------------------------------------------------------ the decision


@needs_native
@pytest.mark.parametrize(
    "device, dtype, metric, setting, expected",
    [
        ("cpu", torch.float32, "euclidean", "1", NativeEngine),
        ("cpu", torch.float64, "euclidean", "generic", NativeEngine),
        ("cpu", torch.float32, "euclidean", "0", TorchEngine),
        ("cpu", torch.float32, "cosine", "1", TorchEngine),
        ("cpu", torch.float16, "euclidean", "1", TorchEngine),
        ("cpu", torch.bfloat16, "euclidean", "1", TorchEngine),
        ("meta", torch.float32, "euclidean", "1", TorchEngine),  # any non-CPU device
    ],
)
def test_engine_for_decides_by_device_dtype_metric_and_setting(
    device, dtype, metric, setting, expected, monkeypatch
):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", setting)
    engine = dispatch.engine_for(torch.device(device), dtype, metric)
    assert type(engine) is expected


@pytest.mark.parametrize(
    "value, setting",
    [("", "auto"), ("1", "auto"), ("0", "off"), ("off", "off"), ("False", "off"),
     ("no", "off"), ("generic", "generic"), (" GENERIC ", "generic")],
)  # fmt: skip
def test_the_native_setting_is_read_from_the_environment(value, setting, monkeypatch):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", value)
    assert _library.setting() == setting


# ------------------------------------------------------------------------------ the constants


def test_the_constants_come_from_the_header_that_ships_with_the_package():
    header = _constants.HEADER
    assert header.is_file() and header.parent.name == "csrc"
    text = header.read_text()
    defined = dict(re.findall(r"^#define TK_([A-Z0-9_]+) (\S+)$", text, re.M))
    assert float(defined["PRUNE_MARGIN"]) == _constants.PRUNE_MARGIN
    assert int(defined["ABI_VERSION"]) == _constants.ABI_VERSION
    assert int(defined["HISTORY_FIELDS"]) == _constants.HISTORY_FIELDS
    # every value the module exports was read from the header, none typed in twice
    source = Path(_constants.__file__).read_text()
    assert not re.search(r"^[A-Z_]+ = [-0-9.]", source, re.M)


def test_the_python_side_uses_the_shared_constants():
    """No second copy of a shared constant in Python: the modules import it."""
    pkg = Path(torchkmeans.__file__).parent
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"PRUNE_MARGIN\s*=\s*[0-9]", text), path
        assert not re.search(r"ABI_VERSION\s*=\s*[0-9]", text), path


@needs_native
@pytest.mark.parametrize("setting", ["1", "generic"])
def test_the_loaded_library_reports_the_header_abi(setting, fresh_loader):
    fresh_loader.setenv("TORCHKMEANS_NATIVE", setting)
    status = _library.status()
    assert status.library is not None
    assert status.library.tk_abi_version() == _constants.ABI_VERSION
    compiled = status.library.tk_compiled_features()
    assert compiled == (_constants.ISA_AVX2_FMA if status.variant == "avx2-fma" else 0)


# ------------------------------------------------------------------------------ loading


@needs_native
def test_libraries_are_loaded_from_the_package_folder_only(fresh_loader):
    status = _library.status()
    assert status.path is not None
    assert status.path.parent == Path(torchkmeans.__file__).resolve().parent
    assert status.path.name.startswith("_kernels_")


@needs_native
def test_the_best_variant_the_cpu_runs_is_chosen(fresh_loader):
    generic = _library.find("generic")
    assert generic is not None
    cpu = ctypes.CDLL(str(generic)).tk_cpu_features()
    status = _library.status()
    if cpu & _constants.ISA_AVX2_FMA and _library.find("avx2-fma") is not None:
        assert status.variant == "avx2-fma" and "AVX2" in status.reason
    else:
        assert status.variant == "generic"
    fresh_loader.setenv("TORCHKMEANS_NATIVE", "generic")
    assert _library.status().variant == "generic"


def test_a_library_other_users_can_write_is_refused(tmp_path):
    lib = tmp_path / "_kernels_generic.so"
    lib.write_bytes(b"\x7fELF not really")
    lib.chmod(0o644)
    assert _library._unsafe(lib) is None
    lib.chmod(0o646)
    assert "writable by every user" in _library._unsafe(lib)
    with pytest.raises(OSError, match="refusing to load"):
        _library._open(lib)
    lib.chmod(0o644)
    tmp_path.chmod(0o777)
    try:
        assert "writable by every user" in _library._unsafe(lib)
    finally:
        tmp_path.chmod(0o755)


def test_missing_kernels_warn_once_and_the_torch_engine_gives_the_torch_fit(fresh_loader):
    """No library in the package (installed without a compiler): the first fit that would
    have used it warns once, naming the reason, the cost and the fix; fits are the torch
    engine's."""
    fresh_loader.setattr(_library, "find", lambda variant: None)
    X = _blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km = KMeans(6, random_state=0).fit(X)
        KMeans(6, random_state=1).fit(X)
    engine_warnings = [w for w in caught if issubclass(w.category, EngineWarning)]
    assert len(engine_warnings) == 1
    message = str(engine_warnings[0].message)
    assert "no C compiler" in message and "slower" in message
    assert "reinstall" in message and "TORCHKMEANS_NATIVE=0" in message
    assert engine_warnings[0].filename == __file__  # points at the caller's line
    fresh_loader.setenv("TORCHKMEANS_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineWarning)  # a chosen torch engine is silent
        ref = KMeans(6, random_state=0).fit(X)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)


# ------------------------------------------------------------------------------ variants


@needs_native
@pytest.mark.parametrize("d", [3, 40])  # exact differences, and the GEMM identity
def test_each_variant_is_bit_identical_run_to_run_and_they_agree_on_labels(d, fresh_loader):
    X = _blobs(40_000, d, 12, seed=d)
    fits = {}
    for setting in ("1", "generic"):
        fresh_loader.setenv("TORCHKMEANS_NATIVE", setting)
        a = KMeans(12, random_state=0).fit(X)
        b = KMeans(12, random_state=0).fit(X)
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        assert a.inertia_ == b.inertia_
        fits[setting] = a
    np.testing.assert_array_equal(fits["1"].labels_, fits["generic"].labels_)
    np.testing.assert_allclose(
        fits["1"].cluster_centers_, fits["generic"].cluster_centers_, rtol=1e-5, atol=1e-5
    )


# ------------------------------------------------------------------------------ no compiler


@pytest.mark.slow
def test_an_install_without_a_compiler_runs_the_torch_engine(tmp_path):
    """`pip install .` with no C compiler on PATH succeeds without kernels; the first fit
    warns once and gives the torch engine's result."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    bare = tmp_path / "bin"  # PATH holds only python: no cc, gcc or clang
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "LDSHARED", "PYTHONPATH")}
    env.update(PATH=str(bare), CC="no-such-compiler", PIP_DISABLE_PIP_VERSION_CHECK="1")
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         str(project)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    installed = target / "torchkmeans"
    assert (installed / "csrc" / "tk_constants.h").is_file()
    assert not list(installed.glob("_kernels_*"))  # nothing compiled, install succeeded
    code = textwrap.dedent(
        """
        import json, sys, warnings
        import numpy as np
        import torchkmeans
        assert torchkmeans.__file__.startswith(sys.argv[1]), torchkmeans.__file__
        rng = np.random.default_rng(0)
        X = (rng.normal(size=(6, 5))[rng.integers(0, 6, 3000)] * 5
             + rng.normal(size=(3000, 5))).astype(np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            km = torchkmeans.KMeans(6, random_state=0).fit(X)
            torchkmeans.KMeans(6, random_state=0).fit(X)
        print(json.dumps({
            "warnings": [str(w.message) for w in caught
                         if w.category.__name__ == "EngineWarning"],
            "labels": km.labels_.tolist(), "inertia": km.inertia_,
        }))
        """
    )
    run_env = dict(os.environ, PYTHONPATH=str(target))
    run_env.pop("TORCHKMEANS_NATIVE", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)], env=run_env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(got["warnings"]) == 1
    assert "without its native kernels" in got["warnings"][0]
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(6, 5))[rng.integers(0, 6, 3000)] * 5
         + rng.normal(size=(3000, 5))).astype(np.float32)  # fmt: skip
    ref = KMeans(6, random_state=0).fit(X)  # this process: native when available
    np.testing.assert_array_equal(np.asarray(got["labels"]), ref.labels_)
    assert got["inertia"] == pytest.approx(ref.inertia_, rel=1e-5)


def test_a_fit_writes_nothing_outside_its_outputs_and_needs_no_home(tmp_path):
    """No compiling or caching at run time: with HOME unset and a read-only temp folder, a fit
    runs (on the native engine when installed) and writes nothing."""
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    code = (
        "import numpy as np, torchkmeans\n"
        "from torchkmeans._engines import _library\n"
        "X = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)\n"
        "km = torchkmeans.KMeans(4, random_state=0).fit(X)\n"
        "print(_library.status().variant, np.isfinite(km.inertia_))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME")}
    env.update(TMPDIR=str(readonly), TEMP=str(readonly), TMP=str(readonly))
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
            cwd=readonly,
        )  # fmt: skip
    finally:
        readonly.chmod(0o755)
    assert out.returncode == 0, out.stderr[-3000:]
    variant = _library.status().variant
    assert out.stdout.split() == [str(variant), "True"]
    assert not list(readonly.iterdir())
