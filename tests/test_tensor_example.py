"""examples/reproduce_tensor_table.py runs end to end (a few steps of every row, one trial)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_reproduce_tensor_table_runs():
    out = subprocess.run([sys.executable, os.path.join("examples", "reproduce_tensor_table.py"), "--trials", "1",
                          "--epochs-scale", "0.01"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for row in ("Multi-HNTF (MU)", "Neural HNCPD", "Standard HNCPD", "HNTF-3", "Neural Multi-HNTF, joint (ours)"):
        assert f"| {row} |" in out.stdout
    assert "tensorly-0.4.3 MU (ours) 0.4543299380" in out.stdout
