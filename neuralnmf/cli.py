"""Command line: `python -m neuralnmf demo` trains a hierarchical topic model on a generated corpus in seconds;
`python -m neuralnmf nnls-demo` shows the exact, differentiable NNLS operator it is built on."""

from __future__ import annotations

import argparse

from .demos import nnls_demo, topic_model_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuralnmf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="train a 3-layer Neural NMF on a generated hierarchical corpus (seconds)")
    p.add_argument("--epochs", type=int, default=2000, help="training epochs (default: 2000)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default: 0.01)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated corpus (default: 0)")
    p.add_argument("--out", default="neuralnmf_demo", help="folder for the figures (default: ./neuralnmf_demo)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(run=topic_model_demo)
    p = sub.add_parser("nnls-demo", help="the NNLS operator: solve, compare with scipy, learn a dictionary")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=100, help="gradient steps in part 2 (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=nnls_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
