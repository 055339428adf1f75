"""Sparse input (scipy.sparse matrices and arrays, torch sparse tensors): accepted everywhere a
dense one is, never made dense, equal to scikit-learn's sparse k-means from the same initial
centers and to our own fit of the same data made dense."""

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

import torchkmeans
from torchkmeans import (
    DataError,
    KMeans,
    MiniBatchKMeans,
    UnsupportedInputError,
    kmeans,
    kmeans_plusplus,
    metrics,
    sweep_k,
)
from torchkmeans._engines.dispatch import TORCH, engine_for

from .conftest import to_numpy

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from probe import run_probe  # noqa: E402

MB = 1 << 20


def sparse_blobs(n=400, d=60, k=4, density=0.12, seed=0, dtype=np.float64):
    """Clustered sparse rows: a row of cluster c stores most of its values in the columns of
    block c; values positive. Returns (CSR matrix, true labels)."""
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, k, n)
    width = d // k
    dense = np.zeros((n, d))
    for i in range(n):
        own = labels[i] * width + rng.choice(width, size=max(1, int(width * 0.4)), replace=False)
        noise = rng.choice(d, size=max(1, int(d * density * 0.3)), replace=False)
        dense[i, own] = rng.uniform(0.5, 2.0, own.shape[0])
        dense[i, noise] += rng.uniform(0.0, 1.0, noise.shape[0])
    return sp.csr_matrix(dense.astype(dtype)), labels


@pytest.fixture(scope="module")
def data():
    return sparse_blobs()


def _torch_csr(X, device="cpu"):
    X = sp.csr_matrix(X)
    return torch.sparse_csr_tensor(
        torch.from_numpy(X.indptr).long(),
        torch.from_numpy(X.indices).long(),
        torch.from_numpy(X.data),
        X.shape,
        check_invariants=True,
    ).to(device)


def _torch_coo(X, device="cpu"):
    coo = X.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col])).long()
    t = torch.sparse_coo_tensor(index, torch.from_numpy(coo.data), coo.shape, check_invariants=True)
    return t.to(device)  # (not coalesced: the validation coalesces it)


CONTAINERS = {
    "csr_matrix": sp.csr_matrix,
    "csr_array": sp.csr_array,
    "csc_matrix": sp.csc_matrix,
    "csc_array": sp.csc_array,
    "coo_matrix": sp.coo_matrix,
    "torch_csr": _torch_csr,
    "torch_coo": _torch_coo,
}


def _init(X, k, seed=0):
    init, _ = sk_kmeans_plusplus(X, k, random_state=seed)
    return np.asarray(init)


# --------------------------------------------------------------------------------------------
# containers: every kind of sparse input, same result as the dense fit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_container_equals_the_dense_fit(data, name):
    X, _ = data
    Xs = CONTAINERS[name](X)
    init = _init(X, 4)
    dense = KMeans(4, init=init).fit(X.toarray())
    km = KMeans(4, init=torch.as_tensor(init) if name.startswith("torch") else init).fit(Xs)
    tensors = name.startswith("torch")
    for a in (km.cluster_centers_, km.labels_, km.predict(Xs), km.transform(Xs)):
        assert isinstance(a, torch.Tensor if tensors else np.ndarray)
    np.testing.assert_array_equal(to_numpy(km.labels_), dense.labels_)
    np.testing.assert_allclose(
        to_numpy(km.cluster_centers_), dense.cluster_centers_, rtol=1e-10, atol=1e-12
    )
    assert km.n_iter_ == dense.n_iter_
    assert km.inertia_ == pytest.approx(dense.inertia_, rel=1e-10)
    np.testing.assert_array_equal(to_numpy(km.predict(Xs)), dense.predict(X.toarray()))
    np.testing.assert_allclose(
        to_numpy(km.transform(Xs)), dense.transform(X.toarray()), rtol=1e-7, atol=1e-7
    )
    assert km.score(Xs) == pytest.approx(dense.score(X.toarray()), rel=1e-10)


def test_fit_predict_and_fit_transform(data):
    X, _ = data
    labels = KMeans(4, random_state=0).fit_predict(X)
    km = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_allclose(KMeans(4, random_state=0).fit_transform(X), km.transform(X))
    assert labels.dtype == np.int64


def test_seeded_fit_equals_the_dense_seeded_fit(data):
    """k-means++ on sparse rows draws the same rows as on the same data made dense."""
    X, _ = data
    for seed in range(3):
        a = KMeans(4, random_state=seed).fit(X)
        b = KMeans(4, random_state=seed).fit(X.toarray())
        np.testing.assert_array_equal(a.labels_, b.labels_)
        np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)
    for init in ("random", "k-means||"):
        a = KMeans(4, init=init, random_state=0).fit(X)
        b = KMeans(4, init=init, random_state=0).fit(X.toarray())
        np.testing.assert_array_equal(a.labels_, b.labels_)


def test_kmeans_function_and_kmeans_plusplus(data):
    X, _ = data
    res = kmeans(X, 4, random_state=0)
    ref = kmeans(X.toarray(), 4, random_state=0)
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_allclose(res.centers, ref.centers, rtol=1e-9, atol=1e-12)
    assert isinstance(res.centers, np.ndarray) and res.centers.dtype == np.float64
    centers, idx = kmeans_plusplus(X, 5, random_state=0)
    dense_centers, dense_idx = kmeans_plusplus(X.toarray(), 5, random_state=0)
    np.testing.assert_array_equal(idx, dense_idx)
    np.testing.assert_array_equal(centers, X[idx].toarray())
    w = np.random.RandomState(0).uniform(0.5, 2, X.shape[0])
    _, idx_w = kmeans_plusplus(X, 5, random_state=0, sample_weight=w)
    _, dense_idx_w = kmeans_plusplus(X.toarray(), 5, random_state=0, sample_weight=w)
    np.testing.assert_array_equal(idx_w, dense_idx_w)


# --------------------------------------------------------------------------------------------
# parity with scikit-learn's sparse k-means from the same initial centers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,d,k,density,seed",
    [
        (400, 60, 4, 0.12, 0),
        (1000, 200, 8, 0.05, 1),
        (2000, 500, 12, 0.02, 2),
        (600, 40, 3, 0.3, 3),
    ],
)
def test_float64_parity_with_sklearn(n, d, k, density, seed):
    X, _ = sparse_blobs(n, d, k, density, seed)
    init = _init(X, k, seed)
    sk = SkKMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X)
    ours = KMeans(k, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-6, atol=1e-12)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    np.testing.assert_allclose(ours.transform(X), sk.transform(X), rtol=1e-6, atol=1e-9)


def test_weighted_parity_with_sklearn(data):
    X, _ = data
    w = np.random.RandomState(3).uniform(0.1, 3.0, X.shape[0])
    init = _init(X, 4, 5)
    sk = SkKMeans(4, init=init, n_init=1).fit(X, sample_weight=w)
    ours = KMeans(4, init=init).fit(X, sample_weight=w)
    np.testing.assert_array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-6, atol=1e-12)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)
    assert ours.score(X, sample_weight=w) == pytest.approx(sk.score(X, sample_weight=w), rel=1e-9)


def test_empty_clusters_are_refilled_as_dense(data):
    """Two equal initial centers leave a cluster empty: it is refilled with the farthest row,
    densifying only the rows moved, as on dense data."""
    X, _ = data
    init = _init(X, 5)
    init[4] = init[3]
    a = KMeans(5, init=init).fit(X)
    b = KMeans(5, init=init).fit(X.toarray())
    assert a.history_[0]["n_relocated"] == b.history_[0]["n_relocated"] == 1
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert len(np.unique(a.labels_)) == 5


# --------------------------------------------------------------------------------------------
# dtypes, weights, invariances
# --------------------------------------------------------------------------------------------


def test_float32_stays_float32(data):
    X, _ = data
    X32 = X.astype(np.float32)
    init = _init(X, 4)
    km = KMeans(4, init=init.astype(np.float32)).fit(X32)
    assert km.cluster_centers_.dtype == np.float32
    assert km.transform(X32).dtype == np.float32
    ref = KMeans(4, init=init).fit(X)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-6)
    t = KMeans(4, init=torch.tensor(init, dtype=torch.float32)).fit(_torch_csr(X32))
    assert t.cluster_centers_.dtype == torch.float32


def test_integer_data_becomes_float64_like_sklearn():
    X = sp.random(300, 30, density=0.2, random_state=0, format="csr", dtype=np.float64)
    Xi = X.copy()
    Xi.data = np.ceil(Xi.data * 5).astype(np.int64)
    km = KMeans(3, random_state=0).fit(Xi)
    assert km.cluster_centers_.dtype == np.float64
    ref = KMeans(3, random_state=0).fit(Xi.toarray().astype(np.float64))
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    b = KMeans(3, random_state=0).fit(Xi.astype(bool))
    assert b.cluster_centers_.dtype == np.float64


def test_weight_n_equals_n_repeats(data):
    X, _ = data
    w = np.random.RandomState(0).randint(1, 4, X.shape[0])
    repeated = sp.csr_matrix(np.repeat(X.toarray(), w, axis=0))
    init = _init(X, 4)
    a = KMeans(4, init=init).fit(X, sample_weight=w)
    b = KMeans(4, init=init).fit(repeated)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-10)
    np.testing.assert_array_equal(np.repeat(a.labels_, w), b.labels_)
    dense = KMeans(4, init=init).fit(X.toarray(), sample_weight=w)
    np.testing.assert_allclose(a.cluster_centers_, dense.cluster_centers_, rtol=1e-10, atol=1e-12)


def test_chunk_size_does_not_change_the_result(data):
    X, _ = data
    ref = KMeans(4, random_state=0).fit(X)
    for chunk in (7, 64, 1000):
        km = KMeans(4, random_state=0, chunk_size=chunk).fit(X)
        np.testing.assert_array_equal(km.labels_, ref.labels_)
        np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
        assert km.inertia_ == ref.inertia_


def test_init_size_checkpoint_and_callable_init(data, tmp_path):
    X, _ = data
    a = KMeans(4, random_state=0, init_size=120).fit(X)
    b = KMeans(4, random_state=0, init_size=120).fit(X.toarray())
    np.testing.assert_array_equal(a.labels_, b.labels_)
    ref = KMeans(4, random_state=0).fit(X)
    ckpt = tmp_path / "fit.ckpt"
    km = KMeans(4, random_state=0, checkpoint=ckpt).fit(X)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert not ckpt.exists()
    seen = []

    def init(Xc, k, random_state):
        seen.append(Xc)  # the caller's sparse matrix, as scikit-learn passes it
        return Xc[:k].toarray()

    km = KMeans(4, init=init, n_init=1).fit(X)
    assert seen[0] is X
    np.testing.assert_array_equal(km.labels_, KMeans(4, init=X[:4].toarray()).fit(X).labels_)


def test_caller_matrix_is_not_modified():
    # a CSR matrix with unsorted columns and a duplicate entry (scipy sums duplicates)
    data = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    indices = np.array([2, 0, 2, 1, 0, 1])
    indptr = np.array([0, 3, 4, 6])
    X = sp.csr_matrix((data, indices, indptr), shape=(3, 3))
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    km = KMeans(2, random_state=0, n_init=1).fit(X)
    np.testing.assert_array_equal(X.data, before[0])
    np.testing.assert_array_equal(X.indices, before[1])
    np.testing.assert_array_equal(X.indptr, before[2])
    ref = KMeans(2, random_state=0, n_init=1).fit(X.toarray())
    np.testing.assert_array_equal(km.labels_, ref.labels_)


def test_sparse_runs_the_torch_engine():
    assert engine_for(torch.device("cpu"), torch.float64, "euclidean", sparse=True) is TORCH


# --------------------------------------------------------------------------------------------
# cosine (spherical k-means on TF-IDF rows)
# --------------------------------------------------------------------------------------------


def test_cosine_on_tfidf_equals_dense_cosine():
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = [f"w{i}" for i in range(40)]
    rng = np.random.RandomState(0)
    docs = []
    for i in range(240):
        topic = i % 3
        docs.append(" ".join(rng.choice(words[topic * 12 : topic * 12 + 16], size=8)))
    X = TfidfVectorizer().fit_transform(docs)
    assert sp.issparse(X)
    init = _init(X, 3)
    a = KMeans(3, metric="cosine", init=init).fit(X)
    b = KMeans(3, metric="cosine", init=init).fit(X.toarray())
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(a.cluster_centers_, axis=1), 1.0, rtol=1e-12)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)
    np.testing.assert_allclose(a.transform(X), b.transform(X.toarray()), rtol=1e-7, atol=1e-7)
    c = KMeans(3, metric="cosine", random_state=0).fit(X)
    d = KMeans(3, metric="cosine", random_state=0).fit(X.toarray())
    np.testing.assert_array_equal(c.labels_, d.labels_)
    e = MiniBatchKMeans(3, metric="cosine", random_state=0, batch_size=64).fit(X)
    assert np.allclose(np.linalg.norm(e.cluster_centers_, axis=1), 1.0)


def test_cosine_zero_row_is_an_error(data):
    X, _ = data
    X = X.tolil()
    X[5, :] = 0
    with pytest.raises(DataError, match="row 5 .*all zeros"):
        KMeans(3, metric="cosine").fit(X.tocsr())


# --------------------------------------------------------------------------------------------
# MiniBatchKMeans
# --------------------------------------------------------------------------------------------


def test_minibatch_fit_equals_the_dense_fit(data):
    X, _ = data
    a = MiniBatchKMeans(4, random_state=0, batch_size=50).fit(X)
    b = MiniBatchKMeans(4, random_state=0, batch_size=50).fit(X.toarray())
    assert a.n_steps_ == b.n_steps_
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-8, atol=1e-12)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-8)


def test_minibatch_partial_fit(data):
    X, _ = data
    a = MiniBatchKMeans(4, random_state=0)
    b = MiniBatchKMeans(4, random_state=0)
    for start in range(0, X.shape[0], 100):
        a.partial_fit(X[start : start + 100])
        b.partial_fit(X[start : start + 100].toarray())
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(a.predict(X), b.predict(X.toarray()))
    t = MiniBatchKMeans(4, random_state=0).partial_fit(_torch_csr(X))
    assert isinstance(t.cluster_centers_, torch.Tensor)


# --------------------------------------------------------------------------------------------
# metrics and sweep_k
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_silhouette_matches_sklearn(data, metric):
    from sklearn.metrics import silhouette_samples, silhouette_score

    X, truth = data
    ours = metrics.silhouette_samples(X, truth, metric=metric)
    assert isinstance(ours, np.ndarray)
    dense = X.toarray()
    np.testing.assert_allclose(ours, silhouette_samples(dense, truth, metric=metric), atol=1e-9)
    if metric != "sqeuclidean":  # (scikit-learn takes sparse X for these two)
        np.testing.assert_allclose(ours, silhouette_samples(X, truth, metric=metric), atol=1e-9)
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, truth, metric=metric, chunk_size=37), ours, atol=1e-12
    )
    t = metrics.silhouette_samples(_torch_csr(X), torch.as_tensor(truth), metric=metric)
    np.testing.assert_allclose(to_numpy(t), ours, atol=1e-12)
    a = metrics.silhouette_score(X, truth, metric=metric, sample_size=150, random_state=1)
    b = silhouette_score(dense, truth, metric=metric, sample_size=150, random_state=1)
    assert a == pytest.approx(b, abs=1e-9)
    c = metrics.silhouette_score(
        _torch_csr(X), truth, metric=metric, sample_size=150, random_state=1
    )
    assert c == pytest.approx(b, abs=1e-9)


def test_calinski_harabasz_and_davies_bouldin_match_sklearn(data):
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    X, truth = data
    dense = X.toarray()
    for Xs in (X, sp.csc_array(X), _torch_csr(X), _torch_coo(X)):
        assert metrics.calinski_harabasz_score(Xs, truth) == pytest.approx(
            calinski_harabasz_score(dense, truth), rel=1e-9
        )
        assert metrics.davies_bouldin_score(Xs, truth) == pytest.approx(
            davies_bouldin_score(dense, truth), rel=1e-9
        )
    init = _init(X, 4)
    assert metrics.inertia(X, init) == pytest.approx(metrics.inertia(dense, init), rel=1e-10)


def test_sweep_k_equals_the_dense_sweep(data):
    X, _ = data
    a = sweep_k(X, [2, 3, 4, 5], random_state=0)
    b = sweep_k(X.toarray(), [2, 3, 4, 5], random_state=0)
    np.testing.assert_allclose(a.inertia, b.inertia, rtol=1e-9)
    np.testing.assert_allclose(a.silhouette, b.silhouette, atol=1e-9)
    np.testing.assert_allclose(a.calinski_harabasz, b.calinski_harabasz, rtol=1e-9)
    np.testing.assert_allclose(a.davies_bouldin, b.davies_bouldin, rtol=1e-9)
    assert a.best_k == b.best_k == 4


# --------------------------------------------------------------------------------------------
# the command line: .npz files written by scipy.sparse.save_npz
# --------------------------------------------------------------------------------------------


def test_cli_fits_and_predicts_a_save_npz_file(data, tmp_path, capsys):
    from torchkmeans.cli import main

    X, _ = data
    path = tmp_path / "data.npz"
    sp.save_npz(path, X)
    model = tmp_path / "model.safetensors"
    labels = tmp_path / "labels.npy"
    assert main(["fit", str(path), "-k", "4", "--seed", "0", "-o", str(model)]) == 0
    assert "fitted 4 clusters on 60 features" in capsys.readouterr().err
    assert main(["predict", str(model), str(path), "-o", str(labels)]) == 0
    ref = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(np.load(labels), ref.labels_)
    sp.save_npz(tmp_path / "csc.npz", sp.csc_array(X))
    assert main(["sweep", str(tmp_path / "csc.npz"), "--k", "2:4", "--seed", "0"]) == 0
    assert "suggested k" in capsys.readouterr().out
    plot = tmp_path / "clusters.png"
    pytest.importorskip("matplotlib")
    assert main(["fit", str(path), "-k", "4", "-o", str(model), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_read_table_tells_save_npz_from_savez(data, tmp_path):
    from torchkmeans.io import read_table

    X, _ = data
    sp.save_npz(tmp_path / "s.npz", X, compressed=False)
    np.savez(tmp_path / "d.npz", data=X.toarray())
    assert sp.issparse(read_table(str(tmp_path / "s.npz")).X)
    assert isinstance(read_table(str(tmp_path / "d.npz")).X, np.ndarray)


# --------------------------------------------------------------------------------------------
# bad sparse input
# --------------------------------------------------------------------------------------------


def _with_value(X, value):
    X = X.copy()
    X.data[7] = value
    return X


BAD = [
    (lambda X: _with_value(X, np.nan), DataError, r"contains NaN \(first at row \d+, column \d+"),
    (lambda X: _with_value(X, np.inf), DataError, "contains infinity"),
    (lambda X: sp.csr_matrix((0, 5)), DataError, "0 sample"),
    (lambda X: sp.csr_matrix((5, 0)), DataError, "0 feature"),
    (lambda X: sp.coo_array(np.ones(5)), DataError, "2-D"),
    (lambda X: X.astype(np.complex128), UnsupportedInputError, "Complex"),
    (
        lambda X: torch.sparse_coo_tensor(torch.zeros(3, 1, dtype=torch.long), [1.0], (2, 2, 2)),
        DataError,
        "2-D sparse tensor",
    ),
    (
        lambda X: torch.sparse_csr_tensor(
            torch.tensor([0, 1, 2]), torch.tensor([0, 9]), torch.tensor([1.0, 2.0]), (2, 3)
        ),
        DataError,
        "column index",
    ),
    (
        lambda X: torch.sparse_csr_tensor(
            torch.tensor([0, 2, 1]), torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), (2, 3)
        ),
        DataError,
        "row pointers",
    ),
]


@pytest.mark.parametrize("make,error,message", BAD)
def test_bad_sparse_input_is_a_clear_error(data, make, error, message):
    X, _ = data
    with pytest.raises(error, match=message):
        KMeans(2).fit(make(X))


def test_bad_sparse_input_after_fit(data):
    X, _ = data
    km = KMeans(2, random_state=0).fit(X)
    with pytest.raises(DataError, match="X has 59 features, but KMeans is expecting 60"):
        km.predict(X[:, :59])
    with pytest.raises(DataError, match="NaN"):
        km.predict(_with_value(X, np.nan))
    with pytest.raises(UnsupportedInputError, match="sparse"):
        KMeans(2).fit(X, sample_weight=sp.csr_matrix(np.ones((1, X.shape[0]))))

    class Loader:
        def __iter__(self):
            yield (torch.ones(3, 2).to_sparse_csr(),)

    with pytest.raises(UnsupportedInputError, match="batches of sparse rows"):
        KMeans(2).fit(Loader())


def test_errors_derive_from_the_base_class(data):
    X, _ = data
    with pytest.raises(torchkmeans.TorchKMeansError):
        KMeans(2).fit(_with_value(X, np.nan))
    with pytest.raises(ValueError):
        KMeans(2).fit(_with_value(X, np.nan))


# --------------------------------------------------------------------------------------------
# memory: the matrix is never made dense
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("mode", ["fit", "minibatch"])
def test_extra_memory_stays_far_below_the_dense_size(mode):
    """200,000 x 50,000 with ~0.1% stored values: dense it would be 80 GB; a fit's extra memory
    (k-means++, the moments, Lloyd, the final labels pass) stays within 64 MB + 10% of the sparse
    data + the dense K x D centers."""
    r = run_probe("sparse_memory_probe.py", 200_000, 50_000, 50, 10, "float64", mode)
    extra = r["extra"] - r["kept"]
    budget = 64 * MB + 0.10 * r["data"] + r["centers"]
    assert r["dense"] >= 80e9
    assert extra <= budget, f"{mode}: extra {extra / MB:.1f} MB > budget {budget / MB:.1f} MB"


# --------------------------------------------------------------------------------------------
# CUDA (torch's sparse kernels)
# --------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("make", [_torch_csr, _torch_coo])
def test_cuda_fit_equals_the_cpu_fit(data, make):
    X, _ = data
    init = _init(X, 4)
    cpu = KMeans(4, init=init).fit(X)
    km = KMeans(4, init=torch.tensor(init, device="cuda")).fit(make(X, "cuda"))
    assert km.cluster_centers_.device.type == "cuda"
    np.testing.assert_array_equal(to_numpy(km.labels_), cpu.labels_)
    np.testing.assert_allclose(
        to_numpy(km.cluster_centers_), cpu.cluster_centers_, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(to_numpy(km.predict(make(X, "cuda"))), cpu.predict(X))


@needs_cuda
def test_cuda_device_for_host_sparse_data(data):
    X, _ = data
    cpu = KMeans(4, random_state=0).fit(X)
    km = KMeans(4, random_state=0, device="cuda").fit(X)
    assert isinstance(km.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(km.labels_, cpu.labels_)
    np.testing.assert_allclose(km.cluster_centers_, cpu.cluster_centers_, rtol=1e-9, atol=1e-12)
    mb = MiniBatchKMeans(4, random_state=0, device="cuda").fit(X)
    assert mb.cluster_centers_.shape == (4, 60)
    s = metrics.silhouette_score(X, cpu.labels_, device="cuda")
    assert s == pytest.approx(metrics.silhouette_score(X, cpu.labels_), rel=1e-9)
