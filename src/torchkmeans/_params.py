"""The parameters of the estimators and public functions, checked from one table.

``PARAMS`` maps every parameter name to its constraint. :func:`check_params` checks the
parameters an estimator or a function received against it, in the order of the table, and
returns the checked values (an ``int`` for a ``numpy.int64``, a ``torch.device`` for a device
string, a ``Path`` for a checkpoint, ...) with the values derived from them (``n_init="auto"``
resolved against ``init``). Adding a parameter means adding one entry to ``PARAMS``.

Nothing here looks at the data (``_validation`` does), so a check never depends on X: that
``n_clusters`` does not exceed the number of rows, or that an ``init`` array has the shape of
the centers, is checked with the data. Errors are :class:`ParameterError` worded "got X,
expected Y" plus the fix when there is one.
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validation import FLOAT_DTYPES
from .exceptions import ParameterError

METRICS = ("euclidean", "cosine")
INIT_NAMES = ("k-means++", "k-means||", "random")
ALGORITHMS = ("lloyd", "elkan")
BISECTING_STRATEGIES = ("biggest_inertia", "largest_cluster")
_DTYPE_NAMES = {
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
}


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise a ParameterError naming ``name``."""
    if not _is_int(value):
        raise ParameterError(
            f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}."
        )
    if int(value) < minimum:  # type: ignore[call-overload]
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
# constraints: each checks one value and returns it checked, or raises naming the parameter
# --------------------------------------------------------------------------------------------


class Constraint:
    """Checks the value of one parameter: ``constraint(name, value) -> checked value``."""

    def __call__(self, name: str, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer ``>= minimum`` (numpy integers too, never a bool), returned as an int.

    ``optional``: None is accepted too. ``bools``: True and False count as 1 and 0.
    """

    minimum: int
    optional: bool = False
    bools: bool = False

    def __call__(self, name: str, value: Any) -> int | None:
        if value is None and self.optional:
            return None
        if self.bools and isinstance(value, bool):
            return int(value)
        return check_int(name, value, self.minimum)


@dataclass(frozen=True)
class FiniteNumber(Constraint):
    """A finite real number ``>= minimum`` (numpy numbers too, never a bool), as a float."""

    minimum: int = 0

    def __call__(self, name: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not np.isfinite(float(value))
        ):
            raise ParameterError(
                f"{name} must be a finite number >= {self.minimum}, got {value!r}."
            )
        if float(value) < self.minimum:
            raise ParameterError(f"{name} must be >= {self.minimum}, got {value!r}.")
        return float(value)


@dataclass(frozen=True)
class Number(Constraint):
    """A Python int or float ``>= minimum`` (not a bool, not NaN; infinity passes), as a float."""

    minimum: int = 0

    def __call__(self, name: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (value >= self.minimum)
        ):
            raise ParameterError(f"{name} must be a number >= {self.minimum}, got {value!r}.")
        return float(value)


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of the strings in ``options``."""

    options: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise ParameterError(
                f"{name} must be one of {', '.join(repr(m) for m in self.options)}, got {value!r}."
            )
        return value


@dataclass(frozen=True)
class Flag(Constraint):
    """True or False, given as one of ``types``; returned as a bool."""

    types: tuple[type, ...] = (bool, np.bool_)

    def __call__(self, name: str, value: Any) -> bool:
        if not isinstance(value, self.types):
            raise ParameterError(f"{name} must be True or False, got {value!r}.")
        return bool(value)


@dataclass(frozen=True)
class ProcessGroupFlag(Flag):
    """A flag that, when True, needs an initialized default ``torch.distributed`` group."""

    def __call__(self, name: str, value: Any) -> bool:
        on = super().__call__(name, value)
        if on:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise ParameterError(
                    f"{name}=True needs an initialized default process group: call "
                    "torch.distributed.init_process_group(backend='gloo' or 'nccl') first, or "
                    "launch with torchrun and call it at the start of the script."
                )
        return on


@dataclass(frozen=True)
class Init(Constraint):
    """A name in ``names``, a callable, or (when ``arrays``) an array, whose values are data:
    checked against X by the fit boundary. Returned as given."""

    names: tuple[str, ...] = INIT_NAMES
    arrays: bool = True

    def _expected(self) -> str:
        names = ", ".join(repr(m) for m in self.names)
        if self.arrays:
            return f"one of {names}, an array of shape (n_clusters, n_features) or a callable"
        return f"one of {names} or a callable"

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            if value not in self.names:
                raise ParameterError(
                    f"{name} must be {self._expected()}, got the string {value!r}."
                )
            return value
        if callable(value):
            return value
        if self.arrays and (
            isinstance(value, (np.ndarray, torch.Tensor, list, tuple))
            or hasattr(value, "__array__")
        ):
            return value
        if self.arrays:
            raise ParameterError(
                f"{name} must be 'k-means++', 'random', an array of shape (n_clusters, "
                "n_features) or a callable (X, n_clusters, random_state) -> centers, got "
                f"{type(value).__name__}."
            )
        raise ParameterError(
            f"{name} must be {self._expected()} (X, n_clusters, random_state) -> centers, got "
            f"{type(value).__name__}: every split has two centers, chosen by init."
        )


class NInit(Constraint):
    """``"auto"`` or an integer >= 1 (:func:`check_params` resolves ``"auto"``)."""

    def __call__(self, name: str, value: Any) -> int | str:
        if isinstance(value, str):
            if value != "auto":
                raise ParameterError(f"{name} must be 'auto' or an integer >= 1, got {value!r}.")
            return value
        return check_int(name, value, 1)


class RandomState(Constraint):
    """None, an int in [0, 2**64), a numpy RandomState or Generator, or a CPU
    ``torch.Generator``. Returned as given: :func:`make_generator` draws from it."""

    def __call__(self, name: str, value: Any) -> Any:
        if isinstance(value, torch.Generator):
            if value.device.type != "cpu":
                raise ParameterError(
                    f"{name} must be a CPU torch.Generator, got one on {value.device}."
                )
            return value
        if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
            return value
        if _is_int(value):
            if not 0 <= int(value) < 2**64:
                raise ParameterError(f"{name} must be in [0, 2**64), got {value}.")
            return value
        raise ParameterError(
            f"{name} must be None, an int, a numpy RandomState or Generator, or a CPU "
            f"torch.Generator, got {type(value).__name__}."
        )


class Device(Constraint):
    """None, a ``torch.device`` or a device string, available in this PyTorch."""

    def __call__(self, name: str, value: Any) -> torch.device | None:
        if value is None:
            return None
        try:
            dev = torch.device(value)
        except (RuntimeError, TypeError):
            raise ParameterError(
                f"{name} must be None, a torch.device or a string such as 'cpu' or 'cuda:0', "
                f"got {value!r}."
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError(
                f"{name}={value!r} was requested but CUDA is not available in this PyTorch "
                f"(torch {torch.__version__}). Use device='cpu' or install a CUDA build of "
                "PyTorch."
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ParameterError(f"{name}={value!r} was requested but MPS is not available.")
        return dev


class Dtype(Constraint):
    """None or a floating dtype: a torch dtype, a numpy dtype or a name such as "float32"."""

    def __call__(self, name: str, value: Any) -> torch.dtype | None:
        if value is None:
            return None
        if isinstance(value, torch.dtype):
            resolved: torch.dtype | None = value
        elif isinstance(value, str):
            resolved = _DTYPE_NAMES.get(value.removeprefix("torch."))
        elif isinstance(value, (np.dtype, type)):
            try:
                resolved = _DTYPE_NAMES.get(np.dtype(value).name)
            except TypeError:
                resolved = None
        else:  # np.dtype() reads dicts, lists and tuples as record layouts: never a float dtype
            resolved = None
        if resolved not in FLOAT_DTYPES:
            raise ParameterError(
                f"{name} must be None or a floating dtype (float16, bfloat16, float32, "
                f"float64), got {value!r}."
            )
        return resolved


class FilePath(Constraint):
    """None, or the path of a file whose folder exists (the file itself may not exist yet)."""

    def __call__(self, name: str, value: Any) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)):
            raise ParameterError(f"{name} must be None or a file path, got {type(value).__name__}.")
        path = Path(value)
        if path.is_dir():
            raise ParameterError(f"{name}={str(path)!r} is a folder; expected a file path.")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ParameterError(
                f"{name}={str(path)!r}: the folder {str(folder)!r} does not exist. Create it "
                "first or pass another path."
            )
        return path


class Ks(Constraint):
    """Distinct ints >= 2 (an int ``m`` means ``range(2, m + 1)``), returned as a list.
    That every k is below the number of rows is checked with the data."""

    def __call__(self, name: str, value: Any) -> list[int]:
        ks = value
        if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
            ks = range(2, int(ks) + 1)
        try:
            values = [check_int("k", k, 2) for k in ks]
        except TypeError:  # not iterable, or an element is not an int >= 2 (ParameterError)
            raise ParameterError(
                f"{name} must be an iterable of ints >= 2 (e.g. range(2, 11)), got "
                f"{type(ks).__name__}."
            ) from None
        if not values:
            raise ParameterError(f"{name} is empty; pass at least one k, e.g. range(2, 11).")
        if len(set(values)) != len(values):
            raise ParameterError(f"{name} has repeated values: {values}.")
        return values


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------

# Every parameter of KMeans, MiniBatchKMeans, BisectingKMeans, kmeans, kmeans_plusplus and
# sweep_k (data arguments aside), checked in this order.
PARAMS: dict[str, Constraint] = {
    "distributed": ProcessGroupFlag(),
    "n_clusters": Integer(1),
    "init_size": Integer(1, optional=True),
    "checkpoint": FilePath(),
    "max_iter": Integer(1),
    "batch_size": Integer(1),
    "tol": FiniteNumber(0),
    "verbose": Integer(0, bools=True),
    "max_no_improvement": Integer(0, optional=True),
    "compute_labels": Flag(types=(bool, int)),
    "reassignment_ratio": Number(0),
    "n_local_trials": Integer(1, optional=True),
    "init": Init(),
    "n_init": NInit(),
    "random_state": RandomState(),
    "metric": OneOf(METRICS),
    # scikit-learn's names: both algorithms run the same exact, pruned Lloyd iteration
    "algorithm": OneOf(ALGORITHMS),
    # accepted for scikit-learn's signature: the caller's data is never modified anyway
    "copy_x": Flag(),
    "return_n_iter": Flag(),
    "device": Device(),
    "dtype": Dtype(),
    "chunk_size": Integer(1, optional=True),
    "bisecting_strategy": OneOf(BISECTING_STRATEGIES),
    "ks": Ks(),
    "silhouette_sample_size": Integer(2, optional=True),
}


@dataclass(frozen=True)
class AutoNInit:
    """What ``n_init="auto"`` means for an estimator: one run for the inits in ``seeded`` and
    for an array of centers, ``runs`` runs for the others and for a callable."""

    seeded: tuple[str, ...]
    runs: int
    estimator: str = "KMeans"

    def __call__(self, init: Any) -> int:
        if isinstance(init, str):
            return 1 if init in self.seeded else self.runs
        return self.runs if callable(init) else 1


KMEANS_N_INIT = AutoNInit(("k-means++", "k-means||"), 10)
MINIBATCH_N_INIT = AutoNInit(("k-means++",), 3, "MiniBatchKMeans")

# BisectingKMeans takes scikit-learn's constraints for it: every split is a 2-means, so init
# names a seeding or is a callable (no array of centers, no k-means||) and n_init is a count.
BISECT_PARAMS: dict[str, Constraint] = {
    **PARAMS,
    "init": Init(("k-means++", "random"), arrays=False),
    "n_init": Integer(1),
}


def check_params(
    params: Mapping[str, Any],
    auto_n_init: AutoNInit = KMEANS_N_INIT,
    table: Mapping[str, Constraint] = PARAMS,
) -> dict[str, Any]:
    """Check ``params`` against ``table`` (``PARAMS``, or ``BISECT_PARAMS`` for
    BisectingKMeans) in the table's order and return the checked values.

    Names without an entry (parameters a subclass adds) are left out. ``n_init`` is resolved
    against ``init``: ``"auto"`` as ``auto_n_init`` says, and explicit centers get one run
    (with a warning when more were asked for).
    """
    checked = {name: check(name, params[name]) for name, check in table.items() if name in params}
    if "n_init" in checked:
        checked["n_init"] = resolve_n_init(checked["n_init"], checked["init"], auto_n_init)
    # (KMeans' warning; scikit-learn's BisectingKMeans splits in two and never warns)
    if table is PARAMS and checked.get("algorithm") == "elkan" and checked.get("n_clusters") == 1:
        warn(
            "algorithm='elkan' doesn't make sense for a single cluster. Using 'lloyd' instead "
            "(in torchkmeans both run the same exact, pruned Lloyd iteration).",
            RuntimeWarning,
        )
        checked["algorithm"] = "lloyd"
    return checked


def check_param(name: str, value: Any) -> Any:
    """Check one parameter against its entry in ``PARAMS``."""
    return PARAMS[name](name, value)


# --------------------------------------------------------------------------------------------
# derived values
# --------------------------------------------------------------------------------------------


def resolve_n_init(n_init: int | str, init: Any, auto_n_init: AutoNInit = KMEANS_N_INIT) -> int:
    """Runs to make from checked ``n_init`` and ``init``."""
    if isinstance(n_init, str):  # "auto"
        return auto_n_init(init)
    if not isinstance(init, str) and not callable(init) and n_init != 1:
        warn(
            "Explicit initial center position passed: performing only one init in "
            f"{auto_n_init.estimator} instead of n_init={n_init}.",
            RuntimeWarning,
        )
        return 1
    return n_init


def make_generator(random_state: Any) -> torch.Generator:
    """A CPU generator from a checked ``random_state``: None (fresh entropy), an int, a numpy
    RandomState / Generator (one draw seeds it), or a CPU ``torch.Generator`` (used as is)."""
    if isinstance(random_state, torch.Generator):
        return random_state
    g = torch.Generator()
    if random_state is None:
        g.seed()
    elif isinstance(random_state, np.random.RandomState):
        g.manual_seed(int(random_state.randint(np.iinfo(np.int32).max)))
    elif isinstance(random_state, np.random.Generator):
        g.manual_seed(int(random_state.integers(2**63)))
    else:
        g.manual_seed(int(random_state))
    return g


def compute_dtype(storage: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 are computed in float32; float32 and float64 as themselves."""
    return storage if storage in (torch.float32, torch.float64) else torch.float32


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning]) -> None:
    """Warn at the line that called torchkmeans (the first frame outside the package)."""
    frame: Any = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
