"""torchkmeans.metrics against sklearn.metrics; sweep_k; plot_silhouette and plot_sweep."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs

import torchkmeans
from torchkmeans import DataError, KMeans, ParameterError, metrics

REAL = {"iris": load_iris, "wine": load_wine, "digits": load_digits}


@pytest.fixture(scope="module", params=sorted(REAL))
def real(request):
    X = REAL[request.param]().data
    labels = KMeans(4, random_state=0).fit_predict(X)
    return X, labels


def test_silhouette_matches_sklearn_on_real_data(real):
    X, labels = real
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        ours = metrics.silhouette_score(X, labels, metric=metric)
        assert ours == pytest.approx(skm.silhouette_score(X, labels, metric=metric), rel=1e-6)
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, labels),
        skm.silhouette_samples(X, labels),
        rtol=1e-6,
        atol=1e-12,
    )


def test_other_scores_match_sklearn_on_real_data(real):
    X, labels = real
    assert metrics.calinski_harabasz_score(X, labels) == pytest.approx(
        skm.calinski_harabasz_score(X, labels), rel=1e-6
    )
    assert metrics.davies_bouldin_score(X, labels) == pytest.approx(
        skm.davies_bouldin_score(X, labels), rel=1e-6
    )


def test_sampled_silhouette_draws_sklearns_subset():
    X = load_digits().data
    labels = KMeans(8, random_state=0).fit_predict(X)
    for seed in (0, 7):
        ours = metrics.silhouette_score(X, labels, sample_size=300, random_state=seed)
        theirs = skm.silhouette_score(X, labels, sample_size=300, random_state=seed)
        assert ours == pytest.approx(theirs, rel=1e-6)


def test_chunking_does_not_change_the_result():
    X, y = make_blobs(700, 5, centers=4, random_state=0)
    full = metrics.silhouette_samples(X, y)
    for chunk in (1, 13, 699):
        np.testing.assert_allclose(
            metrics.silhouette_samples(X, y, chunk_size=chunk), full, rtol=1e-12
        )


def test_many_clusters_use_the_cumulative_path(monkeypatch):
    X, y = make_blobs(600, 3, centers=40, random_state=0)
    monkeypatch.setattr(metrics, "_ONEHOT_BYTES", 0)
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, y), skm.silhouette_samples(X, y), rtol=1e-6, atol=1e-12
    )


def test_torch_inputs_string_labels_and_singletons():
    X, y = make_blobs(300, 4, centers=3, random_state=1)
    t = torch.from_numpy(X)
    s = metrics.silhouette_samples(t, torch.from_numpy(y))
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float64
    np.testing.assert_allclose(s.numpy(), skm.silhouette_samples(X, y), rtol=1e-6, atol=1e-12)
    names = np.array(["a", "b", "c"])[y]
    assert metrics.silhouette_score(X, names) == pytest.approx(skm.silhouette_score(X, y), rel=1e-9)
    y2 = y.copy()
    y2[0] = 99  # a cluster of one row: its silhouette is 0
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, y2), skm.silhouette_samples(X, y2), rtol=1e-6, atol=1e-12
    )
    f32 = metrics.silhouette_score(X.astype(np.float32), y)
    assert f32 == pytest.approx(skm.silhouette_score(X, y), rel=1e-4)


def test_inertia_matches_kmeans():
    X, _ = make_blobs(500, 3, centers=3, random_state=0)
    km = KMeans(3, random_state=0).fit(X)
    assert metrics.inertia(X, km.cluster_centers_) == pytest.approx(km.inertia_, rel=1e-12)
    w = np.random.default_rng(0).random(500)
    assert metrics.inertia(X, km.cluster_centers_, sample_weight=w) == pytest.approx(
        -km.score(X, sample_weight=w), rel=1e-12
    )
    with pytest.raises(DataError, match="features"):
        metrics.inertia(X, km.cluster_centers_[:, :2])


@pytest.mark.parametrize(
    "fn", [metrics.silhouette_score, metrics.calinski_harabasz_score, metrics.davies_bouldin_score]
)
def test_errors(fn):
    X, y = make_blobs(50, 2, centers=2, random_state=0)
    with pytest.raises(DataError, match="Number of labels is 1"):
        fn(X, np.zeros(50, dtype=int))
    with pytest.raises(DataError, match="Number of labels is 50"):
        fn(X, np.arange(50))
    with pytest.raises(DataError, match="labels has 49 entries but X has 50 rows"):
        fn(X, y[:-1])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fn(bad, y)
    with pytest.raises(DataError, match="NaN"):
        fn(X, np.where(np.arange(50) == 4, np.nan, y.astype(float)))


def test_bad_metric_and_sample_size():
    X, y = make_blobs(50, 2, centers=2, random_state=0)
    with pytest.raises(ParameterError, match="metric"):
        metrics.silhouette_score(X, y, metric="manhattan")
    with pytest.raises(ParameterError, match="sample_size"):
        metrics.silhouette_score(X, y, sample_size=1)


def test_sweep_finds_the_true_k_on_separated_blobs():
    X, _ = make_blobs(3000, 5, centers=6, cluster_std=0.5, center_box=(-20, 20), random_state=2)
    result = torchkmeans.sweep_k(X, range(2, 11), random_state=0)
    assert result.best_k == 6
    assert result.elbow_k == 6
    assert result.ks == list(range(2, 11))
    assert all(a > b for a, b in zip(result.inertia, result.inertia[1:5]))
    i6 = result.ks.index(6)
    assert result.calinski_harabasz[i6] == max(result.calinski_harabasz)
    assert result.davies_bouldin[i6] == min(result.davies_bouldin)
    assert result.models[i6].n_clusters == 6
    text = str(result)
    assert "suggested k: 6" in text and "best silhouette" in text
    pd = pytest.importorskip("pandas")
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == result.ks
    assert list(frame.columns) == ["inertia", "silhouette", "calinski_harabasz", "davies_bouldin"]


def test_sweep_samples_silhouette_on_large_data_and_checks_ks():
    X, _ = make_blobs(2000, 3, centers=3, random_state=0)
    r = torchkmeans.sweep_k(X, [2, 3, 4], random_state=0, silhouette_sample_size=500)
    assert r.silhouette_sample_size == 500 and r.best_k == 3
    with pytest.raises(ParameterError, match="repeated"):
        torchkmeans.sweep_k(X, [2, 2])
    with pytest.raises(ParameterError, match=">= 2"):
        torchkmeans.sweep_k(X, [1, 2])
    with pytest.raises(ParameterError, match="n_clusters"):
        torchkmeans.sweep_k(X, [2, 3], n_clusters=4)


def test_elbow_method():
    from torchkmeans._sweep import elbow

    assert elbow([1, 2, 3, 4, 5], [100.0, 50.0, 10.0, 9.0, 8.5]) == 3
    assert elbow([2, 4, 8, 16], [100.0, 20.0, 15.0, 12.0]) == 4
    assert elbow([2, 3], [10.0, 5.0]) == 2


def test_plot_silhouette_draws_one_band_per_cluster():
    pytest.importorskip("matplotlib")
    from torchkmeans.plot import plot_silhouette

    X, y = make_blobs(200, 2, centers=3, random_state=0)
    fig, ax = plot_silhouette(X, y)
    assert len(ax.collections) == 3
    mean_line = [ln for ln in ax.lines if ln.get_linestyle() == "--"][0]
    assert mean_line.get_xdata()[0] == pytest.approx(skm.silhouette_score(X, y), rel=1e-6)


def test_plot_sweep_marks_the_suggestion(tmp_path):
    pytest.importorskip("matplotlib")
    from torchkmeans.plot import plot_sweep

    X, _ = make_blobs(600, 2, centers=4, cluster_std=0.4, random_state=0)
    r = torchkmeans.sweep_k(X, range(2, 7), random_state=0)
    fig, axes = plot_sweep(r)
    assert axes.shape == (2, 2)
    for ax, values in zip(
        axes.flat, (r.inertia, r.silhouette, r.calinski_harabasz, r.davies_bouldin)
    ):
        curve = ax.lines[0]
        np.testing.assert_allclose(curve.get_ydata(), values)
        marks = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
        assert marks and marks[0].get_xdata()[0] == r.best_k
    fig.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_many_clusters_davies_bouldin_and_calinski_match_sklearn():
    """Above 25 clusters torch.cdist would switch to a GEMM whose diagonal is not exactly 0."""
    X, y = make_blobs(5000, 32, centers=50, cluster_std=2.0, random_state=0)
    assert metrics.davies_bouldin_score(X, y) == pytest.approx(
        skm.davies_bouldin_score(X, y), rel=1e-6
    )
    assert metrics.calinski_harabasz_score(X, y) == pytest.approx(
        skm.calinski_harabasz_score(X, y), rel=1e-6
    )
    f32 = X.astype(np.float32)
    assert metrics.davies_bouldin_score(f32, y) == pytest.approx(
        skm.davies_bouldin_score(f32, y), rel=1e-5
    )
