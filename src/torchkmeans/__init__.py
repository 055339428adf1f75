"""torchkmeans: K-means clustering on PyTorch, a drop-in for scikit-learn's KMeans.

>>> from torchkmeans import KMeans
>>> km = KMeans(n_clusters=4, random_state=0).fit(X)   # doctest: +SKIP

The public names are imported on first use (PEP 562), so ``import torchkmeans`` and
``torchkmeans.__version__`` do not import torch, and ``torchkmeans --help`` answers at once.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports these
    from . import metrics
    from ._batched import BatchedResult, kmeans_batched
    from ._bisect_estimator import BisectingKMeans
    from ._config import show_config
    from ._estimator import KMeans
    from ._functional import KMeansResult, k_means, kmeans, kmeans_plusplus
    from ._minibatch_estimator import MiniBatchKMeans
    from ._sweep import SweepResult, sweep_k
    from .exceptions import (
        CheckpointError,
        ConvergenceWarning,
        DataError,
        EngineWarning,
        ModelFileError,
        NotFittedError,
        ParameterError,
        TorchKMeansError,
        UnsupportedInputError,
    )

__all__ = [
    "BatchedResult",
    "BisectingKMeans",
    "CheckpointError",
    "ConvergenceWarning",
    "DataError",
    "EngineWarning",
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
    "k_means",
    "kmeans",
    "kmeans_batched",
    "kmeans_plusplus",
    "metrics",
    "show_config",
    "sweep_k",
]

# Public name -> the module that defines it; a name equal to its module's last part is the
# module itself (``metrics``).
_LAZY = {
    "BatchedResult": "._batched",
    "BisectingKMeans": "._bisect_estimator",
    "CheckpointError": ".exceptions",
    "ConvergenceWarning": ".exceptions",
    "DataError": ".exceptions",
    "EngineWarning": ".exceptions",
    "KMeans": "._estimator",
    "KMeansResult": "._functional",
    "MiniBatchKMeans": "._minibatch_estimator",
    "ModelFileError": ".exceptions",
    "NotFittedError": ".exceptions",
    "ParameterError": ".exceptions",
    "SweepResult": "._sweep",
    "TorchKMeansError": ".exceptions",
    "UnsupportedInputError": ".exceptions",
    "k_means": "._functional",
    "kmeans": "._functional",
    "kmeans_batched": "._batched",
    "kmeans_plusplus": "._functional",
    "metrics": ".metrics",
    "show_config": "._config",
    "sweep_k": "._sweep",
}


def __getattr__(name: str) -> _typing.Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _importlib.import_module(module_name, __name__)
    value = module if module_name == f".{name}" else getattr(module, name)
    globals()[name] = value  # later lookups find it without calling __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
