"""The one distance and argmin kernel, shared by fit, predict, transform and k-means++.

Euclidean distances use ``||x - s||^2 - 2 (x - s).(c - s) + ||c - s||^2`` on rows and centers
shifted by a point ``s`` near the data (the data mean, or the mean of the centers), so that data
far from the origin loses no precision to cancellation. The shift is applied per chunk; the
caller's data is never modified. The distance to the chosen center is then recomputed directly,
``||(x - s) - (c - s)||^2``, so inertia and relocation use exact values.

Cosine distances are ``1 - cos(x, c)`` on rows normalized per chunk and unit-length centers.

Sparse rows (torch CSR blocks, see :mod:`torchkmeans._sparse`) are never shifted, as a shift
would make them dense: their centers are laid out with a zero shift, products are sparse-dense
matmuls, and the distance to the chosen center comes from the same identity, clamped at zero
(as in scikit-learn); near ties are still re-decided exactly, on those few rows made dense.

Prior validation of data is assumed: every tensor here is on one device in one float dtype.
"""

from __future__ import annotations

import torch

from . import _sparse
from ._engines import _kernels, triton_assign


class PreparedCenters:
    """Centers laid out for the kernel: shifted (Euclidean) or unit length (cosine).

    ``c`` holds the shifted centers (K, D), ``ct`` their transpose for the GEMM and ``c_sq``
    their squared norms (Euclidean only). ``shift=None`` shifts by the mean of the centers;
    ``sparse=True`` (the rows are sparse, never shifted) by zero.
    """

    def __init__(
        self,
        centers: torch.Tensor,
        metric: str,
        shift: torch.Tensor | None,
        *,
        sparse: bool = False,
    ) -> None:
        self.metric = metric
        self.centers = centers
        if metric == "euclidean":
            if sparse:
                shift = torch.zeros_like(centers[0])
            elif shift is None:
                shift = centers.mean(dim=0)
            self.shift: torch.Tensor | None = shift.to(centers.dtype)
            c = centers - self.shift
            self.c_sq: torch.Tensor | None = (c * c).sum(dim=1)
        else:
            self.shift = None
            c = centers
            self.c_sq = None
        self.c = c
        self.ct = c.t().contiguous()

    @classmethod
    def from_parts(
        cls, centers: torch.Tensor, shift: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor
    ) -> PreparedCenters:
        """Euclidean centers laid out elsewhere: shift, shifted centers and their norms."""
        self = cls.__new__(cls)
        self.metric, self.centers, self.shift, self.c, self.c_sq = (
            "euclidean",
            centers,
            shift,
            c,
            c_sq,
        )
        self.ct = c.t().contiguous()
        return self

    @property
    def n_clusters(self) -> int:
        return int(self.c.shape[0])


def prepare_rows(x: torch.Tensor, metric: str, shift: torch.Tensor | None) -> torch.Tensor:
    """Return the chunk shifted (Euclidean) or normalized to unit rows (cosine), as a new tensor.

    Sparse rows are returned as they are (Euclidean: their shift is zero) or normalized.
    """
    if _sparse.is_csr(x):
        return x if metric == "euclidean" else _sparse.normalize_rows(x)
    if metric == "euclidean":
        return x if shift is None else x - shift
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    tiny = torch.finfo(x.dtype).tiny
    unsafe = ~torch.isfinite(norms) | (norms < tiny / torch.finfo(x.dtype).eps)
    if bool(unsafe.any()):
        # rows so large that their squared norm overflows, or so small that it underflows:
        # scale each by the power of two of its largest value first (exact, so the direction
        # comes out bit for bit as for the same row at an ordinary scale)
        largest = x.abs().amax(dim=1, keepdim=True)
        _, exponent = torch.frexp(largest)
        scale = torch.ldexp(torch.ones_like(largest), exponent - 1)
        scale = torch.where(unsafe & (largest > 0), scale, torch.ones_like(scale))
        x = x / scale
        norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / norms


def partial_scores(
    xs: torch.Tensor, pc: PreparedCenters, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Scores whose row-wise argmin is the nearest center.

    Euclidean: ``||c||^2 - 2 x.c`` (the squared distance minus ``||x||^2``); cosine: ``-x.c``.
    """
    if _sparse.is_csr(xs):
        prod = _sparse.matmul(xs, pc.ct)
        scores = prod if out is None else out.copy_(prod)
        if pc.c_sq is not None:
            return scores.mul_(-2.0).add_(pc.c_sq)
        return scores.neg_()
    if pc.c_sq is not None:
        return torch.addmm(pc.c_sq, xs, pc.ct, beta=1, alpha=-2, out=out)
    scores = torch.mm(xs, pc.ct, out=out)
    return scores.neg_()


def exact_distance(xs: torch.Tensor, pc: PreparedCenters, labels: torch.Tensor) -> torch.Tensor:
    """Distance of each prepared row to the center ``labels`` names, computed directly
    (sparse rows: from their stored values, see :func:`torchkmeans._sparse.sq_distance_to`)."""
    if _sparse.is_csr(xs):
        if pc.c_sq is not None:
            dist = _sparse.sq_distance_to(xs, pc.c, pc.c_sq, labels)
        else:
            dist = (1.0 - _sparse.dot_with(xs, pc.c, labels)).clamp_min_(0.0)
        return dist.to(pc.c.dtype)
    chosen = pc.c.index_select(0, labels)
    if pc.metric == "euclidean":
        return torch.sub(xs, chosen, out=chosen).square_().sum(dim=1)
    return (1.0 - chosen.mul_(xs).sum(dim=1)).clamp_min_(0.0)


# Rows whose two best GEMM scores are this close (relative to the magnitudes involved, scaled by
# sqrt(D) * machine epsilon) are re-decided from exact distances.
_TIE_FACTOR = 4.0
# Elements per block of the exact re-check (rows x K x D), to keep its memory bounded.
_RECHECK_ELEMENTS = 1 << 20


def assign(
    xs: torch.Tensor, pc: PreparedCenters, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest center of each prepared row and the exact distance to it.

    Returns ``(labels, distances)``: int64 labels and squared Euclidean distances (or
    ``1 - cos`` for cosine). The GEMM scores decide clear cases; rows whose two best scores are
    within rounding error of each other are decided from exactly computed distances, with ties
    going to the lowest center index. Labels therefore do not depend on how rows are chunked or
    ordered, even on data with exact ties (grids, integers, symmetric points).
    """
    if _sparse.is_csr(xs) and pc.n_clusters > 1 and _sparse.native(xs.device, pc.c.dtype):
        return _assign_sparse_native(xs, pc, out)
    labels, dist, _ = assign_with_bound(xs, pc, out)
    return labels, dist


def _tie_eps(xs: torch.Tensor, dtype: torch.dtype) -> float:
    """The relative width of a near tie between two GEMM scores (see ``_TIE_FACTOR``)."""
    return torch.finfo(dtype).eps * _TIE_FACTOR * max(1.0, xs.shape[1] ** 0.5)


def _tie_slack(
    eps: float, pc: PreparedCenters, x_sq: torch.Tensor | None, like: torch.Tensor
) -> torch.Tensor:
    """How close two scores of a row must be to count as a near tie: ``eps (||x||^2 + max
    ||c||^2)`` (Euclidean, ``x_sq`` given), ``2 eps`` (cosine) (tk_sparse_assign computes the
    same in C)."""
    if x_sq is not None and pc.c_sq is not None:
        return eps * (x_sq + pc.c_sq.max())
    return torch.full_like(like, 2.0 * eps)


def _assign_sparse_native(
    xs: torch.Tensor, pc: PreparedCenters, out: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`assign` of sparse rows in one native pass (products, scores, best, distance and
    the near-tie test fused per group of rows: the same arithmetic as the torch path), then
    the exact re-decision of the rows it flags."""
    m, k = int(xs.shape[0]), pc.n_clusters
    scores = out if out is not None else torch.empty(m, k, dtype=pc.c.dtype)
    xs = _sparse.astype(xs, pc.c.dtype)
    eps = _tie_eps(xs, scores.dtype)
    x_sq = row_sq_norms(xs) if pc.c_sq is not None else None
    slack_eps = eps if pc.c_sq is not None else 2.0 * eps
    labels, dist, near, count = _kernels.sparse_assign(xs, pc.ct, pc.c_sq, x_sq, slack_eps, scores)
    if count:
        rows = near.nonzero().flatten()
        picked = scores.index_select(0, rows)
        best = picked.amin(dim=1)
        slack = _tie_slack(eps, pc, None if x_sq is None else x_sq[rows], best)
        _recheck_ties(xs, pc, picked, rows, best, slack, labels)
        chosen = picked.gather(1, labels[rows][:, None])[:, 0]
        base = x_sq[rows] if x_sq is not None else 1.0
        dist[rows] = chosen.add_(base).clamp_min_(0.0)
    return labels, dist


def assign_with_bound(
    xs: torch.Tensor, pc: PreparedCenters, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`assign`, plus a lower bound on each row's distance to every *other* center.

    The bound is a metric distance (Euclidean, or the chordal distance ``sqrt(2 (1 - cos))``
    between unit vectors for cosine), made conservative for the GEMM's rounding; rows decided
    by the exact re-check get 0 (no pruning for them next time).
    """
    from ._engines.dispatch import triton_assignment  # (dispatch imports this module)

    scores: torch.Tensor | None = None
    if pc.n_clusters > 1 and not _sparse.is_csr(xs) and triton_assignment(xs):
        # the fused kernel: best, its center and the runner-up, never the N x K scores
        best, labels, second = triton_assign.assign_scores(xs, pc.c, pc.c_sq)
        best, second = best.to(xs.dtype), second.to(xs.dtype)
    else:
        scores = partial_scores(xs, pc, out=out)
        if pc.n_clusters == 1:
            labels = torch.zeros(xs.shape[0], dtype=torch.long, device=xs.device)
            far = torch.full((xs.shape[0],), float("inf"), dtype=xs.dtype, device=xs.device)
            if _sparse.is_csr(xs):
                return labels, _chosen_from_scores(xs, pc, scores, labels), far
            return labels, exact_distance(xs, pc, labels), far
        # Values and indices in one pass; the runner-up comes from a values-only reduction
        # (much cheaper than topk) after masking the winner. ``scores`` is a scratch buffer.
        best, labels = scores.min(dim=1)
        scores.scatter_(1, labels[:, None], float("inf"))
        second = scores.amin(dim=1)
        scores.scatter_(1, labels[:, None], best[:, None])
    eps = _tie_eps(xs, best.dtype)
    x_sq = row_sq_norms(xs) if pc.c_sq is not None else None
    slack = _tie_slack(eps, pc, x_sq, best)
    if x_sq is not None:
        lower_sq = second + x_sq - 2 * slack
    else:
        lower_sq = 2.0 * (1.0 + second) - 4 * slack
    near = (second - best) <= slack
    lower = lower_sq.clamp_min_(0.0).sqrt_()
    rows = near.nonzero().flatten()
    if rows.numel():
        labels = labels.clone()
        picked = (
            scores.index_select(0, rows)
            if scores is not None
            else partial_scores(xs.index_select(0, rows), pc)
        )
        _recheck_ties(xs, pc, picked, rows, best[rows], slack[rows], labels)
        lower[rows] = 0.0
    if _sparse.is_csr(xs):
        assert scores is not None
        return labels, _chosen_from_scores(xs, pc, scores, labels), lower
    return labels, exact_distance(xs, pc, labels), lower


def _chosen_from_scores(
    xs: torch.Tensor, pc: PreparedCenters, scores: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Sparse rows: the distance to the chosen center from the same identity as the scores,
    ``||x||^2 + (||c||^2 - 2 x.c)`` (cosine: ``1 - x.c``), clamped at zero (as scikit-learn
    computes it for sparse rows; a direct ``x - c`` would make the rows dense)."""
    chosen = scores.gather(1, labels[:, None])[:, 0]
    if pc.c_sq is not None:
        return chosen.add_(row_sq_norms(xs)).clamp_min_(0.0)
    return chosen.add_(1.0).clamp_min_(0.0)


def row_sq_norms(xs: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean norm of every prepared row (dense or sparse)."""
    if _sparse.is_csr(xs):
        return _sparse.row_sq_norms(xs)
    return torch.linalg.vector_norm(xs, dim=1).square_()


def take_rows(xs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows at ``index`` as a dense tensor (sparse rows: those rows made dense)."""
    if _sparse.is_csr(xs):
        return _sparse.dense_rows(xs, index)
    return xs.index_select(0, index)


def metric_distance(dist: torch.Tensor, metric: str) -> torch.Tensor:
    """Turn what :func:`assign` returns into a metric distance (for triangle-inequality bounds)."""
    if metric == "euclidean":
        return dist.sqrt()
    return (2.0 * dist).sqrt_()


def _recheck_ties(
    xs: torch.Tensor,
    pc: PreparedCenters,
    scores: torch.Tensor,
    rows: torch.Tensor,
    best: torch.Tensor,
    slack: torch.Tensor,
    labels: torch.Tensor,
) -> None:
    """Re-decide ``rows`` from exact distances among the centers within ``slack`` of the best
    (``scores``, ``best`` and ``slack`` hold those rows only, in the order of ``rows``)."""
    k, d = pc.n_clusters, xs.shape[1]
    step = max(1, _RECHECK_ELEMENTS // max(1, k * d))
    for start in range(0, rows.numel(), step):
        r = rows[start : start + step]
        part = slice(start, start + step)
        x = take_rows(xs, r)
        if pc.metric == "euclidean":
            diff = x[:, None, :] - pc.c[None, :, :]
            exact = (diff * diff).sum(dim=2)
        else:
            exact = 1.0 - (x[:, None, :] * pc.c[None, :, :]).sum(dim=2)
        candidate = scores[part] <= (best[part] + 2 * slack[part])[:, None]
        exact = torch.where(candidate, exact, torch.full_like(exact, float("inf")))
        labels[r] = exact.argmin(dim=1)


def pairwise(
    xs: torch.Tensor, pc: PreparedCenters, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Distances from every prepared row to every center (chunk x K), clamped at zero.

    Squared Euclidean distances, or ``1 - cos`` for cosine. Values within the rounding error of
    the GEMM identity are exactly zero.
    """
    scores = partial_scores(xs, pc, out=out)
    eps = torch.finfo(scores.dtype).eps * 8.0 * max(1.0, xs.shape[1] ** 0.5)
    if pc.c_sq is not None:
        x_sq = row_sq_norms(xs)[:, None]
        scores.add_(x_sq)
        # The identity leaves rounding residue of order eps * (|x|^2 + |c|^2) where the true
        # distance is zero (a row on a center); such values are zeroed, so that sums of
        # distances (k-means++ potentials) do not depend on where a row sits in its chunk.
        noise = (x_sq + pc.c_sq[None, :]).mul_(eps)
    else:
        scores.add_(1.0)
        noise = torch.full((1, 1), 2.0 * eps, dtype=scores.dtype, device=scores.device)
    return scores.masked_fill_(scores <= noise, 0.0)
