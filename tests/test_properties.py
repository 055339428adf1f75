"""Property tests (hypothesis): inertia never rises, labels are the argmin, permutations."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from torchkmeans import KMeans

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def problems(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 4))
    X = draw(arrays(np.float64, (n, d), elements=finite))
    k = draw(st.integers(1, min(n, 6)))
    seed = draw(st.integers(0, 2**16))
    weighted = draw(st.booleans())
    w = None
    if weighted:
        w = draw(arrays(np.float64, (n,), elements=st.floats(0.0, 10.0)))
        if not (w > 0).any():
            w[0] = 1.0
    return X, k, seed, w


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@SETTINGS
@given(problems(), st.sampled_from(["k-means++", "random"]))
def test_inertia_never_rises(problem, init):
    X, k, seed, w = problem
    km = KMeans(k, init=init, random_state=seed, tol=0.0).fit(X, sample_weight=w)
    inertias = [h["inertia"] for h in km.history_] + [km.inertia_]
    scale = 1e-9 * (1.0 + max(inertias))
    assert all(b <= a + scale for a, b in zip(inertias, inertias[1:]))
    assert np.isfinite(km.cluster_centers_).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@SETTINGS
@given(problems())
def test_labels_are_the_argmin(problem):
    X, k, seed, w = problem
    km = KMeans(k, random_state=seed).fit(X, sample_weight=w)
    d2 = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    chosen = d2[np.arange(X.shape[0]), km.labels_]
    tol = 1e-9 * (1.0 + (X**2).sum(1) + (km.cluster_centers_**2).sum(1).max())
    assert (chosen <= d2.min(1) + tol).all()
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    expected = chosen.sum() if w is None else (w * chosen).sum()
    assert km.inertia_ == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@SETTINGS
@given(problems(), st.randoms(use_true_random=False))
def test_permuting_rows_permutes_labels(problem, rnd):
    X, k, seed, w = problem
    # distinct rows: with exact duplicates, which copy is "first" is arbitrary
    X, idx = np.unique(X, axis=0, return_index=True)
    if w is not None:
        w = w[idx]
        if not (w > 0).any():
            w[0] = 1.0
    k = min(k, X.shape[0])
    perm = list(range(X.shape[0]))
    rnd.shuffle(perm)
    perm = np.array(perm)
    a = KMeans(k, random_state=seed).fit(X, sample_weight=w)
    b = KMeans(k, random_state=seed).fit(X[perm], sample_weight=None if w is None else w[perm])
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(b.labels_, a.labels_[perm])
