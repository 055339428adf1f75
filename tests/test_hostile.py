"""Files that carry more than data: crafted model files and checkpoints stay harmless.

Model files restore only a model's parameters (never where a later fit writes checkpoints,
which device it needs, or whether it joins a process group), every metadata field is checked
against a schema, and whatever the metadata holds, loading ends in a model or a ModelFileError.
Checkpoints are checked field by field against the fit that resumes them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from torchkmeans import CheckpointError, KMeans, ModelFileError

X = np.random.default_rng(0).normal(size=(200, 3))


def _rewrite(path, edit, key="torchkmeans"):
    """Rewrite the JSON metadata of a safetensors file with ``edit(meta) -> meta``."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()[key])
    tensors = load_file(str(path))
    save_file(tensors, str(path), metadata={key: json.dumps(edit(meta))})


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.safetensors"
    KMeans(3, random_state=0).fit(X).save(path)
    return path


def test_a_model_file_cannot_choose_where_a_later_fit_writes(model, tmp_path):
    target = tmp_path / "elsewhere" / "planted.ckpt"
    target.parent.mkdir()

    def plant(meta):
        meta["params"].update(checkpoint=str(target), distributed=True, device="cuda:7")
        return meta

    _rewrite(model, plant)
    km = KMeans.load(model)
    assert km.checkpoint is None and km.distributed is False and km.device is None
    km.fit(X)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_model_fitted_for_another_device_loads_on_the_cpu(model):
    _rewrite(model, lambda meta: {**meta, "params": {**meta["params"], "device": "cuda"}})
    km = KMeans.load(model)
    np.testing.assert_array_equal(km.predict(X), KMeans.load(model, device="cpu").predict(X))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: {k: v for k, v in m.items() if k != "n_clusters"}, "'n_clusters'"),
        (lambda m: {**m, "n_clusters": "3"}, "'n_clusters'"),
        (lambda m: {**m, "n_features_in": -1}, "'n_features_in'"),
        (lambda m: {**m, "params": []}, "'params'"),
        (lambda m: {**m, "history": "x"}, "'history'"),
        (lambda m: {**m, "feature_names_in": ["a"]}, "'feature_names_in'"),
        (lambda m: {**m, "dtype": "int8"}, "'dtype'"),
        (lambda m: {**m, "params": {**m["params"], "n_clusters": "three"}}, "n_clusters must"),
        (lambda m: {**m, "params": {**m["params"], "evil": 1}}, "unknown parameter 'evil'"),
        (lambda m: {**m, "params": {**m["params"], "init": {"a": 1}}}, "init"),
        (lambda m: {**m, "params": {**m["params"], "metric": "manhattan"}}, "metric must"),
    ],
)
def test_malformed_metadata_is_a_model_file_error(model, edit, match):
    _rewrite(model, edit)
    with pytest.raises(ModelFileError, match=match):
        KMeans.load(model)
    out = subprocess.run(
        [sys.executable, "-m", "torchkmeans", "info", str(model)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
_FIELDS = ["estimator", "params", "dtype", "container", "n_clusters", "n_features_in",
           "feature_names_in", "inertia", "n_iter", "history", "n_steps", "since_reassign"]  # fmt: skip
_PARAMS = ["n_clusters", "init", "n_init", "max_iter", "tol", "metric", "random_state", "dtype",
           "verbose", "chunk_size", "init_size", "algorithm", "copy_x"]  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(_FIELDS + [f"params.{p}" for p in _PARAMS]),
    value=_JSON,
)  # fmt: skip
def test_any_metadata_value_gives_a_model_or_a_model_file_error(tmp_path_factory, field, value):
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    KMeans(3, random_state=0).fit(X).save(path)

    def edit(meta):
        if field.startswith("params."):
            meta["params"][field.split(".", 1)[1]] = value
        else:
            meta[field] = value
        return meta

    _rewrite(path, edit)
    try:
        km = KMeans.load(path)
    except ModelFileError:
        return
    labels = km.predict(X)  # a model that loads works
    assert labels.shape == (200,) and set(np.unique(labels)) <= {0, 1, 2}


# ------------------------------------------------------------------------------ checkpoints


def _interrupted_checkpoint(tmp_path, **params):
    """A checkpoint left by a fit interrupted right after saving its first iteration."""
    from torchkmeans import _checkpoint

    path = tmp_path / "fit.ckpt"
    real = _checkpoint.Checkpoint.save

    def save_then_stop(self, state):
        real(self, state)
        if state.iteration >= 1:
            raise KeyboardInterrupt

    _checkpoint.Checkpoint.save = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            KMeans(3, checkpoint=path, tol=0.0, **params).fit(X)
    finally:
        _checkpoint.Checkpoint.save = real
    assert path.exists()
    return path


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: {**m, "run": 5},  # beyond n_init
        lambda m: {**m, "run": "0"},
        lambda m: {**m, "iteration": -1},
        lambda m: {**m, "iteration": 10**9},
        lambda m: {**m, "stopped": "no"},
        lambda m: {**m, "history": {"a": 1}},
        lambda m: {**m, "best": {"run": 0}},
        lambda m: {**m, "best": 3},
        lambda m: {k: v for k, v in m.items() if k != "run"},
    ],
)
def test_crafted_checkpoint_state_is_a_checkpoint_error(tmp_path, edit):
    path = _interrupted_checkpoint(tmp_path, random_state=0)
    _rewrite(path, edit, key="torchkmeans_checkpoint")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        KMeans(3, checkpoint=path, tol=0.0, random_state=0).fit(X)


def test_a_checkpoint_of_another_integer_seed_is_refused(tmp_path):
    path = _interrupted_checkpoint(tmp_path, random_state=np.int64(1))
    with pytest.raises(CheckpointError, match="random_state=1 .checkpoint. vs 2"):
        KMeans(3, checkpoint=path, tol=0.0, random_state=np.int64(2)).fit(X)
    km = KMeans(3, checkpoint=path, tol=0.0, random_state=np.int64(1)).fit(X)
    ref = KMeans(3, tol=0.0, random_state=1).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)


# ------------------------------------------------------------------------------ command line


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "torchkmeans", *map(str, args)],
        input=stdin, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_a_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    from torchkmeans.io import read_table

    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf1,2\n3,4\n5,6\n")
    assert read_table(str(path)).X.tolist() == [[1, 2], [3, 4], [5, 6]]
    path.write_bytes(b"\xef\xbb\xbfx,y\n3,4\n5,6\n")
    table = read_table(str(path))
    assert table.columns == ["x", "y"] and table.X.shape == (2, 2)


def test_csv_on_stdin_with_lone_carriage_returns(tmp_path):
    out = _cli(
        "fit", "-", "-k", "2", "-o", tmp_path / "m.safetensors", stdin="a,b\r1,2\r3,4\r9,9\r"
    )
    assert out.returncode == 0, out.stderr
    assert "fitted 2 clusters on 2 features" in out.stderr


def test_fit_writes_all_outputs_or_none(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("1,2\n3,4\n5,6\n7,9\n")
    model = tmp_path / "m.safetensors"
    ok = _cli("fit", data, "-k", "2", "-o", model, "--seed", "0")
    assert ok.returncode == 0, ok.stderr
    before = model.read_bytes()
    labels = tmp_path / "labels.npy"
    failed = _cli(
        "fit", data, "-k", "3", "-o", model, "--labels", labels, "--plot", tmp_path / "p.xyz"
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert model.read_bytes() == before  # the old model is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "m.safetensors"]


def test_errors_name_the_users_output_path_not_a_temporary_file(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("1,2\n3,4\n5,6\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = _cli("fit", data, "-k", "1", "-o", blocker / "m.safetensors")
    assert out.returncode == 1
    assert str(blocker / "m.safetensors") in out.stderr or str(blocker) in out.stderr
    assert ".tmp" not in out.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_n_init_is_a_usage_error(value, tmp_path):
    out = _cli("fit", tmp_path / "d.csv", "-k", "2", "--n-init", value)
    assert out.returncode == 2
    assert (
        "expected 'auto' or an integer >= 1" in out.stderr and "invalid literal" not in out.stderr
    )


# ------------------------------------------------------------------------------ magnitudes


@settings(max_examples=25, deadline=None)
@given(
    exponent=st.sampled_from([-100, -80, -30, 0, 30, 70, 100]),
    seed=st.integers(0, 2**16),
    init=st.sampled_from(["k-means++", "random", "k-means||"]),
)
def test_cosine_results_do_not_depend_on_row_norms(exponent, seed, init):
    """Spherical k-means sees directions only: scaling every row by a power of two (exact in
    floating point) gives the same fit bit for bit, even where the squared norms over- or
    underflow float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    ref = KMeans(3, metric="cosine", init=init, random_state=seed).fit(x)
    scale = np.float32(2.0**exponent)
    scaled = x * scale
    # Exact only while no entry becomes subnormal (then it loses bits and the directions move).
    assume(np.array_equal(scaled / scale, x))
    assert np.isfinite(scaled).all()
    km = KMeans(3, metric="cosine", init=init, random_state=seed).fit(scaled)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert km.inertia_ == ref.inertia_


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_cosine_seeding_does_not_depend_on_row_norms(init):
    """Scaling every row by 10 (not exact, but the same directions up to rounding) gives the
    same labels: the seeding measures distances to the candidates' directions."""
    from sklearn.datasets import make_blobs

    X = make_blobs(500, n_features=5, centers=6, random_state=0)[0]
    for seed in range(8):
        a = KMeans(6, metric="cosine", init=init, random_state=seed).fit(X)
        b = KMeans(6, metric="cosine", init=init, random_state=seed).fit(X * 10)
        np.testing.assert_array_equal(a.labels_, b.labels_)


@settings(max_examples=30, deadline=None)
@given(
    exponent=st.sampled_from([-110, -70, -40, 0, 40, 64, 70, 100]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_euclidean_fits_are_scale_equivariant_at_any_representable_scale(exponent, dtype, seed):
    """Data scaled by a power of two (exact) clusters the same, with finite results, even
    where its squared distances leave float32: they are computed in float64 then."""
    from sklearn.datasets import make_blobs

    X = make_blobs(300, n_features=3, centers=4, random_state=seed % 1000)[0].astype(dtype)
    ref = KMeans(4, random_state=seed).fit(X)
    Xs = X * dtype(2.0**exponent)
    km = KMeans(4, random_state=seed).fit(Xs)
    assert km.cluster_centers_.dtype == dtype and np.isfinite(km.cluster_centers_).all()
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_ * 2.0**exponent, rtol=1e-5)
    assert np.isfinite(km.inertia_)
    assert km.inertia_ == pytest.approx(ref.inertia_ * 4.0**exponent, rel=1e-4)
    np.testing.assert_array_equal(km.predict(Xs), km.labels_)
    assert -km.score(Xs) == pytest.approx(km.inertia_, rel=1e-12)


def test_explicit_centers_far_out_keep_labels_and_predict_in_agreement():
    X = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    init = np.vstack([X[:2], [[3e19, 3e19, 3e19]]]).astype(np.float32)
    km = KMeans(3, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert len(np.unique(km.labels_)) == 3 and np.isfinite(km.inertia_)


def test_out_of_range_magnitudes_are_clear_errors():
    from torchkmeans import DataError

    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(DataError, match="would overflow float64.*divide X by a constant"):
        KMeans(2).fit(X * 1e160)
    tiny = KMeans(2, random_state=0).fit(X * 1e-200)  # squares underflow: finite, no error
    assert np.isfinite(tiny.inertia_) and np.isfinite(tiny.cluster_centers_).all()
    with pytest.raises(DataError, match="float32 cannot hold.*dtype='float64'"):
        KMeans(2, dtype="float32").fit(X * 1e300)


@pytest.mark.parametrize("scale", [1e20, 1e-25])
def test_metrics_at_extreme_float32_magnitudes_equal_scikit_learns(scale):
    from sklearn import metrics as sk
    from sklearn.datasets import make_blobs

    from torchkmeans import metrics

    X, y = make_blobs(300, centers=3, random_state=0)
    Xs = (X * scale).astype(np.float32)
    X64 = Xs.astype(np.float64)
    assert metrics.calinski_harabasz_score(Xs, y) == pytest.approx(
        sk.calinski_harabasz_score(X64, y), rel=1e-6
    )
    assert metrics.silhouette_score(Xs, y) == pytest.approx(sk.silhouette_score(X64, y), rel=1e-6)


# ------------------------------------------------------------------------------ smaller ones


def test_inputs_that_are_not_data_are_clear_errors():
    import pandas as pd
    import torch

    from torchkmeans import DataError, UnsupportedInputError

    with pytest.raises(DataError, match="'meta' device"):
        KMeans(2).fit(torch.empty(10, 2, device="meta"))
    when = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": pd.to_datetime(["2020-01-01"] * 4)})
    with pytest.raises(UnsupportedInputError, match=r"date or time columns \(b\)"):
        KMeans(2).fit(when)
    with pytest.raises(UnsupportedInputError, match="dates or times"):
        KMeans(2).fit(np.array(["2020-01-01"] * 4, dtype="datetime64[D]").reshape(2, 2))
    na = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": pd.array([1, pd.NA, 3, 4], dtype="Int64")})
    with pytest.raises(DataError, match=r"missing values \(None or pd.NA\)"):
        KMeans(2).fit(na)
    with pytest.raises(DataError, match="a list of arrays is read as one array"):
        KMeans(2).fit(x for x in [np.zeros((5, 2))])


def test_a_killed_checkpoint_write_leaves_nothing_after_the_fit(tmp_path):
    ckpt = tmp_path / "fit.ckpt"
    stray = tmp_path / ".fit.ckpt.abc123.tmp.ckpt"  # what a write killed before rename leaves
    stray.write_bytes(b"partial")
    KMeans(3, checkpoint=ckpt, random_state=0).fit(X)
    assert list(tmp_path.iterdir()) == []


def test_a_forked_child_fits_on_one_thread_instead_of_hanging(tmp_path):
    """PyTorch's thread pool hangs in a forked child of a process that used it; the child
    runs on one thread, with a warning that says how to keep every core."""
    script = tmp_path / "fork.py"
    script.write_text(
        "import multiprocessing as mp, warnings\n"
        "import numpy as np, torch\n"
        "import torchkmeans as tk\n"
        "torch.set_num_threads(2)\n"
        "X = np.random.default_rng(0).normal(size=(100000, 40)).astype(np.float32)\n"
        "tk.KMeans(8, random_state=0).fit(X)\n"
        "torch.randn(500, 500) @ torch.randn(500, 500)\n"
        "def child(q):\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        km = tk.KMeans(8, random_state=0).fit(X[:20000])\n"
        "    q.put((km.inertia_, [str(m.message) for m in w]))\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('fork')\n"
        "    q = ctx.Queue()\n"
        "    p = ctx.Process(target=child, args=(q,))\n"
        "    p.start()\n"
        "    p.join(90)\n"
        "    assert not p.is_alive(), 'the forked child hangs'\n"
        "    inertia, messages = q.get()\n"
        "    assert any('forked process' in m and 'spawn' in m for m in messages), messages\n"
        "    print('ok', inertia)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")
