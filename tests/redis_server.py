"""A private ``redis-server`` for the fleet tests, and the worker processes they spawn.

``RedisServer`` starts Debian's ``redis-server`` on a free loopback port with a temporary
directory, no persistence and no protected mode, and can kill, pause and restart it on the same
port. The pytest fixtures ``redis_server`` (one server per test module) and ``own_redis_server``
(one per test, for tests that kill it) skip with a clear message when no ``redis-server``
binary exists, except when ``CI=true``, where they fail instead: CI must run these tests.

The worker functions run in ``multiprocessing`` *forkserver* children (clean processes, like
*spawn*, forked from a server that imported the modules once); each reports a dict of plain
data on a queue. Every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue as queue_module
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One private redis-server process on 127.0.0.1."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="resilience-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Starts the server (again, on the same port) and waits until it answers PING."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye, its data with it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server accepts connections but answers nothing (a 'slow' Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stops the server and removes its directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` client for this server."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)


def require_redis_py() -> None:
    """Skips the calling test module when redis-py is missing, or fails it when ``CI=true``."""
    try:
        import redis  # noqa: F401
    except ImportError:
        message = "redis-py is not installed (pip install 'resilience-rs[redis]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true forbids skipping the fleet tests", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def _need_binary() -> str:
    if REDIS_SERVER is None:
        message = (
            "redis-server is not installed (apt-get install -y redis-server); "
            "the fleet-breaker tests need a real one"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true forbids skipping them")
        pytest.skip(message)
    return REDIS_SERVER


@contextlib.contextmanager
def running_server() -> Iterator[RedisServer]:
    """A started server, stopped on exit."""
    server = RedisServer(_need_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the whole test module."""
    with running_server() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server for one test (it may kill or pause it)."""
    with running_server() as server:
        yield server


# ----------------------------------------------------------------------------------------------
# Worker processes (spawned). Each takes one dict of parameters and a result queue.
# ----------------------------------------------------------------------------------------------


class DependencyDown(ConnectionError):
    """What the simulated dependency raises while it is failing."""


def _make_breaker(p: dict[str, Any], probe: bool = False) -> Any:
    import redis
    import redis.asyncio as aredis

    from resilience import CircuitBreaker, CircuitBreakerConfig
    from resilience.redis import SharedCircuitBreaker, _Trial

    config = CircuitBreakerConfig(name=p["name"], **p["config"])
    if not p.get("shared", True):
        return CircuitBreaker(config)
    kind = aredis.Redis if p.get("asyncio") else redis.Redis
    client = kind(host="127.0.0.1", port=p["port"])

    class Probe(SharedCircuitBreaker):
        """Remembers which fleet trial admitted the current call."""

        last: Any = None
        grants: list[str]

        def _admit_remote(self) -> Any:
            ticket = super()._admit_remote()
            if isinstance(ticket, _Trial):
                self.last = ticket.tag
                self.grants.append(ticket.tag)
            return ticket

    cls = Probe if probe else SharedCircuitBreaker
    cb = cls(
        config,
        redis=client,
        key_prefix=p["prefix"],
        sync_interval=p["sync_interval"],
        timeout=p.get("timeout", 0.5),
    )
    if probe:
        cb.grants = []
    return cb


def _wait_for_start(p: dict[str, Any], ready: Any, go: Any, start: Any) -> None:
    ready.put(os.getpid())
    if not go.wait(timeout=60):
        raise TimeoutError("the parent never said go")
    p["start"] = start.value
    if p.get("fail_from") is not None:
        p["fail_from"] += start.value
    if p.get("fail_until") is not None:
        p["fail_until"] += start.value


def fleet_worker(p: dict[str, Any], queue: Any, ready: Any, go: Any, start: Any) -> None:
    """Calls a dependency at a steady pace from ``p["start"]`` (wall clock) for
    ``p["duration"]`` seconds. The dependency fails between ``p["fail_from"]`` and
    ``p["fail_until"]`` (wall clock, None = never/forever). Reports every attempt."""
    try:
        queue.put(_fleet_worker(p, ready, go, start))
    except BaseException as exc:  # report, never hang the parent
        queue.put({"error": repr(exc)})


def _fleet_worker(p: dict[str, Any], ready: Any, go: Any, start: Any) -> dict[str, Any]:
    from resilience import CircuitBreakerOpenError, CircuitState

    cb = _make_breaker(p, probe=p.get("probe", False))
    coordination_at_start = cb.metrics().get("coordination")
    _wait_for_start(p, ready, go, start)
    transitions: list[tuple[float, str, str]] = []
    cb.add_state_listener(lambda _n, a, b: transitions.append((time.time(), a.value, b.value)))
    fail_from = p.get("fail_from")
    fail_until = p.get("fail_until")
    untracked: list[str] = []

    def dependency() -> str:
        now = time.time()
        st = cb.state
        if p.get("probe") and cb.last is None and st is not CircuitState.CLOSED:
            untracked.append(st.value)
        if fail_from is not None and now >= fail_from and (fail_until is None or now < fail_until):
            raise DependencyDown("dependency is down")
        return "ok"

    ready_at = time.time()
    while time.time() < p["start"]:
        time.sleep(0.001)
    attempts: list[tuple[float, str]] = []
    others: list[str] = []
    end = p["start"] + p["duration"]
    pace = p["pace"]
    next_call = time.time()
    while time.time() < end:
        if p.get("probe"):
            cb.last = None
        t = time.time()
        try:
            if p.get("asyncio"):
                raise AssertionError("use async_fleet_worker for asyncio")
            cb.call(dependency)
            attempts.append((t, "ok"))
        except DependencyDown:
            attempts.append((t, "fail"))
        except CircuitBreakerOpenError:
            attempts.append((t, "rejected"))
        except Exception as exc:
            others.append(repr(exc))
        next_call += pace
        delay = next_call - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            next_call = time.time()
    m = cb.metrics()
    result = {
        "attempts": attempts,
        "transitions": transitions,
        "others": others,
        "coordination": m.get("coordination"),
        "coordination_at_start": coordination_at_start,
        "ready_late": ready_at > p["start"],
        "grants": list(getattr(cb, "grants", [])),
        "untracked": untracked,
        "metrics": {k: v for k, v in m.items() if k != "state"},
    }
    if hasattr(cb, "close"):
        cb.close()
    return result


def async_fleet_worker(p: dict[str, Any], queue: Any, ready: Any, go: Any, start: Any) -> None:
    """The asyncio twin of ``fleet_worker``: a ``redis.asyncio`` client and ``call_async``."""
    try:
        queue.put(asyncio.run(_async_fleet_worker(p, ready, go, start)))
    except BaseException as exc:
        queue.put({"error": repr(exc)})


async def _async_fleet_worker(p: dict[str, Any], ready: Any, go: Any, start: Any) -> dict[str, Any]:
    from resilience import CircuitBreakerOpenError, CircuitState

    cb = _make_breaker(p, probe=p.get("probe", False))
    coordination_at_start = cb.metrics().get("coordination")
    _wait_for_start(p, ready, go, start)
    transitions: list[tuple[float, str, str]] = []
    cb.add_state_listener(lambda _n, a, b: transitions.append((time.time(), a.value, b.value)))
    fail_from = p.get("fail_from")
    fail_until = p.get("fail_until")
    untracked: list[str] = []

    async def dependency() -> str:
        now = time.time()
        st = cb.state
        if p.get("probe") and cb.last is None and st is not CircuitState.CLOSED:
            untracked.append(st.value)
        await asyncio.sleep(0)
        if fail_from is not None and now >= fail_from and (fail_until is None or now < fail_until):
            raise DependencyDown("dependency is down")
        return "ok"

    while time.time() < p["start"]:
        await asyncio.sleep(0.001)
    attempts: list[tuple[float, str]] = []
    others: list[str] = []
    end = p["start"] + p["duration"]
    pace = p["pace"]
    next_call = time.time()
    while time.time() < end:
        if p.get("probe"):
            cb.last = None
        t = time.time()
        try:
            await cb.call_async(dependency)
            attempts.append((t, "ok"))
        except DependencyDown:
            attempts.append((t, "fail"))
        except CircuitBreakerOpenError:
            attempts.append((t, "rejected"))
        except Exception as exc:
            others.append(repr(exc))
        next_call += pace
        delay = next_call - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            next_call = time.time()
    m = cb.metrics()
    result = {
        "attempts": attempts,
        "transitions": transitions,
        "others": others,
        "coordination": m.get("coordination"),
        "coordination_at_start": coordination_at_start,
        "ready_late": False,
        "grants": list(getattr(cb, "grants", [])),
        "untracked": untracked,
        "metrics": {k: v for k, v in m.items() if k != "state"},
    }
    if hasattr(cb, "close"):
        cb.close()
    return result


def run_workers(params: list[dict[str, Any]], timeout: float = 40.0) -> list[dict[str, Any]]:
    """Runs one spawned worker per parameter dict; returns their reports in order."""
    import multiprocessing

    # forkserver: every worker starts from a clean single-threaded server process (like spawn)
    # that imported redis-py and resilience once, instead of paying ~2 s of imports each.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["redis_server", "resilience.redis"])
    queues = [ctx.Queue() for _ in params]
    ready = ctx.Queue()
    go = ctx.Event()
    start = ctx.Value("d", 0.0)
    procs = []
    for p, q in zip(params, queues, strict=True):
        target = async_fleet_worker if p.get("asyncio") else fleet_worker
        proc = ctx.Process(target=target, args=(p, q, ready, go, start), daemon=True)
        proc.start()
        procs.append(proc)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        waiting = len(procs)
        while waiting:
            if time.monotonic() > deadline:
                raise AssertionError("workers did not get ready in time")
            try:
                ready.get(timeout=0.2)
                waiting -= 1
            except queue_module.Empty:
                for q in queues:  # a worker that failed before getting ready reports here
                    early = None
                    with contextlib.suppress(queue_module.Empty):
                        early = q.get_nowait()
                    if early is not None:
                        raise AssertionError(f"worker failed early: {early}") from None
        start.value = time.time() + 0.3
        go.set()
        for q in queues:
            results.append(q.get(timeout=max(0.1, deadline - time.monotonic())))
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    for r in results:
        if "error" in r:
            raise AssertionError(f"worker failed: {r['error']}")
    return results
