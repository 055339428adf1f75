"""One Lloyd iteration, split into an additive per-chunk update and a finalize step.

``accumulate`` walks the source once and returns :class:`LloydStats`, whose every field is a sum
over rows, so statistics from chunks, loaders or ranks combine with a plain SUM. ``finalize``
turns them into new centers. Empty clusters are refilled by :func:`relocate_empty_clusters`.
Prior validation of data is assumed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from . import _native
from ._distance import (
    PreparedCenters,
    assign,
    assign_with_bound,
    exact_distance,
    metric_distance,
    prepare_rows,
)
from ._distributed import SINGLE, Comm
from ._sources import Chunk, Source, TensorSource


def accumulation_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """Per-cluster sums are kept in float64 on the CPU (exact, order-fixed), float32 on GPUs
    for float32 data (float64 atomics are slow there)."""
    if dtype == torch.float64 or device.type == "cpu":
        return torch.float64
    return torch.float32


@dataclass
class LloydStats:
    """Sufficient statistics of one assignment pass. Every field reduces across ranks by SUM."""

    sums: torch.Tensor  # (K, D) weighted sums of prepared rows      reduce: SUM
    weights: torch.Tensor  # (K,) sum of sample weights per cluster   reduce: SUM
    counts: torch.Tensor  # (K,) rows of positive weight per cluster  reduce: SUM
    inertia: torch.Tensor  # (K,) weighted distances per cluster      reduce: SUM
    changed: torch.Tensor  # () labels that differ from the last pass reduce: SUM

    def reduce_(self, comm: Comm) -> None:
        """SUM over ranks, in one packed collective (float64, so counts stay exact)."""
        if not comm.distributed:
            return
        parts = [self.sums.reshape(-1), self.weights, self.counts, self.inertia]
        flat = torch.cat(
            [t.to(torch.float64) for t in parts] + [self.changed.to(torch.float64).reshape(1)]
        )
        comm.all_reduce_(flat)
        offset = 0
        for t in parts:
            n = t.numel()
            t.copy_(flat[offset : offset + n])
            offset += n
        self.changed.copy_(flat[offset].to(torch.int64))

    @classmethod
    def zeros(cls, k: int, d: int, dtype: torch.dtype, device: torch.device) -> LloydStats:
        return cls(
            sums=torch.zeros(k, d, dtype=dtype, device=device),
            weights=torch.zeros(k, dtype=dtype, device=device),
            counts=torch.zeros(k, dtype=dtype, device=device),
            inertia=torch.zeros(k, dtype=dtype, device=device),
            changed=torch.zeros((), dtype=torch.int64, device=device),
        )


# Relative safety margin of the pruning test (covers rounding in the distances and bounds).
_PRUNE_MARGIN = 1e-5
# Bounds cost 8 bytes per row (float64: they are stored with an offset that can be large, and
# float32 would round them upward); they are kept when that is at most this many bytes or 5% of
# the data, so that pruning never breaks the memory contract.
_BOUNDS_BYTES = 32 << 20


class Bounds:
    """Hamerly's bounds (Hamerly 2010): for each row, a lower bound on its distance to every
    center other than its own, so a pass can skip the rows whose center cannot have changed.

    The upper bound is not stored: the distance of each row to its current center is computed
    exactly every pass anyway (for the inertia), and a row is skipped when that distance is below
    both its lower bound and half the distance from its center to the nearest other center.
    Skipped rows keep a label that is provably the exact nearest center, so a pruned pass gives
    the same labels, sums and inertia, bit for bit, as a full one.

    Lower bounds are stored as ``bound + drift`` at the time they were computed, where ``drift``
    sums the largest center movement of every update since, so one scalar ages all of them.
    """

    def __init__(self, n: int, device: torch.device) -> None:
        self.lower = torch.zeros(n, dtype=torch.float64, device=device)
        self.drift = 0.0
        self.valid = False

    @staticmethod
    def affordable(source: Source) -> bool:
        """Bounds fit the memory contract: always within ``_BOUNDS_BYTES``; for data held in
        memory, also when they are at most 5% of it. Out-of-core data (memory-mapped files,
        loaders) gets no such allowance: its fit must stay within a fixed anonymous memory."""
        need = 8 * source.n_samples
        if need <= _BOUNDS_BYTES:
            return True
        return not source.out_of_core and need <= 0.05 * source.data_bytes

    def moved(self, old: torch.Tensor, new: torch.Tensor) -> None:
        """Age the bounds by the largest center movement from ``old`` to ``new``."""
        self.age(float(((new - old).to(torch.float64) ** 2).sum(dim=1).max()))

    def age(self, largest_sq: float) -> None:
        """Age the bounds by a movement whose square is ``largest_sq``."""
        self.drift += largest_sq**0.5 * (1.0 + _PRUNE_MARGIN)

    def store(self, start: int, rows: torch.Tensor | None, lower: torch.Tensor) -> None:
        value = lower.to(torch.float64) * (1.0 - _PRUNE_MARGIN) + self.drift
        if rows is None:
            self.lower[start : start + value.shape[0]] = value
        else:
            self.lower[start + rows] = value


def half_gaps(pc: PreparedCenters) -> torch.Tensor:
    """Half the distance from each center to its nearest other center: a lower bound (float64).

    Distances come from the ``|a|^2 - 2 a.b + |b|^2`` identity, minus its worst-case rounding
    error, so the result never exceeds the true half gap, even for near-duplicate centers. A row
    closer to its center than this cannot be closer to any other center.
    """
    c = pc.c.to(torch.float64)
    k = c.shape[0]
    gaps = torch.empty(k, dtype=torch.float64, device=c.device)
    sq = (c * c).sum(dim=1)
    err = 8.0 * torch.finfo(torch.float64).eps * max(1.0, c.shape[1] ** 0.5)
    step = max(1, (1 << 20) // max(k, 1))
    for start in range(0, k, step):
        block = c[start : start + step]
        bsq = sq[start : start + step, None]
        d2 = bsq - 2.0 * block @ c.T + sq[None, :]
        d2.sub_(err * (bsq + sq[None, :])).clamp_min_(0.0)
        d2[torch.arange(block.shape[0]), torch.arange(start, start + block.shape[0])] = float("inf")
        gaps[start : start + step] = d2.amin(dim=1)
    # (for cosine the centers are unit vectors: these are chordal distances, a metric too)
    return gaps.sqrt_().mul_(0.5 * (1.0 - _PRUNE_MARGIN))


def _native_gaps(pc: PreparedCenters) -> torch.Tensor:
    """:func:`half_gaps` by the native kernel (``tk_gaps``: an assignment pass over the centers,
    threaded, with no torch operation that would leave OpenMP workers spinning on the cores
    the next pass needs), in the centers' dtype."""
    lib = _native.library()
    assert lib is not None and pc.c_sq is not None and pc.shift is not None
    centers = pc.centers.contiguous()
    k, d = centers.shape
    fn = lib.tk_gaps_f32 if centers.dtype == torch.float32 else lib.tk_gaps_f64
    gaps = torch.empty(k, dtype=centers.dtype)
    c_sq = pc.c_sq.contiguous()
    status = fn(
        k, d, centers.data_ptr(), pc.shift.contiguous().data_ptr(), pc.c.contiguous().data_ptr(),
        c_sq.data_ptr(), float(c_sq.max()), int(d <= _NATIVE_EXACT_MAX_D), gaps.data_ptr(),
        _pass_threads(k, k, d)[0],
    )  # fmt: skip
    if status != 0:
        raise MemoryError("the native k-means kernel could not allocate its buffers")
    return gaps


class Workspace:
    """Buffers allocated once per fit and reused by every chunk of every pass."""

    def __init__(self, chunk_size: int, n_clusters: int, dtype: torch.dtype, device: torch.device):
        self.scores = torch.empty(chunk_size, n_clusters, dtype=dtype, device=device)
        # Per-row distances of the last native pass (see keep_distances) and its centers.
        self.distances: torch.Tensor | None = None
        self.distances_for: PreparedCenters | None = None

    def keep_distances(self, source: Source) -> None:
        """Keep every row's distance from the native passes, so that refilling empty clusters
        needs no extra pass over the data; only for in-memory CPU data, within the memory the
        bounds may use."""
        if (
            isinstance(source, TensorSource)
            and source.device.type == "cpu"
            and _in_place(source)
            and not source.out_of_core
            and Bounds.affordable(source)
        ):
            self.distances = torch.empty(source.n_samples, dtype=source.dtype)

    def scores_for(self, rows: int) -> torch.Tensor:
        return self.scores[:rows]


def accumulate(
    source: Source,
    pc: PreparedCenters,
    labels: torch.Tensor | None,
    workspace: Workspace,
    *,
    update: bool = True,
    bounds: Bounds | None = None,
) -> LloydStats:
    """Assign every row to its nearest center and sum what the update step needs.

    ``labels`` (int64, length n_samples), when given, is overwritten with the new labels and the
    number of rows whose label changed is counted. With ``update=False`` only labels, counts,
    weights and inertia are computed (the final assignment pass and ``predict``). With
    ``bounds`` (and ``labels`` from the previous pass), rows whose center provably did not
    change skip the distance computation to all centers.
    """
    k, d = pc.n_clusters, source.n_features
    acc = accumulation_dtype(source.dtype, source.device)
    stats = LloydStats.zeros(k, d, acc, source.device)
    gaps = None
    native = source.device.type == "cpu" and _native.supports(pc.c, pc.metric)
    if bounds is not None and bounds.valid and labels is not None:
        gaps = _native_gaps(pc) if native else half_gaps(pc).to(source.dtype)
    if native:
        keep = workspace.distances if labels is not None else None
        _accumulate_native(
            source, pc, labels, stats, update, bounds, gaps, workspace_distances=keep
        )
        workspace.distances_for = pc if keep is not None else None
        return stats
    for chunk in source.chunks():
        m = chunk.x.shape[0]
        xs = prepare_rows(chunk.x, pc.metric, pc.shift)
        if gaps is not None and bounds is not None and labels is not None:
            previous = labels[chunk.start : chunk.start + m]
            lab, dist = _assign_pruned(xs, pc, previous, gaps, bounds, chunk.start, workspace)
        elif bounds is not None:
            lab, dist, lower = assign_with_bound(xs, pc, out=workspace.scores_for(m))
            bounds.store(chunk.start, None, lower)
        else:
            lab, dist = assign(xs, pc, out=workspace.scores_for(m))
        if labels is not None:
            seg = labels[chunk.start : chunk.start + m]
            stats.changed += (seg != lab).sum()
            seg.copy_(lab)
        w = chunk.w
        if w is None:
            # unweighted: weights and counts are the same sums; counts are copied after the pass
            stats.weights.index_add_(0, lab, torch.ones(m, dtype=acc, device=lab.device))
            stats.inertia.index_add_(0, lab, dist.to(acc))
        else:
            wa = w.to(acc)
            stats.weights.index_add_(0, lab, wa)
            stats.counts.index_add_(0, lab, (wa > 0).to(acc))
            stats.inertia.index_add_(0, lab, dist.to(acc) * wa)
        if update:
            xa = xs.to(acc)
            if w is not None:
                xa = xa * w.to(acc)[:, None]
            # index_add_ adds rows in order on the CPU: sums do not depend on the chunk size.
            stats.sums.index_add_(0, lab, xa)
    if not source.weighted:
        stats.counts.copy_(stats.weights)
    if bounds is not None:
        bounds.valid = True
    return stats


# Up to this many features, the native kernel scores rows by exact differences ||x - c||^2
# (no rounding ties to re-check); above it, by the GEMM identity ||c||^2 - 2 x.c.
_NATIVE_EXACT_MAX_D = 16
# Work (rows x centers x features) below which a native call stays on the calling thread.
_NATIVE_THREAD_WORK = 1 << 18


# Rows per native call when the kernel reads the data in place: it allocates only a distance
# per row (4 or 8 bytes), so blocks can be much larger than the chunks of the torch path.
_NATIVE_BLOCK = 1 << 18


def _in_place(source: Source) -> bool:
    """Whether the kernel can read the source's rows where they are (a CPU tensor, or a
    memory map, already in the compute dtype): no chunk copies needed."""
    return (
        isinstance(source, TensorSource)
        and not source.stream_to_device
        and source.X.device.type == "cpu"
        and source.X.dtype == source.dtype
    )


# Fused accumulation (see csrc/lloyd.c): statistics are summed per stripe of this many global
# rows while the rows are in cache, then folded in stripe order; one partial per stripe of a
# call, K x (D + 3) float64 each, within _STRIPE_BUDGET bytes.
_STRIPE = 1 << 13
_STRIPE_BUDGET = 32 << 20


def _fused_stripes(source: Source, k: int) -> int:
    """Stripes per native call when the fused accumulation applies, else 0: data read in
    place, more than 16 features (below, one sequential summing pass is as fast), enough rows
    for every thread to get stripes, and partials within the budget."""
    d = source.n_features
    if not _in_place(source) or d <= _NATIVE_EXACT_MAX_D or source.n_samples < 4 * _STRIPE:
        return 0
    stripes = min(32, _STRIPE_BUDGET // (8 * k * (d + 3)))
    return stripes if stripes >= 2 else 0


def native_block_rows(source: Source, k: int) -> int:
    stripes = _fused_stripes(source, k)
    if stripes:
        return stripes * _STRIPE
    return max(source.chunk_size, _NATIVE_BLOCK) if _in_place(source) else source.chunk_size


def native_blocks(source: Source, rows: int) -> Iterator[Chunk]:
    """Blocks of rows for the native kernel: views of the data when it can be read in place,
    else the source's own (converted) chunks."""
    if not _in_place(source):
        yield from source.chunks()
        return
    assert isinstance(source, TensorSource)
    w = source.sample_weight
    for start in range(0, source.n_samples, rows):
        stop = min(start + rows, source.n_samples)
        yield Chunk(start, source.X[start:stop], None if w is None else w[start:stop])


def native_chunks(
    source: Source, rows: int
) -> Iterator[tuple[Chunk, torch.Tensor, torch.Tensor | None]]:
    """The non-empty blocks of :func:`native_blocks` as ``(chunk, rows, weights)``: rows with a
    unit feature stride (as the kernels read them), weights in the compute dtype."""
    d = source.n_features
    for chunk in native_blocks(source, rows):
        x = chunk.x
        if x.shape[0] == 0:
            continue
        if x.stride(1) != 1 or x.stride(0) < d:
            x = x.contiguous()
        yield chunk, x, None if chunk.w is None else chunk.w.to(source.dtype).contiguous()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _pass_threads(rows: int, k: int, d: int) -> tuple[int, int]:
    """Threads for the assignment and for the sums of a native pass over ``rows`` rows."""
    threads = max(1, torch.get_num_threads())
    assign_threads = threads if rows * k * max(d, 4) >= _NATIVE_THREAD_WORK else 1
    # (up to 16 features every summing thread walks every row: one is faster)
    sum_ok = rows * d >= _NATIVE_THREAD_WORK and k > 1 and d > _NATIVE_EXACT_MAX_D
    return assign_threads, threads if sum_ok else 1


def _accumulate_native(
    source: Source,
    pc: PreparedCenters,
    labels: torch.Tensor | None,
    stats: LloydStats,
    update: bool,
    bounds: Bounds | None,
    gaps: torch.Tensor | None,
    on_block: Callable[[Chunk, torch.Tensor, torch.Tensor], None] | None = None,
    workspace_distances: torch.Tensor | None = None,
) -> None:
    """:func:`accumulate` through the native kernel: one C call per block does the
    assignment (pruned when ``gaps`` is given), the distances, the bounds and the sums.
    ``on_block(chunk, labels, distances)``, when given, sees each block's results."""
    lib = _native.library()
    assert lib is not None
    dtype = source.dtype
    fn = lib.tk_pass_f32 if dtype == torch.float32 else lib.tk_pass_f64
    k, d = pc.n_clusters, source.n_features
    c = pc.c.contiguous()
    craw = pc.centers.to(dtype).contiguous()
    assert pc.c_sq is not None  # Euclidean
    csq = pc.c_sq.contiguous()
    csq_max = float(csq.max())
    shift = None if pc.shift is None else pc.shift.contiguous()
    exact = d <= _NATIVE_EXACT_MAX_D
    rows = native_block_rows(source, k)
    stripe = _STRIPE if update and _fused_stripes(source, k) else 0
    keep = workspace_distances if labels is not None else None
    dist = torch.empty(0 if keep is not None else rows, dtype=dtype)
    own = None if labels is not None else torch.empty(rows, dtype=torch.long)
    gaps = None if gaps is None else gaps.contiguous()
    for chunk, x, w in native_chunks(source, rows):
        m = int(x.shape[0])
        if keep is not None:
            dist = keep[chunk.start : chunk.start + m]
        elif m > dist.shape[0]:
            dist = torch.empty(m, dtype=dtype)
        if labels is not None:
            seg = labels[chunk.start : chunk.start + m]
        else:
            assert own is not None
            if m > own.shape[0]:
                own = torch.empty(m, dtype=torch.long)
            seg = own[:m]
        lower = None if bounds is None else bounds.lower[chunk.start : chunk.start + m]
        assign_threads, sum_threads = _pass_threads(m, k, d)
        changed = fn(
            m, d, k, x.data_ptr(), x.stride(0), _ptr(w), _ptr(shift), c.data_ptr(),
            craw.data_ptr(), csq.data_ptr(), csq_max, int(exact), _ptr(seg if labels is not None else None),
            _ptr(gaps),
            _ptr(lower), 0.0 if bounds is None else bounds.drift, seg.data_ptr(),
            dist.data_ptr(), stats.sums.data_ptr() if update else None,
            stats.weights.data_ptr(), stats.counts.data_ptr(), stats.inertia.data_ptr(),
            assign_threads, sum_threads, chunk.start, stripe,
        )  # fmt: skip
        if changed < 0:
            raise MemoryError("the native k-means kernel could not allocate its buffers")
        stats.changed += changed
        if on_block is not None:
            on_block(chunk, seg, dist[:m])
    if not source.weighted:
        stats.counts.copy_(stats.weights)
    if bounds is not None:
        bounds.valid = True


# The whole Lloyd loop runs in native calls (NativeLoop) when a pass is at most this much work
# (rows x centers x features) and the centers' pairwise gaps, recomputed every iteration on one
# thread, at most _NATIVE_LOOP_GAPS: there, the ~0.5 ms of Python per iteration would dominate.
_NATIVE_LOOP_WORK = 1 << 24
_NATIVE_LOOP_GAPS = 1 << 17


class NativeLoop:
    """Lloyd iterations of a small in-memory CPU problem, many per native call (``tk_lloyd``
    in csrc/lloyd_impl.h): the same pass as :func:`accumulate`, then the update, the drift of
    the bounds and the stop rule of :func:`~torchkmeans._core.lloyd_`, without returning to
    Python. A pass that leaves a cluster empty returns (status 2) so that
    :func:`relocate_empty_clusters` can refill it; the next call finishes that iteration.

    Every fit of such a problem runs through it, checkpointed (one iteration per call) or not,
    so a resumed fit is the same, bit for bit, as an uninterrupted one. The layout and the
    update are those of :func:`prepare_centers` and :func:`update` (the same C functions), so
    the per-pass loop used for larger or out-of-core data gives the same fit, bit for bit.
    """

    # values per iteration in the history buffer: inertia, shift, changed, relocated, seconds
    FIELDS = 5

    @staticmethod
    def applies(source: Source, k: int, metric: str, workspace: Workspace, comm: Comm) -> bool:
        """Single process, Euclidean, data read in place in memory (the workspace keeps its
        distances), a small pass, and rows with unit feature stride."""
        if comm.distributed or metric != "euclidean" or workspace.distances is None:
            return False
        assert isinstance(source, TensorSource)
        x, d = source.X, source.n_features
        return (
            isinstance(x, torch.Tensor)
            and (x.shape[0] <= 1 or (x.stride(1) == 1 and x.stride(0) >= d))
            and source.n_samples * k * d <= _NATIVE_LOOP_WORK
            and k * k * d <= _NATIVE_LOOP_GAPS
            and _native.supports(x, metric)
        )

    def __init__(
        self,
        source: Source,
        k: int,
        labels: torch.Tensor,
        workspace: Workspace,
        bounds: Bounds | None,
    ) -> None:
        assert isinstance(source, TensorSource) and workspace.distances is not None
        lib = _native.library()
        assert lib is not None
        dtype, d = source.dtype, source.n_features
        suffix = "f32" if dtype == torch.float32 else "f64"
        self.fn = getattr(lib, f"tk_lloyd_{suffix}")
        self.source, self.k, self.labels, self.bounds = source, k, labels, bounds
        self.workspace = workspace
        x = source.X
        assert isinstance(x, torch.Tensor)
        self.x = x
        w = source.sample_weight
        self.w = None if w is None else w.to(dtype).contiguous()
        self.stats = LloydStats.zeros(k, d, torch.float64, torch.device("cpu"))
        self.stripe = _STRIPE if _fused_stripes(source, k) else 0
        self.threads = _pass_threads(source.n_samples, k, d)
        self.status = ctypes.c_int64(0)

    def run(
        self, centers: torch.Tensor, mode: int, iters: int, tol: float, given: tuple[int, int]
    ) -> tuple[int, int, torch.Tensor]:
        """Call ``tk_lloyd`` (``centers``, contiguous, updated in place). Returns (iterations
        completed, status, history buffer)."""
        source, k, bounds = self.source, self.k, self.bounds
        n, d = source.n_samples, source.n_features
        hist = torch.zeros(max(iters, 1), self.FIELDS, dtype=torch.float64)
        drift = ctypes.c_double(0.0 if bounds is None else bounds.drift)
        valid = ctypes.c_int64(int(bounds is not None and bounds.valid))
        stats = self.stats
        distances = self.workspace.distances
        assert distances is not None
        done = self.fn(
            n, d, k, self.x.data_ptr(), self.x.stride(0) if n > 1 else d, _ptr(self.w),
            centers.data_ptr(), self.labels.data_ptr(), distances.data_ptr(),
            None if bounds is None else bounds.lower.data_ptr(), ctypes.byref(drift),
            ctypes.byref(valid), int(d <= _NATIVE_EXACT_MAX_D), *self.threads, self.stripe,
            mode, iters, tol, *given, stats.sums.data_ptr(), stats.weights.data_ptr(),
            stats.counts.data_ptr(), stats.inertia.data_ptr(), hist.data_ptr(),
            ctypes.byref(self.status),
        )  # fmt: skip
        if done < 0:
            raise MemoryError("the native k-means kernel could not allocate its buffers")
        if bounds is not None:
            bounds.drift, bounds.valid = drift.value, bool(valid.value)
        self.workspace.distances_for = None
        return int(done), int(self.status.value), hist

    def relocate(self, centers: torch.Tensor) -> int:
        """Refill the empty clusters of the pass that stopped with status 2 (the distances it
        kept stand in for a pass over the data)."""
        pc = prepare_centers(centers, "euclidean")
        self.workspace.distances_for = pc
        return relocate_empty_clusters(
            self.stats, self.source, pc, self.workspace, SINGLE, self.labels
        )

    def assign(self, centers: torch.Tensor) -> LloydStats:
        """One assignment pass (labels, weights, counts, inertia), no update."""
        _, _, hist = self.run(centers.contiguous(), 2, 1, 0.0, (0, 0))
        self.stats.changed.fill_(int(hist[0, 2]))
        return self.stats


def _assign_pruned(
    xs: torch.Tensor,
    pc: PreparedCenters,
    previous: torch.Tensor,
    gaps: torch.Tensor,
    bounds: Bounds,
    start: int,
    workspace: Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and distances of a chunk, recomputing only rows whose center may have changed."""
    dist = exact_distance(xs, pc, previous)
    upper = metric_distance(dist, pc.metric).mul_(1.0 + _PRUNE_MARGIN)
    lower = (bounds.lower[start : start + xs.shape[0]] - bounds.drift).to(xs.dtype)
    redo = (upper >= torch.maximum(lower, gaps[previous])).nonzero().flatten()
    labels = previous.clone()
    if redo.numel():
        sub = xs.index_select(0, redo)
        lab, d, low = assign_with_bound(sub, pc, out=workspace.scores_for(redo.numel()))
        labels[redo] = lab
        dist[redo] = d
        bounds.store(start, redo, low)
    return labels, dist


def _farthest_rows(
    source: Source, pc: PreparedCenters, workspace: Workspace, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``m`` rows of positive weight farthest from their nearest center, in one pass.

    Returns ``(distances, indices, labels, prepared rows, weights)`` sorted by decreasing
    distance, ties by index. The rows are collected during the pass, so sources without
    random access (loaders) work too.
    """
    device = source.device
    found: dict[str, torch.Tensor] = {
        "d": torch.empty(0, dtype=torch.float64, device=device),
        "i": torch.empty(0, dtype=torch.long, device=device),
        "l": torch.empty(0, dtype=torch.long, device=device),
        "x": torch.empty(0, source.n_features, dtype=source.dtype, device=device),
        "w": torch.empty(0, dtype=source.dtype, device=device),
    }

    def collect(chunk: Chunk, lab: torch.Tensor, dist: torch.Tensor) -> None:
        n = dist.shape[0]
        dist = dist.to(torch.float64)
        if chunk.w is not None:
            dist = torch.where(chunk.w > 0, dist, torch.full_like(dist, -1.0))
        top = torch.topk(dist, min(m, n)).indices
        rows = prepare_rows(chunk.x[top].to(source.dtype), pc.metric, pc.shift)
        wt = torch.ones(top.shape[0], dtype=source.dtype, device=device)
        parts = {
            "d": dist[top],
            "i": top + chunk.start,
            "l": lab[top],
            "x": rows,
            "w": wt if chunk.w is None else chunk.w[top].to(source.dtype),
        }
        merged = {key: torch.cat([found[key], parts[key]]) for key in found}
        order = torch.argsort(merged["i"], stable=True)
        order = order[torch.argsort(-merged["d"][order], stable=True)][:m]
        found.update({key: value[order] for key, value in merged.items()})

    if source.device.type == "cpu" and _native.supports(pc.c, pc.metric):
        scratch = LloydStats.zeros(pc.n_clusters, source.n_features, torch.float64, device)
        _accumulate_native(source, pc, None, scratch, False, None, None, on_block=collect)
    else:
        for chunk in source.chunks():
            xs = prepare_rows(chunk.x, pc.metric, pc.shift)
            lab, dist = assign(xs, pc, out=workspace.scores_for(chunk.x.shape[0]))
            collect(chunk, lab, dist)
    best_d, best_i, best_l, best_x, best_w = (found[key] for key in "dilxw")
    return best_d, best_i, best_l, best_x, best_w


def _farthest_stored(
    source: Source, pc: PreparedCenters, labels: torch.Tensor, distances: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_farthest_rows` from the distances the last pass kept (same order and ties)."""
    assert isinstance(source, TensorSource)
    dist = distances.to(torch.float64)
    w = source.sample_weight
    if w is not None:
        dist = torch.where(w > 0, dist, torch.full_like(dist, -1.0))
    top = torch.topk(dist, min(m, dist.shape[0])).indices
    order = torch.argsort(top, stable=True)
    top = top[order]
    top = top[torch.argsort(-dist[top], stable=True)]
    rows = prepare_rows(source.rows(top), pc.metric, pc.shift)
    weights = torch.ones(top.shape[0], dtype=source.dtype) if w is None else w[top].to(source.dtype)
    return dist[top], top, labels[top], rows, weights


def _gather_farthest(
    comm: Comm,
    m: int,
    parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``m`` farthest rows over all ranks, identical on every rank (ties: global index)."""
    d, i, lab, x, w = parts
    pad = m - d.shape[0]
    if pad > 0:  # a shard with fewer rows than m: pad with entries that can never be chosen
        d = torch.cat([d, torch.full((pad,), -2.0, dtype=d.dtype, device=d.device)])
        i = torch.cat([i, torch.full((pad,), -1, dtype=i.dtype, device=i.device)])
        lab = torch.cat([lab, torch.zeros(pad, dtype=lab.dtype, device=lab.device)])
        x = torch.cat([x, torch.zeros(pad, x.shape[1], dtype=x.dtype, device=x.device)])
        w = torch.cat([w, torch.zeros(pad, dtype=w.dtype, device=w.device)])
    d = torch.cat(comm.all_gather(d))
    i = torch.cat(comm.all_gather(i))
    lab = torch.cat(comm.all_gather(lab))
    x = torch.cat(comm.all_gather(x))
    w = torch.cat(comm.all_gather(w))
    order = torch.argsort(i, stable=True)
    order = order[torch.argsort(-d[order], stable=True)][:m]
    return d[order], i[order], lab[order], x[order], w[order]


def relocate_empty_clusters(
    stats: LloydStats,
    source: Source,
    pc: PreparedCenters,
    workspace: Workspace,
    comm: Comm = SINGLE,
    labels: torch.Tensor | None = None,
) -> int:
    """Move the rows farthest from their centers into the empty clusters (as scikit-learn does).

    ``labels``, the labels of the pass that produced ``stats``, lets the distances that pass
    kept (:meth:`Workspace.keep_distances`) stand in for a pass over the data.

    Each empty cluster receives one row of positive weight, taken from a cluster that keeps at
    least one row, with the largest distance to its center; rows at distance zero are never
    moved. ``stats`` is updated in place. Returns how many clusters were refilled; clusters
    that could not be refilled stay empty (their centers are kept by ``finalize``).
    """
    empty = (stats.counts == 0).nonzero().flatten()
    n_empty = int(empty.numel())
    if n_empty == 0:
        return 0
    k = pc.n_clusters
    m = min(source.n_total, n_empty + k)
    if labels is not None and workspace.distances_for is pc and workspace.distances is not None:
        farthest = _farthest_stored(source, pc, labels, workspace.distances, m)
    else:
        farthest = _farthest_rows(source, pc, workspace, m)
    if comm.distributed:
        d_, i_, l_, x_, w_ = farthest
        farthest = _gather_farthest(comm, m, (d_, i_ + source.offset, l_, x_, w_))
    dist, idx, lab, rows, weights = farthest
    rows = rows.to(stats.sums.dtype)
    weights = weights.to(stats.sums.dtype)
    filled = 0
    for j in range(idx.numel()):
        if filled == n_empty or not bool(dist[j] > 0):
            break
        donor = int(lab[j])
        if not bool(stats.counts[donor] > 1):
            continue
        target = int(empty[filled])
        contribution = rows[j] * weights[j]
        stats.sums[donor] -= contribution
        stats.weights[donor] -= weights[j]
        stats.counts[donor] -= 1
        stats.sums[target] = contribution
        stats.weights[target] = weights[j]
        stats.counts[target] = 1
        filled += 1
    return filled


def prepare_centers(centers: torch.Tensor, metric: str) -> PreparedCenters:
    """The centers laid out for a Lloyd pass. On the native path the kernel library computes
    the layout (its shift: the mean of the centers summed in float64), so that the per-pass
    loop and :class:`NativeLoop` shift, and with it sum, identically."""
    if not _native.supports(centers, metric):
        return PreparedCenters(centers, metric, None)
    lib = _native.library()
    assert lib is not None
    centers = centers.contiguous()
    k, d = centers.shape
    fn = lib.tk_prepare_f32 if centers.dtype == torch.float32 else lib.tk_prepare_f64
    shift = torch.empty(d, dtype=centers.dtype)
    c = torch.empty_like(centers)
    csq = torch.empty(k, dtype=centers.dtype)
    fn(k, d, centers.data_ptr(), shift.data_ptr(), c.data_ptr(), csq.data_ptr())
    return PreparedCenters.from_parts(centers, shift, c, csq)


def update(stats: LloydStats, pc: PreparedCenters) -> tuple[torch.Tensor, float, float, float]:
    """The update step: ``(new centers, squared center shift summed over centers, largest
    squared shift of one center, inertia)``; natively (``tk_update``, the arithmetic of
    :class:`NativeLoop`) where :func:`prepare_centers` is."""
    old = pc.centers
    if not _native.supports(old, pc.metric) or stats.sums.device.type != "cpu":
        new = finalize(stats, pc)
        sq = ((new - old).to(torch.float64) ** 2).sum(dim=1)
        return new, float(sq.sum()), float(sq.max()), float(stats.inertia.sum())
    lib = _native.library()
    assert lib is not None and pc.shift is not None
    fn = lib.tk_update_f32 if old.dtype == torch.float32 else lib.tk_update_f64
    k, d = old.shape
    old = old.contiguous()
    new = torch.empty_like(old)
    out = (ctypes.c_double * 3)()
    fn(
        k, d, stats.sums.data_ptr(), stats.weights.data_ptr(), stats.counts.data_ptr(),
        stats.inertia.data_ptr(), pc.shift.contiguous().data_ptr(), old.data_ptr(),
        new.data_ptr(), out,
    )  # fmt: skip
    return new, out[0], out[1], out[2]


def finalize(stats: LloydStats, pc: PreparedCenters) -> torch.Tensor:
    """New centers from the sums: weighted means (cosine: renormalized to unit length).

    A cluster that is still empty, or whose sum has no direction (cosine), keeps its center, so
    the result never holds NaN or zero vectors that did not come from the data. So does a
    cluster whose weights sum to zero in floating point (rows of subnormal weight next to rows
    of weight 1, after a relocation took the latter away) or whose mean is not finite.
    """
    old = pc.centers
    filled = (stats.counts > 0) & (stats.weights > 0)
    denom = torch.where(filled, stats.weights, torch.ones_like(stats.weights))
    means = stats.sums / denom[:, None]
    if pc.metric == "euclidean":
        new = means.to(old.dtype)
        if pc.shift is not None:
            new = new + pc.shift
    else:
        norms = torch.linalg.vector_norm(means, dim=1, keepdim=True)
        filled = filled & (norms[:, 0] > 0)
        new = (means / torch.where(norms > 0, norms, torch.ones_like(norms))).to(old.dtype)
    filled = filled & torch.isfinite(new).all(dim=1)
    return torch.where(filled[:, None], new, old)
