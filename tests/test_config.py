"""show_config / config_info: what torchkmeans runs on, with and without importing torch."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch

import torchkmeans
from torchkmeans import _config
from torchkmeans._engines import _library


def _rows(text):
    """The lines of ``text`` with runs of blanks made one (the key column's width may vary)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def _cpu_engine_text(status):
    if status.library is not None:
        return f"native, {status.variant} kernels ({status.reason})"
    return f"torch ({status.reason})"


def test_show_config_prints_versions_engine_threads_blas_and_cuda(capsys):
    assert torchkmeans.show_config() is None
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name, version in [
        ("torchkmeans", torchkmeans.__version__),
        ("torch", torch.__version__),
        ("numpy", np.__version__),
        ("scikit-learn", sklearn.__version__),
    ]:
        assert any(line.split() == [f"{name}:", version] for line in lines), (name, out)
    for heading in ("versions:", "engines:", "cpu:", "threads:", "blas:", "cuda:"):
        assert heading in lines, heading
    assert f"cpu: {_cpu_engine_text(_library.status())}" in _rows(out)
    assert f"{torch.get_num_threads()} (" in out and "the native kernels use as many" in out
    assert any(row.startswith("cuda: torch (") for row in _rows(out))
    assert ("yes" if torch.cuda.is_available() else "no") in next(
        line for line in lines if line.startswith("  available:")
    )
    assert "run `python -c" not in out  # everything is there: nothing left for later


def test_show_config_writes_to_file(capsys):
    buffer = io.StringIO()
    torchkmeans.show_config(file=buffer)
    assert capsys.readouterr().out == ""
    assert buffer.getvalue().startswith("versions:\n  torchkmeans:")


def test_config_info_is_plain_data_that_agrees_with_torch():
    info = _config.config_info()
    json.dumps(info)  # plain values only
    assert info["imported_torch"] is True
    assert info["versions"]["torch"] == torch.__version__
    assert info["threads"]["torch"] == torch.get_num_threads()
    assert info["threads"]["cpu_count"] == os.cpu_count()
    cpu = info["engines"]["cpu"]
    status = _library.status()
    assert cpu["engine"] == ("native" if status.library is not None else "torch")
    assert cpu["variant"] == status.variant and cpu["reason"] == status.reason
    assert info["engines"]["cuda"]["engine"] == "torch"
    cuda = info["cuda"]
    assert cuda["available"] is torch.cuda.is_available()
    assert cuda["torch_cuda"] == torch.version.cuda
    assert len(cuda["devices"]) == (torch.cuda.device_count() if cuda["available"] else 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_devices_are_listed_with_capability_and_memory(capsys):
    torchkmeans.show_config()
    out = capsys.readouterr().out
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        assert f"cuda:{i}:" in out and p.name in out
        assert f"capability {p.major}.{p.minor}" in out


def test_turned_off_kernels_name_the_torch_engine_and_the_setting(monkeypatch):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", "0")
    info = _config.config_info()
    assert info["engines"]["cpu"]["engine"] == "torch"
    assert info["engines"]["cpu"]["TORCHKMEANS_NATIVE"] == "0"
    text = _config.format_config(info)
    rows = _rows(text)
    assert "cpu: torch (turned off by TORCHKMEANS_NATIVE=0)" in rows
    assert "TORCHKMEANS_NATIVE: '0'" in rows and "native kernels: none loaded" in rows


@pytest.mark.skipif(_library.find("generic") is None, reason="installed without native kernels")
def test_forced_generic_build_is_shown(monkeypatch):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", "generic")
    text = _config.format_config(_config.config_info())
    assert "native, generic kernels (forced by TORCHKMEANS_NATIVE=generic)" in text
    assert "the baseline" in text and "(generic build)" in text


def test_missing_kernels_give_the_install_hint(monkeypatch):
    missing = _library.NativeStatus(None, None, None, "installed without them", missing=True)
    monkeypatch.setattr(_library, "status", lambda: missing)
    text = _config.format_config(_config.config_info())
    assert "torch (installed without them)" in text
    assert f"for the native kernels, {_library.INSTALL_HINT}" in text


# ----------------------------------------------------------------------------- without torch


def test_config_without_torch_in_a_fresh_interpreter():
    """What ``torchkmeans --version`` shows: read without importing torch, numpy or sklearn."""
    src = str(Path(torchkmeans.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    code = (
        "import json, sys\n"
        "from torchkmeans._config import config_info\n"
        "info = config_info(import_torch=False)\n"
        "heavy = [m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules]\n"
        "print(json.dumps({'info': info, 'heavy': heavy}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    info, full = result["info"], _config.config_info()
    assert info["imported_torch"] is False
    assert info["versions"]["torchkmeans"] == torchkmeans.__version__
    # the installed distributions' metadata (a source build may carry a local version suffix)
    assert info["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["versions"]["numpy"] == np.__version__
    assert info["versions"]["scikit-learn"] == sklearn.__version__
    assert info["engines"] == full["engines"]
    assert info["threads"]["torch"] is None and info["blas"]["torch"] is None
    assert info["cuda"]["torch_cuda"] == torch.version.cuda
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        assert info["cuda"]["available"] is False
        assert "built without CUDA" in info["cuda"]["reason"]
    text = _config.format_config(info)
    assert "blas:" not in text and "run `python -c 'import torchkmeans;" in text


def test_torch_build_is_read_from_its_version_file():
    build = _config._torch_build()
    assert build is not None
    assert build["__version__"] == torch.__version__
    assert build["cuda"] == torch.version.cuda


_INFORMATION = """Model: \t\t NVIDIA H200
IRQ:   \t\t 0
GPU UUID: \t GPU-00000000-0000-0000-0000-000000000000
Video BIOS: \t 96.00.9f.00.01
Bus Type: \t PCIe
Bus Location: \t 0000:19:00.0
Device Minor: \t 0
GPU Excluded:\t No
"""


@pytest.mark.parametrize(
    "version_line",
    [
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  (x)",
    ],
)
def test_gpus_and_driver_from_the_nvidia_proc_files(tmp_path, monkeypatch, version_line):
    (tmp_path / "version").write_text(version_line + "\nGCC version:  gcc version 12.3.0\n")
    for bus in ("0000:19:00.0", "0000:3b:00.0"):
        (tmp_path / "gpus" / bus).mkdir(parents=True)
        (tmp_path / "gpus" / bus / "information").write_text(_INFORMATION.replace("19", bus[5:7]))
    monkeypatch.setattr(_config, "_NVIDIA_PROC", tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert _config._nvidia_driver() == "550.54.15"
    cuda = _config._cuda_without_torch()
    assert [(d["name"], d["bus"]) for d in cuda["devices"]] == [
        ("NVIDIA H200", "0000:19:00.0"),
        ("NVIDIA H200", "0000:3b:00.0"),
    ]
    info = dict(_config.config_info(import_torch=False), cuda=cuda)
    text = _config.format_config(info)
    rows = _rows(text)
    assert "gpu: NVIDIA H200 (PCI 0000:3b:00.0)" in rows
    assert "driver: 550.54.15" in rows and "CUDA_VISIBLE_DEVICES: '1'" in rows


def test_no_nvidia_driver(tmp_path, monkeypatch):
    monkeypatch.setattr(_config, "_NVIDIA_PROC", tmp_path / "absent")
    assert _config._nvidia_driver() is None and _config._proc_gpus() == []
    text = _config.format_config(_config.config_info(import_torch=False))
    assert "driver: no NVIDIA driver found" in _rows(text) and "devices: none" in _rows(text)


def test_cuda_device_rows():
    info = _config.config_info()
    device = {
        "index": 0,
        "name": "NVIDIA H200",
        "capability": "9.0",
        "memory_gib": 139.8,
        "multiprocessors": 132,
        "bus": None,
    }
    info["cuda"] = dict(info["cuda"], available=True, reason="torch built with CUDA 12.4")
    info["cuda"]["devices"] = [device]
    text = _config.format_config(info)
    rows = _rows(text)
    assert "available: yes (torch built with CUDA 12.4)" in rows
    assert "cuda:0: NVIDIA H200, capability 9.0, 139.8 GiB, 132 multiprocessors" in rows
