"""``python -m resilience simulate``: run a scenario and print what the breaker did.

Exit status: 0 after a run, 2 for a bad scenario, a bad setting or a missing plot extra (the
message names the file and line, or the option and field; there is no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from .builtin import BUILTIN_SCENARIOS
from .engine import RunResult, simulate
from .plot import PLOT_EXTRA_HINT, PlotUnavailableError, plot_available, write_plot
from .policy import BREAKER_FIELDS, PRESETS, RETRY_FIELDS, PolicyError, build_policy
from .report import render_text, to_json
from .scenario import ScenarioError, load_scenario

__all__ = ["configure", "run"]

_PROG = "python -m resilience simulate"


def _wrapped(title: str, text: str) -> str:
    return textwrap.fill(text, 79, initial_indent=f"{title:<16}", subsequent_indent=" " * 16)


_EPILOG = "\n".join(
    [
        _wrapped("breaker fields:", ", ".join(BREAKER_FIELDS)),
        _wrapped("retry fields:", ", ".join(RETRY_FIELDS)),
        _wrapped(
            "presets:",
            "; ".join(
                f"{name}: " + " ".join(f"{k}={v}" for k, v in fields.items())
                for name, fields in PRESETS.items()
            ),
        ),
        "",
        'Values are Python literals (0.3, 10, "full", None; true/false work too).',
        "--compare takes breaker fields, preset=NAME and retry.FIELD=VALUE, applied on top",
        "of the main configuration.",
        "",
        "examples:",
        f"  {_PROG} outage --compare preset=critical",
        f"  {_PROG} flapping --breaker sleep_window=5 --retry max_attempts=1 --json",
        f"  {_PROG} my-service.toml --plot run.png",
    ]
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the ``simulate`` arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if parser.description:
        parser.description = textwrap.fill(parser.description, 79)
    parser.epilog = _EPILOG
    parser.add_argument(
        "scenario",
        nargs="?",
        default="outage",
        metavar="SCENARIO",
        help=f"a built-in ({', '.join(BUILTIN_SCENARIOS)}) or a TOML file (default: outage)",
    )
    parser.add_argument(
        "--breaker",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="breaker settings (CircuitBreakerConfig fields, preset=NAME)",
    )
    parser.add_argument(
        "--retry",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="retry settings (RetryConfig fields; max_attempts=1 turns retries off)",
    )
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), help="start the breaker from a tuning profile"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        metavar="K=V",
        help="also run a second configuration on the same traffic, e.g. preset=critical",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: the scenario's, or 1)")
    parser.add_argument("--plot", metavar="FILE", help="draw the run (.png, .svg, .pdf)")
    parser.add_argument(
        "--json", action="store_true", help="print the summary and transitions as JSON"
    )
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios")
    parser.add_argument(
        "--show", action="store_true", help="print the scenario's TOML (a template) and exit"
    )


def _fail(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def _list() -> None:
    width = max(len(name) for name in BUILTIN_SCENARIOS)
    for name in BUILTIN_SCENARIOS:
        print(f"{name:<{width}}  {load_scenario(name).description}")


def run(args: argparse.Namespace) -> int:
    """Runs the ``simulate`` command; returns the exit status."""
    if args.list:
        _list()
        return 0
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        return _fail(str(exc))
    if args.show:
        print(scenario.text, end="" if scenario.text.endswith("\n") else "\n")
        return 0
    try:
        main, other = build_policy(
            base_breaker=scenario.breaker,
            base_retry=scenario.retry,
            preset=args.preset,
            breaker_items=args.breaker,
            retry_items=args.retry,
            compare_items=args.compare,
        )
    except PolicyError as exc:
        return _fail(exc.reason)
    if args.plot:
        if not plot_available():
            return _fail(PLOT_EXTRA_HINT)
        folder = Path(args.plot).resolve().parent
        if not folder.is_dir():
            return _fail(f"cannot write the plot to {args.plot}: no folder {folder}")
    results: list[RunResult] = [simulate(scenario, main, args.seed)]
    if other is not None:
        results.append(simulate(scenario, other, args.seed))
    if args.json:
        print(json.dumps(to_json(results), indent=2))
    else:
        print(render_text(results))
    if args.plot:
        return _plot(results, args.plot, quiet=args.json)
    return 0


def _plot(results: Sequence[RunResult], path: str, *, quiet: bool) -> int:
    try:
        write_plot(results, path)
    except PlotUnavailableError:
        return _fail(PLOT_EXTRA_HINT)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot write the plot to {path}: {exc}")
    if not quiet:
        print(f"\nPlot written to {path}")
    return 0
