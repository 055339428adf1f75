"""The constants shared by the native kernels and Python, read from ``csrc/tk_constants.h``.

The header is the one place they are written; it ships with the package and is parsed here
once, at import, so the torch engine (which needs the pruning margin too) and the native
kernels can never disagree. A test checks that the loaded library reports the same ABI version.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER = Path(__file__).resolve().parent.parent / "csrc" / "tk_constants.h"
_DEFINE = re.compile(r"^#define\s+TK_([A-Z0-9_]+)\s+([-+0-9.eE]+)\s*$")


def _read(path: Path) -> dict[str, int | float]:
    values: dict[str, int | float] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        match = _DEFINE.match(line.strip())
        if match:
            name, literal = match.groups()
            is_int = re.fullmatch(r"[-+]?[0-9]+", literal) is not None
            values[name] = int(literal) if is_int else float(literal)
    return values


_VALUES = _read(HEADER)

ABI_VERSION = int(_VALUES["ABI_VERSION"])
PRUNE_MARGIN = float(_VALUES["PRUNE_MARGIN"])
EXACT_MAX_D = int(_VALUES["EXACT_MAX_D"])
STRIPE_ROWS = int(_VALUES["STRIPE_ROWS"])
HISTORY_FIELDS = int(_VALUES["HISTORY_FIELDS"])
MODE_ITERATE = int(_VALUES["MODE_ITERATE"])
MODE_FINISH = int(_VALUES["MODE_FINISH"])
MODE_ASSIGN = int(_VALUES["MODE_ASSIGN"])
STATUS_RAN = int(_VALUES["STATUS_RAN"])
STATUS_STOPPED = int(_VALUES["STATUS_STOPPED"])
STATUS_EMPTY = int(_VALUES["STATUS_EMPTY"])
ISA_AVX2_FMA = int(_VALUES["ISA_AVX2_FMA"])
LOOP_CALL = int(_VALUES["LOOP_CALL"])
BATCH_DONE = int(_VALUES["BATCH_DONE"])
BATCH_REFILL = int(_VALUES["BATCH_REFILL"])
BATCH_NO_MEMORY = int(_VALUES["BATCH_NO_MEMORY"])
