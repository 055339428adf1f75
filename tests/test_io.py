"""Model files: round trips, and every way a file can be bad; atomic writes; pickling."""

import pickle

import numpy as np
import pytest
import torch

from torchkmeans import KMeans, ModelFileError
from torchkmeans.io import FORMAT_VERSION, atomic_path

from .conftest import to_numpy


@pytest.fixture
def fitted():
    X = np.random.RandomState(0).rand(300, 4)
    return X, KMeans(5, random_state=0).fit(X)


def test_round_trip_predicts_the_same(tmp_path, fitted):
    X, km = fitted
    path = tmp_path / "m.safetensors"
    km.save(path)
    loaded = KMeans.load(path)
    np.testing.assert_array_equal(loaded.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(loaded.predict(X), km.predict(X))
    np.testing.assert_array_equal(loaded.labels_, km.labels_)
    np.testing.assert_allclose(loaded.transform(X), km.transform(X))
    assert loaded.get_params() == km.get_params()
    assert loaded.inertia_ == km.inertia_ and loaded.n_iter_ == km.n_iter_
    assert loaded.history_ == km.history_


def test_round_trip_keeps_feature_names_and_dtype(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        np.random.RandomState(1).rand(100, 3).astype(np.float32), columns=["a", "b", "c"]
    )
    km = KMeans(3, random_state=0, metric="cosine").fit(df)
    km.save(tmp_path / "m.safetensors")
    loaded = KMeans.load(tmp_path / "m.safetensors")
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert loaded.cluster_centers_.dtype == np.float32
    assert loaded.metric == "cosine"
    np.testing.assert_array_equal(loaded.predict(df), km.predict(df))


def test_tensor_model_round_trip_and_device(tmp_path, device):
    X = torch.rand(200, 3, device=device)
    km = KMeans(4, random_state=0).fit(X)
    km.save(tmp_path / "t.safetensors")
    loaded = KMeans.load(tmp_path / "t.safetensors", device=device)
    assert isinstance(loaded.cluster_centers_, torch.Tensor)
    assert loaded.cluster_centers_.device.type == device.type
    assert torch.equal(loaded.predict(X), km.predict(X))
    on_cpu = KMeans.load(tmp_path / "t.safetensors")
    assert torch.equal(on_cpu.predict(X.cpu()).cpu(), km.predict(X).cpu())


def test_model_with_array_init_round_trips(tmp_path):
    X = np.random.RandomState(0).rand(50, 2)
    km = KMeans(2, init=X[:2].copy()).fit(X)
    km.save(tmp_path / "a.safetensors")
    loaded = KMeans.load(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), km.labels_)
    np.testing.assert_array_equal(loaded.init, X[:2])
    np.testing.assert_array_equal(loaded.fit(X).cluster_centers_, km.cluster_centers_)


def test_save_before_fit_is_not_fitted_error(tmp_path):
    from torchkmeans import NotFittedError

    with pytest.raises(NotFittedError):
        KMeans().save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_pickle_file_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match="pickle"):
        KMeans.load(path)
    assert not marker.exists()
    torch.save({"cluster_centers": torch.zeros(2, 2)}, tmp_path / "torch.pt")
    with pytest.raises(ModelFileError, match="pickle"):
        KMeans.load(tmp_path / "torch.pt")


def test_truncated_corrupt_foreign_and_missing(tmp_path, fitted):
    _, km = fitted
    good = tmp_path / "m.safetensors"
    km.save(good)
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "tiny": data[:5],
        "empty": b"",
        "garbage": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}",
        "zeros": bytes(200),
    }
    for name, content in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(content)
        with pytest.raises(ModelFileError):
            KMeans.load(p)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelFileError, match="not a torchkmeans model"):
        KMeans.load(tmp_path / "foreign.safetensors")
    with pytest.raises(ModelFileError, match="no such model file"):
        KMeans.load(tmp_path / "missing.safetensors")


def test_other_format_version_is_refused(tmp_path, fitted, monkeypatch):
    import torchkmeans.io as io

    _, km = fitted
    monkeypatch.setattr(io, "FORMAT_VERSION", FORMAT_VERSION + 1)
    km.save(tmp_path / "future.safetensors")
    monkeypatch.setattr(io, "FORMAT_VERSION", FORMAT_VERSION)
    with pytest.raises(ModelFileError, match="format version 2"):
        KMeans.load(tmp_path / "future.safetensors")


def test_failed_save_leaves_no_file(tmp_path, fitted, monkeypatch):
    import safetensors.torch

    _, km = fitted
    path = tmp_path / "m.safetensors"

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        km.save(path)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_pickle_and_joblib_round_trip(fitted):
    joblib = pytest.importorskip("joblib")
    X, km = fitted
    again = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(again.predict(X), km.labels_)
    import io as _io

    buf = _io.BytesIO()
    joblib.dump(km, buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).predict(X), km.labels_)
    t = KMeans(3, random_state=0).fit(torch.tensor(X))
    np.testing.assert_array_equal(
        to_numpy(pickle.loads(pickle.dumps(t)).predict(torch.tensor(X))), to_numpy(t.labels_)
    )


def test_header_length_with_a_pickle_like_first_byte_is_still_read(tmp_path):
    """A safetensors header whose length ends in byte 0x80 (the pickle PROTO opcode) is valid."""
    import json as _json

    import torch
    from safetensors.torch import save_file

    from torchkmeans.io import _read_header

    for pad in range(600):
        path = tmp_path / "x.safetensors"
        save_file({"a": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            header = _read_header(path)
            assert _json.loads(_json.dumps(header))["__metadata__"]["pad"] == "x" * pad
            return
    raise AssertionError("no padding produced a header length ending in 0x80")
