"""Two processes on gloo train to the same dictionaries as one process on all the data."""

import os
import subprocess
import sys

import pytest
import torch

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import make_hierarchical_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("uneven", [False, True])
def test_two_gloo_processes_equal_one_process(tmp_path, uneven):
    out = tmp_path / "model.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(ROOT, "examples", "distributed_fit.py"), "--epochs", "30", "--out", str(out)]
    if uneven:
        cmd.append("--uneven")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stdout
    distributed = torch.load(out, weights_only=True)

    corpus = make_hierarchical_corpus(seed=0)
    model = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model.initialize(corpus.x, corpus.labels[1], corpus.label_mask(40))
    fit(model, corpus.x, y=corpus.labels[1], label_mask=corpus.label_mask(40), loss="energy", epochs=30, lr=0.01,
        progress=False, distributed=False)
    for name, value in model.state_dict().items():
        assert (distributed[name] - value).abs().max().item() <= 1e-6, name


def test_distributed_requires_a_process_group():
    corpus = make_hierarchical_corpus(seed=0)
    model = NeuralNMF(87, (9,), dtype=torch.float64)
    with pytest.raises(ValueError, match="process group"):
        fit(model, corpus.x, epochs=1, distributed=True)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_rank_zeros_start_sends_its_tree_levels_to_every_process(tmp_path):
    """Unsupervised fit under torch.distributed: rank 0 starts the model (tree levels included) from its share, and
    every process holds the same parameters and the same trees after training, each kept by the projection."""
    out = tmp_path / "model.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(ROOT, "examples", "distributed_fit.py"), "--unsupervised", "--epochs", "10", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    states = [torch.load(f"{out}.{rank}", weights_only=True) for rank in (0, 1)]
    assert states[0].keys() == states[1].keys() and "layers.1.parents" in states[0] and "layers.2.parents" in states[0]
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
    for level in (1, 2):
        A, parents = states[0][f"layers.{level}.A"], states[0][f"layers.{level}.parents"]
        off = A.clone()
        off[torch.arange(A.shape[0]), parents] = 0
        assert float(off.abs().max()) == 0.0
