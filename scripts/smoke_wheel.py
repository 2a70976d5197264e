#!/usr/bin/env python3
"""Smoke-test an installed resilience-rs: the one a user got from ``pip install``.

Run it with the interpreter of a fresh venv that has only the wheel (or the sdist) installed,
from a directory outside the source tree, so ``import resilience`` can only find the installed
package::

    cd "$(mktemp -d)" && /path/to/venv/bin/python -I smoke_wheel.py --expect-version 0.1.0

It checks that the package imports from site-packages, that ``__version__`` and the installed
metadata agree with the expected version, that the metadata is complete (summary, readme,
license, classifiers, URLs, extras) and ``py.typed`` and ``_core.pyi`` were installed, drives a
breaker through closed -> open -> half-open -> closed on a ManualClock, runs retries that succeed
and give up, hammers one breaker from several threads, and with ``--free-threaded`` that the GIL
is still off after the import. It prints one line per check and exits 1 if any failed.

Standard library only; Python 3.10+.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import sysconfig
import threading
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIST = "resilience-rs"
REQUIRED_EXTRAS = ("prometheus", "otel")
REQUIRED_CLASSIFIERS = (
    "Programming Language :: Python :: Free Threading",
    "Typing :: Typed",
)

failures: list[str] = []
passed: list[str] = []


def check(name: str) -> Callable[[Callable[[], str | None]], Callable[[], str | None]]:
    """Runs the decorated function at once as one named check; its return value is the detail."""

    def run(fn: Callable[[], str | None]) -> Callable[[], str | None]:
        try:
            detail = fn()
        except Exception as exc:  # a failed check is reported, never fatal to the others
            failures.append(name)
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}")
            if os.environ.get("SMOKE_VERBOSE"):
                traceback.print_exc()
        else:
            passed.append(name)
            print(f"ok    {name}" + (f" ({detail})" if detail else ""))
        return fn

    return run


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-version", required=True, help="the wheel's or sdist's version")
    parser.add_argument(
        "--free-threaded",
        action="store_true",
        help="the interpreter is free-threaded: check the GIL stays disabled after the import",
    )
    parser.add_argument(
        "--extras",
        default=",".join(REQUIRED_EXTRAS),
        help="comma-separated extras the metadata must provide (default: %(default)s)",
    )
    parser.add_argument(
        "--source-tree",
        type=Path,
        help="the checkout the package was built from; importing from it is a failure",
    )
    args = parser.parse_args()

    print(f"smoke: {sys.executable} (Python {sys.version.split()[0]}, {sys.implementation.name})")
    gil_disabled_build = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if "PYTHON_GIL" in os.environ:
        print(
            f"note  PYTHON_GIL={os.environ['PYTHON_GIL']} is set; the GIL check may not mean much"
        )

    modules: dict[str, object] = {}

    @check("import resilience from site-packages")
    def _import() -> str:
        import resilience

        modules["resilience"] = resilience
        location = Path(resilience.__file__).resolve().parent
        site_dirs = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
        expect(
            location.parent in site_dirs,
            f"imported from {location}, not from this interpreter's site-packages {site_dirs}",
        )
        if args.source_tree is not None:
            tree = args.source_tree.resolve()
            expect(
                tree != location and tree not in location.parents,
                f"imported from the source tree {tree}",
            )
        return str(location)

    if "resilience" not in modules:
        print("smoke: cannot import resilience; nothing else to check")
        return 1

    import resilience
    from resilience import (
        CircuitBreaker,
        CircuitBreakerOpenError,
        CircuitState,
        Retry,
        RetryConfig,
        RetryError,
    )
    from resilience.testing import ManualClock

    @check("extension module")
    def _extension() -> str:
        from resilience import _core

        name = Path(_core.__file__ or "").name
        expect(name.startswith("_core."), f"unexpected extension file {name}")
        if gil_disabled_build:
            expect(
                "abi3" not in name, f"{name}: the abi3 module cannot load on a free-threaded build"
            )
        return name

    @check("version")
    def _version() -> str:
        from importlib.metadata import version

        expect(
            resilience.__version__ == args.expect_version,
            f"resilience.__version__ is {resilience.__version__!r}, "
            f"expected {args.expect_version!r} (the version in the file name)",
        )
        installed = version(DIST)
        expect(
            installed == args.expect_version,
            f"installed distribution is {installed!r}, expected {args.expect_version!r}",
        )
        return resilience.__version__

    @check("metadata")
    def _metadata() -> str:
        from importlib.metadata import metadata

        meta: Any = metadata(DIST)  # an email.message.Message at run time
        expect(bool(meta.get("Summary")), "no Summary")
        expect(
            "markdown" in (meta.get("Description-Content-Type") or ""),
            "the long description is not the Markdown README",
        )
        expect(len(meta.get_payload() or meta.get("Description") or "") > 200, "no README")
        license_text = meta.get("License-Expression") or meta.get("License") or ""
        expect("MIT" in license_text, f"license is {license_text!r}")
        classifiers = meta.get_all("Classifier") or []
        for wanted in REQUIRED_CLASSIFIERS:
            expect(wanted in classifiers, f"classifier {wanted!r} missing")
        urls = meta.get_all("Project-URL") or []
        expect(len(urls) >= 2, f"project URLs: {urls}")
        extras = set(meta.get_all("Provides-Extra") or [])
        wanted_extras = {e for e in args.extras.split(",") if e}
        expect(wanted_extras <= extras, f"extras {sorted(wanted_extras - extras)} missing")
        expect(
            meta.get("Requires-Python") == ">=3.10",
            f"Requires-Python {meta.get('Requires-Python')}",
        )
        return f"{len(classifiers)} classifiers, extras {sorted(extras)}, license {license_text}"

    @check("py.typed and _core.pyi installed")
    def _typing_files() -> None:
        from importlib.metadata import files

        installed = {str(f).replace("\\", "/") for f in files(DIST) or []}
        for wanted in ("resilience/py.typed", "resilience/_core.pyi"):
            expect(wanted in installed, f"{wanted} is not in the installed files")
            package_dir = Path(resilience.__file__).parent
            expect((package_dir / Path(wanted).name).is_file(), f"{wanted} is not on disk")

    class Flaky(ConnectionError):
        """A transient error: the default classifier counts ConnectionError as a failure."""

    def fail() -> None:
        raise Flaky("dependency down")

    @check("breaker closed -> open -> half-open -> closed")
    def _breaker() -> str:
        clock = ManualClock()
        cb = CircuitBreaker(
            name="smoke",
            clock=clock,
            volume_threshold=4,
            error_threshold=0.5,
            sleep_window=5.0,
            half_open_requests=1,
            success_threshold=1.0,
        )
        transitions: list[tuple[str, str]] = []
        cb.add_state_listener(lambda _name, old, new: transitions.append((str(old), str(new))))

        expect(cb.call(lambda x: x * 2, 21) == 42, "a call through a closed breaker")
        for _ in range(3):  # 3 failures of 4 outcomes: volume and error rate both reached
            try:
                cb.call(fail)
            except Flaky:
                pass
            else:
                raise AssertionError("the failure did not pass through")
        expect(cb.state == CircuitState.OPEN, f"after 3 of 4 failed: {cb.state}")

        try:
            cb.call(lambda: "should not run")
        except CircuitBreakerOpenError as exc:
            wait = exc.retry_after
            expect(wait is not None and 0 < wait <= 5.0, f"retry_after {wait}")
        else:
            raise AssertionError("an open breaker admitted a call")

        clock.advance(5.0)
        seen_inside: list[CircuitState] = []

        def trial() -> str:
            seen_inside.append(cb.state)
            return "recovered"

        expect(cb.call(trial) == "recovered", "the trial call's result")
        expect(seen_inside == [CircuitState.HALF_OPEN], f"state during the trial: {seen_inside}")
        expect(cb.state == CircuitState.CLOSED, f"after a successful trial: {cb.state}")
        expected = [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
        expect(transitions == expected, f"transitions {transitions}")
        metrics = cb.metrics()
        expect(metrics["rejected"] == 1, f"metrics {metrics}")
        return " -> ".join(["closed"] + [new for _, new in transitions])

    @check("retry with backoff on a manual clock")
    def _retry() -> str:
        clock = ManualClock()
        policy = Retry(
            RetryConfig(
                max_attempts=3, initial_delay=1.0, backoff_factor=2.0, jitter=False, clock=clock
            )
        )
        attempts = []

        def twice_then_ok() -> str:
            attempts.append(clock.now())
            if len(attempts) < 3:
                raise Flaky("not yet")
            return "ok"

        start = clock.now()
        expect(policy.call(twice_then_ok) == "ok", "the third attempt's result")
        expect(
            [round(t - start, 6) for t in attempts] == [0.0, 1.0, 3.0],
            f"attempt times {attempts}",
        )
        try:
            policy.call(fail)
        except RetryError as exc:
            expect(exc.attempts == 3, f"gave up after {exc.attempts} attempts")
            expect(isinstance(exc.last_exception, Flaky), f"last exception {exc.last_exception!r}")
        else:
            raise AssertionError("a call that always fails did not raise RetryError")
        with contextlib.suppress(ValueError):  # not transient: raised at once, untouched
            policy.call(lambda: int("not a number"))
        stats = policy.statistics
        expect(
            (stats.calls, stats.attempts, stats.retries, stats.exhausted) == (3, 7, 4, 1),
            f"statistics {stats}",
        )
        return f"slept {stats.total_slept:g}s on the manual clock"

    @check("threads share one breaker")
    def _threads() -> str:
        cb = CircuitBreaker(name="threads", volume_threshold=10**9)
        n_threads, per_thread = 4, 5_000
        barrier = threading.Barrier(n_threads)

        def work() -> None:
            barrier.wait()
            call = cb.call
            for i in range(per_thread):
                call(int, i)

        threads = [threading.Thread(target=work) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = cb.metrics()
        expect(
            metrics["success"] == n_threads * per_thread and metrics["in_flight"] == 0,
            f"metrics {metrics}",
        )
        return f"{n_threads} x {per_thread} calls counted exactly"

    @check("decorated functions and methods")
    def _decorated() -> str:
        cb = CircuitBreaker(name="decorated")

        @cb
        def add(a: int, b: int = 2) -> int:
            """Adds."""
            return a + b

        class Client:
            @cb
            def who(self, tag: str) -> tuple[object, str]:
                return self, tag

        client = Client()
        expect(add(1) == 3 and add(1, b=5) == 6, "arguments not forwarded")
        expect((add.__name__, add.__doc__) == ("add", "Adds."), "metadata not copied")
        expect(client.who("x") == (client, "x"), "method did not receive self")
        expect(client.who.__self__ is client, "bound method has the wrong self")
        ref = weakref.ref(add)
        expect(ref() is add, "no weak reference to a decorated function")
        called = cb.metrics()["success"]
        expect(called == 3, f"{called} calls counted, expected 3")
        return f"{type(add).__qualname__}: vectorcall, binding and weak references"

    if args.free_threaded:

        @check("GIL still disabled after import")
        def _gil() -> str:
            expect(gil_disabled_build, "this interpreter is not a free-threaded build")
            is_enabled = getattr(sys, "_is_gil_enabled", None)
            if is_enabled is None:
                raise AssertionError("sys._is_gil_enabled is missing")
            expect(not is_enabled(), "importing resilience turned the GIL back on")
            return "sys._is_gil_enabled() is False"

    else:

        @check("GIL build")
        def _gil_build() -> None:
            expect(not gil_disabled_build, "free-threaded interpreter: run with --free-threaded")

    if failures:
        print(f"smoke: FAILED {len(failures)} check(s): {', '.join(failures)}")
        return 1
    print(f"smoke: all {len(passed)} checks passed for {DIST} {args.expect_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
