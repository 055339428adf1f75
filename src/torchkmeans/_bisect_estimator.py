"""``BisectingKMeans``: a scikit-learn estimator over the hierarchy built by ``_bisect`` (see
``_estimator_base`` for what the estimators share)."""

from __future__ import annotations

from typing import Any

from . import _bisect as bisect
from ._estimator_base import _KMeansBase
from ._functional import run_bisect


class BisectingKMeans(_KMeansBase):
    """Bisecting k-means, a drop-in for :class:`sklearn.cluster.BisectingKMeans`.

    Starting from one cluster of every row, the cluster chosen by ``bisecting_strategy`` is
    split in two by a 2-means fit (torchkmeans' Lloyd core, ``n_init`` runs, the best kept) until
    there are ``n_clusters`` clusters. The splits form a tree that :meth:`predict` descends.
    Each split costs a few passes over the rows of one cluster only, so a fit costs about
    ``O(n_samples * depth of the tree)`` row visits where flat k-means++ and Lloyd cost
    ``O(n_samples * n_clusters)`` distance computations per pass: the way to very large K.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters (leaves of the tree).
    init : {"random", "k-means++"} or callable, default="random"
        How each split is seeded (with the weights): two distinct rows drawn with probability
        proportional to their weight, or greedy k-means++. A callable
        ``init(X, n_clusters, random_state) -> centers`` is called with the rows of the cluster
        being split (numpy or tensor, as passed to ``fit``), ``n_clusters=2`` and a
        ``numpy.random.RandomState``, and returns two centers.
    n_init : int, default=1
        2-means runs per split, from different seeds; the one with the lowest inertia is kept.
    random_state : int, numpy RandomState or Generator, torch.Generator or None, default=None
        None draws fresh entropy; an int makes the whole fit reproducible bit for bit on CPU.
    max_iter : int, default=300
        Maximum Lloyd iterations per 2-means run.
    verbose : int, default=0
        Above 0, the 2-means runs report their progress as :class:`KMeans` does.
    tol : float, default=1e-4
        Relative tolerance of each 2-means run: it stops when the squared center shift is
        ``<= tol`` times the mean feature variance of the rows being split (or when no label
        changed).
    copy_x : bool, default=True
        Accepted for scikit-learn's signature: the caller's data is never modified.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        scikit-learn's choice of iteration; both run torchkmeans' exact, pruned Lloyd iteration.
    bisecting_strategy : {"biggest_inertia", "largest_cluster"}, default="biggest_inertia"
        The cluster split next: the one with the largest weighted inertia (sum of squared
        distances to its center), or the one with the most rows (not weighted, as in
        scikit-learn). Ties go to the cluster first in the tree's depth-first order.
    metric : {"euclidean", "cosine"}, default="euclidean"
        "cosine": every split is a spherical 2-means (see :class:`KMeans`).
    device, dtype, chunk_size :
        As for :class:`KMeans`.

    Data may be anything :class:`KMeans` accepts, sparse matrices included (never made dense);
    every split reads the rows of its cluster into memory (``source.sample``: for sparse data,
    the CSR arrays of those rows), so a memory-mapped array is read in parts, and a source of
    batches (a DataLoader) is read once per split.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        Centers of the leaves, in depth-first order of the tree (left before right), as the
        kind of array passed to ``fit``.
    labels_ : array of shape (n_samples,)
        The leaf of each training row (int64). :meth:`predict` gives the same labels on the
        training data (up to rounding for rows equally near two centers).
    inertia_ : float
        Weighted sum of squared distances of the rows to the center of their leaf (cosine:
        of ``1 - cos``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.

    Notes
    -----
    Leaves with fewer than two rows of positive weight are not split: the new cluster stays
    empty (its center repeats its sibling's) and a :class:`ConvergenceWarning` says how many
    clusters hold rows. With ``n_clusters=1`` the center is the weighted mean of the rows.
    :meth:`transform` and :meth:`score` use every center (flat), as in scikit-learn.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "random",
        n_init: int = 1,
        random_state: Any = None,
        max_iter: int = 300,
        verbose: int = 0,
        tol: float = 1e-4,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        bisecting_strategy: str = "biggest_inertia",
        metric: str = "euclidean",
        device: Any = None,
        dtype: Any = None,
        chunk_size: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.max_iter = max_iter
        self.verbose = verbose
        self.tol = tol
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.bisecting_strategy = bisecting_strategy
        self.metric = metric
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> BisectingKMeans:
        """Compute bisecting k-means clustering.

        Parameters
        ----------
        X : array-like, tensor or source of batches, of shape (n_samples, n_features)
            As for :meth:`KMeans.fit`.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or tensor of shape (n_samples,), default=None
            Non-negative weights, used by every 2-means run and by the inertia that
            "biggest_inertia" compares (not by the row counts of "largest_cluster").

        Returns
        -------
        self : BisectingKMeans
            The fitted estimator.
        """
        result, prepared = run_bisect(X, sample_weight, self.get_params(deep=False))
        self._set_centers(prepared, result.centers)
        self.labels_ = prepared.checked.kind.wrap(result.labels)
        self.inertia_ = float(result.inertia)
        self._tree = result.tree
        return self

    def predict(self, X: Any) -> Any:
        """The cluster of each row of X, found by descending the tree of splits: at each split
        the nearer of the two halves' centers (int64, same kind as X)."""
        prepared, _ = self._prepare_new_data(X)
        labels = bisect.predict(prepared.source, self._tree, prepared.metric)
        return prepared.checked.kind.wrap(labels)
