"""The memory contract, measured in a fresh subprocess: the extra peak resident memory of a fit
(and of predict, transform and k-means++) is at most 64 MB + 10% of the data size, not
counting the arrays the call returns (labels, the n_samples x K distances of transform)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from probe import run_probe  # noqa: E402

MB = 1 << 20

if not Path("/proc/self/clear_refs").exists():  # pragma: no cover - Linux only
    pytest.skip("needs Linux /proc to reset the peak RSS", allow_module_level=True)


@pytest.mark.parametrize(
    "n,d,k,dtype,mode",
    [
        (400_000, 32, 64, "float32", "fit"),
        (1_000_000, 2, 16, "float32", "fit"),
        (100_000, 128, 32, "float64", "fit"),
        (400_000, 32, 64, "float32", "predict"),
        (400_000, 32, 64, "float32", "transform"),
        (400_000, 32, 64, "float32", "plusplus"),
        (1_000_000, 2, 16, "float32", "plusplus"),
    ],
)
def test_extra_peak_memory_is_bounded(n, d, k, dtype, mode):
    r = run_probe("memory_probe.py", n, d, k, dtype, mode)
    budget = 64 * MB + 0.10 * r["data"]
    extra = r["extra"] - r["kept"]
    assert extra <= budget, f"{mode}: extra {extra / MB:.1f} MB > budget {budget / MB:.1f} MB"
