"""Every example in examples/ runs to completion as a script and prints what it promises.

Each example starts its own servers on 127.0.0.1, so this runs them as subprocesses, one at a
time (the cascading-timeouts example measures real time), and checks that the expected lines
appear in order and that nothing was written to stderr (a traceback in a server thread would
be).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

for _library in ("httpx", "requests", "uvicorn"):
    pytest.importorskip(_library)

pytestmark = pytest.mark.thread_unsafe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED: dict[str, list[str]] = {
    "weather_cache_fallback": [
        "paris: 18.5 C (live)",
        "atlantis: unknown city atlantis (client error, not cached)",
        "paris: 18.5 C (served from cache: HTTP 503 after retries)",
        "breaker: open",
        "oslo: 7.0 C (served from cache: circuit open)",
        "tokyo: unavailable (circuit open, nothing cached)",
        "API calls while the breaker was open: 0",
        "tokyo: 22.0 C (live)",
        "breaker: closed",
    ],
    "database_replica_fallback": [
        "GET  /products/1 -> 200 widget stock=12 from primary",
        "GET  /products/1 -> 200 widget stock=11 from replica "
        "(fell back to replica: primary error: database is locked)",
        "GET  /products/1 -> 200 widget stock=11 from replica "
        "(fell back to replica: breaker open, primary not tried)",
        "breaker sqlite-primary: open",
        "PUT  /products/1 -> 503 primary unavailable: writes refused",
        "GET  /products/1 -> 200 widget stock=12 from primary",
        "breaker sqlite-primary: closed",
        "PUT  /products/1 -> 204 written to primary",
        "GET  /products/1 -> 200 widget stock=10 from primary",
    ],
    "order_service": [
        "order A-1: confirmed, shipping scheduled in the background",
        "order A-2: payment failed: HTTP 503; compensated: released the inventory reservation",
        "payment calls for A-2: 1 (a POST is not retried)",
        "order A-3: payment circuit open; compensated: released the inventory reservation",
        "payment service calls for A-3: 0",
        "breakers: inventory=closed, payment=open, shipping=closed",
        "reservations held: ['A-1']",
        "order A-4: confirmed, shipping scheduled in the background",
        "shipment for A-4 scheduled after 3 attempts (status 200)",
        "breakers: inventory=closed, payment=closed, shipping=closed",
        "reservations held: ['A-1', 'A-4']",
    ],
    "search_degradation": [
        "'python': 3 results from primary",
        "'python': 2 results from backup (primary: HTTP 503)",
        "'go': 2 results from backup (primary: circuit open)",
        "breakers: primary=open, backup=closed",
        "'python': 3 results from cache, degraded (circuit open; backup: HTTP 503)",
        "'rust': 3 results from cache, degraded (circuit open; backup: circuit open)",
        "'go': no results, search degraded and nothing cached (circuit open; backup: circuit open)",
        "breakers: primary=open, backup=open",
    ],
    "api_gateway": [
        "POST /items -> 201",
        "POST /items -> 500",
        "POST /items -> 503 rejected by api-write (retry in 30s)",
        "PUT /items/1 -> 503 rejected by api-write (retry in 30s)",
        "GET /items -> 200",
        "POST /admin/reindex -> 200",
        "breakers: api-admin=closed (threshold 0.1), api-read=closed (threshold 0.5), "
        "api-write=open (threshold 0.2)",
        "POST /items -> 201",
        "breakers: api-admin=closed (threshold 0.1), api-read=closed (threshold 0.5), "
        "api-write=closed (threshold 0.2)",
    ],
    "cascading_timeouts": [
        "  chain complete within the 2s budget",
        "run 2: B takes 1.2 s, more than its 0.6 s slice",
        "  A answered within its slice (40% = 0.8s)",
        "  B ran past its slice (30% = 0.6s) and timed out; chain aborted, C not called",
        "  C answered within its slice (the rest)",
        "  chain complete within the 2s budget",
        "failures counted per breaker: {'service-A': 0, 'service-B': 1, 'service-C': 0}",
    ],
    "chaos_testing": [
        "phase 1: 30% of requests fail",
        "  49 of 50 profiles loaded, 1 failed",
        "  chaos injected 21 failures into 70 requests",
        "  breaker: closed",
        "phase 2: 90% of requests fail",
        "  4 loaded, 9 failed, 37 served the default profile (breaker open)",
        "  breaker: open",
        "  /health is excluded from chaos: 200",
    ],
}


def test_every_example_has_expectations() -> None:
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_happened(name: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    position = 0
    for expected in EXPECTED[name]:
        assert expected in lines[position:], (
            f"{expected!r} not found after line {position} of:\n{result.stdout}"
        )
        position = lines.index(expected, position) + 1
