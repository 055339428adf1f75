"""Rows of sparse data: the few operations on torch CSR tensors that the distance kernel, the
Lloyd sums, the data moments, the metrics and the checks need.

A block of rows is a ``torch.sparse_csr`` tensor (``crow_indices``, ``col_indices``,
``values``). Nothing here makes a block dense: row norms, column sums, per-cluster sums and the
product of a row with one center are computed from the stored values (O(nnz), summed per row by
``segment_reduce`` and per cluster by ``index_add_``, both in row order on the CPU), products
with all centers by a sparse-dense matmul, and only :func:`dense_rows` densifies, for the few
rows that seeding, relocation and the exact re-check of near ties need. Rows are never shifted
(a shift would make them dense): distances use ``||x||^2 - 2 x.c + ||c||^2`` directly, as
scikit-learn does for sparse input. Every temporary is O(nnz of the block) or O(rows x K).

Prior validation of data is assumed: indices are in range, values finite.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch

from ._engines import _kernels


def is_csr(x: torch.Tensor) -> bool:
    """Whether ``x`` is a block of sparse rows (a torch CSR tensor)."""
    return x.layout == torch.sparse_csr


def csr(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """A CSR tensor over the given arrays (no copy, invariants not re-checked)."""
    if crow.dtype != col.dtype:
        crow = crow.to(col.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


def with_values(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` with other stored values (same pattern)."""
    return csr(x.crow_indices(), x.col_indices(), values, (x.shape[0], x.shape[1]))


def astype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` with values of ``dtype`` (the same tensor when they already are)."""
    if x.dtype == dtype:
        return x
    return with_values(x, x.values().to(dtype))


def row_counts(x: torch.Tensor) -> torch.Tensor:
    """Stored values per row (int64)."""
    crow = x.crow_indices()
    return (crow[1:] - crow[:-1]).to(torch.int64)


def per_value(x: torch.Tensor, row_values: torch.Tensor) -> torch.Tensor:
    """A value per row repeated for each stored value of the row (length nnz)."""
    nnz = int(x.values().shape[0])
    return torch.repeat_interleave(row_values, row_counts(x), output_size=nnz)


def row_sums(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-row sums of ``values`` (one per stored value), in row order."""
    return torch.segment_reduce(values, "sum", offsets=x.crow_indices())


# Stored values per part when a function makes per-value temporaries (float64/int64 each):
# a chunk of rows is worked through in parts of rows holding at most this many.
VALUE_PART = 1 << 19


def parts(x: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, stop, rows start:stop of x)``: consecutive parts of ``x``, each with at most
    ``VALUE_PART`` stored values unless one row alone holds more."""
    crow = x.crow_indices()
    if int(x.values().shape[0]) <= VALUE_PART:
        yield 0, int(x.shape[0]), x
        return
    crow_host = crow.cpu()
    for start, stop in row_blocks(crow_host, int(x.shape[0]), VALUE_PART):
        a, b = int(crow_host[start]), int(crow_host[stop])
        part = csr(
            crow[start : stop + 1] - crow[start],
            x.col_indices()[a:b],
            x.values()[a:b],
            (stop - start, int(x.shape[1])),
        )
        yield start, stop, part


# A block of rows may carry its squared row norms (float64) under this attribute, computed once
# per source (see SparseSource), so that passes do not recompute them.
_ROW_SQ = "_torchkmeans_row_sq"


def attach_row_sq_norms(x: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """Remember ``sq`` (float64, one per row) as the squared row norms of ``x``."""
    setattr(x, _ROW_SQ, sq)
    return x


def row_sq_norms64(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean norm of every row, summed in float64."""
    cached = getattr(x, _ROW_SQ, None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    out = torch.empty(int(x.shape[0]), dtype=torch.float64, device=x.device)
    for start, stop, part in parts(x):
        v = part.values().to(torch.float64)
        out[start:stop] = row_sums(part, v * v)
    return out


def row_sq_norms(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean norm of every row (summed in float64), in the values' dtype."""
    return row_sq_norms64(x).to(x.dtype)


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit Euclidean length (prior validation: no row is zero)."""
    norms = row_sq_norms64(x).sqrt().to(x.dtype)
    if native(x.device, x.dtype):
        return with_values(x, _kernels.divide_rows(x, norms))
    values = torch.empty_like(x.values())
    crow = x.crow_indices()
    for start, stop, part in parts(x):
        a, b = int(crow[start]), int(crow[stop])
        torch.div(part.values(), per_value(part, norms[start:stop]), out=values[a:b])
    return with_values(x, values)


def matmul(x: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``x @ dense`` (rows x columns of ``dense``), dense, in ``dense``'s dtype (the native
    kernel on the CPU when loaded: torch's sparse product is several times slower)."""
    x = astype(x, dense.dtype)
    if native(x.device, dense.dtype):
        return _kernels.sparse_matmul(x, dense)
    return torch.mm(x, dense)


def native(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether sparse products and sums run in the native kernels (the engine decision)."""
    from ._engines.dispatch import sparse_products_native

    return sparse_products_native(device, dtype)


def _flat_positions(x: torch.Tensor, labels: torch.Tensor, d: int) -> torch.Tensor:
    """``labels[row] * d + column`` of every stored value: its position in a flat K x D array."""
    flat = per_value(x, labels * d)
    return flat.add_(x.col_indices())


def dot_with(x: torch.Tensor, c: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``x_i . c[labels_i]`` for every row ``i`` (float64), from the stored values only
    (``c``: K x D, contiguous)."""
    out = torch.empty(int(x.shape[0]), dtype=torch.float64, device=x.device)
    for start, stop, part in parts(x):
        flat = _flat_positions(part, labels[start:stop], c.shape[1])
        picked = c.reshape(-1).take(flat).to(torch.float64)
        out[start:stop] = row_sums(part, picked.mul_(part.values().to(torch.float64)))
    return out


def sq_distance_to(
    x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``||x_i - c[labels_i]||^2`` for every row by ``||x||^2 - 2 x.c + ||c||^2`` (float64,
    clamped at zero), the identity scikit-learn uses for sparse rows."""
    dist = dot_with(x, c, labels).mul_(-2.0)
    dist.add_(row_sq_norms64(x)).add_(c_sq.to(torch.float64)[labels])
    return dist.clamp_min_(0.0)


def add_rows_(
    sums: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, w: torch.Tensor | None
) -> None:
    """``sums[labels[i]] += w_i * x_i`` for every row (``sums``: K x D, contiguous), adding the
    stored values in row order (``index_add_`` is sequential on the CPU), in ``sums``' dtype."""
    if sums.dtype == torch.float64 and native(x.device, x.dtype):  # the same additions
        _kernels.sparse_sums(sums, labels, x, w)
        return
    v = x.values().to(sums.dtype)
    if w is not None:
        v = v * per_value(x, w.to(sums.dtype))
    sums.view(-1).index_add_(0, _flat_positions(x, labels, sums.shape[1]), v)


def column_sums(
    x: torch.Tensor, w: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted sums of every column and of its square, and the total weight (float64)."""
    d = x.shape[1]
    s1 = torch.zeros(d, dtype=torch.float64, device=x.device)
    s2 = torch.zeros(d, dtype=torch.float64, device=x.device)
    if w is None:
        total = torch.full((1,), float(x.shape[0]), dtype=torch.float64, device=x.device)
    else:
        total = w.to(torch.float64).sum().reshape(1)
    for start, stop, part in parts(x):  # (index_add_ adds in order: parts change nothing)
        v = part.values().to(torch.float64)
        wv = v if w is None else v * per_value(part, w[start:stop].to(torch.float64))
        s1.index_add_(0, part.col_indices(), wv)
        s2.index_add_(0, part.col_indices(), wv * v)
    return s1, s2, total


def gather(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CSR arrays ``(crow, col, values)`` of the rows at ``index`` (any order, repeats
    allowed); ``crow`` of the result is int64."""
    index = index.to(device=crow.device, dtype=torch.int64)
    starts = crow[index].to(torch.int64)
    lengths = crow[index + 1].to(torch.int64) - starts
    new_crow = torch.zeros(index.numel() + 1, dtype=torch.int64, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    total = int(new_crow[-1])
    offset = torch.repeat_interleave(starts - new_crow[:-1], lengths, output_size=total)
    pos = offset.add_(torch.arange(total, device=crow.device))
    return new_crow, col[pos], values[pos]


def select_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` at ``index`` as a CSR tensor."""
    crow, col, values = gather(x.crow_indices(), x.col_indices(), x.values(), index)
    return csr(crow, col, values, (int(index.numel()), x.shape[1]))


def dense_from_parts(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n_features: int
) -> torch.Tensor:
    """The dense rows described by CSR arrays (duplicates summed)."""
    m = crow.numel() - 1
    counts = (crow[1:] - crow[:-1]).to(torch.int64)
    rows = torch.repeat_interleave(
        torch.arange(m, device=crow.device), counts, output_size=int(values.shape[0])
    )
    out = torch.zeros(m, n_features, dtype=values.dtype, device=values.device)
    out.index_put_((rows, col.to(torch.int64)), values, accumulate=True)
    return out


def dense_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` at ``index``, made dense (for a few rows only)."""
    crow, col, values = gather(x.crow_indices(), x.col_indices(), x.values(), index)
    return dense_from_parts(crow, col, values, x.shape[1])


def row_blocks(crow: torch.Tensor, max_rows: int, max_nnz: int) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges ``[start, stop)`` of at most ``max_rows`` rows and, unless one row
    alone holds more, at most ``max_nnz`` stored values; ``crow`` on the CPU."""
    n = crow.numel() - 1
    start = 0
    while start < n:
        stop = min(start + max_rows, n)
        if int(crow[stop] - crow[start]) > max_nnz:
            limit = crow[start] + max_nnz
            fit = int(torch.searchsorted(crow, limit, right=True)) - 1
            stop = max(start + 1, min(stop, fit))
        yield start, stop
        start = stop
