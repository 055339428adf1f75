"""The command line: demo (the main job), usage errors, python -m."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torchkmeans
from torchkmeans.cli import main

HEAVY = ("torch", "numpy", "sklearn")


def _env():
    """The environment of a child interpreter that imports this checkout's torchkmeans."""
    src = str(Path(torchkmeans.__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))


def _main_in_fresh_interpreter(*argv):
    """``main(argv)`` in a new interpreter; returns (exit code, stdout, the heavy modules that
    were imported)."""
    code = (
        "import sys\n"
        "from torchkmeans.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('imported:', ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    imported = out.stderr.strip().splitlines()[-1]
    assert imported.startswith("imported:"), out.stderr
    return out.returncode, out.stdout, [m for m in imported[9:].strip().split(",") if m]


def test_demo_prints_summary_and_writes_plot(tmp_path, capsys):
    out = tmp_path / "clusters.png"
    assert main(["demo", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cluster sizes: 75, 75, 75, 75" in text
    assert "inertia: 212.0060" in text
    assert "iterations:" in text and "time:" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["clusters.png"]


def test_demo_no_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-plot"]) == 0
    assert not (tmp_path / "clusters.png").exists()


def test_demo_bad_output_folder_is_one_line_error(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path / "missing" / "x.png")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--nonsense"])
    assert info.value.code == 2
    assert main([]) == 2


def test_python_dash_m(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "torchkmeans", "demo", "--no-plot"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "cluster sizes" in out.stdout


def test_plot_clusters_draws_points_and_red_centers():
    pytest.importorskip("matplotlib")
    from torchkmeans.plot import plot_clusters

    X = np.random.RandomState(0).rand(50, 5)
    labels = np.arange(50) % 3
    centers = np.stack([X[labels == j].mean(0) for j in range(3)])
    fig, ax = plot_clusters(X, labels, centers)
    points, marks = ax.collections
    assert points.get_offsets().shape == (50, 2)
    assert marks.get_offsets().shape == (3, 2)
    assert tuple(marks.get_facecolor()[0][:3]) == (1.0, 0.0, 0.0)
    assert "principal component" in ax.get_xlabel()


# ------------------------------------------------------------------------- fit / predict / info


@pytest.fixture
def data_dir(tmp_path):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(400, n_features=3, centers=4, random_state=0)
    np.save(tmp_path / "d.npy", X)
    np.savez(tmp_path / "d.npz", train=X, other=X[:10])
    np.savetxt(tmp_path / "d.csv", X, delimiter=",", header="a,b,c", comments="")
    np.savetxt(tmp_path / "noheader.csv", X, delimiter=",")
    np.savetxt(tmp_path / "d.tsv", X, delimiter="\t", header="a\tb\tc", comments="")
    import torch

    torch.save(torch.tensor(X), tmp_path / "d.pt")
    return tmp_path, X


def _fit_ref(X):
    from torchkmeans import KMeans

    return KMeans(4, random_state=0).fit(X)


@pytest.mark.parametrize(
    "name,extra",
    [
        ("d.npy", []),
        ("d.npz", ["--key", "train"]),
        ("d.csv", []),
        ("noheader.csv", []),
        ("d.tsv", []),
        ("d.pt", []),
    ],
)
def test_fit_every_format(data_dir, name, extra, capsys):
    folder, X = data_dir
    model = folder / "m.safetensors"
    labels = folder / "labels.npy"
    code = main(
        [
            "fit",
            str(folder / name),
            "-k",
            "4",
            "--seed",
            "0",
            "-o",
            str(model),
            "--labels",
            str(labels),
            *extra,
        ]
    )
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(labels), _fit_ref(X).labels_)


def test_fit_predict_info_round_trip(data_dir, capsys):
    folder, X = data_dir
    model, png = folder / "m.safetensors", folder / "p.png"
    assert (
        main(
            [
                "fit",
                str(folder / "d.csv"),
                "-k",
                "4",
                "--seed",
                "0",
                "-o",
                str(model),
                "--plot",
                str(png),
            ]
        )
        == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["predict", str(model), str(folder / "d.csv")]) == 0
    printed = np.array(capsys.readouterr().out.split(), dtype=int)
    np.testing.assert_array_equal(printed, _fit_ref(X).labels_)
    for suffix in (".npy", ".csv", ".txt"):
        out = folder / f"labels{suffix}"
        assert main(["predict", str(model), str(folder / "d.npy"), "-o", str(out)]) == 0
        got = (
            np.load(out)
            if suffix == ".npy"
            else np.loadtxt(out, skiprows=1 if suffix == ".csv" else 0)
        )
        np.testing.assert_array_equal(got, printed)
    assert main(["info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "n_clusters: 4" in info and "n_features: 3" in info and "feature names: a, b, c" in info
    assert "inertia:" in info and "torchkmeans 0.1.0" in info


def test_fit_options_and_columns(data_dir, capsys):
    folder, X = data_dir
    model = folder / "m.safetensors"
    args = [
        "fit",
        str(folder / "d.csv"),
        "-k",
        "3",
        "-o",
        str(model),
        "--columns",
        "a,c",
        "--init",
        "random",
        "--n-init",
        "2",
        "--max-iter",
        "50",
        "--tol",
        "1e-3",
        "--metric",
        "cosine",
        "--dtype",
        "float32",
        "--seed",
        "1",
        "-q",
    ]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    from torchkmeans import KMeans

    km = KMeans.load(model)
    assert km.n_features_in_ == 2 and list(km.feature_names_in_) == ["a", "c"]
    assert km.metric == "cosine" and km.cluster_centers_.dtype == np.float32 and km.max_iter == 50


def test_verbose_progress_on_stderr(data_dir, capsys):
    folder, _ = data_dir
    assert (
        main(
            [
                "fit",
                str(folder / "d.npy"),
                "-k",
                "4",
                "-o",
                str(folder / "m.safetensors"),
                "--verbose",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "Initialization complete" in err and "Iteration 1, inertia" in err


def test_stdin_csv(data_dir):
    folder, X = data_dir
    text = (folder / "d.csv").read_text()
    model = folder / "s.safetensors"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torchkmeans",
            "fit",
            "-",
            "-k",
            "4",
            "--seed",
            "0",
            "-o",
            str(model),
            "-q",
        ],
        input=text,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert model.exists()


def _err_case(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_error_paths_are_one_line(data_dir, capsys):
    folder, X = data_dir
    model = folder / "m.safetensors"
    assert main(["fit", str(folder / "d.npy"), "-k", "4", "-o", str(model), "-q"]) == 0
    (folder / "text.csv").write_text("a,b\n1,2\n3,oops\n")
    nan = X.copy()
    nan[5, 1] = np.nan
    np.save(folder / "nan.npy", nan)
    np.save(folder / "two.npy", X[:, :2])
    (folder / "bad.safetensors").write_bytes(b"not a model")
    (folder / "bad.npy").write_bytes(b"garbage")
    (folder / "x.xyz").write_text("1,2")
    cases = [
        (["fit", str(folder / "missing.csv"), "-k", "2"], "missing.csv: no such file"),
        (["fit", str(folder / "bad.npy"), "-k", "2"], "bad.npy: could not be read"),
        (["fit", str(folder / "x.xyz"), "-k", "2"], "unknown file type"),
        (
            ["fit", str(folder / "text.csv"), "-k", "2"],
            "line 3, column 'b': 'oops' is not a number",
        ),
        (["fit", str(folder / "nan.npy"), "-k", "2"], "nan.npy.*NaN"),
        (["fit", str(folder / "d.npz"), "-k", "2"], "pick one with --key"),
        (["fit", str(folder / "d.npy"), "-k", "0"], "n_clusters"),
        (["fit", str(folder / "d.csv"), "-k", "2", "--columns", "zz"], "no column 'zz'"),
        (
            ["predict", str(model), str(folder / "two.npy")],
            "two.npy: X has 2 features, but KMeans is expecting 3",
        ),
        (["predict", str(folder / "bad.safetensors"), str(folder / "d.npy")], "bad.safetensors"),
        (
            ["predict", str(folder / "nomodel.safetensors"), str(folder / "d.npy")],
            "no such model file",
        ),
        (["info", str(folder / "bad.safetensors")], "bad.safetensors"),
        (
            ["fit", str(folder / "d.npy"), "-k", "2", "-o", str(folder / "no" / "m.safetensors")],
            "does not exist",
        ),
    ]
    import re

    for argv, pattern in cases:
        err = _err_case(capsys, argv)
        assert re.search(pattern, err), (argv, err)


def test_failed_fit_leaves_no_output(data_dir, capsys):
    folder, X = data_dir
    nan = X.copy()
    nan[0, 0] = np.inf
    np.save(folder / "inf.npy", nan)
    before = set(folder.iterdir())
    assert (
        main(
            [
                "fit",
                str(folder / "inf.npy"),
                "-k",
                "2",
                "-o",
                str(folder / "new.safetensors"),
                "--labels",
                str(folder / "new.npy"),
            ]
        )
        == 1
    )
    assert set(folder.iterdir()) == before


def test_debug_shows_traceback(data_dir):
    folder, _ = data_dir
    with pytest.raises(ValueError, match="no such file"):
        main(["--debug", "fit", str(folder / "missing.csv"), "-k", "2"])


def test_help_does_not_import_the_library():
    """``python -m torchkmeans --help`` imports neither torch nor numpy nor scikit-learn."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "torchkmeans", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "usage: torchkmeans" in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "torchkmeans.cli" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("command", ["fit", "predict", "info", "demo", "sweep"])
def test_subcommand_help_does_not_import_the_library(command):
    code, out, heavy = _main_in_fresh_interpreter(command, "--help")
    assert code == 0 and f"usage: torchkmeans {command}" in out
    assert heavy == []


def test_version_prints_the_configuration_without_importing_the_library():
    from torchkmeans._engines import _library

    code, out, heavy = _main_in_fresh_interpreter("--version")
    assert code == 0 and heavy == []
    lines = out.splitlines()
    assert lines[0] == f"torchkmeans {torchkmeans.__version__}"
    rows = [" ".join(line.split()) for line in lines]
    status = _library.status()
    engine = (
        f"cpu: native, {status.variant} kernels ({status.reason})"
        if status.library is not None
        else f"cpu: torch ({status.reason})"
    )
    assert engine in rows
    for heading in ("versions:", "engines:", "threads:", "cuda:"):
        assert heading in lines
    assert any(row.startswith("torch: ") for row in rows)
    assert lines[-1].endswith("run `python -c 'import torchkmeans; torchkmeans.show_config()'`")


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"torchkmeans {torchkmeans.__version__}\nversions:\n")


def test_subcommand_help(capsys):
    for cmd in ("fit", "predict", "info", "demo", "sweep"):
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        assert "usage: torchkmeans " + cmd in capsys.readouterr().out


def test_history_and_size_plots():
    pytest.importorskip("matplotlib")
    from torchkmeans import KMeans
    from torchkmeans.plot import plot_cluster_sizes, plot_history

    X = np.random.RandomState(0).rand(200, 2)
    km = KMeans(3, random_state=0, tol=0).fit(X)
    fig, ax = plot_history(km.history_)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [h["inertia"] for h in km.history_])
    fig, ax = plot_cluster_sizes(km.labels_)
    heights = [p.get_height() for p in ax.patches]
    assert heights == np.bincount(km.labels_).tolist()


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    import builtins

    from torchkmeans import plot

    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r"pip install 'torchkmeans\[plot\]'"):
        plot.plot_cluster_sizes([0, 1, 1])


def test_readme_cli_example_runs_as_written(tmp_path):
    """The README's command-line example, run line by line in an empty folder."""
    import re
    import shutil
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"<!-- cli-example -->\n```bash\n(.*?)```", readme, re.S).group(1)
    exe = shutil.which("torchkmeans") or ""
    env = dict(
        _env(), PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    for line in block.strip().splitlines():
        cmd = line.replace("python -c", f'"{sys.executable}" -c', 1)
        if not exe:
            cmd = cmd.replace("torchkmeans ", f'"{sys.executable}" -m torchkmeans ')
        out = subprocess.run(
            cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, (line, out.stderr)
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "points.csv",
        "model.safetensors",
        "clusters.png",
        "labels.csv",
        "predicted.npy",
    } <= names
    assert len(np.load(tmp_path / "predicted.npy")) == 1000


def test_sweep_prints_table_and_plots(tmp_path, capsys):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(900, 3, centers=4, cluster_std=0.5, random_state=0)
    np.save(tmp_path / "x.npy", X)
    png = tmp_path / "sweep.png"
    assert (
        main(["sweep", str(tmp_path / "x.npy"), "--k", "2:7", "--seed", "0", "--plot", str(png)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("\n") >= 8
    assert "suggested k: 4" in out
    assert png.stat().st_size > 1000
    assert main(["sweep", str(tmp_path / "x.npy"), "-k", "2,3,4", "--seed", "0"]) == 0
    assert "suggested k: 4" in capsys.readouterr().out


def test_sweep_errors(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 2)))
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(tmp_path / "x.npy"), "--k", "1:3"])
    assert e.value.code == 2
    assert "every k must be >= 2" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "x.npy"), "--k", "2:40"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "n_samples" in err
    assert main(["sweep", str(tmp_path / "x.npy"), "--plot", str(tmp_path / "no" / "p.png")]) == 1
    assert not (tmp_path / "no").exists()
