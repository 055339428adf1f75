"""Data-parallel fits on real gloo process groups on 127.0.0.1 (world sizes 1, 2, 3)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from torchkmeans import DataError, KMeans, ParameterError

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
import dist_worker  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(world: int, scenario: str, out: Path) -> list[dict]:
    import torch.multiprocessing as mp

    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    mp.spawn(
        dist_worker.run,
        args=(world, free_port(), str(out), scenario),
        nprocs=world,
        join=True,
    )
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    for r in results:
        assert "error" not in r, r["error"]
    return results


@pytest.fixture(scope="module", params=[1, 2, 3])
def world(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"world{request.param}")
    return request.param, launch(request.param, "main", out)


def _single(**params):
    X, w = dist_worker.data()
    return X, w, params


def test_same_init_matches_single_process(world):
    size, results = world
    X, w = dist_worker.data()
    init = dist_worker.init_centers()
    for name, weights in (("same_init", None), ("same_init_weighted", w)):
        ref = KMeans(dist_worker.K, init=init).fit(X, sample_weight=weights)
        labels = np.concatenate([r[name]["labels"] for r in results])
        for r in results:
            np.testing.assert_allclose(r[name]["centers"], ref.cluster_centers_, rtol=1e-9)
            assert r[name]["centers"] == results[0][name]["centers"]  # identical on every rank
            assert r[name]["inertia"] == pytest.approx(ref.inertia_, rel=1e-9)
            assert r[name]["n_iter"] == ref.n_iter_
        assert np.array_equal(labels, ref.labels_)  # each rank has the labels of its rows
        assert [len(r[name]["labels"]) for r in results] == [
            r["rows"][1] - r["rows"][0] for r in results
        ]


@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||", "callable"])
def test_every_init_agrees_across_ranks_with_single_process_quality(world, init):
    size, results = world
    X, _ = dist_worker.data()
    for r in results:
        assert r[init]["centers"] == results[0][init]["centers"]
        assert r[init]["inertia"] == results[0][init]["inertia"]
    single = [
        KMeans(dist_worker.K, init="k-means++", random_state=s).fit(X).inertia_ for s in range(5)
    ]
    assert results[0][init]["inertia"] <= 1.5 * np.median(single)


def test_random_state_is_reproducible(world):
    _, results = world
    assert results[0]["k-means++"]["centers"] == results[0]["k-means++ again"]["centers"]


def test_tensor_and_mixed_containers(world):
    size, results = world
    X, _ = dist_worker.data()
    ref = KMeans(dist_worker.K, init=dist_worker.init_centers()).fit(X)
    np.testing.assert_allclose(results[0]["tensor"]["centers"], ref.cluster_centers_, rtol=1e-9)
    if size > 1:
        for r in results:
            np.testing.assert_allclose(r["mixed"]["centers"], ref.cluster_centers_, rtol=1e-9)


def test_sparse_shards(world):
    """scipy CSR shards (the middle one empty with three ranks) give the single-process fit."""
    _, results = world
    X, _ = dist_worker.data()
    ref = KMeans(dist_worker.K, init=dist_worker.init_centers()).fit(X)
    labels = np.concatenate([r["sparse"]["labels"] for r in results])
    for r in results:
        np.testing.assert_allclose(r["sparse"]["centers"], ref.cluster_centers_, rtol=1e-9)
        assert r["sparse"]["n_iter"] == ref.n_iter_
        assert r["sparse"]["inertia"] == pytest.approx(ref.inertia_, rel=1e-9)
    assert np.array_equal(labels, ref.labels_)
    # k-means++ over sparse shards draws what it draws over the dense shards
    for r in results:
        assert r["sparse k-means++"]["labels"] == r["k-means++"]["labels"]
        np.testing.assert_allclose(
            r["sparse k-means++"]["centers"], r["k-means++"]["centers"], rtol=1e-9
        )


def test_bad_data_on_one_rank_fails_every_rank(world):
    size, results = world
    last = size - 1
    cases = [("nan_on_last_rank", "NaN")]
    if size > 1:  # alone, the extra column is not a mismatch
        cases.append(("features_on_last_rank", "features"))
    for name, what in cases:
        for r in results:
            assert r[name]["raised"] == "DataError", r[name]
            assert what in r[name]["message"]
            if r["rank"] != last:
                assert f"rank {last}" in r[name]["message"]
    for r in results:
        assert r["too_many_clusters"]["raised"] == "DataError"
        assert "n_samples=3000" in r["too_many_clusters"]["message"]


def test_checkpoint_of_rank_zero_resumes_a_stopped_fit(world):
    _, results = world
    for r in results:
        c = r["checkpoint"]
        assert c["stopped"] and c["existed"]
        assert c["same"] and c["same_labels"] and c["removed"]


def test_distributed_needs_a_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    with pytest.raises(ParameterError, match="init_process_group"):
        KMeans(2, distributed=True).fit(np.random.rand(10, 2))


def test_kmeans_parallel_init_on_one_process():
    X, _ = dist_worker.data()
    km = KMeans(dist_worker.K, init="k-means||", random_state=0).fit(X)
    again = KMeans(dist_worker.K, init="k-means||", random_state=0).fit(X)
    assert np.array_equal(km.cluster_centers_, again.cluster_centers_)
    ref = KMeans(dist_worker.K, random_state=0).fit(X)
    assert km.inertia_ <= 1.05 * ref.inertia_
    with pytest.raises(DataError):
        KMeans(3, init="k-means||").fit(np.full((10, 2), np.nan))


def _torchrun(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_under_torchrun(tmp_path):
    X, _ = dist_worker.data()
    np.save(tmp_path / "x.npy", X)
    out = _torchrun(
        [
            "-m",
            "torchkmeans",
            "fit",
            "x.npy",
            "-k",
            "6",
            "-o",
            "m.safetensors",
            "--distributed",
            "--seed",
            "0",
            "--labels",
            "labels.npy",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    km = KMeans.load(tmp_path / "m.safetensors")
    ref = KMeans(6, random_state=0).fit(X)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=0.05)
    labels = np.load(tmp_path / "labels.npy")
    assert labels.shape == (len(X),)
    assert np.array_equal(labels, km.predict(X))
    assert out.stderr.count("fitted 6 clusters") == 1  # logs from rank 0 only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npy", "m.safetensors", "x.npy"]


def test_a_dying_rank_ends_the_job(tmp_path):
    script = tmp_path / "die.py"
    script.write_text(
        "import os, numpy as np, torch.distributed as dist\n"
        "import torchkmeans\n"
        "dist.init_process_group('gloo')\n"
        "import torchkmeans._statistics as L\n"
        "orig = L.LloydStats.reduce_\n"
        "def reduce_(self, comm, failed=False):\n"
        "    if dist.get_rank() == 1:\n"
        "        os._exit(3)\n"
        "    return orig(self, comm, failed)\n"
        "L.LloydStats.reduce_ = reduce_\n"
        "X = np.random.default_rng(dist.get_rank()).random((1000, 3))\n"
        "torchkmeans.KMeans(4, random_state=0, distributed=True).fit(X)\n"
    )
    t = time.monotonic()
    out = _torchrun([str(script)], tmp_path, timeout=180)
    assert out.returncode != 0
    assert time.monotonic() - t < 170


def test_ranks_agree_on_parameters_and_a_failing_loader_stops_every_rank(tmp_path):
    results = launch(2, "agreement", tmp_path)
    for r in results:
        for name, what in (("other_n_clusters", "n_clusters=7 on rank 1 but 6 on rank 0"),
                           ("other_metric", "metric='cosine' on rank 1")):  # fmt: skip
            assert r[name]["raised"] == "ParameterError", r[name]
            assert what in r[name]["message"]
        for name in ("loader_fails_in_moments", "loader_fails_mid_fit"):
            failed = r[name]
            if r["rank"] == 1:
                assert failed["raised"] == "OSError" and "went away" in failed["message"]
            else:
                assert failed["raised"] == "DataError", failed
                assert "other rank(s) failed" in failed["message"]
        assert r["loader_seconds"] < 30  # not the process group's timeout


def test_minibatch_distributed(tmp_path):
    results = launch(2, "minibatch", tmp_path)
    assert results[0]["minibatch"]["centers"] == results[1]["minibatch"]["centers"]
    assert results[0]["minibatch"]["inertia"] == results[1]["minibatch"]["inertia"]
    X, _ = dist_worker.data()
    from torchkmeans import MiniBatchKMeans

    single = MiniBatchKMeans(dist_worker.K, random_state=0, batch_size=256).fit(X)
    assert results[0]["minibatch"]["inertia"] <= 1.05 * single.inertia_
    labels = np.concatenate([r["minibatch"]["labels"] for r in results])
    assert labels.shape == (len(X),)
