"""The public functions ``kmeans`` and ``kmeans_plusplus``, and the fit boundary they share
with the estimator: check parameters and data once, build the source, call the core."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from . import _validation as v
from . import exceptions
from ._bounds import Workspace
from ._checkpoint import Checkpoint, describe_init
from ._core import FitResult, InitSpec, final_pass, fit
from ._distance import PreparedCenters, pairwise, prepare_rows
from ._distributed import SINGLE, Comm, get_comm
from ._init import kmeans_plusplus_
from ._sources import BatchSource, Source, TensorSource, default_chunk_size
from .exceptions import DataError, ParameterError, TorchKMeansError


class KMeansResult(NamedTuple):
    """What :func:`kmeans` returns, in the caller's kind of array (numpy in, numpy out)."""

    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    history: list[dict[str, Any]]


def make_generator(random_state: object) -> torch.Generator:
    """A CPU generator from ``random_state``: None (fresh entropy), an int, a numpy
    RandomState / Generator, or a CPU ``torch.Generator`` (used as is)."""
    if isinstance(random_state, torch.Generator):
        if random_state.device.type != "cpu":
            raise ParameterError(
                f"random_state must be a CPU torch.Generator, got one on {random_state.device}."
            )
        return random_state
    g = torch.Generator()
    if random_state is None:
        g.seed()
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if not 0 <= int(random_state) < 2**64:
            raise ParameterError(f"random_state must be in [0, 2**64), got {random_state}.")
        g.manual_seed(int(random_state))
    elif isinstance(random_state, np.random.RandomState):
        g.manual_seed(int(random_state.randint(np.iinfo(np.int32).max)))
    elif isinstance(random_state, np.random.Generator):
        g.manual_seed(int(random_state.integers(2**63)))
    else:
        raise ParameterError(
            "random_state must be None, an int, a numpy RandomState or Generator, or a CPU "
            f"torch.Generator, got {type(random_state).__name__}."
        )
    return g


@dataclass
class Prepared:
    """Everything the boundary learned and built for one call."""

    checked: v.CheckedData | v.CheckedBatches
    source: Source
    out_dtype: torch.dtype
    metric: str


def prepare(
    X: Any,
    sample_weight: Any,
    *,
    n_clusters: int,
    metric: str,
    device: object,
    dtype: object,
    chunk_size: object,
    name: str = "X",
    allow_empty: bool = False,
) -> Prepared:
    """Check X and sample_weight and wrap them in a source on the compute device.

    X is an array-like or tensor (memory-mapped numpy arrays are read chunk by chunk, never
    copied whole), or a re-iterable source of batches such as a DataLoader.
    """
    metric = v.check_metric(metric)
    dev = v.check_device(device)
    requested = v.check_dtype(dtype)
    if chunk_size is not None:
        chunk_size = v.check_int("chunk_size", chunk_size, 1)
    if isinstance(X, v.CheckedBatches) or (
        not isinstance(X, v.CheckedData) and v.is_batch_source(X)
    ):
        return _prepare_batches(X, sample_weight, n_clusters, metric, dev, requested, chunk_size)
    checked = (
        X if isinstance(X, v.CheckedData) else v.check_array(X, name=name, allow_empty=allow_empty)
    )
    t = checked.X
    if metric == "cosine":
        v.check_nonzero_rows(t, name)
    out_dtype = requested or (t.dtype if t.is_floating_point() else torch.float32)
    cdtype = v.compute_dtype(out_dtype)
    dev = dev or t.device
    w = v.check_sample_weight(
        sample_weight, t.shape[0], cdtype, dev, require_positive=not allow_empty
    )
    rows = chunk_size or default_chunk_size(t.shape[1], n_clusters)
    source = TensorSource(
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
    chunk_size: object,
) -> Prepared:
    if sample_weight is not None:
        raise ParameterError(
            "sample_weight cannot be passed with a source of batches; yield (x, w) batches "
            "with one weight per row instead."
        )
    checked = X if isinstance(X, v.CheckedBatches) else v.check_batches(X)
    out_dtype = requested or (checked.dtype if checked.dtype.is_floating_point else torch.float32)
    cdtype = v.compute_dtype(out_dtype)
    dev = dev or (checked.kind.device if checked.kind.is_tensor else None) or torch.device("cpu")
    rows = chunk_size or default_chunk_size(checked.n_features, n_clusters)
    source = BatchSource(
        checked.batches,
        v.parse_batch,
        n_samples=checked.n_samples,
        n_features=checked.n_features,
        weighted=checked.weighted,
        storage_itemsize=checked.dtype.itemsize,
        device=dev,
        dtype=cdtype,
        chunk_size=int(rows),  # type: ignore[call-overload]
    )
    if metric == "cosine":
        for chunk in source.chunks():
            v.check_nonzero_rows(chunk.x, "X")
    return Prepared(checked, source, out_dtype, metric)


def resolve_init(init: object, prepared: Prepared, n_clusters: int) -> InitSpec:
    """Turn a user ``init`` into what the core takes, validating arrays and callable results."""
    init = v.check_init(init)
    d = prepared.source.n_features
    if isinstance(init, str):
        return init
    if callable(init):
        user_init = init
        checked = prepared.checked
        x_user = (
            checked.kind.wrap(checked.X) if isinstance(checked, v.CheckedData) else checked.batches
        )

        def call(generator: torch.Generator) -> torch.Tensor:
            seed = int(torch.randint(0, np.iinfo(np.int32).max, (1,), generator=generator))
            centers = user_init(x_user, n_clusters, np.random.RandomState(seed))
            c = v.check_centers(centers, n_clusters, d, name="the centers returned by init")
            return _checked_centers(c, prepared.metric)

        return call
    c = v.check_centers(init, n_clusters, d)
    return _checked_centers(c, prepared.metric)


def _checked_centers(c: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        v.check_nonzero_rows(c, "init")
    return c


def run_fit(
    X: Any,
    sample_weight: Any,
    *,
    n_clusters: object,
    init: object,
    n_init: object,
    max_iter: object,
    tol: object,
    metric: object,
    random_state: object,
    device: object,
    dtype: object,
    verbose: object,
    chunk_size: object,
    init_size: object = None,
    checkpoint: object = None,
    distributed: object = False,
) -> tuple[FitResult, Prepared]:
    """The whole fit boundary: every check, then one call into the core.

    With ``distributed=True`` every rank checks its shard and the ranks agree on the outcome
    first: bad data on one rank makes every rank raise (no rank is left waiting in a
    collective).
    """
    comm = get_comm(v.check_distributed(distributed))

    def setup() -> tuple[Any, ...]:
        k = v.check_int("n_clusters", n_clusters, 1)
        init_size_ = v.check_init_size(init_size)
        checkpoint_path = v.check_checkpoint(checkpoint)
        max_iter_ = v.check_int("max_iter", max_iter, 1)
        tol_ = v.check_tol(tol)
        verbose_ = v.check_verbose(verbose)
        v.check_init(init)
        n_init_ = v.resolve_n_init(n_init, init)
        generator = make_generator(random_state)
        prepared = prepare(
            X,
            sample_weight,
            n_clusters=k,
            metric=v.check_metric(metric),
            device=device,
            dtype=dtype,
            chunk_size=chunk_size,
            allow_empty=comm.distributed,
        )
        return (
            k,
            init_size_,
            checkpoint_path,
            max_iter_,
            tol_,
            verbose_,
            n_init_,
            generator,
            prepared,
        )

    k, init_size_, checkpoint_path, max_iter_, tol_, verbose_, n_init_, generator, prepared = agree(
        comm, setup
    )
    source = prepared.source
    if comm.distributed:
        agree(comm, lambda: join_shards(comm, prepared, generator))

    def finish_setup() -> tuple[Any, ...]:
        v.check_n_clusters(k, source.n_total)
        init_spec = resolve_init(init, prepared, k)
        seed_rows = resolve_init_size(init_size_, source, k, comm)
        return init_spec, seed_rows

    init_spec, seed_rows = agree(comm, finish_setup)
    ckpt = None
    if checkpoint_path is not None:
        ckpt = Checkpoint(
            checkpoint_path,
            {
                "n_clusters": k,
                "init": describe_init(init),
                "n_init": n_init_,
                "max_iter": max_iter_,
                "tol": tol_,
                "metric": prepared.metric,
                "random_state": random_state
                if isinstance(random_state, int) and not isinstance(random_state, bool)
                else type(random_state).__name__,
                "dtype": str(prepared.out_dtype),
                "device": source.device.type,
                "init_size": seed_rows,
                "world_size": comm.world_size,
            },
        )
    result = fit(
        prepared.source,
        k,
        init=init_spec,
        n_init=n_init_,
        max_iter=max_iter_,
        tol=tol_,
        metric=prepared.metric,
        generator=generator,
        out_dtype=prepared.out_dtype,
        verbose=verbose_,
        init_size=seed_rows,
        checkpoint=ckpt,
        comm=comm,
    )
    return result, prepared


def agree(comm: Comm, step: Callable[[], Any]) -> Any:
    """Run a validation step on every rank; if it fails on any rank, raise on every rank.

    The rank that failed raises its own error; the others raise the same kind of error naming
    that rank and its message. On one process, just run the step.
    """
    if not comm.distributed:
        return step()
    try:
        value, failure = step(), None
    except TorchKMeansError as exc:
        value, failure = None, exc
    reports = comm.all_gather_object(
        None if failure is None else (type(failure).__name__, str(failure))
    )
    if failure is not None:
        raise failure
    for rank, report in enumerate(reports):
        if report is not None:
            kind = getattr(exceptions, report[0], DataError)
            raise kind(f"rank {rank} failed: {report[1]}")
    return value


def join_shards(comm: Comm, prepared: Prepared, generator: torch.Generator) -> None:
    """Check that the shards agree (features, dtype), record the global row count and this
    shard's offset, and give every rank rank 0's random stream."""
    source = prepared.source
    w = source.sample_weight
    positive = source.n_samples > 0 and (w is None or bool((w > 0).any()))
    mine = (source.n_samples, source.n_features, str(prepared.out_dtype), positive)
    shards = comm.all_gather_object(mine)
    for rank, (_, d, dtype, _) in enumerate(shards):
        if d != shards[0][1]:
            raise DataError(
                f"rank {rank} has data with {d} features, rank 0 with {shards[0][1]}: every "
                "shard must have the same columns."
            )
        if dtype != shards[0][2]:
            raise DataError(
                f"rank {rank} computes in {dtype}, rank 0 in {shards[0][2]}: pass shards of "
                "one dtype (or set dtype=)."
            )
    source.n_total = sum(s[0] for s in shards)
    source.offset = sum(s[0] for s in shards[: comm.rank])
    if source.n_total == 0:
        raise DataError("every shard is empty: the fit needs at least one row on some rank.")
    if not any(s[3] for s in shards):
        raise DataError(
            "sample_weight is zero for every row of every shard; expected a positive weight."
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    generator.manual_seed(int(comm.broadcast_object(seed)))


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
        warnings.warn(
            f"init_size={init_size} should be larger than n_clusters={n_clusters}. Setting it "
            f"to min(3 * n_clusters, n_samples).",
            RuntimeWarning,
            stacklevel=4,
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
    result, prepared = run_fit(
        X,
        sample_weight,
        n_clusters=n_clusters,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        metric=metric,
        random_state=random_state,
        device=device,
        dtype=dtype,
        verbose=verbose,
        chunk_size=chunk_size,
        init_size=init_size,
        checkpoint=checkpoint,
        distributed=distributed,
    )
    kind = prepared.checked.kind
    return KMeansResult(
        centers=kind.wrap(result.centers.to(prepared.out_dtype)),
        labels=kind.wrap(result.labels),
        inertia=result.inertia,
        n_iter=result.n_iter,
        history=result.history,
    )


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
    metric: str = "euclidean",
    device: Any = None,
    dtype: Any = None,
    chunk_size: int | None = None,
) -> tuple[Any, Any]:
    """Greedy k-means++ seeding, weighted by ``sample_weight``.

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        Rows of ``X`` chosen as initial centers.
    indices : array of shape (n_clusters,)
        Their row indices in ``X``.
    """
    k = v.check_int("n_clusters", n_clusters, 1)
    trials = None if n_local_trials is None else v.check_int("n_local_trials", n_local_trials, 1)
    generator = make_generator(random_state)
    prepared = prepare(
        X,
        sample_weight,
        n_clusters=k,
        metric=metric,
        device=device,
        dtype=dtype,
        chunk_size=chunk_size,
    )
    v.check_n_clusters(k, prepared.source.n_samples)
    shift = None
    if prepared.metric == "euclidean":
        from ._core import data_moments

        shift, _, _ = data_moments(prepared.source, "euclidean")
    source = prepared.source
    if isinstance(source, BatchSource):  # seeding needs random access: read the batches once
        source = source.sample(torch.arange(source.n_samples))
    centers, indices = kmeans_plusplus_(
        source,
        k,
        generator,
        metric=prepared.metric,
        shift=shift,
        n_local_trials=trials,
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
    pc = PreparedCenters(centers, metric, None)
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
