"""Plots of clustering results (matplotlib, imported lazily: ``pip install torchkmeans[plot]``).

Every function takes ``ax=None`` and returns ``(fig, ax)``; with ``ax=None`` a new
:class:`matplotlib.figure.Figure` is made without touching pyplot's global state, so the
functions work headless and in notebooks alike.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from . import _validation as v
from .exceptions import DataError

__all__ = [
    "plot_cluster_sizes",
    "plot_clusters",
    "plot_history",
    "plot_silhouette",
    "plot_sweep",
]


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Plotting needs matplotlib, which is not installed. Install it with "
            "`pip install 'torchkmeans[plot]'` (or `pip install matplotlib`)."
        ) from None
    return matplotlib


def _new_axes(ax: Any, figsize: tuple[float, float] = (6.4, 4.8)) -> tuple[Any, Any]:
    _matplotlib()
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _as_numpy(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def _project_2d(
    X: np.ndarray, centers: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, str]]:
    """Above two features, project on the first two principal components (computed in torch)."""
    if X.shape[1] <= 2:
        if X.shape[1] == 1:
            X = np.hstack([X, np.zeros_like(X)])
            centers = None if centers is None else np.hstack([centers, np.zeros_like(centers)])
        return X, centers, ("feature 0", "feature 1")
    t = torch.from_numpy(np.asarray(X, dtype=np.float64))
    mean = t.mean(dim=0)
    _, _, vh = torch.linalg.svd(t - mean, full_matrices=False)
    basis = vh[:2].T
    Xp = ((t - mean) @ basis).numpy()
    cp = None
    if centers is not None:
        cp = ((torch.from_numpy(np.asarray(centers, dtype=np.float64)) - mean) @ basis).numpy()
    return Xp, cp, ("principal component 1", "principal component 2")


def _project_sparse(
    x: torch.Tensor, centers: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, str]]:
    """Sparse rows (a CSR tensor) on their first two principal components, never dense:
    ``torch.pca_lowrank`` centers a sparse matrix implicitly (seeded: the same plot each time)."""
    from . import _sparse

    x = _sparse.astype(x.cpu(), torch.float64)
    n, d = int(x.shape[0]), int(x.shape[1])
    mean = _sparse.column_sums(x, None)[0] / max(n, 1)
    if d <= 2:  # the features themselves, as for dense X
        basis = torch.eye(d, 2, dtype=torch.float64)
        mean = torch.zeros_like(mean)
        names = ("feature 0", "feature 1")
    else:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's notes on sparse tensors
            torch.manual_seed(0)
            _, _, basis = torch.pca_lowrank(x.to_sparse_coo(), q=2, center=True, niter=4)
        names = ("principal component 1", "principal component 2")
    xy = (_sparse.matmul(x, basis) - mean @ basis).numpy()
    cxy = None
    if centers is not None:
        cxy = ((torch.from_numpy(centers) - mean) @ basis).numpy()
    return xy, cxy, names


def plot_clusters(
    X: Any, labels: Any, centers: Any = None, *, ax: Any = None, title: str | None = None
) -> tuple[Any, Any]:
    """Scatter the rows of ``X`` coloured by cluster, with ``centers`` as large red X markers.

    Parameters
    ----------
    X : array-like, tensor or sparse matrix of shape (n_samples, n_features)
        Above two features, rows and centers are projected on the first two principal
        components of X (for sparse X, found without making it dense).
    labels : array-like of shape (n_samples,)
        Cluster of each row.
    centers : array-like of shape (n_clusters, n_features), default=None
        Drawn as red X markers when given.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    (fig, ax)
    """
    checked = v.check_array(X)
    x = checked.X
    n, d = int(x.shape[0]), int(x.shape[1])
    lab = _as_numpy(labels, "labels").reshape(-1)
    if lab.shape[0] != n:
        raise DataError(f"labels has {lab.shape[0]} entries, expected {n} (one per row of X).")
    cen = None if centers is None else _as_numpy(centers, "centers").astype(np.float64)
    if cen is not None and cen.shape[1] != d:
        raise DataError(f"centers have {cen.shape[1]} features, X has {d}.")
    fig, ax = _new_axes(ax)
    if checked.sparse:
        xy, cxy, (xlabel, ylabel) = _project_sparse(x, cen)
    else:
        Xn = _as_numpy(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, "X").astype(
            np.float64
        )
        xy, cxy, (xlabel, ylabel) = _project_2d(Xn, cen)
    ax.scatter(xy[:, 0], xy[:, 1], c=lab, cmap="viridis", s=20, alpha=0.8, label="points")
    if cxy is not None:
        ax.scatter(
            cxy[:, 0],
            cxy[:, 1],
            c="red",
            marker="X",
            s=200,
            edgecolors="black",
            linewidths=1.0,
            label="centers",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{len(np.unique(lab))} clusters, {n} points")
    return fig, ax


def plot_history(history: Any, *, ax: Any = None) -> tuple[Any, Any]:
    """Inertia (left axis) and squared center shift (right axis, log scale) per iteration.

    ``history`` is ``KMeans.history_`` (or a fitted estimator, whose ``history_`` is used).
    """
    records = list(getattr(history, "history_", history))
    if not records:
        raise DataError("history is empty: fit the model first (KMeans.history_).")
    fig, ax = _new_axes(ax)
    it = [int(r["iteration"]) for r in records]
    ax.plot(it, [float(r["inertia"]) for r in records], "o-", color="tab:blue", label="inertia")
    ax.set_xlabel("iteration")
    ax.set_ylabel("inertia", color="tab:blue")
    right = ax.twinx()
    shifts = [max(float(r["center_shift"]), 1e-300) for r in records]
    right.plot(it, shifts, "s--", color="tab:orange", label="center shift")
    right.set_yscale("log")
    right.set_ylabel("center shift (squared, summed)", color="tab:orange")
    ax.set_title(f"Convergence over {len(records)} iterations")
    return fig, ax


def plot_cluster_sizes(
    labels: Any, *, n_clusters: int | None = None, ax: Any = None
) -> tuple[Any, Any]:
    """Bar chart of the number of rows per cluster."""
    lab = _as_numpy(labels, "labels").reshape(-1).astype(np.int64)
    if lab.size == 0:
        raise DataError("labels is empty.")
    if (lab < 0).any():
        raise DataError("labels must be >= 0.")
    k = int(n_clusters) if n_clusters is not None else int(lab.max()) + 1
    sizes = np.bincount(lab, minlength=k)
    fig, ax = _new_axes(ax)
    ax.bar(np.arange(len(sizes)), sizes, color="tab:blue")
    ax.set_xlabel("cluster")
    ax.set_ylabel("rows")
    ax.set_title(f"Cluster sizes ({lab.size} rows, {k} clusters)")
    return fig, ax


def plot_silhouette(
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    ax: Any = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """The classic silhouette plot: per cluster, the silhouette coefficients of its rows sorted
    and drawn as horizontal bars, stacked cluster after cluster, with the mean silhouette as a
    red dashed vertical line. Coefficients come from :func:`torchkmeans.metrics.silhouette_samples`.
    """
    from .metrics import silhouette_samples

    values = _as_numpy(silhouette_samples(X, labels, metric=metric), "silhouette").astype(float)
    lab = _as_numpy(labels, "labels").reshape(-1)
    fig, ax = _new_axes(ax)
    import matplotlib as mpl

    names = np.unique(lab)
    cmap = mpl.colormaps["tab10" if len(names) <= 10 else "viridis"]
    y_low = 10
    for i, name in enumerate(names):
        vals = np.sort(values[lab == name])
        y = np.arange(y_low, y_low + len(vals))
        color = cmap(i % 10) if len(names) <= 10 else cmap(i / max(1, len(names) - 1))
        ax.fill_betweenx(y, 0, vals, facecolor=color, edgecolor=color, alpha=0.8)
        ax.text(-0.05, y_low + 0.5 * len(vals), str(name), ha="right", va="center")
        y_low += len(vals) + 10
    mean = float(values.mean())
    ax.axvline(mean, color="red", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_ylim(0, y_low)
    ax.set_yticks([])
    ax.set_xlabel("silhouette coefficient")
    ax.set_ylabel("cluster")
    ax.legend(loc="lower right")
    ax.set_title(title or f"Silhouette plot ({len(names)} clusters)")
    return fig, ax


def plot_sweep(result: Any, *, fig: Any = None, title: str | None = None) -> tuple[Any, Any]:
    """The four curves of a :func:`torchkmeans.sweep_k` result against k (inertia,
    silhouette, Calinski-Harabasz, Davies-Bouldin), the suggested k marked by a red dashed line
    on each and the elbow by a grey dotted line on the inertia. Returns ``(fig, axes)`` with
    ``axes`` a 2 x 2 array."""
    _matplotlib()
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9.6, 7.2), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False)
    panels = [
        ("inertia", result.inertia, "lower is tighter"),
        ("silhouette", result.silhouette, "higher is better"),
        ("Calinski-Harabasz", result.calinski_harabasz, "higher is better"),
        ("Davies-Bouldin", result.davies_bouldin, "lower is better"),
    ]
    ks = list(result.ks)
    for ax, (name, values, hint) in zip(axes.flat, panels):
        ax.plot(ks, values, marker="o")
        ax.axvline(result.best_k, color="red", linestyle="--", label=f"suggested k={result.best_k}")
        if name == "inertia":
            ax.axvline(
                result.elbow_k, color="grey", linestyle=":", label=f"elbow k={result.elbow_k}"
            )
        ax.set_xlabel("k")
        ax.set_ylabel(name)
        ax.set_title(f"{name} ({hint})")
        ax.legend(loc="best")
    fig.suptitle(title or f"Choosing k: suggested k = {result.best_k}")
    return fig, axes
