"""Data-parallel Neural NMF on torch.distributed: each process trains on its own share of the documents.

    torchrun --standalone --nproc_per_node=2 examples/distributed_fit.py [--epochs 200] [--out model.pt]

gloo on CPUs, NCCL on GPUs (one per process). The dictionaries' gradients are all-reduced with weights that
make every step equal to the full-data step, so the result matches single-process training on all documents
(tests/test_distributed.py checks it to 1e-6).
"""

import argparse
import gc
import os

import torch
import torch.distributed as dist

from neuralnmf import NeuralNMF, fit
from neuralnmf.datasets import make_hierarchical_corpus


def shard_indices(samples: int, rank: int, world: int, uneven: bool) -> torch.Tensor:
    """Rank r's documents: equal shares, or (uneven) shares proportional to r + 1."""
    weights = torch.arange(1, world + 1, dtype=torch.float64) if uneven else torch.ones(world, dtype=torch.float64)
    bounds = (weights.cumsum(0) / weights.sum() * samples).round().long().tolist()
    start = 0 if rank == 0 else bounds[rank - 1]
    return torch.arange(start, bounds[rank])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--uneven", action="store_true", help="give the processes different numbers of documents")
    parser.add_argument("--out", default=None, help="rank 0 saves the trained state_dict here")
    parser.add_argument("--unsupervised", action="store_true", help="ranks (9, 4, 2) without labels, started by fit "
                        "from rank 0's share (tree levels sent to the others); every rank saves to OUT.RANK")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")

    corpus = make_hierarchical_corpus(seed=0, device=device)
    mine = shard_indices(corpus.x.shape[0], rank, world, args.uneven).to(device)
    x, y, labeled = corpus.x[mine], corpus.labels[1][mine], corpus.label_mask(40)[mine]
    if args.unsupervised:
        model = NeuralNMF(87, (9, 4, 2), dtype=torch.float64, device=device, generator=torch.Generator().manual_seed(0))
        history = fit(model, x, epochs=args.epochs, progress=False)
        if args.out:
            torch.save(model.state_dict(), f"{args.out}.{rank}")
        print(f"rank {rank}: final loss {history['loss'][-1]:.6f}")
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
        return
    model = NeuralNMF(87, (9, 4), num_classes=4, dtype=torch.float64, device=device,
                      generator=torch.Generator().manual_seed(0))
    # Every process generated the whole corpus, so each can start from all of it. Without this, fit starts the
    # dictionaries (and the classifier) from rank 0's share and sends that start to the others.
    model.initialize(corpus.x, corpus.labels[1], corpus.label_mask(40))
    history = fit(model, x, y=y, label_mask=labeled, loss="energy", epochs=args.epochs, lr=args.lr, progress=False)
    if rank == 0:
        print(f"{world} processes, {x.shape[0]} documents on rank 0; final loss {history['loss'][-1]:.6f}")
        if args.out:
            torch.save(model.state_dict(), args.out)
    # Collect the reference cycles left by torch's lazy imports before gloo is torn down: without this, about
    # one exit in five aborted with "terminate called without an active exception" on torch 2.13 + gloo.
    gc.collect()
    dist.barrier()  # no process tears gloo down while another still uses it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
