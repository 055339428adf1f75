"""The part the estimators share (``_KMeansBase``): scikit-learn's mixins, the parameters
checked at fit time, and ``predict``, ``transform``, ``score`` on the fitted centers.

Each estimator (``KMeans`` in ``_estimator``, ``MiniBatchKMeans`` in ``_minibatch_estimator``,
``BisectingKMeans`` in ``_bisect_estimator``) stores its parameters verbatim, hands them with
the data to the fit boundary in ``_functional`` (parameters checked from the table in
``_params``, then the data, then the source), calls its algorithm (the Lloyd core,
``_minibatch``, ``_bisect``) and sets the fitted attributes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)

from . import _validation as v
from . import _validation_batches as vb
from ._functional import Prepared, assign_labels, distances_to_centers, prepare
from ._params import check_param, check_params
from .exceptions import NotFittedError

_Estimator = TypeVar("_Estimator", bound="_KMeansBase")


class _KMeansBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """What the estimators share: predict, transform, score, files, tags."""

    metric: str
    device: Any
    chunk_size: Any

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return the distances of every row of X to every center."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # ----------------------------------------------------------------------------- predict

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _prepare_new_data(
        self, X: Any, sample_weight: Any = None, params: dict[str, Any] | None = None
    ) -> tuple[Prepared, torch.Tensor]:
        """Data passed after fit, as a source, and the centers on its device and dtype.

        ``params``: the checked parameters when the caller has them (partial_fit).
        """
        self._check_fitted()
        if params is None:
            params = check_params(
                {"metric": self.metric, "device": self.device, "chunk_size": self.chunk_size}
            )
        checked: v.CheckedData | vb.CheckedBatches = (
            vb.check_batches(X) if vb.is_batch_source(X) else v.check_array(X)
        )
        v.check_n_features(
            checked,
            self.n_features_in_,
            getattr(self, "feature_names_in_", None),
            type(self).__name__,
        )
        centers = torch.as_tensor(self.cluster_centers_)
        prepared = prepare(
            checked,
            sample_weight,
            n_clusters=centers.shape[0],
            metric=params["metric"],
            device=params["device"],
            dtype=check_param("dtype", centers.dtype),
            chunk_size=params["chunk_size"],
            magnitude=float(centers.abs().max()) if centers.numel() else 0.0,
        )
        source = prepared.source
        return prepared, centers.to(device=source.device, dtype=source.dtype)

    def _set_centers(self, prepared: Prepared, centers: torch.Tensor) -> None:
        """The fitted centers (in the caller's kind of array) and what fit learned of X."""
        self.cluster_centers_ = prepared.checked.kind.wrap(centers.to(prepared.out_dtype))
        self.n_features_in_ = int(prepared.source.n_features)
        self._n_features_out = int(centers.shape[0])
        names = prepared.checked.feature_names
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def predict(self, X: Any) -> Any:
        """Index of the closest center for each row of X (int64, same kind as X)."""
        prepared, centers = self._prepare_new_data(X)
        labels, _ = assign_labels(prepared.source, centers, prepared.metric)
        return prepared.checked.kind.wrap(labels)

    def transform(self, X: Any) -> Any:
        """Euclidean (not squared) distances of each row to every center, (n_samples, K).

        For ``metric="cosine"``, distances between the unit-normalized rows and the centers.
        """
        prepared, centers = self._prepare_new_data(X)
        out = distances_to_centers(prepared.source, centers, prepared.metric)
        return prepared.checked.kind.wrap(out.to(prepared.out_dtype))

    # ------------------------------------------------------------------------------ files

    def save(self, path: Any) -> None:
        """Write the fitted model to ``path`` (safetensors + JSON metadata), atomically.

        The file holds the centers, the training labels, the parameters, feature names, inertia,
        history, and the format and library versions. It cannot carry code: loading it never
        unpickles anything.
        """
        from .io import save_model

        self._check_fitted()
        save_model(self, path)

    @classmethod
    def load(cls: type[_Estimator], path: Any, device: Any = None) -> _Estimator:
        """Read a model written by :meth:`save`.

        Centers come back as numpy arrays when the model was fitted on numpy data and as CPU
        tensors when it was fitted on tensors; ``device`` puts them (as tensors) on that device.
        A truncated, corrupt, foreign or pickle file raises :class:`ModelFileError`.
        """
        from .io import load_model

        return load_model(cls, path, device=device)  # type: ignore[no-any-return]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X against the fitted centers."""
        prepared, centers = self._prepare_new_data(X, sample_weight)
        _, inertia = assign_labels(prepared.source, centers, prepared.metric)
        return -inertia
