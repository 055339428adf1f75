"""Spherical k-means (metric="cosine")."""

import numpy as np
import pytest
import torch

from torchkmeans import KMeans


def _directions(n=600, d=8, k=4, seed=0):
    rng = np.random.RandomState(seed)
    axes = np.linalg.qr(rng.randn(d, d))[0][:k]
    labels = rng.randint(0, k, n)
    X = axes[labels] + 0.1 * rng.randn(n, d)
    X *= rng.uniform(0.1, 100.0, size=(n, 1))  # the norm of a row must not matter
    return X, labels


def test_centers_are_unit_length_and_clusters_are_found(device):
    from sklearn.metrics import adjusted_rand_score

    X, truth = _directions()
    km = KMeans(4, metric="cosine", random_state=0).fit(torch.tensor(X, device=device))
    c = km.cluster_centers_.cpu().numpy()
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-12)
    assert adjusted_rand_score(truth, km.labels_.cpu().numpy()) > 0.99


def test_row_scale_is_ignored():
    X, _ = _directions()
    a = KMeans(4, metric="cosine", random_state=0).fit(X)
    scale = np.random.RandomState(1).uniform(0.5, 50, size=(X.shape[0], 1))
    b = KMeans(4, metric="cosine", random_state=0).fit(X * scale)
    # normalizing scaled rows rounds differently, so the seeding may pick other (equivalent)
    # rows; the clustering found is the same
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(a.labels_, b.labels_) == 1.0
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-9)
    same_init = KMeans(4, metric="cosine", init=a.cluster_centers_).fit(X * scale)
    np.testing.assert_array_equal(same_init.labels_, a.labels_)


def test_inertia_is_sum_of_one_minus_cos():
    X, _ = _directions()
    w = np.random.RandomState(2).rand(X.shape[0])
    km = KMeans(4, metric="cosine", random_state=0).fit(X, sample_weight=w)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = Xn @ km.cluster_centers_.T
    np.testing.assert_array_equal(km.labels_, cos.argmax(1))
    assert km.inertia_ == pytest.approx((w * (1 - cos.max(1))).sum(), rel=1e-10)
    assert km.score(X, sample_weight=w) == pytest.approx(-km.inertia_, rel=1e-10)


def test_transform_is_euclidean_between_unit_vectors():
    X, _ = _directions()
    km = KMeans(4, metric="cosine", random_state=0).fit(X)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    expected = np.linalg.norm(Xn[:, None, :] - km.cluster_centers_[None], axis=2)
    np.testing.assert_allclose(km.transform(X), expected, atol=1e-7)


def test_differs_from_euclidean_on_scaled_rows():
    X = np.array([[1.0, 0.0], [100.0, 1.0], [0.0, 1.0], [1.0, 100.0]])
    cos = KMeans(2, metric="cosine", init=np.array([[1.0, 0.0], [0.0, 1.0]])).fit(X)
    np.testing.assert_array_equal(cos.labels_, [0, 0, 1, 1])


def test_cosine_init_array_is_normalized():
    X, _ = _directions()
    init = np.eye(8)[:4] * 7.0
    km = KMeans(4, metric="cosine", init=init, max_iter=1).fit(X)
    assert np.allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0)
