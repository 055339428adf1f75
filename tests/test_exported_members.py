import torchkmeans


def test_all_is_pinned():
    assert torchkmeans.__all__ == [
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


def test_every_exported_name_exists():
    for name in torchkmeans.__all__:
        assert hasattr(torchkmeans, name), name


def test_error_tree():
    from sklearn.exceptions import NotFittedError as SkNotFitted

    E = torchkmeans
    assert issubclass(E.DataError, E.TorchKMeansError) and issubclass(E.DataError, ValueError)
    assert issubclass(E.UnsupportedInputError, TypeError)
    assert issubclass(E.ParameterError, ValueError) and issubclass(E.ParameterError, TypeError)
    assert issubclass(E.NotFittedError, (ValueError)) and issubclass(
        E.NotFittedError, AttributeError
    )
    assert issubclass(E.NotFittedError, SkNotFitted)
    assert issubclass(E.ModelFileError, E.TorchKMeansError)


def _run_fresh(code):
    """Run ``code`` in a new interpreter that imports this checkout's torchkmeans."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(torchkmeans.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_and_version_do_not_import_torch():
    out = _run_fresh(
        "import sys, torchkmeans\n"
        "print(torchkmeans.__version__)\n"
        "print(sorted(m for m in ('torch', 'numpy', 'sklearn') if m in sys.modules))\n"
    )
    assert out.split("\n")[:2] == [torchkmeans.__version__, "[]"]


def test_public_names_resolve_on_first_use_in_a_fresh_interpreter():
    out = _run_fresh(
        "import torchkmeans\n"
        "from torchkmeans import KMeans\n"
        "from torchkmeans._estimator import KMeans as Defined\n"
        "assert KMeans is Defined and torchkmeans.KMeans is Defined\n"
        "from torchkmeans import *\n"
        "print(metrics.__name__, sweep_k.__module__, TorchKMeansError.__module__)\n"
    )
    assert out.split() == ["torchkmeans.metrics", "torchkmeans._sweep", "torchkmeans.exceptions"]


def test_lazy_names_are_the_defined_objects():
    from torchkmeans import _estimator, _functional, exceptions, metrics

    assert torchkmeans.KMeans is _estimator.KMeans
    assert torchkmeans.kmeans is _functional.kmeans
    assert torchkmeans.DataError is exceptions.DataError
    assert torchkmeans.metrics is metrics


def test_dir_and_unknown_names():
    import pytest

    assert set(torchkmeans.__all__) <= set(dir(torchkmeans))
    with pytest.raises(AttributeError, match="module 'torchkmeans' has no attribute 'KMean'"):
        torchkmeans.KMean  # noqa: B018
    assert not hasattr(torchkmeans, "_no_such_module")
