"""``MiniBatchKMeans``: a scikit-learn estimator over the mini-batch algorithm in
``_minibatch`` (see ``_estimator_base`` for what the estimators share)."""

from __future__ import annotations

from typing import Any

import torch

from . import _minibatch as minibatch
from ._distributed import SINGLE, Comm
from ._estimator_base import _KMeansBase
from ._functional import Prepared, prepare_fit
from ._params import MINIBATCH_N_INIT, check_params, make_generator


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
