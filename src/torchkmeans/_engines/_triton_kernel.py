"""The Triton source of the fused assignment kernel (see :mod:`.triton_assign`, which launches
it). Importing this module imports Triton."""

import triton
import triton.language as tl


@triton.jit
def assign_kernel(
    x_ptr, c_ptr, csq_ptr, best_ptr, label_ptr, second_ptr,
    n, k, d,
    sxb, sxn, sxd, scb, sck, scd, sqb, sob,
    ALPHA: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)  # (offsets in int64: tensors past 2^31 elements)
    rows = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n
    x_base = x_ptr + pid_b * sxb
    c_base = c_ptr + pid_b * scb
    best = tl.full((BLOCK_N,), float("inf"), tl.float32)
    second = tl.full((BLOCK_N,), float("inf"), tl.float32)
    label = tl.zeros((BLOCK_N,), tl.int32)
    lanes = tl.arange(0, BLOCK_K)
    for k0 in range(0, k, BLOCK_K):
        cols = k0 + lanes
        col_ok = cols < k
        acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
        for d0 in range(0, d, BLOCK_D):
            dd = d0 + tl.arange(0, BLOCK_D)
            d_ok = dd < d
            xt = tl.load(
                x_base + rows[:, None] * sxn + dd[None, :] * sxd,
                mask=row_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            ct = tl.load(
                c_base + cols[None, :] * sck + dd[:, None] * scd,
                mask=col_ok[None, :] & d_ok[:, None],
                other=0.0,
            )
            if UPCAST:  # (Triton's interpreter multiplies bf16 blocks wrongly)
                xt = xt.to(tl.float32)
                ct = ct.to(tl.float32)
            if IEEE or UPCAST:
                acc = tl.dot(xt, ct, acc, input_precision="ieee", out_dtype=tl.float32)
            else:
                acc = tl.dot(xt, ct, acc, out_dtype=tl.float32)
        csq = tl.load(csq_ptr + pid_b * sqb + cols, mask=col_ok, other=0.0)
        scores = csq[None, :] + ALPHA * acc
        scores = tl.where(col_ok[None, :], scores, float("inf"))
        tile_best = tl.min(scores, axis=1)
        tile_arg = tl.argmin(scores, axis=1, tie_break_left=True)
        taken = lanes[None, :] == tile_arg[:, None]
        tile_second = tl.min(tl.where(taken, float("inf"), scores), axis=1)
        better = tile_best < best  # a later tile wins only when strictly better
        second = tl.where(better, tl.minimum(best, tile_second), tl.minimum(second, tile_best))
        label = tl.where(better, k0 + tile_arg, label)
        best = tl.where(better, tile_best, best)
    out = pid_b * sob + rows
    tl.store(best_ptr + out, best, mask=row_ok)
    tl.store(second_ptr + out, second, mask=row_ok)
    tl.store(label_ptr + out, label, mask=row_ok)
