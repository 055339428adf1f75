"""Every bad input gets a TorchKMeansError that is also the built-in type users catch, with a
message that says what was received and what was expected."""

import numpy as np
import pytest
import torch

import torchkmeans
from torchkmeans import (
    DataError,
    KMeans,
    NotFittedError,
    ParameterError,
    TorchKMeansError,
    UnsupportedInputError,
    kmeans,
    kmeans_plusplus,
)

X = np.random.RandomState(0).rand(20, 3)


def _nan():
    a = X.copy()
    a[3, 1] = np.nan
    return a


def _inf():
    a = X.copy()
    a[5, 2] = -np.inf
    return a


# (description, callable, error type, message regex)
CASES = [
    ("nan", lambda: KMeans(2).fit(_nan()), DataError, r"NaN.*row 3, column 1"),
    ("inf", lambda: KMeans(2).fit(_inf()), DataError, r"infinity.*row 5, column 2"),
    ("nan tensor", lambda: KMeans(2).fit(torch.tensor(_nan())), DataError, "NaN"),
    ("empty", lambda: KMeans(2).fit(np.empty((0, 3))), DataError, r"0 sample\(s\)"),
    ("no features", lambda: KMeans(2).fit(np.empty((5, 0))), DataError, r"0 feature\(s\)"),
    ("1-D", lambda: KMeans(2).fit(X[:, 0]), DataError, r"Expected a 2-D array.*reshape"),
    ("3-D", lambda: KMeans(2).fit(X.reshape(4, 5, 3)), DataError, r"got a 3-D array"),
    ("scalar", lambda: KMeans(2).fit(3.0), DataError, r"0-D"),
    ("ragged", lambda: KMeans(2).fit([[1, 2], [3]]), DataError, "different lengths"),
    (
        "strings",
        lambda: KMeans(2).fit([["a", "b"], ["c", "d"]]),
        UnsupportedInputError,
        "not numbers",
    ),
    ("complex", lambda: KMeans(2).fit(X + 1j), UnsupportedInputError, "Complex"),
    ("None", lambda: KMeans(2).fit(None), DataError, "None"),
    ("k=0", lambda: KMeans(0).fit(X), ParameterError, r"n_clusters must be an integer >= 1, got 0"),
    ("k float", lambda: KMeans(2.5).fit(X), ParameterError, r"n_clusters must be an integer"),
    ("k>n", lambda: KMeans(21).fit(X), DataError, r"n_samples=20 should be >= n_clusters=21"),
    (
        "init name",
        lambda: KMeans(2, init="kmeans++").fit(X),
        ParameterError,
        r"init must be one of.*'kmeans\+\+'",
    ),
    ("init type", lambda: KMeans(2, init=3).fit(X), ParameterError, "init must be"),
    (
        "init shape",
        lambda: KMeans(2, init=np.zeros((3, 3))).fit(X),
        DataError,
        r"The shape of the initial centers \(3, 3\) does not match the number of clusters 2: "
        r"init must have shape \(n_clusters, n_features\) = \(2, 3\)",
    ),
    ("init nan", lambda: KMeans(2, init=np.full((2, 3), np.nan)).fit(X), DataError, "NaN"),
    (
        "init callable shape",
        lambda: KMeans(2, init=lambda X, k, rs: np.zeros((k, 2))).fit(X),
        DataError,
        r"The shape of the initial centers \(2, 2\) does not match the number of features of "
        r"the data 3: the centers returned by init must have shape",
    ),
    (
        "metric",
        lambda: KMeans(2, metric="manhattan").fit(X),
        ParameterError,
        r"metric must be one of 'euclidean', 'cosine', got 'manhattan'",
    ),
    ("n_init", lambda: KMeans(2, n_init=0).fit(X), ParameterError, "n_init"),
    (
        "n_init str",
        lambda: KMeans(2, n_init="many").fit(X),
        ParameterError,
        "n_init must be 'auto'",
    ),
    ("max_iter", lambda: KMeans(2, max_iter=0).fit(X), ParameterError, "max_iter"),
    ("tol", lambda: KMeans(2, tol=-1).fit(X), ParameterError, "tol must be >= 0"),
    ("tol nan", lambda: KMeans(2, tol=float("nan")).fit(X), ParameterError, "tol must be a finite"),
    ("random_state", lambda: KMeans(2, random_state="x").fit(X), ParameterError, "random_state"),
    ("dtype", lambda: KMeans(2, dtype="int32").fit(X), ParameterError, "floating dtype"),
    ("device", lambda: KMeans(2, device="nonsense").fit(X), ParameterError, "device"),
    ("chunk_size", lambda: KMeans(2, chunk_size=0).fit(X), ParameterError, "chunk_size"),
    ("verbose", lambda: KMeans(2, verbose=-1).fit(X), ParameterError, "verbose"),
    (
        "negative weight",
        lambda: KMeans(2).fit(X, sample_weight=-np.ones(20)),
        DataError,
        r"sample_weight must be >= 0, got -1.0",
    ),
    (
        "zero weights",
        lambda: KMeans(2).fit(X, sample_weight=np.zeros(20)),
        DataError,
        "zero for every sample",
    ),
    (
        "weight length",
        lambda: KMeans(2).fit(X, sample_weight=np.ones(5)),
        DataError,
        r"sample_weight has 5 elements, expected 20",
    ),
    ("weight nan", lambda: KMeans(2).fit(X, sample_weight=np.full(20, np.nan)), DataError, "NaN"),
    ("weight 2-D", lambda: KMeans(2).fit(X, sample_weight=np.ones((20, 1))), DataError, "1-D"),
    (
        "cosine zero row",
        lambda: KMeans(2, metric="cosine").fit(np.vstack([X, np.zeros((1, 3))])),
        DataError,
        r"row 20.*all zeros",
    ),
    (
        "predict features",
        lambda: KMeans(2, random_state=0).fit(X).predict(X[:, :2]),
        DataError,
        r"X has 2 features, but KMeans is expecting 3 features",
    ),
    (
        "transform features",
        lambda: KMeans(2, random_state=0).fit(X).transform(np.ones((2, 4))),
        DataError,
        r"X has 4 features",
    ),
    ("predict unfitted", lambda: KMeans(2).predict(X), NotFittedError, "not fitted yet"),
    ("transform unfitted", lambda: KMeans(2).transform(X), NotFittedError, "not fitted yet"),
    ("score unfitted", lambda: KMeans(2).score(X), NotFittedError, "not fitted yet"),
    ("kmeans function nan", lambda: kmeans(_nan(), 2), DataError, "NaN"),
    ("kmeans_plusplus k>n", lambda: kmeans_plusplus(X, 30), DataError, "n_clusters=30"),
]


@pytest.mark.parametrize("desc,call,exc,match", CASES, ids=[c[0] for c in CASES])
def test_error_table(desc, call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert isinstance(info.value, TorchKMeansError)
    assert isinstance(info.value, (ValueError, TypeError))
    assert not isinstance(info.value, AssertionError)


def test_not_fitted_is_value_and_attribute_error():
    with pytest.raises(ValueError):
        KMeans().predict(X)
    with pytest.raises(AttributeError):
        KMeans().predict(X)


@pytest.mark.filterwarnings("ignore:Sparse BSR tensor support is in beta")
def test_sparse_layouts_without_rows_are_rejected():
    # scipy.sparse and torch COO/CSR/CSC input is accepted (tests/test_sparse.py); block
    # layouts are not
    with pytest.raises(UnsupportedInputError, match="sparse_bsr"):
        KMeans(2).fit(torch.tensor(X).to_sparse_bsr((1, 1)))
    with pytest.raises(TypeError, match="layout"):
        KMeans(2).fit(torch.tensor(X).to_sparse_bsr((1, 1)))


def test_cuda_unavailable_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ParameterError, match="CUDA is not available"):
        KMeans(2, device="cuda").fit(X)


def test_dataframe_with_text_column():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    with pytest.raises(torchkmeans.DataError, match="non-numeric"):
        KMeans(2).fit(df)


def test_explicit_init_with_n_init_warns():
    with pytest.warns(
        RuntimeWarning,
        match="Explicit initial center position passed: performing only one init in KMeans",
    ):
        km = KMeans(2, init=X[:2].copy(), n_init=5).fit(X)
    assert km.n_iter_ >= 1
