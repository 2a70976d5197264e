"""The ways to run a call through a breaker (call, call_async, decorator, with, async with,
call_with_timeout), what they do with exceptions, and what they tell callbacks, logs and metrics."""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest

from resilience import CircuitBreakerOpenError, CircuitState

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Upstream:
    class Unavailable(ConnectionError):
        """Nested, so its __qualname__ differs from its __name__."""


def ok() -> str:
    return "ok"


def boom() -> None:
    raise ConnectionError("down")


def drive(coro: Any) -> Any:
    """Runs a coroutine that never really suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


def run_with(cb, fn):
    with cb:
        return fn()


async def run_async_with(cb, fn):
    async with cb:
        return fn()


def as_async(fn: Callable[[], Any]) -> Callable[[], Any]:
    async def afn() -> Any:
        return fn()

    return afn


RUNNERS: dict[str, Callable[[Any, Callable[[], Any]], Any]] = {
    "call": lambda cb, fn: cb.call(fn),
    "call_async": lambda cb, fn: drive(cb.call_async(as_async(fn))),
    "decorator": lambda cb, fn: cb(fn)(),
    "async decorator": lambda cb, fn: drive(cb(as_async(fn))()),
    "with": run_with,
    "async with": lambda cb, fn: drive(run_async_with(cb, fn)),
    "call_with_timeout": lambda cb, fn: cb.call_with_timeout(10, fn),
}


def opened_then_half_open(cb, clock) -> None:
    with pytest.raises(ConnectionError):
        cb.call(boom)
    clock.advance(30)


# ----- every way of calling ----------------------------------------------------------------------


@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
def test_every_runner_returns_the_result_and_counts_outcomes(runner, make_breaker):
    cb = make_breaker(volume_threshold=2)
    assert runner(cb, ok) == "ok"
    with pytest.raises(ConnectionError):
        runner(cb, boom)
    assert cb.state is OPEN
    called = []
    with pytest.raises(CircuitBreakerOpenError):
        runner(cb, lambda: called.append(1))
    assert called == []
    m = cb.metrics()
    assert (m["success"], m["failure"], m["rejected"], m["in_flight"]) == (1, 1, 1, 0)


@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
def test_exception_passes_through_as_the_same_object_with_its_traceback(runner, make_breaker):
    cb = make_breaker()
    original = Upstream.Unavailable("the original")

    def raise_original() -> None:
        raise original

    with pytest.raises(Upstream.Unavailable) as info:
        runner(cb, raise_original)
    assert info.value is original
    frames, tb = [], original.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    assert raise_original.__code__ in frames
    assert cb.metrics()["failure"] == 1


@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exception_is_never_counted_and_gives_the_trial_slot_back(
    signal, runner, make_breaker, clock, collector
):
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    opened_then_half_open(cb, clock)

    def interrupted() -> None:
        raise signal()

    with pytest.raises(signal):
        runner(cb, interrupted)
    m = cb.metrics()
    assert (cb.state, m["in_flight"], m["half_open_in_flight"], m["failure"]) == (HALF, 0, 0, 1)
    assert cb.call(ok) == "ok"  # the slot came back: the next trial closes the breaker
    assert cb.state is CLOSED
    assert [e[0] for e in collector.events if e[0] in ("success", "failure")] == [
        "failure",
        "success",
    ]


@pytest.mark.parametrize("style", ["call_async", "decorator", "async with"])
def test_half_open_gives_slot_back_on_cancelled_call(style, make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    opened_then_half_open(cb, clock)

    async def scenario() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        async def in_block() -> None:
            async with cb:
                await hang()

        call = {"call_async": lambda: cb.call_async(hang), "decorator": cb(hang)}.get(
            style, in_block
        )
        task = asyncio.create_task(call())
        await started.wait()
        assert cb.metrics()["half_open_in_flight"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        m = cb.metrics()
        assert (cb.state, m["in_flight"], m["half_open_in_flight"]) == (HALF, 0, 0)
        assert await cb.call_async(as_async(ok)) == "ok"

    asyncio.run(scenario())
    assert cb.state is CLOSED


# ----- decorator ---------------------------------------------------------------------------------


def test_decorator_keeps_name_doc_signature_and_sync_or_async_nature(make_breaker):
    cb = make_breaker()

    def fetch(url: str, *, retries: int = 3) -> str:
        """Fetches url."""
        return url * retries

    async def afetch(url: str, *, retries: int = 3) -> str:
        """Fetches url, asynchronously."""
        return url * retries

    for fn, wrapped in ((fetch, cb(fetch)), (afetch, cb(afetch))):
        assert (wrapped.__name__, wrapped.__qualname__, wrapped.__doc__) == (
            fn.__name__,
            fn.__qualname__,
            fn.__doc__,
        )
        assert wrapped.__wrapped__ is fn
        assert inspect.signature(wrapped) == inspect.signature(fn)
        assert inspect.iscoroutinefunction(wrapped) is inspect.iscoroutinefunction(fn)
    assert cb(fetch)("a", retries=2) == "aa"
    assert asyncio.run(cb(afetch)("b", retries=2)) == "bb"
    assert cb.metrics()["success"] == 2


def test_decorated_methods_receive_self_sync_and_async(make_breaker):
    cb = make_breaker()

    class Client:
        @cb
        def get(self, key: str) -> tuple[object, str]:
            return self, key

        @cb
        async def aget(self, key: str) -> tuple[object, str]:
            return self, key

    client = Client()
    assert client.get("k") == (client, "k")
    assert asyncio.run(client.aget("k")) == (client, "k")
    assert Client.get(client, "u") == (client, "u")  # through the class, like a function
    assert cb.metrics()["success"] == 3


def test_decorating_something_not_callable_is_a_type_error(make_breaker):
    with pytest.raises(TypeError, match="callable"):
        make_breaker()(42)


# ----- with / async with -------------------------------------------------------------------------


def test_nested_blocks_on_one_breaker_are_each_an_outcome(make_breaker):
    cb = make_breaker(volume_threshold=100)
    with pytest.raises(ConnectionError), cb, cb:
        raise ConnectionError("leaves both blocks")
    m = cb.metrics()
    assert (m["failure"], m["total_executions"], m["in_flight"]) == (2, 2, 0)


def test_nested_blocks_complete_their_own_permits(make_breaker):
    cb = make_breaker(volume_threshold=1)
    with cb:  # admitted before the reset: its success must not count
        cb.reset()
        with pytest.raises(ConnectionError), cb:  # admitted after it: its failure counts
            raise ConnectionError("inner")
    m = cb.metrics()
    assert (cb.state, m["success"], m["failure"]) == (OPEN, 0, 1)


def test_blocks_of_two_breakers_left_out_of_order_each_finish_their_own_permit(make_breaker):
    a = make_breaker(name="a", volume_threshold=100)
    b = make_breaker(name="b", volume_threshold=100)
    a.__enter__()
    b.__enter__()
    a.reset()  # a's permit is from before the reset: its outcome must not count
    a.__exit__(ConnectionError, ConnectionError("a"), None)  # a leaves first, b still open
    b.__exit__(None, None, None)
    assert (a.metrics()["failure"], a.metrics()["in_flight"]) == (0, 0)
    assert (b.metrics()["success"], b.metrics()["in_flight"]) == (1, 0)
    with a:  # the list of open blocks is empty again: a fresh block works
        pass
    assert a.metrics()["success"] == 1


def test_exit_without_enter_is_a_runtime_error_naming_the_breaker(make_breaker):
    cb = make_breaker(name="lonely")
    with pytest.raises(RuntimeError, match="'lonely': __exit__ without a matching __enter__"):
        cb.__exit__(None, None, None)
    other = make_breaker(name="other")
    with other, pytest.raises(RuntimeError, match="lonely"):
        cb.__exit__(None, None, None)
    assert other.metrics()["success"] == 1  # the open block of another breaker is untouched


def test_blocks_in_threads_do_not_mix_permits(make_breaker):
    cb = make_breaker(volume_threshold=10**6)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(fail: bool) -> None:
        start.wait()
        for _ in range(500):
            try:
                with cb:
                    if fail:
                        raise ConnectionError("down")
            except ConnectionError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = cb.metrics()
    assert errors == []
    assert (m["success"], m["failure"], m["in_flight"]) == (2000, 2000, 0)


def test_concurrent_async_with_blocks_in_tasks_do_not_mix_permits(make_breaker):
    cb = make_breaker(volume_threshold=1)

    async def scenario() -> None:
        a_in, b_in, a_go, b_go = (asyncio.Event() for _ in range(4))

        async def task_a() -> None:
            async with cb:  # admitted before the reset: its failure must not count
                a_in.set()
                await a_go.wait()
                raise ConnectionError("A")

        async def task_b() -> None:
            async with cb:  # admitted after it: its success counts
                b_in.set()
                await b_go.wait()

        ta = asyncio.create_task(task_a())
        await a_in.wait()
        cb.reset()
        tb = asyncio.create_task(task_b())
        await b_in.wait()
        a_go.set()
        with pytest.raises(ConnectionError):
            await ta
        b_go.set()
        await tb
        many = [asyncio.create_task(run_async_with(cb, ok)) for _ in range(20)]
        assert await asyncio.gather(*many) == ["ok"] * 20

    asyncio.run(scenario())
    m = cb.metrics()
    assert (cb.state, m["success"], m["failure"], m["in_flight"]) == (CLOSED, 21, 0, 0)


# ----- call_with_timeout -------------------------------------------------------------------------


def test_call_with_timeout_raises_builtin_timeout_error_counted_once_late_outcome_ignored(
    make_breaker, collector
):
    cb = make_breaker(name="slow", volume_threshold=100)
    release, before = threading.Event(), set(threading.enumerate())
    try:
        with pytest.raises(TimeoutError) as info:
            cb.call_with_timeout(0.05, release.wait, 10)
        assert type(info.value) is TimeoutError
        m = cb.metrics()
        assert (m["failure"], m["success"], m["in_flight"]) == (1, 0, 0)
    finally:
        release.set()
    helpers = set(threading.enumerate()) - before
    for thread in helpers:  # the call finishes late; wait for its outcome to reach the breaker
        thread.join(5)
    assert helpers
    assert not any(thread.is_alive() for thread in helpers)
    m = cb.metrics()  # the late success changed nothing
    assert (m["failure"], m["success"], m["in_flight"], m["total_executions"]) == (1, 0, 0, 1)
    assert collector.events == [("failure", "slow", "TimeoutError")]


@pytest.mark.parametrize(
    ("seconds", "error"), [(0, ValueError), (-1, ValueError), (True, TypeError)]
)
def test_call_with_timeout_validates_seconds(seconds, error, make_breaker):
    cb = make_breaker()
    with pytest.raises(error, match="seconds"):
        cb.call_with_timeout(seconds, ok)
    assert cb.metrics()["total_executions"] == 0


# ----- callbacks that raise ----------------------------------------------------------------------


def error_records(caplog, what: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.ERROR and getattr(r, "callback", 0) == what
    ]


def test_listener_that_raises_is_logged_and_never_changes_the_result(
    make_breaker, clock, listener, caplog
):
    caplog.set_level(logging.DEBUG, logger="resilience")
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    cb.add_state_listener(lambda *a: 1 / 0)
    later: list[Any] = []
    cb.add_state_listener(lambda *a: later.append(a[1:]))
    original = ConnectionError("down")
    with pytest.raises(ConnectionError) as info:
        cb.call(lambda: (_ for _ in ()).throw(original))
    assert info.value is original
    clock.advance(30)
    assert cb.call(ok) == "ok"
    assert later == listener.transitions == [(CLOSED, OPEN), (OPEN, HALF), (HALF, CLOSED)]
    (record,) = error_records(caplog, "listener")
    assert record.breaker == "test"


def test_removed_listener_hears_nothing_more_and_unknown_one_is_a_value_error(make_breaker):
    cb = make_breaker(volume_threshold=1)
    heard: list[Any] = []

    def hear(name: str, a: CircuitState, b: CircuitState) -> None:
        heard.append((a, b))

    cb.add_state_listener(hear)
    cb.force_open()
    cb.remove_state_listener(hear)
    cb.reset()
    assert heard == [(CLOSED, OPEN)]
    with pytest.raises(ValueError, match="was not added"):
        cb.remove_state_listener(hear)


def test_listener_added_by_a_listener_hears_only_later_transitions(make_breaker):
    cb = make_breaker()
    late: list[Any] = []

    def add_another(name: str, a: CircuitState, b: CircuitState) -> None:
        if not late:
            late.append("added")
            cb.add_state_listener(lambda _n, x, y: late.append((x, y)))

    cb.add_state_listener(add_another)
    cb.force_open()  # delivered to the listeners present when it began
    cb.reset()
    assert late == ["added", (OPEN, CLOSED)]


def test_listeners_added_from_many_threads_are_all_kept(make_breaker):
    cb = make_breaker()
    heard: list[int] = []
    start = threading.Barrier(16)

    def add(i: int) -> None:
        start.wait()
        cb.add_state_listener(lambda *_: heard.append(i))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cb.force_open()
    assert sorted(heard) == list(range(16))


@pytest.mark.parametrize(
    "method", ["record_success", "record_failure", "record_rejection", "record_state_change"]
)
def test_collector_that_raises_is_logged_and_never_changes_the_result(
    method, make_breaker, collector, listener, caplog
):
    caplog.set_level(logging.DEBUG, logger="resilience")

    def broken(*args: Any) -> None:
        raise RuntimeError(f"{method} broke")

    setattr(collector, method, broken)
    cb = make_breaker(volume_threshold=2)
    assert cb.call(ok) == "ok"
    with pytest.raises(ConnectionError):
        cb.call(boom)
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)
    assert listener.transitions == [(CLOSED, OPEN)]
    m = cb.metrics()
    assert (m["success"], m["failure"], m["rejected"]) == (1, 1, 1)
    assert len(error_records(caplog, "metrics")) == 1


def test_classifier_that_raises_counts_a_failure_and_the_original_error_passes(
    make_breaker, caplog
):
    caplog.set_level(logging.DEBUG, logger="resilience")

    def classifier(exc: BaseException) -> bool:
        raise RuntimeError("classifier broke")

    cb = make_breaker(volume_threshold=1, error_classifier=classifier)
    original = ValueError("usually not counted")
    with pytest.raises(ValueError) as info:
        cb.call(lambda: (_ for _ in ()).throw(original))
    assert info.value is original
    assert (cb.state, cb.metrics()["failure"]) == (OPEN, 1)
    assert len(error_records(caplog, "classifier")) == 1


# ----- logs and metrics --------------------------------------------------------------------------


def test_transitions_are_logged_warning_to_open_and_info_otherwise_with_fields(
    make_breaker, clock, caplog
):
    caplog.set_level(logging.DEBUG, logger="resilience")
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    opened_then_half_open(cb, clock)
    cb.call(ok)
    records = [r for r in caplog.records if hasattr(r, "to_state")]
    assert [(r.levelno, r.from_state, r.to_state) for r in records] == [
        (logging.WARNING, "closed", "open"),
        (logging.INFO, "open", "half-open"),
        (logging.INFO, "half-open", "closed"),
    ]
    assert records[0].error_rate == 1.0
    assert {(r.name, r.breaker) for r in records} == {("resilience", "test")}


def test_transitions_go_to_the_configured_logger(make_breaker, caplog):
    caplog.set_level(logging.DEBUG)
    cb = make_breaker(volume_threshold=1, logger=logging.getLogger("app.breakers"))
    with pytest.raises(ConnectionError):
        cb.call(boom)
    assert [r.name for r in caplog.records if hasattr(r, "to_state")] == ["app.breakers"]


def test_collector_hears_counted_outcomes_rejections_and_state_changes_as_strings(
    make_breaker, collector
):
    cb = make_breaker(volume_threshold=2)
    with pytest.raises(KeyError):
        cb.call(lambda: {}["missing"])  # not counted, not reported
    cb.call(ok)

    def unavailable() -> None:
        raise Upstream.Unavailable("down")

    with pytest.raises(Upstream.Unavailable):
        cb.call(unavailable)
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)
    assert collector.events == [
        ("success", "test"),
        ("failure", "test", "Upstream.Unavailable"),
        ("state_change", "test", "closed", "open"),
        ("rejection", "test"),
    ]
    assert {type(x) for e in collector.events for x in e} == {str}


@pytest.mark.parametrize("retry_after", [12.5, None])
def test_circuit_breaker_open_error_pickles(retry_after):
    err = CircuitBreakerOpenError("payments", OPEN, retry_after)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is CircuitBreakerOpenError
    assert (clone.name, clone.state, clone.retry_after, str(clone)) == (
        "payments",
        OPEN,
        retry_after,
        str(err),
    )


def test_circuit_breaker_open_error_raised_by_a_breaker_pickles(make_breaker, clock):
    cb = make_breaker(volume_threshold=1)
    with pytest.raises(ConnectionError):
        cb.call(boom)
    clock.advance(10)
    with pytest.raises(CircuitBreakerOpenError) as info:
        cb.call(ok)
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.name, clone.state, clone.retry_after) == ("test", OPEN, 20.0)


def test_call_forwards_positional_and_keyword_arguments_and_needs_a_function(make_breaker):
    cb = make_breaker()

    def join(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
        return args, kwargs

    assert cb.call(join) == ((), {})
    assert cb.call(join, 1, 2, x=3) == ((1, 2), {"x": 3})
    assert cb.call(join, func=1) == ((), {"func": 1})  # `func` is positional-only
    with pytest.raises(TypeError, match="missing the function"):
        cb.call()
    assert cb.metrics()["success"] == 3
