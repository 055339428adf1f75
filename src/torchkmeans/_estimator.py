"""``KMeans``, ``MiniBatchKMeans`` and ``BisectingKMeans``: scikit-learn estimators that are
thin shells.

Each stores its parameters verbatim, hands them with the data to the fit boundary in
``_functional`` (parameters checked from the table in ``_params``, then the data, then the
source), calls its algorithm (the Lloyd core, ``_minibatch``, ``_bisect``) and sets the fitted
attributes.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)

from . import _bisect as bisect
from . import _minibatch as minibatch
from . import _validation as v
from . import _validation_batches as vb
from ._distributed import SINGLE, Comm
from ._functional import (
    Prepared,
    assign_labels,
    distances_to_centers,
    prepare,
    prepare_fit,
    run_bisect,
    run_fit,
)
from ._params import MINIBATCH_N_INIT, check_param, check_params, make_generator
from .exceptions import NotFittedError


class _KMeansBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """What the estimators share: predict, transform, score, files, tags."""

    metric: str
    device: Any
    chunk_size: Any

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return the distances of every row of X to every center."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # ----------------------------------------------------------------------------- predict

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _prepare_new_data(
        self, X: Any, sample_weight: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[Prepared, torch.Tensor]:
        """Data passed after fit, as a source, and the centers on its device and dtype.

        ``params``: the checked parameters when the caller has them (partial_fit).
        """
        self._check_fitted()
        if params is None:
            params = check_params(
                {"metric": self.metric, "device": self.device, "chunk_size": self.chunk_size}
            )
        checked: v.CheckedData | vb.CheckedBatches = (
            vb.check_batches(X) if vb.is_batch_source(X) else v.check_array(X)
        )
        v.check_n_features(
            checked,
            self.n_features_in_,
            getattr(self, "feature_names_in_", None),
            type(self).__name__,
        )
        centers = torch.as_tensor(self.cluster_centers_)
        prepared = prepare(
            checked,
            sample_weight,
            n_clusters=centers.shape[0],
            metric=params["metric"],
            device=params["device"],
            dtype=check_param("dtype", centers.dtype),
            chunk_size=params["chunk_size"],
            magnitude=float(centers.abs().max()) if centers.numel() else 0.0,
        )
        source = prepared.source
        return prepared, centers.to(device=source.device, dtype=source.dtype)

    def _set_centers(self, prepared: Prepared, centers: torch.Tensor) -> None:
        """The fitted centers (in the caller's kind of array) and what fit learned of X."""
        self.cluster_centers_ = prepared.checked.kind.wrap(centers.to(prepared.out_dtype))
        self.n_features_in_ = int(prepared.source.n_features)
        self._n_features_out = int(centers.shape[0])
        names = prepared.checked.feature_names
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def predict(self, X: Any) -> Any:
        """Index of the closest center for each row of X (int64, same kind as X)."""
        prepared, centers = self._prepare_new_data(X)
        labels, _ = assign_labels(prepared.source, centers, prepared.metric)
        return prepared.checked.kind.wrap(labels)

    def transform(self, X: Any) -> Any:
        """Euclidean (not squared) distances of each row to every center, (n_samples, K).

        For ``metric="cosine"``, distances between the unit-normalized rows and the centers.
        """
        prepared, centers = self._prepare_new_data(X)
        out = distances_to_centers(prepared.source, centers, prepared.metric)
        return prepared.checked.kind.wrap(out.to(prepared.out_dtype))

    # ------------------------------------------------------------------------------ files

    def save(self, path: Any) -> None:
        """Write the fitted model to ``path`` (safetensors + JSON metadata), atomically.

        The file holds the centers, the training labels, the parameters, feature names, inertia,
        history, and the format and library versions. It cannot carry code: loading it never
        unpickles anything.
        """
        from .io import save_model

        self._check_fitted()
        save_model(self, path)

    @classmethod
    def load(cls, path: Any, device: Any = None) -> KMeans:
        """Read a model written by :meth:`save`.

        Centers come back as numpy arrays when the model was fitted on numpy data and as CPU
        tensors when it was fitted on tensors; ``device`` puts them (as tensors) on that device.
        A truncated, corrupt, foreign or pickle file raises :class:`ModelFileError`.
        """
        from .io import load_model

        return load_model(cls, path, device=device)  # type: ignore[no-any-return]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X against the fitted centers."""
        prepared, centers = self._prepare_new_data(X, sample_weight)
        _, inertia = assign_labels(prepared.source, centers, prepared.metric)
        return -inertia


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


class MiniBatchKMeans(_KMeansBase):
    """Mini-batch k-means, a drop-in for :class:`sklearn.cluster.MiniBatchKMeans`.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"}, array or callable, default="k-means++"
        As for :class:`KMeans`; seeding runs on ``init_size`` rows.
    max_iter : int, default=100
        Passes over the data (in steps of ``batch_size`` rows) before stopping.
    batch_size : int, default=1024
        Rows per mini-batch.
    verbose : int, default=0
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` with a full assignment pass after the fit.
    random_state : int, RandomState, Generator, torch.Generator or None, default=None
    tol : float, default=0.0
        Stop when the squared change of the centers in one step is at most ``tol`` times the
        mean feature variance (0 disables it).
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed batch inertia.
    init_size : int or None, default=None
        Rows used for seeding and for choosing among ``n_init`` seedings:
        ``3 * batch_size`` (at least ``3 * n_clusters``, at most n_samples).
    n_init : "auto" or int, default="auto"
        Seedings tried (the best on a validation sample of ``init_size`` rows is kept):
        "auto" is 1 for k-means++ and arrays, 3 for random and callables.
    reassignment_ratio : float, default=0.01
        Centers with less than this fraction of the largest accumulated weight are moved to
        random rows of the batch (every ``10 * n_clusters`` rows).
    metric : {"euclidean", "cosine"}, default="euclidean"
    device, dtype, chunk_size :
        As for :class:`KMeans`.
    distributed : bool, default=False
        Data-parallel fit over the default ``torch.distributed`` process group: every rank
        passes its shard to ``fit``; each step's mini-batch is drawn from every shard in
        proportion to its rows and its statistics are SUM-reduced, so every rank ends with the
        same centers (``labels_`` for its own rows). ``partial_fit`` stays local.

    Data may be any container :class:`KMeans` accepts, including memory-mapped arrays (random
    rows are read per step) and re-iterable sources of batches such as a DataLoader (each batch,
    split at ``batch_size`` rows, is one mini-batch, in the order the source yields them).

    Attributes
    ----------
    cluster_centers_, labels_, inertia_, n_iter_, n_steps_, n_features_in_, feature_names_in_
        As in scikit-learn. ``n_iter_`` counts passes over the data, ``n_steps_`` mini-batches.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        metric: str = "euclidean",
        device: Any = None,
        dtype: Any = None,
        chunk_size: int | None = None,
        distributed: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.metric = metric
        self.device = device
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.distributed = distributed

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centers with mini-batch steps over X (any container KMeans accepts).

        With ``distributed=True`` every rank passes its shard; each step's batch is drawn from
        every shard in proportion to its rows and its statistics are SUM-reduced, so every rank
        ends with the same centers.
        """
        fit_input = prepare_fit(X, sample_weight, self.get_params(deep=False), MINIBATCH_N_INIT)
        p, prepared = fit_input.params, fit_input.prepared
        self._n_init = p["n_init"]  # (scikit-learn's private attributes)
        self._init_size = minibatch.seed_size(
            p["init_size"], p["batch_size"], prepared.source.n_total, p["n_clusters"], warn=False
        )
        fitted = minibatch.fit(
            prepared.source,
            p["n_clusters"],
            init=fit_input.init,
            generator=fit_input.generator,
            n_init=p["n_init"],
            max_iter=p["max_iter"],
            batch_size=p["batch_size"],
            tol=p["tol"],
            max_no_improvement=p["max_no_improvement"],
            reassignment_ratio=p["reassignment_ratio"],
            init_size=p["init_size"],
            metric=prepared.metric,
            verbose=p["verbose"],
            comm=fit_input.comm,
        )
        self.n_steps_ = fitted.n_steps
        self.n_iter_ = fitted.n_iter
        self._set_state(
            prepared,
            fitted.state,
            fit_input.generator,
            compute_labels=p["compute_labels"],
            training=True,
            comm=fit_input.comm,
        )
        return self

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centers with one mini-batch step on X (the first call also seeds)."""
        params = self.get_params(deep=False)
        del params["distributed"]  # partial_fit stays local
        if not hasattr(self, "cluster_centers_"):
            fit_input = prepare_fit(X, sample_weight, params, MINIBATCH_N_INIT)
            p, prepared, generator = fit_input.params, fit_input.prepared, fit_input.generator
            state = minibatch.start(
                prepared.source,
                p["n_clusters"],
                init=fit_input.init,
                generator=generator,
                n_init=p["n_init"],
                init_size=p["init_size"],
                batch_size=p["batch_size"],
                metric=prepared.metric,
            )
            self.n_steps_ = 0
        else:
            del params["dtype"]  # later steps keep the dtype of the centers, as predict does
            p = check_params(params, MINIBATCH_N_INIT)
            prepared, centers = self._prepare_new_data(X, sample_weight, p)
            generator = make_generator(p["random_state"])
            if hasattr(self, "_rng_state"):
                generator.set_state(self._rng_state)
            state = minibatch.resume(
                centers,
                getattr(self, "_state_counts", None),
                getattr(self, "_since_reassign", 0),
                p["n_clusters"],
                prepared.source.device,
            )
            if not hasattr(self, "n_steps_"):
                self.n_steps_ = 0
        minibatch.partial_step(
            prepared.source,
            state,
            generator,
            n_clusters=p["n_clusters"],
            metric=prepared.metric,
            reassignment_ratio=p["reassignment_ratio"],
        )
        self.n_steps_ += 1
        self._set_state(
            prepared, state, generator, compute_labels=p["compute_labels"], training=False
        )
        return self

    def _set_state(
        self,
        prepared: Prepared,
        state: minibatch.MiniBatchState,
        generator: torch.Generator,
        *,
        compute_labels: bool,
        training: bool,
        comm: Comm = SINGLE,
    ) -> None:
        """The fitted attributes, and the state the next partial_fit step resumes from."""
        self._rng_state = generator.get_state()
        self._since_reassign = state.since_reassign
        self._state_counts = state.counts.cpu()
        self._set_centers(prepared, state.centers)
        labels, inertia = minibatch.summarize(
            prepared.source,
            state,
            compute_labels=compute_labels,
            training=training,
            out_dtype=prepared.out_dtype,
            metric=prepared.metric,
            comm=comm,
        )
        if labels is not None:
            self.labels_ = prepared.checked.kind.wrap(labels)
        if inertia is not None:
            self.inertia_ = inertia


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
