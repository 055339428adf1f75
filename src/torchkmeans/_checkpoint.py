"""Checkpoints of long fits: the state after every Lloyd iteration, written atomically, so a
fit killed at any moment (SIGKILL included) resumes and ends bit for bit as an uninterrupted
fit would.

What is saved after each iteration: the run and iteration, the centers after the update and the
centers the last assignment pass used (the labels of that pass are recomputed from them on
resume, which costs one pass but keeps the file O(K x D)), the history, the state of the random
generator, the best finished run when ``n_init > 1``, and two fingerprints: one of the
parameters and one of the data (shape, dtype and its weighted mean and variance, computed in
float64 in row order). A checkpoint whose fingerprints do not match the fit raises
:class:`CheckpointError`; it is never silently used or overwritten.

The file is safetensors (tensors) with JSON metadata: loading it never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .exceptions import CheckpointError

FORMAT_NAME = "torchkmeans-checkpoint"
FORMAT_VERSION = 1


@dataclass
class BestRun:
    """The best finished run so far."""

    run: int
    centers: torch.Tensor
    inertia: float
    n_iter: int
    history: list[dict[str, Any]]
    n_nonempty: int


@dataclass
class FitState:
    """Where a fit stands after an iteration (``iteration`` iterations of run ``run`` done)."""

    run: int
    iteration: int
    stopped: bool
    centers: torch.Tensor
    previous: torch.Tensor | None
    history: list[dict[str, Any]]
    rng_state: torch.Tensor
    best: BestRun | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def data_fingerprint(
    n_samples: int,
    n_features: int,
    dtype: torch.dtype,
    weighted: bool,
    mean: torch.Tensor,
    variance: float,
) -> str:
    """A digest of the data that changes when any value does (almost surely)."""
    h = hashlib.sha256()
    h.update(f"{n_samples}x{n_features}:{dtype}:{weighted}:{variance!r}".encode())
    h.update(mean.detach().to(torch.float64).cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def describe_init(init: object) -> str:
    """A stable description of ``init`` for the parameter fingerprint."""
    if isinstance(init, str):
        return init
    if callable(init):
        return (
            "callable:"
            + getattr(init, "__module__", "?")
            + "."
            + getattr(init, "__qualname__", type(init).__name__)
        )
    t = torch.as_tensor(init.cpu() if hasattr(init, "cpu") else init)  # type: ignore[attr-defined]
    digest = hashlib.sha256(t.detach().to(torch.float64).contiguous().numpy().tobytes())
    return f"array{tuple(t.shape)}:{digest.hexdigest()[:16]}"


class Checkpoint:
    """Reads and writes the checkpoint file of one fit."""

    def __init__(self, path: str | os.PathLike[str], params: dict[str, Any]) -> None:
        self.path = Path(path)
        self.params = params
        self.data: str | None = None

    def load(self, data: str, n_features: int | None = None) -> FitState | None:
        """The saved state, or None when there is no checkpoint file yet.

        Raises :class:`CheckpointError` when the file is not a checkpoint, was written for
        other parameters or other data, or holds a state that does not fit them (every field
        is checked: types, ranges, and the shapes of the centers, ``n_features`` wide).
        """
        self.data = data
        self.remove_strays()
        if not self.path.exists():
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .io import _read_header

        try:
            header = _read_header(self.path)
            raw = (header.get("__metadata__") or {}).get("torchkmeans_checkpoint")
            meta = json.loads(raw) if raw else None
        except (ValueError, OSError) as exc:
            raise CheckpointError(f"{self.path}: not a readable checkpoint ({exc}).") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise CheckpointError(
                f"{self.path} exists but is not a torchkmeans checkpoint. Pass another "
                "checkpoint path, or remove the file."
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{self.path}: checkpoint format version {meta.get('format_version')!r}, this "
                f"torchkmeans reads {FORMAT_VERSION}. Remove it to start the fit afresh."
            )
        saved = meta.get("params", {})
        if saved != self.params:
            keys = sorted(set(saved) | set(self.params))
            diff = [
                f"{k}={saved.get(k)!r} (checkpoint) vs {self.params.get(k)!r} (this fit)"
                for k in keys
                if saved.get(k) != self.params.get(k)
            ]
            raise CheckpointError(
                f"{self.path} was written by a fit with other parameters: {'; '.join(diff)}. "
                "Resume with the same parameters, or remove the checkpoint (or pass another "
                "path) to start afresh."
            )
        if meta.get("data") != data:
            raise CheckpointError(
                f"{self.path} was written by a fit on other data (the shape, dtype or values "
                "differ). Resume with the same data, or remove the checkpoint (or pass another "
                "path) to start afresh."
            )
        try:
            tensors = load_file(str(self.path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: corrupt checkpoint ({exc}).") from None
        try:
            return self._state(meta, tensors, n_features)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{self.path}: corrupt checkpoint ({type(exc).__name__}: {exc}). Remove it to "
                "start the fit afresh."
            ) from None

    def _state(
        self, meta: dict[str, Any], tensors: dict[str, torch.Tensor], n_features: int | None
    ) -> FitState:
        """The checkpoint's state, every field checked against this fit's parameters (a
        ValueError, KeyError or TypeError says what is wrong)."""
        k = self.params.get("n_clusters")
        runs = self.params.get("n_init")
        max_iter = self.params.get("max_iter")

        def integer(value: Any, name: str, low: int, high: int | None) -> int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} is {value!r}, expected an integer")
            if value < low or (high is not None and value > high):
                raise ValueError(f"{name}={value} is outside [{low}, {high}]")
            return value

        def centers(name: str) -> torch.Tensor:
            c = tensors[name]
            width = n_features if n_features is not None else (c.shape[-1] if c.dim() else -1)
            if c.dim() != 2 or (k is not None and c.shape[0] != k) or c.shape[1] != width:
                raise ValueError(f"{name} has shape {tuple(c.shape)}, expected ({k}, {width})")
            if not c.is_floating_point() or not bool(torch.isfinite(c).all()):
                raise ValueError(f"{name} holds values that are not finite numbers")
            return c

        def history(value: Any, name: str) -> list[dict[str, Any]]:
            if not isinstance(value, list) or not all(isinstance(h, dict) for h in value):
                raise TypeError(f"{name} is not a list of records")
            return value

        run = integer(meta["run"], "run", 0, None if runs is None else runs - 1)
        iteration = integer(meta["iteration"], "iteration", 0, max_iter)
        if not isinstance(meta["stopped"], bool):
            raise TypeError(f"stopped is {meta['stopped']!r}, expected true or false")
        rng = tensors["rng_state"]
        if rng.dtype != torch.uint8 or rng.dim() != 1:
            raise ValueError("rng_state is not a generator state")
        best = None
        if meta.get("best") is not None:
            b = meta["best"]
            if not isinstance(b, dict):
                raise TypeError("best is not a record")
            inertia = b["inertia"]
            if isinstance(inertia, bool) or not isinstance(inertia, (int, float)):
                raise TypeError(f"best inertia is {inertia!r}, expected a number")
            best = BestRun(
                run=integer(b["run"], "best run", 0, run),
                centers=centers("best_centers"),
                inertia=float(inertia),
                n_iter=integer(b["n_iter"], "best n_iter", 0, max_iter),
                history=history(b["history"], "best history"),
                n_nonempty=integer(b["n_nonempty"], "best n_nonempty", 0, k),
            )
        extra = meta.get("extra", {})
        if not isinstance(extra, dict):
            raise TypeError("extra is not a record")
        return FitState(
            run=run,
            iteration=iteration,
            stopped=meta["stopped"],
            centers=centers("centers"),
            previous=centers("previous") if "previous" in tensors else None,
            history=history(meta["history"], "history"),
            rng_state=rng,
            best=best,
            extra=dict(extra),
        )

    def save(self, state: FitState) -> None:
        """Write ``state`` atomically (a temporary file renamed over the old checkpoint)."""
        from safetensors.torch import save_file

        from .io import atomic_path

        tensors = {
            "centers": state.centers.detach().cpu().contiguous(),
            "rng_state": state.rng_state.detach().cpu().contiguous(),
        }
        if state.previous is not None:
            tensors["previous"] = state.previous.detach().cpu().contiguous()
        best = None
        if state.best is not None:
            tensors["best_centers"] = state.best.centers.detach().cpu().contiguous()
            best = {
                "run": state.best.run,
                "inertia": state.best.inertia,
                "n_iter": state.best.n_iter,
                "history": state.best.history,
                "n_nonempty": state.best.n_nonempty,
            }
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "data": self.data,
            "run": state.run,
            "iteration": state.iteration,
            "stopped": state.stopped,
            "history": state.history,
            "best": best,
            "extra": state.extra,
        }
        with atomic_path(self.path) as tmp:
            save_file(tensors, str(tmp), metadata={"torchkmeans_checkpoint": json.dumps(meta)})

    def remove(self) -> None:
        """The fit is complete: the checkpoint is no longer needed (nor the temporary files
        of writes that were killed before their rename)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self.remove_strays()

    def remove_strays(self) -> None:
        """Temporary files a killed write left next to the checkpoint (see ``atomic_path``)."""
        folder = self.path.parent if str(self.path.parent) else Path(".")
        for stray in folder.glob(f".{self.path.name}.*.tmp{self.path.suffix}"):
            try:
                stray.unlink()
            except OSError:
                pass
