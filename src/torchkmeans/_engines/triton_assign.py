"""The fused assignment kernel for CUDA, in Triton (optional: ``pip install torchkmeans[triton]``).

For a tile of rows, the kernel streams tiles of centers, computes the scores
``alpha * x.c + ||c||^2`` (alpha = -2 for Euclidean rows and centers, -1 with zero norms for
cosine: the torch engine's scores) with fp32 accumulation, and keeps per row, on chip, the best
score, its center (the lowest index among equal scores) and the runner-up score; the N x K
scores are never written, and nothing is added across programs, so the result does not depend
on the launch. Inputs may be fp32 (multiplied in IEEE fp32, never TF32), fp16 or bf16 (products
exact in fp32); norms are fp32 (an fp16 norm overflows at 65,504). Rows whose runner-up is
within the rounding slack of the best are re-decided from exact distances by the caller
(:func:`torchkmeans._distance.assign_with_bound`), as on the CPU.

Problems may be batched: ``x`` (B, N, D) against ``c`` (B, K, D), one grid column per problem.

Until a run on a real GPU has passed ``tests/test_cuda.py`` and recorded its benchmark, the
kernel is opt-in: ``TORCHKMEANS_TRITON=1`` (the decision is
:func:`torchkmeans._engines.dispatch.triton_assignment`). Its tests run on the CPU under
``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

# Problems per launch at most (CUDA's limit on the second dimension of a grid).
_MAX_GRID_Y = 65535
# The dtypes of rows and centers the kernel takes.
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether Triton can be imported (imported on first need: it takes half a second)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``: on the CPU)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _kernel() -> Any:
    """The jitted kernel (its module imports Triton: only on first use, so that importing
    torchkmeans never does)."""
    from ._triton_kernel import assign_kernel

    return assign_kernel


def _block(size: int, low: int, high: int) -> int:
    """The power of two in [low, high] closest above ``size``."""
    b = low
    while b < size and b < high:
        b *= 2
    return b


def assign_scores(
    x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best score, its center and the runner-up score of every row, without the N x K scores.

    ``x``: (N, D) or (B, N, D) rows; ``c``: (K, D) or (B, K, D) centers, of the same dtype
    (fp32, fp16 or bf16; any strides); ``c_sq``: (K,) or (B, K) squared center norms (fp32),
    or None for cosine (scores ``-x.c``). Returns fp32 ``best`` and ``second`` and int64
    labels, of shape (N,) or (B, N). Scores are ``||c||^2 - 2 x.c`` (Euclidean) or ``-x.c``.
    """
    if not available():
        raise RuntimeError("the Triton kernel needs triton: pip install torchkmeans[triton]")
    if x.dtype != c.dtype or x.dtype not in DTYPES:
        raise ValueError(f"rows ({x.dtype}) and centers ({c.dtype}) must share a dtype of {DTYPES}")
    single = x.dim() == 2
    xb = x[None] if single else x
    cb = c[None] if single else c
    count, n, d = xb.shape
    k = cb.shape[1]
    if c_sq is None:
        sq = torch.zeros(count, k, dtype=torch.float32, device=x.device)
        alpha = -1.0
    else:
        sq = (c_sq[None] if single else c_sq).to(torch.float32).contiguous()
        alpha = -2.0
    best = torch.empty(count, n, dtype=torch.float32, device=x.device)
    second = torch.empty_like(best)
    labels = torch.empty(count, n, dtype=torch.int32, device=x.device)
    block_n, block_k, block_d = 64, _block(k, 16, 64), _block(d, 16, 32)
    for b0 in range(0, count if n > 0 else 0, _MAX_GRID_Y):  # (a grid has <= 65,535 rows)
        b1 = min(count, b0 + _MAX_GRID_Y)
        grid: Any = ((n + block_n - 1) // block_n, b1 - b0)
        _kernel()[grid](
            xb[b0:b1], cb[b0:b1], sq[b0:b1], best[b0:b1], labels[b0:b1], second[b0:b1], n, k, d,
            xb.stride(0), xb.stride(1), xb.stride(2), cb.stride(0), cb.stride(1), cb.stride(2),
            sq.stride(0), n, ALPHA=alpha, IEEE=x.dtype == torch.float32,
            UPCAST=x.dtype == torch.bfloat16 and interpreted(),
            BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d,
        )  # fmt: skip
    labels64 = labels.to(torch.int64)
    if single:
        return best[0], labels64[0], second[0]
    return best, labels64, second
