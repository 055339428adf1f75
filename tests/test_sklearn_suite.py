"""scikit-learn's own k-means tests, run against torchkmeans.

``sklearn/cluster/tests/test_k_means.py`` and ``test_bisect_k_means.py`` are copied from the
installed scikit-learn at test time (never committed), their imports of the estimators swapped
for ours and nothing else changed, and run in a subprocess. Every case must pass except those
listed in ``sklearn_suite/expected_failures.txt`` (each with its reason); a listed case that
passes is reported too, so the list cannot go stale.

``python tests/test_sklearn_suite.py`` prints the outcome of every case (for updating the list).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "sklearn_suite" / "expected_failures.txt"
# Per file, the estimators' imports, scikit-learn's -> ours (the only change made).
SWAPS = {
    "test_k_means.py": (
        "from sklearn.cluster import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus",
        "from torchkmeans import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus",
    ),
    "test_bisect_k_means.py": (
        "from sklearn.cluster import BisectingKMeans",
        "from torchkmeans import BisectingKMeans",
    ),
}


def sklearn_version() -> str:
    import sklearn

    return ".".join(sklearn.__version__.split(".")[:2])


def copy_suite(folder: Path) -> list[Path]:
    """The test files of the installed scikit-learn, with our estimators swapped in."""
    import sklearn

    source = Path(sklearn.__file__).parent / "cluster" / "tests"
    copies = []
    for name, (theirs, ours) in SWAPS.items():
        text = (source / name).read_text()
        assert theirs in text, f"{name}: the import {theirs!r} moved; update SWAPS"
        text = text.replace(theirs, ours)
        path = folder / name
        path.write_text(text)
        copies.append(path)
    # scikit-learn's fixtures (global_random_seed, global_dtype) come from its conftest
    (folder / "conftest.py").write_text("from sklearn.conftest import *  # noqa: F401,F403\n")
    return copies


def run_suite(folder: Path, timeout: float = 1200) -> dict[str, str]:
    """Outcome of every case: test id -> passed | failed | error | skipped."""
    copies = copy_suite(folder)
    report = folder / "report.xml"
    # float32 variants too (scikit-learn skips them unless asked, as its own CI asks)
    env = dict(os.environ, PYTHONHASHSEED="0", SKLEARN_RUN_FLOAT32_TESTS="1")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--continue-on-collection-errors",
         f"--junitxml={report}", "-o", "junit_family=xunit1", *map(str, copies)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = f"{module}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "error" in kinds:
            outcomes[name] = "error"
        elif "failure" in kinds:
            outcomes[name] = "failed"
        elif "skipped" in kinds:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes


def expected_failures() -> dict[str, str]:
    """Listed case -> reason (``id  # reason`` lines; ``#`` lines are comments)."""
    listed = {}
    for line in EXPECTED.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        case, _, reason = line.partition("#")
        listed[case.strip()] = reason.strip()
    return listed


def _listed_version() -> str | None:
    match = re.search(r"scikit-learn (\d+\.\d+)", EXPECTED.read_text())
    return match.group(1) if match else None


@pytest.mark.slow
def test_scikit_learn_k_means_suite_passes_except_the_listed_cases(tmp_path):
    if _listed_version() != sklearn_version():
        pytest.skip(
            f"the expected failures are listed for scikit-learn {_listed_version()}, "
            f"this is {sklearn_version()}"
        )
    outcomes = run_suite(tmp_path)
    assert len(outcomes) > 250, f"only {len(outcomes)} cases collected"
    listed = expected_failures()
    bad = {case for case, outcome in outcomes.items() if outcome in ("failed", "error")}
    unexpected = sorted(bad - set(listed))
    fixed = sorted(set(listed) - bad)
    passed = sum(outcome == "passed" for outcome in outcomes.values())
    assert not unexpected, f"{len(unexpected)} unexpected failures: {unexpected[:20]}"
    assert not fixed, f"{len(fixed)} listed cases pass now; remove them from the list: {fixed}"
    assert all(listed.values()), "every expected failure needs its reason"
    skipped = sorted(case for case, outcome in outcomes.items() if outcome == "skipped")
    assert not skipped, f"{len(skipped)} cases skipped (every case should run): {skipped[:20]}"
    assert passed + len(bad) == len(outcomes)


if __name__ == "__main__":  # print every outcome, for maintaining the list
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        results = run_suite(Path(folder))
    for case, outcome in sorted(results.items()):
        print(f"{outcome:8s} {case}")
    counts = {o: sum(v == o for v in results.values()) for o in set(results.values())}
    print(f"scikit-learn {sklearn_version()}: {len(results)} cases, {counts}")
