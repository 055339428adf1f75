"""Checkpoint and resume: a killed fit resumes and ends bit for bit as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import torchkmeans._checkpoint as ckpt_module
from torchkmeans import CheckpointError, KMeans

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
import checkpoint_fit  # noqa: E402


def _blobs(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)) + rng.integers(0, 12, (n, 1)) * 0.8


def _meta(path):
    from torchkmeans.io import _read_header

    return json.loads(_read_header(Path(path))["__metadata__"]["torchkmeans_checkpoint"])


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("stop_after", [1, 2, 7, 30, 55])
def test_interrupted_fit_resumes_bit_for_bit(tmp_path, monkeypatch, stop_after):
    X = _blobs()
    params = dict(n_clusters=12, init="random", n_init=3, tol=0.0, random_state=1)
    ref = KMeans(**params).fit(X)
    path = tmp_path / "fit.ckpt"
    original = ckpt_module.Checkpoint.save
    calls = {"n": 0}

    def save_then_die(self, state):
        original(self, state)
        calls["n"] += 1
        if calls["n"] == stop_after:
            raise Interrupt

    monkeypatch.setattr(ckpt_module.Checkpoint, "save", save_then_die)
    with pytest.raises(Interrupt):
        KMeans(**params, checkpoint=path).fit(X)
    monkeypatch.setattr(ckpt_module.Checkpoint, "save", original)
    assert path.exists()
    resumed = KMeans(**params, checkpoint=path).fit(X)
    assert np.array_equal(resumed.cluster_centers_, ref.cluster_centers_)
    assert np.array_equal(resumed.labels_, ref.labels_)
    assert resumed.inertia_ == ref.inertia_ and resumed.n_iter_ == ref.n_iter_
    assert [h["inertia"] for h in resumed.history_] == [h["inertia"] for h in ref.history_]
    assert not path.exists()  # removed when the fit ends


def test_sigkill_mid_fit_then_resume(tmp_path):
    path = tmp_path / "killed.ckpt"
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "checkpoint_fit.py"), str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        seen = None
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists():
                meta = _meta(path)  # always complete: the file is replaced atomically
                if meta["run"] == 1 or meta["iteration"] >= 5:
                    seen = meta
                    break
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen is not None and proc.returncode == -signal.SIGKILL
    assert path.exists()
    X = checkpoint_fit.data()
    resumed = KMeans(**checkpoint_fit.PARAMS, checkpoint=path).fit(X)
    ref = KMeans(**checkpoint_fit.PARAMS).fit(X)
    assert np.array_equal(resumed.cluster_centers_, ref.cluster_centers_)
    assert np.array_equal(resumed.labels_, ref.labels_)
    assert resumed.n_iter_ == ref.n_iter_
    assert not path.exists()


def _interrupted_checkpoint(tmp_path, X, **params):
    path = tmp_path / "c.ckpt"
    original = ckpt_module.Checkpoint.save

    def save_then_die(self, state):
        original(self, state)
        if state.iteration >= 2:
            raise Interrupt

    ckpt_module.Checkpoint.save = save_then_die
    try:
        with pytest.raises(Interrupt):
            KMeans(**params, checkpoint=path).fit(X)
    finally:
        ckpt_module.Checkpoint.save = original
    return path


def test_checkpoint_of_other_parameters_is_refused(tmp_path):
    X = _blobs()
    path = _interrupted_checkpoint(tmp_path, X, n_clusters=6, random_state=0, tol=0.0)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"other parameters: n_clusters=6 .* vs 7"):
        KMeans(7, random_state=0, tol=0.0, checkpoint=path).fit(X)
    with pytest.raises(CheckpointError, match="random_state"):
        KMeans(6, random_state=1, tol=0.0, checkpoint=path).fit(X)
    assert path.read_bytes() == before  # never overwritten


def test_checkpoint_of_other_data_is_refused(tmp_path):
    X = _blobs()
    path = _interrupted_checkpoint(tmp_path, X, n_clusters=6, random_state=0, tol=0.0)
    Y = X.copy()
    Y[17, 3] += 1e-3
    with pytest.raises(CheckpointError, match="other data"):
        KMeans(6, random_state=0, tol=0.0, checkpoint=path).fit(Y)
    with pytest.raises(CheckpointError, match="other data"):
        KMeans(6, random_state=0, tol=0.0, checkpoint=path).fit(X[:-1])


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    X = _blobs(500)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(CheckpointError, match="not a"):
        KMeans(3, checkpoint=other).fit(X)
    model = tmp_path / "model.safetensors"
    KMeans(3, random_state=0).fit(X).save(model)
    with pytest.raises(CheckpointError, match="not a torchkmeans checkpoint"):
        KMeans(3, checkpoint=model).fit(X)
    with pytest.raises(ValueError, match="does not exist"):
        KMeans(3, checkpoint=tmp_path / "missing" / "c.ckpt").fit(X)
    with pytest.raises(ValueError, match="is a folder"):
        KMeans(3, checkpoint=tmp_path).fit(X)


def test_completed_fit_leaves_no_files(tmp_path):
    X = _blobs(800)
    KMeans(4, random_state=0, checkpoint=tmp_path / "c.ckpt").fit(X)
    assert os.listdir(tmp_path) == []
