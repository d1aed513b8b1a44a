"""The README's main job and the examples run end to end."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_cli_help_explains_the_commands():
    out = _run("-m", "neuralnmf", "--help")
    assert out.returncode == 0 and "demo" in out.stdout and "nnls-demo" in out.stdout


def test_demo_trains_a_hierarchy_and_writes_figures(tmp_path):
    out = _run("-m", "neuralnmf", "demo", "--epochs", "300", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for text in ("relative error", "hierarchy:", "true parent links", "L2.T0"):
        assert text in out.stdout
    for name in ("layers.png", "hierarchy.png", "loss.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_nnls_demo_runs():
    out = _run("-m", "neuralnmf", "nnls-demo", "--steps", "5")
    assert out.returncode == 0, out.stderr
    assert "relative error" in out.stdout and "KKT residual" in out.stdout


def test_demo_rejects_unknown_command():
    out = _run("-m", "neuralnmf", "frobnicate")
    assert out.returncode != 0 and "invalid choice" in out.stderr


def test_nnls_basics_example_runs():
    out = _run(os.path.join("examples", "nnls_basics.py"))
    assert out.returncode == 0, out.stderr
    assert "batched S: (3, 8, 1000)" in out.stdout
