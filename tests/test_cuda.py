"""CUDA correctness: runs when a GPU is present, skips otherwise."""

import numpy as np
import pytest
import torch

from torchkmeans import KMeans, kmeans_plusplus

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _X(n=5000, d=16, k=8):
    from sklearn.datasets import make_blobs

    return make_blobs(n, n_features=d, centers=k, random_state=0)[0]


def test_cuda_matches_cpu_from_same_init():
    X = _X()
    init, _ = kmeans_plusplus(X, 8, random_state=0)
    cpu = KMeans(8, init=init).fit(X)
    gpu = KMeans(8, init=torch.tensor(init, device="cuda")).fit(torch.tensor(X, device="cuda"))
    assert gpu.cluster_centers_.device.type == "cuda"
    np.testing.assert_array_equal(gpu.labels_.cpu().numpy(), cpu.labels_)
    np.testing.assert_allclose(gpu.cluster_centers_.cpu().numpy(), cpu.cluster_centers_, rtol=1e-9)


def test_numpy_input_on_cuda_device_returns_numpy():
    X = _X().astype(np.float32)
    km = KMeans(8, random_state=0, device="cuda").fit(X)
    assert isinstance(km.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(km.predict(X), km.labels_)


def test_same_seed_same_centers_on_cpu_and_cuda():
    X = _X()
    a = kmeans_plusplus(X, 8, random_state=3)[1]
    b = kmeans_plusplus(torch.tensor(X, device="cuda"), 8, random_state=3)[1].cpu().numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_on_cuda(half):
    X = torch.tensor(_X(), device="cuda", dtype=half)
    km = KMeans(8, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == half
    assert torch.isfinite(km.cluster_centers_.float()).all()


def test_memmap_streams_to_cuda_through_pinned_buffers(tmp_path):
    X = _X(20_000).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    init = X[:8].copy()
    cpu = KMeans(8, init=init, chunk_size=1000).fit(X)
    gpu = KMeans(8, init=init, chunk_size=1000, device="cuda").fit(mm)  # streamed chunk by chunk
    assert isinstance(gpu.cluster_centers_, np.ndarray)
    assert (gpu.labels_ == cpu.labels_).mean() > 0.999
    np.testing.assert_allclose(gpu.cluster_centers_, cpu.cluster_centers_, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(gpu.predict(mm), gpu.labels_)


def test_loader_on_cuda_matches_cpu():
    from torch.utils.data import DataLoader, TensorDataset

    X = _X(6000)
    init = X[:8].copy()
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=500, pin_memory=True)
    cpu = KMeans(8, init=init).fit(X)
    gpu = KMeans(8, init=init, device="cuda").fit(loader)
    assert gpu.labels_.device.type == "cpu"  # tensors come back on the batches' device
    np.testing.assert_allclose(gpu.cluster_centers_.numpy(), cpu.cluster_centers_, rtol=1e-9)


def test_minibatch_on_cuda():
    from torchkmeans import MiniBatchKMeans

    X = torch.tensor(_X(), device="cuda")
    km = MiniBatchKMeans(8, random_state=0).fit(X)
    assert km.cluster_centers_.device.type == "cuda"
    assert torch.isfinite(km.cluster_centers_).all()


def test_triton_kernel_fit_equals_the_torch_engines_on_cuda(monkeypatch):
    pytest.importorskip("triton")
    X = torch.tensor(_X(20_000, 32, 50), dtype=torch.float32, device="cuda")
    init = X[:50].clone()
    monkeypatch.setenv("TORCHKMEANS_TRITON", "0")
    ref = KMeans(50, init=init, max_iter=20).fit(X)
    monkeypatch.setenv("TORCHKMEANS_TRITON", "1")
    got = KMeans(50, init=init, max_iter=20).fit(X)
    assert torch.equal(got.labels_, ref.labels_)
    torch.testing.assert_close(got.cluster_centers_, ref.cluster_centers_, rtol=0, atol=0)
    assert got.n_iter_ == ref.n_iter_


def test_batched_problems_on_cuda_equal_each_alone():
    from torchkmeans import kmeans, kmeans_batched

    X = torch.tensor(np.stack([_X(3000, 8, 5) for _ in range(3)]), device="cuda")
    got = kmeans_batched(X, 5, random_state=3)
    assert got.centers.device.type == "cuda" and got.labels.shape == (3, 3000)
    for b in range(3):
        alone = kmeans(X[b], 5, n_init=1, random_state=3 + b)
        assert torch.equal(got.labels[b], alone.labels)
        torch.testing.assert_close(got.centers[b], alone.centers, rtol=0, atol=0)
