"""Containers, devices and dtypes: same kind out, dtypes kept, the caller's array untouched."""

import numpy as np
import pytest
import torch

from torchkmeans import KMeans, kmeans

from .conftest import to_numpy


def _data(n=200, d=3, seed=0):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n, n_features=d, centers=4, random_state=seed)
    return X


def test_numpy_in_numpy_out():
    X = _data()
    km = KMeans(4, random_state=0).fit(X)
    for a in (km.cluster_centers_, km.labels_, km.predict(X), km.transform(X)):
        assert isinstance(a, np.ndarray)
    assert km.labels_.dtype == np.int64
    assert km.cluster_centers_.dtype == np.float64


def test_tensor_in_tensor_out(device):
    X = torch.tensor(_data(), device=device)
    km = KMeans(4, random_state=0).fit(X)
    for a in (km.cluster_centers_, km.labels_, km.predict(X), km.transform(X)):
        assert isinstance(a, torch.Tensor)
        assert a.device.type == device.type
    res = kmeans(X, 4, random_state=0)
    assert isinstance(res.centers, torch.Tensor) and res.centers.device.type == device.type


def test_numpy_tensor_list_pandas_agree():
    pd = pytest.importorskip("pandas")
    X = _data()
    ref = KMeans(4, random_state=0).fit(X)
    for variant in (torch.from_numpy(X), X.tolist(), pd.DataFrame(X, columns=list("abc"))):
        km = KMeans(4, random_state=0).fit(variant)
        np.testing.assert_array_equal(to_numpy(km.labels_), ref.labels_)
        np.testing.assert_allclose(to_numpy(km.cluster_centers_), ref.cluster_centers_)


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_data(), columns=["x", "y", "z"])
    km = KMeans(4, random_state=0).fit(df)
    np.testing.assert_array_equal(km.feature_names_in_, ["x", "y", "z"])
    km.predict(df)
    with pytest.raises(ValueError, match="feature names"):
        km.predict(df[["z", "y", "x"]])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        km.predict(df.to_numpy())
    km2 = KMeans(4, random_state=0).fit(df.to_numpy())
    assert not hasattr(km2, "feature_names_in_")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept(dtype):
    X = _data().astype(dtype)
    km = KMeans(4, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == dtype
    assert km.transform(X).dtype == dtype
    res = kmeans(torch.from_numpy(X), 4, random_state=0)
    assert res.centers.dtype == torch.from_numpy(X).dtype


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_integers_and_bools_become_float64(dtype):
    """As in scikit-learn: integer and bool numpy (pandas, list) data is clustered in float64;
    an integer tensor in torch's default dtype."""
    X = (np.abs(_data()) * 3).astype(dtype)
    X = np.vstack([X, X + 1]).astype(dtype)
    km = KMeans(3, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float64
    ref = KMeans(3, random_state=0).fit(X.astype(np.float64))
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    from_list = KMeans(3, random_state=0).fit(X.tolist())
    assert from_list.cluster_centers_.dtype == np.float64
    t = KMeans(3, random_state=0).fit(torch.as_tensor(X))
    assert t.cluster_centers_.dtype == torch.get_default_dtype()


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(device, half):
    X32 = torch.tensor(_data(400, 4), dtype=torch.float32, device=device)
    Xh = X32.to(half)
    km = KMeans(4, random_state=0).fit(Xh)
    assert km.cluster_centers_.dtype == half
    assert torch.isfinite(km.cluster_centers_.float()).all()
    ref = KMeans(4, random_state=0).fit(Xh.float())
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-2)
    # labels agree with predict even though the centers were rounded to half precision
    assert torch.equal(km.predict(Xh), km.labels_)
    assert km.transform(Xh).dtype == half


def test_float16_numpy():
    X = _data().astype(np.float16)
    km = KMeans(4, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float16
    np.testing.assert_array_equal(km.predict(X), km.labels_)


def test_dtype_parameter_overrides():
    X = _data()
    km = KMeans(4, random_state=0, dtype="float32").fit(X)
    assert km.cluster_centers_.dtype == np.float32
    km = KMeans(4, random_state=0, dtype=torch.float64).fit(X.astype(np.float32))
    assert km.cluster_centers_.dtype == np.float64


def test_caller_array_is_never_modified(device):
    X = _data() + 1000.0
    w = np.linspace(0.5, 2.0, X.shape[0])
    X0, w0 = X.copy(), w.copy()
    km = KMeans(4, random_state=0, init="random", n_init=3).fit(X, sample_weight=w)
    km.predict(X), km.transform(X), km.score(X, sample_weight=w)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(w, w0)
    t = torch.tensor(X, device=device)
    t0 = t.clone()
    KMeans(4, random_state=0, metric="cosine").fit(t)
    assert torch.equal(t, t0)


def test_read_only_memmap(tmp_path):
    X = _data(500, 3).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    km = KMeans(4, random_state=0).fit(mm)
    ref = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(km.predict(mm), ref.labels_)


def test_fortran_and_strided_arrays():
    X = _data(300, 4)
    ref = KMeans(4, random_state=0).fit(X)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    for variant in (
        np.asfortranarray(X),
        wide[:, ::2],
        X[::-1][::-1],
        torch.from_numpy(X).T.contiguous().T,
    ):
        km = KMeans(4, random_state=0).fit(variant)
        np.testing.assert_array_equal(to_numpy(km.labels_), ref.labels_)


def test_no_copy_of_contiguous_float_data():
    from torchkmeans._validation import check_array

    for dtype in (np.float32, np.float64):
        X = np.ascontiguousarray(_data().astype(dtype))
        t = check_array(X).X
        assert t.data_ptr() == X.ctypes.data
