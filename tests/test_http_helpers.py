"""The pieces the HTTP adapters share: status rules, Retry-After, keys, and the optional extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from resilience._http import host_key, is_failure_status, parse_retry_after

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (200, False),
        (204, False),
        (301, False),
        (400, False),
        (401, False),
        (404, False),
        (409, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (599, True),
    ],
)
def test_only_5xx_408_and_429_are_failure_statuses(status: int, failure: bool) -> None:
    assert is_failure_status(status) is failure


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Thu, 02 Jan 2025 03:04:35 GMT", 30.0),
        ("Thu, 02 Jan 2025 03:00:00 GMT", 0.0),  # in the past: retry now
        ("Thu, 02 Jan 2025 03:05:05 -0000", 60.0),  # "-0000" parses as a naive time: still GMT
    ],
)
def test_retry_after_accepts_delay_seconds_and_http_dates(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "  ", "-1", "1.5", "soon", "Thu, 99 Foo 2025", "٣"])
def test_malformed_or_missing_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_date_is_measured_against_the_system_clock_by_default() -> None:
    future = (datetime.now(timezone.utc) + timedelta(seconds=90)).strftime(
        "%a, %d %b %Y %H:%M:%S GMT"
    )
    delay = parse_retry_after(future)
    assert delay is not None
    assert 85.0 <= delay <= 90.0


@pytest.mark.parametrize(
    ("scheme", "host", "port", "key"),
    [
        ("https", "API.Example.com", None, "api.example.com:443"),
        ("http", "example.com", None, "example.com:80"),
        ("http", "example.com", 8080, "example.com:8080"),
        ("http", "::1", 9000, "[::1]:9000"),
        ("gopher", "example.com", None, "example.com"),
    ],
)
def test_host_key_is_host_and_port_with_the_default_port_filled_in(
    scheme: str, host: str, port: int | None, key: str
) -> None:
    assert host_key(scheme, host, port) == key


def run_without(*modules: str, code: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter where importing ``modules`` fails."""
    blocker = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_resilience_imports_without_httpx_or_requests_and_the_adapters_name_their_extra() -> None:
    result = run_without(
        "httpx",
        "requests",
        code="""
        import resilience, resilience.registry, resilience.asgi, resilience.wsgi
        for module, extra in (("resilience.httpx", "httpx"), ("resilience.requests", "requests")):
            try:
                __import__(module)
            except ImportError as exc:
                assert f"pip install 'resilience-rs[{extra}]'" in str(exc), exc
                assert exc.name == extra
                print("ok", module)
            else:
                raise SystemExit(f"{module} imported without its library")
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["ok resilience.httpx", "ok resilience.requests"]


def test_adapter_modules_import_the_real_libraries_not_themselves() -> None:
    httpx = pytest.importorskip("httpx")
    requests = pytest.importorskip("requests")
    import resilience.httpx
    import resilience.requests

    assert resilience.httpx._httpx is httpx
    assert resilience.requests._requests is requests
    assert issubclass(resilience.httpx.ResilientTransport, httpx.BaseTransport)
