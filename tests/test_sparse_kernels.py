"""The native kernels of sparse rows (csrc/sparse_impl.h): products with the centers and the
per-cluster sums, against torch's sparse kernels and dense arithmetic; the decision that uses
them; fits that do not depend on the engine or the thread count."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torchkmeans import KMeans
from torchkmeans._engines import _kernels, _library, dispatch

needs_native = pytest.mark.skipif(
    _library.library() is None, reason="installed without the native kernels"
)


def random_csr(n, d, density, dtype, index_dtype, seed=0):
    """A torch CSR tensor with empty rows among the others."""
    m = sp.random(n, d, density=density, format="csr", random_state=seed, dtype=np.float64)
    m = sp.diags((np.arange(n) % 5 != 0).astype(np.float64)) @ m  # every fifth row empty
    m = sp.csr_matrix(m)
    m.sort_indices()
    with warnings.catch_warnings():  # (torch's "CSR support is in beta" notice)
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(index_dtype)),
            torch.from_numpy(m.indices.astype(index_dtype)),
            torch.from_numpy(m.data).to(dtype),
            size=(n, d),
        )


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("k", [1, 3, 4, 7, 8, 20, 31, 32, 33, 64, 65, 100])
def test_products_equal_the_dense_product(dtype, index_dtype, k):
    x = random_csr(300, 70, 0.1, dtype, index_dtype, seed=k)
    ct = torch.randn(70, k, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    got = _kernels.sparse_matmul(x, ct.to(dtype))
    want = x.to_dense().to(torch.float64) @ ct.to(dtype).to(torch.float64)
    assert got.dtype == dtype and got.shape == (300, k)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got.to(torch.float64), want, rtol=tol, atol=tol)
    assert bool((got[::5] == 0).all())  # the empty rows


@needs_native
def test_products_of_a_non_contiguous_center_matrix_and_no_rows():
    x = random_csr(50, 30, 0.2, torch.float64, np.int64)
    c = torch.randn(9, 30, dtype=torch.float64)
    got = _kernels.sparse_matmul(x, c.t())  # a transposed view
    torch.testing.assert_close(got, x.to_dense() @ c.t(), rtol=1e-12, atol=1e-12)
    empty = random_csr(0, 30, 0.2, torch.float64, np.int64)
    assert _kernels.sparse_matmul(empty, c.t()).shape == (0, 9)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_products_and_sums_do_not_depend_on_the_thread_count(dtype, threads):
    x = random_csr(4000, 500, 0.05, dtype, np.int32)
    ct = torch.randn(500, 40, dtype=dtype)
    labels = torch.randint(0, 40, (4000,), generator=torch.Generator().manual_seed(0))
    w = torch.rand(4000, dtype=dtype)
    out = {}
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        sums = torch.zeros(40, 500, dtype=torch.float64)
        _kernels.sparse_sums(sums, labels, x, w)
        out[n] = (_kernels.sparse_matmul(x, ct), sums)
    for n in (2, 3):
        assert torch.equal(out[n][0], out[1][0])
        assert torch.equal(out[n][1], out[1][1])


@needs_native
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sums_are_the_additions_of_torchs_sequential_index_add(weighted, dtype, monkeypatch):
    from torchkmeans import _sparse

    x = random_csr(2000, 300, 0.05, dtype, np.int64, seed=3)
    labels = torch.randint(0, 7, (2000,), generator=torch.Generator().manual_seed(1))
    w = torch.rand(2000, dtype=dtype) if weighted else None
    native = torch.zeros(7, 300, dtype=torch.float64)
    _sparse.add_rows_(native, labels, x, w)
    monkeypatch.setattr(_sparse, "native", lambda device, dtype: False)
    reference = torch.zeros(7, 300, dtype=torch.float64)
    _sparse.add_rows_(reference, labels, x, w)
    assert torch.equal(native, reference)


def rows_with_ties(dtype, index_dtype):
    """Sparse rows and centers with exact ties: rows equidistant from two centers, duplicate
    centers, rows on a center, empty rows, and random rows (products of every tile width)."""
    x = random_csr(400, 60, 0.1, dtype, index_dtype, seed=5).to_dense()
    centers = x[[1, 2, 3, 4, 6, 7, 8, 9, 12]].clone()  # rows of the data (ties at 0 too)
    centers[3] = centers[1]  # duplicate centers: every row ties between 1 and 3
    x[10] = centers[4]  # a row on a center
    x[11, :] = 0
    x[11, 0] = 1.0
    centers[5], centers[6] = 0 * centers[5], 0 * centers[6]
    centers[5, 0], centers[6, 0] = 0.5, 1.5  # row 11 is equidistant from 5 and 6
    idx = torch.int64 if index_dtype == np.int64 else torch.int32
    return x.to_sparse_csr().to(dtype), centers, idx


@needs_native
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_fused_sparse_assignment_equals_the_torch_steps(metric, dtype, index_dtype, monkeypatch):
    from torchkmeans import _distance, _sparse

    x, centers, idx = rows_with_ties(dtype, index_dtype)
    x = _sparse.csr(x.crow_indices().to(idx), x.col_indices().to(idx), x.values(), tuple(x.shape))
    if metric == "cosine":
        nonzero = torch.arange(x.shape[0]) % 5 != 0
        x = _sparse.select_rows(x, nonzero.nonzero().flatten())
        centers = centers / centers.norm(dim=1, keepdim=True)
    pc = _distance.PreparedCenters(centers, metric, None, sparse=True)
    xs = _distance.prepare_rows(x, metric, pc.shift)
    labels, dist = _distance.assign(xs, pc)  # fused in the native kernel
    # the torch engine's steps on the same (native) products
    want_labels, want_dist, _ = _distance.assign_with_bound(xs, pc)
    assert torch.equal(labels, want_labels)
    assert torch.equal(dist, want_dist)
    if metric == "euclidean":
        assert int(labels[10]) == 4 and float(dist[10]) <= 1e-5
        assert int(labels[11]) == 5  # the tie goes to the lower index
    assert not bool((labels == 3).any())  # a duplicate center never wins over the first copy
    monkeypatch.setattr(_sparse, "native", lambda device, dtype: False)
    xs_torch = _distance.prepare_rows(x, metric, pc.shift)
    assert torch.equal(xs.values(), xs_torch.values())  # the same unit rows (division)
    torch_labels, torch_dist = _distance.assign(xs_torch, pc)  # torch's products too
    assert torch.equal(labels, torch_labels)
    torch.testing.assert_close(dist, torch_dist)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_division_is_torchs_division(dtype):
    x = random_csr(500, 80, 0.1, dtype, np.int32, seed=4)
    div = torch.rand(500, dtype=dtype) + 0.1
    got = _kernels.divide_rows(x, div)
    counts = (x.crow_indices()[1:] - x.crow_indices()[:-1]).to(torch.int64)
    want = x.values() / torch.repeat_interleave(div, counts)
    assert torch.equal(got, want)


@needs_native
@pytest.mark.parametrize(
    "device, dtype, setting, expected",
    [
        ("cpu", torch.float64, "1", True),
        ("cpu", torch.float32, "generic", True),
        ("cpu", torch.float32, "0", False),
        ("cpu", torch.float16, "1", False),
        ("meta", torch.float32, "1", False),
    ],
)
def test_the_decision(device, dtype, setting, expected, monkeypatch):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", setting)
    assert dispatch.sparse_products_native(torch.device(device), dtype) is expected


def tfidf_like(n, d, seed=0):
    """Documents of Zipf-distributed terms, idf-weighted, rows of unit length."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 6, n)
    rows, cols = [], []
    for i in range(n):
        terms = (rng.zipf(1.3, size=rng.integers(5, 40)) - 1 + 17 * topic[i]) % d
        rows.append(np.full(terms.size, i))
        cols.append(terms)
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n, d))
    counts.sum_duplicates()
    idf = np.log((1 + n) / (1 + np.bincount(counts.indices, minlength=d))) + 1
    X = sp.csr_matrix(counts.multiply(idf))
    return sp.csr_matrix(sp.diags(1 / np.sqrt(X.multiply(X).sum(axis=1).A1)) @ X)


@needs_native
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_sparse_fits_native_and_torch_agree_and_ignore_threads(metric, monkeypatch, threads):
    X = tfidf_like(3000, 400)
    w = np.random.default_rng(0).random(3000) + 0.5
    fits = {}
    for setting, n_threads in (("1", 2), ("1", 1), ("0", 2)):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", setting)
        torch.set_num_threads(n_threads)
        fits[setting, n_threads] = KMeans(8, metric=metric, random_state=0).fit(X, sample_weight=w)
    a, b, ref = fits["1", 2], fits["1", 1], fits["0", 2]
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    np.testing.assert_array_equal(a.labels_, ref.labels_)
    np.testing.assert_allclose(a.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert a.n_iter_ == ref.n_iter_
    assert a.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)
