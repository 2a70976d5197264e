"""The scripted loopback HTTP server the HTTP adapter tests share, and its own checks.

``Backend`` listens on 127.0.0.1 at a port the OS picks, answers each path from a script of
``Reply`` objects and records every request, so a test can count attempts and read the bodies that
reached the server. (It lives in a ``test_`` module so the other test modules can import it without
a package; pytest collects the few self-checks below.)
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.thread_unsafe


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Backend:
    """A scripted HTTP/1.1 server on 127.0.0.1 at a free port.

    ``route(path, *replies)``: requests to ``path`` get the replies in order, the last one
    repeating; unknown paths get 200. ``hits`` records ``(method, path, body)``.
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.hits: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def handle_one(self) -> None:
                body = self._read_body()
                path = self.path.split("?", 1)[0]
                with backend.lock:
                    backend.hits.append((self.command, path, body))
                    script = backend.routes.get(path, [Reply()])
                    reply = script.pop(0) if len(script) > 1 else script[0]
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    for _ in range(10_000):
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 256  # 100 concurrent connects must not overflow the backlog

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left is not a test failure

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def key(self) -> str:
        return f"127.0.0.1:{self.port}"

    def route(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.routes[path] = list(replies)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.hits if p == path)

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [b for _, p, b in self.hits if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
