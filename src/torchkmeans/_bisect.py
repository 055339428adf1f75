"""Bisecting k-means: a tree of 2-means splits run by the Lloyd core, and predict down it.

The fit starts with every row in one cluster and splits a leaf in two until there are
``n_clusters`` leaves. Each split is a 2-means fit of the Lloyd core
(:func:`torchkmeans._core.fit`, ``n_init`` runs, the best kept) on a source of the leaf's
rows (``source.sample(rows)``; the root is the source itself), so every split runs on any
device and storage the core serves. The leaf split next is the one with the largest score:
its weighted inertia ("biggest_inertia") or its number of rows ("largest_cluster"); ties go to
the leaf met first depth first, left before right, and leaves are numbered in that order
(leaf ``i`` is cluster ``i``): scikit-learn's ``_BisectingTree``. A leaf's left child holds the
rows of the 2-means cluster 0. One departure, for data with repeated rows: a leaf that 2-means
cannot split (identical rows, or fewer than two of positive weight) waits until no other leaf
can be split, so it is not split again and again into itself and an empty cluster.

``predict`` descends the tree: at each split a row goes to the nearer of the two children's
centers (the left one on a tie), so it may end in a leaf whose center is not the nearest of
all centers (scikit-learn's ``_predict_recursive``). A split is a hyperplane: the right child
is nearer when ``(x - (c_l + c_r) / 2) . (c_r - c_l) > 0``. The work per row grows with its
depth in the tree, not with the number of clusters.

Prior validation of data is assumed.
"""

from __future__ import annotations

import functools
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _core as core
from . import _sparse
from ._bounds import Workspace
from ._distance import prepare_rows
from ._params import warn
from ._sources import Source, TensorSource
from .exceptions import ConvergenceWarning

logger = logging.getLogger(__name__)

STRATEGIES = ("biggest_inertia", "largest_cluster")

# How a split is seeded: a name ("random", "k-means++"), or a function of the rows of the
# leaf being split and the random stream that returns two centers (a user's callable, wrapped
# and checked by the fit boundary).
SplitInit = str | Callable[[Source, torch.Generator], torch.Tensor]


@dataclass
class Tree:
    """The hierarchy as flat CPU tensors (they pickle and save as they are).

    Node 0 is the root; a split appends its two children, left then right.
    """

    children: torch.Tensor  # (n_nodes, 2) int64: left and right child, -1 for a leaf
    centers: torch.Tensor  # (n_nodes, n_features): the center of each node's rows
    leaf_labels: torch.Tensor  # (n_nodes,) int64: the cluster of a leaf, -1 for a split node

    @property
    def depth(self) -> int:
        """Splits on the longest path from the root to a leaf."""
        depth = [0] * self.children.shape[0]
        for node, (left, right) in enumerate(self.children.tolist()):
            if left >= 0:
                depth[left] = depth[right] = depth[node] + 1
        return max(depth)


@dataclass
class BisectResult:
    """Outcome of a bisecting fit, with tensors on the compute device (the tree: CPU)."""

    centers: torch.Tensor  # (n_clusters, n_features) the leaves' centers, in leaf order
    labels: torch.Tensor  # (n_samples,) int64: the leaf of each row
    inertia: float  # weighted inertia of every row against its leaf's center
    tree: Tree


@dataclass
class _Node:
    """A node while the tree grows. ``rows``: the sorted indices of its rows in the source
    (None for the root: every row)."""

    path: tuple[int, ...]  # 0 (left) / 1 (right) from the root: depth-first order
    rows: torch.Tensor | None
    center: torch.Tensor
    inertia: float | None  # weighted, against ``center``; None until needed (the root)
    n_rows: int
    n_positive: int  # rows of positive weight
    # False once 2-means could not split these rows (fewer than two of positive weight, or all
    # identical): split again, they would only give another empty cluster
    splittable: bool = True
    children: tuple[int, int] | None = None


def fit(
    source: Source,
    n_clusters: int,
    *,
    init: SplitInit,
    n_init: int,
    max_iter: int,
    tol: float,
    metric: str,
    strategy: str,
    generator: torch.Generator,
    out_dtype: torch.dtype,
    verbose: int = 0,
) -> BisectResult:
    """Grow the tree to ``n_clusters`` leaves by splitting the leaf of largest score in two.

    ``tol`` is relative to the mean feature variance of the rows of the leaf being split (each
    split is a k-means fit of its own). Centers are rounded to ``out_dtype`` (the dtype of the
    fitted attributes), as the core does. Leaves with fewer than two rows of positive weight are
    never split by 2-means: the rows stay in the left child and the right child is empty. Leaves
    that 2-means could not split (one side empty: identical rows) are split again only when no
    other leaf can be; when fewer than ``n_clusters`` leaves hold rows, a
    :class:`ConvergenceWarning` says so.
    """
    positive = _positive_rows(source)
    root_center = _mean_center(source, metric, out_dtype)
    nodes = [
        _Node(
            path=(),
            rows=None,
            center=root_center,
            inertia=None,
            n_rows=source.n_samples,
            n_positive=source.n_samples if positive is None else int(positive.sum()),
        )
    ]
    # (unsplittable, -score, path, node): the leaf split next comes first
    leaves: list[tuple[bool, float, tuple[int, ...], int]] = [(False, 0.0, (), 0)]
    for _ in range(n_clusters - 1):
        *_, parent = heapq.heappop(leaves)
        node = nodes[parent]
        left, right = _split(
            source,
            node,
            positive,
            init=init,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
            metric=metric,
            generator=generator,
            out_dtype=out_dtype,
            verbose=verbose,
        )
        node.children = (len(nodes), len(nodes) + 1)
        node.rows = None  # the children hold them now (only the rows of leaves are read)
        for child in (left, right):
            score = child.inertia if strategy == "biggest_inertia" else child.n_rows
            entry = (not child.splittable, -float(score or 0.0), child.path, len(nodes))
            heapq.heappush(leaves, entry)
            nodes.append(child)
    if n_clusters == 1:
        nodes[0].inertia = _inertia(source, root_center, metric)
    return _finish(source, nodes, n_clusters)


def _split(
    source: Source,
    node: _Node,
    positive: torch.Tensor | None,
    *,
    init: SplitInit,
    n_init: int,
    max_iter: int,
    tol: float,
    metric: str,
    generator: torch.Generator,
    out_dtype: torch.dtype,
    verbose: int,
) -> tuple[_Node, _Node]:
    """The two children of ``node``: the clusters of the best of ``n_init`` 2-means runs."""
    rows = node.rows
    if node.n_positive < 2:  # two centers cannot be seeded: keep the rows together
        inertia = node.inertia
        if inertia is None:  # (only the root's is not known)
            inertia = _inertia(source, node.center, metric)
        kept = _Node(
            node.path + (0,), rows, node.center, inertia, node.n_rows, node.n_positive, False
        )
        empty_rows = torch.empty(0, dtype=torch.long, device=source.device)
        return kept, _Node(node.path + (1,), empty_rows, node.center, 0.0, 0, 0, False)
    sub = source if rows is None else source.sample(rows)
    result = core.fit(
        sub,
        2,
        init=init if isinstance(init, str) else functools.partial(init, sub),
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        metric=metric,
        generator=generator,
        out_dtype=out_dtype,
        verbose=verbose,
        warn_empty=False,
    )
    labels = result.labels
    assert result.cluster_inertia is not None
    split_inertia = result.cluster_inertia.tolist()
    sub_positive = positive
    if positive is not None and rows is not None:
        sub_positive = positive.index_select(0, rows)
    children = []
    for c in (0, 1):  # (index_select and nonzero: boolean-mask indexing is far slower on CPU)
        take = (labels == c).nonzero().flatten()
        n_positive = take.numel()
        if sub_positive is not None:
            n_positive = int(sub_positive.index_select(0, take).sum())
        children.append(
            _Node(
                path=node.path + (c,),
                rows=take if rows is None else rows.index_select(0, take),
                center=result.centers[c],
                inertia=float(split_inertia[c]),
                n_rows=take.numel(),
                n_positive=n_positive,
                splittable=n_positive >= 2,
            )
        )
    if min(child.n_positive for child in children) == 0:  # the rows could not be separated
        for child in children:
            child.splittable = False
    logger.debug(
        "split %s (%d rows) into %d + %d rows, inertia %.6g + %.6g",
        node.path,
        node.n_rows,
        children[0].n_rows,
        children[1].n_rows,
        split_inertia[0],
        split_inertia[1],
    )
    return children[0], children[1]


def _finish(source: Source, nodes: list[_Node], n_clusters: int) -> BisectResult:
    """Number the leaves depth first, label the rows and flatten the tree."""
    order = sorted(
        (i for i, n in enumerate(nodes) if n.children is None), key=lambda i: nodes[i].path
    )
    labels = torch.empty(source.n_samples, dtype=torch.long, device=source.device)
    leaf_labels = torch.full((len(nodes),), -1, dtype=torch.long)
    inertia = 0.0
    for label, i in enumerate(order):
        leaf = nodes[i]
        if leaf.rows is None:
            labels.fill_(label)
        else:
            labels.index_fill_(0, leaf.rows, label)
        leaf_labels[i] = label
        inertia += float(leaf.inertia or 0.0)
    n_nonempty = sum(1 for i in order if nodes[i].n_positive > 0)
    if n_nonempty < n_clusters:
        warn(
            f"Number of distinct clusters ({n_nonempty}) found smaller than n_clusters "
            f"({n_clusters}). Possibly due to duplicate points in X, or fewer rows of positive "
            "weight than clusters.",
            ConvergenceWarning,
        )
    children = torch.tensor(
        [n.children if n.children is not None else (-1, -1) for n in nodes], dtype=torch.long
    ).reshape(len(nodes), 2)
    node_centers = torch.stack([n.center for n in nodes])
    tree = Tree(children, node_centers.cpu(), leaf_labels)
    centers = node_centers[torch.tensor(order, device=node_centers.device)]
    return BisectResult(centers=centers, labels=labels, inertia=inertia, tree=tree)


def _positive_rows(source: Source) -> torch.Tensor | None:
    """Which rows have a positive weight (bool, on the device); None when unweighted."""
    if not source.weighted:
        return None
    if source.sample_weight is not None:
        return source.sample_weight > 0
    return torch.cat([chunk.w > 0 for chunk in source.chunks() if chunk.w is not None])


def _mean_center(source: Source, metric: str, out_dtype: torch.dtype) -> torch.Tensor:
    """The center of all rows: their weighted mean (cosine: of the unit rows, renormalized),
    rounded to ``out_dtype`` as every center is."""
    mean, _, _ = core.data_moments(source, metric)
    if metric == "cosine":
        norm = torch.linalg.vector_norm(mean.to(torch.float64))
        if bool(norm > 0):
            mean = (mean.to(torch.float64) / norm).to(source.dtype)
        else:  # the rows cancel out: any unit row is as good a center
            first = next(source.chunks()).x[:1]
            mean = prepare_rows(first, "cosine", None)[0]
    return mean.to(out_dtype).to(source.dtype)


def _inertia(source: Source, center: torch.Tensor, metric: str) -> float:
    """Weighted inertia of every row of ``source`` against one center."""
    labels = torch.empty(source.n_samples, dtype=torch.long, device=source.device)
    workspace = Workspace(source.chunk_size, 1, source.dtype, source.device)
    stats = core.final_pass(source, center[None, :], metric, labels, workspace)
    return float(stats.inertia.sum())


# ------------------------------------------------------------------------------------ predict


def predict(source: Source, tree: Tree, metric: str) -> torch.Tensor:
    """The leaf of every row, found by descending the tree (int64, on the source's device).

    Each chunk is routed level by level: the rows still at a split node move to the nearer
    child, until every row is at a leaf. Memory: a few chunk x n_features buffers.
    """
    dev, dtype = source.device, source.dtype
    children = tree.children.to(dev)
    left, right = children[:, 0], children[:, 1]
    is_split = left >= 0
    centers = tree.centers.to(device=dev, dtype=dtype)
    c_left = centers[left.clamp_min(0)]
    c_right = centers[right.clamp_min(0)]
    midpoint = (c_left + c_right) * 0.5
    direction = c_right - c_left
    leaf_labels = tree.leaf_labels.to(dev)
    out = torch.empty(source.n_samples, dtype=torch.long, device=dev)
    for chunk in source.chunks():
        x = prepare_rows(chunk.x, metric, None)
        m = x.shape[0]
        node = torch.zeros(m, dtype=torch.long, device=dev)
        active = torch.arange(m, device=dev) if bool(is_split[0]) else node[:0]
        while active.numel():
            at = node.index_select(0, active)
            go_right = _right_side(
                x, active, midpoint.index_select(0, at), direction.index_select(0, at)
            )
            step = torch.where(go_right, right.index_select(0, at), left.index_select(0, at))
            node.index_copy_(0, active, step)
            active = active.index_select(0, is_split.index_select(0, step).nonzero().flatten())
        out[chunk.start : chunk.start + m] = leaf_labels.index_select(0, node)
    return out


def _right_side(
    x: torch.Tensor, rows: torch.Tensor, midpoint: torch.Tensor, direction: torch.Tensor
) -> torch.Tensor:
    """Whether each of ``rows`` of ``x`` is strictly nearer the right child than the left:
    ``(x - midpoint) . direction > 0``, one midpoint and direction per row."""
    if x.layout != torch.strided:  # sparse rows: x . direction - midpoint . direction
        xs = _sparse.select_rows(x, rows)
        each = torch.arange(rows.numel(), device=x.device)
        projection = _sparse.dot_with(xs, direction.contiguous(), each)
        projection -= (midpoint.to(torch.float64) * direction.to(torch.float64)).sum(dim=1)
        return projection > 0
    xs = x.index_select(0, rows)
    return xs.sub_(midpoint).mul_(direction).sum(dim=1) > 0


def source_rows(source: Source) -> TensorSource:
    """The rows of ``source`` as an in-memory source (a source of batches read once)."""
    if isinstance(source, TensorSource):
        return source
    return source.sample(torch.arange(source.n_samples, device=source.device))
