"""torchkmeans: K-means clustering on PyTorch, a drop-in for scikit-learn's KMeans.

>>> from torchkmeans import KMeans
>>> km = KMeans(n_clusters=4, random_state=0).fit(X)   # doctest: +SKIP
"""

from . import metrics
from ._estimator import KMeans
from ._functional import KMeansResult, kmeans, kmeans_plusplus
from ._minibatch import MiniBatchKMeans
from ._sweep import SweepResult, sweep_k
from .exceptions import (
    CheckpointError,
    ConvergenceWarning,
    DataError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    TorchKMeansError,
    UnsupportedInputError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConvergenceWarning",
    "DataError",
    "KMeans",
    "KMeansResult",
    "MiniBatchKMeans",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "SweepResult",
    "TorchKMeansError",
    "UnsupportedInputError",
    "__version__",
    "kmeans",
    "kmeans_plusplus",
    "metrics",
    "sweep_k",
]
