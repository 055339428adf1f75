"""The parameter table: every parameter of every estimator and public function has exactly one
entry, and every entry rejects bad values with a ParameterError worded "got X, expected Y"."""

import inspect

import numpy as np
import pytest
import torch
import torch.distributed as dist

from torchkmeans import (
    BisectingKMeans,
    KMeans,
    MiniBatchKMeans,
    ParameterError,
    TorchKMeansError,
    k_means,
    kmeans,
    kmeans_plusplus,
    sweep_k,
)
from torchkmeans._params import (
    BISECT_PARAMS,
    KMEANS_N_INIT,
    MINIBATCH_N_INIT,
    PARAMS,
    check_params,
)

X = np.random.RandomState(0).rand(20, 3)

# Arguments that are data, not parameters: checked by _validation, not by the table.
DATA = {"X", "y", "sample_weight", "x_squared_norms"}


def _parameters(owner):
    """The parameter names of an estimator's __init__ or of a function (data and **kwargs
    aside)."""
    target = owner.__init__ if inspect.isclass(owner) else owner
    return [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.name not in DATA | {"self"} and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]


def _call(owner, name, value):
    """Call ``owner`` on X with ``name=value`` and everything else left at its default."""
    if owner in (KMeans, MiniBatchKMeans, BisectingKMeans):
        return owner(**{name: value}).fit(X)
    if owner is sweep_k:
        return sweep_k(X, **{name: value})
    if name == "n_clusters":
        return owner(X, value)
    return owner(X, 2, **{name: value})


OWNERS = [KMeans, MiniBatchKMeans, BisectingKMeans, kmeans, k_means, kmeans_plusplus, sweep_k]

# Entries BisectingKMeans checks with constraints of its own (scikit-learn's for it).
BISECT_OWN = {name for name in BISECT_PARAMS if BISECT_PARAMS[name] is not PARAMS[name]}


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: o.__name__)
def test_every_parameter_has_exactly_one_table_entry(owner):
    names = _parameters(owner)
    assert len(names) == len(set(names))
    missing = [name for name in names if name not in PARAMS]
    assert not missing, f"{owner.__name__}: no entry in _params.PARAMS for {missing}"


def test_every_table_entry_belongs_to_a_parameter():
    used = {name for owner in OWNERS for name in _parameters(owner)}
    assert set(PARAMS) == used


_NO_FOLDER = "no-such-folder-for-torchkmeans/fit.ckpt"

# (parameter, bad value, error type, message regex): at least one row per table entry.
BAD = [
    ("n_clusters", 0, ParameterError, r"^n_clusters must be an integer >= 1, got 0\.$"),
    (
        "n_clusters",
        2.5,
        ParameterError,
        r"^n_clusters must be an integer >= 1, got 2\.5 of type float\.$",
    ),
    ("init_size", 0, ParameterError, r"^init_size must be an integer >= 1, got 0\.$"),
    ("checkpoint", 3, ParameterError, r"^checkpoint must be None or a file path, got int\.$"),
    ("checkpoint", _NO_FOLDER, ParameterError, r"the folder .* does not exist\. Create it"),
    ("max_iter", 0, ParameterError, r"^max_iter must be an integer >= 1, got 0\.$"),
    ("batch_size", 0, ParameterError, r"^batch_size must be an integer >= 1, got 0\.$"),
    ("tol", -1, ParameterError, r"^tol must be >= 0, got -1\.$"),
    ("tol", float("nan"), ParameterError, r"^tol must be a finite number >= 0, got nan\.$"),
    ("verbose", -1, ParameterError, r"^verbose must be an integer >= 0, got -1\.$"),
    (
        "max_no_improvement",
        -1,
        ParameterError,
        r"^max_no_improvement must be an integer >= 0, got -1\.$",
    ),
    ("compute_labels", "yes", ParameterError, r"^compute_labels must be True or False, got 'yes'"),
    (
        "reassignment_ratio",
        -1,
        ParameterError,
        r"^reassignment_ratio must be a number >= 0, got -1\.$",
    ),
    ("n_local_trials", 0, ParameterError, r"^n_local_trials must be an integer >= 1, got 0\.$"),
    (
        "init",
        "kmeans++",
        ParameterError,
        r"^init must be one of 'k-means\+\+', 'k-means\|\|', 'random', an array of shape "
        r"\(n_clusters, n_features\) or a callable, got the string 'kmeans\+\+'\.$",
    ),
    ("init", 3, ParameterError, r"^init must be 'k-means\+\+', 'random', an array .* got int\.$"),
    ("n_init", 0, ParameterError, r"^n_init must be an integer >= 1, got 0\.$"),
    ("n_init", "many", ParameterError, r"^n_init must be 'auto' or an integer >= 1, got 'many'"),
    (
        "algorithm",
        "full",
        ParameterError,
        r"^algorithm must be one of 'lloyd', 'elkan', got 'full'",
    ),
    ("copy_x", 1, ParameterError, r"^copy_x must be True or False, got 1\.$"),
    (
        "bisecting_strategy",
        "smallest",
        ParameterError,
        r"^bisecting_strategy must be one of 'biggest_inertia', 'largest_cluster', got "
        r"'smallest'\.$",
    ),
    (
        "random_state",
        "x",
        ParameterError,
        r"^random_state must be None, an int, a numpy RandomState or Generator, or a CPU "
        r"torch\.Generator, got str\.$",
    ),
    ("random_state", -1, ParameterError, r"^random_state must be in \[0, 2\*\*64\), got -1\.$"),
    (
        "metric",
        "manhattan",
        ParameterError,
        r"^metric must be one of 'euclidean', 'cosine', got 'manhattan'\.$",
    ),
    (
        "device",
        "nonsense",
        ParameterError,
        r"^device must be None, a torch\.device or a string such as 'cpu' or 'cuda:0', "
        r"got 'nonsense'\.$",
    ),
    (
        "dtype",
        "int32",
        ParameterError,
        r"^dtype must be None or a floating dtype \(float16, bfloat16, float32, float64\), "
        r"got 'int32'\.$",
    ),
    (  # numpy reads a dict as a record layout; it is never a float dtype
        "dtype",
        {"": ""},
        ParameterError,
        r"^dtype must be None or a floating dtype .*got \{'': ''\}\.$",
    ),
    ("chunk_size", 0, ParameterError, r"^chunk_size must be an integer >= 1, got 0\.$"),
    (
        "algorithm",
        "full",
        ParameterError,
        r"^algorithm must be one of 'lloyd', 'elkan', got 'full'\.$",
    ),
    ("copy_x", "yes", ParameterError, r"^copy_x must be True or False, got 'yes'\.$"),
    (
        "return_n_iter",
        "yes",
        ParameterError,
        r"^return_n_iter must be True or False, got 'yes'\.$",
    ),
    (
        "ks",
        [1, 2],
        ParameterError,
        r"^ks must be an iterable of ints >= 2 \(e\.g\. range\(2, 11\)\), got list\.$",
    ),
    ("ks", [2, 2], ParameterError, r"^ks has repeated values: \[2, 2\]\.$"),
    ("ks", [], ParameterError, r"^ks is empty; pass at least one k"),
    (
        "silhouette_sample_size",
        1,
        ParameterError,
        r"^silhouette_sample_size must be an integer >= 2, got 1\.$",
    ),
    ("distributed", 1, ParameterError, r"^distributed must be True or False, got 1\.$"),
    ("distributed", True, ParameterError, r"^distributed=True needs an initialized default"),
]


# BisectingKMeans' own entries: init a name or a callable, n_init a count.
BISECT_BAD = [
    (
        "init",
        "k-means||",
        ParameterError,
        r"^init must be one of 'k-means\+\+', 'random' or a callable, got the string "
        r"'k-means\|\|'\.$",
    ),
    (
        "init",
        np.zeros((2, 3)),
        ParameterError,
        r"^init must be one of 'k-means\+\+', 'random' or a callable \(X, n_clusters, "
        r"random_state\) -> centers, got ndarray: every split has two centers, chosen by init\.$",
    ),
    ("n_init", "auto", ParameterError, r"^n_init must be an integer >= 1, got 'auto' of type str"),
    ("n_init", 0, ParameterError, r"^n_init must be an integer >= 1, got 0\.$"),
]


def test_every_table_entry_has_a_bad_value():
    assert {row[0] for row in BAD} == set(PARAMS)
    assert {row[0] for row in BISECT_BAD} == BISECT_OWN == {"init", "n_init"}


@pytest.mark.parametrize("name,value,exc,match", BISECT_BAD, ids=lambda v: repr(v)[:30])
def test_bad_value_is_rejected_by_bisecting_kmeans(name, value, exc, match):
    with pytest.raises(exc, match=match):
        _call(BisectingKMeans, name, value)


@pytest.mark.parametrize("name,value,exc,match", BAD, ids=[f"{row[0]}={row[1]!r}" for row in BAD])
def test_bad_value_is_rejected_by_every_owner(name, value, exc, match):
    if name == "distributed" and value is True and dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    owners = [
        owner
        for owner in OWNERS
        if name in _parameters(owner) and not (owner is BisectingKMeans and name in BISECT_OWN)
    ]
    assert owners
    for owner in owners:
        with pytest.raises(exc, match=match) as info:
            _call(owner, name, value)
        assert isinstance(info.value, TorchKMeansError)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_checked_values_are_converted_and_derived():
    p = check_params(
        {
            "n_clusters": np.int64(3),
            "tol": np.float32(0.5),
            "verbose": True,
            "device": "cpu",
            "dtype": "float32",
            "chunk_size": None,
            "init": "random",
            "n_init": "auto",
        }
    )
    assert p["n_clusters"] == 3 and type(p["n_clusters"]) is int
    assert p["tol"] == 0.5 and type(p["tol"]) is float
    assert p["verbose"] == 1 and type(p["verbose"]) is int
    assert p["device"] == torch.device("cpu")
    assert p["dtype"] is torch.float32
    assert p["chunk_size"] is None
    assert p["n_init"] == 10


@pytest.mark.parametrize(
    "init,kmeans_runs,minibatch_runs",
    [
        ("k-means++", 1, 1),
        ("k-means||", 1, 3),
        ("random", 10, 3),
        (np.zeros((2, 3)), 1, 1),
        (lambda X, k, rs: X[:k], 10, 3),
    ],
    ids=["k-means++", "k-means||", "random", "array", "callable"],
)
def test_n_init_auto_per_estimator(init, kmeans_runs, minibatch_runs):
    params = {"init": init, "n_init": "auto"}
    assert check_params(params, KMEANS_N_INIT)["n_init"] == kmeans_runs
    assert check_params(params, MINIBATCH_N_INIT)["n_init"] == minibatch_runs


def test_explicit_centers_run_once_with_a_warning():
    with pytest.warns(
        RuntimeWarning,
        match="Explicit initial center position passed: performing only one init in KMeans "
        "instead of n_init=4",
    ) as record:
        assert check_params({"init": np.zeros((2, 3)), "n_init": 4})["n_init"] == 1
    assert record[0].filename == __file__  # the warning points at the caller's line


def test_names_without_an_entry_are_left_out():
    assert check_params({"max_iter": 5, "my_own_parameter": object()}) == {"max_iter": 5}


def test_estimators_store_parameters_verbatim():
    params = dict(n_clusters=np.int64(2), tol=np.float32(1e-3), dtype="float32", verbose=True)
    for cls in (KMeans, MiniBatchKMeans, BisectingKMeans):
        est = cls(**params).fit(X)
        for name, value in params.items():
            assert getattr(est, name) is value
