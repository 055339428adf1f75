"""Out-of-core sources: memory-mapped arrays and re-iterable sources of batches (DataLoader)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import torchkmeans as tk
from torchkmeans import DataError, KMeans, ParameterError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from probe import run_probe  # noqa: E402


def _blobs(n=3000, d=6, k=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


@pytest.fixture
def memmap_file(tmp_path):
    X = _blobs()
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, np.load(path, mmap_mode="r")


@pytest.mark.parametrize("chunk_size", [None, 257])
def test_memmap_fit_is_bit_identical_to_in_memory(memmap_file, chunk_size):
    X, mm = memmap_file
    init = X[[0, 10, 20, 30, 40]]
    a = KMeans(5, init=init, chunk_size=chunk_size).fit(X)
    b = KMeans(5, init=init, chunk_size=chunk_size).fit(mm)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert np.array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_
    assert np.array_equal(a.predict(X), b.predict(mm))
    assert np.array_equal(a.transform(X), b.transform(mm))
    assert a.score(X) == b.score(mm)


def test_memmap_seeding_on_sample_matches_in_memory_with_same_init_size(memmap_file):
    X, mm = memmap_file
    for init in ("k-means++", "random"):
        a = KMeans(5, init=init, init_size=500, random_state=3).fit(X)
        b = KMeans(5, init=init, init_size=500, random_state=3).fit(mm)
        assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
        assert np.array_equal(a.labels_, b.labels_)


def test_memmap_is_not_copied(memmap_file):
    from torchkmeans import _validation as v

    _, mm = memmap_file
    checked = v.check_array(mm)
    assert checked.out_of_core
    assert checked.X.data_ptr() == mm.__array_interface__["data"][0]


def test_default_init_size_is_documented_formula():
    from torchkmeans._functional import default_init_size

    assert default_init_size(10**9, 8, 256) == 2**18
    assert default_init_size(10**9, 32, 256) == 2**17
    assert default_init_size(10**9, 1024, 10) == (16 << 20) // (4 * 1024)
    assert default_init_size(10**9, 1024, 5000) == 15000
    assert default_init_size(1000, 2, 16) == 1000


def _loader(X, w=None, batch_size=256):
    t = torch.from_numpy(X)
    ds = TensorDataset(t) if w is None else TensorDataset(t, torch.from_numpy(w))
    return DataLoader(ds, batch_size=batch_size, shuffle=False)


@pytest.mark.parametrize("batch_size", [1, 100, 256, 5000])
def test_loader_fit_matches_in_memory(batch_size):
    X = _blobs(n=1200 if batch_size == 1 else 3000)
    init = X[[0, 10, 20, 30, 40]]
    a = KMeans(5, init=init).fit(X)
    b = KMeans(5, init=init).fit(_loader(X, batch_size=batch_size))
    assert isinstance(b.labels_, torch.Tensor)  # tensors in, tensors out
    np.testing.assert_allclose(b.cluster_centers_.numpy(), a.cluster_centers_, rtol=1e-12)
    assert np.array_equal(b.labels_.numpy(), a.labels_)
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-12)
    assert b.n_iter_ == a.n_iter_


def test_weighted_loader_matches_sample_weight():
    X = _blobs()
    w = np.random.default_rng(1).integers(0, 4, len(X)).astype(np.float64)
    init = X[[0, 10, 20, 30, 40]]
    a = KMeans(5, init=init).fit(X, sample_weight=w)
    b = KMeans(5, init=init).fit(_loader(X, w, batch_size=333))
    np.testing.assert_allclose(b.cluster_centers_.numpy(), a.cluster_centers_, rtol=1e-12)
    assert np.array_equal(b.labels_.numpy(), a.labels_)
    assert b.inertia_ == pytest.approx(a.inertia_, rel=1e-12)
    assert b.score(_loader(X, w)) == pytest.approx(a.score(X, sample_weight=w), rel=1e-12)


def test_loader_of_plain_tensors_and_numpy_batches():
    X = _blobs()

    class Batches:
        """A re-iterable source of numpy batches (not a DataLoader)."""

        def __iter__(self):
            for s in range(0, len(X), 700):
                yield X[s : s + 700]

    init = X[[0, 10, 20, 30, 40]]
    a = KMeans(5, init=init).fit(X)
    b = KMeans(5, init=init).fit(Batches())
    assert isinstance(b.labels_, np.ndarray)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.predict(X), b.predict(Batches()))
    assert b.transform(Batches()).shape == (len(X), 5)
    plain = DataLoader(torch.from_numpy(X), batch_size=128)  # batches are bare tensors
    assert np.array_equal(KMeans(5, init=init).fit(plain).labels_.numpy(), a.labels_)


def test_loader_labels_follow_source_order():
    X = _blobs()
    perm = np.random.default_rng(0).permutation(len(X))
    km = KMeans(5, random_state=0).fit(X)
    labels = km.predict(_loader(X[perm]))
    assert np.array_equal(labels.numpy(), km.labels_[perm])


def test_loader_seeding_reads_a_sample_and_is_reproducible():
    X = _blobs(n=4000)
    a = KMeans(5, random_state=0, init_size=600).fit(_loader(X))
    b = KMeans(5, random_state=0, init_size=600).fit(_loader(X, batch_size=999))
    c = KMeans(5, random_state=0, init_size=600).fit(X)
    np.testing.assert_allclose(a.cluster_centers_.numpy(), b.cluster_centers_.numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.cluster_centers_.numpy(), c.cluster_centers_, rtol=1e-12)
    rand = KMeans(5, init="random", random_state=0, init_size=600).fit(_loader(X))
    assert np.isfinite(rand.inertia_)


def test_kmeans_function_and_plusplus_accept_loaders():
    X = _blobs()
    res = tk.kmeans(_loader(X), 5, random_state=0)
    assert res.labels.shape == (len(X),)
    centers, idx = tk.kmeans_plusplus(_loader(X), 5, random_state=0)
    c2, i2 = tk.kmeans_plusplus(X, 5, random_state=0)
    assert np.array_equal(idx.numpy(), i2)


def _gen():
    yield torch.zeros(3, 2)


class _Changing:
    def __init__(self):
        self.calls = 0

    def __iter__(self):
        self.calls += 1
        n = 100 if self.calls == 1 else 90
        g = torch.Generator().manual_seed(0)
        yield torch.randn(n, 2, generator=g)


@pytest.mark.parametrize(
    "source,match",
    [
        (_gen(), "one-shot iterator"),
        (DataLoader(TensorDataset(torch.zeros(10, 2), torch.ones(10), torch.ones(10))), "3 items"),
    ],
)
def test_bad_sources(source, match):
    with pytest.raises(DataError, match=match):
        KMeans(2).fit(source)


def test_loader_errors_are_clear():
    x = torch.randn(100, 3)
    bad = x.clone()
    bad[57, 1] = float("nan")
    with pytest.raises(DataError, match=r"batch starting at row 50.*NaN.*row 7, column 1"):
        KMeans(2).fit(DataLoader(TensorDataset(bad), batch_size=50))

    class Ragged:
        def __iter__(self):
            yield torch.zeros(5, 3)
            yield torch.zeros(5, 4)

    with pytest.raises(DataError, match="has 4 features, the first batch had 3"):
        KMeans(2).fit(Ragged())
    with pytest.raises(DataError, match="negative"):
        KMeans(2).fit(DataLoader(TensorDataset(x, -torch.ones(100)), batch_size=10))
    with pytest.raises(ParameterError, match="sample_weight cannot be passed"):
        KMeans(2).fit(DataLoader(TensorDataset(x)), sample_weight=np.ones(100))
    with pytest.raises(DataError, match="has 90 rows in this pass but 100 in the first one"):
        KMeans(2, random_state=0).fit(_Changing())

    class Empty:
        def __iter__(self):
            return iter([])

    with pytest.raises(DataError, match="no rows"):
        KMeans(2).fit(Empty())
    km = KMeans(2, random_state=0).fit(x)
    with pytest.raises(DataError, match="expecting 3 features"):
        km.predict(DataLoader(TensorDataset(torch.zeros(4, 5))))


@pytest.fixture(scope="module")
def big_memmap(tmp_path_factory):
    """A 307 MB float32 file (2.4M x 32), written block by block."""
    path = tmp_path_factory.mktemp("big") / "x.npy"
    n, d = 2_400_000, 32
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5.0, size=(16, d)).astype(np.float32)
    for s in range(0, n, 200_000):
        noise = rng.normal(size=(200_000, d)).astype(np.float32)
        mm[s : s + 200_000] = centers[rng.integers(0, 16, 200_000)] + noise
    mm.flush()
    del mm
    yield path
    path.unlink()


@pytest.mark.parametrize("mode", ["kmeans", "minibatch", "predict"])
def test_memmap_fit_anonymous_memory_is_bounded(big_memmap, mode):
    r = run_probe("anon_probe.py", big_memmap, 16, mode)
    extra = r["extra"] - r["kept"]
    assert extra <= 64 * MB, f"{mode}: {extra / MB:.1f} MB anonymous beyond the labels"


MB = 1 << 20


def _loader_fit(source, **kw):
    return KMeans(3, random_state=0, init="random", n_init=1, **kw).fit(source)


def test_a_shuffling_loader_is_refused():
    x = torch.randn(600, 3, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(x), batch_size=100, shuffle=True)
    with pytest.raises(DataError, match="changed between passes.*shuffle=False"):
        _loader_fit(loader)
    _loader_fit(DataLoader(TensorDataset(x), batch_size=100))  # the same rows: fine


class _LaterPass:
    """Yields x on the first pass and ``later(x)`` on the others."""

    def __init__(self, later):
        self.later, self.calls = later, 0
        self.x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))

    def __iter__(self):
        self.calls += 1
        x = self.x if self.calls == 1 else self.later(self.x.clone())
        yield from (x[:100], x[100:])


def _nan_in_row_150(x):
    x[150, 1] = float("nan")
    return x


@pytest.mark.parametrize(
    "later, match",
    [
        (_nan_in_row_150, "row 100 contains NaN or infinity; it did not in the first pass"),
        (lambda x: torch.cat([x, x[:, :1]], dim=1), "has shape \\(100, 4\\).*3 features"),
        (lambda x: x.flip(0), "holds other rows than in the first pass"),
        (lambda x: x + 1e-3, "holds other rows than in the first pass"),
    ],
)
def test_a_source_that_changes_between_passes_is_refused(later, match):
    with pytest.raises(DataError, match=match):
        _loader_fit(_LaterPass(later))


def test_integer_second_elements_are_not_taken_as_weights():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (100,))
    with pytest.raises(
        DataError, match=r"class labels \(TensorDataset\(X, y\)\).*TensorDataset\(X\)"
    ):
        _loader_fit(DataLoader(TensorDataset(x, y), batch_size=25))
    w = torch.rand(100, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    _loader_fit(DataLoader(TensorDataset(x, w), batch_size=25))  # float weights: fine
