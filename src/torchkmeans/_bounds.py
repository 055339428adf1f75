"""What a fit keeps between passes: Hamerly's bounds and the reusable buffers.

Prior validation of data is assumed.
"""

from __future__ import annotations

import torch

from ._distance import PreparedCenters
from ._engines._constants import PRUNE_MARGIN
from ._sources import Source

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
        self.drift += largest_sq**0.5 * (1.0 + PRUNE_MARGIN)

    def store(self, start: int, rows: torch.Tensor | None, lower: torch.Tensor) -> None:
        value = lower.to(torch.float64) * (1.0 - PRUNE_MARGIN) + self.drift
        if rows is None:
            self.lower[start : start + value.shape[0]] = value
        else:
            self.lower[start + rows] = value


class Workspace:
    """Buffers allocated once per fit and reused by every chunk of every pass."""

    def __init__(self, chunk_size: int, n_clusters: int, dtype: torch.dtype, device: torch.device):
        self.scores = torch.empty(chunk_size, n_clusters, dtype=dtype, device=device)
        # Per-row distances of the last pass and the centers they are for, when the engine
        # keeps them (the native engine, for in-memory data: see NativeEngine.workspace), so
        # that refilling empty clusters needs no extra pass over the data.
        self.distances: torch.Tensor | None = None
        self.distances_for: PreparedCenters | None = None

    def scores_for(self, rows: int) -> torch.Tensor:
        return self.scores[:rows]
