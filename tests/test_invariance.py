"""Invariance properties instead of golden numbers."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from torchkmeans import KMeans, kmeans


def _X(n=1500, d=5, centers=6, seed=0):
    X, _ = make_blobs(n, n_features=d, centers=centers, cluster_std=1.5, random_state=seed)
    return X


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_integer_weight_equals_repeated_rows(init):
    rng = np.random.RandomState(3)
    X = _X(300)
    w = rng.randint(0, 4, size=X.shape[0])
    Xr = np.repeat(X, w, axis=0)
    perm = rng.permutation(X.shape[0])  # the order of rows must not matter either
    a = KMeans(5, init=init, n_init=2, random_state=7).fit(X[perm], sample_weight=w[perm])
    b = KMeans(5, init=init, n_init=2, random_state=7).fit(Xr)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-10)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_scaling_weights_changes_nothing_but_inertia():
    X = _X(400)
    w = np.random.RandomState(0).rand(X.shape[0]) + 0.1
    a = KMeans(4, random_state=0).fit(X, sample_weight=w)
    b = KMeans(4, random_state=0).fit(X, sample_weight=3 * w)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-10)
    assert b.inertia_ == pytest.approx(3 * a.inertia_)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_results_do_not_depend_on_chunk_size(metric, init):
    X = _X(2000) + 5.0
    w = np.random.RandomState(1).rand(X.shape[0])
    ref = KMeans(6, init=init, metric=metric, random_state=0, n_init=2).fit(X, sample_weight=w)
    for chunk in (3, 64, 5000):
        km = KMeans(6, init=init, metric=metric, random_state=0, n_init=2, chunk_size=chunk)
        km.fit(X, sample_weight=w)
        np.testing.assert_array_equal(km.labels_, ref.labels_)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert km.inertia_ == ref.inertia_
        assert km.n_iter_ == ref.n_iter_


def test_results_do_not_depend_on_thread_count():
    X = _X(3000, d=16, centers=10)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = KMeans(10, random_state=0).fit(X)
        torch.set_num_threads(max(2, before))
        many = KMeans(10, random_state=0).fit(X)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one.labels_, many.labels_)
    np.testing.assert_array_equal(one.cluster_centers_, many.cluster_centers_)
    assert one.inertia_ == many.inertia_


def test_random_state_is_reproducible_bit_for_bit():
    X = _X()
    a = kmeans(X, 6, random_state=42, init="random", n_init=3)
    b = kmeans(X, 6, random_state=42, init="random", n_init=3)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.inertia == b.inertia
    c = kmeans(X, 6, random_state=np.random.RandomState(42))
    d = kmeans(X, 6, random_state=np.random.RandomState(42))
    np.testing.assert_array_equal(c.centers, d.centers)


def test_random_state_none_draws_fresh_entropy():
    X = _X(300, d=2, centers=30)
    inits = {tuple(kmeans(X, 20, init="random", max_iter=1).centers.ravel()[:4]) for _ in range(4)}
    assert len(inits) > 1


def test_permuting_rows_permutes_labels():
    X = _X(1000)
    perm = np.random.RandomState(5).permutation(X.shape[0])
    a = KMeans(6, random_state=3).fit(X)
    b = KMeans(6, random_state=3).fit(X[perm])
    np.testing.assert_array_equal(b.labels_, a.labels_[perm])
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-12)


def test_float32_agrees_with_float64():
    X = _X(2000)
    a = KMeans(6, random_state=0).fit(X)
    b = KMeans(6, random_state=0).fit(X.astype(np.float32))
    assert (a.labels_ == b.labels_).mean() > 0.999
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-4)


def test_labels_agree_with_predict_after_max_iter_stop():
    X = _X(3000, centers=12)
    km = KMeans(12, random_state=0, max_iter=2, tol=0.0).fit(X)
    assert km.n_iter_ == 2
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert -km.score(X) == pytest.approx(km.inertia_, rel=1e-12)


def test_n_init_keeps_the_best_run():
    X = _X(1500, centers=10)
    runs = [KMeans(10, init="random", n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    best = KMeans(10, init="random", n_init=8, random_state=0).fit(X)
    assert best.inertia_ <= max(runs)
    np.testing.assert_array_equal(best.predict(X), best.labels_)


def test_tol_is_relative_to_the_data_scale():
    X = _X(2000, centers=8)
    a = KMeans(8, random_state=0, tol=1e-2).fit(X)
    b = KMeans(8, random_state=0, tol=1e-2).fit(X * 1000.0)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(a.labels_, b.labels_)


@pytest.mark.parametrize(
    "kind", ["blobs", "weighted", "cosine", "integer_grid", "float32", "relocation"]
)
def test_pruned_passes_match_full_passes_bit_for_bit(kind, monkeypatch):
    """Hamerly-style pruning skips rows whose center cannot change; results must not move."""
    import torchkmeans._core as core

    X = _X(4000, d=6, centers=15)
    kw, sw, k = {}, None, 12
    if kind == "weighted":
        sw = np.random.RandomState(0).rand(X.shape[0])
    elif kind == "cosine":
        kw = {"metric": "cosine"}
    elif kind == "integer_grid":
        X = np.indices((40, 40)).reshape(2, -1).T.astype(float)
    elif kind == "float32":
        X = X.astype(np.float32)
    elif kind == "relocation":
        X = np.vstack([X, X[:1] + 1000.0])
        kw = {"init": np.vstack([X[: k - 1], [[1e6] * X.shape[1]]])}
    runs = []
    for prune in (False, True):
        monkeypatch.setattr(core, "PRUNE", prune)
        runs.append(KMeans(k, random_state=0, tol=0.0, max_iter=40, **kw).fit(X, sample_weight=sw))
    a, b = runs
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_
    assert [h["inertia"] for h in a.history_] == [h["inertia"] for h in b.history_]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pruning_with_near_duplicate_centers():
    # found by hypothesis: two centers 6e-14 apart; the gap bound must not round upward
    X = np.array([[792.5]] + [[0.0]] * 22)
    km = KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    d2 = (X - km.cluster_centers_.T) ** 2
    np.testing.assert_array_equal(km.labels_, d2.argmin(1))
