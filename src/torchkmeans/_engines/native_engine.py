"""The native CPU engine: the Lloyd pass, its layout and update, the data moments, the canonical
order and k-means++ in the C kernels of ``csrc/`` (built at install, see ``setup.py``).

It serves float32/float64 Euclidean data on the CPU when the kernels are loaded (the decision
is :func:`torchkmeans._engines.engine_for`'s). Two ways to run Lloyd iterations, with the same C
arithmetic, so they give the same fit bit for bit:

- per pass (:meth:`NativeEngine.accumulate`): Python drives the loop of
  :func:`torchkmeans._core.lloyd_`, one ``tk_pass`` call per block of rows; used for large,
  memory-mapped or streamed data and for distributed fits;
- whole loop (:class:`NativeLoop`): small in-memory problems run many iterations per
  ``tk_lloyd`` call, which itself drives ``tk_prepare``, ``tk_gaps``, ``tk_pass`` and
  ``tk_update``; it returns to Python only to refill empty clusters.

Where a kernel cannot read the rows as they are stored (a strided view, another dtype) or the
fit is distributed, k-means++ and the canonical order run as in the torch engine, which this
engine extends. Prior validation of data is assumed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .. import _init
from .._bounds import Bounds, Workspace
from .._distance import PreparedCenters
from .._distributed import SINGLE, Comm
from .._relocation import relocate_empty_clusters
from .._sources import Chunk, Source, TensorSource
from .._statistics import LloydStats
from . import _kernels
from ._constants import EXACT_MAX_D, STRIPE_ROWS
from ._kernels import Mode, Status
from .torch_engine import BlockObserver, TorchEngine

# Work (rows x centers x features) below which a pass stays on the calling thread.
_THREAD_WORK = 1 << 18
# Work (rows x candidates x features) below which a k-means++ step stays on the calling thread.
KPP_THREAD_WORK = 1 << 17
# Rows per call when the kernel reads the data in place: it allocates only a distance per row
# (4 or 8 bytes), so blocks can be much larger than the chunks of the torch engine.
_BLOCK_ROWS = 1 << 18
# Fused accumulation (see csrc/lloyd.c): statistics are summed per stripe of STRIPE_ROWS global
# rows while the rows are in cache, then folded in stripe order; one partial per stripe of a
# call, K x (D + 3) float64 each, within this many bytes.
_STRIPE_BUDGET = 32 << 20
# The whole loop runs in native calls (NativeLoop) when a pass is at most this much work (rows
# x centers x features) and the centers' pairwise gaps, recomputed every iteration on one
# thread, at most LOOP_GAPS: there, the ~0.5 ms of Python per iteration would dominate.
LOOP_WORK = 1 << 24
LOOP_GAPS = 1 << 17


def _in_place(source: Source) -> bool:
    """Whether the kernel can read the source's rows where they are (a CPU tensor, or a
    memory map, already in the compute dtype): no chunk copies needed."""
    return (
        isinstance(source, TensorSource)
        and not source.stream_to_device
        and source.X.device.type == "cpu"
        and source.X.dtype == source.dtype
    )


def fused_stripes(source: Source, k: int) -> int:
    """Stripes per call when the fused accumulation applies, else 0: data read in place, more
    than EXACT_MAX_D features (below, one sequential summing pass is as fast), enough rows for
    every thread to get stripes, and partials within the budget."""
    d = source.n_features
    if not _in_place(source) or d <= EXACT_MAX_D or source.n_samples < 4 * STRIPE_ROWS:
        return 0
    stripes = min(32, _STRIPE_BUDGET // (8 * k * (d + 3)))
    return stripes if stripes >= 2 else 0


def _block_rows(source: Source, k: int) -> int:
    stripes = fused_stripes(source, k)
    if stripes:
        return stripes * STRIPE_ROWS
    return max(source.chunk_size, _BLOCK_ROWS) if _in_place(source) else source.chunk_size


def _blocks(source: Source, rows: int) -> Iterator[Chunk]:
    """Blocks of rows: views of the data when it can be read in place, else the source's own
    (converted) chunks."""
    if not _in_place(source):
        yield from source.chunks()
        return
    assert isinstance(source, TensorSource)
    w = source.sample_weight
    for start in range(0, source.n_samples, rows):
        stop = min(start + rows, source.n_samples)
        yield Chunk(start, source.X[start:stop], None if w is None else w[start:stop])


def _kernel_blocks(
    source: Source, rows: int
) -> Iterator[tuple[Chunk, torch.Tensor, torch.Tensor | None]]:
    """The non-empty blocks of :func:`_blocks` as ``(chunk, rows, weights)``: rows with a unit
    feature stride (as the kernels read them), weights in the compute dtype."""
    d = source.n_features
    for chunk in _blocks(source, rows):
        x = chunk.x
        if x.shape[0] == 0:
            continue
        if x.stride(1) != 1 or x.stride(0) < d:
            x = x.contiguous()
        yield chunk, x, None if chunk.w is None else chunk.w.to(source.dtype).contiguous()


def _pass_threads(rows: int, k: int, d: int) -> tuple[int, int]:
    """Threads for the assignment and for the sums of a pass over ``rows`` rows."""
    threads = max(1, torch.get_num_threads())
    assign_threads = threads if rows * k * max(d, 4) >= _THREAD_WORK else 1
    # (up to EXACT_MAX_D features every summing thread walks every row: one is faster)
    sum_ok = rows * d >= _THREAD_WORK and k > 1 and d > EXACT_MAX_D
    return assign_threads, threads if sum_ok else 1


def _seeding_rows(source: TensorSource) -> torch.Tensor | None:
    """The rows as one CPU tensor the k-means++ and order kernels read in place, or None."""
    x = source.X
    if (
        not isinstance(x, torch.Tensor)
        or x.dtype != source.dtype
        or x.device.type != "cpu"
        or x.ndim != 2
        or (x.shape[0] > 1 and x.stride(1) != 1)
    ):
        return None
    return x


class NativeEngine(TorchEngine):
    """The Lloyd pass and its helpers in the native kernels (CPU, float32/float64, Euclidean)."""

    name = "native"

    def workspace(self, source: Source, n_clusters: int) -> Workspace:
        """Buffers of a fit; for in-memory data (within the memory the bounds may use) also
        every row's distance from the last pass, so that refilling empty clusters needs no
        extra pass over the data."""
        workspace = super().workspace(source, n_clusters)
        if _in_place(source) and not source.out_of_core and Bounds.affordable(source):
            workspace.distances = torch.empty(source.n_samples, dtype=source.dtype)
        return workspace

    def prepare_centers(
        self, centers: torch.Tensor, metric: str, *, sparse: bool = False
    ) -> PreparedCenters:
        """The layout of ``tk_prepare`` (shift: the mean of the centers summed in float64), so
        that the per-pass loop and :class:`NativeLoop` shift, and with it sum, identically.
        (Sparse data never reaches this engine.)"""
        centers = centers.contiguous()
        k, d = centers.shape
        shift = torch.empty(d, dtype=centers.dtype)
        c = torch.empty_like(centers)
        csq = torch.empty(k, dtype=centers.dtype)
        _kernels.prepare(centers, shift, c, csq)
        return PreparedCenters.from_parts(centers, shift, c, csq)

    def half_gaps(self, pc: PreparedCenters, dtype: torch.dtype) -> torch.Tensor:
        """The half gaps by ``tk_gaps`` (threaded, with no torch operation that would leave
        OpenMP workers spinning on the cores the next pass needs), in the centers' dtype."""
        assert pc.c_sq is not None and pc.shift is not None  # Euclidean
        centers = pc.centers.contiguous()
        k, d = centers.shape
        gaps = torch.empty(k, dtype=centers.dtype)
        c_sq = pc.c_sq.contiguous()
        _kernels.half_gaps(
            centers=centers, shift=pc.shift.contiguous(), c=pc.c.contiguous(), csq=c_sq,
            csq_max=float(c_sq.max()), exact=d <= EXACT_MAX_D, gaps=gaps,
            threads=_pass_threads(k, k, d)[0],
        )  # fmt: skip
        return gaps

    def accumulate(
        self,
        source: Source,
        pc: PreparedCenters,
        labels: torch.Tensor | None,
        workspace: Workspace,
        *,
        update: bool = True,
        bounds: Bounds | None = None,
    ) -> LloydStats:
        """:meth:`TorchEngine.accumulate` by ``tk_pass``: one call per block does the
        assignment (pruned when the bounds are valid), the distances, the bounds and the sums."""
        stats = LloydStats.zeros(pc.n_clusters, source.n_features, torch.float64, source.device)
        gaps = None
        if bounds is not None and bounds.valid and labels is not None:
            gaps = self.half_gaps(pc, source.dtype)
        keep = workspace.distances if labels is not None else None
        self._pass(source, pc, labels, stats, update, bounds, gaps, keep=keep)
        workspace.distances_for = pc if keep is not None else None
        return stats

    def assign_blocks(
        self,
        source: Source,
        pc: PreparedCenters,
        workspace: Workspace,
        observe: BlockObserver,
    ) -> None:
        scratch = LloydStats.zeros(pc.n_clusters, source.n_features, torch.float64, source.device)
        self._pass(source, pc, None, scratch, False, None, None, observe=observe)

    def _pass(
        self,
        source: Source,
        pc: PreparedCenters,
        labels: torch.Tensor | None,
        stats: LloydStats,
        update: bool,
        bounds: Bounds | None,
        gaps: torch.Tensor | None,
        observe: BlockObserver | None = None,
        keep: torch.Tensor | None = None,
    ) -> None:
        """One ``tk_pass`` call per block of rows. ``keep``, when given, receives every row's
        distance; ``observe(chunk, labels, distances)`` sees each block's results."""
        dtype = source.dtype
        k, d = pc.n_clusters, source.n_features
        c = pc.c.contiguous()
        craw = pc.centers.to(dtype).contiguous()
        assert pc.c_sq is not None  # Euclidean
        csq = pc.c_sq.contiguous()
        csq_max = float(csq.max())
        shift = None if pc.shift is None else pc.shift.contiguous()
        rows = _block_rows(source, k)
        stripe = STRIPE_ROWS if update and fused_stripes(source, k) else 0
        dist = torch.empty(0 if keep is not None else rows, dtype=dtype)
        own = None if labels is not None else torch.empty(rows, dtype=torch.long)
        gaps = None if gaps is None else gaps.contiguous()
        for chunk, x, w in _kernel_blocks(source, rows):
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
            assign_threads, sum_threads = _pass_threads(m, k, d)
            stats.changed += _kernels.lloyd_pass(
                x=x, w=w, shift=shift, c=c, craw=craw, csq=csq, csq_max=csq_max,
                exact=d <= EXACT_MAX_D, previous=seg if labels is not None else None, gaps=gaps,
                lower=None if bounds is None else bounds.lower[chunk.start : chunk.start + m],
                drift=0.0 if bounds is None else bounds.drift, labels=seg, dist=dist,
                sums=stats.sums if update else None, weights=stats.weights,
                counts=stats.counts, inertia=stats.inertia, assign_threads=assign_threads,
                sum_threads=sum_threads, base_row=chunk.start, stripe=stripe,
            )  # fmt: skip
            if observe is not None:
                observe(chunk, seg, dist[:m])
        if not source.weighted:
            stats.counts.copy_(stats.weights)
        if bounds is not None:
            bounds.valid = True

    def update(
        self, stats: LloydStats, pc: PreparedCenters
    ) -> tuple[torch.Tensor, float, float, float]:
        """:meth:`TorchEngine.update` by ``tk_update`` (the arithmetic of :class:`NativeLoop`)."""
        assert pc.shift is not None  # Euclidean
        old = pc.centers.contiguous()
        new = torch.empty_like(old)
        shift, largest, inertia = _kernels.update(
            sums=stats.sums, weights=stats.weights, counts=stats.counts, inertia=stats.inertia,
            shift=pc.shift.contiguous(), centers=old, fresh=new,
        )  # fmt: skip
        return new, shift, largest, inertia

    def moment_sums(
        self,
        source: Source,
        metric: str,
        s1: torch.Tensor,
        s2: torch.Tensor,
        total: torch.Tensor,
    ) -> torch.Tensor | None:
        """:meth:`TorchEngine.moment_sums` by ``tk_moments`` (the same sums in the same row
        order; a fused multiply-add may round the last bit differently), over the blocks the
        pass reads."""
        first64: torch.Tensor | None = None
        for _, x, w in _kernel_blocks(source, _block_rows(source, 1)):
            if first64 is None:
                first64 = x[0].to(torch.float64)
            _kernels.moments(x=x, w=w, first=first64, s1=s1, s2=s2, total=total)
        return first64

    def canonical_order(self, source: TensorSource, metric: str) -> torch.Tensor:
        """By ``tk_order``: keys summed feature by feature, a stable radix sort (the torch
        order up to keys within rounding of each other)."""
        x = _seeding_rows(source)
        if x is None:
            return super().canonical_order(source, metric)
        order = torch.empty(source.n_samples, dtype=torch.long)
        _kernels.canonical_order(
            x=x, direction=_init.order_direction(source.n_features), order=order
        )
        return order

    def kmeans_plusplus(
        self,
        source: TensorSource,
        n_clusters: int,
        generator: torch.Generator,
        *,
        metric: str,
        shift: torch.Tensor | None,
        n_local_trials: int,
        comm: Comm,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy k-means++ in one ``tk_kpp_all`` call (one process, rows read in place).

        The same draws (canonical order, inverse CDF, the same uniform numbers) and the same
        choice (lowest potential, first within the tie tolerance) as the torch engine. Each row
        keeps the index of its closest chosen center, so a candidate at least twice as far from
        that center as the row is skipped for the row (triangle inequality, as in Raff 2021):
        later steps read few rows. Distances are exact differences, so a row on a center is at
        distance zero.
        """
        x = _seeding_rows(source)
        if comm.distributed or x is None:
            return super().kmeans_plusplus(
                source, n_clusters, generator, metric=metric, shift=shift,
                n_local_trials=n_local_trials, comm=comm,
            )  # fmt: skip
        dtype, d = source.dtype, source.n_features
        sw = source.sample_weight
        order = self.canonical_order(source, metric)
        # every draw of the loop, in the order the loop uses them (the generator's stream is
        # the same whether it is drawn at once or step by step)
        u = _init.uniform(generator, 1 + (n_clusters - 1) * n_local_trials, source.device)
        centers = torch.empty(n_clusters, d, dtype=dtype)
        indices = torch.empty(n_clusters, dtype=torch.long)
        _kernels.kmeans_plusplus(
            x=x, w=None if sw is None else sw.to(dtype).contiguous(), order=order, u=u,
            n_clusters=n_clusters, n_local_trials=n_local_trials, centers=centers,
            indices=indices, rtol=_init.POTENTIAL_RTOL, threads=max(1, torch.get_num_threads()),
            thread_work=KPP_THREAD_WORK,
        )  # fmt: skip
        return centers, indices

    def whole_loop(
        self,
        source: Source,
        n_clusters: int,
        metric: str,
        labels: torch.Tensor,
        workspace: Workspace,
        bounds: Bounds | None,
        comm: Comm,
    ) -> NativeLoop | None:
        """A :class:`NativeLoop` when it applies: one process, data read in place in memory
        (the workspace keeps its distances), rows with unit feature stride, a small pass."""
        if comm.distributed or workspace.distances is None:
            return None
        assert isinstance(source, TensorSource)
        x, d, k = source.X, source.n_features, n_clusters
        if not (
            isinstance(x, torch.Tensor)
            and (x.shape[0] <= 1 or (x.stride(1) == 1 and x.stride(0) >= d))
            and source.n_samples * k * d <= LOOP_WORK
            and k * k * d <= LOOP_GAPS
        ):
            return None
        return NativeLoop(self, source, k, labels, workspace, bounds)


class NativeLoop:
    """Lloyd iterations of a small in-memory CPU problem, many per ``tk_lloyd`` call (the
    driver, in C, of the same ``tk_prepare``, ``tk_gaps``, ``tk_pass`` and ``tk_update`` that
    the per-pass loop calls one by one): the pass, the update, the drift of the bounds and the
    stop rule of :func:`~torchkmeans._core.lloyd_`, without returning to Python. A pass that
    leaves a cluster empty returns (:attr:`Status.EMPTY`) so that
    :func:`~torchkmeans._relocation.relocate_empty_clusters` can refill it; the next call
    (:attr:`Mode.FINISH`) finishes that iteration.

    Every fit of such a problem runs through it, checkpointed (one iteration per call) or not,
    so a resumed fit is the same, bit for bit, as an uninterrupted one, and the same as the
    per-pass loop used for larger or out-of-core data.
    """

    def __init__(
        self,
        engine: NativeEngine,
        source: TensorSource,
        k: int,
        labels: torch.Tensor,
        workspace: Workspace,
        bounds: Bounds | None,
    ) -> None:
        assert workspace.distances is not None and isinstance(source.X, torch.Tensor)
        self.engine = engine
        self.source, self.k, self.labels, self.bounds = source, k, labels, bounds
        self.workspace = workspace
        self.x = source.X
        w = source.sample_weight
        self.w = None if w is None else w.to(source.dtype).contiguous()
        self.stats = LloydStats.zeros(k, source.n_features, torch.float64, torch.device("cpu"))
        self.stripe = STRIPE_ROWS if fused_stripes(source, k) else 0
        self.threads = _pass_threads(source.n_samples, k, source.n_features)

    def run(
        self, centers: torch.Tensor, mode: Mode, iters: int, tol: float, given: tuple[int, int]
    ) -> tuple[int, Status, torch.Tensor]:
        """One ``tk_lloyd`` call (``centers``, contiguous, updated in place). Returns
        (iterations completed, status, history buffer)."""
        bounds, stats = self.bounds, self.stats
        hist = torch.zeros(max(iters, 1), _kernels.HISTORY_FIELDS, dtype=torch.float64)
        distances = self.workspace.distances
        assert distances is not None
        done, status, drift, valid = _kernels.lloyd_loop(
            x=self.x, w=self.w, centers=centers, labels=self.labels, dist=distances,
            lower=None if bounds is None else bounds.lower,
            drift=0.0 if bounds is None else bounds.drift,
            bounds_valid=bounds is not None and bounds.valid,
            exact=self.source.n_features <= EXACT_MAX_D, assign_threads=self.threads[0],
            sum_threads=self.threads[1], stripe=self.stripe, mode=mode, iters=iters, tol=tol,
            given_changed=given[0], given_relocated=given[1], sums=stats.sums,
            weights=stats.weights, counts=stats.counts, inertia=stats.inertia, hist=hist,
        )  # fmt: skip
        if bounds is not None:
            bounds.drift, bounds.valid = drift, valid
        self.workspace.distances_for = None
        return done, status, hist

    def relocate(self, centers: torch.Tensor) -> int:
        """Refill the empty clusters of the pass that stopped with :attr:`Status.EMPTY` (the
        distances it kept stand in for a pass over the data)."""
        pc = self.engine.prepare_centers(centers, "euclidean")
        self.workspace.distances_for = pc
        return relocate_empty_clusters(
            self.stats, self.source, pc, self.workspace, SINGLE, self.labels
        )

    def assign(self, centers: torch.Tensor) -> LloydStats:
        """One assignment pass (labels, weights, counts, inertia), no update."""
        _, _, hist = self.run(centers.contiguous(), Mode.ASSIGN, 1, 0.0, (0, 0))
        self.stats.changed.fill_(int(hist[0, 2]))
        return self.stats
