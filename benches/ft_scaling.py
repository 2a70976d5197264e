"""Free-threaded scaling: calls/s with 1 and 2 threads, one shared breaker vs separate breakers.

Run it with a free-threaded interpreter (3.13t) that has resilience installed, e.g.
``.venv-bench-ft/bin/python benches/ft_scaling.py``. With the GIL the threads take turns, so the
script refuses to run there unless ``--allow-gil`` (useful only to test the harness).

Each case is a loop of ``n`` calls per thread; the threads start together at a barrier and the
time runs from the barrier to the last thread's end, so calls/s = threads * n / elapsed. Cases
run in interleaved rounds (each case once per round, shuffled) and the figures are medians.
The limit is a plain Python wrapper ``def w(): return f()`` measured the same way: threads that
share nothing but the function objects. Scaling is calls/s with 2 threads over calls/s with 1;
the target is shared-breaker scaling >= 0.9x the wrapper's.

``--json PATH`` writes the figures for ``benches/report.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

TARGET = 0.9


def f() -> int:
    return 1


def w() -> int:
    return f()


def _loop_wrapper(n: int, _ctx: Any) -> None:
    g = w
    for _ in range(n):
        g()


def _loop_call(n: int, ctx: Any) -> None:
    call = ctx.call  # the breaker's own method, as `cb.call(f)` uses it
    g = f
    for _ in range(n):
        call(g)


def _loop_call_own(n: int, ctx: Any) -> None:
    # On 3.13t every call of a shared object bumps its reference count, an atomic add on one
    # cache line for all threads, unless CPython made the object immortal (it does so for
    # module-level functions, such as the wrapper's, once a second thread starts). Here the
    # breaker is shared but the object the loop calls is this thread's own, made here so this
    # thread owns its reference count (a partial calls `cb.call` without touching its count):
    # the difference from "shared" is what that counting costs.
    call = functools.partial(ctx.call)
    g = f
    for _ in range(n):
        call(g)


def _loop_decorated(n: int, ctx: Any) -> None:
    g = ctx
    for _ in range(n):
        g()


def timed(
    threads: int, n: int, body: Callable[[int, Any], None], contexts: list[Any]
) -> tuple[float, float]:
    """Calls per wall second and CPU ns per call of ``threads`` threads each running
    ``body(n, its context)``."""
    barrier = threading.Barrier(threads + 1)
    done = [0.0] * threads

    def worker(i: int) -> None:
        ctx = contexts[i]
        barrier.wait()
        body(n, ctx)
        done[i] = time.perf_counter()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    cpu = time.process_time_ns()
    start = time.perf_counter()
    for t in pool:
        t.join()
    cpu = time.process_time_ns() - cpu
    return threads * n / (max(done) - start), cpu / (threads * n)


def build_cases() -> list[tuple[str, str, int, Callable[[int, Any], None], list[Any]]]:
    from resilience import CircuitBreaker

    shared = CircuitBreaker(name="shared")
    separate = [CircuitBreaker(name=f"separate-{i}") for i in range(2)]
    shared_decorated = shared(f)
    cases: list[tuple[str, str, int, Callable[[int, Any], None], list[Any]]] = []
    for threads in (1, 2):
        cases += [
            ("wrapper", "plain wrapper w()", threads, _loop_wrapper, [None] * threads),
            ("shared", "cb.call(f), one shared breaker", threads, _loop_call, [shared] * threads),
            ("separate", "cb.call(f), a breaker per thread", threads, _loop_call, separate),
            ("shared_own_call", "cb.call(f), one shared breaker, a partial per thread",
             threads, _loop_call_own, [shared] * threads),
            ("shared_decorated", "@cb f(), one shared breaker", threads, _loop_decorated,
             [shared_decorated] * threads),
        ]  # fmt: skip
    return cases


def run(rounds: int, n: int, seed: int) -> dict[str, Any]:
    cases = build_cases()
    for _, _, threads, body, ctx in cases:  # warm up
        timed(threads, max(1, n // 20), body, ctx)
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {
        (k, t): [] for k, _, t, _, _ in cases
    }
    rng = random.Random(seed)
    order = list(cases)
    for _ in range(rounds):
        rng.shuffle(order)
        for key, _, threads, body, ctx in order:
            samples[(key, threads)].append(timed(threads, n, body, ctx))
    rows: dict[str, Any] = {}
    for key, label, threads, _, _ in cases:
        if threads != 1:
            continue
        one, two = samples[(key, 1)], samples[(key, 2)]
        pairs = list(zip(one, two, strict=True))
        rows[key] = {
            "label": label,
            "calls_per_s_1": statistics.median(a for a, _ in one),
            "calls_per_s_2": statistics.median(a for a, _ in two),
            "cpu_ns_1": statistics.median(c for _, c in one),
            "cpu_ns_2": statistics.median(c for _, c in two),
            # per-round ratios, then the median: both thread counts saw the same round's noise
            "scaling": statistics.median(b[0] / a[0] for a, b in pairs),
            # what 2 idle cores would give: 2x, less the extra CPU a call costs with 2 threads
            "cpu_scaling": statistics.median(2 * a[1] / max(b[1], 1e-9) for a, b in pairs),
        }
    wrapper, cpu_wrapper = rows["wrapper"]["scaling"], rows["wrapper"]["cpu_scaling"]
    for row in rows.values():
        row["vs_wrapper"] = row["scaling"] / wrapper
        row["cpu_vs_wrapper"] = row["cpu_scaling"] / cpu_wrapper
    value = rows["shared"]["vs_wrapper"]
    cpu_value = rows["shared"]["cpu_vs_wrapper"]
    return {
        "python": sys.version,
        "gil_enabled": _gil_enabled(),
        "rounds": rounds,
        "n": n,
        "rows": rows,
        "target": {
            "target": "free-threaded shared-breaker scaling / wrapper scaling (1 -> 2 threads)",
            "value": value,
            "op": ">=",
            "limit": TARGET,
            "status": "PASS" if value >= TARGET else "MISS",
        },
        "cpu_target": {
            "target": "the same, from CPU time per call (load-independent)",
            "value": cpu_value,
            "op": ">=",
            "limit": TARGET,
            "status": "PASS" if cpu_value >= TARGET else "MISS",
        },
    }


def _gil_enabled() -> bool:
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


def format_table(data: dict[str, Any]) -> str:
    lines = [
        f"Free-threaded scaling ({data['python'].split()[0]}, GIL "
        f"{'enabled' if data['gil_enabled'] else 'disabled'}): {data['rounds']} interleaved "
        f"rounds of {data['n']:,} calls per thread, medians",
        f"{'case':<36} {'1 thread':>14} {'2 threads':>14} {'scaling':>8} {'vs wrapper':>11}"
        f" {'cpu ns 1/2':>12} {'cpu scaling':>12} {'vs wrapper':>11}",
    ]
    for row in data["rows"].values():
        lines.append(
            f"{row['label']:<36} {row['calls_per_s_1'] / 1e6:>9.2f} M/s "
            f"{row['calls_per_s_2'] / 1e6:>9.2f} M/s {row['scaling']:>7.2f}x "
            f"{row['vs_wrapper']:>10.2f}x {row['cpu_ns_1']:>5.0f}/{row['cpu_ns_2']:<6.0f} "
            f"{row['cpu_scaling']:>11.2f}x {row['cpu_vs_wrapper']:>10.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few rounds, short loops")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("-n", type=int, default=None, help="calls per thread per measurement")
    parser.add_argument("--seed", type=int, default=20250101)
    parser.add_argument("--allow-gil", action="store_true", help="run even with the GIL on")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if _gil_enabled() and not args.allow_gil:
        print("ft_scaling: this interpreter runs with the GIL; use a free-threaded build")
        return 2
    rounds = args.rounds or (3 if args.smoke else 15)
    n = args.n or (2_000 if args.smoke else 200_000)
    data = run(rounds, n, args.seed)
    print(format_table(data))
    for t in (data["target"], data["cpu_target"]):
        print(f"{t['status']:<4}  {t['target']}: {t['value']:.2f}x (target >= {t['limit']:g}x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
