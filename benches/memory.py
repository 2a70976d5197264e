"""Memory per circuit breaker: RSS and tracemalloc growth for N breakers with the default config.

Each measurement runs in a fresh interpreter (``python memory.py --child KIND N``) so that
nothing else the parent allocated is counted: one child reads RSS (``/proc/self/statm``) before
and after building N breakers and keeping them alive, another traces the same with
``tracemalloc``. RSS sees everything, the Rust core's heap included; tracemalloc sees only
Python's allocator, so the difference is roughly what the core allocates with the system
allocator. Peers are measured the same way when installed, for comparison.

``--json PATH`` writes the figures for ``benches/report.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

TARGET_BYTES = 2048

# Constructors of one default-config breaker, by name. Peers are optional.
FACTORIES = {
    "resilience": "from resilience import CircuitBreaker as B\nmake = lambda i: B()",
    "pybreaker": "from pybreaker import CircuitBreaker as B\nmake = lambda i: B()",
    "circuitbreaker": "from circuitbreaker import CircuitBreaker as B\nmake = lambda i: B()",
    "aiobreaker": "from aiobreaker import CircuitBreaker as B\nmake = lambda i: B()",
}


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _maker(kind: str) -> Callable[[int], Any]:
    scope: dict[str, Any] = {}
    exec(FACTORIES[kind], scope)
    make: Callable[[int], Any] = scope["make"]
    make(0)  # import and warm every lazily created module-level object first
    return make


def child(kind: str, how: str, n: int) -> dict[str, Any]:
    """Runs in the fresh interpreter: builds n breakers and reports the growth."""
    make = _maker(kind)
    gc.collect()
    if how == "rss":
        before = _rss_bytes()
        kept = [make(i) for i in range(n)]
        gc.collect()
        grown = _rss_bytes() - before
    else:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(n)]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    # The list holding them costs 8 bytes a breaker; take it off so the figure is the breaker's.
    grown -= sys.getsizeof(kept)
    return {"kind": kind, "how": how, "n": len(kept), "bytes": grown, "per": grown / len(kept)}


def run(n: int, kinds: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for kind in kinds:
        for how in ("rss", "tracemalloc"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", kind, how, str(n)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                if kind == "resilience":
                    raise RuntimeError(f"memory child for {kind} failed: {proc.stderr}")
                skipped[kind] = last
                break
            results.setdefault(kind, {})[how] = json.loads(proc.stdout)
    return {"n": n, "target_bytes": TARGET_BYTES, "results": results, "skipped": skipped}


def verdict(data: dict[str, Any]) -> dict[str, Any]:
    per = data["results"]["resilience"]["rss"]["per"]
    return {
        "target": "RSS per breaker (default config)",
        "value": per,
        "op": "<=",
        "limit": float(TARGET_BYTES),
        "status": "PASS" if per <= TARGET_BYTES else "MISS",
    }


def format_table(data: dict[str, Any]) -> str:
    lines = [
        f"Memory: {data['n']:,} breakers with the default config, each kind in a fresh process",
        f"{'library':<16} {'RSS delta':>12} {'RSS/breaker':>12} {'tracemalloc':>12} "
        f"{'traced/breaker':>15}",
    ]
    for kind, res in data["results"].items():
        rss, traced = res["rss"], res["tracemalloc"]
        lines.append(
            f"{kind:<16} {rss['bytes'] / 2**20:>9.1f} MiB {rss['per']:>10.0f} B "
            f"{traced['bytes'] / 2**20:>8.1f} MiB {traced['per']:>13.0f} B"
        )
    for kind, why in data["skipped"].items():
        lines.append(f"{kind:<16} skipped: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="breakers to build")
    parser.add_argument("--only-ours", action="store_true", help="skip the peers")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "HOW", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, how, n = args.child
        print(json.dumps(child(kind, how, int(n))))
        return 0
    kinds = ["resilience"] if args.only_ours else list(FACTORIES)
    data = run(args.n, kinds)
    data["target"] = verdict(data)
    print(format_table(data))
    t = data["target"]
    print(f"{t['status']:<4}  {t['target']}: {t['value']:.0f} B (target <= {t['limit']:.0f} B)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
