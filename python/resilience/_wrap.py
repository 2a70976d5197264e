"""The decorator wrapper shared by breakers and retries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import _core

__all__ = ["guarded"]


def guarded(target: Any, fn: Callable[..., Any]) -> Any:
    """``fn`` wrapped so that every call runs through ``target``: a core ``Breaker``, a
    ``RetryCore``, or any callable ``runner(fn, *args, **kwargs)``.

    The wrapper is a ``_core.Guarded``: calling it runs ``fn`` through ``target`` in Rust by the
    vectorcall protocol, with no Python frame and no argument repacking (a closure would cost a
    frame plus ``*args, **kwargs``). It binds like a function, so decorated methods receive
    ``self``; ``functools.update_wrapper`` fills its ``__dict__`` with ``fn``'s name, docstring
    and ``__wrapped__`` (which ``inspect.signature`` follows), and it pickles by reference as
    ``fn`` would.
    """
    return functools.update_wrapper(_core.Guarded(target, fn), fn)
