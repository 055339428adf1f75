"""Cluster quality metrics on CPU and GPU, in bounded memory.

``silhouette_samples`` / ``silhouette_score`` compute the distances of a chunk of rows to all
rows (``chunk x N``), never the ``N x N`` matrix; ``calinski_harabasz_score`` and
``davies_bouldin_score`` take two passes over the data in chunks; ``inertia`` uses the same
assignment kernel as the estimators. X may be any container the estimators accept (numpy, a
tensor on any device, pandas, lists, scipy.sparse and torch sparse matrices, which are never
made dense); sums are accumulated in float64. Values match
scikit-learn's (``sklearn.metrics``) to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import _sparse
from . import _validation as v
from . import _validation_sparse as vs
from ._params import check_int, check_param
from .exceptions import DataError, ParameterError

__all__ = [
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "inertia",
    "silhouette_samples",
    "silhouette_score",
]

_SILHOUETTE_METRICS = ("euclidean", "sqeuclidean", "cosine")
# Elements of the chunk x N distance block of the silhouette (float64 after the GEMM).
_BLOCK_ELEMENTS = 1 << 22
_ONEHOT_BYTES = 32 << 20


def _check_data(X: Any, device: Any = None) -> tuple[torch.Tensor, v.OutputKind]:
    """The checked data on ``device`` in float32 or float64 (sparse: a CSR tensor)."""
    checked = v.check_array(X)
    t = checked.X
    dev = check_param("device", device) or t.device
    if checked.sparse:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else checked.float_dtype
        x = _sparse.csr(
            t.crow_indices().to(dev),
            t.col_indices().to(dev),
            t.values().to(device=dev, dtype=dtype),
            (int(t.shape[0]), int(t.shape[1])),
        )
        return x, checked.kind
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    # (float64 where squared distances of values this large or small would leave float32)
    dtype = v.compute_dtype_for(dtype, checked.max_abs, t.shape[1], "euclidean")
    return t.to(device=dev, dtype=dtype), checked.kind


def _encode_labels(labels: Any, n_samples: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """Labels as 0..K-1 (int64, on ``device``) and K; any hashable values, like LabelEncoder."""
    if labels is None:
        raise DataError("labels is None; expected one label per row of X.")
    if isinstance(labels, torch.Tensor):
        arr = labels.detach().cpu().numpy()
    else:
        arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"labels must be 1-D of length n_samples, got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise DataError(
            f"labels has {arr.shape[0]} entries but X has {n_samples} rows; expected one label "
            "per row."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError("labels contains NaN or infinity; expected one finite label per row.")
    try:
        _, codes = np.unique(arr, return_inverse=True)
    except TypeError:
        raise DataError("labels must be comparable values (ints or strings).") from None
    k = int(codes.max()) + 1 if codes.size else 0
    return torch.as_tensor(codes.reshape(-1), dtype=torch.long, device=device), k


def _check_n_labels(k: int, n: int) -> None:
    if not 2 <= k <= n - 1:
        raise DataError(
            f"Number of labels is {k}. Valid values are 2 to n_samples - 1 (inclusive) = "
            f"{n - 1}: these scores compare clusters, so at least two are needed, and at least "
            "one of them must hold two rows."
        )


def _check_metric(metric: object) -> str:
    if not isinstance(metric, str) or metric not in _SILHOUETTE_METRICS:
        raise ParameterError(
            f"metric must be one of {', '.join(map(repr, _SILHOUETTE_METRICS))}, got {metric!r}."
        )
    return metric


def _distance_block(
    x: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor | None, metric: str
) -> torch.Tensor:
    """Distances from the rows of ``x`` to the rows of ``y`` (prepared: shifted or unit)."""
    if metric == "cosine":
        return torch.addmm(
            torch.ones(1, dtype=x.dtype, device=x.device), x, y.T, alpha=-1.0
        ).clamp_min_(0.0)
    assert y_sq is not None
    d = torch.addmm(y_sq[None, :], x, y.T, alpha=-2.0)
    d.add_((x * x).sum(dim=1, keepdim=True)).clamp_min_(0.0)
    return d if metric == "sqeuclidean" else d.sqrt_()


def silhouette_samples(
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    device: Any = None,
) -> Any:
    """The silhouette coefficient of every row, as :func:`sklearn.metrics.silhouette_samples`.

    ``s = (b - a) / max(a, b)`` where ``a`` is the mean distance to the other rows of the same
    cluster and ``b`` the smallest mean distance to the rows of another cluster; rows alone in
    their cluster get 0. Extra memory is O(chunk_size x N), chosen so that the distance block
    holds about 4M float64 values (sparse X: O(chunk_size x max(N, D)), a block of rows made
    dense at a time). ``metric``: "euclidean", "sqeuclidean" or "cosine".

    Returns an array of shape (n_samples,), of the kind X was (numpy in, numpy out).
    """
    metric = _check_metric(metric)
    x, kind = _check_data(X, device)
    n = x.shape[0]
    codes, k = _encode_labels(labels, n, x.device)
    _check_n_labels(k, n)
    chunk_size = check_param("chunk_size", chunk_size)
    if _sparse.is_csr(x):
        out = _silhouette_sparse(x, codes, k, metric, chunk_size)
        return kind.wrap(out.to(x.dtype))
    step = chunk_size or max(1, min(n, _BLOCK_ELEMENTS // max(n, 1)))
    # Columns grouped by cluster: per-cluster sums of a distance block are differences of its
    # cumulative sums (float64) at the cluster boundaries.
    order = torch.argsort(codes, stable=True)
    counts = torch.bincount(codes, minlength=k)
    ends = torch.cumsum(counts, 0)
    if metric == "cosine":
        v.check_nonzero_rows(x, "X")
        y = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
        y_sq = None
    else:
        y = x - x.mean(dim=0)
        y_sq = (y * y).sum(dim=1)
    ys = y[order]
    ys_sq = None if y_sq is None else y_sq[order]
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    counts64 = counts.to(torch.float64)
    # Per-cluster sums of a block: a GEMM with the one-hot label matrix when it is small (in
    # the data's dtype: float64 data stays exact to rounding), else cumulative sums in float64.
    onehot = None
    if n * k * x.element_size() <= _ONEHOT_BYTES:
        onehot = torch.zeros(n, k, dtype=x.dtype, device=x.device)
        onehot[torch.arange(n, device=x.device), codes[order]] = 1.0
    for start in range(0, n, step):
        rows = ys[start : start + step]
        d = _distance_block(rows, ys, ys_sq, metric)
        m = d.shape[0]
        # a row's distance to itself is exactly zero (the GEMM identity leaves rounding)
        idx = torch.arange(m, device=x.device)
        d[idx, start + idx] = 0.0
        if onehot is not None:
            sums = (d @ onehot).to(torch.float64)
        else:
            at_end = d.to(torch.float64).cumsum_(dim=1)[:, ends - 1]
            zero = torch.zeros(m, 1, dtype=torch.float64, device=x.device)
            sums = torch.diff(at_end, dim=1, prepend=zero)
        out[order[start : start + m]] = _silhouettes(
            sums, codes[order[start : start + m]], counts64
        )
    return kind.wrap(out.to(x.dtype))


def _silhouette_sparse(
    x: torch.Tensor, codes: torch.Tensor, k: int, metric: str, chunk_size: int | None
) -> torch.Tensor:
    """:func:`silhouette_samples` of a CSR tensor (float64): each block of rows is made dense
    (block x D) and multiplied with the sparse rows (N x D), giving the block x N distances by
    ``||x||^2 - 2 x.y + ||y||^2`` on unshifted rows; per-cluster sums by ``index_add_``."""
    n, d = int(x.shape[0]), int(x.shape[1])
    step = chunk_size or max(1, min(n, _BLOCK_ELEMENTS // max(n, d, 1)))
    counts64 = torch.bincount(codes, minlength=k).to(torch.float64)
    if metric == "cosine":
        v.check_nonzero_rows(x, "X")
        y = _sparse.normalize_rows(x)
    else:
        y = x
    y_sq = _sparse.row_sq_norms(y)
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        m = stop - start
        rows = _sparse.dense_rows(y, torch.arange(start, stop, device=x.device))
        dot = _sparse.matmul(y, rows.T.contiguous()).T  # (m, N)
        if metric == "cosine":
            dist = (1.0 - dot).clamp_min_(0.0)
        else:
            dist = dot.mul(-2.0).add_(y_sq[None, :]).add_(y_sq[start:stop, None]).clamp_min_(0.0)
            if metric == "euclidean":
                dist.sqrt_()
        idx = torch.arange(m, device=x.device)
        dist[idx, start + idx] = 0.0  # a row's distance to itself (the identity leaves rounding)
        sums = torch.zeros(m, k, dtype=torch.float64, device=x.device)
        sums.index_add_(1, codes, dist.to(torch.float64))
        out[start:stop] = _silhouettes(sums, codes[start:stop], counts64)
    return out


def silhouette_score(
    X: Any,
    labels: Any,
    *,
    sample_size: int | None = None,
    random_state: Any = None,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    device: Any = None,
) -> float:
    """Mean silhouette coefficient, as :func:`sklearn.metrics.silhouette_score`.

    With ``sample_size``, the score of a random subset of that many rows, drawn as
    scikit-learn draws it (``RandomState(random_state).permutation(n)[:sample_size]``), so the
    same seed gives the same subset and score.
    """
    if sample_size is not None:
        sample_size = check_int("sample_size", sample_size, 2)
        n = _n_rows(X)
        if isinstance(random_state, np.random.RandomState):
            rs = random_state
        elif random_state is None or isinstance(random_state, (int, np.integer)):
            rs = np.random.RandomState(random_state)
        else:
            raise ParameterError(
                f"random_state must be None, an int or a numpy RandomState, got "
                f"{type(random_state).__name__}."
            )
        idx = rs.permutation(n)[:sample_size]
        X, labels = _take(X, idx), _take(labels, idx)
    s = silhouette_samples(X, labels, metric=metric, chunk_size=chunk_size, device=device)
    t = torch.as_tensor(s)
    return float(t.to(torch.float64).mean())


def _n_rows(X: Any) -> int:
    if hasattr(X, "shape") and len(X.shape) >= 1:
        return int(X.shape[0])
    return len(X)


def _take(a: Any, idx: np.ndarray) -> Any:
    if v._is_sparse(a):  # the rows drawn, still sparse
        if isinstance(a, torch.Tensor):
            t = vs.check_sparse(a).X
            return _sparse.select_rows(t, torch.as_tensor(idx, device=t.device))
        return a.tocsr()[idx]
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(idx, device=a.device)]
    if hasattr(a, "iloc"):
        return a.iloc[idx]
    return np.asarray(a)[idx]


def _labelled(X: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Checked data, label codes, the number of clusters and the data's mean (float64)."""
    x, _ = _check_data(X)
    n = x.shape[0]
    codes, k = _encode_labels(labels, n, x.device)
    _check_n_labels(k, n)
    if _sparse.is_csr(x):  # sparse rows are not shifted
        return x, codes, k, torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    return x, codes, k, x.mean(dim=0).to(torch.float64)


def _blocks(x: torch.Tensor, codes: torch.Tensor, shift: torch.Tensor):
    """Blocks of rows minus ``shift``, in the data's dtype, with their label codes (sparse:
    CSR blocks of rows, not shifted)."""
    if _sparse.is_csr(x):
        crow = x.crow_indices()
        host = crow.cpu()
        for start, stop in _sparse.row_blocks(host, _BLOCK_ELEMENTS, _BLOCK_ELEMENTS):
            a, b = int(host[start]), int(host[stop])
            block = _sparse.csr(
                crow[start : stop + 1] - crow[start],
                x.col_indices()[a:b],
                x.values()[a:b],
                (stop - start, int(x.shape[1])),
            )
            yield block, codes[start:stop]
        return
    step = max(1, _BLOCK_ELEMENTS // max(x.shape[1], 1))
    s = shift.to(x.dtype)
    for start in range(0, x.shape[0], step):
        yield x[start : start + step] - s, codes[start : start + step]


def _cluster_sums(
    x: torch.Tensor, codes: torch.Tensor, k: int, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-cluster sums of ``x - shift`` and counts (float64, added block by block), and the
    total sum of squares of ``x - shift``, in one pass."""
    sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device)
    counts = torch.bincount(codes, minlength=k).to(torch.float64)
    block_sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    total_sq = 0.0
    if _sparse.is_csr(x):
        for block, c in _blocks(x, codes, shift):
            _sparse.add_rows_(sums, c, block, None)
            values = block.values().to(torch.float64)
            total_sq += float(torch.dot(values, values))
        return sums, counts, total_sq
    for block, c in _blocks(x, codes, shift):
        block_sums.zero_().index_add_(0, c, block)
        sums += block_sums
        total_sq += float(torch.sum(block * block, dtype=torch.float64))
    return sums, counts, total_sq


def calinski_harabasz_score(X: Any, labels: Any) -> float:
    """Variance ratio criterion, as :func:`sklearn.metrics.calinski_harabasz_score`:
    between-cluster over within-cluster dispersion, times ``(n - k) / (k - 1)``.

    One pass: with ``s`` the data's mean, the within-cluster dispersion is
    ``sum |x - s|^2 - sum_c n_c |m_c - s|^2`` (float64).
    """
    x, codes, k, shift = _labelled(X, labels)
    n = x.shape[0]
    sums, counts, total_sq = _cluster_sums(x, codes, k, shift)
    means = sums / counts[:, None]
    total_mean = sums.sum(dim=0) / n
    extra = float((counts * ((means - total_mean) ** 2).sum(dim=1)).sum())
    intra = max(total_sq - float((counts * (means * means).sum(dim=1)).sum()), 0.0)
    if intra <= 1e-12 * max(total_sq, 1e-300):
        return 1.0
    return extra * (n - k) / (intra * (k - 1.0))


def davies_bouldin_score(X: Any, labels: Any) -> float:
    """Average similarity of each cluster with its most similar one, as
    :func:`sklearn.metrics.davies_bouldin_score` (lower is better, 0 is the minimum)."""
    x, codes, k, shift = _labelled(X, labels)
    sums, counts, _ = _cluster_sums(x, codes, k, shift)
    means = sums / counts[:, None]
    means_x = means.to(x.dtype)
    intra = torch.zeros(k, dtype=torch.float64, device=x.device)
    means_sq = (means * means).sum(dim=1)
    for block, c in _blocks(x, codes, shift):
        if _sparse.is_csr(block):  # from the stored values, as the estimators' distances
            norms = _sparse.sq_distance_to(block, means, means_sq, c).sqrt_()
        else:
            norms = torch.linalg.vector_norm(block - means_x[c], dim=1).to(torch.float64)
        intra.index_add_(0, c, norms)
    intra = intra / counts
    # exact differences (no GEMM identity): the diagonal must be exactly zero
    centroid = torch.cdist(means, means, compute_mode="donot_use_mm_for_euclid_dist")
    if bool(torch.allclose(intra, torch.zeros_like(intra))) or bool(
        torch.allclose(centroid, torch.zeros_like(centroid))
    ):
        return 0.0
    centroid = torch.where(centroid == 0, torch.full_like(centroid, float("inf")), centroid)
    combined = intra[:, None] + intra[None, :]
    return float((combined / centroid).amax(dim=1).mean())


def inertia(X: Any, centers: Any, sample_weight: Any = None, *, metric: str = "euclidean") -> float:
    """Weighted sum of squared distances of the rows of X to their closest center (cosine:
    of ``1 - cos``), the quantity k-means minimizes."""
    from ._functional import assign_labels, prepare

    checked = v.check_array(X)
    c = torch.as_tensor(np.asarray(centers)) if not isinstance(centers, torch.Tensor) else centers
    c = v.check_centers(c, int(c.shape[0]) if c.dim() == 2 else -1, checked.n_features, "centers")
    prepared = prepare(
        checked,
        sample_weight,
        n_clusters=int(c.shape[0]),
        metric=check_param("metric", metric),
        device=None,
        dtype=None,
        chunk_size=None,
    )
    src = prepared.source
    _, value = assign_labels(src, c.to(device=src.device, dtype=src.dtype), prepared.metric)
    return float(value)


def _silhouettes(sums: torch.Tensor, own: torch.Tensor, counts64: torch.Tensor) -> torch.Tensor:
    """Silhouette of each row from its summed distances to every cluster (``sums``, rows x
    clusters, float64), its own cluster and the cluster sizes: 0 for a row alone in its
    cluster."""
    own_count = counts64[own]
    a = sums.gather(1, own[:, None])[:, 0] / (own_count - 1).clamp_min(1.0)
    means = sums / counts64[None, :]
    means.scatter_(1, own[:, None], float("inf"))
    b = means.amin(dim=1)
    s = (b - a) / torch.maximum(a, b)
    return torch.where(own_count > 1, torch.nan_to_num(s, nan=0.0), torch.zeros_like(s))
