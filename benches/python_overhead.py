"""Per-call cost of resilience's breaker and retry paths beside their floors and their peers.

Every case is one statement run in a loop of ``n`` iterations and timed with
``time.perf_counter_ns`` (wall) and ``time.thread_time_ns`` (this thread's CPU time). Cases are
measured in interleaved rounds: each round runs every case once (in a shuffled order), so the
noise of a shared machine falls on all cases alike; a case's figure is the median over rounds.
Within a round a case runs ``reps`` short batches (about ``batch_ms`` each, shorter than a
scheduler time slice) and keeps the fastest, which drops batches that were preempted.

Figures:
  ns/call     the loop's per-iteration time less the empty loop's (same round), median;
  overhead    ns/call less the floor's ns/call (``f()``, or ``await af()`` for async), median of
              the per-round differences;
  x ref       overhead divided by the reference floor's overhead (the plain wrapper, ``apply``
              or raise + catch; see each row), the figure the targets speak of.

Run it with the bench environment's interpreter (``.venv-bench/bin/python``); ``--json PATH``
writes the raw figures for ``benches/report.py``. Peers that are not installed are listed as
such and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import operator
import random
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WALL = time.perf_counter_ns
CPU = time.thread_time_ns


@dataclass
class Case:
    """One measured statement.

    ``stmt`` runs once per iteration with the names of ``ns`` in scope; ``base`` is the floor
    whose ns/call is subtracted for the overhead, ``ref`` the case whose overhead the ratio
    divides by (None: no ratio).
    """

    key: str
    label: str
    group: str
    stmt: str
    ns: dict[str, Any]
    base: str | None = "bare"
    ref: str | None = None
    is_async: bool = False
    check: Callable[[], None] | None = None
    runner: Any = None
    n: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


@dataclass
class Skipped:
    """A peer that could not be measured, and why."""

    package: str
    reason: str


def _compile(case: Case) -> Any:
    names = sorted(case.ns)
    body = textwrap.indent(case.stmt, " " * 12)
    kw = "async " if case.is_async else ""
    src = (
        f"def _make({', '.join(names)}):\n"
        f"    {kw}def _run(_n, _wall=_WALL, _cpu=_CPU):\n"
        f"        _r = range(_n)\n"
        f"        _c0 = _cpu()\n"
        f"        _t0 = _wall()\n"
        f"        for _ in _r:\n"
        f"{body}\n"
        f"        _t1 = _wall()\n"
        f"        _c1 = _cpu()\n"
        f"        return _t1 - _t0, _c1 - _c0\n"
        f"    return _run\n"
    )
    scope: dict[str, Any] = {"_WALL": WALL, "_CPU": CPU}
    exec(compile(src, f"<case {case.key}>", "exec"), scope)
    return scope["_make"](**{name: case.ns[name] for name in names})


class Runner:
    """Runs compiled cases; async cases on one event loop kept for the whole run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def time(self, case: Case, n: int) -> tuple[int, int]:
        if case.is_async:
            result: tuple[int, int] = self.loop.run_until_complete(case.runner(n))
            return result
        result = case.runner(n)
        return result

    def close(self) -> None:
        self.loop.close()


# ----------------------------------------------------------------------------- the cases


def f() -> int:
    return 1


async def af() -> int:
    return 1


class PlainError(Exception):
    pass


def build_cases() -> tuple[list[Case], list[Skipped], dict[str, str]]:
    """All cases, the peers skipped, and the versions of what was measured."""
    cases: list[Case] = []
    skipped: list[Skipped] = []
    versions: dict[str, str] = {"python": sys.version.split()[0]}

    def add(key: str, label: str, group: str, stmt: str, **kw: Any) -> None:
        ns = kw.pop("ns", {})
        cases.append(Case(key, label, group, stmt, {"f": f, "af": af, **ns}, **kw))

    # --- floors
    def w() -> int:
        return f()

    def fw(*args: Any, **kwargs: Any) -> int:
        return f(*args, **kwargs)

    def apply(g: Callable[[], int]) -> int:
        return g()

    def boom() -> None:
        raise PlainError("plain")

    class NullContext:
        __slots__ = ()

        def __enter__(self) -> NullContext:
            return self

        def __exit__(self, *exc: object) -> bool:
            return False

    async def aw() -> int:
        return await af()

    add("loop", "empty loop (subtracted from every ns/call)", "floor", "pass", base=None)
    add("bare", "f()", "floor", "f()", base=None)
    add("wrapper", "plain wrapper w() = def w(): return f()", "floor", "w()", ns={"w": w})
    add(
        "forwarding",
        "forwarding wrapper: def w(*a, **k): return f(*a, **k)",
        "floor",
        "w()",
        ns={"w": fw},
        ref="wrapper",
    )
    add("apply", "apply(f) = def apply(g): return g()", "floor", "apply(f)", ns={"apply": apply})
    add("partial", "functools.partial(f)()", "floor", "p()", ns={"p": functools.partial(f)})
    if hasattr(operator, "call"):
        add("opcall", "operator.call(f)", "floor", "call(f)", ns={"call": operator.call})
    add(
        "raise_catch",
        "raise + catch: try: raise PlainError() except PlainError",
        "floor",
        "try:\n    raise E()\nexcept E:\n    pass",
        ns={"E": PlainError},
        base=None,
    )
    add(
        "call_raise_catch",
        "try: boom() except PlainError (boom raises)",
        "floor",
        "try:\n    boom()\nexcept E:\n    pass",
        ns={"E": PlainError, "boom": boom},
        base=None,
        ref="raise_catch",
    )
    add(
        "with_null",
        "with <plain Python context manager>: f()",
        "floor",
        "with cm:\n    f()",
        ns={"cm": NullContext()},
        ref="wrapper",
    )
    add("async_loop", "empty loop (async)", "async", "pass", base=None, is_async=True)
    add("async_bare", "await af()", "async", "await af()", base=None, is_async=True)
    add(
        "async_wrapper",
        "await aw() = async def aw(): return await af()",
        "async",
        "await aw()",
        ns={"aw": aw},
        base="async_bare",
        is_async=True,
    )

    # --- ours
    import resilience
    from resilience import (
        CircuitBreaker,
        CircuitBreakerOpenError,
        CircuitState,
        Retry,
        retry,
        retry_with_circuit_breaker,
    )

    versions["resilience"] = getattr(resilience, "__version__", "?")
    cb = CircuitBreaker(name="bench")
    decorated = cb(f)
    adecorated = cb(af)
    opened = CircuitBreaker(
        name="bench-open", volume_threshold=1, sleep_window=3600.0, max_sleep_window=3600.0
    )
    with contextlib.suppress(ConnectionError):
        opened.call(_raise_connection_error)
    if opened.state is not CircuitState.OPEN:
        raise RuntimeError(f"the rejection case needs an open breaker, got {opened.state}")

    def check_closed() -> None:
        if cb.state is not CircuitState.CLOSED:
            raise RuntimeError(f"success-path breaker left CLOSED: {cb.state}")

    def check_open() -> None:
        if opened.state is not CircuitState.OPEN:
            raise RuntimeError(f"rejection breaker left OPEN: {opened.state}")

    r = Retry()
    rdec = retry(f)
    rcb = retry_with_circuit_breaker(None, CircuitBreaker(name="bench-retry"))

    add(
        "ours_call",
        "cb.call(f)",
        "ours",
        "cb_call(f)",
        ns={"cb_call": cb.call},
        ref="apply",
        check=check_closed,
    )
    add(
        "ours_call_attr",
        "cb.call(f) (attribute looked up each call)",
        "ours",
        "cb.call(f)",
        ns={"cb": cb},
        ref="apply",
        check=check_closed,
    )
    add(
        "ours_decorator",
        "@cb decorated f()",
        "ours",
        "g()",
        ns={"g": decorated},
        ref="wrapper",
        check=check_closed,
    )
    add(
        "ours_with",
        "with cb: f()",
        "ours",
        "with cb:\n    f()",
        ns={"cb": cb},
        ref="with_null",
        check=check_closed,
    )
    add(
        "ours_rejected",
        "cb.call(f) rejected while open (+ catch)",
        "ours",
        "try:\n    call(f)\nexcept E:\n    pass",
        ns={"call": opened.call, "E": CircuitBreakerOpenError},
        base=None,
        ref="raise_catch",
        check=check_open,
    )
    add(
        "ours_retry_call",
        "Retry().call(f)",
        "ours",
        "r_call(f)",
        ns={"r_call": r.call},
        ref="wrapper",
    )
    add(
        "ours_retry_decorator", "@retry decorated f()", "ours", "g()", ns={"g": rdec}, ref="wrapper"
    )
    add(
        "ours_retry_cb",
        "retry_with_circuit_breaker(None, cb).call(f)",
        "ours",
        "r_call(f)",
        ns={"r_call": rcb.call},
        ref="wrapper",
    )
    add(
        "ours_async_call",
        "await cb.call_async(af)",
        "async",
        "await call_async(af)",
        ns={"call_async": cb.call_async},
        base="async_bare",
        ref="async_wrapper",
        is_async=True,
    )
    add(
        "ours_async_decorator",
        "@cb decorated await af()",
        "async",
        "await g()",
        ns={"g": adecorated},
        base="async_bare",
        ref="async_wrapper",
        is_async=True,
    )

    # --- peers: each block is skipped, with the reason, if the package is missing or breaks.
    def peer(package: str, build: Callable[[], None]) -> None:
        before = len(cases)
        try:
            build()
        except ImportError as exc:
            del cases[before:]
            skipped.append(Skipped(package, f"not installed ({exc})"))
        except Exception as exc:
            del cases[before:]
            skipped.append(Skipped(package, f"setup failed: {type(exc).__name__}: {exc}"))
        else:
            versions[package] = _version(package)

    def pybreaker_cases() -> None:
        import pybreaker

        pb = pybreaker.CircuitBreaker()
        add(
            "pybreaker_call",
            "pybreaker: breaker.call(f)",
            "breaker peers",
            "call(f)",
            ns={"call": pb.call},
            ref="apply",
        )
        add(
            "pybreaker_decorator",
            "pybreaker: @breaker",
            "breaker peers",
            "g()",
            ns={"g": pb(f)},
            ref="wrapper",
        )
        po = pybreaker.CircuitBreaker(reset_timeout=3600)
        po.open()
        add(
            "pybreaker_rejected",
            "pybreaker: rejected while open (+ catch)",
            "breaker peers",
            "try:\n    call(f)\nexcept E:\n    pass",
            ns={"call": po.call, "E": pybreaker.CircuitBreakerError},
            base=None,
            ref="raise_catch",
        )

    def circuitbreaker_cases() -> None:
        import circuitbreaker

        breaker = circuitbreaker.CircuitBreaker(name="bench")
        add(
            "circuitbreaker_call",
            "circuitbreaker: breaker.call(f)",
            "breaker peers",
            "call(f)",
            ns={"call": breaker.call},
            ref="apply",
        )
        add(
            "circuitbreaker_decorator",
            "circuitbreaker: @circuit",
            "breaker peers",
            "g()",
            ns={"g": circuitbreaker.circuit(f)},
            ref="wrapper",
        )

    def aiobreaker_cases() -> None:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker()
        add(
            "aiobreaker_call",
            "aiobreaker: breaker.call(f)",
            "breaker peers",
            "call(f)",
            ns={"call": ab.call},
            ref="apply",
        )
        add(
            "aiobreaker_decorator",
            "aiobreaker: @breaker",
            "breaker peers",
            "g()",
            ns={"g": ab(f)},
            ref="wrapper",
        )
        add(
            "aiobreaker_async_call",
            "aiobreaker: await breaker.call_async(af)",
            "async",
            "await call_async(af)",
            ns={"call_async": ab.call_async},
            base="async_bare",
            ref="async_wrapper",
            is_async=True,
        )

    def purgatory_cases() -> None:
        import purgatory

        factory = purgatory.SyncCircuitBreakerFactory()
        add(
            "purgatory_decorator",
            "purgatory: @factory('name')",
            "breaker peers",
            "g()",
            ns={"g": factory("bench")(f)},
            ref="wrapper",
        )
        afactory = purgatory.AsyncCircuitBreakerFactory()
        add(
            "purgatory_async_decorator",
            "purgatory: @async_factory('name') await",
            "async",
            "await g()",
            ns={"g": afactory("bench")(af)},
            base="async_bare",
            ref="async_wrapper",
            is_async=True,
        )

    def pyresilience_breaker_cases() -> None:
        from pyresilience import CircuitBreakerConfig, resilient

        g = resilient(circuit_breaker=CircuitBreakerConfig())(f)
        add(
            "pyresilience_breaker",
            "pyresilience: @resilient(circuit_breaker=...)",
            "breaker peers",
            "g()",
            ns={"g": g},
            ref="wrapper",
        )

    def tenacity_cases() -> None:
        import tenacity

        stop = tenacity.stop_after_attempt(3)
        add(
            "tenacity_decorator",
            "tenacity: @retry(stop=stop_after_attempt(3))",
            "retry peers",
            "g()",
            ns={"g": tenacity.retry(stop=stop)(f)},
            ref="wrapper",
        )
        add(
            "tenacity_call",
            "tenacity: Retrying(stop=...)(f)",
            "retry peers",
            "call(f)",
            ns={"call": tenacity.Retrying(stop=stop)},
            ref="wrapper",
        )

    def stamina_cases() -> None:
        import stamina

        add(
            "stamina_decorator",
            "stamina: @retry(on=Exception, attempts=3)",
            "retry peers",
            "g()",
            ns={"g": stamina.retry(on=Exception, attempts=3)(f)},
            ref="wrapper",
        )

    def backoff_cases() -> None:
        import backoff

        g = backoff.on_exception(backoff.expo, Exception, max_tries=3)(f)
        add(
            "backoff_decorator",
            "backoff: @on_exception(expo, Exception, max_tries=3)",
            "retry peers",
            "g()",
            ns={"g": g},
            ref="wrapper",
        )

    def pyresilience_retry_cases() -> None:
        from pyresilience import RetryConfig, resilient

        g = resilient(retry=RetryConfig(max_attempts=3))(f)
        add(
            "pyresilience_retry",
            "pyresilience: @resilient(retry=RetryConfig(...))",
            "retry peers",
            "g()",
            ns={"g": g},
            ref="wrapper",
        )

    def tenacity_rs_cases() -> None:
        import tenacity_rs

        stop = tenacity_rs.stop_after_attempt(3)
        retrying = tenacity_rs.Retrying(
            stop=stop, wait=tenacity_rs.wait_none(), retry=tenacity_rs.retry_if_exception_type()
        )
        add(
            "tenacity_rs_decorator",
            "tenacity-rs: @retry(stop=stop_after_attempt(3))",
            "retry peers",
            "g()",
            ns={"g": tenacity_rs.retry(stop=stop)(f)},
            ref="wrapper",
        )
        add(
            "tenacity_rs_call",
            "tenacity-rs: Retrying(stop=...)(f)",
            "retry peers",
            "call(f)",
            ns={"call": retrying},
            ref="wrapper",
        )

    peer("pybreaker", pybreaker_cases)
    peer("circuitbreaker", circuitbreaker_cases)
    peer("aiobreaker", aiobreaker_cases)
    peer("purgatory", purgatory_cases)
    peer("pyresilience", pyresilience_breaker_cases)
    peer("tenacity", tenacity_cases)
    peer("stamina", stamina_cases)
    peer("backoff", backoff_cases)
    if "pyresilience" in versions:
        peer("pyresilience", pyresilience_retry_cases)
    peer("tenacity-rs", tenacity_rs_cases)
    return cases, skipped, versions


def _raise_connection_error() -> None:
    raise ConnectionError("bench: opening the breaker")


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


# ----------------------------------------------------------------------------- measuring


def measure(cases: list[Case], *, rounds: int, reps: int, batch_ms: float, seed: int) -> None:
    runner = Runner()
    try:
        for case in cases:
            case.runner = _compile(case)
            runner.time(case, 20)  # warm up (and fail fast on a broken case)
            per_call = max(runner.time(case, 200)[0] / 200, 1.0)
            case.n = max(10, min(1_000_000, int(batch_ms * 1e6 / per_call)))
            if case.check is not None:
                case.check()
        rng = random.Random(seed)
        order = list(cases)
        for _ in range(rounds):
            rng.shuffle(order)
            for case in order:
                timings = [runner.time(case, case.n) for _ in range(reps)]
                best_wall = min(wall for wall, _ in timings)
                best_cpu = min(cpu for _, cpu in timings)
                case.wall.append(best_wall / case.n)
                case.cpu.append(best_cpu / case.n)
        for case in cases:
            if case.check is not None:
                case.check()
    finally:
        runner.close()


def summarize(cases: list[Case]) -> dict[str, dict[str, Any]]:
    """Per-case medians: ns/call (less the empty loop), overhead over the floor, ratios."""
    by_key = {c.key: c for c in cases}
    out: dict[str, dict[str, Any]] = {}

    def loop_of(case: Case) -> Case:
        return by_key["async_loop" if case.is_async else "loop"]

    def paired(case: Case, other: Case, series: str) -> float:
        a, b = getattr(case, series), getattr(other, series)
        return statistics.median(x - y for x, y in zip(a, b, strict=True))

    for case in cases:
        loop = loop_of(case)
        row: dict[str, Any] = {
            "label": case.label,
            "group": case.group,
            "n": case.n,
            "rounds": len(case.wall),
            # the empty loop itself is shown as it is; every other case less it
            "ns": statistics.median(case.wall) if case is loop else paired(case, loop, "wall"),
            "cpu_ns": statistics.median(case.cpu) if case is loop else paired(case, loop, "cpu"),
            "raw_ns": statistics.median(case.wall),
            "base": case.base,
            "ref": case.ref,
        }
        if case.base is not None:
            base = by_key[case.base]
            row["overhead"] = paired(case, base, "wall")
            row["cpu_overhead"] = paired(case, base, "cpu")
        out[case.key] = row
    for row in out.values():
        ref = row["ref"]
        if ref is None:
            continue
        mine, theirs = _cost(row, "wall"), _cost(out[ref], "wall")
        row["x_ref"] = mine / theirs if theirs > 0 else float("nan")
        mine, theirs = _cost(row, "cpu"), _cost(out[ref], "cpu")
        row["cpu_x_ref"] = mine / theirs if theirs > 0 else float("nan")
    return out


def _cost(row: dict[str, Any], series: str) -> float:
    """What a ratio compares: the overhead over the floor, or ns/call for rows without one."""
    if series == "wall":
        return float(row["overhead"] if "overhead" in row else row["ns"])
    return float(row["cpu_overhead"] if "cpu_overhead" in row else row["cpu_ns"])


# ----------------------------------------------------------------------------- targets


def targets(rows: dict[str, dict[str, Any]], series: str = "wall") -> list[dict[str, Any]]:
    """The issue's Python targets, each with its figure and PASS/MISS (None: not measurable)."""

    def cost(key: str) -> float | None:
        row = rows.get(key)
        return None if row is None else _cost(row, series)

    def ratio(a: str, b: str) -> float | None:
        x, y = cost(a), cost(b)
        if x is None or y is None or y <= 0:
            return None
        return x / y

    checks: list[tuple[str, float | None, str, float]] = [
        (
            "@cb decorator overhead / plain-wrapper overhead",
            ratio("ours_decorator", "wrapper"),
            "<=",
            3.0,
        ),
        ("cb.call(f) overhead / apply(f) overhead", ratio("ours_call", "apply"), "<=", 2.0),
        (
            "pybreaker call overhead / cb.call(f) overhead",
            ratio("pybreaker_call", "ours_call"),
            ">=",
            20.0,
        ),
        (
            "pybreaker decorator overhead / @cb overhead",
            ratio("pybreaker_decorator", "ours_decorator"),
            ">=",
            20.0,
        ),
        ("rejected (open) / raise + catch", ratio("ours_rejected", "raise_catch"), "<=", 2.0),
        (
            "@retry overhead / plain-wrapper overhead",
            ratio("ours_retry_decorator", "wrapper"),
            "<=",
            3.0,
        ),
        (
            "Retry.call(f) overhead / plain-wrapper overhead",
            ratio("ours_retry_call", "wrapper"),
            "<=",
            3.0,
        ),
        (
            "tenacity @retry overhead / @retry overhead",
            ratio("tenacity_decorator", "ours_retry_decorator"),
            ">=",
            20.0,
        ),
        (
            "tenacity Retrying(f) overhead / Retry.call(f) overhead",
            ratio("tenacity_call", "ours_retry_call"),
            ">=",
            20.0,
        ),
        (
            "backoff decorator overhead / @retry overhead",
            ratio("backoff_decorator", "ours_retry_decorator"),
            ">",
            1.0,
        ),
        (
            "backoff decorator overhead / Retry.call(f) overhead",
            ratio("backoff_decorator", "ours_retry_call"),
            ">",
            1.0,
        ),
    ]
    return [_verdict(name, value, op, limit) for name, value, op, limit in checks]


def _verdict(name: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
    if value is None:
        status = "N/A"
    else:
        ok = {"<=": value <= limit, ">=": value >= limit, ">": value > limit}[op]
        status = "PASS" if ok else "MISS"
    return {"target": name, "value": value, "op": op, "limit": limit, "status": status}


# ----------------------------------------------------------------------------- output


GROUPS = ("floor", "ours", "breaker peers", "retry peers", "async")


def ordered(rows: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Rows by group (in GROUPS order), then in the order they were defined."""
    items = list(rows.items())
    return sorted(items, key=lambda kv: GROUPS.index(kv[1]["group"]))


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    head = f"{'case':<58} {'ns/call':>9} {'overhead':>9} {'x ref':>7} {'ref':<15} {'cpu ns':>8}"
    lines = [head, "-" * len(head)]
    group = None
    for _, row in ordered(rows):
        if row["group"] != group:
            group = row["group"]
            lines.append(f"[{group}]")
        over = f"{row['overhead']:9.1f}" if "overhead" in row else f"{'':9}"
        xref = f"{row['x_ref']:7.2f}" if "x_ref" in row else f"{'':7}"
        lines.append(
            f"{row['label'][:58]:<58} {row['ns']:9.1f} {over} {xref} "
            f"{(row['ref'] or ''):<15} {row['cpu_ns']:8.1f}"
        )
    return "\n".join(lines)


def format_targets(checks: list[dict[str, Any]]) -> str:
    lines = []
    for c in checks:
        value = "n/a" if c["value"] is None else f"{c['value']:.2f}"
        lines.append(f"{c['status']:<4}  {c['target']}: {value} (target {c['op']} {c['limit']:g})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few rounds, tiny batches")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--batch-ms", type=float, default=None)
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.smoke else 21)
    reps = args.reps or (1 if args.smoke else 5)
    batch_ms = args.batch_ms or (0.2 if args.smoke else 2.0)

    gc.collect()
    cases, skipped, versions = build_cases()
    started = time.time()
    measure(cases, rounds=rounds, reps=reps, batch_ms=batch_ms, seed=args.seed)
    elapsed = time.time() - started
    rows = summarize(cases)
    checks = targets(rows)
    cpu_checks = targets(rows, "cpu")

    print(
        f"Python per-call cost: {rounds} interleaved rounds x {len(cases)} cases, "
        f"best of {reps} batches of ~{batch_ms:g} ms per round, medians ({elapsed:.0f} s)"
    )
    print(format_table(rows))
    for s in skipped:
        print(f"skipped peer {s.package}: {s.reason}")
    print("\nTargets (wall clock):")
    print(format_targets(checks))
    if args.json:
        payload = {
            "rounds": rounds,
            "reps": reps,
            "batch_ms": batch_ms,
            "elapsed_s": elapsed,
            "versions": versions,
            "rows": rows,
            "targets": checks,
            "cpu_targets": cpu_checks,
            "skipped": [s.__dict__ for s in skipped],
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
