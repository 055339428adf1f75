"""The sufficient statistics of a Lloyd pass and the step that turns them into centers.

Every field of :class:`LloydStats` is a sum over rows, so statistics from chunks, loaders or
ranks combine with a plain SUM; :func:`finalize` divides them into new centers (the torch
engine's update; the native engine's ``tk_update`` does the same arithmetic in C).
Prior validation of data is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._distance import PreparedCenters
from ._distributed import Comm


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

    def reduce_(self, comm: Comm, failed: bool = False) -> int:
        """SUM over ranks, in one packed collective (float64, so counts stay exact).

        ``failed`` says that this rank could not compute its statistics (its data source
        raised); the flag travels in the same collective, so every rank learns at once. Returns
        how many ranks failed (``int(failed)`` on one process).
        """
        if not comm.distributed:
            return int(failed)
        parts = [self.sums.reshape(-1), self.weights, self.counts, self.inertia]
        failure = torch.full((1,), float(failed), dtype=torch.float64, device=self.sums.device)
        flags = torch.cat([self.changed.to(torch.float64).reshape(1), failure])
        flat = torch.cat([t.to(torch.float64) for t in parts] + [flags])
        comm.all_reduce_(flat)
        offset = 0
        for t in parts:
            n = t.numel()
            t.copy_(flat[offset : offset + n])
            offset += n
        self.changed.copy_(flat[offset].to(torch.int64))
        return int(flat[offset + 1])

    @classmethod
    def zeros(cls, k: int, d: int, dtype: torch.dtype, device: torch.device) -> LloydStats:
        return cls(
            sums=torch.zeros(k, d, dtype=dtype, device=device),
            weights=torch.zeros(k, dtype=dtype, device=device),
            counts=torch.zeros(k, dtype=dtype, device=device),
            inertia=torch.zeros(k, dtype=dtype, device=device),
            changed=torch.zeros((), dtype=torch.int64, device=device),
        )


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
