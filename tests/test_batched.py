"""kmeans_batched: each problem is kmeans() on its own, with the documented per-problem seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from torchkmeans import DataError, ParameterError, kmeans, kmeans_batched


def _problems(b=4, n=300, d=3, k=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(b):
        centers = rng.normal(size=(k, d)) * 6
        out.append(centers[rng.integers(0, k, n)] + rng.normal(size=(n, d)))
    return np.stack(out).astype(dtype)


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a.centers), np.asarray(b.centers))
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    assert a.inertia == b.inertia and a.n_iter == b.n_iter


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_each_problem_is_kmeans_alone_with_seed_plus_b(dtype, init):
    X = _problems(dtype=dtype)
    got = kmeans_batched(X, 4, init=init, random_state=7)
    assert got.centers.shape == (4, 4, 3) and got.centers.dtype == dtype
    assert got.labels.shape == (4, 300) and got.inertia.shape == (4,) and got.n_iter.shape == (4,)
    for b in range(4):
        alone = kmeans(X[b], 4, init=init, n_init=1, random_state=7 + b)
        np.testing.assert_array_equal(got.centers[b], alone.centers)
        np.testing.assert_array_equal(got.labels[b], alone.labels)
        assert got.inertia[b] == alone.inertia and got.n_iter[b] == alone.n_iter


def test_problems_converge_on_their_own():
    X = _problems()
    X[2] = X[2][:, :1].repeat(3, axis=1) * 0 + np.arange(300)[:, None] % 4  # 4 exact points
    got = kmeans_batched(X, 4, random_state=0, tol=0.0)
    assert got.n_iter[2] <= 2  # exact points: converged at once, while others go on
    assert len(set(got.n_iter.tolist())) > 1


def test_ragged_problems_give_a_list_of_labels():
    X = _problems()
    ragged = [X[0][:100], X[1], X[2][:250]]
    got = kmeans_batched(ragged, 3, random_state=1)
    assert isinstance(got.labels, list) and [len(lab) for lab in got.labels] == [100, 300, 250]
    assert got.centers.shape == (3, 3, 3)
    for b, x in enumerate(ragged):
        np.testing.assert_array_equal(got.labels[b], kmeans(x, 3, random_state=1 + b).labels)


def test_tensors_in_tensors_out_with_weights_and_explicit_init():
    X = torch.as_tensor(_problems(b=3))
    w = torch.rand(3, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    init = X[:, :4].clone()
    got = kmeans_batched(X, 4, sample_weight=w, init=init)
    assert isinstance(got.centers, torch.Tensor) and got.centers.shape == (3, 4, 3)
    assert isinstance(got.labels, torch.Tensor) and got.labels.shape == (3, 300)
    assert isinstance(got.inertia, torch.Tensor) and got.n_iter.dtype == torch.int64
    for b in range(3):
        alone = kmeans(X[b], 4, sample_weight=w[b], init=init[b])
        torch.testing.assert_close(got.centers[b], alone.centers, rtol=0, atol=0)
        assert float(got.inertia[b]) == alone.inertia


def test_cosine_and_empty_clusters_per_problem():
    X = _problems(b=2)
    X[1, :, :] += 50.0  # far from the origin: cosine still works per problem
    init = np.stack([X[0][:4], np.vstack([X[1][:3], [[1e6, 1e6, 1e6]]])])  # one far center
    got = kmeans_batched(X, 4, init=init, metric="cosine")
    for b in range(2):
        alone = kmeans(X[b], 4, init=init[b], metric="cosine")
        np.testing.assert_array_equal(got.labels[b], alone.labels)
    eu = kmeans_batched(X, 4, init=init)
    assert np.isfinite(eu.centers).all() and len(np.unique(eu.labels[1])) == 4


def test_generators_give_documented_seeds():
    X = _problems(b=2)
    rs = np.random.RandomState(3)
    seeds = np.random.RandomState(3).randint(0, np.iinfo(np.int32).max, size=2)
    got = kmeans_batched(X, 4, random_state=rs)
    for b in range(2):
        _ = kmeans(X[b], 4, random_state=int(seeds[b]))
        np.testing.assert_array_equal(got.labels[b], _.labels)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda X: kmeans_batched(X[0], 2), DataError, r"\(B, N, D\) array .* shape \(300, 3\)"),
        (lambda X: kmeans_batched([], 2), DataError, "empty list"),
        (lambda X: kmeans_batched(X, 0), ParameterError, "n_clusters must be an integer >= 1"),
        (lambda X: kmeans_batched(X, 2, metric="l1"), ParameterError, "metric must be one of"),
        (lambda X: kmeans_batched(X, 500), DataError, r"^problem 0: n_samples=300 should be >="),
        (
            lambda X: kmeans_batched(np.concatenate([X[:2], X[2:3] * np.nan]), 2),
            DataError,
            r"^problem 2: Input X contains NaN",
        ),
        (
            lambda X: kmeans_batched(X, 2, sample_weight=np.ones((3, 300))),
            DataError,
            r"sample_weight has 3 entries, expected one per problem \(4\)",
        ),
        (
            lambda X: kmeans_batched(X, 2, init=np.zeros((4, 3, 3))),
            DataError,
            r"^problem 0: The shape of the initial centers \(3, 3\) does not match",
        ),
        (
            lambda X: kmeans_batched([X[0], torch.as_tensor(X[1])], 2),
            DataError,
            "mixes tensors and arrays",
        ),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_problem(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_problems())


# ---- the native batch engine (torchkmeans._engines.native_batch) ----------------------------

needs_native = pytest.mark.skipif(
    __import__("torchkmeans._engines._library", fromlist=["library"]).library() is None,
    reason="installed without the native kernels",
)


@pytest.fixture
def spy(monkeypatch):
    """Records the problem count of every native batch fit (proof that the engine ran)."""
    from torchkmeans._engines import native_batch

    calls = []
    real = native_batch.fit_many

    def recording(*args, **kwargs):
        fit = real(*args, **kwargs)
        calls.append(len(fit.n_iter))
        return fit

    monkeypatch.setattr(native_batch, "fit_many", recording)
    return calls


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _equal_to_alone(got, X, k, **kwargs):
    seed = kwargs.pop("random_state", None)
    init = kwargs.pop("init", "k-means++")
    w = kwargs.pop("sample_weight", None)
    for b in range(len(X)):
        alone = kmeans(
            X[b], k, init=init if isinstance(init, str) else init[b], n_init=1,
            random_state=None if seed is None else seed + b,
            sample_weight=None if w is None else w[b], **kwargs,
        )  # fmt: skip
        np.testing.assert_array_equal(np.asarray(got.centers[b]), np.asarray(alone.centers))
        np.testing.assert_array_equal(np.asarray(got.labels[b]), np.asarray(alone.labels))
        assert float(got.inertia[b]) == alone.inertia, b
        assert int(got.n_iter[b]) == alone.n_iter, b


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [2, 20])
@pytest.mark.parametrize("init", ["k-means++", "random", "array"])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_batch_equals_kmeans_alone(dtype, d, init, weighted, spy, two_threads):
    X = _problems(b=6, n=257, d=d, k=5, seed=d, dtype=dtype)
    w = np.random.default_rng(1).random((6, 257)).astype(dtype) if weighted else None
    start = X[:, 10:15].copy() if init == "array" else init
    got = kmeans_batched(X, 5, init=start, random_state=11, sample_weight=w, tol=1e-6)
    assert spy == [6]  # fitted together, none left to refit
    assert got.centers.dtype == dtype and got.labels.dtype == np.int64
    _equal_to_alone(got, X, 5, init=start, random_state=11, sample_weight=w, tol=1e-6)


@needs_native
def test_native_batch_equals_the_per_pass_fit_of_large_problems(spy, two_threads):
    # n * k * d above the native engine's whole-loop size: alone, each fit runs pass by pass
    X = _problems(b=4, n=2048, d=40, k=256, seed=3, dtype=np.float32)
    got = kmeans_batched(torch.as_tensor(X), 256, random_state=0, max_iter=6)
    assert spy == [4]
    _equal_to_alone(got, torch.as_tensor(X), 256, random_state=0, max_iter=6)


@needs_native
def test_native_batch_with_fused_stripes(spy, two_threads):
    # enough rows and features for the fused (per-stripe) accumulation of the single fit
    X = _problems(b=4, n=4 * 8192 + 5, d=17, k=5, seed=4)
    got = kmeans_batched(X, 5, random_state=2, max_iter=4)
    assert spy == [4]
    _equal_to_alone(got, X, 5, random_state=2, max_iter=4)


@needs_native
def test_empty_clusters_are_refilled_as_kmeans_refills_them(spy, two_threads, monkeypatch):
    from torchkmeans._engines import native_batch

    refills = []
    real = native_batch._refill

    def recording(x, w, b, centers, state):
        refills.append(b)
        return real(x, w, b, centers, state)

    monkeypatch.setattr(native_batch, "_refill", recording)
    X = _problems(b=4)
    init = X[:, :4].copy()
    init[2, 3] = 1e6  # problem 2: this center gets no row in the first pass
    init[0, 1:3] = -1e6  # problem 0: two of them
    got = kmeans_batched(X, 4, init=init, tol=0.0)
    assert spy == [4] and sorted(refills) == [0, 2]
    _equal_to_alone(got, X, 4, init=init, tol=0.0)
    assert len(np.unique(got.labels[2])) == 4 and len(np.unique(got.labels[0])) == 4


@needs_native
def test_native_batch_does_not_depend_on_the_threads(spy):
    X = _problems(b=9, n=500, d=6, k=7, seed=5)
    before = torch.get_num_threads()
    try:
        fits = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            fits.append(kmeans_batched(X, 7, random_state=4))
    finally:
        torch.set_num_threads(before)
    assert len(spy) == 3
    for other in fits[1:]:
        np.testing.assert_array_equal(fits[0].centers, other.centers)
        np.testing.assert_array_equal(fits[0].labels, other.labels)
        np.testing.assert_array_equal(fits[0].n_iter, other.n_iter)


@needs_native
def test_a_problem_with_fewer_distinct_points_warns_naming_it(spy, two_threads):
    X = _problems(b=4)
    X[3] = 1.0  # one distinct point
    with pytest.warns(Warning, match=r"problem 3 \(1\): Number of distinct clusters") as seen:
        got = kmeans_batched(X, 4, random_state=0)
    assert spy and got.inertia[3] == 0.0
    X[1] = 2.0
    with pytest.warns(Warning, match=r"problems 1 \(1\), 3 \(1\): Number of distinct") as seen:
        kmeans_batched(X, 4, random_state=0)
    assert len([w for w in seen if "distinct" in str(w.message)]) == 1  # one for all


@needs_native
@pytest.mark.parametrize(
    "variant", ["float32 as float64", "transposed", "reversed", "read-only", "memory map"]
)
def test_inputs_stored_otherwise_still_equal_kmeans(variant, spy, two_threads, tmp_path):
    X = _problems(b=4, n=200, d=20, k=3, seed=6, dtype=np.float32)
    kwargs = {}
    if variant == "float32 as float64":
        kwargs["dtype"] = "float64"
    elif variant == "transposed":  # the features are not the last, unit-stride axis in memory
        X = np.ascontiguousarray(X.transpose(0, 2, 1)).transpose(0, 2, 1)
    elif variant == "reversed":
        X = X[:, ::-1]
    elif variant == "read-only":
        X.setflags(write=False)
    else:
        np.save(tmp_path / "x.npy", X)
        X = np.load(tmp_path / "x.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no warning about a read-only array, say)
        got = kmeans_batched(X, 3, random_state=5, **kwargs)
    if variant == "read-only":
        assert spy == [4]  # wrapped without a copy, never written
    else:
        assert spy == []  # routed to the per-problem path: every problem as kmeans reads it
    _equal_to_alone(got, X, 3, random_state=5, **kwargs)


@needs_native
def test_both_paths_warn_alike_about_fewer_distinct_clusters(spy, two_threads, monkeypatch):
    from torchkmeans._engines import dispatch

    X = _problems(b=4)
    X[1], X[3] = 2.0, 1.0
    messages = []
    for native in (True, False):  # the native batch, then the per-problem path
        if not native:
            monkeypatch.setattr(dispatch, "native_batch", lambda *args: False)
        with pytest.warns(Warning) as seen:
            kmeans_batched(X, 4, random_state=0)
        messages.append([str(w.message) for w in seen if "distinct" in str(w.message)])
    assert len(spy) == 1
    assert messages[0] == messages[1] and len(messages[0]) == 1
    assert messages[0][0].startswith("problems 1 (1), 3 (1): Number of distinct clusters")


@needs_native
@pytest.mark.parametrize("init", ["k-means++", "random", "array"])
def test_ragged_problems_run_natively_and_equal_kmeans_alone(init, spy, two_threads):
    rng = np.random.default_rng(9)
    X = [
        (rng.normal(size=(n, 6)) + rng.integers(0, 5, size=(n, 1)) * 4).astype(np.float32)
        for n in (50, 333, 1000, 7, 128)
    ]
    w = [rng.random(len(x)).astype(np.float32) + 0.1 for x in X]
    start = [x[:5].copy() for x in X] if init == "array" else init
    if init == "array":
        start[1][4] = 1e4  # an empty cluster to refill in problem 1
    got = kmeans_batched(X, 5, init=start, sample_weight=w, random_state=3)
    assert spy == [5]
    assert [len(lab) for lab in got.labels] == [50, 333, 1000, 7, 128]
    _equal_to_alone(got, X, 5, init=start, sample_weight=w, random_state=3)
