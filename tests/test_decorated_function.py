"""The object a sync function becomes under ``@cb`` or ``@retry`` (``resilience._core.Guarded``):
a native callable that behaves like the function it wraps where users can tell."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import weakref
from typing import Any

import pytest

from resilience import CircuitBreaker, Retry, RetryConfig, RetryError, _core
from resilience.testing import ManualClock

PICKLE_BREAKER = CircuitBreaker(name="pickled")


@PICKLE_BREAKER
def module_level_add(a: int, b: int = 2) -> int:
    return a + b


class Holder:
    @PICKLE_BREAKER
    def method(self) -> str:
        return "method"


def make_retry(clock: ManualClock, **overrides: Any) -> Retry:
    return Retry(RetryConfig(jitter=False, clock=clock, sleep=clock.sleep, **overrides))


def test_arguments_reach_the_function_positionally_and_by_keyword(make_breaker):
    cb = make_breaker()

    @cb
    def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    assert echo() == ((), {})
    assert echo(1, 2) == ((1, 2), {})
    assert echo(1, key="v") == ((1,), {"key": "v"})
    assert echo(*range(20), **{f"k{i}": i for i in range(5)}) == (
        tuple(range(20)),
        {f"k{i}": i for i in range(5)},
    )
    assert cb.metrics()["success"] == 4


def test_call_through_tp_call_matches_the_vectorcall_path(make_breaker):
    cb = make_breaker()

    @cb
    def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return args, kwargs

    # type(x).__call__ goes through tp_call (an argument tuple and dict), not vectorcall.
    assert type(echo).__call__(echo, 1, key="v") == ((1,), {"key": "v"})
    assert type(echo).__call__(echo) == ((), {})
    assert cb.metrics()["success"] == 2


def test_exceptions_pass_through_the_decorated_function_unchanged(make_breaker):
    cb = make_breaker(volume_threshold=100)
    error = ConnectionError("down")

    @cb
    def fail() -> None:
        raise error

    with pytest.raises(ConnectionError) as caught:
        fail()
    assert caught.value is error
    assert caught.value.__traceback__ is not None
    assert cb.metrics()["failure"] == 1


def test_retry_decorated_function_retries_and_raises_retry_error():
    clock = ManualClock()
    attempts = []

    @make_retry(clock, max_attempts=3)
    def flaky(x: int) -> int:
        attempts.append(x)
        raise ConnectionError("down")

    with pytest.raises(RetryError) as caught:
        flaky(7)
    assert attempts == [7, 7, 7]
    assert caught.value.attempts == 3


def test_method_binding_by_attribute_and_by_method_call_gives_the_same_self(make_breaker):
    cb = make_breaker()

    class Client:
        @cb
        def who(self, tag: str) -> tuple[object, str]:
            return self, tag

    client = Client()
    bound = client.who  # through __get__: a bound method
    assert bound.__self__ is client
    assert bound("a") == (client, "a")
    assert client.who("b") == (client, "b")  # the method-call fast path
    assert Client.who(client, "c") == (client, "c")
    assert Client.__dict__["who"].__get__(None, Client) is Client.__dict__["who"]
    assert cb.metrics()["success"] == 3


def test_repr_names_the_decorated_function(make_breaker):
    @make_breaker()
    def fetch() -> None: ...

    assert repr(fetch) == ("<guarded 'test_repr_names_the_decorated_function.<locals>.fetch'>")


def test_module_level_decorated_function_pickles_by_reference():
    assert pickle.loads(pickle.dumps(module_level_add)) is module_level_add
    assert pickle.loads(pickle.dumps(Holder.method)) is Holder.__dict__["method"]
    assert copy.deepcopy(module_level_add) is module_level_add
    assert module_level_add(1) == 3


def test_local_decorated_function_refuses_to_pickle(make_breaker):
    @make_breaker()
    def local() -> None: ...

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)


def test_guarded_without_update_wrapper_refuses_to_pickle_with_a_clear_error(make_breaker):
    bare = _core.Guarded(make_breaker()._core, len)
    with pytest.raises(TypeError, match="__qualname__"):
        pickle.dumps(bare)


def test_decorated_function_supports_weak_references(make_breaker):
    @make_breaker()
    def target() -> int:
        return 1

    ref = weakref.ref(target)
    assert ref() is target
    del target
    gc.collect()
    assert ref() is None


def test_a_reference_cycle_through_the_decorated_function_is_collected(make_breaker):
    cb = make_breaker()

    def build() -> weakref.ref[Any]:
        def inner() -> Any:
            return wrapped

        wrapped = cb(inner)
        wrapped.extra = wrapped  # a cycle through the instance dict too
        return weakref.ref(wrapped)

    ref = build()
    gc.collect()
    assert ref() is None


def test_the_type_is_final_and_read_only_where_it_should_be(make_breaker):
    @make_breaker()
    def f() -> None: ...

    with pytest.raises(TypeError, match="not an acceptable base type"):
        type("Sub", (type(f),), {})
    with pytest.raises(AttributeError):
        f.func = len  # type: ignore[misc]
    f.custom = "attributes go to __dict__"
    assert f.__dict__["custom"] == "attributes go to __dict__"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "takes 2 arguments, got 0"),
        ((len,), {}, "takes 2 arguments, got 1"),
        ((len, len, len), {}, "takes 2 arguments, got 3"),
        ((42, len), {}, "target must be a Breaker, a RetryCore or a callable"),
        ((len, 42), {}, "func must be callable, got 42"),
        ((len, len), {"func": len}, "no keyword arguments"),
    ],
)
def test_guarded_constructor_rejects_bad_arguments_naming_them(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        _core.Guarded(*args, **kwargs)


def test_a_python_runner_target_is_called_with_the_function_first():
    seen = []

    def runner(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((fn, args, kwargs))
        return fn(*args, **kwargs)

    wrapped = _core.Guarded(runner, max)
    assert wrapped(3, 9, key=abs) == 9
    assert seen == [(max, (3, 9), {"key": abs})]


def test_many_threads_calling_one_decorated_function_count_every_call(make_breaker):
    cb = make_breaker(volume_threshold=10**9)
    threads, calls = 8, 5_000
    start = threading.Barrier(threads)

    @cb
    def work(i: int) -> int:
        return i

    def run() -> None:
        start.wait()
        for i in range(calls):
            assert work(i) == i

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    m = cb.metrics()
    assert (m["success"], m["total_executions"], m["in_flight"]) == (
        threads * calls,
        threads * calls,
        0,
    )
