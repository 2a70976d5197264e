"""Runs the Python benchmarks, gathers criterion's core figures, checks the targets, and (full
run only) writes BENCHMARKS.md.

    make bench         # cargo bench, then: .venv-bench/bin/python benches/report.py --write ...
    make bench-smoke   # .venv-bench/bin/python benches/report.py --smoke   (CI; < 1 minute)

It runs ``python_overhead.py`` and ``memory.py`` with this interpreter (the bench environment,
with the release build of resilience and the peers installed), and ``ft_scaling.py`` with the
free-threaded interpreter if there is one (``--ft-python``, default ``.venv-bench-ft/bin/python``).
The core's figures come from the estimates ``cargo bench --bench core`` left under
``--criterion-dir``.

Exit status: 0 when every harness ran, whatever the targets say (a MISS is a finding, not a
failure); non-zero when a harness broke, so the smoke run in CI keeps the harness from rotting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CORE_TARGET_NS = 25.0
CORE_CASES = [
    ("breaker/acquire_record_success", "try_acquire + complete(Success)"),
    ("breaker/acquire_record_failure", "try_acquire + complete(Failure), stays closed"),
    ("breaker/rejected_open", "try_acquire rejected while open"),
    ("window/record", "Window::record"),
    ("window/counts", "Window::counts (10 buckets)"),
    ("contention/acquire_record_success_1_threads", "acquire + success, 1 thread (per thread)"),
    ("contention/acquire_record_success_2_threads", "acquire + success, 2 threads on one breaker"),
]


# ----------------------------------------------------------------------------- facts


def _run(cmd: list[str], **kw: Any) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return out.stdout.strip()


def machine_facts(ft_python: str | None) -> dict[str, Any]:
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    virt = "?"
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Hypervisor vendor:"):
            virt = line.split(":", 1)[1].strip()
    facts: dict[str, Any] = {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "virtualization": virt if virt not in ("?", "") else None,
        "loadavg_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "rustc": _run(["rustc", "--version"]),
        "cargo": _run(["cargo", "--version"]),
        "commit": _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "dirty": _run(
            [
                "git",
                "--no-optional-locks",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--",
                "src",
                "python",
            ]
        )
        not in ("", "?"),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "build": extension_build(),
    }
    if ft_python:
        facts["ft_python"] = _run(
            [ft_python, "-c", "import sys; print(sys.version.split()[0] + 't')"]
        )
    return facts


def extension_build() -> dict[str, Any]:
    """Where resilience._core was loaded from and whether it carries debug info."""
    import resilience._core as core

    path = Path(core.__file__ or "")
    data = path.read_bytes() if path.is_file() else b""
    sections = elf_sections(data)
    return {
        "path": str(path),
        "size_kib": round(len(data) / 1024),
        "debug_info": ".debug_info" in sections,
        "stripped": ".symtab" not in sections,
        "in_source_tree": ROOT / "python" in path.parents,
    }


def elf_sections(data: bytes) -> set[str]:
    """Section names of a 64-bit little-endian ELF file (empty if it is not one)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return set()
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(data[0x3E:0x40], "little")

    def header(i: int) -> tuple[int, int, int]:
        at = shoff + i * shentsize
        name = int.from_bytes(data[at : at + 4], "little")
        offset = int.from_bytes(data[at + 0x18 : at + 0x20], "little")
        size = int.from_bytes(data[at + 0x20 : at + 0x28], "little")
        return name, offset, size

    _, str_off, str_size = header(shstrndx)
    names = data[str_off : str_off + str_size]
    found = set()
    for i in range(shnum):
        name = header(i)[0]
        found.add(names[name : names.index(b"\0", name)].decode("ascii", "replace"))
    return found


# ----------------------------------------------------------------------------- gathering


def run_json(cmd: list[str], what: str) -> dict[str, Any]:
    """Runs a harness that writes JSON to the path appended to ``cmd``; echoes its output."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        print(f"\n== {what}: {' '.join(cmd)}", flush=True)
        proc = subprocess.run([*cmd, "--json", str(out)], cwd=tmp, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"report: {what} failed with exit status {proc.returncode}")
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data


def read_criterion(directory: Path) -> dict[str, dict[str, float]]:
    """``{case: {"wall": ns, "cpu": ns}}`` from criterion's estimates (median point)."""
    found: dict[str, dict[str, float]] = {}
    for case, _ in CORE_CASES:
        group, bench = case.split("/")
        for kind in ("wall", "cpu"):
            est = directory / f"{kind}_{group}" / bench / "new" / "estimates.json"
            if est.is_file():
                data = json.loads(est.read_text(encoding="utf-8"))
                found.setdefault(case, {})[kind] = float(data["median"]["point_estimate"])
    return found


def core_targets(core: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    out = []
    for kind in ("wall", "cpu"):
        value = core.get("breaker/acquire_record_success", {}).get(kind)
        status = "N/A" if value is None else ("PASS" if value <= CORE_TARGET_NS else "MISS")
        out.append(
            {
                "target": f"core acquire + record success, single thread ({kind} clock), ns",
                "value": value,
                "op": "<=",
                "limit": CORE_TARGET_NS,
                "status": status,
            }
        )
    return out


# ----------------------------------------------------------------------------- formatting


def fmt_value(t: dict[str, Any]) -> str:
    v = t["value"]
    if v is None:
        return "n/a"
    if "RSS" in t["target"]:
        return f"{v:.0f} B"
    if "ns" in t["target"].split(",")[-1]:
        return f"{v:.0f} ns" if v >= 100 else f"{v:.1f} ns"
    return f"{v:.2f}x"


def fmt_limit(t: dict[str, Any]) -> str:
    if "RSS" in t["target"]:
        return f"{t['op']} {t['limit']:g} B"
    unit = " ns" if "ns" in t["target"].split(",")[-1] else "x"
    return f"{t['op']} {t['limit']:g}{unit}"


def all_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    targets += core_targets(results["core"])
    targets += results["python"]["targets"]
    targets.append(results["memory"]["target"])
    if results.get("ft"):
        targets.append(results["ft"]["target"])
    return targets


def print_summary(results: dict[str, Any]) -> None:
    core = results["core"]
    print("\n== Rust core (cargo bench --bench core; criterion median, ns/op)")
    if not core:
        print("no criterion estimates found (cargo bench not run?)")
    for case, label in CORE_CASES:
        if case in core:
            row = core[case]
            print(
                f"{label:<48} wall {row.get('wall', float('nan')):8.1f}   "
                f"cpu {row.get('cpu', float('nan')):8.1f}"
            )
    print("\n== Targets (Python figures from the wall clock; CPU-time check in brackets)")
    cpu_by_name = {t["target"]: t for t in results["python"].get("cpu_targets", [])}
    for t in all_targets(results):
        extra = ""
        if t["target"] in cpu_by_name:
            c = cpu_by_name[t["target"]]
            extra = f"   [cpu: {fmt_value(c)} {c['status']}]"
        print(f"{t['status']:<4}  {t['target']}: {fmt_value(t)} (target {fmt_limit(t)}){extra}")
    if results.get("ft"):
        c = results["ft"]["cpu_target"]
        print(f"{c['status']:<4}  {c['target']}: {fmt_value(c)} (target {fmt_limit(c)})")


def markdown(results: dict[str, Any]) -> str:
    m, py, mem, ft, core = (
        results["machine"],
        results["python"],
        results["memory"],
        results.get("ft"),
        results["core"],
    )
    rows = py["rows"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        "Generated by `make bench` (`benches/report.py --write BENCHMARKS.md`) from one real run; "
        "do not edit by hand. `make bench-smoke` runs the same harness briefly (CI) and writes "
        "nothing."
    )
    add("")
    add("## Machine and versions")
    add("")
    load = ", ".join(f"{x:.1f}" for x in m["loadavg_start"])
    load_end = ", ".join(f"{x:.1f}" for x in m["loadavg_end"])
    build = m["build"]
    add(f"- Date: {m['date']}; commit `{m['commit']}`{' (+ uncommitted changes)' * m['dirty']}")
    add(
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB"
        f"{', ' + m['virtualization'] + ' guest' if m['virtualization'] else ''}; "
        f"Linux {m['kernel']}"
    )
    add(
        f"- Load average (1, 5, 15 min): {load} at the start, {load_end} at the end. The machine "
        "is shared with other busy processes: every figure comes from interleaved rounds (each "
        "case once per round, shuffled) and medians, so the noise falls on all cases alike; "
        "absolute nanoseconds are inflated by it, ratios much less."
    )
    add(f"- {m['rustc']}; {m['cargo']}")
    add(
        f"- Python {m['python']} ({m['python_impl']}); free-threaded: "
        f"{m.get('ft_python', 'not measured')}"
    )
    add(
        f"- resilience extension: {build['size_kib']} KiB, "
        f"{'with debug info (NOT a release build?)' if build['debug_info'] else 'no debug info'}, "
        f"{'stripped' if build['stripped'] else 'with symbols'}; "
        f"{'in the source tree' if build['in_source_tree'] else 'installed from a wheel'}"
    )
    versions = ", ".join(f"{k} {v}" for k, v in sorted(py["versions"].items()) if k != "python")
    add(f"- Packages: {versions}")
    for s in py["skipped"]:
        add(f"- Not measured: **{s['package']}**: {s['reason']}")
    add("")

    add("## Targets")
    add("")
    add("| target | figure | limit | result |")
    add("| --- | ---: | ---: | :---: |")
    cpu_by_name = {t["target"]: t for t in py.get("cpu_targets", [])}
    for t in all_targets(results):
        status = t["status"]
        if t["target"] in cpu_by_name:
            c = cpu_by_name[t["target"]]
            status += f" (CPU clock: {fmt_value(c)}, {c['status']})"
        add(f"| {t['target']} | {fmt_value(t)} | {fmt_limit(t)} | {status} |")
    if ft:
        c = ft["cpu_target"]
        add(
            f"| free-threaded scaling from CPU time per call | {fmt_value(c)} | {fmt_limit(c)} | "
            f"{c['status']} |"
        )
    add("")
    add("## Reading")
    add("")
    add(reading(results))
    add("")

    add("## Rust core (`cargo bench --bench core`)")
    add("")
    add(
        "Criterion medians, ns per operation. *wall* is criterion's default clock; *CPU* is the "
        "thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), which does not count time spent "
        "descheduled and is the steadier figure on a busy machine. The clock is "
        "`CLOCK_MONOTONIC_COARSE`, read as the binding reads it. Contention rows: ns per "
        "operation per thread."
    )
    add("")
    add("| case | wall ns | CPU ns |")
    add("| --- | ---: | ---: |")
    for case, label in CORE_CASES:
        if case in core:
            row = core[case]
            wall, cpu = row.get("wall", float("nan")), row.get("cpu", float("nan"))
            add(f"| {label} | {wall:.1f} | {cpu:.1f} |")
    if not core:
        add("| (cargo bench was not run) | | |")
    add("")

    add("## Python per-call cost")
    add("")
    add(
        f"`benches/python_overhead.py`: {py['rounds']} interleaved rounds, in each the best of "
        f"{py['reps']} batches of about {py['batch_ms']:g} ms per case, medians. *ns/call* is "
        "the loop's time per iteration less the empty loop's; *overhead* is ns/call less the "
        "floor's (`f()`; `await af()` for async rows); *x ref* divides the overhead by the "
        "reference row's overhead (for rows without a floor, such as rejections, it divides "
        "ns/call by ns/call). *CPU ns* is ns/call from the thread's CPU clock. The garbage "
        "collector stays on, as in production."
    )
    add("")
    add("| case | ns/call | overhead | x ref | ref | CPU ns |")
    add("| --- | ---: | ---: | ---: | --- | ---: |")
    group = None
    for key, row in sorted(rows.items(), key=lambda kv: GROUPS.index(kv[1]["group"])):
        del key
        if row["group"] != group:
            group = row["group"]
            add(f"| **{group}** | | | | | |")
        over = f"{row['overhead']:.1f}" if "overhead" in row else ""
        xref = f"{row['x_ref']:.2f}" if "x_ref" in row else ""
        label = row["label"].replace("|", "\\|")
        add(
            f"| `{label}` | {row['ns']:.1f} | {over} | {xref} | {row['ref'] or ''} | "
            f"{row['cpu_ns']:.1f} |"
        )
    add("")

    add("## Memory")
    add("")
    add(
        f"`benches/memory.py`: {mem['n']:,} breakers with the default config kept alive, each "
        "library in a fresh process. RSS counts everything (the Rust core's heap included); "
        "tracemalloc counts Python's allocator only."
    )
    add("")
    add("| library | RSS delta | RSS per breaker | tracemalloc delta | traced per breaker |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for kind, res in mem["results"].items():
        rss, traced = res["rss"], res["tracemalloc"]
        add(
            f"| {kind} | {rss['bytes'] / 2**20:.1f} MiB | {rss['per']:.0f} B | "
            f"{traced['bytes'] / 2**20:.1f} MiB | {traced['per']:.0f} B |"
        )
    add("")

    add("## Free-threaded scaling")
    add("")
    if ft:
        add(
            f"`benches/ft_scaling.py` on {ft['python'].split()[0]} (GIL "
            f"{'enabled' if ft['gil_enabled'] else 'disabled'}): {ft['rounds']} interleaved "
            f"rounds of {ft['n']:,} calls per thread, medians. *Scaling* is calls/s with 2 "
            "threads over calls/s with 1 (per round, then the median); *CPU scaling* is "
            "2 x (CPU ns per call with 1 thread) / (CPU ns per call with 2 threads), the "
            "scaling two idle cores would give, which the machine's load does not distort."
        )
        add("")
        add(
            "| case | 1 thread | 2 threads | scaling | vs wrapper | CPU ns/call 1 / 2 | "
            "CPU scaling | vs wrapper |"
        )
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in ft["rows"].values():
            add(
                f"| {row['label']} | {row['calls_per_s_1'] / 1e6:.2f} M/s | "
                f"{row['calls_per_s_2'] / 1e6:.2f} M/s | {row['scaling']:.2f}x | "
                f"{row['vs_wrapper']:.2f}x | {row['cpu_ns_1']:.0f} / {row['cpu_ns_2']:.0f} | "
                f"{row['cpu_scaling']:.2f}x | {row['cpu_vs_wrapper']:.2f}x |"
            )
    else:
        add("Not measured: no free-threaded interpreter with resilience installed.")
    add("")

    add("## Method")
    add("")
    add(
        "- The bench environment `.venv-bench` has the release build of the extension "
        "installed from a wheel (not `maturin develop`, which would share "
        "`python/resilience/_core*.so` with `.venv`'s debug build), plus the peers pinned in "
        "`benches/requirements.txt`; `.venv-bench-ft` is the same for the free-threaded "
        "interpreter."
    )
    add(
        "- Every Python case is one statement in a `for` loop compiled for it, with the same "
        "closure-variable access for every case; timings are `time.perf_counter_ns` (wall) "
        "and `time.thread_time_ns` (CPU) around the loop."
    )
    add(
        "- Floors: `f()`; the plain wrapper `def w(): return f()` (the floor for a decorator); "
        "`apply(f)` with `def apply(g): return g()` (the floor for a `x.call(f)` API); native "
        "wrappers calling back into Python (`functools.partial`, `operator.call`); raise + "
        "catch of a plain exception (the floor for a rejection). A forwarding wrapper "
        "`def w(*a, **k): return f(*a, **k)` shows what argument forwarding alone costs."
    )
    add(
        "- The rejected path uses a breaker opened by a real failure (sleep window 1 h), so it "
        "reads the clock and reports `retry_after` as in production."
    )
    add("")
    return "\n".join(lines)


GROUPS = ("floor", "ours", "breaker peers", "retry peers", "async")


def reading(results: dict[str, Any]) -> str:
    """One paragraph stating what the figures say, built from them."""
    py, core, mem, ft = results["python"], results["core"], results["memory"], results.get("ft")
    rows = py["rows"]
    targets = all_targets(results)
    passed = sum(t["status"] == "PASS" for t in targets)
    missed = [t for t in targets if t["status"] == "MISS"]
    parts = [f"{passed} of {len(targets)} targets pass on this run."]

    def ov(key: str) -> str:
        return f"{rows[key]['overhead']:.0f} ns" if key in rows else "n/a"

    if "ours_call" in rows:
        parts.append(
            f"`cb.call(f)` adds {ov('ours_call')} to a bare call, "
            f"{rows['ours_call']['x_ref']:.1f}x what `apply(f)` adds ({ov('apply')}); "
            "the `@cb` decorator adds "
            f"{ov('ours_decorator')}, {rows['ours_decorator']['x_ref']:.1f}x the plain wrapper's "
            f"{ov('wrapper')} (a wrapper that merely forwards `*args, **kwargs` already adds "
            f"{ov('forwarding')})."
        )
    if "pybreaker_call" in rows:
        times = rows["pybreaker_call"]["overhead"] / max(rows["ours_call"]["overhead"], 1e-9)
        parts.append(f"pybreaker adds {ov('pybreaker_call')} per `call` ({times:.0f}x ours).")
    if "ours_rejected" in rows:
        parts.append(
            f"A rejection costs {rows['ours_rejected']['ns']:.0f} ns, "
            f"{rows['ours_rejected']['x_ref']:.1f}x a plain raise + catch "
            f"({rows['raise_catch']['ns']:.0f} ns)."
        )
    if "ours_retry_call" in rows:
        parts.append(
            f"On the success path `Retry.call(f)` adds {ov('ours_retry_call')} and `@retry` "
            f"{ov('ours_retry_decorator')}"
            + (
                f", against tenacity's {ov('tenacity_decorator')} and backoff's "
                f"{ov('backoff_decorator')}."
                if "tenacity_decorator" in rows and "backoff_decorator" in rows
                else "."
            )
        )
    success = core.get("breaker/acquire_record_success")
    if success:
        parts.append(
            f"In Rust, acquire + record success takes {success.get('wall', float('nan')):.0f} ns "
            f"by the wall clock and {success.get('cpu', float('nan')):.0f} ns of CPU"
            + (
                "; reading the whole window (`Window::counts`), which a success does only "
                "when a failure may be in the window, takes "
                f"{core['window/counts'].get('cpu', float('nan')):.0f} ns of CPU on its own."
                if "window/counts" in core
                else "."
            )
        )
    per = mem["results"]["resilience"]["rss"]["per"]
    parts.append(f"A default breaker takes {per:.0f} B of RSS.")
    if ft:
        parts.append(
            f"Free-threaded, a shared breaker scales {ft['rows']['shared']['scaling']:.2f}x from "
            f"1 to 2 threads against the plain wrapper's {ft['rows']['wrapper']['scaling']:.2f}x "
            f"({ft['target']['value']:.2f}x of it; {ft['cpu_target']['value']:.2f}x by CPU time)"
            + (
                f"; with a `functools.partial(cb.call)` per thread, the same shared breaker "
                f"scales {ft['rows']['shared_own_call']['scaling']:.2f}x "
                f"({ft['rows']['shared_own_call']['vs_wrapper']:.2f}x of the wrapper's): the "
                "rest of the gap is CPython 3.13t counting references to the one `call` object "
                "every thread calls, which the core cannot avoid"
                if "shared_own_call" in ft["rows"]
                else ""
            )
            + (
                "; in Rust, two threads on one breaker cost "
                f"{core[two_threads].get('cpu', float('nan')):.0f} ns of CPU per call each"
                if (two_threads := "contention/acquire_record_success_2_threads") in core
                else ""
            )
            + ". On a machine this loaded the wall-clock scaling of every case is limited by "
            "the cores the other processes leave free."
        )
    if missed:
        parts.append(
            f"{len(missed)} target{' is' if len(missed) == 1 else 's are'} missed: the table "
            "above lists " + ("it." if len(missed) == 1 else "them.")
        )
    return " ".join(parts)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="short run for CI; writes nothing")
    parser.add_argument("--write", metavar="PATH", help="write the markdown report (full run)")
    parser.add_argument(
        "--criterion-dir", default=str(ROOT / "target" / "bench" / "criterion"), metavar="DIR"
    )
    default_ft = ROOT / ".venv-bench-ft" / "bin" / "python"
    parser.add_argument(
        "--ft-python",
        default=str(default_ft) if default_ft.exists() else None,
        metavar="PATH",
        help="free-threaded interpreter with resilience installed (default: .venv-bench-ft)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument(
        "--render",
        metavar="JSON",
        help="run nothing: print and --write the report of an earlier run's --json output",
    )
    args = parser.parse_args(argv)
    if args.smoke and args.write:
        parser.error("--write needs a full run, not --smoke")
    if args.render:
        results = json.loads(Path(args.render).read_text(encoding="utf-8"))
        print_summary(results)
        if args.write:
            Path(args.write).write_text(markdown(results) + "\n", encoding="utf-8")
            print(f"\nwrote {args.write}")
        return 0

    machine = machine_facts(args.ft_python)
    if machine["build"]["debug_info"] and not args.smoke:
        print("report: warning: resilience._core carries debug info: not a release build?")
    py_args = ["--smoke"] if args.smoke else []
    results: dict[str, Any] = {"machine": machine}
    results["python"] = run_json(
        [sys.executable, str(HERE / "python_overhead.py"), *py_args], "per-call cost"
    )
    results["memory"] = run_json(
        [sys.executable, str(HERE / "memory.py"), "-n", "3000" if args.smoke else "100000"],
        "memory",
    )
    if args.ft_python:
        results["ft"] = run_json([args.ft_python, str(HERE / "ft_scaling.py"), *py_args], "ft")
    else:
        print("\n== ft: skipped (no free-threaded interpreter; see --ft-python)")
    results["core"] = read_criterion(Path(args.criterion_dir))
    machine["loadavg_end"] = os.getloadavg()

    print_summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.write:
        Path(args.write).write_text(markdown(results) + "\n", encoding="utf-8")
        print(f"\nwrote {args.write}")
    if args.smoke:
        print("\nsmoke run: harness OK (figures from a smoke run are not meaningful)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
