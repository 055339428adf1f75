"""Validation of sources of batches (a DataLoader or another re-iterable of batches): one full
first pass checked and fingerprinted, and every later batch compared with it. Part of the
validation boundary (see ``_validation``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._validation import FLOAT_DTYPES, OutputKind, _check_finite, _is_sparse, _to_tensor
from .exceptions import DataError, UnsupportedInputError


@dataclass
class CheckedBatches:
    """A re-iterable source of batches whose first full pass was checked."""

    batches: Any
    n_samples: int
    n_features: int
    dtype: torch.dtype
    weighted: bool
    kind: OutputKind
    feature_names: None = None
    out_of_core: bool = True
    # per batch of the first pass: (rows, checksum of its values and weights)
    checksums: list[tuple[int, float]] = field(default_factory=list)
    # the largest absolute value of the first pass
    max_abs: float = 0.0

    @property
    def original(self) -> Any:
        return self.batches


def is_batch_source(X: Any) -> bool:
    """A DataLoader or another iterable of batches (not an array-like, list or DataFrame)."""
    if isinstance(X, (np.ndarray, torch.Tensor, list, tuple, str, bytes, dict)):
        return False
    if hasattr(X, "__array__") or hasattr(X, "iloc") or _is_sparse(X):
        return False
    return hasattr(X, "__iter__")


_BATCH_HELP = (
    "Expected each batch to be a 2-D tensor or array, a 1-tuple (x,) as TensorDataset yields, "
    "or (x, w) with one sample weight per row."
)


def parse_batch(batch: Any, start: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch as ``(x, w)`` tensors (``w`` None without weights); shape checks only."""
    w: Any = None
    if isinstance(batch, (tuple, list)) and not (batch and isinstance(batch[0], numbers.Number)):
        if len(batch) == 1:
            (x,) = batch
        elif len(batch) == 2:
            x, w = batch
        else:
            raise DataError(
                f"The batch starting at row {start} is a sequence of {len(batch)} items. "
                + _BATCH_HELP
            )
    else:
        x = batch
    if _is_sparse(x):
        raise UnsupportedInputError(
            f"The batch starting at row {start} is sparse; batches of sparse rows are not "
            "supported. Pass the whole sparse matrix instead (it is read in chunks, never made "
            "dense)."
        )
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        t = _to_tensor(np.asarray(x), "batch")
    else:
        raise DataError(
            f"The batch starting at row {start} holds a {type(x).__name__}. " + _BATCH_HELP
        )
    if t.is_complex():
        raise UnsupportedInputError(f"The batch starting at row {start} is complex. " + _BATCH_HELP)
    if t.dtype not in FLOAT_DTYPES and t.is_floating_point():
        t = t.to(torch.float32)
    if t.dim() != 2:
        raise DataError(
            f"The batch starting at row {start} has shape {tuple(t.shape)}. " + _BATCH_HELP
        )
    wt = None
    if w is not None:
        wt = w.detach() if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w))
        if not wt.is_floating_point():
            raise DataError(
                f"The batch starting at row {start} is (x, w) with w of dtype {wt.dtype}: the "
                "second element of a batch is read as per-row sample weights, which must be "
                "floating point. If it holds class labels (TensorDataset(X, y)), pass "
                "TensorDataset(X) instead; to weight rows, pass float weights, e.g. "
                "TensorDataset(X, w.double())."
            )
        if wt.dim() == 2 and wt.shape[1] == 1:
            wt = wt[:, 0]
        if wt.dim() != 1 or wt.shape[0] != t.shape[0]:
            raise DataError(
                f"The batch starting at row {start} has {t.shape[0]} rows but weights of shape "
                f"{tuple(wt.shape)}; expected one weight per row."
            )
    return t, wt


def check_batches(X: Any, *, name: str = "X") -> CheckedBatches:
    """Check a source of batches with one full pass: shapes, dtypes, finiteness, weights."""
    if iter(X) is X:
        raise DataError(
            f"{name} is a one-shot iterator ({type(X).__name__}); k-means reads the data once "
            "per iteration. Pass a re-iterable source: a torch.utils.data.DataLoader, or an "
            "object whose __iter__ yields the batches anew on every call (a list of arrays is "
            "read as one array, not as batches)."
        )
    n = 0
    d: int | None = None
    dtype: torch.dtype | None = None
    weighted: bool | None = None
    kind: OutputKind | None = None
    positive = False
    largest = 0.0
    checksums: list[tuple[int, float]] = []
    for batch in X:
        x, w = parse_batch(batch, n)
        checksums.append((int(x.shape[0]), batch_checksum(x, w)))
        if d is None:
            d, dtype, weighted = int(x.shape[1]), x.dtype, w is not None
            raw = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
            tensors = isinstance(raw, torch.Tensor)  # tensors in, tensors out
            kind = OutputKind(True, x.device) if tensors else OutputKind(False)
        if x.shape[1] != d:
            raise DataError(
                f"The batch starting at row {n} of {name} has {x.shape[1]} features, the first "
                f"batch had {d}. Every batch must have the same columns."
            )
        if (w is not None) != weighted:
            raise DataError(
                f"The batch starting at row {n} of {name} "
                + ("has no weights" if weighted else "has weights")
                + " but the first batch "
                + ("had." if weighted else "had none.")
                + " Either every batch is (x, w) or none is."
            )
        if x.shape[0]:
            try:
                largest = max(largest, _check_finite(x, name))
            except DataError as exc:
                raise DataError(f"In the batch starting at row {n}: {exc}") from None
            if w is not None:
                wt = w.to(torch.float64)
                if not bool(torch.isfinite(wt).all()) or bool((wt < 0).any()):
                    raise DataError(
                        f"The batch starting at row {n} of {name} has negative, NaN or infinite "
                        "sample weights; expected finite weights >= 0."
                    )
                positive = positive or bool((wt > 0).any())
        n += int(x.shape[0])
    if d is None or n == 0:
        raise DataError(f"{name} yielded no rows; expected at least one batch with rows.")
    if d == 0:
        raise DataError(f"The batches of {name} have 0 features; expected at least one column.")
    if weighted and not positive:
        raise DataError(
            "sample weights are zero for every row of the batches; expected a positive weight."
        )
    assert dtype is not None and kind is not None and weighted is not None
    return CheckedBatches(X, n, d, dtype, weighted, kind, checksums=checksums, max_abs=largest)


def batch_checksum(x: torch.Tensor, w: torch.Tensor | None) -> float:
    """A cheap fingerprint of a batch's values, weights and row order (float64 sums; NaN
    when a value is not finite): equal on every pass of a stable source."""
    rows = torch.arange(1, x.shape[0] + 1, dtype=torch.float64, device=x.device)
    values = x.sum(dim=1, dtype=torch.float64) if x.is_floating_point() else x.double().sum(1)
    total = values.sum() + (values * rows).sum() / max(1, x.shape[0])
    if w is not None:
        total = total + (w.to(torch.float64) * rows).sum()
    return float(total)


def check_same_batch(
    checksums: list[tuple[int, float]], index: int, start: int, x: torch.Tensor,
    w: torch.Tensor | None, n_features: int,
) -> None:  # fmt: skip
    """A batch of a later pass must be the batch of the first pass: same width, same rows,
    the same values in the same order (checksums within rounding), and finite."""
    help_ = (
        "Pass a source that yields the same rows in the same order on every pass (for a "
        "DataLoader: shuffle=False and no random transforms)."
    )
    if x.dim() != 2 or x.shape[1] != n_features:
        raise DataError(
            f"In a later pass, the batch starting at row {start} has shape {tuple(x.shape)}; "
            f"in the first pass every batch had {n_features} features. {help_}"
        )
    if index >= len(checksums):
        return  # more batches than the first pass: the row count check reports it
    rows, first = checksums[index]
    now = batch_checksum(x, w)
    if not math.isfinite(now) and math.isfinite(first):
        raise DataError(
            f"In a later pass, the batch starting at row {start} contains NaN or infinity; it "
            f"did not in the first pass. {help_}"
        )
    if rows != x.shape[0]:
        raise DataError(
            f"The batch source changed between passes: the batch starting at row {start} has "
            f"{x.shape[0]} rows in this pass but {rows} in the first one. {help_}"
        )
    if abs(now - first) > 1e-9 * (abs(first) + abs(now)) + 1e-300:
        raise DataError(
            f"The batch source changed between passes: the batch starting at row {start} "
            f"holds other rows than in the first pass (shuffled, or the data changed). {help_}"
        )
