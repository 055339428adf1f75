"""Data sources: the one interface through which the algorithm sees data.

A source serves rows in chunks, already on the compute device and in the compute dtype, with
their sample weights. The Lloyd loop, k-means++ and the prediction paths only iterate over
chunks, so in-memory tensors and memory-mapped arrays run the same code. Prior validation of
data is assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

# Budgets, in elements, for the per-chunk buffers: the chunk x K score matrix and each chunk x D
# temporary get 2**20 elements (4 MB in float32, 8 MB in float64), so the working set of a pass,
# a handful of such buffers, stays below the 64 MB the memory contract allows, while chunks stay
# large enough (>= 1024 rows up to D = 1024) that per-chunk overhead does not dominate.
SCORE_ELEMENTS = 1 << 20
ROW_ELEMENTS = 1 << 20
MIN_CHUNK = 256
MAX_CHUNK = 65536


def default_chunk_size(n_features: int, n_clusters: int) -> int:
    """Rows per chunk: chunk x K within ``SCORE_ELEMENTS`` and chunk x D within ``ROW_ELEMENTS``."""
    rows = min(SCORE_ELEMENTS // max(n_clusters, 1), ROW_ELEMENTS // max(n_features, 1))
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

    def __init__(
        self,
        X: torch.Tensor,
        sample_weight: torch.Tensor | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
        chunk_size: int,
    ) -> None:
        if X.device != device and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if X.numel() * dtype.itemsize < free // 2:
                X = X.to(device=device, dtype=dtype)
        self.X = X
        self.sample_weight = sample_weight
        self.device = device
        self.dtype = dtype
        self.chunk_size = int(chunk_size)
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1])

    @property
    def weighted(self) -> bool:
        return self.sample_weight is not None

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        if x.device != self.device or x.dtype != self.dtype:
            x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        return x

    def chunks(self) -> Iterator[Chunk]:
        """Yield every row once, in order, in chunks of at most ``chunk_size`` rows."""
        w = self.sample_weight
        for start in range(0, self.n_samples, self.chunk_size):
            stop = min(start + self.chunk_size, self.n_samples)
            yield Chunk(
                start,
                self._convert(self.X[start:stop]),
                None if w is None else w[start:stop],
            )

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Rows at ``index`` (a small 1-D index tensor), in the compute dtype on the device."""
        return self._convert(self.X[index.to(self.X.device)])

    def weights_at(self, index: torch.Tensor) -> torch.Tensor:
        """Weights of the rows at ``index`` (ones when unweighted)."""
        if self.sample_weight is None:
            return torch.ones(index.shape[0], dtype=self.dtype, device=self.device)
        return self.sample_weight[index.to(self.sample_weight.device)].to(self.dtype)
