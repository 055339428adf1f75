import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run, so a gate never turns on a lucky draw;
# HYPOTHESIS_PROFILE=explore draws new ones (and remembers failures) when hunting for bugs.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every numeric test runs on the CPU and, when present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture
def blobs():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=600, n_features=4, centers=5, cluster_std=0.8, random_state=7)
    return X, y


def to_numpy(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)
