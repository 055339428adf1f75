"""Data sources: the one interface through which the algorithm sees data.

A source serves rows in chunks, already on the compute device and in the compute dtype, with
their sample weights. The Lloyd loop, the relocation of empty clusters and the prediction paths
only iterate over chunks; seeding runs on :meth:`sample`, an in-memory source of a few rows. So
in-memory tensors, memory-mapped arrays and data loaders run the same code. Prior validation of
data is assumed.

Three kinds of sources exist:

- :class:`TensorSource`: a 2-D tensor (in memory, on a device, or a wrapped numpy memmap).
- :class:`SparseSource`: a sparse matrix (scipy.sparse or torch sparse, held as CSR arrays);
  its chunks are torch CSR tensors (``sparse`` is True), never made dense.
- :class:`BatchSource`: a re-iterable source of batches (a ``torch.utils.data.DataLoader``);
  each batch is a 2-D tensor or array, ``(x,)`` or ``(x, w)`` with per-row weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from . import _sparse

# Budgets, in elements, for the per-chunk buffers: the chunk x K score matrix and each chunk x D
# temporary get 2**20 elements (4 MB in float32, 8 MB in float64), so the working set of a pass,
# a handful of such buffers, stays below the 64 MB the memory contract allows, while chunks stay
# large enough (>= 1024 rows up to D = 1024) that per-chunk overhead does not dominate.
SCORE_ELEMENTS = 1 << 20
ROW_ELEMENTS = 1 << 20
MIN_CHUNK = 256
MAX_CHUNK = 65536
# Stored values per chunk of sparse rows: the per-value temporaries of a pass (row index,
# positions, gathered center values, in int64/float64) stay within a few times 4 MB. With the
# native kernels a Lloyd pass has no per-value temporaries, and larger chunks mean fewer
# hand-overs between torch's thread pool and the kernels' threads (each costs about a
# millisecond while torch's idle workers spin); passes that still make per-value temporaries
# (moments, norms) work through a chunk in parts of SPARSE_CHUNK_NNZ.
SPARSE_CHUNK_NNZ = 1 << 19
SPARSE_CHUNK_NNZ_NATIVE = 1 << 21


def default_chunk_size(n_features: int, n_clusters: int, *, sparse: bool = False) -> int:
    """Rows per chunk: chunk x K within ``SCORE_ELEMENTS`` and chunk x D within ``ROW_ELEMENTS``
    (sparse rows have no chunk x D temporaries; their chunks are bounded by stored values)."""
    rows = SCORE_ELEMENTS // max(n_clusters, 1)
    if not sparse:
        rows = min(rows, ROW_ELEMENTS // max(n_features, 1))
    return int(min(MAX_CHUNK, max(MIN_CHUNK, rows)))


@dataclass
class Chunk:
    """Rows ``start:start + len(x)`` of the source."""

    start: int
    x: torch.Tensor
    w: torch.Tensor | None


class TensorSource:
    """Rows of a 2-D tensor (in memory or a wrapped numpy memmap), served chunk by chunk.

    ``X`` keeps its storage dtype and device; each chunk is converted to ``dtype`` on
    ``device`` when served, so integer, half-precision and host-resident data are never copied
    whole. When ``device`` is an accelerator and the data lives on the host, the data is moved
    there once if it fits comfortably, else streamed chunk by chunk.
    """

    sparse = False

    def __init__(
        self,
        X: torch.Tensor,
        sample_weight: torch.Tensor | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
        out_of_core: bool = False,
    ) -> None:
        stream = False
        if X.device != device and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if X.numel() * dtype.itemsize < free // 2 and not out_of_core:
                X = X.to(device=device, dtype=dtype)
            else:
                stream = X.device.type == "cpu"
        self._hold(X, sample_weight, device, dtype, chunk_size, out_of_core, stream)

    def _hold(
        self,
        X: torch.Tensor,
        sample_weight: torch.Tensor | None,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
        out_of_core: bool,
        stream_to_device: bool,
    ) -> None:
        """Record the rows (where they now live) and how they are served."""
        self.X = X
        self.stream_to_device = stream_to_device
        self.out_of_core = out_of_core
        self.sample_weight = sample_weight
        self.device = device
        self.dtype = dtype
        self.chunk_size = int(chunk_size)
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1])
        # rows of all ranks together, and the global index of this shard's first row
        self.n_total = self.n_samples
        self.offset = 0

    @property
    def weighted(self) -> bool:
        return self.sample_weight is not None

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.device or x.dtype != self.dtype:
            x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        return x

    def chunks(self) -> Iterator[Chunk]:
        """Yield every row once, in order, in chunks of at most ``chunk_size`` rows."""
        if self.stream_to_device:
            yield from self._streamed_chunks()
            return
        w = self.sample_weight
        for start in range(0, self.n_samples, self.chunk_size):
            stop = min(start + self.chunk_size, self.n_samples)
            yield Chunk(
                start,
                self._convert(self.X[start:stop]),
                None if w is None else w[start:stop],
            )

    def _streamed_chunks(self) -> Iterator[Chunk]:
        """Host data on a GPU: chunks are staged in two pinned host buffers and copied on a side
        stream, so reading chunk ``i + 1`` (from RAM or a memory-mapped file) and its transfer
        overlap the kernels queued for chunk ``i``."""
        device, cs = self.device, self.chunk_size
        copy_stream = torch.cuda.Stream(device)
        compute = torch.cuda.current_stream(device)
        pinned = [
            torch.empty(cs, self.n_features, dtype=self.X.dtype, pin_memory=True) for _ in range(2)
        ]
        done: list[torch.cuda.Event | None] = [None, None]
        w = self.sample_weight
        for i, start in enumerate(range(0, self.n_samples, cs)):
            stop = min(start + cs, self.n_samples)
            m = stop - start
            slot = i % 2
            event = done[slot]
            if event is not None:
                event.synchronize()  # the copy that last read this pinned buffer has finished
            host = pinned[slot][:m]
            host.copy_(self.X[start:stop])
            with torch.cuda.stream(copy_stream):
                x = host.to(device, non_blocking=True)
                finished = torch.cuda.Event()
                finished.record(copy_stream)
                done[slot] = finished
            compute.wait_stream(copy_stream)
            x.record_stream(compute)
            if x.dtype != self.dtype:
                x = x.to(self.dtype)
            yield Chunk(start, x, None if w is None else w[start:stop])

    # (index_select, not X[index]: advanced indexing costs milliseconds where this costs
    # microseconds on CPU tensors, which a bisection, sampling once per split, feels)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows at ``index`` (a small 1-D index tensor), in the compute dtype on the device."""
        return self._convert(self.X.index_select(0, index.to(self.X.device)))

    def sample(self, index: torch.Tensor) -> TensorSource:
        """An in-memory source of the rows at ``index`` (sorted), with their weights."""
        idx = index.to(self.X.device)
        w = self.sample_weight
        if w is not None:
            w = w.index_select(0, idx.to(w.device))
        return TensorSource(
            self._convert(self.X.index_select(0, idx)),
            w,
            device=self.device,
            dtype=self.dtype,
            chunk_size=self.chunk_size,
        )

    @property
    def data_bytes(self) -> int:
        return self.n_samples * self.n_features * self.X.element_size()


class BatchSource:
    """Rows of a re-iterable source of batches, served in the order the source yields them.

    ``parse`` turns one batch into ``(x, w)`` (``w`` None when the batch has no weights); the
    boundary has checked one full pass of the source and recorded its row count (and, through
    ``check``, a checksum per batch). Batches larger than ``chunk_size`` are split. A later pass
    that yields other rows (another count, other values or order, NaN, another width) raises
    :class:`DataError` (the source is not re-iterable in a stable way).
    """

    out_of_core = True
    stream_to_device = False
    sparse = False

    def __init__(
        self,
        batches: Iterable[object],
        parse: Callable[[object, int], tuple[torch.Tensor, torch.Tensor | None]],
        *,
        n_samples: int,
        n_features: int,
        weighted: bool,
        storage_itemsize: int,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
        check: Callable[[int, int, torch.Tensor, torch.Tensor | None], None] | None = None,
    ) -> None:
        self.batches = batches
        self.parse = parse
        # check(batch index, start row, x, w): raises when a batch differs from the first pass
        self.check = check
        self.n_samples = int(n_samples)
        self.n_features = int(n_features)
        self._weighted = weighted
        self._itemsize = storage_itemsize
        self.device = device
        self.dtype = dtype
        self.chunk_size = int(chunk_size)
        self.n_total = self.n_samples
        self.offset = 0

    @property
    def weighted(self) -> bool:
        return self._weighted

    @property
    def sample_weight(self) -> None:
        return None  # weights travel with the batches

    @property
    def data_bytes(self) -> int:
        return self.n_samples * self.n_features * self._itemsize

    def chunks(self) -> Iterator[Chunk]:
        from .exceptions import DataError

        start = 0
        for index, batch in enumerate(self.batches):
            x, w = self.parse(batch, start)
            if self.check is not None:
                self.check(index, start, x, w)
            x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
            if w is not None:
                w = w.to(device=self.device, dtype=self.dtype, non_blocking=True)
            for s in range(0, x.shape[0], self.chunk_size):
                part = x[s : s + self.chunk_size]
                yield Chunk(start + s, part, None if w is None else w[s : s + self.chunk_size])
            start += int(x.shape[0])
            if start > self.n_samples:
                break
        if start != self.n_samples:
            raise DataError(
                f"The batch source yielded {start} rows in this pass but {self.n_samples} in the "
                "first one. Pass a source that yields the same rows in the same order on every "
                "pass (for a DataLoader: shuffle=False, drop_last=False)."
            )

    def sample(self, index: torch.Tensor) -> TensorSource:
        """An in-memory source of the rows at ``index`` (sorted), gathered in one pass."""
        index = index.to(self.device)
        xs: list[torch.Tensor] = []
        ws: list[torch.Tensor] = []
        pos = 0
        for chunk in self.chunks():
            m = chunk.x.shape[0]
            stop = int(torch.searchsorted(index, chunk.start + m))
            if stop > pos:
                local = index[pos:stop] - chunk.start
                xs.append(chunk.x.index_select(0, local).clone())
                if chunk.w is not None:
                    ws.append(chunk.w.index_select(0, local))
                pos = stop
        x = torch.cat(xs)
        return TensorSource(
            x,
            torch.cat(ws) if self._weighted else None,
            device=self.device,
            dtype=self.dtype,
            chunk_size=self.chunk_size,
        )


class SparseSource(TensorSource):
    """Rows of a sparse matrix, held as the CSR arrays of a torch CSR tensor ``X`` (views of a
    scipy matrix's ``indptr``, ``indices`` and ``data``, or of a torch sparse tensor), in their
    storage dtypes, served as torch CSR chunks in ``dtype`` on ``device``.

    Chunks hold at most ``chunk_size`` rows and, unless one row holds more,
    ``SPARSE_CHUNK_NNZ`` stored values; they slice the arrays (no copy on the storage device in
    the compute dtype) and are never made dense. :meth:`rows` makes the few rows seeding and
    relocation need dense; :meth:`sample` is a sparse source of the rows drawn. When ``device``
    is an accelerator and the data lives on the host, the arrays are moved there once if they
    fit comfortably, else each chunk is copied when served. Prior validation of data is assumed.
    """

    sparse = True

    def __init__(
        self,
        X: torch.Tensor,
        sample_weight: torch.Tensor | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
        out_of_core: bool = False,
    ) -> None:
        crow, col, values = X.crow_indices(), X.col_indices(), X.values()
        if X.device != device and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            need = values.numel() * dtype.itemsize + (col.numel() + crow.numel()) * 8
            if need < free // 2:
                crow, col, values = crow.to(device), col.to(device), values.to(device, dtype)
                X = _sparse.csr(crow, col, values, (int(X.shape[0]), int(X.shape[1])))
        # (chunks are sliced from the CSR arrays: never streamed whole, never out of core)
        self._hold(X, sample_weight, device, dtype, chunk_size, False, False)
        self.crow, self.col, self.values = crow, col, values
        self._crow_host = crow if crow.device.type == "cpu" else crow.cpu()
        nnz = SPARSE_CHUNK_NNZ_NATIVE if _sparse.native(device, dtype) else SPARSE_CHUNK_NNZ
        self._blocks = list(_sparse.row_blocks(self._crow_host, self.chunk_size, nnz))
        # squared row norms (float64), filled by the first pass, carried by later chunks
        self._row_sq = torch.empty(self.n_samples, dtype=torch.float64, device=device)
        self._row_sq_done = 0

    def _rows_csr(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a CSR tensor in the compute dtype on the device."""
        a, b = int(self._crow_host[start]), int(self._crow_host[stop])
        crow = self.crow[start : stop + 1] - self.crow[start]
        col, values = self.col[a:b], self.values[a:b]
        if values.device != self.device:
            crow, col, values = crow.to(self.device), col.to(self.device), values.to(self.device)
        if values.dtype != self.dtype:
            values = values.to(self.dtype)
        return _sparse.csr(crow, col, values, (stop - start, self.n_features))

    def chunks(self) -> Iterator[Chunk]:
        """Yield every row once, in order, as CSR chunks (carrying their squared row norms)."""
        w = self.sample_weight
        for start, stop in self._blocks:
            x = self._rows_csr(start, stop)
            sq = self._row_sq[start:stop]
            if start == self._row_sq_done:
                sq.copy_(_sparse.row_sq_norms64(x))
                self._row_sq_done = stop
            if stop <= self._row_sq_done:
                _sparse.attach_row_sq_norms(x, sq)
            yield Chunk(start, x, None if w is None else w[start:stop])

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows at ``index`` (a small 1-D index tensor), dense, in the compute dtype on the
        device."""
        crow, col, values = _sparse.gather(self.crow, self.col, self.values, index)
        dense = _sparse.dense_from_parts(crow, col, values.to(self.dtype), self.n_features)
        return dense.to(self.device)

    def sample(self, index: torch.Tensor) -> SparseSource:
        """A sparse source of the rows at ``index`` (sorted), with their weights."""
        crow, col, values = _sparse.gather(self.crow, self.col, self.values, index)
        w = None
        if self.sample_weight is not None:
            w = self.sample_weight[index.to(self.sample_weight.device)]
        x = _sparse.csr(
            crow.to(self.device),
            col.to(self.device),
            values.to(self.device, self.dtype),
            (int(index.numel()), self.n_features),
        )
        return SparseSource(x, w, device=self.device, dtype=self.dtype, chunk_size=self.chunk_size)

    @property
    def data_bytes(self) -> int:
        return (
            self.values.numel() * self.values.element_size()
            + self.col.numel() * self.col.element_size()
            + self.crow.numel() * self.crow.element_size()
        )


Source = TensorSource | BatchSource


def sample_indices(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` distinct row indices in ``[0, n)``, drawn uniformly, sorted (CPU, int64).

    Memory is O(size), not O(n): indices are drawn with replacement and duplicates redrawn.
    """
    if size >= n:
        return torch.arange(n)
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < size:
        need = size - chosen.numel()
        draw = torch.randint(0, n, (need + need // 8 + 16,), generator=generator)
        chosen = torch.unique(torch.cat([chosen, draw]))
    if chosen.numel() > size:
        keep = torch.randperm(chosen.numel(), generator=generator)[:size]
        chosen = torch.sort(chosen[keep]).values
    return chosen
