"""The decorator wrapper shared by breakers and retries."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

__all__ = ["guarded"]


class _Guarded(functools.partial[Any]):
    """A function decorated with a breaker or a retry: ``runner(fn, *args, **kwargs)``, run by C
    code.

    A ``functools.partial`` costs no Python frame per call (a closure would cost one, plus
    repacking ``*args, **kwargs``). ``__get__`` binds it like a function, so decorated methods
    receive ``self``; ``functools.update_wrapper`` gives it the wrapped function's name,
    docstring and ``__wrapped__`` (which ``inspect.signature`` follows).
    """

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def __repr__(self) -> str:
        wrapped = self.args[0]
        return f"<guarded {getattr(wrapped, '__qualname__', wrapped)!r}>"


def guarded(runner: Callable[..., Any], fn: Callable[..., Any]) -> Any:
    """``fn`` wrapped so that every call is ``runner(fn, *args, **kwargs)``."""
    return functools.update_wrapper(_Guarded(runner, fn), fn)
