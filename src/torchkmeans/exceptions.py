"""The errors and warnings torchkmeans raises.

Every error derives from :class:`TorchKMeansError` and from the built-in type that users
already catch, so ``except ValueError`` keeps working::

    Exception
    └── TorchKMeansError
        ├── DataError (ValueError)              bad X, sample_weight or init values
        │   └── UnsupportedInputError (TypeError)  complex, strings, block-sparse, unknown containers
        ├── ParameterError (ValueError, TypeError)  a bad constructor / function argument
        ├── NotFittedError (sklearn NotFittedError: ValueError, AttributeError)
        ├── ModelFileError (ValueError)         a model file that cannot be loaded safely
        └── CheckpointError (ValueError)        a checkpoint of another fit, or unreadable

    UserWarning
    ├── sklearn.exceptions.ConvergenceWarning
    │   └── ConvergenceWarning                  fewer distinct points than clusters, ...
    └── EngineWarning                           the native kernels are missing (slower fits)
"""

from __future__ import annotations

from sklearn.exceptions import ConvergenceWarning as _SkConvergenceWarning
from sklearn.exceptions import NotFittedError as _SkNotFittedError

__all__ = [
    "CheckpointError",
    "ConvergenceWarning",
    "DataError",
    "EngineWarning",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "TorchKMeansError",
    "UnsupportedInputError",
]


class TorchKMeansError(Exception):
    """Base class of every error raised by torchkmeans."""


class DataError(TorchKMeansError, ValueError):
    """The data (X, sample_weight, initial centers) has a bad value or shape."""


class UnsupportedInputError(DataError, TypeError):
    """The data comes in a container or dtype torchkmeans cannot use (complex, text, block-sparse
    tensors, batches of sparse rows)."""


class ParameterError(TorchKMeansError, ValueError, TypeError):
    """A parameter has a bad value or type."""


class NotFittedError(TorchKMeansError, _SkNotFittedError):
    """The estimator is used before ``fit``; also a ValueError and an AttributeError."""


class ModelFileError(TorchKMeansError, ValueError):
    """A model file is missing, truncated, corrupt, foreign or of another format version."""


class CheckpointError(TorchKMeansError, ValueError):
    """A checkpoint file that belongs to another fit (other data or parameters), or that
    cannot be read. It is never silently used or overwritten."""


class ConvergenceWarning(_SkConvergenceWarning):
    """The fit finished but the result is degenerate (for example duplicate points)."""


class EngineWarning(UserWarning):
    """torchkmeans runs its slower PyTorch engine on the CPU because the native kernels are
    missing (it was installed without a C compiler). Emitted once per process."""
