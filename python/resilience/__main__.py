"""Command line: ``python -m resilience demo`` and ``python -m resilience simulate``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and runs the chosen command; returns the exit status."""
    from .simulate import cli as simulate_cli

    parser = argparse.ArgumentParser(prog="python -m resilience")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="watch a breaker protect a flaky dependency (~8 s)")
    demo.add_argument("--rate", type=float, default=200.0, help="calls per second (default 200)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    simulate = commands.add_parser(
        "simulate",
        help="run a breaker and retries through a scenario in virtual time",
        description=(
            "Runs the real CircuitBreaker and Retry through a scenario (traffic, and phases of "
            "the dependency's health) on a manual clock, then prints the state transitions and "
            "a summary: time to open, failing calls let through, false rejections, time to "
            "close, trial calls and retry amplification."
        ),
    )
    simulate_cli.configure(simulate)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(rate=args.rate, seed=args.seed)
    elif args.command == "simulate":
        return simulate_cli.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
