"""MiniBatchKMeans: scikit-learn's semantics and quality, every source, partial_fit, files."""

import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import load_digits, load_iris, make_blobs
from torch.utils.data import DataLoader, TensorDataset

from torchkmeans import MiniBatchKMeans, ParameterError


@pytest.mark.parametrize(
    "name,k",
    [("iris", 3), ("digits", 10), ("blobs", 20)],
)
def test_quality_matches_sklearn_over_five_seeds(name, k):
    if name == "iris":
        X = load_iris().data
    elif name == "digits":
        X = load_digits().data
    else:
        X = make_blobs(20_000, 16, centers=20, cluster_std=2.0, random_state=0)[0]
    ours = [MiniBatchKMeans(k, random_state=s).fit(X).inertia_ for s in range(5)]
    theirs = [SkMiniBatchKMeans(k, random_state=s, n_init="auto").fit(X).inertia_ for s in range(5)]
    assert np.mean(ours) <= 1.02 * np.mean(theirs)


def test_attributes_and_no_nan_with_absent_clusters():
    X = make_blobs(3000, 4, centers=5, random_state=1)[0]
    km = MiniBatchKMeans(40, batch_size=32, random_state=0).fit(X)  # many clusters miss a batch
    assert np.isfinite(km.cluster_centers_).all()
    assert not (km.cluster_centers_ == 0).all(axis=1).any()
    assert km.labels_.shape == (3000,) and km.labels_.dtype == np.int64
    assert km.n_steps_ >= 1 and km.n_iter_ == int(np.ceil(km.n_steps_ * 32 / 3000))
    assert km.inertia_ == pytest.approx(-km.score(X))
    assert np.array_equal(km.predict(X), km.labels_)


def test_compute_labels_false_uses_smoothed_inertia():
    X = make_blobs(5000, 3, centers=4, random_state=0)[0]
    km = MiniBatchKMeans(4, batch_size=256, compute_labels=False, random_state=0).fit(X)
    assert not hasattr(km, "labels_")
    assert km.inertia_ > 0
    assert km.inertia_ == pytest.approx(-km.score(X), rel=0.5)


def test_reassignment_moves_starved_centers():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)) + 20])
    init = np.array([[0.0, 0.0], [20.0, 20.0], [1000.0, 1000.0]])  # the third center is starved
    km = MiniBatchKMeans(3, init=init, batch_size=100, random_state=0, reassignment_ratio=0.1)
    km.fit(X)
    assert np.abs(km.cluster_centers_).max() < 100  # moved to the data
    no = MiniBatchKMeans(3, init=init, batch_size=100, random_state=0, reassignment_ratio=0.0)
    assert np.allclose(no.fit(X).cluster_centers_[2], [1000.0, 1000.0])


def test_early_stopping_and_tol():
    X = make_blobs(50_000, 2, centers=3, random_state=0)[0]
    km = MiniBatchKMeans(3, batch_size=100, max_iter=50, random_state=0).fit(X)
    assert km.n_steps_ < 50 * 50_000 // 100  # stopped on max_no_improvement
    km2 = MiniBatchKMeans(3, batch_size=100, tol=1e-3, max_no_improvement=None, random_state=0)
    assert km2.fit(X).n_steps_ < 50 * 1000


def test_partial_fit_streams_batches():
    X = make_blobs(6000, 5, centers=4, random_state=2)[0]
    km = MiniBatchKMeans(4, random_state=0)
    for start in range(0, 6000, 500):
        km.partial_fit(X[start : start + 500])
    assert km.n_steps_ == 12
    assert km.cluster_centers_.shape == (4, 5)
    assert km.labels_.shape == (500,)
    full = MiniBatchKMeans(4, random_state=0).fit(X)
    assert -km.score(X) <= 1.1 * full.inertia_
    with pytest.raises(ValueError, match="features"):
        km.partial_fit(X[:10, :3])


def test_partial_fit_is_reproducible_and_survives_save_load(tmp_path):
    X = make_blobs(3000, 3, centers=3, random_state=0)[0]
    a = MiniBatchKMeans(3, random_state=0, batch_size=100)
    b = MiniBatchKMeans(3, random_state=0, batch_size=100)
    a.partial_fit(X[:1000])
    b.partial_fit(X[:1000])
    a.save(tmp_path / "mb.safetensors")
    c = MiniBatchKMeans.load(tmp_path / "mb.safetensors")
    for part in (X[1000:2000], X[2000:]):
        b.partial_fit(part)
        c.partial_fit(part)
    np.testing.assert_array_equal(b.cluster_centers_, c.cluster_centers_)
    assert c.n_steps_ == 3


def test_save_load_predicts_the_same(tmp_path):
    X = make_blobs(2000, 3, centers=3, random_state=0)[0]
    km = MiniBatchKMeans(3, random_state=0).fit(X)
    km.save(tmp_path / "m.safetensors")
    back = MiniBatchKMeans.load(tmp_path / "m.safetensors")
    assert np.array_equal(back.predict(X), km.predict(X))
    assert back.get_params() == km.get_params()
    assert back.n_steps_ == km.n_steps_


def test_every_source(tmp_path):
    X = make_blobs(4000, 6, centers=5, random_state=3)[0]
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ref = MiniBatchKMeans(5, batch_size=256, random_state=0).fit(X)
    on_mm = MiniBatchKMeans(5, batch_size=256, random_state=0).fit(mm)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=256)
    on_loader = MiniBatchKMeans(5, batch_size=256, random_state=0).fit(loader)
    tensor = MiniBatchKMeans(5, batch_size=256, random_state=0).fit(torch.from_numpy(X))
    assert isinstance(tensor.cluster_centers_, torch.Tensor)
    for est in (on_mm, on_loader, tensor):
        inertia = est.inertia_
        assert inertia <= 1.05 * ref.inertia_
    assert on_loader.labels_.shape == (4000,)


def test_weights_act_as_repeats():
    X = make_blobs(500, 3, centers=3, random_state=0)[0]
    w = np.random.default_rng(0).integers(0, 3, 500)
    a = MiniBatchKMeans(3, batch_size=64, random_state=0).fit(X, sample_weight=w)
    b = MiniBatchKMeans(3, batch_size=64, random_state=0).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"reassignment_ratio": -1}, "reassignment_ratio"),
        ({"max_no_improvement": -1}, "max_no_improvement"),
        ({"init_size": 0}, "init_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"init": "nope"}, "init"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ParameterError, match=match):
        MiniBatchKMeans(2, **params).fit(np.random.rand(20, 2))


def test_cosine_centers_are_unit():
    X = make_blobs(2000, 5, centers=4, random_state=0)[0] + 10
    km = MiniBatchKMeans(4, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0, rtol=1e-6)
