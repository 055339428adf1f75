"""BisectingKMeans: scikit-learn's semantics (partitions, the order of leaves, predict down the
tree, weights), containers and devices, errors, files. Parity of labels from the same
random_state is impossible (another random stream), so partitions and behaviour are compared."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import BisectingKMeans as SkBisectingKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import v_measure_score

from torchkmeans import BisectingKMeans, ConvergenceWarning, ParameterError
from torchkmeans._bisect import _right_side

from .conftest import to_numpy

STRATEGIES = ["biggest_inertia", "largest_cluster"]


def separated_blobs(n_centers=8, per_blob=60, seed=0):
    """Equal-sized, well-separated blobs (so either strategy splits whole blobs apart)."""
    X, y = make_blobs(
        n_samples=[per_blob] * n_centers,
        n_features=5,
        center_box=(-50, 50),
        cluster_std=0.5,
        random_state=seed,
    )
    return X, y


def sorted_rows(centers):
    """Centers in lexicographic order, to compare sets of centers."""
    c = np.asarray(centers)
    return c[np.lexsort(c.T[::-1])]


def three_groups():
    """1-D groups at 0, 10 and 11: the first split is {0} | {10, 11}, then {10} | {11}."""
    rng = np.random.RandomState(0)
    X = np.concatenate([g + 0.05 * rng.randn(10) for g in (0.0, 10.0, 11.0)])[:, None]
    return X


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blobs_same_partition_as_sklearn(strategy, seed):
    X, y = separated_blobs(seed=seed)
    ours = BisectingKMeans(8, bisecting_strategy=strategy, random_state=seed).fit(X)
    theirs = SkBisectingKMeans(8, bisecting_strategy=strategy, random_state=seed).fit(X)
    assert v_measure_score(theirs.labels_, ours.labels_) == pytest.approx(1.0)
    assert v_measure_score(y, ours.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)
    np.testing.assert_allclose(
        sorted_rows(ours.cluster_centers_), sorted_rows(theirs.cluster_centers_)
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_predict_equals_labels_on_training_data(strategy, init, device):
    X, _ = make_blobs(n_samples=500, n_features=3, centers=6, cluster_std=2.0, random_state=3)
    Xt = torch.as_tensor(X, device=device)
    km = BisectingKMeans(7, init=init, bisecting_strategy=strategy, random_state=0).fit(Xt)
    assert torch.equal(km.predict(Xt), km.labels_)
    assert sorted(torch.unique(km.labels_).tolist()) == list(range(7))


def test_leaves_in_depth_first_order():
    # {0} | {10, 11} first, then {10, 11} -> {10} | {11}: in depth-first order the two halves
    # of {10, 11} are neighbours, and {0} comes first or last (which half of a split is left
    # depends on the seed), as in scikit-learn.
    X = three_groups()
    for seed in range(6):
        for estimator in (BisectingKMeans, SkBisectingKMeans):
            km = estimator(3, random_state=seed).fit(X)
            centers = np.round(km.cluster_centers_[:, 0])
            assert list(centers) in ([0, 10, 11], [0, 11, 10], [10, 11, 0], [11, 10, 0])
            zero = int(np.argmin(centers))
            assert (km.labels_[:10] == zero).all()


def test_predict_descends_the_tree_as_sklearn_does():
    X = three_groups()
    ours = BisectingKMeans(3, random_state=0).fit(X)
    theirs = SkBisectingKMeans(3, random_state=0).fit(X)
    # 5.1 is nearer the center of {10} than that of {0}, but the first split sends it to {0}
    # (nearer 0 than the center of {10, 11}, 10.5): the tree's answer, not the nearest center.
    query = np.array([[5.1]])
    flat = np.argmin(np.abs(ours.cluster_centers_[:, 0] - 5.1))
    assert ours.cluster_centers_[flat, 0] == pytest.approx(10.0, abs=0.1)
    assert ours.cluster_centers_[ours.predict(query)[0], 0] == pytest.approx(0.0, abs=0.1)
    # and everywhere on a grid, the same cluster as scikit-learn's (matched by center)
    grid = np.linspace(-5.0, 20.0, 501)[:, None]
    ours_c = ours.cluster_centers_[ours.predict(grid), 0]
    theirs_c = theirs.cluster_centers_[theirs.predict(grid), 0]
    np.testing.assert_allclose(ours_c, theirs_c, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_weights_act_as_repeated_rows(seed):
    X, _ = make_blobs(n_samples=120, n_features=3, centers=5, cluster_std=1.5, random_state=seed)
    w = np.random.RandomState(seed).randint(1, 4, size=X.shape[0])
    weighted = BisectingKMeans(6, random_state=seed).fit(X, sample_weight=w)
    repeated = BisectingKMeans(6, random_state=seed).fit(np.repeat(X, w, axis=0))
    assert v_measure_score(np.repeat(weighted.labels_, w), repeated.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(
        sorted_rows(weighted.cluster_centers_), sorted_rows(repeated.cluster_centers_)
    )
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-9)


def two_pairs(n_far=10):
    """1-D pairs of groups {0, 1} (10 rows) and {100, 102} (``n_far`` rows): the first split
    separates the pairs; which pair is split next depends on the weights and the strategy."""
    rng = np.random.RandomState(0)
    near = np.repeat([0.0, 1.0], 5)
    far = np.repeat([100.0, 102.0], n_far // 2)
    return (np.concatenate([near, far]) + 0.001 * rng.randn(10 + n_far))[:, None]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_weights_choose_the_next_split_as_sklearn_does(strategy):
    X = two_pairs(n_far=12)
    w = np.ones(22)
    w[:10] = 10.0  # {0, 1}: inertia 25 against 12 for {100, 102}, but 10 rows against 12
    km = BisectingKMeans(3, bisecting_strategy=strategy, random_state=0).fit(X, sample_weight=w)
    sk = SkBisectingKMeans(3, bisecting_strategy=strategy, random_state=0)
    sk.fit(X, sample_weight=w)
    assert v_measure_score(sk.labels_, km.labels_) == pytest.approx(1.0)
    assert km.inertia_ == pytest.approx(sk.inertia_, rel=1e-6)
    split = [0.0, 1.0, 101.0] if strategy == "biggest_inertia" else [0.5, 100.0, 102.0]
    np.testing.assert_allclose(np.sort(km.cluster_centers_[:, 0]), split, atol=0.01)
    unweighted = BisectingKMeans(3, bisecting_strategy=strategy, random_state=0).fit(X)
    np.testing.assert_allclose(
        np.sort(unweighted.cluster_centers_[:, 0]), [0.5, 100.0, 102.0], atol=0.01
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    X, _ = make_blobs(n_samples=200, n_features=4, centers=4, random_state=0)
    X = X.astype(dtype)
    km = BisectingKMeans(4, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == dtype
    assert km.transform(X).dtype == dtype
    assert km.labels_.dtype == np.int64
    km64 = BisectingKMeans(4, random_state=0).fit(X.astype(np.float64))
    np.testing.assert_array_equal(km.labels_, km64.labels_)
    np.testing.assert_allclose(km.cluster_centers_, km64.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_reproducible_with_an_int_seed(blobs):
    X, _ = blobs
    a = BisectingKMeans(6, random_state=3).fit(X)
    b = BisectingKMeans(6, random_state=3).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    c = BisectingKMeans(6, random_state=3, chunk_size=17).fit(X)
    np.testing.assert_array_equal(a.labels_, c.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, c.cluster_centers_)


def test_tensors_in_tensors_out(blobs, device):
    X, _ = blobs
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    km = BisectingKMeans(5, random_state=0).fit(Xt)
    assert isinstance(km.cluster_centers_, torch.Tensor)
    assert km.cluster_centers_.device.type == device.type
    assert km.cluster_centers_.dtype == torch.float32
    assert isinstance(km.labels_, torch.Tensor) and km.labels_.device.type == device.type
    for out in (km.predict(Xt), km.transform(Xt), km.fit_predict(Xt)):
        assert isinstance(out, torch.Tensor) and out.device.type == device.type
    ref = BisectingKMeans(5, random_state=0).fit(X.astype(np.float32))
    assert v_measure_score(ref.labels_, to_numpy(km.labels_)) == pytest.approx(1.0)


def test_memmap_and_loader_give_the_fit_of_the_array(tmp_path, blobs):
    X, _ = blobs
    path = tmp_path / "X.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    ref = BisectingKMeans(5, random_state=0).fit(X)
    from_mm = BisectingKMeans(5, random_state=0).fit(mm)
    np.testing.assert_array_equal(ref.labels_, from_mm.labels_)
    np.testing.assert_array_equal(ref.cluster_centers_, from_mm.cluster_centers_)
    loader = torch.utils.data.DataLoader(torch.as_tensor(X), batch_size=64)
    from_loader = BisectingKMeans(5, random_state=0).fit(loader)
    np.testing.assert_array_equal(ref.labels_, to_numpy(from_loader.labels_))
    np.testing.assert_allclose(ref.cluster_centers_, to_numpy(from_loader.cluster_centers_))
    np.testing.assert_array_equal(from_mm.predict(mm), ref.labels_)


def test_cosine_splits_directions():
    rng = np.random.RandomState(0)
    directions = np.eye(4)[rng.randint(0, 4, size=200)]
    X = directions * rng.uniform(0.5, 20.0, size=(200, 1)) + 0.01 * rng.randn(200, 4)
    km = BisectingKMeans(4, metric="cosine", random_state=0).fit(X)
    assert v_measure_score(directions.argmax(axis=1), km.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(km.predict(X), km.labels_)


def test_one_cluster_is_the_weighted_mean():
    X = np.array([[1.0, 2.0], [10.0, 2.0], [10.0, 8.0]])
    w = np.array([1.0, 2.0, 3.0])
    km = BisectingKMeans(1, random_state=0).fit(X, sample_weight=w)
    np.testing.assert_allclose(km.cluster_centers_[0], np.average(X, axis=0, weights=w))
    assert (km.labels_ == 0).all() and (km.predict(X) == 0).all()
    expected = (w * ((X - km.cluster_centers_[0]) ** 2).sum(axis=1)).sum()
    assert km.inertia_ == pytest.approx(expected)


@pytest.mark.parametrize("container", ["numpy", "loader"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_distinct_points_than_clusters_warns(strategy, container):
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), [4, 3, 1], axis=0)
    if container == "loader":
        X = torch.utils.data.DataLoader(torch.as_tensor(X), batch_size=3)
    km = BisectingKMeans(6, bisecting_strategy=strategy, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\).*n_clusters \(6\)"):
        km.fit(X)
    centers, labels = to_numpy(km.cluster_centers_), to_numpy(km.labels_)
    assert np.isfinite(centers).all()
    assert len(np.unique(labels)) == 3 and labels.max() < 6
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(to_numpy(km.predict(X)), labels)


def test_rows_of_zero_weight_are_never_split_alone():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    w = np.array([1.0, 0.0, 0.0, 0.0])  # one row of positive weight: no 2-means can seed
    km = BisectingKMeans(2, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(1\)"):
        km.fit(X, sample_weight=w)
    np.testing.assert_array_equal(km.labels_, [0, 0, 0, 0])
    np.testing.assert_allclose(km.cluster_centers_, [[0.0], [0.0]])


def test_callable_init_gets_the_rows_being_split():
    X = three_groups()
    seen = []

    def first_and_last(rows, n_clusters, random_state):
        assert isinstance(random_state, np.random.RandomState)
        seen.append((rows.shape[0], n_clusters))
        return rows[[0, -1]]

    km = BisectingKMeans(3, init=first_and_last, random_state=0).fit(X)
    assert seen == [(30, 2), (20, 2)]
    assert sorted(np.round(km.cluster_centers_[:, 0])) == [0.0, 10.0, 11.0]


def test_n_init_keeps_the_best_split():
    # the first of n_init runs is the run n_init=1 makes from the same seed: the best of five
    # can only be better
    X, _ = make_blobs(n_samples=300, n_features=2, centers=9, cluster_std=1.0, random_state=1)
    for seed in range(5):
        one = BisectingKMeans(2, random_state=seed).fit(X).inertia_
        five = BisectingKMeans(2, n_init=5, random_state=seed).fit(X).inertia_
        assert five <= one * (1 + 1e-12)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"bisecting_strategy": "smallest"},
            r"^bisecting_strategy must be one of 'biggest_inertia', 'largest_cluster', got "
            r"'smallest'\.$",
        ),
        ({"algorithm": "full"}, r"^algorithm must be one of 'lloyd', 'elkan', got 'full'\.$"),
        ({"copy_x": "yes"}, r"^copy_x must be True or False, got 'yes'\.$"),
        ({"n_init": "auto"}, r"^n_init must be an integer >= 1, got 'auto'"),
        ({"n_init": 0}, r"^n_init must be an integer >= 1, got 0\.$"),
        (
            {"init": "k-means||"},
            r"^init must be one of 'k-means\+\+', 'random' or a callable, got the string",
        ),
        ({"init": np.zeros((2, 2))}, r"^init must be one of .* got ndarray: every split has two"),
        ({"n_clusters": 0}, r"^n_clusters must be an integer >= 1, got 0\.$"),
        ({"max_iter": 0}, r"^max_iter must be an integer >= 1, got 0\.$"),
        ({"tol": -1.0}, r"^tol must be >= 0, got -1\.0\.$"),
        ({"metric": "manhattan"}, r"^metric must be one of 'euclidean', 'cosine'"),
    ],
)
def test_bad_parameters(params, match):
    X = np.random.RandomState(0).rand(20, 2)
    with pytest.raises(ParameterError, match=match):
        BisectingKMeans(**{"n_clusters": 3, **params}).fit(X)


def test_more_clusters_than_rows():
    with pytest.raises(ValueError, match=r"n_samples=3 should be >= n_clusters=4"):
        BisectingKMeans(4).fit(np.zeros((3, 2)))


def test_algorithm_and_copy_x_change_nothing(blobs):
    X, _ = blobs
    X0 = X.copy()
    a = BisectingKMeans(5, random_state=0).fit(X)
    b = BisectingKMeans(5, random_state=0, algorithm="elkan", copy_x=False).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(X, X0)


def test_save_and_load_keep_the_tree(tmp_path):
    X = three_groups()
    km = BisectingKMeans(3, random_state=0).fit(X)
    path = tmp_path / "bisect.safetensors"
    km.save(path)
    loaded = BisectingKMeans.load(path)
    grid = np.linspace(-5.0, 20.0, 101)[:, None]
    np.testing.assert_array_equal(loaded.predict(grid), km.predict(grid))
    np.testing.assert_array_equal(loaded.cluster_centers_, km.cluster_centers_)
    assert loaded.get_params() == km.get_params()


def test_a_corrupt_tree_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from torchkmeans import ModelFileError

    km = BisectingKMeans(3, random_state=0).fit(three_groups())
    path = tmp_path / "bisect.safetensors"
    km.save(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["tree_children"][0] = torch.tensor([0, 0])  # the root its own child: no way down
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match="the tree of splits is inconsistent"):
        BisectingKMeans.load(path)


def test_right_side_of_sparse_rows_equals_dense():
    rng = np.random.RandomState(0)
    x = torch.as_tensor(rng.rand(6, 4) * (rng.rand(6, 4) > 0.5))
    rows = torch.tensor([0, 2, 3, 5])
    midpoint = torch.as_tensor(rng.rand(4, 4))
    direction = torch.as_tensor(rng.randn(4, 4))
    dense = _right_side(x, rows, midpoint, direction)
    assert torch.equal(_right_side(x.to_sparse_csr(), rows, midpoint, direction), dense)


def sparse_blobs(seed=0, n=400, d=30):
    """Blobs with most entries zeroed (every row keeps at least one), as a scipy CSR matrix."""
    import scipy.sparse as sp

    X, _ = make_blobs(n, n_features=d, centers=6, random_state=seed)
    mask = np.random.default_rng(seed).random(X.shape) < 0.2
    mask[np.arange(n), np.arange(n) % d] = True
    return sp.csr_matrix(X * mask)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("layout", ["csr", "csc", "torch_csr", "torch_coo"])
def test_sparse_input_fits_as_its_dense_copy(strategy, layout):
    """The matrix is never made dense and the fit is that of the dense copy: same labels, same
    tree (predict agrees), centers and inertia up to the rounding of ||x||^2 - 2 x.c + ||c||^2."""
    Xs = sparse_blobs()
    dense = Xs.toarray()
    X = {
        "csr": Xs,
        "csc": Xs.tocsc(),
        "torch_csr": torch.as_tensor(dense).to_sparse_csr(),
        "torch_coo": torch.as_tensor(dense).to_sparse(),
    }[layout]
    w = np.random.default_rng(1).random(dense.shape[0]) + 0.5
    ours = BisectingKMeans(6, bisecting_strategy=strategy, random_state=0).fit(X, sample_weight=w)
    ref = BisectingKMeans(6, bisecting_strategy=strategy, random_state=0).fit(
        dense, sample_weight=w
    )
    np.testing.assert_array_equal(to_numpy(ours.labels_), ref.labels_)
    np.testing.assert_allclose(
        to_numpy(ours.cluster_centers_), ref.cluster_centers_, rtol=1e-9, atol=1e-12
    )
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_array_equal(to_numpy(ours.predict(X)), ref.labels_)
    np.testing.assert_allclose(to_numpy(ours.transform(X)), ref.transform(dense), rtol=1e-9)
    assert type(ours.cluster_centers_) is type(ours.labels_)


def test_sparse_cosine_and_float32():
    Xs = sparse_blobs(seed=3).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        ours = BisectingKMeans(5, metric=metric, random_state=0).fit(Xs)
        ref = BisectingKMeans(5, metric=metric, random_state=0).fit(Xs.toarray())
        assert ours.cluster_centers_.dtype == np.float32
        assert v_measure_score(ref.labels_, ours.labels_) == pytest.approx(1.0)
        np.testing.assert_array_equal(ours.predict(Xs), ours.labels_)
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)


def test_sparse_same_partition_as_sklearn():
    """Six topics, each with its own columns (TF-IDF-like): both find the topics."""
    import scipy.sparse as sp

    rng = np.random.default_rng(5)
    topic = np.arange(360) % 6
    X = np.zeros((360, 30))
    for i, t in enumerate(topic):
        cols = 5 * t + rng.choice(5, size=3, replace=False)
        X[i, cols] = rng.random(3) + 1.0
    Xs = sp.csr_matrix(X)
    ours = BisectingKMeans(6, random_state=0).fit(Xs)
    theirs = SkBisectingKMeans(6, random_state=0).fit(Xs)
    assert v_measure_score(topic, ours.labels_) == pytest.approx(1.0)
    assert v_measure_score(theirs.labels_, ours.labels_) == pytest.approx(1.0)
    np.testing.assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)


def test_score_and_transform_use_every_center():
    X = three_groups()
    km = BisectingKMeans(3, random_state=0).fit(X)
    D = km.transform(X)
    assert D.shape == (30, 3)
    np.testing.assert_allclose(-km.score(X), (D.min(axis=1) ** 2).sum())


def test_predict_on_far_away_rows_stays_in_range():
    # scikit-learn's test_no_crash_on_empty_bisections: rows far outside the training data
    rng = np.random.RandomState(0)
    km = BisectingKMeans(10, random_state=0).fit(rng.rand(3000, 10))
    labels = km.predict(50 * rng.rand(100, 10))
    assert np.isin(labels, np.arange(10)).all()


def test_no_warning_on_ordinary_data(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BisectingKMeans(8, random_state=0).fit(X)
