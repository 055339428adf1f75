"""Scenarios run on every rank of a real gloo process group on 127.0.0.1 (see test_distributed.py).

Each rank writes what it saw to OUT/rank{r}.json (plain lists, so the parent can compare).
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

N, D, K = 3000, 5, 6


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(K, D))
    X = centers[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    w = rng.integers(1, 4, N).astype(np.float64)
    return X, w


def bounds(world: int) -> list[int]:
    """Uneven shards; with three ranks the middle one is empty."""
    if world == 1:
        return [0, N]
    if world == 2:
        return [0, 1900, N]
    return [0, 1700, 1700, N]


def init_centers() -> np.ndarray:
    X, _ = data()
    return X[[0, 500, 1000, 1500, 2000, 2500]].copy()


def user_init(X, k, random_state):  # noqa: ANN001 - a user's callable
    rows = random_state.permutation(len(X))[:k] if len(X) >= k else np.zeros(k, dtype=int)
    out = np.zeros((k, X.shape[1])) if len(X) < k else np.asarray(X)[rows]
    return out


def run(rank: int, world: int, port: int, out: str, scenario: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    torch.set_num_threads(1)
    from torchkmeans import KMeans

    X, w = data()
    b = bounds(world)
    lo, hi = b[rank], b[rank + 1]
    Xs, ws = X[lo:hi], w[lo:hi]
    result: dict[str, object] = {"rank": rank, "rows": [lo, hi]}

    def record(name: str, km: KMeans) -> None:
        result[name] = {
            "centers": np.asarray(km.cluster_centers_).tolist(),
            "labels": np.asarray(km.labels_).tolist(),
            "inertia": km.inertia_,
            "n_iter": km.n_iter_,
        }

    def failure(name: str, fn) -> None:  # noqa: ANN001
        try:
            fn()
            result[name] = {"raised": None}
        except Exception as exc:  # noqa: BLE001 - the test checks the type and message
            result[name] = {"raised": type(exc).__name__, "message": str(exc)}

    try:
        if scenario == "main":
            init = init_centers()
            record("same_init", KMeans(K, init=init, distributed=True).fit(Xs))
            record(
                "same_init_weighted",
                KMeans(K, init=init, distributed=True).fit(Xs, sample_weight=ws),
            )
            for name in ("k-means++", "random", "k-means||"):
                record(name, KMeans(K, init=name, random_state=3, distributed=True).fit(Xs))
            record("k-means++ again", KMeans(K, random_state=3, distributed=True).fit(Xs))
            record("callable", KMeans(K, init=user_init, random_state=3, distributed=True).fit(Xs))
            record(
                "tensor",
                KMeans(K, init=init, distributed=True).fit(torch.from_numpy(Xs)),
            )
            import scipy.sparse as sp

            record("sparse", KMeans(K, init=init, distributed=True).fit(sp.csr_matrix(Xs)))
            record(
                "sparse k-means++",
                KMeans(K, random_state=3, distributed=True).fit(sp.csr_matrix(Xs)),
            )
            if world > 1:
                # mixed containers: a DataLoader, a memmap slice, a tensor
                from torch.utils.data import DataLoader, TensorDataset

                if rank == 0:
                    shard = DataLoader(TensorDataset(torch.from_numpy(Xs)), batch_size=256)
                elif rank == 1:
                    path = Path(out) / "x.npy"
                    np.save(path, X)
                    shard = np.load(path, mmap_mode="r")[lo:hi]
                else:
                    shard = torch.from_numpy(Xs)
                km = KMeans(K, init=init, distributed=True).fit(shard)
                record("mixed", km)
            bad = Xs.copy()
            if rank == world - 1 and len(bad):
                bad[len(bad) // 2, 1] = np.nan
            failure("nan_on_last_rank", lambda: KMeans(K, distributed=True).fit(bad))
            wrong = Xs if rank != world - 1 else np.hstack([Xs, Xs[:, :1]])
            failure("features_on_last_rank", lambda: KMeans(K, distributed=True).fit(wrong))
            failure(
                "too_many_clusters",
                lambda: KMeans(N + 1, distributed=True).fit(Xs),
            )
            # checkpoint: every rank stops at the same reduction, rank 0's file resumes
            import torchkmeans._statistics as lloyd

            ckpt = Path(out) / "fit.ckpt"
            params = dict(n_clusters=K, init="random", n_init=2, tol=0.0, random_state=5)
            ref = KMeans(**params, distributed=True).fit(Xs)
            original = lloyd.LloydStats.reduce_
            calls = {"n": 0}

            class Stop(Exception):
                pass

            def reduce_then_stop(self, comm, failed=False):  # noqa: ANN001
                reduced = original(self, comm, failed)
                calls["n"] += 1
                if calls["n"] == 9:
                    raise Stop
                return reduced

            lloyd.LloydStats.reduce_ = reduce_then_stop
            try:
                KMeans(**params, checkpoint=ckpt, distributed=True).fit(Xs)
                stopped = False
            except Stop:
                stopped = True
            finally:
                lloyd.LloydStats.reduce_ = original
            dist.barrier()
            existed = ckpt.exists()
            resumed = KMeans(**params, checkpoint=ckpt, distributed=True).fit(Xs)
            result["checkpoint"] = {
                "stopped": stopped,
                "existed": existed,
                "same": bool(np.array_equal(resumed.cluster_centers_, ref.cluster_centers_)),
                "same_labels": bool(np.array_equal(resumed.labels_, ref.labels_)),
                "removed": not ckpt.exists(),
            }
        elif scenario == "agreement":
            import time

            last = world - 1
            failure(
                "other_n_clusters",
                lambda: KMeans(K + (rank == last), random_state=0, distributed=True).fit(Xs),
            )
            failure(
                "other_metric",
                lambda: KMeans(
                    K, metric="cosine" if rank == last else "euclidean", distributed=True
                ).fit(Xs),
            )

            class Flaky:
                """A loader whose pass number ``bad`` raises on the last rank only."""

                def __init__(self, bad: int) -> None:
                    self.passes, self.bad = 0, bad

                def __iter__(self):  # noqa: ANN204
                    self.passes += 1
                    if rank == last and self.passes == self.bad:
                        raise OSError("the shard's file went away")
                    for start in range(0, len(Xs), 500):
                        yield torch.from_numpy(Xs[start : start + 500])

            t0 = time.monotonic()
            for bad, name in ((2, "loader_fails_in_moments"), (3, "loader_fails_mid_fit")):
                failure(
                    name,
                    lambda bad=bad: KMeans(K, init=init_centers(), tol=0.0, distributed=True).fit(
                        Flaky(bad)
                    ),
                )
            result["loader_seconds"] = time.monotonic() - t0
        elif scenario == "minibatch":
            from torchkmeans import MiniBatchKMeans

            km = MiniBatchKMeans(K, random_state=0, batch_size=256, distributed=True).fit(Xs)
            record("minibatch", km)
    except Exception:  # noqa: BLE001 - reported to the parent
        result["error"] = traceback.format_exc()
    finally:
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
        dist.destroy_process_group()
