"""Tiny local servers the examples talk to: real HTTP on 127.0.0.1, a port the OS picks.

Not an example itself (the leading underscore keeps it out of the example runner). Each example
stands a small service up with ``http_service`` (the standard library's threading HTTP server) or
``asgi_service`` (an ASGI app under uvicorn), and tears it down when its ``with`` block ends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """What a handler is given."""

    method: str
    path: str
    query: str
    body: bytes


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: Any = None  # bytes, str, or anything JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow dependency)


Handler = Callable[[Request], Response]


@dataclass
class Service:
    """A running service: its base URL and how many requests it served."""

    url: str
    port: int
    hits: int = 0


@contextmanager
def http_service(handler: Handler) -> Iterator[Service]:
    """Serves ``handler`` over HTTP/1.1 on 127.0.0.1 until the block ends."""
    service = Service(url="", port=0)
    lock = threading.Lock()

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            with lock:
                service.hits += 1
            response = handler(Request(self.command, path, query, body))
            if response.delay:
                time.sleep(response.delay)
            payload = response.body
            if payload is None:
                payload = b""
            elif isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, bytes):
                payload = json.dumps(payload).encode()
                response.headers.setdefault("Content-Type", "application/json")
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (a timeout): nothing to answer

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client closing its keep-alive connection is not news

    server = Server(("127.0.0.1", 0), RequestHandler)
    service.port = server.server_address[1]
    service.url = f"http://127.0.0.1:{service.port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def asgi_service(app: Any) -> Iterator[Service]:
    """Serves an ASGI app with uvicorn on 127.0.0.1 until the block ends."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):  # at most 10 s
        if server.started:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield Service(url=f"http://127.0.0.1:{port}", port=port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
