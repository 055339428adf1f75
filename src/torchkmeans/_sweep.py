"""``sweep_k``: fit k-means for several k and score each clustering, to choose k."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _sparse
from . import _validation as v
from ._params import check_params
from .exceptions import ParameterError

# Above this many rows the silhouette is computed on a sample of this size (it costs O(N^2)).
SILHOUETTE_SAMPLE = 10_000


@dataclass
class SweepResult:
    """Scores per k, with the suggested k.

    Attributes
    ----------
    ks : list of int
    inertia, silhouette, calinski_harabasz, davies_bouldin : list of float
        One value per k. Silhouette is in [-1, 1] (higher is better), Calinski-Harabasz is
        higher-better, Davies-Bouldin lower-better, inertia always falls as k grows.
    best_k : int
        The k with the highest silhouette (ties: the smallest k).
    elbow_k : int
        The elbow of the inertia curve: the interior k where the decrease of inertia per added
        cluster falls by the largest factor (drop before k over drop after k). With fewer than
        three k, the first k.
    silhouette_sample_size : int or None
        Rows the silhouette was computed on when sampled, None when on every row.
    models : list
        The fitted :class:`KMeans` of every k, in the order of ``ks``.
    """

    ks: list[int]
    inertia: list[float]
    silhouette: list[float]
    calinski_harabasz: list[float]
    davies_bouldin: list[float]
    best_k: int
    elbow_k: int
    silhouette_sample_size: int | None = None
    seconds: list[float] = field(default_factory=list)
    models: list[Any] = field(default_factory=list, repr=False)

    @property
    def suggested_k(self) -> int:
        """Alias of ``best_k``: the k with the highest silhouette."""
        return self.best_k

    def to_dict(self) -> dict[str, list[Any]]:
        return {
            "k": list(self.ks),
            "inertia": list(self.inertia),
            "silhouette": list(self.silhouette),
            "calinski_harabasz": list(self.calinski_harabasz),
            "davies_bouldin": list(self.davies_bouldin),
        }

    def to_frame(self) -> Any:
        """The table as a pandas DataFrame indexed by k (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "SweepResult.to_frame needs pandas: pip install pandas (or use to_dict())."
            ) from None
        return pd.DataFrame(self.to_dict()).set_index("k")

    to_dataframe = to_frame
    to_pandas = to_frame

    def __str__(self) -> str:
        head = f"{'k':>4}  {'inertia':>14}  {'silhouette':>10}  {'calinski_harabasz':>17}  "
        head += f"{'davies_bouldin':>14}"
        lines = [head]
        for i, k in enumerate(self.ks):
            mark = []
            if k == self.best_k:
                mark.append("best silhouette")
            if k == self.elbow_k:
                mark.append("elbow")
            lines.append(
                f"{k:>4}  {self.inertia[i]:>14.6g}  {self.silhouette[i]:>10.4f}  "
                f"{self.calinski_harabasz[i]:>17.6g}  {self.davies_bouldin[i]:>14.4f}"
                + (f"  <- {', '.join(mark)}" if mark else "")
            )
        sampled = (
            f" (silhouette on {self.silhouette_sample_size} sampled rows)"
            if self.silhouette_sample_size
            else ""
        )
        lines.append(f"suggested k: {self.best_k} (silhouette){sampled}; elbow: {self.elbow_k}")
        return "\n".join(lines)


def elbow(ks: list[int], inertia: list[float]) -> int:
    """The k where the inertia curve bends most: the interior k where the decrease of inertia
    per added cluster falls by the largest factor, ``drop(k_prev -> k) / drop(k -> k_next)``
    with drops per unit of k (scale-free; handles unevenly spaced ks; a drop that is not
    positive counts as a tiny one). With fewer than three ks, the first k."""
    if len(ks) < 3:
        return ks[0]
    order = np.argsort(ks)
    k = np.asarray(ks, dtype=np.float64)[order]
    y = np.asarray(inertia, dtype=np.float64)[order]
    drop = -np.diff(y) / np.diff(k)  # decrease of inertia per added cluster
    tiny = 1e-12 * max(float(np.abs(y).max()), 1e-300)
    bend = drop[:-1] / np.maximum(drop[1:], tiny)
    return int(k[1 + int(np.argmax(bend))])


def _check_ks_below(values: list[int], n_samples: int) -> None:
    """Every k leaves a cluster with two rows (the scores need one)."""
    too_big = [k for k in values if k >= n_samples]
    if too_big:
        raise ParameterError(
            f"every k must be < n_samples = {n_samples} (the scores need a cluster with two "
            f"rows), got k = {too_big[0]}" + (f" ... {too_big[-1]}." if len(too_big) > 1 else ".")
        )


def sweep_k(
    X: Any,
    ks: Any = range(2, 11),
    *,
    silhouette_sample_size: int | None = None,
    **kmeans_params: Any,
) -> SweepResult:
    """Fit :class:`KMeans` for every k in ``ks`` and score each clustering.

    The data is validated once and shared by every fit; each k costs one fit plus two chunked
    passes (Calinski-Harabasz and Davies-Bouldin) and a silhouette, computed on every row up to
    10,000 rows and on a sample of ``silhouette_sample_size`` (default 10,000) rows above, drawn
    with ``random_state``. ``kmeans_params`` go to :class:`KMeans` (``random_state``, ``init``,
    ``n_init``, ``device``, ...).

    Returns a :class:`SweepResult`: ``print(result)`` shows the table, ``result.to_frame()``
    gives a pandas DataFrame, ``result.best_k`` is the k with the best silhouette and
    ``result.elbow_k`` the elbow of the inertia curve.
    """
    import time

    from . import metrics
    from ._estimator import KMeans

    if "n_clusters" in kmeans_params:
        raise ParameterError("sweep_k sets n_clusters itself; pass the values in ks.")
    p = check_params({"ks": ks, "silhouette_sample_size": silhouette_sample_size})
    checked = v.check_array(X)
    n = int(checked.X.shape[0])
    values = p["ks"]
    _check_ks_below(values, n)
    sample = p["silhouette_sample_size"]
    if sample is None and n > SILHOUETTE_SAMPLE:
        sample = SILHOUETTE_SAMPLE
    if sample is not None and sample >= n:
        sample = None
    seed = kmeans_params.get("random_state")
    sil_seed = seed if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else 0
    data = checked.X
    x_metrics: Any
    if checked.sparse:  # the metrics read the CSR tensor as it is (integers: as float)
        x_metrics = data if data.is_floating_point() else _sparse.astype(data, checked.float_dtype)
    else:
        x_metrics = data if checked.kind.is_tensor else data.numpy()
    inertia, sil, ch, db, models, seconds = [], [], [], [], [], []
    for k in values:
        t0 = time.perf_counter()
        km = KMeans(n_clusters=k, **kmeans_params).fit(checked)
        labels = km.labels_
        inertia.append(float(km.inertia_))
        sil.append(
            metrics.silhouette_score(
                x_metrics, labels, sample_size=sample, random_state=int(sil_seed)
            )
        )
        ch.append(metrics.calinski_harabasz_score(x_metrics, labels))
        db.append(metrics.davies_bouldin_score(x_metrics, labels))
        seconds.append(time.perf_counter() - t0)
        models.append(km)
    best = values[int(np.argmax([s if math.isfinite(s) else -2.0 for s in sil]))]
    return SweepResult(
        ks=values,
        inertia=inertia,
        silhouette=sil,
        calinski_harabasz=ch,
        davies_bouldin=db,
        best_k=best,
        elbow_k=elbow(values, inertia),
        silhouette_sample_size=sample,
        seconds=seconds,
        models=models,
    )


__all__ = ["SweepResult", "elbow", "sweep_k"]
