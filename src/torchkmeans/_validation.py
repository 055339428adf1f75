"""The validation boundary: the only code that inspects user data (X, batches, sample
weights, arrays of centers, the feature count after fit); parameters are checked in
``_params``. This module checks dense arrays, weights and centers; sparse matrices are checked
in ``_validation_sparse`` and sources of batches in ``_validation_batches``, both built on it.

Everything below this module (sources, kernels, the Lloyd loop) assumes validated tensors.
Errors raised here say what was received, what was expected and, when there is one, the fix.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .exceptions import DataError, UnsupportedInputError

if TYPE_CHECKING:
    from ._validation_batches import CheckedBatches

# Elements inspected per step by the NaN/inf and zero-row scans: bounded extra memory.
_SCAN_ELEMENTS = 1 << 20

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class OutputKind:
    """How results go back to the caller: numpy arrays, or tensors on ``device``."""

    is_tensor: bool
    device: torch.device | None = None

    def wrap(self, t: torch.Tensor) -> Any:
        """Return ``t`` as the caller's kind of array (numpy in, numpy out)."""
        if self.is_tensor:
            return t.to(self.device) if self.device is not None else t
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()


@dataclass
class CheckedData:
    """A validated 2-D tensor (storage dtype kept), plus what the boundary learned about it.

    ``X`` is dense, or a torch sparse CSR tensor for sparse input (``sparse``). Integer and
    boolean data are computed in ``float_dtype``.
    """

    X: torch.Tensor
    kind: OutputKind
    feature_names: np.ndarray | None
    original: Any
    out_of_core: bool = False
    # the largest absolute value (0.0 for empty data), from the finiteness scan
    max_abs: float = 0.0
    float_dtype: torch.dtype = torch.float32

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def sparse(self) -> bool:
        return self.X.layout == torch.sparse_csr


def _is_sparse(X: object) -> bool:
    if isinstance(X, torch.Tensor):
        return X.layout != torch.strided
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return False
    return bool(sp.issparse(X))


def _feature_names(X: object) -> np.ndarray | None:
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "iloc"):
        return None
    names = list(columns)
    if names and all(isinstance(n, str) for n in names):
        return np.asarray(names, dtype=object)
    return None


def _numpy_from_any(X: Any, name: str) -> np.ndarray:
    """Convert pandas objects, lists and array-likes to a numpy array without copying floats."""
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # pandas DataFrame
        dtypes = list(X.dtypes)
        when = [str(c) for c, d in zip(X.columns, dtypes) if getattr(d, "kind", "O") in "mM"]
        if when:
            raise UnsupportedInputError(
                f"{name} has date or time columns ({', '.join(when)}); expected numbers only. "
                "Convert them to numbers with a meaning first (e.g. days since a date, or "
                "cyclical features), as scikit-learn requires too."
            )
        try:
            if all(getattr(d, "kind", "O") in "fiub" for d in dtypes):
                arr = X.to_numpy()
            else:
                arr = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise UnsupportedInputError(
                f"{name} is a DataFrame with non-numeric columns ({exc}). Expected numeric "
                "columns only; encode or drop the text columns first."
            ) from None
        return np.asarray(arr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.VisibleDeprecationWarning)
            arr = np.asarray(X)
    except (ValueError, TypeError, np.exceptions.VisibleDeprecationWarning):
        raise DataError(
            f"{name} could not be read as a 2-D array: its rows have different lengths or "
            f"it is not numeric (got {type(X).__name__}). Expected an array-like of shape "
            "(n_samples, n_features)."
        ) from None
    return arr


def _has_missing(arr: np.ndarray) -> bool:
    """Whether an object array holds None or pandas' NA."""
    flat = arr.ravel()
    if any(value is None for value in flat):
        return True
    try:
        import pandas as pd
    except ImportError:
        return False
    return any(value is pd.NA for value in flat)


def _to_tensor(arr: np.ndarray, name: str) -> torch.Tensor:
    """Wrap a numpy array as a tensor, converting only what torch cannot hold as-is."""
    kind = arr.dtype.kind
    if kind == "c":
        raise UnsupportedInputError(
            f"Complex data not supported: {name} has dtype {arr.dtype}. Expected real numbers; "
            "pass X.real, np.abs(X), or the real and imaginary parts as separate features."
        )
    if kind in "mM":
        raise UnsupportedInputError(
            f"{name} holds dates or times (dtype {arr.dtype}); expected numbers only. Convert "
            "them to numbers with a meaning first (e.g. days since a date), as scikit-learn "
            "requires too."
        )
    if kind in "OUSV":
        if kind == "O" and _has_missing(arr):
            raise DataError(
                f"{name} contains missing values (None or pd.NA); expected numbers only. "
                "Remove or impute them first (e.g. sklearn.impute.SimpleImputer)."
            )
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise UnsupportedInputError(
                f"{name} contains values that are not numbers (dtype {arr.dtype}): {exc}. "
                "Expected numeric data; convert or drop the non-numeric columns first."
            ) from None
    elif kind == "f" and arr.dtype not in (np.float16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    elif kind == "u" and arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
    elif kind not in "fiub":
        raise UnsupportedInputError(f"{name} has unsupported dtype {arr.dtype}.")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if any(s < 0 for s in arr.strides) or any(s % arr.itemsize for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    with warnings.catch_warnings():
        # Read-only arrays (memmaps opened with mode "r") are wrapped without a copy; torchkmeans
        # never writes to the caller's data.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def is_memory_mapped(arr: np.ndarray) -> bool:
    """Whether the array's memory is a mapped file (np.memmap or a view of one)."""
    import mmap

    base: Any = arr
    for _ in range(32):
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
        if base is None:
            return False
    return False


def compute_dtype_for(
    dtype: torch.dtype, max_abs: float, n_features: int, metric: str, name: str = "X"
) -> torch.dtype:
    """The dtype distances are computed in: ``dtype``, widened to float64 when the squared
    distances of values as large (or as small) as ``max_abs`` would over- or underflow in it.
    Raises a DataError when they would overflow even float64. (Cosine normalizes rows, so only
    the magnitude of Euclidean data matters.)"""
    if metric != "euclidean" or max_abs == 0.0 or not math.isfinite(max_abs):
        return dtype
    # the largest squared distance between two rows is at most 4 d max_abs^2; keep a margin
    # of 2^10 for the sums of a pass
    log_reach = 2.0 * math.log2(max_abs) + math.log2(4.0 * max(n_features, 1)) + 10.0
    log_floor = 2.0 * math.log2(max_abs) - 20.0  # squared values must stay normal numbers

    def fits(dt: torch.dtype) -> bool:
        info = torch.finfo(dt)
        return log_reach < math.log2(info.max) and log_floor > math.log2(info.tiny)

    if fits(dtype):
        return dtype
    info = torch.finfo(torch.float64)
    if log_reach < math.log2(info.max):
        # float64 holds them (values so small that even float64 squares underflow give zero
        # distances there: the fit stays finite, every row ties)
        return torch.float64
    raise DataError(
        f"{name} has values up to {max_abs:.3g}: squared distances between its rows would "
        f"overflow float64 (largest {info.max:.3g}). K-means does not depend on the scale "
        f"of the data: divide {name} by a constant first (e.g. {name} / {max_abs:.0e})."
    )


def check_fits_dtype(max_abs: float, dtype: torch.dtype, name: str = "X") -> None:
    """Values as large as ``max_abs`` must be representable in the result ``dtype``."""
    if dtype.is_floating_point and max_abs > torch.finfo(dtype).max:
        raise DataError(
            f"{name} has values up to {max_abs:.3g}, which {dtype} cannot hold (largest "
            f"{torch.finfo(dtype).max:.3g}): the requested dtype would turn them into "
            "infinity. Pass a wider dtype (e.g. dtype='float64') or rescale the data."
        )


def check_not_empty(t: torch.Tensor, name: str, allow_empty: bool = False) -> None:
    """A 2-D array (dense or sparse) needs a feature, and a row unless ``allow_empty``."""
    n, d = t.shape
    if n == 0 and not allow_empty:
        raise DataError(
            f"Found array with 0 sample(s) (shape={tuple(t.shape)}) while a minimum of 1 is "
            f"required: {name} is empty."
        )
    if d == 0:
        raise DataError(
            f"Found array with 0 feature(s) (shape={tuple(t.shape)}) while a minimum of 1 is "
            f"required: {name} has no columns."
        )


def check_array(
    X: Any, *, name: str = "X", allow_1d: bool = False, allow_empty: bool = False
) -> CheckedData:
    """Validate ``X`` and wrap it as a tensor without copying float32/float64 data.

    Checks container, dtype, dimensions, emptiness and finiteness. Integer and boolean data are
    kept in their storage dtype and converted chunk by chunk later; object arrays are converted
    to float64 here.
    """
    if X is None:
        raise DataError(f"{name} is None; expected an array-like of shape (n_samples, n_features).")
    if _is_sparse(X):
        from ._validation_sparse import check_sparse  # (it builds on this module)

        return check_sparse(X, name=name, allow_empty=allow_empty)
    names = _feature_names(X)
    if isinstance(X, torch.Tensor) and X.device.type == "meta":
        raise DataError(
            f"{name} is a tensor on the 'meta' device, which holds shapes but no values; "
            "expected data. Materialize it first (e.g. X.to_empty(device='cpu') and fill it)."
        )
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if t.is_complex():
            raise UnsupportedInputError(
                f"Complex data not supported: {name} has dtype {t.dtype}. Expected real numbers."
            )
        if t.dtype not in FLOAT_DTYPES and (t.is_floating_point() or t.dtype.is_complex):
            t = t.to(torch.float32)
        if t.dtype not in FLOAT_DTYPES and t.dtype not in (
            torch.int8,
            torch.uint8,
            torch.int16,
            torch.int32,
            torch.int64,
            torch.bool,
        ):
            t = t.to(torch.float32)
        kind = OutputKind(True, X.device)
        mapped = False
    else:
        arr = _numpy_from_any(X, name)
        mapped = is_memory_mapped(arr)
        t = _to_tensor(arr, name)
        mapped = mapped and t.data_ptr() == arr.__array_interface__["data"][0]
        kind = OutputKind(False)
    if t.dim() == 1 and allow_1d:
        t = t.unsqueeze(1)
    if t.dim() != 2:
        if t.dim() == 1:
            raise DataError(
                f"Expected a 2-D array for {name}, got a 1-D array of shape {tuple(t.shape)} "
                f"instead. Reshape your data with X.reshape(-1, 1) if it has a single feature or "
                f"X.reshape(1, -1) if it contains a single sample."
            )
        raise DataError(
            f"Expected a 2-D array for {name} of shape (n_samples, n_features), got a "
            f"{t.dim()}-D array of shape {tuple(t.shape)}."
        )
    check_not_empty(t, name, allow_empty)
    largest = _check_finite(t, name)
    return CheckedData(
        X=t, kind=kind, feature_names=names, original=X, out_of_core=mapped, max_abs=largest
    )


def _check_finite(t: torch.Tensor, name: str) -> float:
    """Scan for NaN and inf in bounded steps; raise naming the first bad value found. Returns
    the largest absolute value (0.0 without values).

    Row sums (in float64) are finite exactly when the rows are, barring overflow of huge finite
    values, so only a block whose sums are not finite is inspected element by element.
    """
    n = t.shape[0]
    step = max(1, _SCAN_ELEMENTS // max(t.shape[1], 1))
    largest = 0.0
    for start in range(0, n, step):
        block = t[start : start + step]
        if block.numel():
            low, high = torch.aminmax(block if block.dtype != torch.bool else block.byte())
            largest = max(largest, abs(float(low)), abs(float(high)))
        if not t.is_floating_point() or bool(
            torch.isfinite(block.sum(dim=1, dtype=torch.float64)).all()
        ):
            continue
        finite = torch.isfinite(block)
        if bool(finite.all()):
            continue
        bad = (~finite).nonzero()[0]
        row, col = int(bad[0]) + start, int(bad[1])
        value = float(t[row, col])
        what = "NaN" if np.isnan(value) else "infinity"
        hint = (
            "Remove or impute missing values (e.g. sklearn.impute.SimpleImputer) first."
            if what == "NaN"
            else "Remove or clip infinite values first."
        )
        raise DataError(
            f"Input {name} contains {what} (first at row {row}, column {col}); expected finite "
            f"numbers only. {hint}"
        )
    return largest


def check_nonzero_rows(t: torch.Tensor, name: str = "X") -> None:
    """Cosine k-means needs every row to have a direction."""
    if t.layout == torch.sparse_csr:
        from ._validation_sparse import check_sparse_nonzero_rows

        check_sparse_nonzero_rows(t, name)
        return
    step = max(1, _SCAN_ELEMENTS // max(t.shape[1], 1))
    for start in range(0, t.shape[0], step):
        block = t[start : start + step]
        zero = ~(block != 0).any(dim=1)
        if bool(zero.any()):
            row = int(zero.nonzero()[0, 0]) + start
            raise DataError(
                f"metric='cosine' needs rows with a direction, but row {row} of {name} is all "
                "zeros. Drop zero rows or use metric='euclidean'."
            )


def check_n_features(
    checked: CheckedData | CheckedBatches, n_features: int, names: np.ndarray | None, who: str
) -> None:
    """Check the feature count and names of data passed after fit."""
    d = checked.n_features
    if d != n_features:
        raise DataError(
            f"X has {d} features, but {who} is expecting {n_features} features as input "
            f"(it was fitted on {n_features}). Pass data with the same columns as during fit."
        )
    new = checked.feature_names
    if names is None and new is not None:
        warnings.warn(
            f"X has feature names, but {who} was fitted without feature names",
            UserWarning,
            stacklevel=3,
        )
    elif names is not None and new is None:
        warnings.warn(
            f"X does not have valid feature names, but {who} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    elif (
        names is not None
        and new is not None
        and (len(names) != len(new) or not np.array_equal(names, new))
    ):
        raise DataError(
            "The feature names should match those that were passed during fit: fitted with "
            f"{list(names)[:10]}, got {list(new)[:10]}."
        )


def check_sample_weight(
    sample_weight: Any,
    n_samples: int,
    dtype: torch.dtype,
    device: torch.device,
    require_positive: bool = True,
) -> torch.Tensor | None:
    """Return the weights as a 1-D tensor on ``device`` (None when not given).

    ``require_positive=False`` (a shard of a distributed fit) leaves the check that some weight
    is positive to the caller, who checks it over all shards.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        w = torch.full((n_samples,), float(sample_weight), dtype=dtype, device=device)
    else:
        if _is_sparse(sample_weight):
            raise UnsupportedInputError("sample_weight must be dense, got a sparse matrix.")
        if isinstance(sample_weight, torch.Tensor):
            w = sample_weight.detach()
        else:
            arr = _numpy_from_any(sample_weight, "sample_weight")
            if arr.dtype.kind not in "fiub":
                try:
                    arr = arr.astype(np.float64)
                except (TypeError, ValueError):
                    raise DataError(
                        f"sample_weight must be numeric, got dtype {arr.dtype}."
                    ) from None
            w = torch.as_tensor(np.asarray(arr, dtype=np.float64))
        if w.dim() != 1:
            raise DataError(
                f"sample_weight must be 1-D of shape (n_samples,) = ({n_samples},), got shape "
                f"{tuple(w.shape)}."
            )
        if w.shape[0] != n_samples:
            raise DataError(
                f"sample_weight has {w.shape[0]} elements, expected {n_samples} (one per row of X)."
            )
        w = w.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(w).all()):
        raise DataError("sample_weight contains NaN or infinity; expected finite weights >= 0.")
    if bool((w < 0).any()):
        i = int((w < 0).nonzero()[0, 0])
        raise DataError(
            f"sample_weight must be >= 0, got {float(w[i])} at position {i}. Negative weights "
            "have no meaning in k-means."
        )
    if require_positive and not bool((w > 0).any()):
        raise DataError(
            "sample_weight is zero for every sample; expected at least one positive weight."
        )
    return w


def check_n_samples(n_samples: int, n_clusters: int) -> None:
    """The data must have at least one row per cluster."""
    if n_samples < n_clusters:
        raise DataError(
            f"n_samples={n_samples} should be >= n_clusters={n_clusters}. Use fewer clusters or "
            "more data."
        )


def check_centers(
    centers: Any, n_clusters: int, n_features: int, name: str = "init"
) -> torch.Tensor:
    """Validate explicit centers (an init array or what an init callable returned)."""
    try:
        checked = check_array(centers, name=name)
    except DataError as exc:
        raise DataError(f"{name} is not a valid array of centers: {exc}") from None
    c = checked.X
    if checked.sparse:  # K x D centers are dense
        c = c.to_dense()
    shape = tuple(c.shape)
    if shape[0] != n_clusters:
        raise DataError(
            f"The shape of the initial centers {shape} does not match the number of clusters "
            f"{n_clusters}: {name} must have shape (n_clusters, n_features) = ({n_clusters}, "
            f"{n_features}). Pass one row per cluster."
        )
    if shape[1] != n_features:
        raise DataError(
            f"The shape of the initial centers {shape} does not match the number of features "
            f"of the data {n_features}: {name} must have shape (n_clusters, n_features) = "
            f"({n_clusters}, {n_features}). Pass as many columns as X has."
        )
    return c


def check_squared_norms(x_squared_norms: Any, n_samples: int) -> None:
    """scikit-learn's precomputed squared row norms: numbers, one per row of X."""
    try:
        norms = np.asarray(
            x_squared_norms.detach().cpu() if isinstance(x_squared_norms, torch.Tensor)
            else x_squared_norms
        )  # fmt: skip
    except Exception as exc:  # any container numpy cannot read
        raise DataError(f"x_squared_norms is not an array: {exc}") from None
    if norms.ndim == 0 or norms.dtype.kind not in "fiu":
        raise DataError(
            f"x_squared_norms must be an array of numbers of shape (n_samples,), got "
            f"{type(x_squared_norms).__name__} of dtype {norms.dtype} and shape {norms.shape}."
        )
    if norms.shape[0] != n_samples:
        raise DataError(
            f"The length of x_squared_norms {norms.shape[0]} should be equal to the length of "
            f"n_samples {n_samples}. Pass one squared norm per row of X, or None (torchkmeans "
            "computes what it needs from X)."
        )


# --------------------------------------------------------------------------------------------
# sparse input: scipy.sparse matrices and arrays, torch sparse COO / CSR / CSC tensors
# --------------------------------------------------------------------------------------------
