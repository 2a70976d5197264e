"""Self-tests of the loopback HTTP server the transport tests use (tests/http_backend.py)."""

from __future__ import annotations

import http.client

from http_backend import Backend, Reply


def test_backend_replays_its_script_in_order_and_repeats_the_last_reply() -> None:
    backend = Backend()
    try:
        backend.route("/x", Reply(503), Reply(201, b"made"))
        statuses = []
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
            conn.request("GET", "/x")
            response = conn.getresponse()
            statuses.append((response.status, response.read()))
            conn.close()
        assert statuses == [(503, b"ok"), (201, b"made"), (201, b"made")]
        assert backend.count("/x") == 3
    finally:
        backend.close()


def test_backend_decodes_chunked_request_bodies() -> None:
    backend = Backend()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
        conn.request("PUT", "/up", body=iter([b"ab", b"cd"]), encode_chunked=True)
        conn.getresponse().read()
        conn.close()
        assert backend.bodies("/up") == [b"abcd"]
    finally:
        backend.close()
