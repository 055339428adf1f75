"""``KMeans``: a scikit-learn estimator that is a thin shell over the Lloyd core (see
``_estimator_base`` for what the estimators share). ``MiniBatchKMeans`` and
``BisectingKMeans`` live in ``_minibatch_estimator`` and ``_bisect_estimator``; they are
importable from here too.
"""

from __future__ import annotations

from typing import Any

from ._bisect_estimator import BisectingKMeans
from ._estimator_base import _KMeansBase
from ._functional import run_fit
from ._minibatch_estimator import MiniBatchKMeans


class KMeans(_KMeansBase):
    """K-means clustering on PyTorch, a drop-in for :class:`sklearn.cluster.KMeans`.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters.
    init : {"k-means++", "random"}, array-like of shape (n_clusters, n_features) or callable, \
default="k-means++"
        "k-means++": greedy k-means++ with ``2 + int(log k)`` local trials, weighted by
        ``sample_weight``. "random": ``n_clusters`` distinct rows, drawn with probability
        proportional to their weight. An array gives the initial centers. A callable
        ``init(X, n_clusters, random_state) -> centers`` receives X as passed to ``fit`` (numpy
        or tensor) and a ``numpy.random.RandomState``.
    n_init : "auto" or int, default="auto"
        Number of runs from different initial centers; the run with the lowest inertia wins.
        "auto": 1 for "k-means++" or an array, 10 for "random" or a callable.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per run.
    tol : float, default=1e-4
        Relative tolerance: a run stops when the squared center shift summed over centers is
        ``<= tol * mean feature variance`` (weighted by ``sample_weight``). A run also stops when
        no label changed. After a stop on ``tol`` or ``max_iter``, one more assignment pass makes
        ``labels_`` agree with ``predict``.
    metric : {"euclidean", "cosine"}, default="euclidean"
        "cosine" is spherical k-means: rows are normalized to unit length (a zero row is an
        error), centers are renormalized every iteration and inertia sums ``1 - cos``.
    random_state : int, numpy RandomState or Generator, torch.Generator or None, default=None
        None draws fresh entropy; an int makes the whole fit reproducible bit for bit on CPU,
        independent of ``chunk_size`` and the thread count.
    device : str, torch.device or None, default=None
        Where to compute. None: the device of the input tensor (numpy, lists, pandas: CPU).
    dtype : torch dtype, str or None, default=None
        The dtype of the fitted centers. None keeps the data's float dtype (integer and bool
        numpy, pandas and list data become float64, as in scikit-learn; an integer tensor
        becomes torch's default dtype). float16 and bfloat16 are computed in float32.
    verbose : int, default=0
        Above 0, print scikit-learn's progress lines on stdout ("Initialization complete",
        "Iteration i, inertia x", "Converged at iteration i: ...").
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        scikit-learn's choice of iteration. Both run torchkmeans' exact Lloyd iteration with
        Hamerly pruning and give identical results; accepted so that code written for
        scikit-learn runs unchanged.
    copy_x : bool, default=True
        Accepted for scikit-learn's signature: torchkmeans never modifies the caller's data,
        whatever its value.
    chunk_size : int or None, default=None
        Rows per chunk; None picks it from n_features and n_clusters so that a fit's extra
        memory stays bounded. Results do not depend on it.
    init_size : int or None, default=None
        Rows that "k-means++" and "random" seeding run on, drawn uniformly without
        replacement (with their weights). None: every row for data in memory; for
        memory-mapped arrays and sources of batches, ``max(3 * n_clusters, min(2**18,
        2**22 // n_features))`` rows (about 16 MB in float32), so that seeding never loads the
        data whole.
    checkpoint : str, os.PathLike or None, default=None
        A file where the state of the fit is written (atomically) after every iteration. A
        later fit with the same parameters and data resumes from it and ends exactly as an
        uninterrupted fit would; a checkpoint of another fit raises
        :class:`~torchkmeans.CheckpointError`. The file is removed when the fit ends. In a
        distributed fit, rank 0 writes it and every rank resumes from it.
    distributed : bool, default=False
        Data-parallel fit over the default ``torch.distributed`` process group (initialize it
        first, e.g. under ``torchrun``): every rank calls ``fit`` with its own shard of rows
        (any container; shards may be uneven or empty). Each iteration SUM-reduces the
        per-cluster sums, weights and inertia in one collective; after the fit every rank holds
        the same ``cluster_centers_``, the global ``inertia_`` and ``n_iter_``, and ``labels_``
        for its own rows. ``predict`` stays local.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        Centers, as the kind of array passed to ``fit`` (numpy, or a tensor on its device).
    labels_ : array of shape (n_samples,)
        Index of the closest center of each training row (int64).
    inertia_ : float
        Weighted sum of squared distances of rows to their closest center (cosine: of
        ``1 - cos``).
    n_iter_ : int
        Lloyd iterations run by the best run.
    history_ : list of dict
        Per iteration of the best run: ``iteration``, ``inertia`` (against the centers of that
        iteration), ``center_shift`` (squared, summed), ``n_changed``, ``n_relocated``,
        ``seconds``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame with string column names.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        metric: str = "euclidean",
        random_state: Any = None,
        device: Any = None,
        dtype: Any = None,
        verbose: int = 0,
        algorithm: str = "lloyd",
        copy_x: bool = True,
        chunk_size: int | None = None,
        init_size: int | None = None,
        checkpoint: Any = None,
        distributed: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.metric = metric
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.algorithm = algorithm
        self.copy_x = copy_x
        self.chunk_size = chunk_size
        self.init_size = init_size
        self.checkpoint = checkpoint
        self.distributed = distributed

    # ---------------------------------------------------------------------------------- fit

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like, sparse matrix, tensor or source of batches, of shape (n_samples, \
n_features)
            numpy (a memmap is read chunk by chunk, never copied whole), torch tensor on any
            device, pandas DataFrame, list, scipy.sparse matrix or array or torch sparse tensor
            (read in CSR chunks, never made dense), or a re-iterable source of batches such as a
            ``torch.utils.data.DataLoader`` (each batch a 2-D tensor or array, ``(x,)`` or
            ``(x, w)`` with per-row sample weights; ``labels_`` follow the order of the
            batches, which must be the same on every pass: no shuffling).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like or tensor of shape (n_samples,), default=None
            Non-negative weights; a weight of ``n`` acts exactly as ``n`` repeated rows.

        Returns
        -------
        self : KMeans
            The fitted estimator.
        """
        result, prepared, params = run_fit(X, sample_weight, self.get_params(deep=False))
        self._n_init = params["n_init"]  # (scikit-learn's private attribute: runs made)
        self._algorithm = params["algorithm"]
        self._set_centers(prepared, result.centers)
        self.labels_ = prepared.checked.kind.wrap(result.labels)
        self.inertia_ = float(result.inertia)
        self.n_iter_ = int(result.n_iter)
        self.history_ = result.history
        return self


__all__ = ["BisectingKMeans", "KMeans", "MiniBatchKMeans"]
