"""The native CPU kernels (csrc/, built at install) against the torch path and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchkmeans import KMeans, kmeans_plusplus
from torchkmeans._bounds import Bounds, Workspace
from torchkmeans._distance import PreparedCenters
from torchkmeans._engines import _library
from torchkmeans._engines.dispatch import engine_for
from torchkmeans._engines.native_engine import NativeEngine
from torchkmeans._engines.torch_engine import half_gaps
from torchkmeans._sources import TensorSource

needs_native = pytest.mark.skipif(
    _library.library() is None,
    reason="installed without the native kernels (no C compiler at build time)",
)


def accumulate(src, pc, labels, ws, **kw):
    """A pass by the engine TORCHKMEANS_NATIVE selects."""
    return engine_for(src.device, src.dtype, pc.metric).accumulate(src, pc, labels, ws, **kw)


def _blobs(n, d, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


def _pass(X, centers, monkeypatch, native, weights=None, chunk_size=1000):
    monkeypatch.setenv("TORCHKMEANS_NATIVE", "1" if native else "0")
    x = torch.as_tensor(X)
    w = None if weights is None else torch.as_tensor(weights, dtype=x.dtype)
    src = TensorSource(x, w, device=torch.device("cpu"), dtype=x.dtype, chunk_size=chunk_size)
    pc = PreparedCenters(torch.as_tensor(centers), "euclidean", x.mean(0))
    labels = torch.full((x.shape[0],), -1, dtype=torch.long)
    ws = Workspace(chunk_size, centers.shape[0], x.dtype, x.device)
    stats = accumulate(src, pc, labels, ws)
    return labels, stats


@needs_native
@pytest.mark.parametrize("d", [1, 2, 7, 16, 17, 64, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_pass_matches_the_torch_pass(d, dtype, weighted, monkeypatch):
    k = 37
    X = _blobs(3000, d, k, dtype)
    centers = X[np.random.default_rng(1).choice(len(X), k, replace=False)]
    w = np.random.default_rng(2).random(len(X)).astype(dtype) if weighted else None
    if w is not None:
        w[::7] = 0.0
    la, sa = _pass(X, centers, monkeypatch, True, w)
    lb, sb = _pass(X, centers, monkeypatch, False, w)
    torch.testing.assert_close(la, lb, rtol=0, atol=0)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    torch.testing.assert_close(sa.sums, sb.sums, rtol=rtol, atol=rtol * float(sb.sums.abs().max()))
    torch.testing.assert_close(sa.weights, sb.weights, rtol=1e-12, atol=0)
    torch.testing.assert_close(sa.counts, sb.counts, rtol=0, atol=0)
    torch.testing.assert_close(sa.inertia, sb.inertia, rtol=rtol, atol=rtol)
    assert int(sa.changed) == int(sb.changed) == len(X)


@needs_native
@pytest.mark.parametrize("d", [2, 40])
def test_native_labels_are_the_exact_nearest_center_with_ties_to_the_lowest_index(d, monkeypatch):
    rng = np.random.default_rng(3)
    centers = rng.integers(-3, 4, size=(25, d)).astype(np.float64)
    centers[7] = centers[3]  # a duplicate center: its twin with the lower index wins
    X = rng.integers(-4, 5, size=(4000, d)).astype(np.float64)  # many exact ties
    labels, stats = _pass(X, centers, monkeypatch, True)
    dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels.numpy(), dist.argmin(axis=1))
    assert not (labels == 7).any()
    np.testing.assert_allclose(float(stats.inertia.sum()), dist.min(axis=1).sum(), rtol=1e-12)


@needs_native
def test_native_pass_reads_rows_with_a_stride_and_one_cluster(monkeypatch):
    big = torch.as_tensor(_blobs(2000, 24, 5, np.float32))
    X = big[:, :10]  # rows are 24 apart in memory
    assert X.stride(0) == 24
    la, sa = _pass(X, X[:4].clone().numpy(), monkeypatch, True)
    lb, sb = _pass(X.contiguous(), X[:4].clone().numpy(), monkeypatch, False)
    torch.testing.assert_close(la, lb, rtol=0, atol=0)
    torch.testing.assert_close(sa.sums, sb.sums, rtol=1e-5, atol=1e-3)
    one, stats = _pass(X, X[:1].clone().numpy(), monkeypatch, True)
    assert (one == 0).all() and float(stats.counts[0]) == 2000


@needs_native
@pytest.mark.parametrize("n, d", [(5000, 3), (5000, 50), (40000, 50)])  # (last: fused sums)
def test_native_pruned_pass_skips_rows_and_keeps_every_value(n, d, monkeypatch):
    """After one pass with bounds, a pass from slightly moved centers prunes most rows and
    gives the same labels, sums and inertia, bit for bit, as a full pass."""
    monkeypatch.setenv("TORCHKMEANS_NATIVE", "1")
    X = torch.as_tensor(_blobs(n, d, 12, np.float64))
    src = TensorSource(X, None, device=torch.device("cpu"), dtype=X.dtype, chunk_size=700)
    centers = X[:12].clone()
    ws = Workspace(700, 12, X.dtype, X.device)
    labels = torch.full((n,), -1, dtype=torch.long)
    bounds = Bounds(n, X.device)
    pc = PreparedCenters(centers, "euclidean", X.mean(0))
    accumulate(src, pc, labels, ws, bounds=bounds)
    moved = centers + 1e-3
    bounds.moved(centers, moved)
    pc2 = PreparedCenters(moved, "euclidean", X.mean(0))
    pruned_labels = labels.clone()
    lower_before = bounds.lower.clone()
    pruned = accumulate(src, pc2, pruned_labels, ws, bounds=bounds)
    kept = (bounds.lower == lower_before).sum().item()
    assert kept > n // 2  # most rows were not scored
    full_labels = labels.clone()
    full = accumulate(src, pc2, full_labels, ws)
    torch.testing.assert_close(pruned_labels, full_labels, rtol=0, atol=0)
    for field in ("sums", "weights", "counts", "inertia", "changed"):
        torch.testing.assert_close(getattr(pruned, field), getattr(full, field), rtol=0, atol=0)
    assert half_gaps(pc2).min() > 0


@needs_native
@pytest.mark.parametrize("shape", [(20000, 5, 9), (40000, 20, 9)])  # (the second: fused sums)
def test_native_fit_does_not_depend_on_threads_or_chunks(shape):
    n, d, k = shape
    X = _blobs(n, d, k, np.float32, seed=4)
    runs = []
    before = torch.get_num_threads()
    try:
        for threads, chunk in ((1, None), (2, None), (2, 777)):
            torch.set_num_threads(threads)
            runs.append(KMeans(k, random_state=0, n_init=1, chunk_size=chunk).fit(X))
    finally:
        torch.set_num_threads(before)
    a = runs[0]
    for b in runs[1:]:
        np.testing.assert_array_equal(a.labels_, b.labels_)
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
        assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_fit_matches_the_torch_fit(dtype, monkeypatch):
    X = _blobs(6000, 12, 10, dtype, seed=5)
    fits = []
    for flag in ("1", "0"):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", flag)
        fits.append(KMeans(10, random_state=3, n_init=2).fit(X))
    a, b = fits
    np.testing.assert_array_equal(a.labels_, b.labels_)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=tol, atol=tol)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=tol)
    assert a.n_iter_ == b.n_iter_


def _brute(X, centers):
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)


def _both_engines_plusplus(monkeypatch, X, k, **kw):
    got = []
    for flag in ("1", "0"):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", flag)
        got.append(kmeans_plusplus(X, k, **kw))
    return got


@needs_native
@pytest.mark.parametrize(
    "d,trials,weights",
    [
        (40, None, "none"),  # scored by the GEMM identity, winners read from capture flags
        (40, None, "zeros"),  # rows of weight 0 are never read, never drawn
        (40, 35, "none"),  # more trials than the flags hold: the winner's pass checks bounds
        (9, 35, "random"),  # exact scoring without flags
        (17, None, "random"),  # just above the exact scoring's limit
    ],
)
def test_native_kmeans_plusplus_is_the_torch_seeding(d, trials, weights, monkeypatch):
    """The pruned native seeding (triangle-inequality skips, candidate kernel, capture flags,
    sum-tree draws) picks the centers the plain torch loop picks, on blobs with 60 centers in
    several work items of rows."""
    X = _blobs(9000, d, 60, np.float64, seed=11)
    rng = np.random.default_rng(12)
    sw = None
    if weights == "random":
        sw = rng.random(9000) + 0.05
    elif weights == "zeros":
        sw = rng.integers(0, 3, 9000).astype(float)
    native, torch_ = _both_engines_plusplus(
        monkeypatch, X, 60, sample_weight=sw, random_state=4, n_local_trials=trials
    )
    np.testing.assert_array_equal(native[1], torch_[1])
    np.testing.assert_allclose(native[0], torch_[0])
    if sw is not None:
        assert (sw[native[1]] > 0).all()


@needs_native
def test_native_kmeans_plusplus_on_repeated_rows_at_high_dimension(monkeypatch):
    """Rows on a center have distance exactly zero in the native seeding (the winner's
    distances are exact differences, not the identity), so once every distinct row is a center
    the rest are drawn by weight, as in the torch loop."""
    base = _blobs(5, 48, 5, np.float64, seed=13)
    X = np.repeat(base, [40, 30, 20, 7, 3], axis=0)
    native, torch_ = _both_engines_plusplus(monkeypatch, X, 9, random_state=2)
    np.testing.assert_array_equal(native[1], torch_[1])
    assert len({tuple(r) for r in native[0]}) == 5


@needs_native
@pytest.mark.parametrize("weighted", [False, True])
def test_native_kmeans_plusplus_draws_the_torch_centers(weighted, monkeypatch):
    X = _blobs(4000, 6, 12, np.float64, seed=7)
    sw = np.random.default_rng(8).random(4000) if weighted else None
    got = []
    for flag in ("1", "0"):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", flag)
        got.append(kmeans_plusplus(X, 12, sample_weight=sw, random_state=5))
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_allclose(got[0][0], got[1][0])


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_canonical_order_is_the_torch_order(dtype, monkeypatch):
    """The canonical order (radix-sorted projections) equals the torch argsort: repeated rows
    stay in index order, -0.0 sorts with 0.0, and large and negative keys sort numerically."""
    from torchkmeans._init import canonical_order

    X = _blobs(3000, 5, 7, dtype, seed=12) * np.array([1e6, 1, 1e-6, 1, -1], dtype=dtype)
    X[100:140] = X[7]  # repeated rows
    X[200] = 0.0
    X[201] = -0.0
    X[202:204] = [-0.0, 0.0, -0.0, 0.0, 0.0]
    x = torch.as_tensor(X)
    src = TensorSource(x, None, device=torch.device("cpu"), dtype=x.dtype, chunk_size=500)
    orders = []
    for flag in ("1", "0"):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", flag)
        orders.append(canonical_order(src))
    torch.testing.assert_close(orders[0], orders[1], rtol=0, atol=0)
    assert sorted(orders[0].tolist()) == list(range(3000))
    repeats = [i for i in orders[0].tolist() if i == 7 or 100 <= i < 140]
    assert repeats == [7, *range(100, 140)]


@needs_native
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("weighted", [False, True])
def test_native_kmeans_plusplus_with_fewer_distinct_points_draws_the_torch_centers(
    weighted, monkeypatch
):
    """Once every row of positive weight sits on a center, candidates are drawn by weight:
    the native loop takes the same fallback as the torch one."""
    X = np.repeat(np.array([[0.0, 1.0], [2.0, 0.0], [5.0, 5.0]]), [30, 50, 20], axis=0)
    sw = np.random.default_rng(3).integers(0, 3, 100).astype(float) if weighted else None
    if sw is not None:
        sw[[0, 30, 80]] = 1.0
    got = []
    for flag in ("1", "0"):
        monkeypatch.setenv("TORCHKMEANS_NATIVE", flag)
        got.append(kmeans_plusplus(X, 6, sample_weight=sw, random_state=1))
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_array_equal(got[0][0], got[1][0])


@needs_native
def test_native_kmeans_plusplus_does_not_depend_on_threads():
    X = _blobs(30000, 24, 40, np.float32, seed=9)  # several stripes of rows
    got = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            got.append(kmeans_plusplus(X, 40, random_state=1))
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(got[0][1], got[1][1])
    np.testing.assert_array_equal(got[0][0], got[1][0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("native", ["1", "0"])
def test_subnormal_weights_never_give_nan_centers(native, monkeypatch):
    """Found by hypothesis: a row of weight 5e-324 left alone in a cluster after a relocation
    took its neighbour (the cluster's weights then sum to 0.0 in floating point)."""
    monkeypatch.setenv("TORCHKMEANS_NATIVE", native)
    X = np.array([[1.84940063e-142], [1.0], [0.0]])
    w = np.array([1.0, 1.0, 5e-324])
    km = KMeans(3, init="k-means++", random_state=0, tol=0.0).fit(X, sample_weight=w)
    assert np.isfinite(km.cluster_centers_).all() and np.isfinite(km.inertia_)
    assert all(np.isfinite(h["inertia"]) for h in km.history_)
    assert km.inertia_ <= 1e-200


def _fit_both_loops(monkeypatch, X, k, **params):
    """The same fit through NativeLoop (whole loop in one call) and the per-pass loop."""
    from torchkmeans._engines import native_engine

    w = params.pop("sample_weight", None)
    fits = []
    for work in (native_engine.LOOP_WORK, 0):
        monkeypatch.setattr(native_engine, "LOOP_WORK", work)
        fits.append(KMeans(k, **params).fit(X, sample_weight=w))
    return fits


def _same_fit(a, b):
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_
    strip = [{key: v for key, v in h.items() if key != "seconds"} for h in a.history_]
    assert strip == [{key: v for key, v in h.items() if key != "seconds"} for h in b.history_]


@needs_native
@pytest.mark.parametrize(
    "n, d, k, dtype, weighted, tol",
    [
        (300, 2, 4, np.float32, False, 1e-4),  # the tutorial
        (2000, 3, 7, np.float64, True, 1e-4),
        (1500, 40, 6, np.float32, False, 0.0),  # GEMM identity, runs to strict convergence
        (1000, 8, 5, np.float32, True, 0.0),
    ],
)
def test_native_loop_is_the_per_pass_loop_bit_for_bit(n, d, k, dtype, weighted, tol, monkeypatch):
    """NativeLoop runs small fits in one call; it must give what the per-pass loop (used for
    large fits and memory-mapped data) gives, bit for bit, history included."""
    X = _blobs(n, d, k, dtype, seed=n)
    w = np.random.default_rng(3).integers(0, 4, n).astype(dtype) if weighted else None
    if w is not None:
        w[0] = 1
    a, b = _fit_both_loops(monkeypatch, X, k, random_state=1, tol=tol, sample_weight=w)
    _same_fit(a, b)
    assert a.n_iter_ > 1


@needs_native
def test_native_loop_hands_empty_clusters_to_relocation(monkeypatch):
    """A center far from every row is empty after the first pass: the loop stops there, the
    rows farthest from their centers refill it, and the loop goes on, as the per-pass loop."""
    X = _blobs(800, 2, 4, np.float32, seed=9)
    init = np.concatenate([X[:3], [[1e4, 1e4]]]).astype(np.float32)
    a, b = _fit_both_loops(monkeypatch, X, 4, init=init, tol=0.0)
    _same_fit(a, b)
    assert a.history_[0]["n_relocated"] == 1 and len(set(a.labels_.tolist())) == 4


@needs_native
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_native_loop_with_fewer_distinct_points_than_clusters(monkeypatch):
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 0.0]], dtype=np.float32), 50, axis=0)
    a, b = _fit_both_loops(monkeypatch, X, 5, random_state=0)
    _same_fit(a, b)
    assert np.isfinite(a.cluster_centers_).all() and a.inertia_ == 0.0


@needs_native
def test_native_loop_checkpoint_resume_is_bit_for_bit(tmp_path, monkeypatch):
    """With a checkpoint, NativeLoop runs one iteration per call (the hook saves each): the
    same result as one call for the whole loop, and a resumed fit agrees too."""
    X = _blobs(3000, 2, 6, np.float32, seed=11)
    ref = KMeans(6, random_state=2, tol=0.0).fit(X)
    path = tmp_path / "fit.ckpt"
    with_ckpt = KMeans(6, random_state=2, tol=0.0, checkpoint=path).fit(X)
    _same_fit(ref, with_ckpt)
    assert ref.n_iter_ > 2 and not path.exists()
    from torchkmeans import _core

    calls = []
    real = _core._lloyd_native

    def interrupted(*args, **kwargs):  # stop after two iterations, as a killed process would
        hook = kwargs["on_iteration"]

        def stop_after_two(it, *rest):
            hook(it, *rest)
            calls.append(it)
            if it == 2:
                raise KeyboardInterrupt

        kwargs["on_iteration"] = stop_after_two
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, "_lloyd_native", interrupted)
    with pytest.raises(KeyboardInterrupt):
        KMeans(6, random_state=2, tol=0.0, checkpoint=path).fit(X)
    monkeypatch.setattr(_core, "_lloyd_native", real)
    assert calls == [1, 2] and path.exists()
    resumed = KMeans(6, random_state=2, tol=0.0, checkpoint=path).fit(X)
    _same_fit(ref, resumed)


@needs_native
@pytest.mark.parametrize("d", [2, 8, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_half_gaps_bound_the_true_gaps(d, dtype):
    """The native half gaps (an assignment pass over the centers) never exceed half the
    distance to the nearest other center, stay within rounding of it, and are zero for a
    duplicated center."""
    engine = NativeEngine()

    c = torch.as_tensor(_blobs(60, d, 5, np.float64, seed=d), dtype=dtype) + 100.0
    c[7] = c[3]  # a duplicate
    gaps = engine.half_gaps(engine.prepare_centers(c, "euclidean"), c.dtype).to(torch.float64)
    c64 = c.to(torch.float64)
    true = ((c64[:, None] - c64[None]) ** 2).sum(-1).sqrt().fill_diagonal_(float("inf"))
    true = true.amin(dim=1) / 2
    assert bool((gaps <= true).all())
    assert gaps[3] == 0 and gaps[7] == 0
    keep = true > 0
    rel = 1e-3 if dtype == torch.float32 else 2e-5  # (the pruning margin, and rounding)
    assert bool((gaps[keep] >= true[keep] * (1 - rel)).all())
    one = engine.half_gaps(engine.prepare_centers(c[:1], "euclidean"), c.dtype)
    assert bool(torch.isinf(one).all())


@needs_native
def test_native_loop_split_across_calls_is_the_same_fit(monkeypatch):
    """A long run is split into calls of at most LOOP_CALL iterations (a relocation
    in between included): the same fit, bit for bit, as one call."""
    from torchkmeans import _core

    X = _blobs(1200, 3, 5, np.float32, seed=21)
    init = np.concatenate([X[:4], [[1e4, 1e4, 1e4]]]).astype(np.float32)
    ref = KMeans(5, init=init, tol=0.0).fit(X)
    monkeypatch.setattr(_core, "LOOP_CALL", 2)
    split = KMeans(5, init=init, tol=0.0).fit(X)
    _same_fit(ref, split)
    assert ref.n_iter_ > 2 and ref.history_[0]["n_relocated"] == 1
