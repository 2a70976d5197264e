"""Tests for resilience.classify: the default error classifier and custom classifiers."""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import enum
import http
import json
import socket
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.classify import classifier, default_error_classifier, grpc_code_of, http_status_of
from resilience.errors import ConfigurationError, NotFoundError, RetryError, StateError

# --- fakes shaped like third-party errors (those libraries are never imported) ----------------


class FakeResponse:  # httpx/requests Response; requests' is falsy for 4xx/5xx
    def __init__(self, status_code: object) -> None:
        self.status_code = status_code

    def __bool__(self) -> bool:
        return isinstance(self.status_code, int) and self.status_code < 400


class HTTPStatusError(Exception):  # httpx.HTTPStatusError: ``.response.status_code``
    def __init__(self, response: object) -> None:
        super().__init__("http status error")
        self.response = response


class RequestsHTTPError(OSError):  # requests.HTTPError: an OSError; response may be None
    def __init__(self, response: object = None) -> None:
        super().__init__("http error")
        self.response = response


class ClientResponseError(Exception):  # aiohttp.ClientResponseError: ``.status``, 0 = unknown
    def __init__(self, status: object = None) -> None:
        super().__init__(status)
        self.status = 0 if status is None else status


GRPC_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"]  # fmt: skip
GRPC_NOT_COUNTED = {"INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "UNAUTHENTICATED", "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "CANCELLED"}  # fmt: skip
# grpc.StatusCode: members named like grpc's, with (int, str) values like grpc's.
StatusCode = enum.Enum("StatusCode", [(n, (i, n.lower())) for i, n in enumerate(GRPC_NAMES)])  # type: ignore[misc]


class RpcError(Exception):  # grpc.RpcError / grpc.aio.AioRpcError: ``code()`` -> StatusCode
    def __init__(self, code: object) -> None:
        super().__init__(code)
        self._code = code

    def code(self) -> object:
        return self._code


class ExplodingProbes(Exception):  # both probes raise: ``response`` and ``code()``
    @property
    def response(self) -> object:
        raise RuntimeError("response probe exploded")

    def code(self) -> object:
        raise RuntimeError("code() exploded")


class ExplodingName:
    @property
    def name(self) -> str:
        raise KeyError("name")


class HttpishError(Exception): ...  # "http" in its name: an int ``code`` on it is trusted


class ApiNotFound(HttpishError): ...  # "http" only in a base class's name: still trusted


class InvalidURL(ValueError): ...  # requests.InvalidURL: a ValueError, with a ``response``


class UnknownError(Exception): ...


def make(cls: type[Exception], **attrs: object) -> Exception:
    exc = cls()
    exc.__dict__.update(attrs)
    return exc


def urllib_http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://x.invalid/", code, "msg", None, None)  # type: ignore[arg-type]


def every_http_style(status: int) -> list[Exception]:
    return [HTTPStatusError(FakeResponse(status)), RequestsHTTPError(FakeResponse(status)),
            ClientResponseError(status), urllib_http_error(status)]  # fmt: skip


# --- the default classifier: Python types ------------------------------------------------------

NOT_COUNTED = [ValueError("v"), TypeError("t"), AttributeError("a"), LookupError("l"),
    KeyError("k"), IndexError("i"), NotImplementedError(), FileNotFoundError(2, "missing"),
    PermissionError(13, "denied"), concurrent.futures.CancelledError(), ConfigurationError("c"),
    NotFoundError("n"), StateError("s"), json.JSONDecodeError("bad", "doc", 0),
    make(InvalidURL, response=None)]  # fmt: skip
COUNTED = [ConnectionError(), ConnectionRefusedError(), ConnectionResetError(), BrokenPipeError(),
    TimeoutError(), asyncio.TimeoutError(), socket.gaierror(-2, "unknown host"), OSError(5, "io"),
    RuntimeError("boom"), Exception("plain"), UnknownError(), urllib.error.URLError("refused"),
    RetryError("gave up", attempts=3)]  # fmt: skip


@pytest.mark.parametrize("exc", NOT_COUNTED, ids=lambda e: type(e).__name__)
def test_programming_lookup_and_cancellation_errors_are_not_counted(exc: BaseException) -> None:
    assert default_error_classifier(exc) is False


class Shutdown(BaseException):  # not an Exception, even though it carries an HTTP 503
    status = 503


@pytest.mark.parametrize(
    "exc",
    [KeyboardInterrupt(), SystemExit(1), GeneratorExit(), asyncio.CancelledError(), Shutdown()],
    ids=lambda e: type(e).__name__,
)
def test_base_exceptions_that_are_not_exceptions_are_never_counted(exc: BaseException) -> None:
    assert default_error_classifier(exc) is False


@pytest.mark.parametrize("exc", COUNTED, ids=lambda e: type(e).__name__)
def test_infrastructure_and_unknown_errors_are_counted(exc: BaseException) -> None:
    assert default_error_classifier(exc) is True


# --- HTTP statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 451, 499])
def test_http_4xx_other_than_408_and_429_is_not_counted_in_every_style(status: int) -> None:
    for exc in every_http_style(status):
        assert http_status_of(exc) == status
        assert default_error_classifier(exc) is False, exc


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599, 200, 302])
def test_http_5xx_408_429_and_non_error_statuses_are_counted_in_every_style(status: int) -> None:
    for exc in every_http_style(status):
        assert http_status_of(exc) == status
        assert default_error_classifier(exc) is True, exc


def test_requests_style_http_404_is_not_counted_despite_oserror_base() -> None:
    exc = RequestsHTTPError(FakeResponse(404))
    assert isinstance(exc, OSError)
    assert not exc.response  # a falsy response is still read
    assert default_error_classifier(exc) is False
    assert default_error_classifier(urllib_http_error(404)) is False  # real urllib: an OSError


def test_http_503_wins_over_a_not_counted_python_type() -> None:
    assert default_error_classifier(make(InvalidURL, status_code=503)) is True
    assert default_error_classifier(make(InvalidURL, response=FakeResponse(503))) is True


def test_http_error_without_response_falls_back_to_the_type_rules() -> None:
    assert http_status_of(RequestsHTTPError(None)) is None
    assert default_error_classifier(RequestsHTTPError(None)) is True  # OSError
    assert default_error_classifier(make(InvalidURL, response=None)) is False
    assert http_status_of(ClientResponseError()) is None  # aiohttp's "unknown" status 0
    assert default_error_classifier(ClientResponseError()) is True


@pytest.mark.parametrize("bad", [True, False, 99, 600, -404, "404", 404.0, None])
def test_bool_non_int_and_out_of_range_statuses_are_ignored(bad: object) -> None:
    assert http_status_of(HTTPStatusError(FakeResponse(bad))) is None
    assert http_status_of(ClientResponseError(bad)) is None
    assert http_status_of(make(HttpishError, code=bad)) is None


def test_code_attribute_is_trusted_only_on_http_looking_exceptions() -> None:
    assert http_status_of(make(UnknownError, code=404)) is None
    assert default_error_classifier(make(UnknownError, code=404)) is True
    assert http_status_of(make(HttpishError, code=404)) == 404
    assert default_error_classifier(make(ApiNotFound, code=404)) is False
    assert type(http_status_of(make(HttpishError, code=http.HTTPStatus.NOT_FOUND))) is int


def test_a_response_property_or_code_method_that_raises_does_not_propagate() -> None:
    assert http_status_of(ExplodingProbes()) is None
    assert grpc_code_of(ExplodingProbes()) is None
    assert grpc_code_of(RpcError(ExplodingName())) is None
    assert default_error_classifier(ExplodingProbes()) is True
    half_built = urllib.error.HTTPError.__new__(urllib.error.HTTPError)
    with pytest.raises(KeyError):  # its tempfile __getattr__ raises KeyError, not AttributeError
        getattr(half_built, "code", None)
    assert http_status_of(half_built) is None
    assert default_error_classifier(half_built) is True


# --- gRPC codes --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", GRPC_NAMES)
def test_grpc_client_side_codes_are_not_counted_and_the_rest_are(code: str) -> None:
    exc = RpcError(StatusCode[code])
    assert grpc_code_of(exc) == code
    assert default_error_classifier(exc) is (code not in GRPC_NOT_COUNTED)


def test_grpc_code_given_as_string_is_read_after_the_last_dot() -> None:
    assert grpc_code_of(RpcError("StatusCode.NOT_FOUND")) == "NOT_FOUND"
    assert default_error_classifier(RpcError("StatusCode.NOT_FOUND")) is False
    assert grpc_code_of(urllib_http_error(404)) is None  # an int ``code`` is not a gRPC code


@pytest.mark.parametrize("result", ["NOT_A_CODE", 5, None, object()])
def test_grpc_code_that_names_no_status_is_ignored(result: object) -> None:
    assert grpc_code_of(RpcError(result)) is None
    assert default_error_classifier(RpcError(result)) is True


# --- classifier() ------------------------------------------------------------------------------


def test_custom_classifier_ignores_records_falls_back_and_has_a_helpful_repr() -> None:
    seen: list[BaseException] = []

    def fallback(exc: BaseException) -> bool:
        seen.append(exc)
        return False

    classify = classifier(ignore=TimeoutError, record=[KeyError, UnknownError], fallback=fallback)
    assert classify(TimeoutError()) is False
    assert classify(KeyError("k")) is True
    assert classify(UnknownError()) is True
    other = ConnectionError()
    assert classify(other) is False
    assert seen == [other]
    assert classifier()(ValueError()) is False  # default fallback
    assert classifier()(ConnectionError()) is True
    assert classify.__name__ == "classifier"
    assert repr(classifier(ignore=ValueError, record=(KeyError, TimeoutError))) == (
        "classifier(ignore=(ValueError,), record=(KeyError, TimeoutError), "
        "fallback=default_error_classifier)"
    )


def test_nearest_class_in_the_mro_wins_when_ignore_and_record_overlap_by_subclass() -> None:
    classify = classifier(ignore=OSError, record=(ConnectionError,))
    assert classify(ConnectionRefusedError()) is True
    assert classify(OSError()) is False
    inverse = classifier(ignore=ConnectionError, record=OSError)
    assert inverse(ConnectionRefusedError()) is False
    assert inverse(FileNotFoundError()) is True


def test_same_class_in_ignore_and_record_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match=r"UnknownError is listed in both ignore= and record="):
        classifier(ignore=(ValueError, UnknownError), record=[UnknownError])


BAD_TYPES = [("ValueError", "'ValueError'"), (ValueError("x"), "ValueError('x')"),
    ({ValueError}, "{<class 'ValueError'>}"), ((ValueError, 3), "3"),
    ([int], "<class 'int'>")]  # fmt: skip
BAD_ARGS = [(p, v, shown) for p in ("ignore", "record") for v, shown in BAD_TYPES]


@pytest.mark.parametrize(
    ("param", "value", "shown"),
    [*BAD_ARGS, ("fallback", None, "must be callable, got None"), ("fallback", 3, "got 3")],
)
def test_bad_arguments_raise_type_error_naming_the_parameter_and_value(
    param: str, value: object, shown: str
) -> None:
    kwargs: dict[str, Any] = {param: value}
    with pytest.raises(TypeError) as info:
        classifier(**kwargs)
    assert f"{param}=" in str(info.value)
    assert shown in str(info.value)


# --- robustness --------------------------------------------------------------------------------


def test_module_imports_only_the_stdlib_and_the_package() -> None:
    source = Path(__file__).parents[1] / "python" / "resilience" / "classify.py"
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "asyncio", "collections", "concurrent", "typing", "urllib"}


FUZZ_CLASSES = [*{type(e) for e in NOT_COUNTED + COUNTED}, BaseException, KeyboardInterrupt,
    SystemExit, asyncio.CancelledError, HTTPStatusError, RequestsHTTPError, ClientResponseError,
    urllib.error.HTTPError, RpcError, ExplodingProbes, HttpishError, ApiNotFound]  # fmt: skip
FUZZ_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
    st.sampled_from(["404", "NOT_FOUND", 404.0, object(), FakeResponse(404), FakeResponse(True),
                     ExplodingProbes().code, ExplodingName()]),
    st.sampled_from(list(StatusCode)).map(lambda code: RpcError(code).code))  # fmt: skip


@given(
    cls=st.sampled_from(FUZZ_CLASSES),
    attrs=st.dictionaries(
        st.sampled_from(["response", "status", "status_code", "code"]), FUZZ_VALUES, max_size=3
    ),
)
def test_default_classifier_never_raises_for_arbitrary_exceptions(
    cls: type[BaseException], attrs: dict[str, object]
) -> None:
    exc = cls.__new__(cls)  # skips __init__: half-initialised instances stress the probes
    for name, value in attrs.items():
        with contextlib.suppress(Exception):  # read-only properties refuse
            setattr(exc, name, value)
    assert isinstance(default_error_classifier(exc), bool)
    status = http_status_of(exc)
    assert status is None or (type(status) is int and 100 <= status <= 599)
    code = grpc_code_of(exc)
    assert code is None or code in GRPC_NAMES
    assert isinstance(classifier(record=ApiNotFound)(exc), bool)
