import torchkmeans


def test_all_is_pinned():
    assert torchkmeans.__all__ == [
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
