"""What ``verbose`` shows: scikit-learn's progress lines, on standard output.

Library code never prints otherwise. With ``verbose > 0`` (and on rank 0 of a distributed fit)
the estimators write the lines scikit-learn's write, word for word, so that scripts and tests
that read them keep working: "Initialization complete", "Iteration i, inertia x.",
"Converged at iteration i: strict convergence." or "...: center shift s within tolerance t.",
and for mini-batches "Minibatch step i/n: mean batch inertia: x, ewa inertia: y" and
"Converged (small centers change) ..." / "Converged (lack of improvement in inertia) ...".
The command line sends them to standard error.
"""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Writes the progress lines of one fit, or nothing when off."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def _say(self, line: str) -> None:
        if self.on:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def initialized(self) -> None:
        self._say("Initialization complete")

    def iteration(self, iteration: int, inertia: float) -> None:
        self._say(f"Iteration {iteration}, inertia {inertia}.")

    def run_finished(self, history: list[dict[str, Any]], tol: float) -> None:
        """Say why a run stopped, from its last recorded iteration (nothing after max_iter)."""
        if not self.on or not history:
            return
        last = history[-1]
        i = last["iteration"]
        if last["n_changed"] == 0 and last["n_relocated"] == 0:
            self._say(f"Converged at iteration {i}: strict convergence.")
        elif last["center_shift"] <= tol:
            self._say(
                f"Converged at iteration {i}: center shift {last['center_shift']} within "
                f"tolerance {tol}."
            )

    def minibatch_step(self, step: int, n_steps: int, inertia: float, ewa: float | None) -> None:
        self._say(
            f"Minibatch step {step}/{n_steps}: mean batch inertia: {inertia}, ewa inertia: {ewa}"
        )

    def minibatch_converged(self, reason: str, step: int, n_steps: int) -> None:
        self._say(f"Converged ({reason}) at step {step}/{n_steps}")
