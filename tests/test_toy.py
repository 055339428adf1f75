"""Hand-computed toy cases with exact labels, centers and inertia."""

import numpy as np
import pytest
import torch

from torchkmeans import KMeans, kmeans

from .conftest import to_numpy

X4 = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])


def test_two_pairs(device):
    X = torch.tensor(X4, device=device)
    init = torch.tensor([[0.0, 0.0], [10.0, 0.0]], device=device)
    km = KMeans(2, init=init).fit(X)
    np.testing.assert_allclose(to_numpy(km.cluster_centers_), [[0.0, 0.5], [10.0, 0.5]])
    np.testing.assert_array_equal(to_numpy(km.labels_), [0, 0, 1, 1])
    assert km.inertia_ == pytest.approx(1.0)
    assert km.n_iter_ == 2
    assert km.labels_.device.type == device.type


def test_weighted_toy():
    # Weights pull the center of the left pair: (0*3 + 1*1) / 4 = 0.25 in the second feature.
    w = np.array([3.0, 1.0, 1.0, 1.0])
    km = KMeans(2, init=np.array([[0.0, 0.0], [10.0, 0.0]])).fit(X4, sample_weight=w)
    np.testing.assert_allclose(km.cluster_centers_, [[0.0, 0.25], [10.0, 0.5]])
    # inertia: 3 * 0.25^2 + 1 * 0.75^2 + 2 * 0.5^2
    assert km.inertia_ == pytest.approx(3 * 0.0625 + 0.5625 + 0.5)
    assert km.score(X4, sample_weight=w) == pytest.approx(-km.inertia_)


def test_zero_weight_row_does_not_count():
    X = np.vstack([X4, [[100.0, 100.0]]])
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    km = KMeans(2, random_state=0, n_init=5, init="random").fit(X, sample_weight=w)
    centers = sorted(km.cluster_centers_.tolist())
    np.testing.assert_allclose(centers, [[0.0, 0.5], [10.0, 0.5]])
    assert km.inertia_ == pytest.approx(1.0)


def test_one_dimensional_three_clusters():
    X = np.array([[1.0], [2.0], [3.0], [11.0], [12.0], [13.0], [31.0], [32.0], [33.0]])
    res = kmeans(X, 3, init=np.array([[1.0], [11.0], [31.0]]))
    np.testing.assert_allclose(res.centers, [[2.0], [12.0], [32.0]])
    np.testing.assert_array_equal(res.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert res.inertia == pytest.approx(6.0)


def test_transform_and_predict_toy():
    km = KMeans(2, init=np.array([[0.0, 0.0], [10.0, 0.0]])).fit(X4)
    D = km.transform(np.array([[0.0, 0.5], [5.0, 0.5]]))
    np.testing.assert_allclose(D, [[0.0, 10.0], [5.0, 5.0]])
    np.testing.assert_array_equal(km.predict(np.array([[1.0, 0.0], [9.0, 0.0]])), [0, 1])


def test_empty_cluster_is_relocated_to_farthest_point():
    X = np.array([[0.0], [1.0], [2.0], [20.0]])
    # the third center is far from everything: it gets no point in the first pass
    km = KMeans(3, init=np.array([[0.5], [1.5], [1000.0]]), max_iter=1).fit(X)
    assert km.history_[0]["n_relocated"] == 1
    assert np.isfinite(km.cluster_centers_).all()
    # the farthest point (20, at distance 18.5^2 from 1.5) now forms its own cluster
    assert 20.0 in km.cluster_centers_.ravel()


def test_duplicate_points_warn_not_crash():
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    X = np.ones((10, 2))
    with pytest.warns(SkConvergenceWarning, match="distinct clusters"):
        km = KMeans(3, random_state=0).fit(X)
    assert np.isfinite(km.cluster_centers_).all()
    np.testing.assert_allclose(km.cluster_centers_, 1.0)
    assert km.inertia_ == 0.0
