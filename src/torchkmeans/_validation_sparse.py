"""Validation of sparse input: scipy.sparse matrices and arrays and torch sparse tensors become
canonical torch CSR tensors (never dense), with their structure, finiteness and zero rows
checked. Part of the validation boundary (see ``_validation``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from . import _sparse
from ._validation import _SCAN_ELEMENTS, CheckedData, OutputKind, check_not_empty
from .exceptions import DataError, UnsupportedInputError

_SPARSE_HELP = "Expected a 2-D sparse matrix of shape (n_samples, n_features)."


def check_sparse(X: Any, *, name: str = "X", allow_empty: bool = False) -> CheckedData:
    """Validate sparse ``X`` and wrap it as a torch CSR tensor, never dense.

    scipy CSR data in canonical format is wrapped without a copy (its ``indptr``, ``indices``
    and ``data``); other scipy formats and CSR data with unsorted or duplicate entries are
    converted to canonical CSR first (a copy of the sparse data, as scikit-learn does). torch
    CSR tensors are used as they are (copied when a row holds duplicate or unsorted columns),
    COO tensors through their coalesced indices, CSC tensors converted. Values keep their
    dtype (integer and boolean scipy data are computed in float64, as in scikit-learn; integer
    tensors in float32, as dense tensors); checks: shape, emptiness, stored values finite,
    indices in range.
    """
    if isinstance(X, torch.Tensor):
        t, kind, float_dtype = _torch_sparse(X.detach(), name), OutputKind(True, X.device), None
    else:
        t, float_dtype = _scipy_sparse(X, name)
        kind = OutputKind(False)
    check_not_empty(t, name, allow_empty)
    _check_sparse_structure(t, name)
    if t.is_floating_point():
        _check_sparse_finite(t, name)
    return CheckedData(
        X=t,
        kind=kind,
        feature_names=None,
        original=X,
        float_dtype=float_dtype or torch.float32,
    )


def _torch_sparse(t: torch.Tensor, name: str) -> torch.Tensor:
    """A torch sparse tensor as a 2-D CSR tensor over its own arrays where possible."""
    layout = t.layout
    if t.dim() != 2 or (layout == torch.sparse_coo and t.dense_dim() != 0):
        raise DataError(
            f"Expected a 2-D sparse tensor for {name}, got one of shape {tuple(t.shape)} "
            f"({layout}). " + _SPARSE_HELP
        )
    if t.is_complex():
        raise UnsupportedInputError(
            f"Complex data not supported: {name} has dtype {t.dtype}. Expected real numbers."
        )
    if layout == torch.sparse_coo:
        return _coo_to_csr(t)
    if layout == torch.sparse_csc:
        t = t.to_sparse_csr()
    elif layout != torch.sparse_csr:
        raise UnsupportedInputError(
            f"{name} is a torch sparse tensor of layout {layout}; expected torch.sparse_csr, "
            "torch.sparse_coo or torch.sparse_csc (convert it with X.to_sparse_csr())."
        )
    if t.values().dim() != 1:
        raise DataError(
            f"{name} is a hybrid sparse tensor (dense values per entry). " + _SPARSE_HELP
        )
    if not _csr_is_canonical(t):  # duplicate entries would count twice in row norms
        t = _coo_to_csr(t.to_sparse_coo())
    return t


def _coo_to_csr(t: torch.Tensor) -> torch.Tensor:
    """A COO tensor as CSR over its (coalesced) indices and values: only the row pointers are
    new (coalescing an uncoalesced tensor copies it, summing duplicates)."""
    if not t.is_coalesced():
        t = t.coalesce()  # sorted by row then column, duplicates summed
    indices = t.indices()
    n = int(t.shape[0])
    crow = torch.zeros(n + 1, dtype=torch.int64, device=t.device)
    if indices.shape[1]:
        torch.cumsum(torch.bincount(indices[0], minlength=n), 0, out=crow[1:])
    return _sparse.csr(crow, indices[1], t.values(), (n, int(t.shape[1])))


def _csr_is_canonical(t: torch.Tensor) -> bool:
    """Whether the columns of every row of a CSR tensor strictly increase (no duplicate entry),
    checked in bounded steps. (Malformed row pointers are reported later.)"""
    crow, col = t.crow_indices(), t.col_indices()
    nnz = int(col.numel())
    if crow.numel() != t.shape[0] + 1 or int(crow[-1]) != nnz or int(crow[0]) != 0:
        return True
    host = crow.cpu()
    for start in range(0, max(nnz - 1, 0), _SCAN_ELEMENTS):
        stop = min(start + _SCAN_ELEMENTS, nnz - 1)
        ok = col[start + 1 : stop + 1] > col[start:stop]
        # positions start+1..stop where a row begins need no order with the value before
        lo = int(torch.searchsorted(host, torch.tensor(start + 1, dtype=host.dtype)))
        hi = int(torch.searchsorted(host, torch.tensor(stop, dtype=host.dtype), right=True))
        begins = crow[lo:hi].to(torch.int64) - (start + 1)
        ok[begins] = True
        if not bool(ok.all()):
            return False
    return True


def _scipy_sparse(X: Any, name: str) -> tuple[torch.Tensor, torch.dtype | None]:
    """A scipy sparse matrix or array as a torch CSR tensor over its arrays (no copy for CSR
    data in canonical format), and the dtype integer data is computed in."""
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise DataError(
            f"Expected a 2-D sparse matrix for {name}, got a {len(shape)}-D sparse array of "
            f"shape {shape}. " + _SPARSE_HELP
        )
    kind = X.dtype.kind
    if kind == "c":
        raise UnsupportedInputError(
            f"Complex data not supported: {name} has dtype {X.dtype}. Expected real numbers; "
            "pass X.real or abs(X)."
        )
    if kind not in "fiub":
        raise UnsupportedInputError(
            f"{name} is a sparse matrix of dtype {X.dtype}; expected numbers (float, int or bool)."
        )
    if X.format != "csr":
        X = X.tocsr()  # (sums duplicates, sorts the indices)
    elif not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()  # on the copy: the caller's matrix is never modified
    data = X.data
    if kind == "f" and data.dtype not in (np.float16, np.float32, np.float64):
        data = data.astype(np.float64)
    elif kind == "u" and data.dtype != np.uint8:
        data = data.astype(np.float64)
    indptr, indices = X.indptr, X.indices
    if indptr.dtype != indices.dtype:
        if indices.dtype == np.int32 and X.nnz < np.iinfo(np.int32).max:
            indptr = indptr.astype(np.int32)
        else:
            indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    parts = []
    for arr in (indptr, indices, data):
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        parts.append(np.ascontiguousarray(arr))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: never written to
        crow, col, values = (torch.from_numpy(a) for a in parts)
    t = _sparse.csr(crow, col, values, (int(shape[0]), int(shape[1])))
    return t, (torch.float64 if kind in "iub" else None)


def _check_sparse_structure(t: torch.Tensor, name: str) -> None:
    """The CSR arrays describe a valid matrix: row pointers from 0, non-decreasing, up to the
    number of stored values; column indices within the columns (checked in bounded steps)."""
    crow, col = t.crow_indices(), t.col_indices()
    nnz = int(col.numel())
    bad = (
        crow.numel() != t.shape[0] + 1
        or int(crow[0]) != 0
        or int(crow[-1]) != nnz
        or int(t.values().numel()) != nnz
        or bool((crow[1:] < crow[:-1]).any())
    )
    if bad:
        raise DataError(
            f"{name} is not a valid CSR matrix: its row pointers do not describe its "
            f"{nnz} stored values. " + _SPARSE_HELP
        )
    d = int(t.shape[1])
    for start in range(0, nnz, _SCAN_ELEMENTS):
        block = col[start : start + _SCAN_ELEMENTS]
        if bool((block < 0).any()) or bool((block >= d).any()):
            raise DataError(
                f"{name} is not a valid sparse matrix: a column index is outside "
                f"[0, {d}). " + _SPARSE_HELP
            )


def _sparse_position(t: torch.Tensor, pos: int) -> tuple[int, int]:
    """(row, column) of stored value number ``pos``."""
    crow = t.crow_indices()
    at = torch.tensor(pos, dtype=crow.dtype, device=crow.device)
    row = int(torch.searchsorted(crow, at, right=True)) - 1
    return row, int(t.col_indices()[pos])


def _check_sparse_finite(t: torch.Tensor, name: str) -> None:
    """Scan the stored values for NaN and inf in bounded steps; raise naming the first."""
    values = t.values()
    for start in range(0, values.numel(), _SCAN_ELEMENTS):
        finite = torch.isfinite(values[start : start + _SCAN_ELEMENTS])
        if bool(finite.all()):
            continue
        pos = int((~finite).nonzero()[0, 0]) + start
        row, col = _sparse_position(t, pos)
        what = "NaN" if np.isnan(float(values[pos])) else "infinity"
        hint = (
            "Remove or impute missing values (e.g. sklearn.impute.SimpleImputer) first."
            if what == "NaN"
            else "Remove or clip infinite values first."
        )
        raise DataError(
            f"Input {name} contains {what} (first at row {row}, column {col}, among the "
            f"stored values of the sparse matrix); expected finite numbers only. {hint}"
        )


def check_sparse_nonzero_rows(t: torch.Tensor, name: str) -> None:
    """Every row of a CSR tensor holds a non-zero stored value (checked in bounded steps)."""
    crow = t.crow_indices().cpu()
    values = t.values()
    for start, stop in _sparse.row_blocks(crow, _SCAN_ELEMENTS, _SCAN_ELEMENTS):
        a, b = int(crow[start]), int(crow[stop])
        block = _sparse.csr(
            (crow[start : stop + 1] - a).to(values.device),
            t.col_indices()[a:b],
            (values[a:b] != 0).to(torch.float32),
            (stop - start, int(t.shape[1])),
        )
        zero = _sparse.row_sq_norms(block) == 0
        if bool(zero.any()):
            row = int(zero.nonzero()[0, 0]) + start
            raise DataError(
                f"metric='cosine' needs rows with a direction, but row {row} of {name} is all "
                "zeros. Drop zero rows or use metric='euclidean'."
            )
