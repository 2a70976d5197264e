"""Command line: ``python -m resilience demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m resilience")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="watch a breaker protect a flaky dependency (~8 s)")
    demo.add_argument("--rate", type=float, default=200.0, help="calls per second (default 200)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(rate=args.rate, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
