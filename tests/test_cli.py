"""The command line: demo (the main job), usage errors, python -m."""

import subprocess
import sys

import numpy as np
import pytest

from torchkmeans.cli import main


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
