"""The decorator wrapper shared by breakers and retries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import _core

__all__ = ["guarded"]


class _Guarded(_core.Guarded):
    """A function decorated with a breaker or a retry.

    Calling it runs the function through its target in Rust, with no Python frame and no
    argument repacking (a closure would cost a frame plus ``*args, **kwargs``). ``__get__``
    binds it like a function, so decorated methods receive ``self``. This Python subclass adds
    the ``__dict__`` that ``functools.update_wrapper`` fills with the wrapped function's name,
    docstring and ``__wrapped__`` (which ``inspect.signature`` follows).
    """

    def __repr__(self) -> str:
        wrapped = self.func
        return f"<guarded {getattr(wrapped, '__qualname__', wrapped)!r}>"


def guarded(target: Any, fn: Callable[..., Any]) -> Any:
    """``fn`` wrapped so that every call runs through ``target``: a core ``Breaker``, a
    ``RetryCore``, or any callable ``runner(fn, *args, **kwargs)``."""
    return functools.update_wrapper(_Guarded(target, fn), fn)
