"""The fused Triton assignment kernel (torchkmeans._engines.triton_assign) against torch.

Without a CUDA device the kernel runs under Triton's interpreter (TRITON_INTERPRET=1, set here
before Triton is imported), on CPU tensors, at small and awkward shapes: N, K and D that are not
multiples of the tiles, D from 1 to 15, exact ties and duplicate centers, B > 1, non-contiguous
inputs, fp16 and bf16 rows.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Without CUDA, Triton runs the kernel in its interpreter; the setting must precede the first
# import of Triton (its own library is compiled or interpreted from then on). Restored after
# this module (see the fixture below).
_INTERPRET_BEFORE = os.environ.get("TRITON_INTERPRET")
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from torchkmeans import KMeans  # noqa: E402
from torchkmeans._distance import PreparedCenters, assign, prepare_rows  # noqa: E402
from torchkmeans._engines import triton_assign as ta  # noqa: E402
from torchkmeans._engines.dispatch import TRITON_ENV, triton_assignment  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def restore_the_interpreter_setting():
    yield
    if _INTERPRET_BEFORE is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _INTERPRET_BEFORE


def reference(x, c, c_sq):
    """Best, label (lowest index among equal scores) and runner-up, from the full scores in
    float64 of the same (upcast) values."""
    x64, c64 = x.to(torch.float64), c.to(torch.float64)
    prod = x64 @ c64.transpose(-1, -2)
    scores = -prod if c_sq is None else c_sq.to(torch.float64)[..., None, :] - 2 * prod
    best, label = scores.min(dim=-1)
    rest = scores.scatter(-1, label[..., None], float("inf"))
    return best, label, rest.amin(dim=-1)


def check(x, c, c_sq):
    best, label, second = ta.assign_scores(x, c, c_sq)
    want_best, want_label, want_second = reference(x, c, c_sq)
    assert best.dtype == torch.float32 and label.dtype == torch.int64
    scale = 1.0 + float(x.to(torch.float64).abs().max()) ** 2 + float(c.abs().max()) ** 2
    tol = 1e-5 * scale * max(1, x.shape[-1])
    gap = (want_second - want_best).cpu()
    clear = gap > 2 * tol  # rows whose best is clear of rounding
    assert torch.equal(label.cpu()[clear], want_label.cpu()[clear])
    torch.testing.assert_close(best.to(torch.float64).cpu(), want_best.cpu(), rtol=0, atol=tol)
    torch.testing.assert_close(second.to(torch.float64).cpu(), want_second.cpu(), rtol=0, atol=tol)
    return label


@pytest.mark.parametrize("n, k, d", [(1, 2, 1), (7, 3, 2), (65, 17, 5), (130, 70, 15), (33, 5, 33)])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_scores_labels_and_runner_up_at_awkward_shapes(n, k, d, metric):
    g = torch.Generator().manual_seed(n * 100 + k + d)
    x = torch.randn(n, d, generator=g).to(DEVICE)
    c = torch.randn(k, d, generator=g).to(DEVICE)
    c_sq = None if metric == "cosine" else (c * c).sum(dim=1)
    check(x, c, c_sq)


@pytest.mark.parametrize("d", range(1, 16))
def test_every_small_dimension(d):
    g = torch.Generator().manual_seed(d)
    x, c = torch.randn(40, d, generator=g), torch.randn(9, d, generator=g)
    check(x.to(DEVICE), c.to(DEVICE), (c * c).sum(dim=1).to(DEVICE))


def test_ties_go_to_the_lowest_index_and_show_as_runner_up():
    c = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 4.0]], device=DEVICE)
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 2.0], [5.0, 5.0]], device=DEVICE)
    best, label, second = ta.assign_scores(x, c, (c * c).sum(dim=1))
    assert label.tolist() == [0, 1, 0, 3]  # (1, 0): 0 and 1 tie; (2, 0): duplicates 1 and 2
    assert float(second[0]) == float(best[0]) and float(second[1]) == float(best[1])
    assert float(second[2]) == float(best[2])  # (0, 2): equidistant from 0 and 3


def test_tiles_of_centers_keep_the_first_of_equal_scores():
    # the same center in two tiles of centers (64 wide): the earlier copy wins
    g = torch.Generator().manual_seed(1)
    c = torch.randn(150, 4, generator=g)
    c[130] = c[5]
    x = c[5:6] + 0.0
    _, label, second = ta.assign_scores(x.to(DEVICE), c.to(DEVICE), (c * c).sum(1).to(DEVICE))
    assert int(label[0]) == 5
    assert float(second[0]) == pytest.approx(float(-(c[5] * c[5]).sum()), abs=1e-5)


def test_batched_problems_and_non_contiguous_inputs():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 50, 12, generator=g).transpose(1, 2).contiguous().transpose(1, 2)
    c = torch.randn(3, 24, 6, generator=g)[:, ::2, :]  # every other center (strided)
    x = x[:, :, ::2]  # every other feature: 6 features, stride 2
    assert not x.is_contiguous() and not c.is_contiguous()
    c_sq = (c * c).sum(dim=2)
    labels = check(x.to(DEVICE), c.to(DEVICE), c_sq.to(DEVICE))
    for b in range(3):  # each problem as a single one
        _, alone, _ = ta.assign_scores(x[b].to(DEVICE), c[b].to(DEVICE), c_sq[b].to(DEVICE))
        assert torch.equal(alone, labels[b])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rows_accumulate_in_fp32(dtype):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(90, 20, generator=g) * 300).to(dtype)  # norms beyond fp16's 65,504
    c = (torch.randn(11, 20, generator=g) * 300).to(dtype)
    c_sq = (c.to(torch.float32) ** 2).sum(dim=1)
    assert bool((c_sq > 65504).any())
    best, _, _ = ta.assign_scores(x.to(DEVICE), c.to(DEVICE), c_sq.to(DEVICE))
    assert bool(torch.isfinite(best).all())
    check(x.to(DEVICE), c.to(DEVICE), c_sq.to(DEVICE))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_the_engine_assignment_equals_the_torch_path(metric, monkeypatch):
    g = torch.Generator().manual_seed(4)
    centers = torch.randn(13, 7, generator=g)
    x = torch.cat([torch.randn(200, 7, generator=g), centers[:5], centers[:3] * 0.5])
    centers[9] = centers[2]  # a duplicate center: rows there tie
    pc = PreparedCenters(centers.to(DEVICE), metric, None)
    xs = prepare_rows(x.to(DEVICE), metric, pc.shift)
    monkeypatch.setenv(TRITON_ENV, "0")
    want_labels, want_dist = assign(xs, pc)
    monkeypatch.setenv(TRITON_ENV, "1")
    assert triton_assignment(xs)
    labels, dist = assign(xs, pc)
    assert torch.equal(labels, want_labels)
    assert torch.equal(dist, want_dist)  # the distance to the chosen center is exact either way


def test_a_fit_with_the_kernel_is_the_torch_engines_fit(monkeypatch):
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(400, 5)) + rng.integers(0, 4, size=(400, 1)) * 6).astype(np.float32)
    monkeypatch.setenv("TORCHKMEANS_NATIVE", "0")  # the torch engine, whose assignment it replaces
    monkeypatch.setenv(TRITON_ENV, "0")
    ref = KMeans(4, random_state=0, device=DEVICE).fit(X)
    monkeypatch.setenv(TRITON_ENV, "1")
    launches = []
    real = ta.assign_scores
    monkeypatch.setattr(ta, "assign_scores", lambda *a: launches.append(1) or real(*a))
    got = KMeans(4, random_state=0, device=DEVICE).fit(X)
    assert launches  # the kernel ran
    np.testing.assert_array_equal(got.labels_, ref.labels_)
    np.testing.assert_array_equal(got.cluster_centers_, ref.cluster_centers_)
    assert got.n_iter_ == ref.n_iter_


def test_off_unless_asked(monkeypatch):
    monkeypatch.delenv(TRITON_ENV, raising=False)
    assert not triton_assignment(torch.zeros(2, 2, device=DEVICE))
    monkeypatch.setenv(TRITON_ENV, "1")
    assert not triton_assignment(torch.zeros(2, 2, dtype=torch.float64, device=DEVICE))
