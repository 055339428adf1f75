"""scikit-learn compatibility: every estimator check, clone, Pipeline, GridSearchCV."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from torchkmeans import BisectingKMeans, KMeans, MiniBatchKMeans


@parametrize_with_checks(
    [
        KMeans(n_clusters=3, random_state=0),
        KMeans(n_clusters=2, init="random", n_init=3, random_state=0),
        KMeans(n_clusters=3, random_state=0, chunk_size=7),
        MiniBatchKMeans(n_clusters=3, random_state=0),
        MiniBatchKMeans(n_clusters=2, batch_size=10, init="random", random_state=0),
        BisectingKMeans(n_clusters=3, random_state=0),
        BisectingKMeans(
            n_clusters=4,
            init="k-means++",
            n_init=2,
            bisecting_strategy="largest_cluster",
            random_state=0,
        ),
    ]
)
def test_sklearn_compatible(estimator, check):
    # metric="cosine" is left out on purpose: the checks feed integer data with all-zero rows,
    # which spherical k-means rejects (a zero row has no direction).
    check(estimator)


def test_sparse_is_declared_supported():
    tags = KMeans().__sklearn_tags__()
    assert tags.input_tags.sparse is True
    assert MiniBatchKMeans().__sklearn_tags__().input_tags.sparse is True
    # (BisectingKMeans is written against sparse sources but not yet tested on them)
    assert BisectingKMeans().__sklearn_tags__().input_tags.sparse is True
    assert "float32" in tags.transformer_tags.preserves_dtype


def test_clone_keeps_params_verbatim():
    for km in (
        KMeans(5, init="random", n_init=4, tol=1e-3, metric="cosine", dtype="float32"),
        BisectingKMeans(5, n_init=4, bisecting_strategy="largest_cluster", algorithm="elkan"),
    ):
        c = clone(km)
        assert c.get_params() == km.get_params()
        assert not hasattr(c, "cluster_centers_")


def test_bisecting_kmeans_in_a_pipeline(blobs):
    X, _ = blobs
    pipe = make_pipeline(StandardScaler(), BisectingKMeans(5, random_state=0)).fit(X)
    assert pipe.predict(X).shape == (X.shape[0],)
    assert pipe.transform(X).shape == (X.shape[0], 5)


def test_pipeline_and_grid_search(blobs):
    X, _ = blobs
    pipe = make_pipeline(StandardScaler(), KMeans(random_state=0))
    grid = GridSearchCV(pipe, {"kmeans__n_clusters": [2, 5, 8]}, cv=3)
    grid.fit(X)
    assert grid.best_params_["kmeans__n_clusters"] in (5, 8)
    labels = grid.predict(X)
    assert labels.shape == (X.shape[0],)
    D = pipe.set_params(kmeans__n_clusters=5).fit(X).transform(X)
    assert D.shape == (X.shape[0], 5)


def test_set_output_pandas(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    km = KMeans(3, random_state=0).set_output(transform="pandas").fit(X)
    out = km.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    np.testing.assert_allclose(out.to_numpy(), KMeans(3, random_state=0).fit(X).transform(X))
