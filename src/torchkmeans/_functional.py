"""The public functions ``kmeans`` and ``kmeans_plusplus``, and the fit boundary they share
with the estimators: check the parameters (``_params``), then the data (``_validation``),
build the source, hand it to a core."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from . import _bisect as bisect
from . import _validation as v
from . import _validation_batches as vb
from ._bounds import Workspace
from ._checkpoint import Checkpoint, describe_init
from ._core import FitResult, InitSpec, final_pass, fit
from ._distance import PreparedCenters, pairwise, prepare_rows
from ._distributed import SINGLE, Comm, agree, get_comm, join_shards, same_params_on_every_rank
from ._init import kmeans_plusplus_
from ._params import (
    BISECT_PARAMS,
    KMEANS_N_INIT,
    PARAMS,
    AutoNInit,
    Constraint,
    check_param,
    check_params,
    compute_dtype,
    make_generator,
    warn,
)
from ._sources import BatchSource, Source, SparseSource, TensorSource, default_chunk_size
from .exceptions import ParameterError


class KMeansResult(NamedTuple):
    """What :func:`kmeans` returns, in the caller's kind of array (numpy in, numpy out)."""

    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    history: list[dict[str, Any]]


@dataclass
class Prepared:
    """Everything the boundary learned and built for one call."""

    checked: v.CheckedData | vb.CheckedBatches
    source: Source
    out_dtype: torch.dtype
    metric: str


def prepare(
    X: Any,
    sample_weight: Any,
    *,
    n_clusters: int,
    metric: str,
    device: torch.device | None,
    dtype: torch.dtype | None,
    chunk_size: int | None,
    name: str = "X",
    allow_empty: bool = False,
    magnitude: float = 0.0,
) -> Prepared:
    """Check X and sample_weight and wrap them in a source on the compute device.

    X is an array-like or tensor (memory-mapped numpy arrays are read chunk by chunk, never
    copied whole), a re-iterable source of batches such as a DataLoader, or what
    ``_validation`` already checked. The other arguments are checked parameters.
    ``magnitude``: the largest absolute value of the centers that will meet X (an init array,
    fitted centers); with X's own, it decides whether distances need float64.
    """
    if isinstance(X, vb.CheckedBatches) or (
        not isinstance(X, v.CheckedData) and vb.is_batch_source(X)
    ):
        return _prepare_batches(
            X, sample_weight, n_clusters, metric, device, dtype, chunk_size, magnitude
        )
    checked = (
        X if isinstance(X, v.CheckedData) else v.check_array(X, name=name, allow_empty=allow_empty)
    )
    t = checked.X
    if metric == "cosine":
        v.check_nonzero_rows(t, name)
    out_dtype = dtype or (
        t.dtype
        if t.is_floating_point()
        else (checked.float_dtype if checked.sparse else integer_result_dtype(checked.kind))
    )
    v.check_fits_dtype(checked.max_abs, out_dtype, name)
    cdtype = v.compute_dtype_for(
        compute_dtype(out_dtype), max(checked.max_abs, magnitude), t.shape[1], metric, name
    )
    dev = device or t.device
    w = v.check_sample_weight(
        sample_weight, t.shape[0], cdtype, dev, require_positive=not allow_empty
    )
    rows = chunk_size or default_chunk_size(t.shape[1], n_clusters, sparse=checked.sparse)
    make_source = SparseSource if checked.sparse else TensorSource
    source = make_source(
        t,
        w,
        device=dev,
        dtype=cdtype,
        chunk_size=int(rows),
        out_of_core=checked.out_of_core,  # type: ignore[arg-type]
    )
    return Prepared(checked, source, out_dtype, metric)


def _prepare_batches(
    X: Any,
    sample_weight: Any,
    n_clusters: int,
    metric: str,
    dev: torch.device | None,
    requested: torch.dtype | None,
    chunk_size: int | None,
    magnitude: float = 0.0,
) -> Prepared:
    if sample_weight is not None:
        raise ParameterError(
            "sample_weight cannot be passed with a source of batches; yield (x, w) batches "
            "with one weight per row instead."
        )
    checked = X if isinstance(X, vb.CheckedBatches) else vb.check_batches(X)
    out_dtype = requested or (
        checked.dtype if checked.dtype.is_floating_point else torch.get_default_dtype()
    )
    v.check_fits_dtype(checked.max_abs, out_dtype)
    cdtype = v.compute_dtype_for(
        compute_dtype(out_dtype), max(checked.max_abs, magnitude), checked.n_features, metric
    )
    dev = dev or (checked.kind.device if checked.kind.is_tensor else None) or torch.device("cpu")
    rows = chunk_size or default_chunk_size(checked.n_features, n_clusters)
    source = BatchSource(
        checked.batches,
        vb.parse_batch,
        n_samples=checked.n_samples,
        n_features=checked.n_features,
        weighted=checked.weighted,
        storage_itemsize=checked.dtype.itemsize,
        device=dev,
        dtype=cdtype,
        chunk_size=int(rows),
        check=functools.partial(
            vb.check_same_batch, checked.checksums, n_features=checked.n_features
        )
        if checked.checksums
        else None,
    )
    if metric == "cosine":
        for chunk in source.chunks():
            v.check_nonzero_rows(chunk.x, "X")
    return Prepared(checked, source, out_dtype, metric)


def resolve_init(init: Any, prepared: Prepared, n_clusters: int) -> InitSpec:
    """Turn a checked ``init`` into what the core takes, validating arrays (they are data) and
    what a callable returns."""
    d = prepared.source.n_features
    if isinstance(init, str):
        return init
    if callable(init):
        user_init = init
        checked = prepared.checked
        if isinstance(checked, vb.CheckedBatches):
            x_user = checked.batches
        elif checked.sparse:
            x_user = checked.original  # the caller's sparse matrix, as scikit-learn passes it
        else:
            x_user = checked.kind.wrap(checked.X)

        def call(generator: torch.Generator) -> torch.Tensor:
            seed = int(torch.randint(0, np.iinfo(np.int32).max, (1,), generator=generator))
            centers = user_init(x_user, n_clusters, np.random.RandomState(seed))
            c = v.check_centers(centers, n_clusters, d, name="the centers returned by init")
            return _checked_centers(c, prepared.metric)

        return call
    c = v.check_centers(init, n_clusters, d)
    return _checked_centers(c, prepared.metric)


def split_init(init: Any, prepared: Prepared) -> bisect.SplitInit:
    """BisectingKMeans' checked ``init`` as each split takes it: a name, or the user's callable
    called on the rows of the leaf being split (the caller's kind of array) with
    ``n_clusters=2``, its result validated."""
    if isinstance(init, str):
        return init
    user_init = init
    kind, d = prepared.checked.kind, prepared.source.n_features

    def call(rows: Source, generator: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, np.iinfo(np.int32).max, (1,), generator=generator))
        x = bisect.source_rows(rows).X
        centers = user_init(kind.wrap(x), 2, np.random.RandomState(seed))
        c = v.check_centers(centers, 2, d, name="the centers returned by init")
        return _checked_centers(c, prepared.metric)

    return call


def _checked_centers(c: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        v.check_nonzero_rows(c, "init")
    return c


@dataclass
class FitInput:
    """What the fit boundary hands to a core: checked parameters, the data as a source, the
    initialization the core takes, the random stream and the process group."""

    params: dict[str, Any]
    prepared: Prepared
    init: InitSpec
    generator: torch.Generator
    comm: Comm


def prepare_fit(
    X: Any,
    sample_weight: Any,
    params: Mapping[str, Any],
    auto_n_init: AutoNInit = KMEANS_N_INIT,
    table: Mapping[str, Constraint] = PARAMS,
) -> FitInput:
    """The fit boundary of KMeans, MiniBatchKMeans, BisectingKMeans and kmeans: the parameters
    (``table`` in ``_params``), then the data (``_validation``) and its source, then what
    depends on both (``n_clusters`` against the rows, an ``init`` array against the features).

    ``params`` are the parameters as the user gave them; without a ``distributed`` entry the
    fit is local. With ``distributed=True`` every rank checks its own shard and the ranks agree
    on the outcome of every step: bad input on one rank makes every rank raise (no rank is left
    waiting in a collective).
    """
    comm = SINGLE
    if "distributed" in params:
        comm = get_comm(check_param("distributed", params["distributed"]))
    rest = {name: value for name, value in params.items() if name != "distributed"}

    def setup() -> tuple[dict[str, Any], torch.Generator, Prepared]:
        p = check_params(rest, auto_n_init, table)
        generator = make_generator(p["random_state"])
        prepared = prepare(
            X,
            sample_weight,
            n_clusters=p["n_clusters"],
            metric=p["metric"],
            device=p["device"],
            dtype=p["dtype"],
            chunk_size=p["chunk_size"],
            allow_empty=comm.distributed,
            magnitude=_magnitude(p["init"]),
        )
        return p, generator, prepared

    p, generator, prepared = agree(comm, setup)
    if comm.distributed:
        same_params_on_every_rank(comm, p)
        agree(comm, lambda: join_shards(comm, prepared, generator))

    def finish_setup() -> InitSpec:
        v.check_n_samples(prepared.source.n_total, p["n_clusters"])
        return resolve_init(p["init"], prepared, p["n_clusters"])

    init = agree(comm, finish_setup)
    return FitInput(p, prepared, init, generator, comm)


def _magnitude(init: Any) -> float:
    """The largest absolute value of an init array (0.0 for a name, a callable, or what is
    not an array of numbers: the init check reports that)."""
    if isinstance(init, str) or callable(init):
        return 0.0
    try:
        t = torch.as_tensor(init.detach() if isinstance(init, torch.Tensor) else np.asarray(init))
        return float(t.abs().max()) if t.numel() and t.dtype.is_floating_point else 0.0
    except (TypeError, ValueError, RuntimeError):
        return 0.0


def integer_result_dtype(kind: v.OutputKind) -> torch.dtype:
    """The dtype integer and bool data is clustered in: float64 for numpy, pandas and lists (as
    scikit-learn does), torch's default dtype for tensors."""
    return torch.get_default_dtype() if kind.is_tensor else torch.float64


def run_fit(
    X: Any, sample_weight: Any, params: Mapping[str, Any]
) -> tuple[FitResult, Prepared, dict[str, Any]]:
    """A k-means fit (``KMeans.fit``, :func:`kmeans`): the fit boundary, then the Lloyd core.
    Returns the result, the prepared data and the checked parameters."""
    fit_input = prepare_fit(X, sample_weight, params)
    p, prepared, comm = fit_input.params, fit_input.prepared, fit_input.comm
    source = prepared.source
    k = p["n_clusters"]
    seed_rows = resolve_init_size(p["init_size"], source, k, comm)
    ckpt = None
    if p["checkpoint"] is not None:
        random_state = p["random_state"]
        ckpt = Checkpoint(
            p["checkpoint"],
            {
                "n_clusters": k,
                "init": describe_init(p["init"]),
                "n_init": p["n_init"],
                "max_iter": p["max_iter"],
                "tol": p["tol"],
                "metric": prepared.metric,
                # an integer seed by value (np.int64 too); a generator object by type
                "random_state": int(random_state)
                if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
                else type(random_state).__name__,
                "dtype": str(prepared.out_dtype),
                "device": source.device.type,
                "init_size": seed_rows,
                "world_size": comm.world_size,
            },
        )
    result = fit(
        source,
        k,
        init=fit_input.init,
        n_init=p["n_init"],
        max_iter=p["max_iter"],
        tol=p["tol"],
        metric=prepared.metric,
        generator=fit_input.generator,
        out_dtype=prepared.out_dtype,
        verbose=p["verbose"],
        init_size=seed_rows,
        checkpoint=ckpt,
        comm=comm,
    )
    return result, prepared, p


def run_bisect(
    X: Any, sample_weight: Any, params: Mapping[str, Any]
) -> tuple[bisect.BisectResult, Prepared]:
    """A bisecting k-means fit (``BisectingKMeans.fit``): the fit boundary, then the tree."""
    fit_input = prepare_fit(X, sample_weight, params, table=BISECT_PARAMS)
    p, prepared = fit_input.params, fit_input.prepared
    source = prepared.source
    if p["chunk_size"] is None:  # every Lloyd run of a bisection has two centers
        source.chunk_size = default_chunk_size(source.n_features, 2)
    result = bisect.fit(
        source,
        p["n_clusters"],
        init=split_init(p["init"], prepared),
        n_init=p["n_init"],
        max_iter=p["max_iter"],
        tol=p["tol"],
        metric=prepared.metric,
        strategy=p["bisecting_strategy"],
        generator=fit_input.generator,
        out_dtype=prepared.out_dtype,
        verbose=p["verbose"],
    )
    return result, prepared


# Seeding on out-of-core data runs on a sample of about this many bytes (see resolve_init_size).
INIT_SAMPLE_BYTES = 16 << 20
INIT_SAMPLE_MAX_ROWS = 1 << 18


def default_init_size(n_samples: int, n_features: int, n_clusters: int) -> int:
    """Rows that k-means++ and random init use on memory-mapped arrays and loaders:
    ``max(3 * n_clusters, min(2**18, 16 MB / (4 * n_features)))``, at most ``n_samples``."""
    rows = min(INIT_SAMPLE_MAX_ROWS, INIT_SAMPLE_BYTES // (4 * max(n_features, 1)))
    return min(n_samples, max(3 * n_clusters, rows))


def resolve_init_size(
    init_size: int | None, source: Source, n_clusters: int, comm: Comm = SINGLE
) -> int | None:
    """The rows seeding runs on; None means every row (in-memory data, no init_size given)."""
    n = source.n_total
    out_of_core = any(comm.all_gather_object(source.out_of_core))
    if init_size is None:
        if not out_of_core:
            return None
        return default_init_size(n, source.n_features, n_clusters)
    if init_size < n_clusters:
        warn(
            f"init_size={init_size} should be larger than n_clusters={n_clusters}. Setting it "
            f"to min(3 * n_clusters, n_samples).",
            RuntimeWarning,
        )
        init_size = 3 * n_clusters
    return None if init_size >= n else init_size


def kmeans(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
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
) -> KMeansResult:
    """Cluster ``X`` into ``n_clusters`` groups with Lloyd's algorithm.

    Parameters are those of :class:`torchkmeans.KMeans`.

    Returns
    -------
    KMeansResult
        ``(centers, labels, inertia, n_iter, history)``; ``centers`` and ``labels`` come back
        as the kind of array ``X`` was (numpy in, numpy out; a tensor in, a tensor out on the
        input's device).

    Examples
    --------
    >>> import numpy as np
    >>> from torchkmeans import kmeans
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    >>> result = kmeans(X, 2, random_state=0)
    >>> sorted(result.centers.tolist())
    [[0.0, 0.5], [10.0, 0.5]]
    >>> float(result.inertia)
    1.0
    """
    result, prepared, _ = run_fit(
        X,
        sample_weight,
        {
            "n_clusters": n_clusters,
            "init": init,
            "n_init": n_init,
            "max_iter": max_iter,
            "tol": tol,
            "metric": metric,
            "random_state": random_state,
            "device": device,
            "dtype": dtype,
            "verbose": verbose,
            "algorithm": algorithm,
            "copy_x": copy_x,
            "chunk_size": chunk_size,
            "init_size": init_size,
            "checkpoint": checkpoint,
            "distributed": distributed,
        },
    )
    kind = prepared.checked.kind
    return KMeansResult(
        centers=kind.wrap(result.centers.to(prepared.out_dtype)),
        labels=kind.wrap(result.labels),
        inertia=result.inertia,
        n_iter=result.n_iter,
        history=result.history,
    )


def k_means(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    init: Any = "k-means++",
    n_init: int | str = "auto",
    max_iter: int = 300,
    verbose: int | bool = False,
    tol: float = 1e-4,
    random_state: Any = None,
    copy_x: bool = True,
    algorithm: str = "lloyd",
    return_n_iter: bool = False,
    **options: Any,
) -> tuple[Any, ...]:
    """scikit-learn's :func:`sklearn.cluster.k_means`: the same signature and return tuple.

    ``options`` are the other parameters of :class:`torchkmeans.KMeans` (``metric``,
    ``device``, ``dtype``, ``chunk_size``, ``init_size``, ``checkpoint``, ``distributed``).

    Returns
    -------
    centroid : array of shape (n_clusters, n_features)
    label : array of shape (n_samples,)
    inertia : float
    best_n_iter : int
        Only when ``return_n_iter`` is True.
    """
    want_n_iter = check_param("return_n_iter", return_n_iter)
    result = kmeans(
        X,
        n_clusters,
        sample_weight=sample_weight,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        verbose=verbose,
        tol=tol,
        random_state=random_state,
        copy_x=copy_x,
        algorithm=algorithm,
        **options,
    )
    if want_n_iter:
        return result.centers, result.labels, result.inertia, result.n_iter
    return result.centers, result.labels, result.inertia


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    x_squared_norms: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
    metric: str = "euclidean",
    device: Any = None,
    dtype: Any = None,
    chunk_size: int | None = None,
) -> tuple[Any, Any]:
    """Greedy k-means++ seeding, weighted by ``sample_weight``.

    ``x_squared_norms`` (scikit-learn's precomputed squared row norms, shape (n_samples,)) is
    checked and not needed: distances are computed from the rows themselves.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        Rows of ``X`` chosen as initial centers.
    indices : array of shape (n_clusters,)
        Their row indices in ``X``.
    """
    p = check_params(
        {
            "n_clusters": n_clusters,
            "n_local_trials": n_local_trials,
            "random_state": random_state,
            "metric": metric,
            "device": device,
            "dtype": dtype,
            "chunk_size": chunk_size,
        }
    )
    k = p["n_clusters"]
    generator = make_generator(p["random_state"])
    prepared = prepare(
        X,
        sample_weight,
        n_clusters=k,
        metric=p["metric"],
        device=p["device"],
        dtype=p["dtype"],
        chunk_size=p["chunk_size"],
    )
    v.check_n_samples(prepared.source.n_samples, k)
    if x_squared_norms is not None:
        v.check_squared_norms(x_squared_norms, prepared.source.n_samples)
    shift = None
    if prepared.metric == "euclidean":
        from ._core import data_moments, seeding_shift

        mean, _, _ = data_moments(prepared.source, "euclidean")
        shift = seeding_shift(prepared.source, "euclidean", mean)
    source = prepared.source
    if isinstance(source, BatchSource):  # seeding needs random access: read the batches once
        source = source.sample(torch.arange(source.n_samples))
    centers, indices = kmeans_plusplus_(
        source,
        k,
        generator,
        metric=prepared.metric,
        shift=shift,
        n_local_trials=p["n_local_trials"],
    )
    kind = prepared.checked.kind
    return kind.wrap(centers.to(prepared.out_dtype)), kind.wrap(indices)


def assign_labels(source: Source, centers: torch.Tensor, metric: str) -> tuple[torch.Tensor, float]:
    """Labels of every row and the weighted inertia against ``centers`` (predict, score)."""
    labels = torch.empty(source.n_samples, dtype=torch.long, device=source.device)
    workspace = Workspace(source.chunk_size, int(centers.shape[0]), source.dtype, source.device)
    stats = final_pass(source, centers, metric, labels, workspace)
    return labels, float(stats.inertia.sum())


def distances_to_centers(source: Source, centers: torch.Tensor, metric: str) -> torch.Tensor:
    """Euclidean (not squared) distances of every row to every center, filled chunk by chunk.

    For cosine, the Euclidean distance between the unit-normalized row and the unit centers.
    """
    pc = PreparedCenters(centers, metric, None, sparse=source.sparse)
    out = torch.empty(source.n_samples, pc.n_clusters, dtype=source.dtype, device=source.device)
    for chunk in source.chunks():
        m = chunk.x.shape[0]
        d = pairwise(
            prepare_rows(chunk.x, metric, pc.shift), pc, out=out[chunk.start : chunk.start + m]
        )
        if metric == "cosine":
            d.mul_(2.0)
        d.sqrt_()
    return out
