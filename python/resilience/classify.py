"""Decide whether an exception is an infrastructure failure (counted, retried) or not.

The default rule: programming errors, client errors (HTTP 4xx except 408/429, the matching gRPC
codes), cancellation and interpreter exits are *not* counted; everything else is. An HTTP status
or gRPC code found on the exception wins over its Python type.

Duck-typing rules (no HTTP or gRPC library is imported):

* HTTP status: the first of ``exc.response.status_code`` (httpx, requests),
  ``exc.response.status``, ``exc.status_code``, ``exc.status`` (aiohttp, urllib) that is an
  ``int`` (never a ``bool``) in 100..599. A ``response`` of None is skipped (requests raises
  ``HTTPError`` without one), and a response is never tested for truth (requests'
  ``Response.__bool__`` is False for 4xx). ``exc.code`` is ambiguous on arbitrary exceptions, so it
  is trusted only on ``urllib.error.HTTPError`` instances or when a class in ``type(exc).__mro__``
  has "http" (any case) in its name.
* gRPC code: ``exc.code`` must be callable; its result's ``.name`` (or, for a string, the part
  after the last ".") is upper-cased and accepted only if it names a ``grpc.StatusCode`` member.

Every probe is wrapped: an attribute or ``code()`` that raises an ``Exception`` counts as absent.
Exact builtin types (``ValueError``, ``ConnectionError``, ...) take a frozenset fast path and are
never probed: only subclasses (the shape every HTTP/gRPC library error has) can carry a status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.error
from collections.abc import Callable
from typing import TypeAlias

from .errors import ConfigurationError, NotFoundError, StateError

__all__ = ["Classifier", "classifier", "default_error_classifier", "grpc_code_of", "http_status_of"]

Classifier: TypeAlias = Callable[[BaseException], bool]
"""Returns True when the exception is an infrastructure failure (counted and retried)."""

# Types whose subclasses (and instances) are never counted, absent an HTTP status or gRPC code.
_NOT_COUNTED_TYPES: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    AttributeError,
    LookupError,
    NotImplementedError,
    FileNotFoundError,
    PermissionError,
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    ConfigurationError,
    NotFoundError,
    StateError,
)

# Exact-type fast paths: builtin (or our own) classes that cannot carry an HTTP status or gRPC code.
_NOT_COUNTED_EXACT: frozenset[type[BaseException]] = frozenset(
    (
        *_NOT_COUNTED_TYPES,
        KeyError,
        IndexError,
        UnicodeDecodeError,
        UnicodeEncodeError,
        KeyboardInterrupt,
        SystemExit,
        GeneratorExit,
    )
)

_COUNTED_EXACT: frozenset[type[BaseException]] = frozenset(
    (
        Exception,
        OSError,
        ConnectionError,
        ConnectionRefusedError,
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        TimeoutError,
        EOFError,
        RuntimeError,
    )
)

_GRPC_CODES: frozenset[str] = frozenset(
    (
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    )
)

_GRPC_NOT_COUNTED: frozenset[str] = frozenset(
    (
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "CANCELLED",
    )
)

_STATUS_ATTRS = ("status_code", "status")


def _as_status(value: object) -> int | None:
    """Returns value as an HTTP status if it is a non-bool int in 100..599, else None."""
    if type(value) is bool or not isinstance(value, int):
        return None
    status = int(value)
    return status if 100 <= status <= 599 else None


def _looks_http(exc: BaseException) -> bool:
    """True for urllib's HTTPError and for classes with "http" in a name along their MRO."""
    if isinstance(exc, urllib.error.HTTPError):
        return True
    return any("http" in cls.__name__.lower() for cls in type(exc).__mro__)


def http_status_of(exc: BaseException) -> int | None:
    """Finds the HTTP status an exception carries, by duck typing.

    Args:
        exc: any exception.

    Returns:
        The status (100..599), or None when the exception carries none. Never raises.
    """
    if isinstance(exc, urllib.error.HTTPError):  # its __getattr__ makes other probes slow
        try:
            return _as_status(exc.code)
        except Exception:  # half-initialised: __getattr__ raises KeyError
            return None
    # Each probe has its own try (free on 3.11+): one raising attribute must not hide the next.
    # getattr() with a default does not build an AttributeError for a missing attribute.
    try:
        response = getattr(exc, "response", None)
    except Exception:
        response = None
    for obj in (exc,) if response is None else (response, exc):
        for name in _STATUS_ATTRS:
            try:
                value = getattr(obj, name, None)
                if value is not None:
                    status = _as_status(value)
                    if status is not None:
                        return status
            except Exception:
                pass
    try:
        value = getattr(exc, "code", None)
        if value is not None:
            status = _as_status(value)
            if status is not None and _looks_http(exc):
                return status
    except Exception:
        pass
    return None


def grpc_code_of(exc: BaseException) -> str | None:
    """Finds the gRPC status code name (e.g. "NOT_FOUND") of a grpc.RpcError-like exception.

    Args:
        exc: any exception.

    Returns:
        The ``grpc.StatusCode`` member name, or None when ``exc.code()`` is absent, raises, or
        returns something that names no gRPC status. Never raises.
    """
    try:
        code = getattr(exc, "code", None)
        if code is None or not callable(code):
            return None
        result = code()
        name = getattr(result, "name", None)
        if not isinstance(name, str):
            if not isinstance(result, str):
                return None
            name = result.rpartition(".")[2]
        name = name.upper()
        return name if name in _GRPC_CODES else None
    except Exception:
        return None


def default_error_classifier(exc: BaseException) -> bool:
    """Tells whether an exception is an infrastructure failure.

    Args:
        exc: the exception a protected call raised.

    Returns:
        True when the breaker should count it and retry should retry it; False for programming
        errors, client errors (HTTP 4xx except 408/429, client-side gRPC codes), cancellation and
        BaseExceptions that are not Exceptions. Never raises.
    """
    exc_type = type(exc)
    if exc_type in _NOT_COUNTED_EXACT:
        return False
    if exc_type in _COUNTED_EXACT:
        return True
    if not isinstance(exc, Exception):
        return False
    status = http_status_of(exc)
    if status is not None:
        return not (400 <= status <= 499 and status != 408 and status != 429)
    grpc_code = grpc_code_of(exc)
    if grpc_code is not None:
        return grpc_code not in _GRPC_NOT_COUNTED
    try:  # issubclass() on the type skips isinstance()'s per-class __class__ lookups
        return not issubclass(exc_type, _NOT_COUNTED_TYPES)
    except Exception:  # a metaclass __subclasscheck__ could raise
        return True


def _exception_types(param: str, value: object) -> tuple[type[BaseException], ...]:
    """Normalises ``ignore``/``record``: one exception class, or a tuple/list of them."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, (tuple, list)):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(
                    f"classifier() {param}= must hold exception classes, got {item!r} in {value!r}"
                )
        return tuple(value)
    raise TypeError(
        f"classifier() {param}= must be an exception class or a tuple/list of them, got {value!r}"
    )


def _type_names(types: tuple[type[BaseException], ...]) -> str:
    """Formats types as a tuple of qualified names for ``__repr__``."""
    names = ", ".join(t.__qualname__ for t in types)
    return f"({names},)" if len(types) == 1 else f"({names})"


class _CustomClassifier:
    """The callable that ``classifier()`` returns."""

    __slots__ = ("_fallback", "_ignore", "_ignore_set", "_record", "_record_set")

    def __init__(
        self,
        ignore: tuple[type[BaseException], ...],
        record: tuple[type[BaseException], ...],
        fallback: Classifier,
    ) -> None:
        self._ignore = ignore
        self._record = record
        self._ignore_set = frozenset(ignore)
        self._record_set = frozenset(record)
        self._fallback = fallback

    @property
    def __name__(self) -> str:
        return "classifier"

    @property
    def ignore(self) -> tuple[type[BaseException], ...]:
        """The exception types that are never counted."""
        return self._ignore

    @property
    def record(self) -> tuple[type[BaseException], ...]:
        """The exception types that are always counted."""
        return self._record

    @property
    def fallback(self) -> Classifier:
        """The classifier consulted when neither ``ignore`` nor ``record`` matches."""
        return self._fallback

    def __call__(self, exc: BaseException) -> bool:
        ignore, record = self._ignore_set, self._record_set
        for cls in type(exc).__mro__:  # nearest listed class wins
            if cls in ignore:
                return False
            if cls in record:
                return True
        if self._ignore and isinstance(exc, self._ignore):  # virtual (ABC-registered) subclasses
            return False
        if self._record and isinstance(exc, self._record):
            return True
        return self._fallback(exc)

    def __repr__(self) -> str:
        fallback = getattr(self._fallback, "__qualname__", None) or repr(self._fallback)
        return (
            f"classifier(ignore={_type_names(self._ignore)}, "
            f"record={_type_names(self._record)}, fallback={fallback})"
        )


def classifier(
    ignore: type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]] = (),
    record: type[BaseException] | tuple[type[BaseException], ...] | list[type[BaseException]] = (),
    fallback: Classifier = default_error_classifier,
) -> Classifier:
    """Builds a classifier from explicit exception types and a fallback.

    Instances of a type in ``ignore`` are not counted (False), instances of a type in ``record``
    are counted (True), anything else goes to ``fallback``. When an exception matches both lists
    through different classes (``ignore=OSError, record=ConnectionError``), the class nearest to
    the exception's own type in its MRO wins. Exceptions raised by ``fallback`` propagate.

    Args:
        ignore: an exception class, or a tuple/list of them, never counted.
        record: an exception class, or a tuple/list of them, always counted.
        fallback: the classifier for everything else.

    Returns:
        The classifier, a callable ``(BaseException) -> bool``.

    Raises:
        TypeError: ``ignore``/``record`` is not an exception class or a tuple/list of them, or
            ``fallback`` is not callable.
        ValueError: the same class is listed in both ``ignore`` and ``record``.
    """
    ignore_types = _exception_types("ignore", ignore)
    record_types = _exception_types("record", record)
    if not callable(fallback):
        raise TypeError(f"classifier() fallback= must be callable, got {fallback!r}")
    for cls in ignore_types:
        if cls in record_types:
            raise ValueError(
                f"classifier(): {cls.__qualname__} is listed in both ignore= and record="
            )
    return _CustomClassifier(ignore_types, record_types, fallback)
